"""ATCON: attention-consistency training on unlabelled images (Mirzazadeh et al., WACV 2023).

Turned on by ``training.mode: atcon`` (settings in the ``atcon`` section).  The loop's batches are
the supervised ones, drawn from the labelled pool (``bundle.train``); before each of them this module
runs the unlabelled steps that fall there, so that, step for step, an optimizer step is supervised
with probability ``p = alpha n_sup / (alpha n_sup + n_unsup)`` and an unlabelled ATCON step
otherwise (a run of Bernoulli(p) choices: before each supervised step a geometric number of
unlabelled ones, mean ``(1 - p) / p``).  Draws come from a generator seeded by ``(run.seed, step)``,
so a resumed run makes the same choices.  The loop's step counter, schedule and logging count
supervised steps; ``atcon/unlabelled_steps`` counts the others.

One unlabelled step on a batch ``x`` (pairing ``gb-mask``, the paper's main one):

1. the model goes to eval mode for the step: BatchNorm statistics frozen (and used: Grad-CAM per
   sample needs samples that do not interact), dropout off so both maps see the same network;
2. Guided Backprop of the predicted class ``c``; its pixel map ``g = sum_c |GB|``; a soft mask
   ``m = sigmoid(w (g - (mean(g) + std(g) / 2)) / std(g))`` with mask intensity ``w`` (8 in the
   paper's runs), i.e. on the *standardised* map.  The paper's code applies ``w`` to the raw map,
   whose scale is that of an input gradient (often 1e-3): the sigmoid then sits at 0.5 +- 0.01
   everywhere and masks nothing.  ``mask_scale: raw`` reproduces it;
3. the masked input keeps the masked-in pixels and fades the rest to the image's blank value
   (``b + m (x - b)``, ``b`` the sample's minimum; the paper multiplies the normalised image by
   ``m``, which fades to the dataset mean);
4. Grad-CAM of ``x`` and of the masked input for class ``c``, differentiable w.r.t. the weights
   (:func:`~trainfix.trainers.attribution.gradcam.grad_cam` with ``create_graph=True``);
5. loss ``= -weight * mean_i p_i(c) r_i``, stepped at ``lr_scale`` times the supervised lr (with Adam
   the update size hardly depends on ``weight``: its moments normalise the gradient's scale, so
   ``lr_scale`` is the knob that makes an unlabelled step smaller than a supervised one); ``r`` the Pearson correlation of the two maps and ``p(c)``
   the class probability (detached: it says how much to trust the sample's explanation; a gradient
   through it would let the loss move the model's confidence instead of its maps).  The paper's
   code sums over the batch; the mean keeps the loss scale independent of the batch size.

Pairing ``gradcam-mask`` swaps the roles: the mask comes from Grad-CAM (upsampled) and the compared
maps are Guided Backprop's, trained through our guided ReLU with ``create_graph=True``.

Pools: the labelled pool is ``bundle.train`` (``digits-canvas`` with ``labelled_per_class: k``
keeps k labels per class); the unlabelled pool (``atcon.unlabelled``) is ``unlabelled`` (the rest of
the training images, labels dropped), ``train`` (all training images, labelled ones included) or
``val`` (the validation images, transductively).

Devices: everything stays on the model's device; the step runs in fp32 (no autocast: second-order
gradients through Grad-CAM in half precision are fragile).  Under DDP the unlabelled step would
update each process's replica without an all-reduce, so ATCON runs on one process only.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainfix.errors import ConfigError
from trainfix.trainers.attribution.gradcam import grad_cam, guided_backprop, saliency
from trainfix.trainers.attribution.layers import default_layer, find_layer
from trainfix.trainers.attribution.maps import upsample

PAIRINGS = ("gb-mask", "gradcam-mask")


def soft_mask(pixel_map: torch.Tensor, intensity: float, scale: str = "standardised") -> torch.Tensor:
    """``[B, H, W]`` in (0, 1): ``sigmoid(w (g - (mean + std/2)) [/ std])`` per sample."""
    flat = pixel_map.flatten(1)
    mean, std = flat.mean(dim=1, keepdim=True), flat.std(dim=1, keepdim=True)
    z = flat - (mean + std / 2)
    if scale == "standardised":
        z = z / std.clamp(min=1e-12)
    return torch.sigmoid(intensity * z).view_as(pixel_map)


def apply_mask(inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Keep the masked-in pixels, fade the others to the sample's blank (minimum) value."""
    blank = inputs.flatten(1).amin(dim=1).view(-1, *([1] * (inputs.dim() - 1)))
    return blank + mask.unsqueeze(1) * (inputs - blank)


def pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[B]`` differentiable Pearson correlation of flattened maps (0 where either is constant)."""
    a, b = a.flatten(1), b.flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = torch.sqrt((a * a).sum(dim=1) * (b * b).sum(dim=1) + 1e-12)
    return (a * b).sum(dim=1) / den


def consistency_loss(model: torch.nn.Module, layer: torch.nn.Module, x: torch.Tensor, intensity: float = 8.0,
                     pairing: str = "gb-mask", mask_scale: str = "standardised") -> tuple[torch.Tensor, dict]:
    """ATCON's loss on one unlabelled batch (model already in the mode the caller wants)."""
    if pairing == "gb-mask":
        gb, logits0, c = guided_backprop(model, x)
        mask = soft_mask(saliency(gb), intensity, mask_scale)
        masked = apply_mask(x, mask)
        cam, logits, _ = grad_cam(model, layer, x, target=c, create_graph=True)
        cam_m, _, _ = grad_cam(model, layer, masked, target=c, create_graph=True)
        r = pearson(cam, cam_m)
    elif pairing == "gradcam-mask":
        cam, logits0, c = grad_cam(model, layer, x)
        mask = soft_mask(upsample(cam, tuple(x.shape[-2:])), intensity, mask_scale)
        masked = apply_mask(x, mask)
        g, logits, _ = guided_backprop(model, x, target=c, create_graph=True)
        g_m, _, _ = guided_backprop(model, masked, target=c, create_graph=True)
        r = pearson(saliency(g), saliency(g_m))
    else:
        raise ValueError(f"unknown ATCON pairing {pairing!r}")
    p = torch.softmax(logits.detach().float(), dim=1).gather(1, c.view(-1, 1)).squeeze(1)
    loss = -(p * r).mean()
    return loss, {"correlation": r.detach().mean(), "mask_mean": mask.detach().mean()}


class Atcon:
    """The unlabelled half of ATCON training (see the module docstring); a loop callback."""

    def __init__(self, cfg: Any, bundle: Any, model: torch.nn.Module, seed: int, world_size: int = 1):
        a = cfg.atcon
        if world_size > 1:
            raise ConfigError("training.mode: atcon runs on one process (its unlabelled steps are not all-reduced)",
                              "train ATCON without torchrun, or use training.mode: supervised")
        if a.pairing not in PAIRINGS:
            raise ConfigError(f"atcon.pairing: {a.pairing!r} is not one of {'|'.join(PAIRINGS)}", "use gb-mask")
        pool = {"unlabelled": getattr(bundle, "unlabelled", None), "train": bundle.train, "val": bundle.val}[a.unlabelled]
        if pool is None or len(pool) == 0:
            raise ConfigError(f"atcon.unlabelled: {a.unlabelled!r} but the dataset has no unlabelled images",
                              "set data.labelled_per_class (digits-canvas), or atcon.unlabelled: train|val")
        self.cfg, self.pool, self.seed = a, pool, seed
        self.layer_name = a.layer or default_layer(model)
        find_layer(model, self.layer_name)  # a wrong name fails before training starts
        self.batch_size = a.batch_size or cfg.training.batch_size
        n_sup, n_unsup = len(bundle.train), len(pool)
        self.p_supervised = a.alpha * n_sup / (a.alpha * n_sup + n_unsup)
        self.position, self.passes, self.done = 0, 0, 0
        self._order: list[int] | None = None
        self._losses: list[torch.Tensor] = []
        self._corr: list[torch.Tensor] = []

    # -- choices and data ----------------------------------------------------------------------
    def unlabelled_steps_before(self, step: int) -> int:
        """How many unlabelled steps precede supervised step ``step`` (geometric, mean (1-p)/p)."""
        if self.p_supervised >= 1.0:
            return 0
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 7 * step + 1)
        u = float(torch.rand((), generator=g))
        return int(math.floor(math.log(max(u, 1e-12)) / math.log(1.0 - self.p_supervised)))

    def next_inputs(self, device: torch.device) -> torch.Tensor:
        n = len(self.pool)
        if self._order is None or self.position >= n:
            if self._order is not None:
                self.passes, self.position = self.passes + 1, 0
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + 104_729 * (self.passes + 1))
            self._order = torch.randperm(n, generator=g).tolist()
        idx = self._order[self.position: self.position + self.batch_size]
        self.position += len(idx)
        return torch.stack([self.pool[i][0] for i in idx]).to(device)

    # -- the loop's hook -------------------------------------------------------------------------
    def before_step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int,
                    params: list, grad_clip: float | None, device: torch.device) -> None:
        """Run the unlabelled steps that fall before supervised step ``step`` (grads are zero here)."""
        k = self.unlabelled_steps_before(step)
        if k == 0:
            return
        layer = find_layer(model, self.layer_name)
        was_training = model.training
        model.eval()  # BatchNorm statistics frozen, dropout off (see the module docstring)
        lrs = [group["lr"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["lr"] = group["lr"] * self.cfg.lr_scale
        try:
            for _ in range(k):
                x = self.next_inputs(device)
                loss, stats = consistency_loss(model, layer, x, self.cfg.mask_intensity, self.cfg.pairing,
                                               self.cfg.mask_scale)
                (self.cfg.weight * loss).backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                self.done += 1
                self._losses.append(loss.detach())
                self._corr.append(stats["correlation"])
        finally:
            model.train(was_training)
            for group, lr in zip(optimizer.param_groups, lrs):
                group["lr"] = lr

    def scalars(self) -> dict[str, float]:
        """``loss/atcon`` (mean since the last logging step), the maps' correlation, step counts."""
        out = {"atcon/unlabelled_steps": float(self.done), "atcon/p_supervised": self.p_supervised}
        if self._losses:
            out["loss/atcon"] = float(torch.stack(self._losses).mean())
            out["atcon/correlation"] = float(torch.stack(self._corr).mean())
        self._losses, self._corr = [], []
        return out

    def state_dict(self) -> dict:
        return {"position": self.position, "passes": self.passes, "done": self.done}

    def load_state_dict(self, state: dict) -> None:
        self.position, self.passes, self.done = state["position"], state["passes"], state["done"]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + 104_729 * (self.passes + 1))
        self._order = torch.randperm(len(self.pool), generator=g).tolist()
