"""Inference-time attribution maps through captum: Grad-CAM, Guided Backprop, Integrated Gradients.

:func:`compute_maps` returns every map of a batch at the input's resolution, as non-negative pixel
maps ``[B, H, W]`` ready for the metrics and the pictures:

- ``gradcam``: captum ``LayerGradCam`` on the named layer with ``relu_attributions=True``, upsampled
  bilinearly to the input size (``gradcam_raw`` keeps the layer's own resolution);
- ``guided``: captum ``GuidedBackprop``, ``sum_c |g_c|``;
- ``ig``: captum ``IntegratedGradients`` from a blank baseline (each sample's minimum value
  everywhere: the empty canvas of ``digits-canvas``, black for photographs) in ``ig_steps`` steps,
  ``sum_c |g_c|``.  Set ``ig_steps=0`` to skip it (the trainer's evaluation does: it costs
  ``ig_steps`` forward/backward passes).

The model is put in eval mode for the call (BatchNorm on running statistics, no dropout) and
restored afterwards; activations lose ``inplace`` (see :mod:`.layers`).  Everything stays on the
model's device; nothing is moved to the host here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from trainfix.trainers.attribution.layers import LogitsOnly, default_layer, disable_inplace, find_layer, model_device


@dataclass
class Maps:
    """One batch's maps, all ``[B, H, W]`` on the model's device (``gradcam_raw`` ``[B, h, w]``)."""

    inputs: torch.Tensor
    target: torch.Tensor  # class the maps explain (predicted unless given)
    probs: torch.Tensor  # softmax of the logits [B, C]
    layer: str
    gradcam_raw: torch.Tensor
    gradcam: torch.Tensor
    guided: torch.Tensor
    ig: torch.Tensor | None = None


def upsample(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, h, w]`` -> ``[B, H, W]`` bilinearly (identity when already that size)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)


def blank_baseline(inputs: torch.Tensor) -> torch.Tensor:
    """Each sample's minimum value everywhere: an image with nothing in it."""
    return inputs.flatten(1).amin(dim=1).view(-1, *([1] * (inputs.dim() - 1))).expand_as(inputs).contiguous()


def compute_maps(model: nn.Module, inputs: torch.Tensor, layer: str | None = None,
                 target: torch.Tensor | None = None, ig_steps: int = 32) -> Maps:
    """Grad-CAM, Guided Backprop and (unless ``ig_steps == 0``) IG maps of ``inputs`` (see module doc)."""
    from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam

    name = layer or default_layer(model)
    module = find_layer(model, name)
    disable_inplace(model)
    device = model_device(model)
    x = inputs.to(device)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="captum")  # "setting backward hooks on ReLU", per call
            forward = LogitsOnly(model)
            with torch.no_grad():
                probs = torch.softmax(forward(x).float(), dim=1)
            tgt = (probs.argmax(dim=1) if target is None else target.to(device).long()).view(-1)
            raw = LayerGradCam(forward, module).attribute(x, target=tgt, relu_attributions=True).detach()
            if raw.dim() != 4:
                raise ValueError(f"layer {name!r} gives {tuple(raw.shape)}; Grad-CAM needs an output [B, C, H, W]")
            raw = raw.sum(dim=1)  # [B, h, w]
            guided = GuidedBackprop(forward).attribute(x, target=tgt).detach().abs().sum(dim=1)
            ig = None
            if ig_steps > 0:
                ig = IntegratedGradients(forward).attribute(x, baselines=blank_baseline(x), target=tgt,
                                                            n_steps=ig_steps).detach().abs().sum(dim=1)
    finally:
        model.train(was_training)
    size = tuple(x.shape[-2:])
    return Maps(inputs=x.detach(), target=tgt, probs=probs, layer=name, gradcam_raw=raw,
                gradcam=upsample(raw, size), guided=guided, ig=ig)
