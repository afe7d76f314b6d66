"""Attention classification with a self-corrective loss (the "sparsity term that never converges" story).

Data: :func:`digits_canvas` puts each digit at a random place on a blank canvas, so attention has
something to find (config: ``data: {_component_: trainfix.trainers.components.attention.digits_canvas}``);
plain ``digits`` works too.  The model is a small CNN that gates its feature map with a sigmoid
attention map ``a`` in [0, 1] and pools by the attention-weighted average ``sum(F a) / sum(a)``, so the
map it returns is the map it actually used.  The loss combines

- classification: cross-entropy (single label) or binary cross-entropy (multi-label);
- consistency: each training sample's attention is compared with the map it had the last time it
  was seen (a memory keyed by ``Batch.index``).  When the prediction is right the two are pulled
  together (``mean |a - a_prev|``); when it is wrong they are pushed apart (``mean exp(-|a - a_prev|)``),
  so a wrong explanation is not reinforced;
- sparsity, one of three kinds (``sparsity_kind``):

  ``entropy``  the entropy of the attention map normalised to sum 1, divided by ``sparsity_scale``.
               Lower entropy means attention concentrated on fewer cells.  This reproduces the
               original formulation, whose real defect was its size, not its form: with the original
               ``sparsity_scale=1000`` and ``sparsity_weight=0.001`` it enters the total at about
               1e-6 of its value, its gradient is negligible and the term does not move.
               (Note the sign: ``sum p log p`` is *minus* the entropy; minimising that spreads
               attention out.  We minimise the entropy itself.)
  ``l1``       ``mean |a|`` of the *un-normalised* map ``a`` in [0, 1].  The proposed correction in
               the original story applied L1 to the map after normalising it to sum 1; that is the
               constant 1 for every map, so its gradient is exactly zero and it cannot encourage
               anything (``tests/test_components_attention.py`` proves both facts).  L1 on the gate
               itself pushes every cell towards 0, while the classification term holds up the cells
               that carry evidence; cells without evidence close.  Because the pooling is
               scale-free, the term could in principle fall by shrinking the whole map uniformly;
               the sigmoid saturates on the cells the classifier needs, and ``attn/entropy`` (of
               the normalised map) shows the map really concentrates (in ``sparsity-fixed.yaml``
               it falls from log 64 = 4.16 to about 2.8 while the L1 term falls by ~90%; with the
               buggy settings the classifier alone moves them by less than 10%, late in training).
  ``none``     no sparsity term.

Logged: ``loss/cls``, ``loss/sparsity``, ``loss/consistency`` (weighted, as they enter the total) and
their ``/raw`` values through :class:`LossOutput`; ``attn/entropy``, ``attn/active_fraction``
(share of cells with ``a > 0.5``), ``attn/mean`` and ``attn/consistency`` (mean ``|a - a_prev|``)
through ``scalars()``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainfix.errors import ConfigError

from .base import Batch, DataBundle, LossOutput, ModelOutput
from .datasets import IndexedTensors, digits
from .losses import resolve_class_weights

SPARSITY_KINDS = ("entropy", "l1", "none")
EPS = 1e-8


def digits_canvas(
    seed: int,
    canvas_size: int = 16,
    digit_size: int = 8,
    val_fraction: float = 0.25,
    noise: float = 0.0,
    labelled_per_class: int | None = None,
    background_noise: float = 0.0,
) -> DataBundle:
    """Digits placed at a random position on a blank canvas: an attention task with a right answer.

    scikit-learn's digits fill their 8x8 frame, so on plain digits every cell carries evidence and a
    sparsity penalty can only fight the classifier.  Here each ``digit_size`` image sits at a random
    (seeded, fixed per sample) offset on a ``canvas_size`` background, like a finding somewhere in a
    radiograph: about ``(digit_size / canvas_size)**2`` of the map is worth attending to.  Images,
    split and normalisation come from ``digits``; the canvas is the normalised background value.

    Each digit's box is kept (``bundle.boxes['train'|'val']``, ``(y0, x0, y1, x1)``), so pointing
    game and energy-in-box are exact.  ``labelled_per_class`` keeps labels for only that many
    training images per class (the first ones of a seeded shuffle); the other training images
    become ``bundle.unlabelled`` (few-label, semi-supervised training such as ATCON).
    ``background_noise`` adds Gaussian noise of that std (normalised units) to the canvas outside
    the digit, train and val alike: on a clean canvas any convolution, even an untrained one,
    responds only where the digit is, so localisation would be trivial; with clutter a map must
    single the digit out.
    """
    if digit_size not in (8, 16, 32) or canvas_size < digit_size:
        raise ConfigError(f"data: digit_size {digit_size} (8|16|32) must fit canvas_size {canvas_size}",
                          "e.g. canvas_size 16, digit_size 8")
    base = digits(seed, image_size=digit_size, val_fraction=val_fraction, noise=noise)
    gen = torch.Generator().manual_seed(seed + 17)

    def place(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        background = float(images.amin())
        out = torch.full((len(images), 1, canvas_size, canvas_size), background)
        room = canvas_size - digit_size + 1
        ys = torch.randint(0, room, (len(images),), generator=gen)
        xs = torch.randint(0, room, (len(images),), generator=gen)
        if background_noise > 0:
            out = out + background_noise * torch.randn(out.shape, generator=gen)
        for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist())):
            out[i, :, y: y + digit_size, x: x + digit_size] = images[i]
        return out, torch.stack([ys, xs, ys + digit_size, xs + digit_size], dim=1)

    train_x, train_boxes = place(base.train.inputs)
    val_x, val_boxes = place(base.val.inputs)
    train_y = base.train.targets
    info = {**base.info, "dataset": "digits-canvas", "canvas_size": canvas_size, "digit_size": digit_size,
            "background_noise": background_noise}
    unlabelled = None
    if labelled_per_class is not None:
        if labelled_per_class < 1:
            raise ConfigError(f"data.labelled_per_class: must be >= 1, got {labelled_per_class}", "e.g. 5")
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(seed + 29))
        keep = torch.zeros(len(train_y), dtype=torch.bool)
        for c in range(base.num_classes):
            keep[order[train_y[order] == c][:labelled_per_class]] = True
        rest = (~keep).nonzero().squeeze(1)
        kept = keep.nonzero().squeeze(1)
        unlabelled = IndexedTensors(train_x[rest].contiguous(), train_y[rest])
        train_x, train_y, train_boxes = train_x[kept].contiguous(), train_y[kept], train_boxes[kept]
        info.update({"train_size": len(kept), "unlabelled_size": len(rest), "labelled_per_class": labelled_per_class,
                     "train_class_counts": [int((train_y == c).sum()) for c in range(base.num_classes)]})
    return DataBundle(
        train=IndexedTensors(train_x, train_y), val=IndexedTensors(val_x, base.val.targets),
        num_classes=base.num_classes, class_names=base.class_names,
        task="multiclass", input_shape=(1, canvas_size, canvas_size), train_targets=train_y.tolist(),
        info=info, boxes={"train": train_boxes, "val": val_boxes}, unlabelled=unlabelled,
    )


class AttentionCNN(nn.Module):
    """Conv trunk -> feature map F [B, C, h, w]; attention a = sigmoid(conv1x1(F)) [B, h, w];
    prediction = Linear(sum(F a) / sum(a)).  ``aux['attention']`` is ``a`` (un-normalised)."""

    # Grad-CAM's layer: the gated feature map F * a (an Identity, so it has a name to hook; no
    # weights).  The trunk's own output is computed everywhere on the canvas and the gate acts
    # after it, so a Grad-CAM there stays diffuse however focused the attention is.
    gradcam_layer = "gated"

    def __init__(self, in_channels: int, num_outputs: int, channels: int = 32, dropout: float = 0.0,
                 batch_norm: bool = True, attention_init_bias: float = 3.0):
        super().__init__()
        c = channels

        def block(cin: int, cout: int) -> list[nn.Module]:
            conv = nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)
            return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]

        self.trunk = nn.Sequential(*block(in_channels, c), *block(c, c), nn.MaxPool2d(2), *block(c, 2 * c))
        self.attention = nn.Conv2d(2 * c, 1, 1)
        # Start with attention open everywhere (sigmoid(3) ~ 0.95): the network begins as a plain
        # average-pooling CNN and the sparsity term has to close what the classifier does not need.
        nn.init.constant_(self.attention.bias, attention_init_bias)
        self.gated = nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * c, num_outputs)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        features = self.trunk(x)
        attn = torch.sigmoid(self.attention(features)).squeeze(1)  # [B, h, w], un-normalised
        gated = self.gated(features * attn.unsqueeze(1))
        pooled = gated.sum(dim=(2, 3)) / (attn.sum(dim=(1, 2)).unsqueeze(1) + EPS)
        logits = self.head(self.dropout(pooled))
        return ModelOutput(logits=logits, aux={"attention": attn})


def attention_cnn(bundle: DataBundle, channels: int = 32, dropout: float = 0.0, batch_norm: bool = True,
                  attention_init_bias: float = 3.0) -> AttentionCNN:
    """Model factory (``model.name: attention-cnn``): sized from the bundle's input shape and classes.

    ``attention_init_bias`` sets where the sigmoid gate starts (3.0: ~0.95, open everywhere).
    """
    in_channels = bundle.input_shape[0] if bundle.input_shape else 1
    return AttentionCNN(in_channels, bundle.num_classes, channels=channels, dropout=dropout, batch_norm=batch_norm,
                        attention_init_bias=attention_init_bias)


# --- sparsity measures (pure functions, unit-tested) -------------------------------------------------

def normalized_entropy_term(attn: torch.Tensor) -> torch.Tensor:
    """Per-sample entropy of the map normalised to sum 1: ``-sum p log p`` with ``p = a / sum a``."""
    flat = attn.flatten(1)
    p = flat / (flat.sum(dim=1, keepdim=True) + EPS)
    return -(p * torch.log(p + EPS)).sum(dim=1)


def normalized_l1_term(attn: torch.Tensor) -> torch.Tensor:
    """The original story's "L1": ``sum |p|`` of the sum-1 normalised map.  Identically 1 (up to the
    epsilon), hence zero gradient.  Kept only to demonstrate the defect; never used as a loss."""
    flat = attn.flatten(1)
    p = flat / (flat.sum(dim=1, keepdim=True) + EPS)
    return p.abs().sum(dim=1)


def l1_term(attn: torch.Tensor) -> torch.Tensor:
    """Per-sample ``mean |a|`` of the un-normalised map: a real sparsity pressure on every cell."""
    return attn.flatten(1).abs().mean(dim=1)


class SelfCorrectiveAttentionLoss(nn.Module):
    """Classification + per-sample attention consistency + attention sparsity (see module doc)."""

    def __init__(
        self,
        num_samples: int,
        multilabel: bool = False,
        sparsity_kind: str = "entropy",
        sparsity_weight: float = 0.001,
        sparsity_scale: float = 1.0,
        consistency_weight: float = 0.0,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
    ):
        super().__init__()
        if sparsity_kind not in SPARSITY_KINDS:
            raise ConfigError(f"loss.sparsity_kind: {sparsity_kind!r} is not one of {'|'.join(SPARSITY_KINDS)}", "use 'l1' (mean |a| of the un-normalised map)")
        if sparsity_scale <= 0:
            raise ConfigError(f"loss.sparsity_scale: must be > 0, got {sparsity_scale}", "1.0 leaves the term unscaled")
        self.multilabel = multilabel
        self.sparsity_kind = sparsity_kind
        self.sparsity_weight = float(sparsity_weight)
        self.sparsity_scale = float(sparsity_scale)
        self.consistency_weight = float(consistency_weight)
        self.label_smoothing = float(label_smoothing)
        self.num_samples = int(num_samples)
        self.register_buffer("class_weights", class_weights, persistent=False)
        # Attention memory (saved with the loss's state for exact resume): allocated on first use,
        # when the map size is known.
        self.register_buffer("memory", None)
        self.register_buffer("seen", None)
        self._stats: dict[str, torch.Tensor] = {}

    # -- parts ---------------------------------------------------------------------------------------
    def classification(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            t = targets.float()
            if self.label_smoothing:
                t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
            return F.binary_cross_entropy_with_logits(logits, t, pos_weight=self.class_weights)
        return F.cross_entropy(logits, targets.long(), weight=self.class_weights,
                               label_smoothing=self.label_smoothing)

    def correct(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multilabel:
            return ((logits > 0).long() == targets.long()).all(dim=1)
        return logits.argmax(dim=1) == targets.long()

    def sparsity(self, attn: torch.Tensor) -> torch.Tensor:
        if self.sparsity_kind == "entropy":
            return normalized_entropy_term(attn).mean() / self.sparsity_scale
        if self.sparsity_kind == "l1":
            return l1_term(attn).mean() / self.sparsity_scale
        return attn.new_zeros(())

    def consistency(self, attn: torch.Tensor, index: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """Pull towards the remembered map when right, push away when wrong; 0 without history."""
        if self.memory is None or self.memory.shape[1:] != attn.shape[1:]:
            return attn.new_zeros(())
        index = index.to(self.memory.device).long()
        has_prev = self.seen[index].to(attn.device)
        if not bool(has_prev.any()):  # once per epoch-0 batch only; cheap
            return attn.new_zeros(())
        prev = self.memory[index].to(attn.device, attn.dtype)
        dist = (attn - prev).abs().flatten(1).mean(dim=1)
        push = torch.exp(-(attn - prev).abs()).flatten(1).mean(dim=1)
        per_sample = torch.where(correct, dist, push)
        weight = has_prev.float()
        self._stats["consistency"] = (dist.detach() * weight).sum() / weight.sum()
        return (per_sample * weight).sum() / weight.sum()

    def remember(self, attn: torch.Tensor, index: torch.Tensor) -> None:
        if self.memory is None or self.memory.shape[1:] != attn.shape[1:]:
            self.memory = torch.zeros((self.num_samples, *attn.shape[1:]), device=attn.device)
            self.seen = torch.zeros(self.num_samples, dtype=torch.bool, device=attn.device)
        index = index.to(self.memory.device).long()
        self.memory[index] = attn.detach().float()
        self.seen[index] = True

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Also restores the attention memory, whose size is only known once it exists."""
        if "memory" in state_dict and "seen" in state_dict:
            self.memory = torch.empty_like(state_dict["memory"])
            self.seen = torch.zeros_like(state_dict["seen"], dtype=torch.bool)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- forward ---------------------------------------------------------------------------------------
    def forward(self, output: ModelOutput, batch: Batch) -> LossOutput:
        if not isinstance(output, ModelOutput) or "attention" not in output.aux:
            raise TypeError("self-corrective-attention needs a model that returns aux['attention'] "
                            "(model.name: attention-cnn)")
        logits, attn = output.logits.float(), output.aux["attention"].float()
        cls = self.classification(logits, batch.targets)
        sparsity = self.sparsity(attn)
        # Memory is read and written only on training batches (eval batches are other samples).
        training = self.training and attn.requires_grad
        consistency = attn.new_zeros(())
        if training:
            correct = self.correct(logits.detach(), batch.targets)
            if self.consistency_weight > 0 or self.memory is not None:
                consistency = self.consistency(attn, batch.index, correct)
            self.remember(attn, batch.index)
            with torch.no_grad():
                self._stats["entropy"] = normalized_entropy_term(attn).mean()
                self._stats["active_fraction"] = (attn > 0.5).float().mean()
                self._stats["mean"] = attn.mean()
        total = cls + self.sparsity_weight * sparsity + self.consistency_weight * consistency
        return LossOutput(
            total=total,
            raw={"cls": cls.detach(), "sparsity": sparsity.detach(), "consistency": consistency.detach()},
            weighted={
                "cls": cls.detach(),
                "sparsity": (self.sparsity_weight * sparsity).detach(),
                "consistency": (self.consistency_weight * consistency).detach(),
            },
        )

    def scalars(self) -> dict[str, float]:
        """``attn/<metric>`` of the last training batch (host sync only when the loop logs)."""
        return {f"attn/{k}": float(v) for k, v in self._stats.items()}


