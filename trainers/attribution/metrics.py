"""Attention quality as numbers: per-sample measures of pixel maps ``[B, H, W]`` (torch, any device).

Every function returns one value per sample (``NaN`` where the measure is undefined: a blank map
has no entropy), so callers can report per-sample figures and means over the defined ones.

- :func:`entropy`: Shannon entropy of the map normalised to sum 1, divided by ``log(H*W)``: 1 for a
  uniform (diffuse) map, 0 for a single pixel.  Comparable across resolutions.
- :func:`hoyer`: Hoyer's sparsity ``(sqrt(n) - |m|_1 / |m|_2) / (sqrt(n) - 1)``: 0 uniform, 1 one-hot.
- :func:`is_blank`: the map carries nothing (largest value <= ``tol``, or not finite): the "all
  black Grad-CAM" of an untrained or mis-loaded network whose ReLU'd class evidence is negative.
- :func:`agreement`: Pearson correlation of two maps brought to a common resolution (the coarser
  one, by area averaging): Pearson of the standardised maps, i.e. their mean product.
- :func:`pointing_game`: the map's maximum lies inside the object's box (Zhang et al. 2016); a
  blank map points nowhere and counts as a miss.
- :func:`energy_in_box`: share of the map's mass inside the box; a uniform map scores the box's
  share of the image (for ``digits-canvas`` 8x8 on 16x16: 0.25).

Boxes are ``[B, 4]`` ``(y0, x0, y1, x1)`` in input pixels, end exclusive.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

EPS = 1e-12
BLANK_TOL = 1e-8


def _flat(maps: torch.Tensor) -> torch.Tensor:
    return maps.float().flatten(1).clamp(min=0)


def is_blank(maps: torch.Tensor, tol: float = BLANK_TOL) -> torch.Tensor:
    """``[B]`` bool: largest value at most ``tol`` or any non-finite value."""
    flat = maps.float().flatten(1)
    return (flat.amax(dim=1) <= tol) | ~torch.isfinite(flat).all(dim=1)


def entropy(maps: torch.Tensor) -> torch.Tensor:
    """``[B]`` normalised entropy in [0, 1]; NaN for blank maps."""
    flat = _flat(maps)
    n = flat.shape[1]
    total = flat.sum(dim=1, keepdim=True)
    p = flat / (total + EPS)
    h = -(p * torch.log(p + EPS)).sum(dim=1) / math.log(max(n, 2))
    return torch.where(is_blank(maps), torch.full_like(h, float("nan")), h.clamp(0, 1))


def hoyer(maps: torch.Tensor) -> torch.Tensor:
    """``[B]`` Hoyer sparsity in [0, 1]; NaN for blank maps."""
    flat = _flat(maps)
    n = flat.shape[1]
    ratio = flat.sum(dim=1) / (flat.norm(dim=1) + EPS)
    s = (math.sqrt(n) - ratio) / (math.sqrt(n) - 1)
    return torch.where(is_blank(maps), torch.full_like(s, float("nan")), s.clamp(0, 1))


def common_resolution(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both maps at the coarser of their two resolutions (area averaging)."""
    size = min(a.shape[-2], b.shape[-2]), min(a.shape[-1], b.shape[-1])

    def pool(m: torch.Tensor) -> torch.Tensor:
        return m if tuple(m.shape[-2:]) == size else F.adaptive_avg_pool2d(m.float().unsqueeze(1), size).squeeze(1)

    return pool(a), pool(b)


def agreement(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[B]`` Pearson correlation of ``a`` and ``b`` at a common resolution; NaN if either is constant."""
    a, b = common_resolution(a, b)
    a, b = a.float().flatten(1), b.float().flatten(1)
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    den = a.norm(dim=1) * b.norm(dim=1)
    r = (a * b).sum(dim=1) / den.clamp(min=EPS)
    return torch.where(den > EPS, r, torch.full_like(r, float("nan")))


def box_mask(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, H, W]`` bool: inside each sample's box."""
    h, w = size
    boxes = boxes.long()
    ys = torch.arange(h, device=boxes.device).view(1, h, 1)
    xs = torch.arange(w, device=boxes.device).view(1, 1, w)
    y0, x0, y1, x1 = (boxes[:, i].view(-1, 1, 1) for i in range(4))
    return (ys >= y0) & (ys < y1) & (xs >= x0) & (xs < x1)


def pointing_game(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``[B]`` 1.0 when the map's maximum is inside the box, else 0.0 (a blank map is a miss)."""
    flat = maps.float().flatten(1)
    inside = box_mask(boxes.to(maps.device), tuple(maps.shape[-2:])).flatten(1)
    hit = inside.gather(1, flat.argmax(dim=1, keepdim=True)).squeeze(1).float()
    return torch.where(is_blank(maps), torch.zeros_like(hit), hit)


def energy_in_box(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``[B]`` share of the (non-negative) map's mass inside the box; NaN for blank maps."""
    flat = _flat(maps)
    inside = box_mask(boxes.to(maps.device), tuple(maps.shape[-2:])).flatten(1).float()
    share = (flat * inside).sum(dim=1) / (flat.sum(dim=1) + EPS)
    return torch.where(is_blank(maps), torch.full_like(share, float("nan")), share)


def nanmean(values: torch.Tensor) -> float:
    """Mean over the defined (finite) values; NaN when none is."""
    v = values.float()
    v = v[torch.isfinite(v)]
    return float(v.mean()) if v.numel() else float("nan")
