"""Lower the learning rate: to the value the finding calls for or into the optimizer's range, else to 0.3x.

What it changes
---------------
``optimizer.lr`` multiplied by 0.3, or by more when the lr is further above the typical range: down
to the finding's ``expected_lr`` or the top of its ``typical_range``, else (a finding without lr
evidence, such as ``loss-divergence`` or ``nonfinite-loss``) an lr above the typical range for the
optimizer family and regime goes to the middle of that range (``knobs.typical_lr``, the geometric
middle of ``knobs.LR_RANGES``: from scratch Adam-family 1e-4..3e-3 -> 5.5e-4, SGD 1e-2..0.5 ->
0.07; the config's optimizer name, AdamW for Hugging Face TrainingArguments), the lr the detectors
call "expected".  So an lr of 0.5 with AdamW from scratch becomes 5.5e-4, not 0.15.  In a foreign config every lr key found
(``lr``, ``learning_rate``, ``base_lr``, ``max_lr``, a recorded ``scaled_lr``) is scaled the same
way.  The patch is relative: applied once per config (the provenance says so), never compounded.

When to use
-----------
``lr-miscaled`` in its too-high form (early spikes, divergence), ``loss-divergence``,
``accuracy-oscillation`` that is not explained by sparse training or hard MIL selection,
``nonfinite-loss``; ``loss-plateau`` after learning (the loss stalled at a steady lr): there the
smaller steps let it settle below the stalled level, and a decay from the plateau's start (step,
cosine) does the same without slowing the first epochs.

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


def typical_for(config: dict) -> tuple[float, float]:
    """(top of the typical peak-lr range, the lr to aim for: its geometric middle), from
    :data:`trainfix.diagnostics.knobs.LR_RANGES` for the config's optimizer family and regime;
    Hugging Face TrainingArguments default to AdamW."""
    from trainfix.diagnostics import knobs

    name = knobs.optimizer_name(config or {})
    if name is None and {"per_device_train_batch_size", "learning_rate"} <= set(map(str, config or {})):
        name = "adamw"
    regime, _ = knobs.training_regime(config or {})
    family = knobs.optimizer_family(name)
    return float(knobs.lr_range(family, regime)[1]), float(knobs.typical_lr(family, regime))


class LowerLr(Recipe):
    __doc__ = __doc__

    id = "lower-lr"
    resolves = ("lr-miscaled", "loss-divergence", "accuracy-oscillation", "nonfinite-loss")
    evidence = ("expected_lr", "effective_lr", "lr", "typical_range", "signature")
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
        source = "the finding expects an lr of"
        if expected is None and (finding is None or "typical_range" not in (finding.evidence or {})):
            hi, middle = typical_for(config)
            if (effective or lr) > hi:
                expected, source = middle, f"above the typical range (top {hi:g}); the middle of it is"
        if expected is not None and expected > 0:
            ratio = expected / (effective or lr)
            if ratio < FACTOR:
                factor = ratio  # the target lies in the optimizer's range, however far the lr was above it
                b.note(f"{source} {expected:.3g}: factor {factor:.3g}")
        reason = f"lr x{sig(factor, 2):g}: smaller steps leave the unstable regime"
        if finding is not None and (finding.evidence or {}).get("signature") in ("after-learning", "validation-flat"):
            since = f" from step {finding.steps[0]:g}" if finding.steps else ""
            reason = (f"lr x{sig(factor, 2):g}: smaller steps let the loss settle below the level it stalled "
                      f"at{since} (or decay the lr from there)")
        b.scale("lr", factor, reason)
        if not b.own or b.get("scaled_lr") is not None:  # ours: the recorded effective lr, kept true
            b.scale("scaled_lr", factor, reason)
        return self.finish(b, "nothing to change")
