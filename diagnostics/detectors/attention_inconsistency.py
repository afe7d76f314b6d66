"""The ``attention-inconsistency`` detector: attribution methods that disagree and keep disagreeing (ATCON)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import ATTN_METRICS, LOSS_TERMS, LOSS_TERMS_RAW

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

#: names of agreement metrics between two attribution maps
AGREEMENT = re.compile(r"consisten|iou|agree|overlap|similar|corr|dice")
#: names that say the statistic is a distance (lower is better), not an agreement
DISTANCE = re.compile(r"dist|diff|drift|change|delta|error|mse|l1|l2|loss")


class AttentionInconsistency(Detector):
    """Agreement between two attribution methods is low and not improving.

    What it detects
    ---------------
    A logged agreement metric between attention/attribution maps (the ``attn_metrics`` role with a
    name like ``attn/consistency``, ``attn/iou``, ``attn/agreement``, ``attn/correlation``; higher is
    better, percentages converted) whose final level, the median of the last quarter of its points,
    is below ``max_level`` (0.5), and which does not improve: its rise from the first to the last
    quarter is below ``min_improvement`` (0.05) or does not exceed ``noise_k`` noise units, or its
    Theil-Sen slope interval does not lie above zero.

    Why it matters
    --------------
    Grad-CAM, guided backpropagation and integrated gradients should highlight the same evidence for
    the same prediction.  When they disagree, either the model relies on spurious features or the
    maps do not reflect what it learned, and explanations shown to users (clinicians, in ATCON's
    hospital-video study) are not trustworthy.  The effect is strongest with small training sets.

    Evidence
    --------
    The metric, its first and final levels, the improvement, its noise, the Theil-Sen slope with its
    interval and the thresholds.

    Fix
    ---
    ``atcon``: fine-tune with an attention-consistency loss between the two methods (Mirzazadeh et
    al., WACV 2022), alternating with the supervised loss.

    False positives
    ---------------
    Agreement metrics have different natural scales (an IoU of thresholded masks runs lower than a
    rank correlation); ``max_level`` may need adjusting per metric.  A run that is still early and
    improving is not reported.  A "consistency" statistic that is really a distance is set aside:
    when its role is resolved as lower-is-better, when its name says so (``dist``, ``diff``,
    ``drift``, ``error``...), or when the run also logs a loss term of the same name (a temporal
    consistency loss logs ``attn/consistency`` = mean ``|a - a_prev|`` beside ``loss/consistency``).

    Parameters
    ----------
    max_level
        Final agreement at or above this is fine (0.5).
    min_improvement
        Smallest rise (absolute, first to last quarter) that counts as improving (0.05).
    noise_k
        ... and it must exceed this many noise units (2.0).
    min_points
        Points needed (5).
    """

    name = "attention-inconsistency"
    severity = Severity.WARNING
    requires = (ATTN_METRICS,)
    fixes = ("atcon",)

    @dataclass
    class Params:
        max_level: float = 0.5
        min_improvement: float = 0.05
        noise_k: float = 2.0
        min_points: int = 5

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        resolutions = getattr(run.roles, "groups", {}).get(ATTN_METRICS, {})
        loss_keys = {k.lower() for role in (LOSS_TERMS, LOSS_TERMS_RAW) for k in run.roles.group(role)}
        metrics, set_aside = {}, []
        for k, s in run.group(ATTN_METRICS).items():
            name = k.lower()
            if not AGREEMENT.search(name):
                continue
            res = resolutions.get(k)
            if res is not None and getattr(res, "direction", None) == "min":
                set_aside.append(f"{s.tag} (lower is better)")
                continue
            if DISTANCE.search(name) or any(min(len(lk), len(name)) >= 4 and (name.startswith(lk[:7]) or lk.startswith(name[:7]))
                                              for lk in loss_keys):
                # a distance, or the statistic of a loss term of the same name (the self-corrective
                # loss logs attn/consistency = mean |a - a_prev| beside loss/consistency)
                set_aside.append(f"{s.tag} (a distance / loss statistic)")
                continue
            metrics[k] = s.finite()
        if not metrics:
            reason = "no attention agreement metric logged (attn/consistency, attn/iou, ...)"
            if set_aside:
                reason += "; not agreement metrics: " + ", ".join(set_aside)
            yield self.skip(reason)
            return
        judged = {k: s for k, s in metrics.items() if len(s) >= params.min_points}
        if not judged:
            s = max(metrics.values(), key=len)
            yield self.skip(signals.need_reason(s.tag, len(s), params.min_points))
            return
        for key, s in sorted(judged.items()):
            v = s.values / 100.0 if float(np.max(np.abs(s.values))) > 1.5 else s.values
            q = max(1, len(v) // 4)
            first, final = float(np.median(v[:q])), float(np.median(v[-q:]))
            if not final < params.max_level:
                continue
            noise = signals.noise_scale(v)
            trend = signals.theil_sen(s.steps, v)
            improvement = final - first
            improving = (improvement >= params.min_improvement
                         and (not noise > 0 or improvement > params.noise_k * noise)
                         and trend.lo > 0)
            if improving:
                continue
            msg = (f"{s.tag} ends at {signals.fmt(final)} (below {signals.fmt(params.max_level)}) and moved "
                   f"{'+' if improvement >= 0 else ''}{signals.fmt(improvement)} since the start of the run "
                   f"(noise {signals.fmt(noise)}, Theil-Sen slope {signals.fmt(trend.slope)}/step, 95% CI "
                   f"[{signals.fmt(trend.lo)}, {signals.fmt(trend.hi)}]): the attribution methods disagree "
                   f"and training does not bring them together")
            evidence = {
                "metric": key,
                "first_level": first,
                "final_level": final,
                "improvement": improvement,
                "noise": noise,
                "slope_per_step": trend.slope,
                "slope_ci": [trend.lo, trend.hi],
                "max_level": params.max_level,
                "min_improvement": params.min_improvement,
                "points": len(v),
            }
            yield self.finding(msg, evidence=evidence, steps=(float(s.steps[0]), float(s.steps[-1])),
                               tags=[s.tag], confidence=0.8 if final < params.max_level / 2 else 0.65)
