"""Lower the learning rate: to the value the finding calls for, else to 0.3x.

What it changes
---------------
``optimizer.lr`` multiplied by 0.3, or by more when the finding's evidence says the effective lr
is further above the typical range (down to the top of that range, or to an ``expected_lr``).  In a foreign config every lr key found
(``lr``, ``learning_rate``, ``base_lr``, ``max_lr``, a recorded ``scaled_lr``) is scaled the same
way.  The patch is relative: applied once per config (the provenance says so), never compounded.

When to use
-----------
``lr-miscaled`` in its too-high form (early spikes, divergence), ``loss-divergence``,
``accuracy-oscillation`` that is not explained by sparse training or hard MIL selection,
``nonfinite-loss``.

Why
---
A step too large for the local curvature overshoots: the loss spikes or diverges and validation
accuracy swings between epochs.  0.3x is about half an order of magnitude, the usual step of an lr
search; it is large enough to leave the unstable regime and small enough not to starve the run.

Example diff
------------
::

     optimizer:
       name: adam
    -  lr: 0.01
    +  lr: 0.003
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, evidence_number, sig

FACTOR = 0.3


class LowerLr(Recipe):
    __doc__ = __doc__

    id = "lower-lr"
    resolves = ("lr-miscaled", "loss-divergence", "accuracy-oscillation", "nonfinite-loss")
    evidence = ("expected_lr", "effective_lr", "lr", "typical_range")
    knobs = ("lr", "scaled_lr")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        lr = b.get_float("lr")
        if lr is None or lr <= 0:
            return self.skip("this config has no learning-rate setting (lr, learning_rate, base_lr)")
        factor = FACTOR
        expected = evidence_number(finding, "expected_lr")
        effective = evidence_number(finding, "effective_lr", "lr")
        rng = (finding.evidence or {}).get("typical_range") if finding is not None else None
        if expected is None and isinstance(rng, (list, tuple)) and len(rng) == 2 and effective:
            try:
                expected = float(rng[1]) if effective > float(rng[1]) else None
            except (TypeError, ValueError):
                expected = None
        if expected is not None and expected > 0:
            ratio = expected / (effective or lr)
            if ratio < FACTOR:
                factor = max(ratio, 0.01)
                b.note(f"the finding expects an lr of {expected:.3g}: factor {factor:.3g}")
        reason = f"lr x{sig(factor, 2):g}: smaller steps leave the unstable regime"
        b.scale("lr", factor, reason)
        if not b.own or b.get("scaled_lr") is not None:  # ours: the recorded effective lr, kept true
            b.scale("scaled_lr", factor, reason)
        return self.finish(b, "nothing to change")
