"""Grad-CAM and Guided Backprop that a loss can train through (``create_graph=True``).

captum's attributions are for looking at a model: they detach their result.  ATCON's consistency
loss compares two attribution maps and backpropagates the difference into the weights, so the maps
must stay in the autograd graph.  These two functions compute the same quantities as captum's
``LayerGradCam`` and ``GuidedBackprop`` (``tests/test_attribution.py`` checks both equalities) and
keep the graph when asked.

Grad-CAM (Selvaraju et al. 2017) on a layer with activations ``A [B, K, h, w]`` for class ``c``:
``alpha_k = mean_{ij} d y_c / d A_kij`` and ``cam = sum_k alpha_k A_k`` (``relu`` keeps the part
that speaks *for* ``c``).  The score of every sample is summed before differentiating, which gives
each sample its own gradient only when samples do not interact: BatchNorm must be in eval mode
(running statistics), as it is at inference and on ATCON's unlabelled steps.

Guided Backprop (Springenberg et al. 2015): the input gradient with every ReLU's backward replaced
by ``relu(grad) * (input > 0)``, so only positive evidence through active units flows back.  Here
each ``nn.ReLU`` is swapped for a custom autograd function for the duration of the call; its
backward is built from differentiable operations, so the map's dependence on the weights (through
the chain of weight matrices) survives ``create_graph=True``.  Functional ``F.relu`` calls inside
``forward`` are not guided (as in captum, which also hooks modules only).
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import nn

from trainfix.trainers.attribution.layers import disable_inplace, logits_of


def _select(logits: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    if target is None:
        target = logits.detach().argmax(dim=1)
    return target.to(logits.device).long().view(-1)


def grad_cam(model: nn.Module, layer: nn.Module, inputs: torch.Tensor, target: torch.Tensor | None = None,
             create_graph: bool = False, relu: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(cam [B, h, w], logits [B, C], target [B])`` at ``layer``'s resolution.

    ``target`` defaults to the predicted class.  With ``create_graph`` the map is differentiable
    w.r.t. the weights (second-order autograd); without it the map is detached.
    """
    disable_inplace(model)  # an in-place ReLU after the layer would overwrite the captured activation
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.enable_grad():
            if not inputs.requires_grad and not create_graph:
                inputs = inputs.detach().requires_grad_(True)  # a graph even for a frozen model
            logits = logits_of(model(inputs))
    finally:
        handle.remove()
    if not captured or not torch.is_tensor(captured[-1]) or captured[-1].dim() != 4:
        shape = tuple(captured[-1].shape) if captured and torch.is_tensor(captured[-1]) else None
        raise ValueError(f"Grad-CAM needs a layer whose output is [B, C, H, W]; got {shape}")
    acts = captured[-1]
    target = _select(logits, target)
    score = logits.gather(1, target.view(-1, 1)).sum()
    (grads,) = torch.autograd.grad(score, acts, create_graph=create_graph, retain_graph=create_graph)
    cam = (grads.mean(dim=(2, 3), keepdim=True) * acts).sum(dim=1)
    if relu:
        cam = torch.relu(cam)
    if not create_graph:
        cam, logits = cam.detach(), logits.detach()
    return cam, logits, target


class _GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients through active units."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


@contextlib.contextmanager
def guided_relus(model: nn.Module) -> Iterator[None]:
    """Within the block, every ``nn.ReLU`` of ``model`` runs the guided ReLU."""
    patched = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    for m in patched:
        m.forward = _GuidedReLU.apply  # instance attribute shadows the class's forward
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def guided_backprop(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor | None = None,
                    create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(gradient [B, C, H, W], logits, target)``: the guided input gradient of the target score."""
    disable_inplace(model)
    x = inputs.detach().requires_grad_(True)
    with guided_relus(model), torch.enable_grad():
        logits = logits_of(model(x))
        target = _select(logits, target)
        score = logits.gather(1, target.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(score, x, create_graph=create_graph, retain_graph=create_graph)
    if not create_graph:
        grad, logits = grad.detach(), logits.detach()
    return grad, logits, target


def saliency(gradient: torch.Tensor) -> torch.Tensor:
    """A pixel map ``[B, H, W]`` from an input-shaped attribution: ``sum_c |g_c|`` over channels."""
    return gradient.abs().sum(dim=1)


__all__ = ["grad_cam", "guided_backprop", "guided_relus", "saliency"]
