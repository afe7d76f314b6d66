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

from trainfix.fixes.base import Recipe
from trainfix.fixes.schedule_edits import add_warmup, current_warmup


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