def self_corrective_attention(
    bundle: DataBundle,
    sparsity_kind: str = "entropy",
    sparsity_weight: float = 0.001,
    sparsity_scale: float = 1.0,
    consistency_weight: float = 0.0,
    label_smoothing: float = 0.0,
    class_weights: Any = None,
) -> SelfCorrectiveAttentionLoss:
    """Loss factory (``loss.name: self-corrective-attention``).

    ``sparsity_kind``: entropy | l1 | none; ``sparsity_weight`` multiplies the term;
    ``sparsity_scale`` divides it (the original story used 1000, which with weight 0.001 makes the
    term invisible); ``consistency_weight`` weighs the memory term (0 disables it).
    """
    return SelfCorrectiveAttentionLoss(
        num_samples=len(bundle.train),
        multilabel=bundle.task == "multilabel",
        sparsity_kind=sparsity_kind,
        sparsity_weight=sparsity_weight,
        sparsity_scale=sparsity_scale,
        consistency_weight=consistency_weight,
        label_smoothing=label_smoothing,
        class_weights=resolve_class_weights(bundle, class_weights),
    )


__all__ = [
    "AttentionCNN", "SelfCorrectiveAttentionLoss", "attention_cnn", "self_corrective_attention",
    "normalized_entropy_term", "normalized_l1_term", "l1_term",
    "SPARSITY_KINDS",
]
