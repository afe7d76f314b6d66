"""Dual-stream multiple-instance learning (the "hard selection and erratic batch losses" story).

Data (:func:`digits_bags`): bags of digits images in the style of Ilse, Tomczak & Welling's
MNIST-bags (ICML 2018): each bag holds ``round(N(mean_bag_length, std_bag_length))`` instances
(clipped to [min_bag_length, max_bag_length]) drawn at random from one split of digits; a bag is
positive when it holds at least one ``target_digit``.  Training bags use only training images and
validation bags only validation images.  Bags have different lengths, so :func:`collate_bags` pads
them (with NaN) and returns a :class:`Batch` whose ``extra['mask']`` marks real instances.

Model (:func:`mil_dual_stream`), after DSMIL (Li, Li & Eliceiri, CVPR 2021):

- instance encoder: a small CNN, one embedding ``h_i`` per instance;
- stream 1, critical instance: an instance classifier gives scores ``c_i`` (2 logits each); the
  critical instance is selected by its positive-class score, ``selection: hard`` (arg-max, as in
  DSMIL's max-pooling stream: the gradient reaches only the winning instance and the winner can
  switch from one step to the next) or ``soft`` (softmax of the scores divided by a temperature,
  differentiable for every instance);
- stream 2, attention aggregator: each instance's attention is the softmax of the similarity of its
  query to the critical instance's query (DSMIL's distance-to-critical attention); the bag embedding
  is the attention-weighted sum of instance values, classified by a linear layer;
- fusion: the mean of both streams' bag logits.

The temperature anneals linearly from ``temperature_start`` to ``temperature_end`` over the run
(``on_epoch_start`` returns ``{'mil/temperature': t}``).  Evaluation uses the current temperature,
the one the model was trained at, rather than the final one as the original story did: evaluating
an epoch-0 model at the final temperature measures a model that was never trained that way.

Loss (:func:`mil_loss`): bag cross-entropy with ``label_smoothing``, plus two regularisers:

- ``entropy_weight``: ``-mean H(attention)``, i.e. a reward for HIGH attention entropy (diverse
  attention), as the story intends.  Note that for "does the bag hold a target digit" the ideal
  attention is peaked on the positives, so keep this weight small;
- ``confidence_weight``: ``mean over positive bags of 1 - (max_i p_i - min_i p_i)`` where ``p_i`` is
  each instance's positive-class probability.  The story's version, ``-mean(max c - min c)`` over
  raw scores and over *all* bags, is unbounded below (scaling the instance classifier lowers it
  forever) and in negative bags, where every instance is negative, it rewards a separation that
  should not exist.  Ours is bounded in [0, 1] and applied only where a separation is correct.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainfix.errors import ConfigError

from .base import Batch, DataBundle, LossOutput, ModelOutput
from .datasets import digits

EPS = 1e-10


class DigitBags(torch.utils.data.Dataset):
    """Bags as index lists into one image tensor; yields ``(bag [n, C, H, W], label, index)``."""

    def __init__(self, images: torch.Tensor, bags: list[np.ndarray], labels: torch.Tensor):
        self.images, self.bags, self.labels = images, bags, labels

    def __len__(self) -> int:
        return len(self.bags)

    def __getitem__(self, i: int):
        return self.images[torch.from_numpy(self.bags[i])], self.labels[i], i


def make_bags(
    digit_labels: np.ndarray, num_bags: int, target_digit: int, mean_len: float, std_len: float,
    min_len: int, max_len: int, rng: np.random.Generator,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Random bags of instance indices and their labels (1 when a bag holds ``target_digit``)."""
    lengths = np.clip(np.rint(rng.normal(mean_len, std_len, size=num_bags)), min_len, max_len).astype(int)
    bags = [rng.choice(len(digit_labels), size=n, replace=False) for n in lengths]
    labels = np.array([int((digit_labels[b] == target_digit).any()) for b in bags], dtype=np.int64)
    return bags, labels


def collate_bags(items: list) -> Batch:
    """Pad bags to the longest one with NaN; ``extra['mask']`` is True for real instances."""
    bags, labels, index = zip(*items)
    n_max = max(b.shape[0] for b in bags)
    padded = bags[0].new_full((len(bags), n_max, *bags[0].shape[1:]), float("nan"))
    mask = torch.zeros(len(bags), n_max, dtype=torch.bool)
    for i, b in enumerate(bags):
        padded[i, : b.shape[0]] = b
        mask[i, : b.shape[0]] = True
    return Batch(inputs=padded, targets=torch.stack([torch.as_tensor(y) for y in labels]).long(),
                 index=torch.as_tensor(index), extra={"mask": mask})


