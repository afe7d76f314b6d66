"""The ``overfitting`` detector: training loss keeps falling while validation loss climbs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS, VAL_METRIC

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class Overfitting(Detector):
    """Validation loss rises beyond its noise for a sustained stretch while training loss falls.

    What it detects
    ---------------
    The validation loss, smoothed by a centered rolling median, reaches its minimum and then rises:
    the median of its last 20% of points is above the minimum by at least ``noise_units`` times its
    robust noise and by ``min_rise`` of the minimum's value, at least ``min_after`` evaluations (and
    20% of them) come after the minimum, and the points after it trend upward (Mann-Kendall, p <
    ``p_value``).  Over the same stretch the training loss must not rise (it falls or stays): when
    both rise, the run diverges instead and ``loss-divergence`` speaks.

    Without a validation loss (an Ultralytics console log prints only mAP), the task metric speaks
    instead: the validation metric (smoothed) peaks and then gets worse for a sustained stretch
    while the training loss keeps falling: at least ``min_after`` evaluations and 30% of them after
    the peak, a downward trend there (Mann-Kendall, p < ``p_value`` / 5), and an end (median of the
    last 20%) worse than the peak by ``metric_drop`` of the peak's value, of what was gained from
    the first evaluation, and by twice the metric's noise.

    Why it matters
    --------------
    The model is memorising the training set: every epoch after the validation minimum makes it worse
    on new data while the training curve still looks good.  The best checkpoint is the one at the
    validation minimum; training longer only costs compute.

    Evidence
    --------
    ``val_min`` and ``val_min_step`` (where early stopping would have stopped), ``val_end``, ``rise``,
    ``rise_relative``, ``val_noise``, ``rise_in_noise_units``, the training loss at the validation
    minimum and at the end, the train/validation ``gap`` at both points and its growth, the
    Mann-Kendall ``tau``/``p``, and ``task_metric`` (the validation accuracy/F1/... at the loss
    minimum, at the end and its best, and whether it ``kept_improving``).

    When the task metric keeps improving after the validation-loss minimum (its end beats its value
    there by ``metric_units`` times its noise and it is still improving in the second half of that
    stretch), the model is not getting worse at the task: the loss is mis-calibrated (over-confident
    wrong answers weigh more and more).  The finding is then an info that says so and gives no
    early-stopping advice: stopping at the loss minimum would throw away the better model.

    Fix
    ---
    Stop early at the validation minimum (the message names the step; keep ``best.pt``, which
    trainfix selects by the validation metric).  ``label-smoothing`` regularises an over-confident
    classifier; stronger weight decay, more augmentation or more data help too (no recipe).

    False positives
    ---------------
    A validation loss that drifts up by a few percent late in a long run while accuracy still
    improves is common and harmless; ``min_rise`` (10%) keeps it quiet, and a larger rise while the
    accuracy keeps improving is reported as an info about calibration, not as overfitting.  Validation on very few
    samples is noisy; the rise is judged relative to that noise.

    Parameters
    ----------
    noise_units
        Rise needed, in units of the validation loss's robust noise (4).
    min_rise
        Rise needed relative to the validation minimum (0.1).
    min_after
        Evaluations needed after the minimum (4).
    p_value
        Significance of the upward trend after the minimum (0.05).
    metric_units
        Gain of the task metric after the validation-loss minimum, in units of its noise, that
        makes the finding an info about calibration (2).
    min_points
        Validation-loss points needed (5; the confidence grows with the points).
    metric_drop
        Without a validation loss: fall of the task metric from its peak to the end, as a share of
        the peak's value and of the gain up to it (0.1).
    """

    name = "overfitting"
    severity = Severity.WARNING
    requires_any = (VAL_LOSS, VAL_METRIC)
    fixes = ("label-smoothing",)

    @dataclass
    class Params:
        noise_units: float = 4.0
        min_rise: float = 0.1
        min_after: int = 4
        p_value: float = 0.05
        min_points: int = 5
        metric_units: float = 2.0
        metric_drop: float = 0.1

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        val = run.role(VAL_LOSS)
        train, how = signals.training_loss(run)
        if train is None:
            yield self.skip(how)
            return
        if val is None:
            yield from self._by_task_metric(run, train, how, params)
            return
        val, why = signals.usable(val, "no validation loss logged", params.min_points)
        if val is None:
            yield self.skip(why)
            return
        if len(train) < 3:
            yield self.skip(signals.need_reason(train.tag, len(train), 3))
            return
        judged = self._judge_loss(val, train, params)
        if judged is not None:
            yield self._loss_finding(run, val, train, how, judged, params)

    @staticmethod
    def _judge_loss(val: Any, train: Any, params: Any) -> dict[str, Any] | None:
        """The validation loss's minimum, its sustained rise after it and the training loss over
        the same stretch; None when it does not rise enough, long enough, or training rises too."""
        n = len(val)
        v = val.values
        sm = signals.smooth(v, 3)
        i_min = int(np.nanargmin(sm))
        after = n - 1 - i_min
        if after < max(params.min_after, int(np.ceil(0.2 * n))):
            return None
        noise = signals.noise_scale(v)
        if not np.isfinite(noise):
            noise = 0.0
        val_min = float(sm[i_min])
        val_end = float(np.median(v[-max(2, int(round(0.2 * n))):]))
        rise = val_end - val_min
        if rise < params.noise_units * noise or rise < params.min_rise * abs(val_min) or rise <= 0:
            return None
        tau, p = signals.mann_kendall(v[i_min:])
        if not (tau > 0 and p < params.p_value):
            return None
        min_step = float(val.steps[i_min])
        # training loss over the same stretch, at the validation steps
        t_at_min = float(np.interp(min_step, train.steps, train.values))
        late_train = train.values[train.steps >= val.steps[-max(2, int(round(0.2 * n)))]]
        t_end = float(np.median(late_train)) if late_train.size else float(train.values[-1])
        t_noise = signals.noise_scale(train.values)
        t_noise = t_noise if np.isfinite(t_noise) else 0.0
        if t_end - t_at_min > max(2 * t_noise, 0.05 * abs(t_at_min)):
            return None  # training loss rises too: divergence, not overfitting
        return {"i_min": i_min, "after": after, "noise": noise, "val_min": val_min, "val_end": val_end,
                "rise": rise, "tau": tau, "p": p, "min_step": min_step, "t_at_min": t_at_min, "t_end": t_end}

    def _loss_finding(self, run: Any, val: Any, train: Any, how: str, j: dict[str, Any], params: Any) -> Finding:
        n = len(val)
        val_min, val_end, rise, noise = j["val_min"], j["val_end"], j["rise"], j["noise"]
        min_step, t_at_min, t_end = j["min_step"], j["t_at_min"], j["t_end"]
        metric = self._task_metric(run, val.steps[j["i_min"]], params)
        gap_min = val_min - t_at_min
        gap_end = val_end - t_end
        last_step = float(val.steps[-1])
        rise_text = signals.pct(rise / abs(val_min)) if val_min else signals.fmt(rise)
        msg = (f"validation loss bottomed at {signals.fmt(val_min)} at step {min_step:g} and rose to "
               f"{signals.fmt(val_end)} (+{rise_text}) "
               f"while training loss went {signals.fmt(t_at_min)} -> {signals.fmt(t_end)}; "
               f"the gap grew {signals.fmt(gap_min)} -> {signals.fmt(gap_end)}")
        severity, fixes = self.severity, list(self.fixes)
        if metric is not None and metric["kept_improving"]:
            severity = Severity.INFO
            msg += (f"; but {metric['tag']} kept improving after it ({signals.fmt(metric['at_val_min'])} -> "
                    f"{signals.fmt(metric['end'])}): the model still gets better at the task and the loss is "
                    f"mis-calibrated (over-confident on its mistakes), so keep training by the metric, not the loss")
        elif j["i_min"] == 0:
            msg += ("; it was lowest at the first evaluation, so the run over-fits from the start: "
                    "fewer epochs, a lower lr or more regularisation")
        else:
            msg += f"; early stopping at step {min_step:g} keeps the best model"
        evidence = {
            "val_min": val_min,
            "val_min_step": min_step,
            "val_end": val_end,
            "rise": rise,
            "rise_relative": rise / abs(val_min) if val_min else None,
            "val_noise": noise,
            "rise_in_noise_units": rise / noise if noise > 0 else None,
            "train_at_val_min": t_at_min,
            "train_end": t_end,
            "gap_at_val_min": gap_min,
            "gap_end": gap_end,
            "gap_growth": gap_end - gap_min,
            "evals_after_min": j["after"],
            "mann_kendall_tau": j["tau"],
            "mann_kendall_p": j["p"],
            "train_curve": how,
            "early_stop_step": None if severity == Severity.INFO else min_step,
            "task_metric": metric,
            "points": n,
        }
        confidence = float(min(0.95, 0.6 + 0.1 * (rise / max(noise, 1e-12)) / params.noise_units))
        confidence *= min(1.0, n / 10)  # five evaluations say less than fifty
        return self.finding(msg, severity=severity, evidence=evidence, steps=(min_step, last_step),
                            tags=[val.tag, train.tag], fixes=fixes, confidence=confidence)

    def _by_task_metric(self, run: Any, train: Any, how: str, params: Any) -> Iterable[Finding | Skip]:
        """No validation loss: the task metric peaks, then gets worse for a sustained stretch while
        the training loss keeps falling."""
        s = run.role(VAL_METRIC)
        direction = run.roles.direction(VAL_METRIC)
        if s is None or direction not in ("max", "min") or "loss" in s.tag.lower():
            yield self.skip("no validation loss logged, and no validation task metric")
            return
        s, why = signals.usable(s, "no validation metric logged", max(params.min_points, 8))
        if s is None:
            yield self.skip(why)
            return
        sign = 1.0 if direction == "max" else -1.0
        v = sign * s.values  # higher is better from here on
        n = len(v)
        sm = signals.smooth(v, 3)
        i_best = int(np.nanargmax(sm))
        after = n - 1 - i_best
        if after < max(params.min_after, int(np.ceil(0.3 * n))):
            return
        noise = signals.noise_scale(v)
        noise = noise if np.isfinite(noise) else 0.0
        best, first = float(sm[i_best]), float(v[0])
        end = float(np.median(v[-max(2, int(round(0.2 * n))):]))
        drop = best - end
        if drop <= 0 or drop < 2 * noise or drop < params.metric_drop * max(abs(best), best - first):
            return
        tau, p = signals.mann_kendall(v[i_best:])
        if not (tau < 0 and p < params.p_value / 5):
            return
        best_step = float(s.steps[i_best])
        t_at_best = float(np.interp(best_step, train.steps, train.values))
        t_end = float(np.median(train.values[train.steps >= s.steps[-max(2, int(round(0.2 * n)))]]))
        if not t_end < t_at_best:
            return  # training does not improve either: not memorising
        shown = lambda x: signals.fmt(sign * x)  # noqa: E731
        msg = (f"{s.tag} peaked at {shown(best)} at step {best_step:g} and got worse, to {shown(end)} at "
               f"the end, while training loss kept falling ({signals.fmt(t_at_best)} -> {signals.fmt(t_end)}); "
               f"no validation loss is logged, so the task metric shows the over-fitting; early stopping "
               f"at step {best_step:g} keeps the best model")
        evidence = {
            "signature": "task-metric",
            "metric_tag": s.tag,
            "direction": direction,
            "metric_best": sign * best,
            "metric_best_step": best_step,
            "metric_end": sign * end,
            "metric_drop": drop,
            "metric_drop_relative": drop / abs(best) if best else None,
            "metric_noise": noise,
            "evals_after_best": after,
            "mann_kendall_tau": tau,
            "mann_kendall_p": p,
            "train_at_best": t_at_best,
            "train_end": t_end,
            "train_curve": how,
            "early_stop_step": best_step,
            "points": n,
        }
        confidence = float(min(0.9, 0.55 + 0.05 * drop / max(noise, 1e-12))) * min(1.0, n / 10)
        yield self.finding(msg, evidence=evidence, steps=(best_step, float(s.steps[-1])),
                           tags=[s.tag, train.tag], confidence=confidence)

    @staticmethod
    def _task_metric(run: Any, min_step: float, params: Any) -> dict | None:
        """How the validation task metric (accuracy, F1, WER, ...) moved after the loss minimum."""
        s = run.role(VAL_METRIC)
        direction = run.roles.direction(VAL_METRIC)
        if s is None or direction not in ("max", "min") or "loss" in s.tag.lower():
            return None
        s = s.finite()
        after = s.steps >= min_step
        if after.sum() < 3:
            return None
        v = s.values[after]
        sign = 1.0 if direction == "max" else -1.0
        noise = signals.noise_scale(s.values)
        noise = noise if np.isfinite(noise) else 0.0
        k = max(1, int(round(0.2 * v.size)))
        end = float(np.median(v[-k:]))
        mid = float(v[v.size // 2])
        gain = sign * (end - float(v[0]))
        late_gain = sign * (end - mid)
        unit = signals.metric_unit(s.values)
        floor = 0.005 * unit if unit in (1.0, 100.0) else 0.0
        kept = bool(gain > max(params.metric_units * noise, floor) and late_gain > max(0.5 * noise, floor / 2))
        return {"tag": s.tag, "direction": direction, "at_val_min": float(v[0]), "end": end,
                "best": float(np.max(v) if direction == "max" else np.min(v)), "gain": gain,
                "noise": noise, "kept_improving": kept}
