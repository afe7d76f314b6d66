"""Clip the global gradient norm.

What it changes
---------------
``training.grad_clip`` set to 1.0, or, when the finding reports gradient norms, to twice their
median (so ordinary steps pass untouched and only the spikes are cut), never above the current
clip.  Foreign configs: ``max_grad_norm`` (Hugging Face), ``gradient_clip_val`` (Lightning),
``grad_clip``, ``clip_grad_norm``; otherwise advice with the line of code to add.

When to use
-----------
``batch-loss-variance``, ``loss-divergence``, ``nonfinite-loss``, ``accuracy-oscillation``:
occasional huge gradients knock the weights out of a good region.

Why
---
Clipping the global norm bounds the size of one update without changing its direction; steps
with ordinary gradients are unaffected.  1.0 is the common default (Hugging Face, nanoGPT).

Example diff
------------
::

     training:
       epochs: 20
    -  grad_clip: null
    +  grad_clip: 1.0
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, evidence_number, sig

DEFAULT_CLIP = 1.0


class GradClip(Recipe):
    __doc__ = __doc__

    id = "grad-clip"
    resolves = ("batch-loss-variance", "loss-divergence", "nonfinite-loss", "accuracy-oscillation")
    knobs = ("grad_clip",)
    evidence = ("grad_norm_median",)

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        target = DEFAULT_CLIP
        median = evidence_number(finding, "grad_norm_median")
        if median is not None and median > 0:
            target = sig(2 * median, 2)
            b.note(f"median gradient norm {median:.3g}: clip at 2x = {target:g}")
        current = b.get_float("grad_clip")
        if current is not None and 0 < current <= target:
            return self.skip(f"gradients are already clipped at {current:g}")
        b.set("grad_clip", target, f"bound each update's global gradient norm to {target:g}",
              advice=f"clip gradients before optimizer.step(): torch.nn.utils.clip_grad_norm_(model.parameters(), {target:g})")
        return self.finish(b, "nothing to change")