def digits_bags(
    seed: int,
    target_digit: int = 9,
    mean_bag_length: float = 10.0,
    std_bag_length: float = 2.0,
    min_bag_length: int = 2,
    max_bag_length: int = 20,
    num_train_bags: int = 200,
    num_val_bags: int = 100,
    image_size: int = 8,
    val_fraction: float = 0.25,
) -> DataBundle:
    """Bags of digits (``task: binary-bag``), positive when a bag holds ``target_digit``."""
    if not 0 <= int(target_digit) <= 9:
        raise ConfigError(f"data.target_digit: {target_digit} is not a digit", "use 0..9")
    if not 1 <= min_bag_length <= max_bag_length:
        raise ConfigError("data.min_bag_length/max_bag_length: need 1 <= min <= max", "e.g. 2 and 20")
    base = digits(seed, image_size=image_size, val_fraction=val_fraction)
    rng = np.random.default_rng(seed + 1)
    args = (int(target_digit), float(mean_bag_length), float(std_bag_length), int(min_bag_length), int(max_bag_length), rng)
    tr_bags, tr_y = make_bags(base.train.targets.numpy(), int(num_train_bags), *args)
    va_bags, va_y = make_bags(base.val.targets.numpy(), int(num_val_bags), *args)
    lengths = [len(b) for b in tr_bags]
    return DataBundle(
        train=DigitBags(base.train.inputs, tr_bags, torch.from_numpy(tr_y)),
        val=DigitBags(base.val.inputs, va_bags, torch.from_numpy(va_y)),
        num_classes=2,
        class_names=["negative", "positive"],
        task="binary-bag",
        input_shape=base.input_shape,
        collate_fn=collate_bags,
        train_targets=tr_y.tolist(),
        info={
            "dataset": "digits-bags",
            "target_digit": int(target_digit),
            "train_bags": len(tr_bags),
            "val_bags": len(va_bags),
            "train_positive_fraction": float(tr_y.mean()),
            "val_positive_fraction": float(va_y.mean()),
            "mean_bag_length": float(np.mean(lengths)),
        },
    )


def linear_temperature(epoch: int, num_epochs: int, start: float, end: float) -> float:
    """Linear from ``start`` at epoch 0 to ``end`` at the last epoch (``end`` for one-epoch runs)."""
    if num_epochs <= 1:
        return float(end)
    progress = min(max(epoch / (num_epochs - 1), 0.0), 1.0)
    return float(start + (end - start) * progress)


