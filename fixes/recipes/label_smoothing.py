"""Smooth the classification targets (label smoothing 0.1).

What it changes
---------------
``loss.label_smoothing: 0.1``; foreign configs: ``label_smoothing`` or Hugging Face's
``label_smoothing_factor``; otherwise advice (``nn.CrossEntropyLoss(label_smoothing=0.1)``).

When to use
-----------
``batch-loss-variance`` (single batches with confidently wrong predictions dominate the loss),
``overfitting`` with over-confident outputs, the MIL story with its erratic bag losses.

Why
---
With one-hot targets the loss of a confidently wrong prediction is unbounded and one batch can
be hundreds of times another; a target of 0.9/0.1 bounds the per-sample loss and keeps logits
finite (Szegedy et al. 2016; Müller et al. 2019).  0.1 is the value used almost everywhere,
including the seed story.

Example diff
------------
::

     loss:
       name: cross-entropy
    -  label_smoothing: 0.0
    +  label_smoothing: 0.1
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe
from trainfix.trainers.config import component_accepts

SMOOTHING = 0.1


class LabelSmoothing(Recipe):
    __doc__ = __doc__

    id = "label-smoothing"
    resolves = ("batch-loss-variance", "overfitting", "accuracy-oscillation")
    knobs = ("label_smoothing",)

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if b.own and component_accepts(config, "loss", "label_smoothing") is False:
            return self.skip(f"loss '{b.section('loss').get('name')}' takes no label smoothing")
        current = b.get_float("label_smoothing")
        if current is not None and current >= SMOOTHING:
            return self.skip(f"labels are already smoothed ({current:g})")
        b.set("label_smoothing", SMOOTHING, "bound the loss of confidently wrong predictions",
              advice="use nn.CrossEntropyLoss(label_smoothing=0.1) for the classification loss")
        return self.finish(b, "nothing to change")
