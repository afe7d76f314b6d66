"""The ``accuracy-oscillation`` detector: a validation metric swings far beyond its noise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import (
    MIL_TEMPERATURE,
    SPARSITY_ACTIVE_FRACTION,
    VAL_METRIC,
    VAL_METRICS,
)

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


#: aggregate validation metrics worth judging besides the primary one (per-class or per-entity
#: metrics with small support swing by nature and are left to ``class-disparity``)
AGGREGATE = re.compile(r"^(acc|accuracy|acc1|top1|top_1|auc|roc_auc|auroc|f1|macro_f1|micro_f1|"
                       r"weighted_f1|f1_macro|f1_micro|map|map50|map_0\.5|map_50|precision|recall|"
                       r"iou|miou|dice|bal_acc|balanced_accuracy)$")


THRESHOLDED = re.compile(r"^(?:val[_/.]?|eval[_/.]?|valid[_/.]?)?(precision|recall)(?:\(\w\))?$")


def metric_candidates(run: Any) -> list[tuple[Any, str]]:
    """(series, direction) of the primary validation metric first, then the other aggregate
    validation metrics (accuracy, AUC, F1, mAP, precision, recall, ...) of the ``VAL_METRICS``
    group that have a direction; precision and recall only when no threshold-free one is logged."""
    out: list[tuple[Any, str]] = []
    seen: set[str] = set()
    primary = run.role(VAL_METRIC)
    if primary is not None:
        out.append((primary, run.roles.direction(VAL_METRIC) or "max"))
        seen.add(primary.tag)
    for key, res in sorted(run.roles.groups.get(VAL_METRICS, {}).items()):
        if res.tag in seen or res.direction not in ("max", "min"):
            continue
        if not AGGREGATE.match(str(key).lower()):
            continue
        s = run.series(res.tag)
        if s is not None:
            out.append((s, res.direction))
            seen.add(res.tag)
    # precision and recall trade off at a decision threshold that detectors and trainers often pick
    # anew each evaluation (YOLO: the best-F1 confidence); each alone swings while the model holds
    # steady, so when a threshold-free summary (mAP, AUC, F1, accuracy, IoU) is logged they are
    # not judged
    free = [(s, d) for s, d in out if not THRESHOLDED.search(_key(s.tag))]
    return free if free else out


def _key(tag: str) -> str:
    return str(tag).lower().rsplit("/", 1)[-1]


def sparse_active_from_start(run: Any) -> dict | None:
    """Evidence that sparse training is active from the first epoch (config or logged fraction)."""
    s = run.role(SPARSITY_ACTIVE_FRACTION)
    if s is not None:
        s = s.finite()
        if len(s):
            first = float(s.values[0])
            first = first / 100.0 if first > 1.0 else first
            if first < 1.0:
                return {"source": f"logged {s.tag}", "first_active_fraction": first}
            return None
    enabled, frac, start, where = knobs.first_stage_sparse(run.config or {})
    if enabled is False:
        return None
    if frac is not None and frac < 1.0 and (start is None or start <= 1.0) and (enabled or frac):
        return {"source": where, "active_fraction": frac, "start_epoch": 0.0 if start is None else start}
    return None


def _settle_index(y: np.ndarray, direction: str) -> int:
    """The first evaluation at which the metric (rolling median of 3) got 60% of the way from its
    worst to its best level: where the climb of learning ends."""
    sm = signals.smooth(y, 3)
    lo, hi = float(np.nanmin(sm)), float(np.nanmax(sm))
    reached = np.flatnonzero(sm >= lo + 0.6 * (hi - lo)) if direction == "max" else \
        np.flatnonzero(sm <= hi - 0.6 * (hi - lo))
    return int(reached[0]) if reached.size else 0


class AccuracyOscillation(Detector):
    """Validation metric swings far beyond its own noise, with repeated large reversals.

    What it detects
    ---------------
    The validation metric (the ``val_metric`` role, then the other aggregate validation metrics with
    a known direction), decomposed into zigzag legs (``signals.reversals``): monotone moves of at least
    ``min_swing`` of the metric's scale (0.15 = 15 points of accuracy) and at least ``noise_units``
    times its robust noise, capped at ``max_swing``.  Legs that end in the first ``ignore_first`` of
    the evaluations, or before the metric (smoothed) first gets 60% of the way from its worst to its
    best level, are ignored (early training is rough while the metric climbs).  It fires when the
    remaining legs change direction at least ``min_reversals`` times and at least one goes the bad
    way (a drop for accuracy, AUC, F1; a rise for a metric that is minimised), and the metric drops
    by ``min_swing`` at least ``min_drops`` times after the climb (one dip that recovers is two
    reversals, not an oscillation).  In a long run the legs are read off a rolling median of
    ``2 * (n // evals_per_window_point) + 1`` of the ``n`` evaluations: a dip of one or two evaluations in
    300 is evaluation noise on a small validation set, while an excursion that lasts, or a strict
    epoch-to-epoch alternation (whose median still alternates), counts.  A steady rise, a single
    drop (``accuracy-collapse``), early roughness or noise do not fire.  Only bounded metrics (0-1 or
    0-100) are judged; besides the primary metric, only aggregate ones (accuracy, AUC, F1, mAP,
    precision, recall, IoU), not per-class or per-entity metrics with small support.  Precision and recall
    are judged only when no threshold-free metric is logged beside them: they trade off at a
    decision threshold that is often picked anew at each evaluation.

    Why it matters
    --------------
    A model whose validation accuracy goes 85.9% -> 7% -> 64% is not converging to anything: each epoch
    lands on a different solution.  The best checkpoint is luck, and the final one may be the worst.
    Common causes: sparse masks re-drawn from the first epoch, hard (argmax) instance selection in
    multiple-instance learning, an lr too large for the batch size.

    Evidence
    --------
    ``largest_swing`` (the largest move the bad way, with the steps it spans), ``reversals``,
    ``bad_swings`` (count of drops),
    ``min_swing_used`` (the amplitude threshold actually applied), ``noise``, ``unit`` (1 or 100),
    the legs themselves (step from, step to, change), the other oscillating metrics, and the evidence
    behind the fixes (sparse training settings, MIL selection mode).

    Fix
    ---
    ``two-stage-sparse`` when sparse training is active from the start (config or a logged active
    fraction below 1 from the first epoch); ``mil-soft-selection`` for hard MIL selection; then
    ``lower-lr`` and ``grad-clip``.

    False positives
    ---------------
    Tiny validation sets make accuracy jump in coarse steps; the threshold scales with the metric's
    own noise, so only swings far beyond it count.  Warm restarts lower accuracy briefly by a few
    points, well under the 15-point default.  Detection metrics of long runs (precision and recall
    at the best-F1 threshold, mAP on a few hundred images) dip by 20-35 points for an evaluation or
    two and come back: the rolling median of a long run removes such dips, and a single dip after
    the climb is not enough.

    Parameters
    ----------
    min_swing
        Smallest leg that counts, as a share of the metric's scale (0.15).
    noise_units
        Smallest leg that counts, in units of the metric's robust noise (5).
    max_swing
        Cap on the noise-based threshold, as a share of the scale (0.3): an oscillation inflates the
        point-to-point noise estimate itself, and must not hide behind it.
    min_reversals
        Direction changes needed (2).
    ignore_first
        Share of the evaluations whose legs are ignored (0.25): early training is rough while the
        metric climbs; a swing counts when it ends after this point.
    min_points
        Evaluations needed (6).
    evals_per_window_point
        Evaluations per two points of the rolling-median window the legs are read from (100: no
        smoothing below 100 evaluations, 7 points at 300).
    min_drops
        Drops of ``min_swing`` the bad way needed after the climb (2).
    """

    name = "accuracy-oscillation"
    severity = Severity.WARNING
    requires_any = (VAL_METRIC, VAL_METRICS)
    fixes = ("two-stage-sparse", "mil-soft-selection", "lower-lr", "grad-clip")

    @dataclass
    class Params:
        min_swing: float = 0.15
        noise_units: float = 5.0
        max_swing: float = 0.3
        min_reversals: int = 2
        ignore_first: float = 0.25
        min_points: int = 6
        evals_per_window_point: int = 100
        min_drops: int = 2

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        cands = metric_candidates(run)
        if not cands:
            yield self.skip("no validation metric logged")
            return
        results = []
        short = []
        for series, direction in cands:
            s = series.finite()
            if len(s) < params.min_points:
                short.append(signals.need_reason(s.tag, len(s), params.min_points))
                continue
            r = self._judge(s, direction, params)
            if r is not None:
                results.append(r)
        if not results:
            if short and len(short) == len(cands):
                yield self.skip("; ".join(short))
            return
        results.sort(key=lambda r: -r["largest_swing_relative"])
        best = results[0]
        tag = best["tag"]
        fixes: list[str] = []
        evidence: dict[str, Any] = {k: v for k, v in best.items() if k != "tag"}
        sparse = sparse_active_from_start(run)
        if sparse:
            fixes.append("two-stage-sparse")
            evidence["sparse_from_start"] = sparse
        mil = knobs.hard_mil_selection(run.config or {})
        if mil:
            fixes.append("mil-soft-selection")
            evidence["mil"] = mil
        elif run.roles.tag(MIL_TEMPERATURE):
            evidence["mil"] = {"temperature_tag": run.roles.tag(MIL_TEMPERATURE)}
        fixes += ["lower-lr", "grad-clip"]
        evidence["grad_norm_median"] = signals.grad_norm_median(run)
        if len(results) > 1:
            evidence["also_oscillating"] = [r["tag"] for r in results[1:]]
        fmt = signals.pct if best["unit"] == 1.0 else signals.fmt
        leg = best["largest_leg"]
        msg = (f"{tag} reversed direction {best['reversals']} times with swings beyond "
               f"{fmt(best['min_swing_used'])}; largest drop: {fmt(leg['from_value'])} -> "
               f"{fmt(leg['to_value'])} between steps {leg['from_step']:g} and {leg['to_step']:g} "
               f"({best['largest_swing_in_noise_units']:.0f}x its noise)")
        if len(results) > 1:
            msg += f"; also {', '.join(evidence['also_oscillating'])}"
        if sparse:
            msg += "; sparse training is active from the first epoch"
        if mil:
            msg += f"; MIL selection is {mil['mil_selection']}"
        excess = best["largest_swing_relative"] - params.min_swing
        conf = float(min(0.95, 0.6 + 0.1 * best["reversals"] + 0.2 * excess))
        yield self.finding(msg, evidence=evidence, steps=best["steps"],
                           tags=[tag] + evidence.get("also_oscillating", []), fixes=fixes,
                           confidence=conf)

    @staticmethod
    def _judge(s: Any, direction: str, params: Any) -> dict | None:
        y = s.values
        unit = signals.metric_unit(y)
        if unit not in (1.0, 100.0):
            return None  # unbounded metric: no scale to call a swing large on
        noise = signals.noise_scale(y)
        noise = noise if np.isfinite(noise) else 0.0
        threshold = max(params.min_swing * unit, min(params.noise_units * noise, params.max_swing * unit))
        # in a long run one evaluation is a sliver of training: a dip of one or two evaluations on a
        # small validation set is noise, not a failure to settle.  The legs are read off a rolling
        # median whose window grows with the evaluations (``evals_per_window_point``), which keeps
        # every excursion that lasts longer and keeps a
        # strict epoch-to-epoch alternation too (a median of an alternating series alternates)
        window = 2 * (len(y) // params.evals_per_window_point) + 1
        all_legs = signals.reversals(y, threshold, window)
        settled = _settle_index(y, direction)
        start = max(params.ignore_first * (len(y) - 1), settled)
        # the first part of training is often rough while the metric climbs; an oscillation is a
        # failure to settle, so only legs that end after ``ignore_first`` of the evaluations and
        # after the (smoothed) metric first got 60% of the way to its best level count
        legs = [leg for leg in all_legs if leg[1] > start]
        n_rev = max(len(legs) - 1, 0)
        bad_sign = -1.0 if direction == "max" else 1.0
        # repeated: the metric must drop (the bad way) by ``min_swing`` at least ``min_drops``
        # times after it settled; one dip that recovers, after the climb, is two reversals but
        # not an oscillation
        drops = [leg for leg in signals.reversals(y, params.min_swing * unit, window)
                 if leg[0] >= settled and leg[1] > start and np.sign(leg[2]) == bad_sign]
        if len(drops) < params.min_drops:
            return None
        bad = [leg for leg in legs if np.sign(leg[2]) == bad_sign]
        if n_rev < params.min_reversals or not bad:
            return None
        # the swing reported is the largest one the bad way (the seed's 85.9% -> 7%)
        big = max(bad, key=lambda leg: abs(leg[2]))
        legs_out = [
            {"from_step": float(s.steps[a]), "to_step": float(s.steps[b]), "change": float(c)}
            for a, b, c in legs
        ]
        return {
            "tag": s.tag,
            "direction": direction,
            "reversals": n_rev,
            "bad_swings": len(bad),
            "largest_swing": abs(big[2]),
            "largest_swing_relative": abs(big[2]) / unit,
            "largest_swing_in_noise_units": abs(big[2]) / noise if noise > 0 else float("inf"),
            "largest_leg": {
                "from_step": float(s.steps[big[0]]),
                "to_step": float(s.steps[big[1]]),
                "from_value": float(y[big[0]]),
                "to_value": float(y[big[1]]),
            },
            "min_swing_used": threshold,
            "noise": noise,
            "unit": unit,
            "points": len(s),
            "legs": legs_out[:20],
            "steps": (float(s.steps[legs[1][0]]), float(s.steps[legs[-1][1]])),
        }
