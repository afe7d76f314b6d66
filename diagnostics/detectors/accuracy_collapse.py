"""The ``accuracy-collapse`` detector: the validation metric falls steadily toward chance."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import CLASS_METRICS, VAL_ACC, VAL_METRIC

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

class AccuracyCollapse(Detector):
    """Validation metric falls steadily from its peak and ends near chance.

    What it detects
    ---------------
    The validation metric (``val_metric`` role; metrics that rise, such as accuracy, AUC, F1), smoothed
    by a centered rolling median of 3: after its peak come at least ``min_after`` evaluations with a
    significant downward trend (Mann-Kendall p < ``p_value`` and a Theil-Sen slope whose confidence
    interval is below 0), and the final level (median of the last 3 points) has lost at least
    ``min_loss`` of the way from chance to the peak and at least ``noise_units`` times the metric's
    noise.  Chance is ``1 / classes`` for accuracy when the number of classes is known (config
    ``num_classes``-style keys or per-class tags), 0.5 for an AUC, otherwise 0.

    Why it matters
    --------------
    A model that got to 15.4% and slid to 1.2% has stopped learning the task and is unlearning it:
    typically an lr that is wrong for the batch (too high, or a schedule restart), numerical trouble
    upstream (NaN-skipped steps, fp16 overflow), or a collapsed representation.  Training longer makes
    it worse; the best checkpoint is far behind.

    Evidence
    --------
    ``peak`` (smoothed), ``peak_raw`` and ``peak_step``, ``end`` (median of the last 3), ``last``,
    ``chance`` and how the class count was found, ``lost_share``
    (how much of the way from chance to peak was lost), ``noise``, the Mann-Kendall ``tau``/``p`` and
    Theil-Sen slope with its interval after the peak, whether a loss went non-finite, and the
    config's warmup and grad_clip.

    Fix
    ---
    ``nan-guard`` first when a loss went non-finite; ``lower-lr``; ``lr-warmup`` when there is no
    warmup; ``grad-clip`` when clipping is off.

    False positives
    ---------------
    Metrics that are meant to fall (a validation loss or error rate mapped to ``val_metric``) are
    skipped by direction.  A run stopped just after a brief dip is not a collapse: the fall must be a
    significant trend over several evaluations and end near chance.

    Parameters
    ----------
    min_loss
        Share of (peak - chance) that must be lost (0.6).
    noise_units
        Fall needed in units of the metric's robust noise (4).
    p_value
        Significance of the downward trend after the peak (0.05).
    min_after
        Evaluations after the peak needed (4).
    min_points
        Evaluations needed (6).
    min_gain
        Rise of the peak above chance needed, as a share of the metric's scale (0.05): a metric that
        never left the floor (mAP 0.002 -> 0) had nothing to lose; ``never-learned`` speaks for it.
    """

    name = "accuracy-collapse"
    severity = Severity.WARNING
    requires = (VAL_METRIC,)
    fixes = ("lower-lr", "lr-warmup", "nan-guard", "grad-clip")

    @dataclass
    class Params:
        min_loss: float = 0.6
        noise_units: float = 4.0
        p_value: float = 0.05
        min_after: int = 4
        min_points: int = 6
        min_gain: float = 0.05

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        s, why = signals.usable(run.role(VAL_METRIC), "no validation metric logged", params.min_points)
        if s is None:
            yield self.skip(why)
            return
        if (run.roles.direction(VAL_METRIC) or "max") != "max":
            yield self.skip(f"{s.tag} is minimised; collapse is judged on metrics that rise")
            return
        y = s.values
        sm = signals.smooth(y, 3)
        i_peak = int(np.nanargmax(sm))
        after = y[i_peak:]
        if after.size - 1 < params.min_after:
            return
        unit = signals.metric_unit(y)
        classes, class_source = signals.number_of_classes(run)
        is_acc = run.roles.tag(VAL_ACC) == s.tag or "acc" in s.tag.lower()
        is_auc = "auc" in s.tag.lower()
        if is_auc:
            chance, classes, class_source = 0.5 * unit, None, "AUC of a random ranking"
        else:
            chance = (unit / classes) if (classes and is_acc) else 0.0
        peak = float(sm[i_peak])
        end = float(np.median(y[-3:]))
        noise = signals.noise_scale(y)
        noise = noise if np.isfinite(noise) else 0.0
        span = peak - chance
        if span <= 0 or (unit in (1.0, 100.0) and span < params.min_gain * unit):
            return  # nothing learned to lose
        lost = (peak - end) / span
        if lost < params.min_loss or (peak - end) < params.noise_units * noise:
            return
        tau, p = signals.mann_kendall(after)
        trend = signals.theil_sen(s.steps[i_peak:], after, alpha=params.p_value)
        if not (tau < 0 and p < params.p_value and trend.hi < 0):
            return
        config = run.config or {}
        nonfinite = any(
            (ser := run.series(t)) is not None and not np.isfinite(ser.values).all() for t in signals.loss_tags(run)
        )
        fixes = []
        if nonfinite:
            fixes.append("nan-guard")
        fixes.append("lower-lr")
        if not knobs.has_warmup(config):
            fixes.append("lr-warmup")
        if not knobs.has_grad_clip(config):
            fixes.append("grad-clip")
        fmt = signals.pct if unit == 1.0 else signals.fmt
        i_raw = int(np.argmax(y))
        peak_raw, last = float(y[i_raw]), float(y[-1])
        peak_step, last_step = float(s.steps[i_raw]), float(s.steps[-1])
        msg = (f"{s.tag} fell from its peak {fmt(peak_raw)} at step {peak_step:g} to {fmt(last)} at "
               f"step {last_step:g}, losing {signals.pct(lost, 2)} of its gain over chance "
               f"({fmt(chance)}{', ' + str(classes) + ' classes' if classes and is_acc else ''}); "
               f"steady fall: Mann-Kendall tau {tau:.2f}, p {signals.fmt(p, 2)}")
        evidence = {
            "peak": peak,
            "peak_raw": peak_raw,
            "peak_step": peak_step,
            "end": end,
            "last": last,
            "chance": chance,
            "classes": classes,
            "classes_source": class_source,
            "lost_share": lost,
            "noise": noise,
            "unit": unit,
            "mann_kendall_tau": tau,
            "mann_kendall_p": p,
            "slope_per_step": trend.slope,
            "slope_interval": [trend.lo, trend.hi],
            "points_after_peak": int(after.size - 1),
            "nonfinite_loss": nonfinite,
            "warmup": knobs.has_warmup(config),
            "grad_clip": knobs.lookup_float(config, "grad_clip"),
        }
        conf = float(min(0.95, 0.6 + 0.35 * min(lost, 1.0)))
        yield self.finding(msg, evidence=evidence, steps=(peak_step, last_step), tags=[s.tag],
                           fixes=fixes, confidence=conf)
