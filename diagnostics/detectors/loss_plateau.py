"""The ``loss-plateau`` detector: the training loss does not move beyond its noise from the start, or
it learned and then sat flat for most of the run with the lr still up, or the validation loss never
moved while the training loss fell."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import LR, TRAIN_ACC, TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS, VAL_METRIC

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

    Two more signatures (evidence ``signature``; ``from-start`` for the one above):

    - *after-learning*: the loss fell from its first points by ``after_learned`` (20%) of its
      value and 10 noise, yet still holds ``after_kept`` (10%) of it (a loss that fell by 90% and
      more has converged), and from some step on the smoothed loss stays within ``after_band``
      (5%, or 3 noise) of its final level for ``after_stretch`` (60%) of the run or more, falling
      over that stretch by less than ``after_fall`` (3%) of the level (Theil-Sen).  The lr must
      not have been decayed to nothing: a logged lr that ends the stretch below ``lr_decayed``
      (10%) of its peak, or a decaying schedule in the config, means the run annealed and
      converged, which is what the end of a cosine schedule looks like.  A validation loss still
      falling or a metric still improving over the stretch vetoes it.  With the lr known (logged,
      or a constant schedule in the config) that is enough; with it unknown, the loss must be the
      sum of logged terms one of which keeps rising over the stretch while the total stays flat:
      the terms trade against each other instead of falling together.
    - *validation-flat*: the validation loss, smoothed over 3 evaluations, stays within
      ``val_band`` (2%) of its level over all of ``val_points`` (10) evaluations or more while the
      training loss falls significantly by more than ``val_train_fall`` (2%) and the lr is not
      decayed: the model fits its training data but stopped improving on held-out data.

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
    The later signatures carry ``signature``, ``plateau_from``/``plateau_to`` (steps), ``level``,
    ``slope`` (per step), ``fall`` or ``spread``, ``lr_state`` with ``lr_end_to_peak``, and the
    rising ``term`` (after learning) or the training loss's ``train_fall`` (validation-flat).

    Fix
    ---
    With a tiny lr: ``lr-sqrt-scaling`` (undo a linear rule that shrank it), then ``lr-warmup``.
    With a large lr: ``lower-lr``, then ``lr-warmup``.  Otherwise ``lr-warmup`` and ``lower-lr``.
    After learning and for a flat validation loss: ``lower-lr`` (smaller steps settle below the
    stalled level; a decay from the plateau's start, step or cosine, does the same without slowing
    the first epochs), ``lr-sqrt-scaling`` when the lr is already tiny.  A warmup is about the first
    steps and does not fit a plateau that comes later.

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
    after_learned, after_kept, after_band, after_stretch, after_fall, lr_decayed
        The after-learning signature's thresholds (0.2, 0.1, 0.05, 0.6, 0.03, 0.1; see above).
    after_min_points
        Points the after-learning signature needs (20).
    val_band, val_points, val_train_fall
        The validation-flat signature's thresholds (0.02, 10, 0.02).
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
        after_learned: float = 0.2
        after_kept: float = 0.1
        after_band: float = 0.05
        after_stretch: float = 0.6
        after_fall: float = 0.03
        lr_decayed: float = 0.1
        after_min_points: int = 20
        val_band: float = 0.02
        val_points: int = 10
        val_train_fall: float = 0.02

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        loss, how = signals.training_loss(run)
        loss, why = signals.usable(loss, how, params.min_points, finite_only=False)
        if loss is None:
            yield self.skip(why)
            return
        stuck = self._stuck_stretch(loss.values, params)
        if stuck is None:
            later = self._after_learning(run, loss, params) or self._validation_flat(run, loss, params)
            if later is not None:
                yield self._later_finding(run, loss, how, later)
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
            "signature": "from-start",
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

    # --- after learning, and a flat validation loss ----------------------------------------------
    def _after_learning(self, run: Any, loss: Any, params: Any) -> dict[str, Any] | None:
        """The after-learning signature (see the class docstring): the plateau's numbers, or None."""
        y, steps = signals.as_array(loss.values), signals.as_array(loss.steps)
        n = len(y)
        if n < params.after_min_points:
            return None
        sm = signals.smooth(y, 3 if n < 40 else 5)
        noise = float(np.nan_to_num(signals.noise_scale(y)))
        start = float(np.nanmax(sm[:max(3, n // 20)]))
        level = signals.head_tail(y, 0.1)[1]
        if not (start > 0 and level > 0):
            return None  # a loss that crosses zero has no level to hold a share of
        if start - level < max(10 * noise, params.after_learned * start) or level < params.after_kept * start:
            return None  # it did not learn, or it learned nearly all there was (converged)
        outside = np.flatnonzero(np.abs(sm - level) > max(3 * noise, params.after_band * level))
        k = int(outside[-1]) + 1 if outside.size else 0
        if (n - k) / n < params.after_stretch or n - k < 10:
            return None
        trend = signals.theil_sen(steps[k:], y[k:])
        fall = -trend.slope * (steps[-1] - steps[k])
        if not np.isfinite(fall) or fall > params.after_fall * level:
            return None  # still falling
        lr = _lr_state(run, steps[k], params.lr_decayed)
        if lr["state"] == "decayed" or _still_improving(run, steps[k]):
            return None  # annealed and converged, or validation still gets better
        terms = _trading_term(run, loss, k, level)
        if lr["state"] == "unknown" and terms is None:
            return None  # a flat end with nothing to tell it from a converged run
        return {"signature": "after-learning", "start": start, "level": level, "noise": noise,
                "plateau_from": float(steps[k]), "plateau_to": float(steps[-1]), "plateau_share": (n - k) / n,
                "fall": fall, "slope": float(trend.slope), "lr": lr, "term": terms, "points": n}

    def _validation_flat(self, run: Any, loss: Any, params: Any) -> dict[str, Any] | None:
        """The validation-flat signature (see the class docstring): its numbers, or None."""
        vl = run.role(VAL_LOSS)
        if vl is None:
            return None
        v, vs = signals.as_array(vl.values), signals.as_array(vl.steps)
        v, vs = v[np.isfinite(v)], vs[np.isfinite(v)]
        if v.size < params.val_points:
            return None
        level = float(np.median(v))
        sm = signals.smooth(v, 3)
        spread = (float(np.nanmax(sm)) - float(np.nanmin(sm))) / abs(level) if level else np.inf
        if spread > params.val_band:
            return None
        y, ts = signals.as_array(loss.values), signals.as_array(loss.steps)
        y = y[(ts >= vs[0]) & (ts <= vs[-1])]
        if y.size < 5:
            return None
        head, tail = signals.head_tail(y, 0.1)
        tau, p = signals.mann_kendall(y)
        train_fall = (head - tail) / abs(head) if head else 0.0
        if train_fall < max(params.val_train_fall, 2 * spread) or not (tau < 0 and p < 0.01):
            return None  # the training loss is flat too (the from-start check's case) or noisy
        lr, gain = _lr_state(run, float(vs[0]), params.lr_decayed), self._metric_gain(run)
        if lr["state"] == "decayed" or (gain is not None and gain["improves"]):
            return None
        return {"signature": "validation-flat", "tag": vl.tag, "level": level, "spread": spread,
                "val_min": float(np.min(v)), "val_max": float(np.max(v)), "evaluations": int(v.size),
                "plateau_from": float(vs[0]), "plateau_to": float(vs[-1]), "train_start": head,
                "train_end": tail, "train_fall": train_fall, "lr": lr, "metric": gain,
                "slope": float(signals.theil_sen(vs, v).slope), "points": int(v.size)}

    def _later_finding(self, run: Any, loss: Any, how: str, c: dict[str, Any]) -> Finding:
        """The finding for a plateau after learning or a flat validation loss, with its numbers."""
        lr, fmt = c["lr"], signals.fmt
        judgement, lr_value, lr_source = lr_judgement(run)
        fixes = ["lr-sqrt-scaling"] if judgement == "tiny" else ["lower-lr"]
        span = f"steps {c['plateau_from']:g}..{c['plateau_to']:g}"
        if c["signature"] == "after-learning":
            msg = (f"training loss learned ({fmt(c['start'])} -> {fmt(c['level'])}) and then sat within "
                   f"{signals.pct(c['fall'] / c['level'], 2)} of {fmt(c['level'], 4)} for "
                   f"{signals.pct(c['plateau_share'], 2)} of the run ({span}, slope {fmt(c['slope'])} per step)")
            term = c["term"]
            if term is not None:
                msg += (f"; its term {term['tag']} rose {fmt(term['first'])} -> {fmt(term['last'])} over that "
                        f"stretch ({fmt(term['ratio_to_min'], 2)}x its minimum) while the total stayed flat: "
                        f"the terms trade against each other")
            tags = [loss.tag] + ([term["tag"]] if term else [])
        else:
            msg = (f"validation loss {c['tag']} stayed within {signals.pct(c['spread'], 2)} of {fmt(c['level'], 4)} "
                   f"over all {c['evaluations']} evaluations ({span}) while the training loss fell "
                   f"{signals.pct(c['train_fall'], 2)} ({fmt(c['train_start'])} -> {fmt(c['train_end'])}): "
                   f"held-out loss stopped improving")
            tags = [c["tag"], loss.tag]
        if lr["ratio"] is not None:
            msg += f"; lr still {100 * lr['ratio']:.0f}% of its peak"
        msg += "; decay the lr from the plateau's start, or lower it"
        evidence = {**{k: v for k, v in c.items() if k != "lr"}, "curve": how, "lr_state": lr["state"],
                    "lr_end_to_peak": lr["ratio"], "lr_evidence": lr["source"], "lr": lr_value,
                    "lr_source": lr_source, "lr_judgement": judgement}
        return self.finding(msg, evidence=evidence, steps=(c["plateau_from"], c["plateau_to"]), tags=tags,
                            fixes=fixes, confidence=0.7 if c["signature"] == "after-learning" else 0.6)


_DECAYING = ("cos", "linear", "poly", "step", "exp", "plateau", "onecycle", "one_cycle", "inverse", "multistep")


def _lr_state(run: Any, from_step: float, decayed: float) -> dict[str, Any]:
    """Whether the lr was decayed to nothing by the end of the stretch from ``from_step``: the
    logged lr's last tenth there against its peak, else the config's schedule name
    (``decayed`` | ``kept`` | ``unknown``, with the ratio when logged)."""
    s = run.role(LR)
    if s is not None and signals.count_finite(s.values) >= 2:
        v, st = signals.as_array(s.values), signals.as_array(s.steps)
        v, st = v[np.isfinite(v)], st[np.isfinite(v)]
        late = v[st >= from_step] if np.any(st >= from_step) else v[-1:]
        peak = float(np.max(v))
        ratio = float(np.median(late[-max(1, late.size // 10):])) / peak if peak > 0 else None
        state = "decayed" if ratio is not None and ratio < decayed else "kept"
        return {"state": state, "ratio": ratio, "source": f"logged {s.tag}"}
    name = knobs.lookup(run.config or {}, "schedule")
    if isinstance(name, str) and name.strip():
        low = name.lower()
        state = "decayed" if any(w in low for w in _DECAYING) else "kept" if low in ("constant", "none", "fixed") else "unknown"
        return {"state": state, "ratio": None, "source": f"config schedule {name}"}
    return {"state": "unknown", "ratio": None, "source": "no lr logged, no schedule in the config"}


def _still_improving(run: Any, from_step: float) -> bool:
    """The validation loss still falls (significantly, by 2% of its level) or the validation metric
    still improves (significantly, by 1% of its scale) over the stretch from ``from_step``."""
    for role, rel in ((VAL_LOSS, 0.02), (VAL_METRIC, 0.01)):
        s = run.role(role)
        v, st = (signals.as_array(s.values), signals.as_array(s.steps)) if s is not None else (np.array([]),) * 2
        keep = np.isfinite(v) & (st >= from_step)
        if keep.sum() < 5:
            continue
        v, st = v[keep], st[keep]
        trend = signals.theil_sen(st, v)
        change = trend.slope * (st[-1] - st[0])
        lower_better = role == VAL_LOSS or (run.roles.direction(role) or "max") == "min"
        better = -change if lower_better else change
        scale = abs(float(np.median(v))) if role == VAL_LOSS else signals.metric_unit(v)
        if trend.direction == (-1 if lower_better else 1) and better >= rel * scale:
            return True
    return False


def _trading_term(run: Any, loss: Any, k: int, level: float) -> dict[str, Any] | None:
    """A logged term of the training loss that keeps rising from point ``k`` on while the total is
    flat.  The terms are the loss-named series logged at the training loss's steps (validation ones
    excluded) whose sum is the training loss to 1% at 95% of the points (found by trying subsets:
    the data says which series make up the total, whatever their names)."""
    steps, total = signals.as_array(loss.steps), signals.as_array(loss.values)
    cols: list[tuple[str, np.ndarray]] = []
    for tag in signals.loss_tags(run):
        s = run.series(tag)
        if tag == loss.tag or s is None or any(w in tag.lower() for w in ("val", "test", "eval")):
            continue
        _, ia, ib = np.intersect1d(steps, signals.as_array(s.steps), return_indices=True)
        if ia.size >= 0.9 * steps.size:
            col = np.full(steps.size, np.nan)
            col[ia] = signals.as_array(s.values)[ib]
            cols.append((tag, col))
    cols = cols[:8]
    for size in range(2, len(cols) + 1):
        for subset in itertools.combinations(cols, size):
            gap = np.abs(np.sum([c for _, c in subset], axis=0) - total) / np.maximum(np.abs(total), 1e-12)
            if np.mean(np.nan_to_num(gap, nan=1.0) < 0.01) >= 0.95:
                return _rising(subset, steps, k, level)
    return None


def _rising(terms: Any, steps: np.ndarray, k: int, level: float) -> dict[str, Any] | None:
    """The term rising most over the stretch from ``k``: significantly (Theil-Sen), by 1% of the
    total's level and 3 noise, holding 20% of the level at the end; None when none does."""
    best = None
    for tag, col in terms:
        ok = np.isfinite(col[k:])
        v, st = col[k:][ok], steps[k:][ok]
        if v.size < 10:
            continue
        trend = signals.theil_sen(st, v)
        rise = trend.slope * (st[-1] - st[0])
        noise = signals.noise_scale(v)
        last = float(np.median(v[-max(3, v.size // 10):]))
        if (trend.direction > 0 and rise >= max(0.01 * level, 3 * (noise if np.isfinite(noise) else 0.0))
                and last >= 0.2 * level and (best is None or rise > best["rise"])):
            low = float(np.nanmin(col))
            best = {"tag": tag, "rise": float(rise), "first": float(np.median(v[:max(3, v.size // 10)])),
                    "last": last, "share_of_level": last / level, "ratio_to_min": last / low if low > 0 else None}
    return best