class DualStreamMIL(nn.Module):
    """Instance encoder + critical-instance stream + attention stream, fused (see module doc)."""

    def __init__(self, in_channels: int, hidden: int = 64, selection: str = "hard",
                 temperature_start: float = 1.0, temperature_end: float = 1.0, dropout: float = 0.0):
        super().__init__()
        if selection not in ("hard", "soft"):
            raise ConfigError(f"model.selection: {selection!r} is not hard|soft", "use 'soft' for stable training")
        if temperature_start <= 0 or temperature_end <= 0:
            raise ConfigError("model.temperature_start/temperature_end must be > 0", "e.g. 10.0 and 1.0")
        self.selection = selection
        self.temperature_start, self.temperature_end = float(temperature_start), float(temperature_end)
        self.temperature = float(temperature_start)
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Linear(128, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        )
        self.instance_classifier = nn.Linear(hidden, 2)
        self.query = nn.Linear(hidden, hidden // 2)
        self.value = nn.Linear(hidden, hidden)
        self.bag_classifier = nn.Linear(hidden, 2)
        self.scale = (hidden // 2) ** -0.5

    def on_epoch_start(self, epoch: int, num_epochs: int) -> dict[str, float]:
        self.temperature = linear_temperature(epoch, num_epochs, self.temperature_start, self.temperature_end)
        return {"mil/temperature": self.temperature}

    def forward(self, bags: torch.Tensor, mask: torch.Tensor | None = None) -> ModelOutput:
        """``bags``: [B, N, C, H, W], padded instances NaN (or given by ``mask`` [B, N])."""
        if mask is None:
            mask = ~torch.isnan(bags.flatten(2)).any(dim=2)
        mask = mask.to(bags.device)
        x = torch.nan_to_num(bags, nan=0.0)
        b, n = x.shape[:2]
        h = self.encoder(x.flatten(0, 1)).view(b, n, -1)  # [B, N, D]
        scores = self.instance_classifier(h)  # [B, N, 2]
        pos = scores[..., 1] - scores[..., 0]  # positive-class evidence per instance
        neg_inf = torch.finfo(pos.dtype).min
        pos_masked = pos.masked_fill(~mask, neg_inf)
        if self.selection == "hard":
            sel = F.one_hot(pos_masked.argmax(dim=1), n).to(h.dtype)
        else:
            sel = torch.softmax(pos_masked / self.temperature, dim=1)
        stream1 = (sel.unsqueeze(-1) * scores).sum(dim=1)  # [B, 2]
        critical = (sel.unsqueeze(-1) * h).sum(dim=1)  # [B, D]
        q, q_crit = self.query(h), self.query(critical)
        sim = (q * q_crit.unsqueeze(1)).sum(-1) * self.scale
        attn = torch.softmax(sim.masked_fill(~mask, neg_inf), dim=1)  # [B, N]
        bag_embedding = (attn.unsqueeze(-1) * self.value(h)).sum(dim=1)
        stream2 = self.bag_classifier(bag_embedding)
        logits = 0.5 * (stream1 + stream2)
        return ModelOutput(logits=logits, aux={
            "selection_weights": sel, "attention_weights": attn, "instance_scores": pos,
            "instance_logits": scores, "mask": mask,
        })


def mil_dual_stream(bundle: DataBundle, hidden: int = 64, selection: str = "hard", temperature_start: float = 1.0,
                    temperature_end: float = 1.0, dropout: float = 0.0) -> DualStreamMIL:
    """Model factory (``model.name: mil-dual-stream``)."""
    in_channels = bundle.input_shape[0] if bundle.input_shape else 1
    return DualStreamMIL(in_channels, hidden=hidden, selection=selection, temperature_start=temperature_start,
                         temperature_end=temperature_end, dropout=dropout)


def attention_entropy(attn: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-bag entropy of the attention over its real instances."""
    return -(attn * torch.log(attn + EPS) * mask).sum(dim=1)


def selection_confidence_gap(instance_logits: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``1 - (max p - min p)`` per positive bag (``p`` = instance positive probability); 0-dim mean.

    Zero when there is no positive bag in the batch.
    """
    p = torch.softmax(instance_logits.float(), dim=-1)[..., 1]
    p_max = p.masked_fill(~mask, 0.0).max(dim=1).values
    p_min = p.masked_fill(~mask, 1.0).min(dim=1).values
    gap = 1.0 - (p_max - p_min)
    positive = (targets == 1).float()
    return (gap * positive).sum() / positive.sum().clamp_min(1.0)


class MILLoss(nn.Module):
    """Bag cross-entropy + attention-entropy and selection-confidence regularisers."""

    def __init__(self, label_smoothing: float = 0.0, entropy_weight: float = 0.0, confidence_weight: float = 0.0,
                 class_weights: torch.Tensor | None = None):
        super().__init__()
        self.label_smoothing = float(label_smoothing)
        self.entropy_weight = float(entropy_weight)
        self.confidence_weight = float(confidence_weight)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self._stats: dict[str, torch.Tensor] = {}

    def forward(self, output: ModelOutput, batch: Batch) -> LossOutput:
        logits = output.logits.float() if isinstance(output, ModelOutput) else output.float()
        cls = F.cross_entropy(logits, batch.targets.long(), weight=self.class_weights,
                              label_smoothing=self.label_smoothing)
        raw = {"cls": cls.detach()}
        weighted = {"cls": cls.detach()}
        total = cls
        if isinstance(output, ModelOutput) and "attention_weights" in output.aux:
            aux = output.aux
            mask = aux["mask"].to(logits.device)
            entropy = attention_entropy(aux["attention_weights"].float(), mask).mean()
            entropy_term = -entropy  # minimising -H rewards high entropy
            confidence = selection_confidence_gap(aux["instance_logits"], mask, batch.targets)
            total = total + self.entropy_weight * entropy_term + self.confidence_weight * confidence
            raw.update(entropy=entropy_term.detach(), confidence=confidence.detach())
            weighted.update(entropy=(self.entropy_weight * entropy_term).detach(),
                            confidence=(self.confidence_weight * confidence).detach())
            if self.training and logits.requires_grad:
                with torch.no_grad():
                    n = mask.sum(dim=1).float()
                    self._stats = {
                        "entropy": entropy.detach(),
                        # 1.0 = uniform attention over the bag, 0 = all on one instance
                        "entropy_ratio": (attention_entropy(aux["attention_weights"].float(), mask)
                                          / torch.log(n).clamp_min(EPS)).mean(),
                        "selection_max": aux["selection_weights"].max(dim=1).values.float().mean(),
                    }
        return LossOutput(total=total, raw=raw, weighted=weighted)

    def scalars(self) -> dict[str, float]:
        return {f"attn/{k}": float(v) for k, v in self._stats.items()}


def mil_loss(bundle: DataBundle, label_smoothing: float = 0.0, entropy_weight: float = 0.0,
             confidence_weight: float = 0.0, class_weights: Any = None) -> MILLoss:
    """Loss factory (``loss.name: mil``)."""
    from .losses import resolve_class_weights

    return MILLoss(label_smoothing, entropy_weight, confidence_weight, resolve_class_weights(bundle, class_weights))
