"""Map metrics of a batch as per-sample records and as the ``attn/*`` scalars the trainer logs.

:func:`measure` turns a :class:`~.maps.Maps` (and, when the object's location is known, its
boxes) into per-sample numbers; :func:`summarise` averages them into the canonical tags:

==============================  ==============================================================
``attn/gradcam_entropy``        normalised entropy of Grad-CAM (1 diffuse, 0 one pixel)
``attn/gradcam_hoyer``          Hoyer sparsity of Grad-CAM (0 uniform, 1 one-hot)
``attn/gradcam_blank_share``    share of samples whose Grad-CAM is all zero
``attn/gradcam_peak``           mean largest Grad-CAM value (model units; 0 when all blank)
``attn/guided_entropy``         ... of Guided Backprop
``attn/guided_hoyer``
``attn/ig_entropy``             ... of Integrated Gradients (when computed)
``attn/ig_hoyer``
``attn/gradcam_guided_agreement``  Pearson of Grad-CAM and Guided Backprop at Grad-CAM's resolution
``attn/pointing_game``          Grad-CAM's maximum inside the object's box (known locations only)
``attn/energy_in_box``          Grad-CAM's mass inside the box (chance: the box's area share)
``attn/guided_pointing_game``   the same for Guided Backprop / IG (``ig_`` when computed)
``attn/guided_energy_in_box``
==============================  ==============================================================

Entropy, Hoyer and agreement are means over the samples where they are defined (not blank).
"""

from __future__ import annotations

from typing import Any

import torch

from trainfix.trainers.attribution import metrics as M
from trainfix.trainers.attribution.maps import Maps


def measure(maps: Maps, boxes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-sample metrics ``name -> [B]`` (on the maps' device)."""
    out: dict[str, torch.Tensor] = {
        "gradcam_entropy": M.entropy(maps.gradcam_raw),
        "gradcam_hoyer": M.hoyer(maps.gradcam_raw),
        "gradcam_blank": M.is_blank(maps.gradcam_raw).float(),
        "gradcam_peak": maps.gradcam_raw.flatten(1).amax(dim=1).float(),
        "guided_entropy": M.entropy(maps.guided),
        "guided_hoyer": M.hoyer(maps.guided),
        "gradcam_guided_agreement": M.agreement(maps.gradcam_raw, maps.guided),
        "confidence": maps.probs.gather(1, maps.target.view(-1, 1)).squeeze(1),
    }
    if maps.ig is not None:
        out["ig_entropy"] = M.entropy(maps.ig)
        out["ig_hoyer"] = M.hoyer(maps.ig)
    if boxes is not None:
        boxes = boxes.to(maps.gradcam.device)
        out["pointing_game"] = M.pointing_game(maps.gradcam, boxes)
        out["energy_in_box"] = M.energy_in_box(maps.gradcam, boxes)
        out["guided_pointing_game"] = M.pointing_game(maps.guided, boxes)
        out["guided_energy_in_box"] = M.energy_in_box(maps.guided, boxes)
        if maps.ig is not None:
            out["ig_pointing_game"] = M.pointing_game(maps.ig, boxes)
            out["ig_energy_in_box"] = M.energy_in_box(maps.ig, boxes)
    return out


def summarise(per_sample: dict[str, torch.Tensor]) -> dict[str, float]:
    """``attn/<metric>`` means (blank share under ``attn/gradcam_blank_share``)."""
    scalars: dict[str, float] = {}
    for name, values in per_sample.items():
        if name == "confidence":
            continue
        tag = "attn/gradcam_blank_share" if name == "gradcam_blank" else f"attn/{name}"
        scalars[tag] = M.nanmean(values) if name != "gradcam_blank" else float(values.float().mean())
    return scalars


def records(per_sample: dict[str, torch.Tensor], extra: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One JSON-ready dict per sample (NaN as None)."""
    host = {k: v.detach().float().cpu().tolist() for k, v in per_sample.items()}  # one transfer per metric
    n = len(next(iter(host.values()))) if host else 0
    rows = []
    for i in range(n):
        row = {k: (None if v[i] != v[i] else round(v[i], 6)) for k, v in host.items()}
        if extra:
            row.update({k: v[i] for k, v in extra.items()})
        rows.append(row)
    return rows
