"""Finding the layer a map is computed on, and making any model usable by the attribution code.

- :func:`find_layer` resolves a dotted module name (``trunk``, ``features.3``, ``layer4.1.conv2``) and
  refuses a wrong one in one line that lists the model's layers.
- :func:`default_layer` picks the layer when none is named: the model's own ``gradcam_layer``
  attribute when it declares one (trainfix's ``attention-cnn`` and ``cnn`` do), else the last
  ``Conv2d``: the usual Grad-CAM choice, the deepest map that still has a spatial layout.
- :class:`LogitsOnly` wraps a model that returns a :class:`ModelOutput` so captum (which wants a
  tensor) can call it; the wrapped module is the same object, so hooks on its layers still fire.
- :func:`disable_inplace` turns off ``inplace=True`` on activations: guided backpropagation hooks
  the ReLUs' backward and autograd refuses hooks on a tensor modified in place.  The maths of the
  model is unchanged (only a copy is made where the activation used to overwrite its input).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainfix.errors import UsageError

_LISTED = 40


def layer_names(model: nn.Module) -> list[str]:
    """Every named submodule, in definition order (the root module excluded)."""
    return [name for name, _ in model.named_modules() if name]


def find_layer(model: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name``; a one-line :class:`UsageError` listing the layers otherwise."""
    modules = dict(model.named_modules())
    if name and name in modules:
        return modules[name]
    names = layer_names(model)
    shown = ", ".join(names[:_LISTED]) + (f", ... ({len(names) - _LISTED} more)" if len(names) > _LISTED else "")
    raise UsageError(f"no layer {name!r} in {type(model).__name__}; its layers: {shown}",
                     "pass --layer with one of these names (a conv block's output is the usual Grad-CAM layer)")


def default_layer(model: nn.Module) -> str:
    """The layer Grad-CAM uses when none is named (see the module docstring)."""
    declared = getattr(model, "gradcam_layer", None)
    if isinstance(declared, str) and declared in dict(model.named_modules()):
        return declared
    convs = [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise UsageError(f"{type(model).__name__} has no Conv2d layer to compute Grad-CAM on",
                         "pass --layer NAME of a layer whose output is [B, C, H, W]")
    return convs[-1]


def logits_of(output: Any) -> torch.Tensor:
    """Logits from a model's output (a tensor, or trainfix's ``ModelOutput``)."""
    return output.logits if hasattr(output, "logits") and torch.is_tensor(output.logits) else output


class LogitsOnly(nn.Module):
    """``model`` whose forward returns the logits tensor only (what captum calls)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return logits_of(self.model(x))


def disable_inplace(model: nn.Module) -> nn.Module:
    """Set ``inplace=False`` on every activation module that has the flag; returns ``model``."""
    for module in model.modules():
        if isinstance(getattr(module, "inplace", None), bool) and not isinstance(module, nn.Dropout):
            module.inplace = False
    return model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
