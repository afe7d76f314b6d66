"""Load weights into a model so that a key bug can never pass silently.

``model.load_state_dict(sd, strict=False)`` with keys that carry ``module.`` / ``_orig_mod.`` /
``model.`` loads nothing and says nothing (seed 004's Grad-CAM broke that way).  This helper strips
the known wrappers against the model's own keys, then loads *strictly*: any key still missing,
unexpected or of the wrong shape raises :class:`~trainfix.errors.CheckpointError` listing them.

Usage::

    from trainfix.trainers.robust_load import load_state_dict_robust
    report = load_state_dict_robust(model, "checkpoints/best.pt")   # or a state_dict / container
    print(report.fill_share)  # 1.0
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from trainfix.weights import (
    KeyReport,
    compare_to_model,
    load_checkpoint,
    locate_state_dict,
    strip_prefixes,
)
from trainfix.errors import CheckpointError

_MAX_LISTED = 20


def _listing(label: str, keys: list[Any]) -> list[str]:
    lines = [f"{label}: {k}" for k in keys[:_MAX_LISTED]]
    if len(keys) > _MAX_LISTED:
        lines.append(f"{label}: ... and {len(keys) - _MAX_LISTED} more")
    return lines


def load_state_dict_robust(model: Any, path_or_state_dict: str | Path | Mapping[str, Any]) -> KeyReport:
    """Strip wrapper prefixes, load strictly into ``model``, return the :class:`KeyReport`.

    ``path_or_state_dict``: a checkpoint path (read with ``weights_only=True``), a state_dict, or a
    training container holding one (``{"model_state_dict": ...}``, Lightning ``{"state_dict": ...}``).
    Raises :class:`CheckpointError` with the exact missing / unexpected / shape-mismatched keys;
    the model is left untouched then.
    """
    if isinstance(path_or_state_dict, (str, Path)):
        obj = load_checkpoint(path_or_state_dict).obj
        source = Path(path_or_state_dict).name
    elif isinstance(path_or_state_dict, Mapping):
        obj = path_or_state_dict
        source = "the state_dict"
    else:
        raise TypeError(f"expected a path or a state_dict, got {type(path_or_state_dict).__name__}")
    state_dict = locate_state_dict(obj).state_dict
    expected = list(model.state_dict().keys())
    clean = strip_prefixes(state_dict, expected_keys=expected)
    report = compare_to_model(clean, model)
    report.prefixes = compare_to_model(state_dict, model).prefixes
    if not report.loads_strict:
        details = (_listing("missing", report.missing) + _listing("unexpected", report.unexpected)
                   + _listing("shape mismatch", [f"{k} checkpoint {list(a)} vs model {list(b)}"
                                                 for k, a, b in report.shape_mismatched]))
        raise CheckpointError(
            f"{source} does not fit the model: {len(report.missing)} missing, {len(report.unexpected)} "
            f"unexpected, {len(report.shape_mismatched)} shape-mismatched keys; a strict=False load "
            f"would fill {report.fill_share:.0%} of the parameters",
            "check that the model is built with the same config as the checkpoint "
            "(trainfix inspect CKPT --model ... lists the keys)",
            details=details,
        )
    model.load_state_dict(clean, strict=True)
    return report
