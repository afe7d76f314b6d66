"""The ``validation-never-improves`` detector: the first evaluation was the best one, and the run got worse after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import VAL_LOSS, VAL_METRIC

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class ValidationNeverImproves(Detector):
    """The validation metric never beats its first evaluation and ends clearly worse than it.

    What it detects
    ---------------
    The primary validation metric (the ``val_metric`` role with its direction; the validation loss
    when no other metric is logged): no later evaluation improves on the first by more than its
    noise (``improve_units`` times the robust noise, and ``min_improve`` of the first value), and
    the median of the last ``tail`` of the evaluations is worse than the first by at least
    ``min_worse`` of it (relative; for bounded metrics, of the metric's scale) and ``noise_units``
    times the noise.  At least ``min_points`` evaluations are needed: Hugging Face runs often
    evaluate only a handful of times, and a problem visible in five of them is reported, with a
    confidence that grows with the points.

    Why it matters
    --------------
    Training made the model worse from the first evaluation on.  In a fine-tune this is the
    signature of an lr that destroys the pretrained features (Whisper's WER going 17.7 -> 31 as the
    lr warms up to its peak); from scratch, of an lr too high for the batch or a bug that corrupts
    training.  The best checkpoint is the first one, so everything after it was wasted.

    Evidence
    --------
    ``tag``, ``direction``, ``first`` (the first evaluation), ``best_after_first`` and its step,
    ``end`` (median of the last evaluations), ``worse_by`` (relative to the first or the metric's
    scale), ``noise``, ``points``, and the run's ``lr`` (peak logged, else the config's) with the
    training ``regime`` (fine-tune or from scratch).

    Fix
    ---
    ``lower-lr`` (fine-tunes want 1e-5..1e-4 with AdamW), then ``lr-warmup`` when there is none.

    False positives
    ---------------
    A fine-tune whose first evaluation comes after the model already converged can only get
    worse by noise; ``min_worse`` (5%) and the noise test keep that quiet.  Runs whose first
    evaluation happens at step 0 on a pretrained model that is already good at the task (zero-shot)
    are reported when training makes them worse: that is a real finding.

    Parameters
    ----------
    improve_units
        Improvement over the first evaluation, in noise units, that counts as an improvement (1.0).
    min_improve
        ... and relative to the first value or the metric's scale (0.01).
    noise_units
        Worsening needed at the end, in noise units (1.5).
    min_worse
        Worsening needed at the end, relative to the first value or the metric's scale (0.05).
    tail
        Share of the evaluations whose median is the end (0.3).
    min_points
        Evaluations needed (5).
    """

    name = "validation-never-improves"
    severity = Severity.WARNING
    requires_any = (VAL_METRIC, VAL_LOSS)
    fixes = ("lower-lr", "lr-warmup")

    @dataclass
    class Params:
        improve_units: float = 1.0
        min_improve: float = 0.01
        noise_units: float = 1.5
        min_worse: float = 0.05
        tail: float = 0.3
        min_points: int = 5

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        series, direction = run.role(VAL_METRIC), run.roles.direction(VAL_METRIC)
        if series is None or direction not in ("max", "min"):
            series, direction = run.role(VAL_LOSS), "min"
        series, why = signals.usable(series, "no validation metric or loss logged", params.min_points)
        if series is None:
            yield self.skip(why)
            return
        v = series.values
        n = len(v)
        sign = 1.0 if direction == "max" else -1.0
        gain = sign * (v - v[0])  # > 0: better than the first evaluation
        noise = signals.noise_scale(v)
        noise = noise if np.isfinite(noise) else 0.0
        unit = signals.metric_unit(v)
        scale = unit if unit in (1.0, 100.0) and direction == "max" else max(abs(float(v[0])), 1e-12)
        if direction == "min" and unit == 100.0 and "loss" not in series.tag.lower():
            scale = max(abs(float(v[0])), 1e-12)  # an error rate in percent (WER): relative to where it began
        i_best = 1 + int(np.argmax(gain[1:]))
        best_gain = float(gain[i_best])
        if best_gain > max(params.improve_units * noise, params.min_improve * scale):
            return
        k = max(2, int(round(params.tail * n)))
        end = float(np.median(v[-k:]))
        worse = -sign * (end - float(v[0]))
        if worse < max(params.noise_units * noise, params.min_worse * scale):
            return
        config = run.config or {}
        lr, lr_from = self._peak_lr(run)
        regime, regime_why = knobs.training_regime(config)
        first_step, last_step = float(series.steps[0]), float(series.steps[-1])
        better = "higher" if direction == "max" else "lower"
        msg = (f"{series.tag} was best at its first evaluation ({signals.fmt(float(v[0]))} at step "
               f"{first_step:g}): no later one of {n} was {better} by more than its noise, and it ended at "
               f"{signals.fmt(end)} ({signals.pct(worse / scale)} worse)")
        if lr is not None:
            msg += f"; lr {signals.fmt(lr)} ({regime})"
        fixes = ["lower-lr"] + ([] if knobs.has_warmup(config, self._lr_values(run)) else ["lr-warmup"])
        evidence = {
            "tag": series.tag,
            "direction": direction,
            "first": float(v[0]),
            "best_after_first": float(v[i_best]),
            "best_after_first_step": float(series.steps[i_best]),
            "end": end,
            "worse_by": worse / scale,
            "noise": noise,
            "points": n,
            "lr": lr,
            "lr_from": lr_from,
            "regime": regime,
            "regime_from": regime_why,
        }
        confidence = float(min(0.9, 0.5 + 0.04 * n))
        yield self.finding(msg, evidence=evidence, steps=(first_step, last_step), tags=[series.tag],
                           fixes=fixes, confidence=confidence)

    @staticmethod
    def _lr_values(run: Any) -> Any:
        from trainfix.diagnostics.roles_vocab import LR

        s = run.role(LR)
        return s.finite().values if s is not None else None

    @staticmethod
    def _peak_lr(run: Any) -> tuple[float | None, str]:
        from trainfix.diagnostics.roles_vocab import LR

        s = run.role(LR)
        if s is not None and len(s.finite()):
            return float(np.max(s.finite().values)), f"peak of logged {s.tag}"
        v = knobs.lookup_float(run.config or {}, "lr")
        return (v, "config lr") if v is not None else (None, "unknown")
