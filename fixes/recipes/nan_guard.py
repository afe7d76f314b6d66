"""Survive a stray non-finite loss: skip that step, clip gradients, and say what to lower.

What it changes
---------------
``training.nonfinite_policy: skip`` (a NaN/Inf loss skips its optimizer step instead of poisoning
the weights; the trainer still stops after ``max_nonfinite_skips`` in a row) and
``training.grad_clip: 1.0`` when gradients are not clipped.  It also advises lowering the lr
(``lower-lr``) and, for fp16 runs, switching to bf16.  Foreign configs: ``nan_policy``/
``nonfinite_policy`` and the grad-clip keys when present; otherwise the code to add.

When to use
-----------
``nonfinite-loss``: the loss became NaN or Inf once or a few times.

Why
---
One non-finite loss back-propagates NaN into every weight and the run is lost.  Skipping the step
keeps the weights, clipping removes the usual cause (a gradient spike), and the advice names the
real cause when it keeps happening: an lr too high for the model, or fp16's narrow range.
Skipping alone would hide a persistent problem, hence the cap on consecutive skips.

Example diff
------------
::

     training:
    -  grad_clip: null
    -  nonfinite_policy: stop
    +  grad_clip: 1.0
    +  nonfinite_policy: skip
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe

CLIP = 1.0


class NanGuard(Recipe):
    __doc__ = __doc__

    id = "nan-guard"
    resolves = ("nonfinite-loss",)
    knobs = ("nonfinite_policy", "grad_clip", "precision")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if str(b.get("nonfinite_policy", "")).lower() != "skip":
            b.set("nonfinite_policy", "skip", "a NaN/Inf loss skips its step instead of poisoning the weights",
                  advice="skip the step when the loss is not finite: "
                         "if not torch.isfinite(loss): optimizer.zero_grad(set_to_none=True); continue")
        clip = b.get_float("grad_clip")
        if clip is None or clip <= 0 or clip > CLIP:
            b.set("grad_clip", CLIP, "bound gradient spikes, the usual cause of a non-finite loss",
                  advice=f"clip gradients: torch.nn.utils.clip_grad_norm_(model.parameters(), {CLIP:g})")
        if str(b.get("precision", "")).lower() in ("fp16", "16", "16-mixed", "float16"):
            b.advice("fp16 overflows above 65504: train in bf16 (same range as fp32) or fp32")
        if b.patch.edits or b.patch.advice:
            b.advice("if non-finite losses persist, lower the lr (trainfix apply --fix lower-lr)")
        return self.finish(b, "non-finite steps are already skipped and gradients clipped")
