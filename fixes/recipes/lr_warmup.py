"""Add a learning-rate warmup when the run has none.

What it changes
---------------
``schedule.warmup_epochs`` set to 10% of the epochs, at least 1 and at most 5 (the seed story's
5 warmup epochs, shortened for short runs).  In a foreign config: ``warmup_epochs`` when it has
one, else ``warmup_ratio: 0.1`` (a Hugging Face ``TrainingArguments`` file has both
``warmup_ratio`` and ``warmup_steps``; ``warmup_steps`` is zeroed so the ratio takes effect),
else ``warmup_steps`` when the steps per epoch are known; otherwise advice.

When to use
-----------
``lr-miscaled`` when the lr was raised (with ``lr-sqrt-scaling``), ``loss-divergence`` and
``nonfinite-loss`` early in training, ``accuracy-oscillation`` in the first epochs.

Why
---
Adaptive optimizers start with poorly estimated second moments, so the first updates are the
largest and least informed; a linear ramp over the first few epochs lets a higher lr be used
safely (Goyal et al. 2017; Liu et al. 2020, "On the variance of the adaptive learning rate").

Example diff
------------
::

     schedule:
       name: cosine
    -  warmup_epochs: 0.0
    +  warmup_epochs: 2
"""

from __future__ import annotations

from trainfix.fixes.base import PatchBuilder, Recipe

RATIO = 0.1
MAX_EPOCHS = 5


def warmup_epochs_for(epochs: float | None) -> int:
    """10% of the run, between 1 and 5 epochs (5 when the length is unknown)."""
    if not epochs or epochs <= 0:
        return MAX_EPOCHS
    return int(min(MAX_EPOCHS, max(1, round(RATIO * epochs))))


def current_warmup(b: PatchBuilder) -> tuple[str, float] | None:
    """(knob, value) of a warmup already set to more than zero, or None."""
    for knob in ("warmup_epochs", "warmup_steps", "warmup_ratio"):
        if b.own and knob != "warmup_epochs":
            continue
        value = b.get_float(knob)
        if value is not None and value > 0:
            return knob, value
    return None


def add_warmup(b: PatchBuilder) -> bool:
    """Plan a warmup on ``b`` (no-op when one exists); returns whether anything was planned."""
    if current_warmup(b) is not None:
        return False
    epochs = b.get_float("epochs")
    n = warmup_epochs_for(epochs)
    reason = f"linear warmup over the first {n} epoch(s)"
    if b.own:
        b.set("warmup_epochs", n, reason)
        return True
    if b.has("warmup_epochs"):
        return b.set("warmup_epochs", n, reason)
    if b.has("warmup_ratio"):
        b.set("warmup_ratio", RATIO, f"linear warmup over the first {RATIO:.0%} of training")
        if b.has("warmup_steps"):
            b.set("warmup_steps", 0, "a positive warmup_steps overrides warmup_ratio")
        return True
    if b.has("warmup_steps"):
        b.advice(f"set warmup_steps to about {RATIO:.0%} of your total optimizer steps "
                 f"({n} epoch(s) x steps per epoch)")
        return True
    b.advice(f"your config has no warmup setting: add {n} warmup epoch(s) (linear ramp from ~0 to the lr) to your scheduler")
    return True


class LrWarmup(Recipe):
    __doc__ = __doc__

    id = "lr-warmup"
    resolves = ("lr-miscaled", "loss-divergence", "nonfinite-loss", "accuracy-oscillation")
    knobs = ("warmup_epochs", "warmup_ratio", "warmup_steps")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        existing = current_warmup(b)
        if existing is not None:
            return self.skip(f"the run already warms up ({existing[0]}: {existing[1]:g})")
        add_warmup(b)
        return self.finish(b, "nothing to change")
