"""The ``loss-plateau`` detector: the training loss does not move beyond its noise from the start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import TRAIN_ACC, TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_METRIC

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

def lr_judgement(run: Any) -> tuple[str, float | None, str]:
    """``("tiny"|"large"|"moderate"|"unknown", lr, source)`` for the run's effective lr against the
    optimizer's range in the run's regime (``knobs.judge_lr``: 3x outside ``knobs.LR_RANGES``)."""
    lr, source = signals.effective_lr(run)
    config = run.config or {}
    family = knobs.optimizer_family(knobs.optimizer_name(config))
    regime, _ = knobs.training_regime(config)
    return knobs.judge_lr(lr, family, regime), lr, source


class LossPlateau(Detector):
    """Training loss does not fall beyond its own noise over a long stretch from the start.

    What it detects
    ---------------
    On the training loss (per epoch; else per-step loss reduced to per-epoch medians), smoothed by a
    centered rolling median: the first point where the loss is below its starting level (the higher
    of the first 10%'s median and smoothed maximum) by more than ``noise_units`` times its robust
    noise and ``min_drop`` of its value, and where it stays (the last 10% are below that level too;
    otherwise the crossing was a noise excursion).  If that never happens, or only after ``stretch``
    of the run, the loss plateaued from the start.  Size counts as well as significance: a loss
    that falls steadily, far beyond its (tiny) noise, but by less than ``min_drop`` of its value over
    the whole run (0.2522 -> 0.2514) has not learned either, and the message says so.  The check is about the *start* of training: a run that
    learned and then converged is not a plateau, however flat its second half.  A validation metric
    (else the training accuracy) that clearly improves vetoes the finding: the model is learning.
    When the loss moved over the stuck stretch by ``corroborate_above`` (5%) or more, or by 2% and
    twice its noise, just not by ``noise_units`` noise (and to stay), the evidence is too weak to
    tell a plateau from a fine-tune that starts at its optimum:
    a metric that stays flat or gets worse, or an lr far outside the optimizer's range, must confirm
    it.

    Why it matters
    --------------
    A loss that never moves means no learning: the lr is far too small (a linear batch-scaling rule
    applied at a tiny batch), far too large (dead units, saturated outputs), gradients do not reach
    the weights (frozen parameters, detached graph), or labels are random.  Every epoch after the
    first few is wasted.

    Evidence
    --------
    ``start``, ``best`` (lowest smoothed value), ``drop`` and ``drop_relative``, ``noise`` and
    ``drop_in_noise_units``, ``stuck_fraction`` (share of the run before the loss first moved) and the
    step it moved at if it did, the Mann-Kendall ``tau``/``p``, the effective lr with its source and
    whether it is tiny or large for the optimizer (with the ``expected_lr`` to aim for when it is:
    ``knobs.target_lr``, the top of the typical range for a large lr, its middle for a tiny one), the metric that confirmed or vetoed, and the warmup setting.

    Fix
    ---
    With a tiny lr: ``lr-sqrt-scaling`` (undo a linear rule that shrank it), then ``lr-warmup``.
    With a large lr: ``lower-lr``, then ``lr-warmup``.  Otherwise ``lr-warmup`` and ``lower-lr``.

    False positives
    ---------------
    Fine-tunes that start at their optimum have little to learn; they still lower their training
    loss by a few percent, which without a flat metric to confirm keeps the detector quiet, and a
    validation metric that moves vetoes the finding.  Runs resumed
    late in training look flat; give the whole history.  Regression losses near a noise floor from
    the first epoch also look flat; raise ``min_drop`` for them.

    Parameters
    ----------
    noise_units
        Drop below the start needed to count as progress, in units of robust noise (3).
    min_drop
        Drop needed relative to the starting value (0.005), so that a loss averaged over thousands
        of batches (tiny noise) must still move by half a percent.
    stretch
        Share of the run the loss must stay stuck from the start (0.5).
    corroborate_above
        When the loss moved over the stuck stretch by at least this share (0.05), or by 40% of it
        and twice its noise, a flat metric or an lr far out of range must confirm the plateau.
    min_points
        Points of the training-loss curve needed (10).
    """

    name = "loss-plateau"
    severity = Severity.WARNING
    requires_any = (TRAIN_LOSS, TRAIN_LOSS_STEP)
    fixes = ("lr-sqrt-scaling", "lower-lr", "lr-warmup")

    @dataclass
    class Params:
        noise_units: float = 3.0
        min_drop: float = 0.005
        stretch: float = 0.5
        corroborate_above: float = 0.05
        min_points: int = 10

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        loss, how = signals.training_loss(run)
        loss, why = signals.usable(loss, how, params.min_points, finite_only=False)
        if loss is None:
            yield self.skip(why)
            return
        stuck = self._stuck_stretch(loss.values, params)
        if stuck is None:
            return
        judged = self._judge(run, stuck, params)
        if judged is not None:
            yield self._finding(run, loss, how, stuck, judged, params)

    @staticmethod
    def _stuck_stretch(y: np.ndarray, params: Any) -> dict[str, Any] | None:
        """Where the smoothed loss first moved below its start by its noise (and stayed), and the
        share of the run stuck before that; None when it moved early enough, or climbs instead."""
        n = len(y)
        sm = signals.smooth(y, 3 if n < 40 else 5)
        noise = signals.noise_scale(y)
        if not np.isfinite(noise):
            noise = 0.0
        head_n = max(3, int(round(0.1 * n)))
        start_median, end = signals.head_tail(y, 0.1)
        # a loss that falls fast in its first points has learned: the start is the higher of the
        # first points' median and their smoothed maximum
        start = max(start_median, float(np.nanmax(sm[:head_n])))
        needed = max(params.noise_units * noise, params.min_drop * abs(start))
        moved = np.flatnonzero(sm <= start - needed)
        first_move = int(moved[0]) if moved.size else None
        if first_move is not None and end > start - needed:
            first_move = None  # a noise excursion, not learning: the loss did not stay down
        stuck = (first_move if first_move is not None else n) / n
        if stuck < params.stretch:
            return None
        if end - start >= needed and signals.mann_kendall(y)[0] > 0:
            return None  # the loss climbs: that is loss-divergence's finding, not a plateau
        return {"y": y, "n": n, "sm": sm, "noise": noise, "start": start, "end": end, "needed": needed,
                "first_move": first_move, "stuck": stuck}

    def _judge(self, run: Any, c: dict[str, Any], params: Any) -> dict[str, Any] | None:
        """The vetoes and confirmations: a metric that improves vetoes; a loss that moved by several
        percent over the stuck stretch needs a flat metric or an lr far out of range to confirm."""
        gain = self._metric_gain(run)
        if gain is not None and gain["improves"]:
            return None  # the model learns: a validation or training metric clearly gets better
        sm, first_move, start, noise = c["sm"], c["first_move"], c["start"], c["noise"]
        stretch_best = float(np.nanmin(sm if first_move is None else sm[:first_move]))
        stretch_drop = start - stretch_best
        judgement, lr, lr_source = lr_judgement(run)
        rel = stretch_drop / abs(start) if start else 0.0
        noisy = rel >= params.corroborate_above or (rel >= 0.4 * params.corroborate_above
                                                    and stretch_drop >= 2 * noise)
        confirmed = (gain is not None and gain["flat_or_worse"]) or judgement in ("tiny", "large")
        if noisy and not confirmed:
            # the loss moved by several percent, only not beyond its (large) noise: a noisy
            # fine-tune near its optimum looks like this; call it a plateau only when a flat metric
            # or an lr far outside the optimizer's range confirms it
            return None
        return {"gain": gain, "stretch_drop": stretch_drop, "judgement": judgement, "lr": lr,
                "lr_source": lr_source}

    def _finding(self, run: Any, loss: Any, how: str, c: dict[str, Any], j: dict[str, Any], params: Any) -> Finding:
        y, n, sm, noise, start, first_move = c["y"], c["n"], c["sm"], c["noise"], c["start"], c["first_move"]
        judgement, lr = j["judgement"], j["lr"]
        best = float(np.nanmin(sm))
        drop = start - best
        tau, p = signals.mann_kendall(y if first_move is None else y[:first_move])
        config = run.config or {}
        family = knobs.optimizer_family(knobs.optimizer_name(config))
        regime, _ = knobs.training_regime(config)
        expected = knobs.target_lr(family, regime, judgement)
        if judgement == "tiny":
            fixes = ["lr-sqrt-scaling", "lr-warmup"]
        elif judgement == "large":
            fixes = ["lower-lr", "lr-warmup"]
        else:
            fixes = ["lr-warmup", "lower-lr"]
        if knobs.has_warmup(config):
            fixes = [f for f in fixes if f != "lr-warmup"]
        negligible = noise > 0 and drop > params.noise_units * noise  # significant, but below min_drop
        msg, steps = self._message(loss, c, best, drop, negligible, params)
        if lr is not None:
            msg += f"; lr {signals.fmt(lr)} ({judgement} for the optimizer)"
        evidence = {
            "start": start,
            "end": c["end"],
            "best": best,
            "drop": drop,
            "drop_relative": drop / abs(start) if start else None,
            "noise": noise,
            "drop_in_noise_units": drop / noise if noise > 0 else None,
            "needed_drop": c["needed"],
            "stuck_fraction": c["stuck"],
            "moved_at_step": float(loss.steps[first_move]) if first_move is not None else None,
            "mann_kendall_tau": tau,
            "mann_kendall_p": p,
            "points": n,
            "curve": how,
            "lr": lr,
            "lr_source": j["lr_source"],
            "lr_judgement": judgement,
            "expected_lr": expected,
            "warmup": knobs.has_warmup(config),
            "metric": j["gain"],
            "stretch_drop_relative": j["stretch_drop"] / abs(start) if start else None,
            "significant_but_negligible": bool(first_move is None and negligible),
        }
        confidence = 0.9 if first_move is None else 0.7
        return self.finding(msg, evidence=evidence, steps=steps, tags=[loss.tag], fixes=fixes,
                            confidence=confidence)

    @staticmethod
    def _message(loss: Any, c: dict[str, Any], best: float, drop: float, negligible: bool,
                 params: Any) -> tuple[str, tuple[float, float]]:
        """The finding's sentence and step range, for each of the three shapes."""
        n, noise, start, first_move = c["n"], c["noise"], c["start"], c["first_move"]
        first_step, last_step = float(loss.steps[0]), float(loss.steps[-1])
        if first_move is None and negligible:
            msg = (f"training loss fell only {signals.pct(drop / abs(start), 3) if start else signals.fmt(drop)} in "
                   f"{n} points ({signals.fmt(start, 4)} -> best {signals.fmt(best, 4)}): {drop / noise:.0f}x its "
                   f"noise, so a real fall, but a negligible one (learning moves the loss by "
                   f"{signals.pct(params.min_drop)} or more)")
            return msg, (first_step, last_step)
        if first_move is None:
            msg = (f"training loss did not fall beyond its noise in {n} points: "
                   f"{signals.fmt(start)} at the start, best {signals.fmt(best)} "
                   f"({signals.pct(drop / abs(start)) if start else signals.fmt(drop)} lower, "
                   f"{drop / noise:.1f}x its noise)" if noise > 0 else
                   f"training loss did not fall in {n} points: {signals.fmt(start)} at the start, "
                   f"best {signals.fmt(best)}")
            return msg, (first_step, last_step)
        moved_step = float(loss.steps[first_move])
        msg = (f"training loss stayed at {signals.fmt(start)} (within its noise) for the first "
               f"{signals.pct(c['stuck'], 2)} of the run, until step {moved_step:g}")
        return msg, (first_step, moved_step)

    @staticmethod
    def _metric_gain(run: Any) -> dict | None:
        """How the validation metric (else the training accuracy) moved from its first to its last
        fifth: ``improves`` when clearly better (beyond 3x its noise and 2 points of a 0-1 scale),
        ``flat_or_worse`` when not better by more than its noise; None when none is logged."""
        for role in (VAL_METRIC, TRAIN_ACC):
            s = run.role(role)
            if s is None or not signals.enough(s.values, 5):
                continue
            v = signals.finite(s.values)
            direction = (run.roles.direction(role) or "max") if role == VAL_METRIC else "max"
            head, tail = signals.head_tail(v, 0.2, 2)
            gain = (tail - head) if direction == "max" else (head - tail)
            unit = 100.0 if np.nanmax(np.abs(v)) > 1.0 else 1.0
            noise = signals.noise_scale(v)
            noise = noise if np.isfinite(noise) else 0.0
            return {
                "tag": s.tag,
                "gain": float(gain),
                "improves": bool(gain > max(3 * noise, 0.02 * unit)),
                "flat_or_worse": bool(gain <= max(noise, 0.005 * unit)),
            }
        return None
