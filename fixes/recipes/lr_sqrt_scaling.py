"""Scale the learning rate with the square root of the global batch, and warm up.

What it changes
---------------
``optimizer.lr_scaling: sqrt`` and ``optimizer.reference_batch`` set to the run's *global* batch
(batch x accumulation x processes), so the effective lr is the base lr the user wrote at the batch
they train with, and grows or shrinks by ``sqrt(new/old)`` when the batch changes later.  Adds a
warmup (see ``lr-warmup``) when the run has none.  When the config does not scale the lr by batch
at all and the finding names the lr it expected, the lr is set to that.  In a foreign config the
matching keys are set (``lr_scaling``, ``reference_batch``, a recorded ``scaled_lr``); a rule
written in code becomes advice with the exact formula and value.

When to use
-----------
``lr-miscaled`` where a linear ``lr * batch/512`` rule applied at a small batch starved the model
(the seed story: 5e-4/512*16 = 1.6e-5).

Why
---
The linear rule is for SGD at large batches; Adam-family optimizers follow a square-root rule
(Malladi et al. 2022), and no rule extrapolates well over a 32x change of batch.  Choice of the
reference batch: the seed's fix, ``5e-4 * sqrt(global/16)``, is 5e-4 at its global batch of 16,
the ~5e-4 the story expects.  We generalise that choice: the base lr is taken as right at the
batch the run actually uses (the "512" came from a paper's setting the run does not have), which
gives the same 5e-4 for the seed and stays correct at any other global batch.  A warmup is added
because the lr rises by 30x at once.

Example diff
------------
::

     optimizer:
       name: adamw
       lr: 0.0005
    -  lr_scaling: linear
    -  reference_batch: 512
    +  lr_scaling: sqrt
    +  reference_batch: 16
     schedule:
    -  warmup_epochs: 0.0
    +  warmup_epochs: 2
"""

from __future__ import annotations

import math

from trainfix.fixes.base import PatchBuilder, Recipe, evidence_number, sig
from trainfix.fixes.schedule_edits import add_warmup

SEED_REFERENCE = 16


def global_batch(b: PatchBuilder) -> int | None:
    """batch x grad accumulation x world size, from the config (None when the batch is unknown)."""
    batch = b.get_float("batch_size")
    if not batch:
        return None
    accum = b.get_float("grad_accum", 1.0) or 1.0
    world = b.get_float("world_size", 1.0) or 1.0
    return int(batch * accum * world)


class LrSqrtScaling(Recipe):
    __doc__ = __doc__

    id = "lr-sqrt-scaling"
    resolves = ("lr-miscaled",)
    evidence = ("expected_lr",)
    knobs = ("lr_scaling", "reference_batch", "lr", "scaled_lr", "warmup_epochs")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        g = global_batch(b)
        ref = g or SEED_REFERENCE
        base = b.get_float("lr")
        rule = str(b.get("lr_scaling", "none") or "none").lower()
        if b.own:
            if rule == "sqrt" and b.get_float("reference_batch") == float(ref):
                return self.skip(f"the lr already follows the sqrt rule from the run's global batch {ref}")
            if rule in ("linear", "sqrt"):
                b.set("lr_scaling", "sqrt", "Adam-family optimizers scale with sqrt(batch), not linearly")
                b.set("reference_batch", ref, f"the base lr holds at the run's global batch {ref}")
                if base is not None:
                    b.note(f"effective lr: {base:g} at global batch {ref} (was "
                           f"{self._old_effective(b, base, rule, g):.3g})")
                    if b.get("scaled_lr") is not None:
                        b.set("scaled_lr", sig(base), "the recorded effective lr, as the trainer will record it")
            else:
                expected = evidence_number(finding, "expected_lr")
                if expected is None or base is None:
                    return self.skip("the lr is not scaled by batch in this config (lr_scaling: none); "
                                     "set optimizer.lr yourself or use lower-lr")
                b.set("lr", sig(expected), "the lr the finding expected for this optimizer and batch")
            add_warmup(b)
            return self.finish(b, "nothing to change")
        # foreign config
        formula = (f"lr = base_lr * sqrt(global_batch / {ref})" if g else
                   "lr = base_lr * sqrt(global_batch / reference_batch), with the reference = your global batch")
        touched = False
        if b.has("lr_scaling"):
            touched |= b.set("lr_scaling", "sqrt", "sqrt rule for Adam-family optimizers")
        if b.has("reference_batch"):
            touched |= b.set("reference_batch", ref, f"base lr holds at the global batch {ref}")
        if b.has("scaled_lr") and base is not None:
            touched |= b.set("scaled_lr", sig(base), f"{formula} = {base:g} at global batch {ref}")
        if not touched:
            value = f" = {base:g} at your global batch {ref}" if base is not None and g else ""
            b.advice(f"your config has no lr-scaling setting: compute the lr in your code as {formula}{value}, "
                     "not base_lr * global_batch / 512")
        add_warmup(b)
        return self.finish(b, "nothing to change")

    @staticmethod
    def _old_effective(b: PatchBuilder, base: float, rule: str, g: int | None) -> float:
        ref = b.get_float("reference_batch", 256.0) or 256.0
        if not g:
            return base
        return base * (g / ref if rule == "linear" else math.sqrt(g / ref))
