"""Learning-rate schedules as pure functions of the optimizer step (nanoGPT's ``get_lr``).

:func:`lr_at` returns the multiplier applied to the (scaled) base lr for the step about to be taken,
so the lr of any step can be recomputed from the config alone: resuming needs no scheduler state
beyond the step, and a test can check every shape without training.

Warmup (all schedules but one-cycle, which has its own): linear from ``1/warmup`` to 1 over
``warmup_steps`` if set, else ``warmup_ratio * total_steps`` if set, else
``warmup_epochs * steps_per_epoch``.  After warmup:

- ``constant``: 1.
- ``step``: ``gamma ** (epoch // step_epochs)``.
- ``cosine``: from 1 down to ``min_lr_ratio`` over the remaining steps.
- ``one-cycle``: cosine up from 1/25 to 1 over ``pct_start`` of training, then cosine down to
  ``max(min_lr_ratio, 4e-6)`` (torch's ``OneCycleLR`` defaults).
"""

from __future__ import annotations

import math
from typing import Any

SCHEDULES = ("constant", "step", "cosine", "one-cycle")


def warmup_steps(total_steps: int, steps_per_epoch: int, cfg: Any) -> int:
    if getattr(cfg, "warmup_steps", None) is not None:
        return int(cfg.warmup_steps)
    if getattr(cfg, "warmup_ratio", None) is not None:
        return int(round(cfg.warmup_ratio * total_steps))
    return int(round(cfg.warmup_epochs * steps_per_epoch))


def _cos(start: float, end: float, p: float) -> float:
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(p, 0.0), 1.0)))


def lr_at(step: int, total_steps: int, steps_per_epoch: int, cfg: Any) -> float:
    """The lr multiplier for 0-based optimizer step ``step`` of ``total_steps``."""
    total_steps = max(1, total_steps)
    if cfg.name == "one-cycle":
        up = max(1, int(cfg.pct_start * total_steps))
        if step < up:
            return _cos(1.0 / 25.0, 1.0, step / up)
        return _cos(1.0, max(cfg.min_lr_ratio, 4e-6), (step - up) / max(1, total_steps - up))
    warm = warmup_steps(total_steps, steps_per_epoch, cfg)
    if step < warm:
        return (step + 1) / warm
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "step":
        epoch = step // max(1, steps_per_epoch)
        return cfg.gamma ** (epoch // max(1, cfg.step_epochs))
    if cfg.name == "cosine":
        return _cos(1.0, cfg.min_lr_ratio, (step - warm) / max(1, total_steps - warm))
    raise ValueError(f"unknown schedule {cfg.name!r}")
