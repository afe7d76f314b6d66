"""The ``attn/*`` scalars the trainer logs at each evaluation (``training.attention_eval``).

``auto`` measures models that declare the layer their Grad-CAM is computed on (a
``gradcam_layer`` attribute: trainfix's ``attention-cnn`` and ``cnn``) when the inputs are images;
``on`` also tries any other image model (its last ``Conv2d``); ``off`` never.  The first
``attention_samples`` validation samples are measured (Grad-CAM and Guided Backprop: two forward
and two backward passes; Integrated Gradients is left to ``trainfix attention``, it costs one pass
per integration step).  With boxes (``digits-canvas``) the localisation metrics are included.
Runs on the device the model is on; one host transfer per metric.
"""

from __future__ import annotations

from typing import Any

import torch

from trainfix.trainers.attribution.maps import compute_maps
from trainfix.trainers.attribution.summary import measure, summarise


def attention_capable(model: torch.nn.Module, bundle: Any, setting: str = "auto") -> bool:
    """Whether the trainer measures this model's maps (see the module docstring)."""
    if setting in ("off", False) or len(getattr(bundle, "input_shape", ()) or ()) != 3:
        return False
    if setting in ("on", True):
        return any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    return isinstance(getattr(model, "gradcam_layer", None), str)


def val_inputs(bundle: Any, n: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The first ``n`` validation inputs and their boxes (None when the dataset knows none)."""
    count = min(n, len(bundle.val))
    inputs = torch.stack([bundle.val[i][0] for i in range(count)])
    boxes = bundle.boxes.get("val") if getattr(bundle, "boxes", None) else None
    return inputs, (boxes[:count] if boxes is not None else None)


def evaluate_attention(model: torch.nn.Module, bundle: Any, max_samples: int = 128,
                       layer: str | None = None) -> dict[str, float]:
    """``attn/*`` means over the first ``max_samples`` validation samples."""
    inputs, boxes = val_inputs(bundle, max_samples)
    maps = compute_maps(model, inputs, layer=layer, ig_steps=0)
    return summarise(measure(maps, boxes))
