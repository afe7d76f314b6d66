"""The ``sparsity-gradient-vanishing`` detector: an auxiliary loss term too small to matter (seed 000)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import (
    LOSS_TERMS,
    LOSS_TERMS_RAW,
    TASK_LOSSES,
    TRAIN_LOSS,
    TRAIN_LOSS_STEP,
    UW_LOG_VARS,
    UW_WEIGHTS,
    is_main_term,
)

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

def window(steps: np.ndarray, values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    keep = (steps >= lo) & (steps <= hi) & np.isfinite(values)
    return values[keep]


class SparsityGradientVanishing(Detector):
    """An auxiliary loss term too small to matter, and not falling.

    What it detects
    ---------------
    A regulariser or auxiliary loss term (sparsity, consistency, entropy, confidence: any logged
    ``loss/<term>`` other than the main classification/task term and other than the per-task terms
    of a multi-task loss, whose keys name a task) whose weighted value is a negligible share of the
    total loss (below ``max_share``, 1% by default) **and** that does not trend down beyond its own
    noise: its Theil-Sen slope interval does not lie below zero, or the fall it implies over the
    analysed steps is smaller than ``min_drop`` of its level or than ``noise_k`` noise units; and its
    last points are not more than ``2 x min_drop`` below its first (a fast early fall counts too).

    The share is the median, over the term's points, of ``|weighted term|`` over ``|total loss|``
    (the ``train/loss`` or ``train/loss_step`` role interpolated to the term's steps, else the sum of
    the logged terms).  A term that is exactly 0 at first (a consistency memory still empty) is
    judged from the step it becomes non-zero.  The share must stay negligible at every one of the
    first 10% of the points too, so a term that mattered early and was minimised since (an RPN
    objectness loss that drops from 0.78 to 0.001 in the first 20 steps) is not reported.  When the
    raw term is logged, its own share (times the configured divisor, which the raw value may already
    include) must be at least ``max_share``: it is the weight and divisor that make the term vanish,
    not a raw value that is itself ~0 (a satisfied regulariser).  When
    only the raw term is logged, the weighted value is rebuilt from the config as
    ``raw x weight / scale`` (knobs ``sparsity_weight``, ``sparsity_scale``, ``consistency_weight``,
    ``entropy_weight``, ``confidence_weight``).

    Why it matters
    --------------
    A term's gradient is scaled by the same factor as its value.  A sparsity term at 0.0005% of the
    loss receives a gradient 200000 times smaller than the classification term: the optimiser never
    sees it, the term never converges and the attention maps never become sparse, although the code
    "has" a sparsity loss.  The typical cause is a small weight (``lambda_sparsity: 0.001``) combined
    with an extra divisor (``/ 1000``) in the term itself.

    Evidence
    --------
    The share of the total (and the threshold), the term's Theil-Sen slope with its 95% interval and
    the relative change it implies, the term's noise scale, the first/last levels, the tags used, and
    the config values found for the term's weight, scale and kind (with the key they were found at, such
    as ``lambda_sparsity: 0.001``).

    Fix
    ---
    ``sparsity-l1`` (replace an entropy formulation with a sparsity measure that has a useful gradient)
    and ``sparsity-rescale`` (drop the divisor, raise the weight so the term is a few percent of the
    total).  For a non-sparsity term no recipe applies: the message names the weight to raise.

    False positives
    ---------------
    A term that is meant to be a tiny tie-breaker, or that is already at its optimum (a converged
    regulariser is flat by definition): the detector then still reports it, because from the logs alone
    "converged at 0.001%" and "never mattered" look alike; the config values in the evidence tell them
    apart.  Terms that are exactly zero or whose configured weight is 0 are treated as switched off and
    never reported; a term that falls clearly is never reported, whatever its share.

    Parameters
    ----------
    max_share
        Largest share of the total loss still called negligible (fraction, default 0.01 = 1%).
    min_drop
        A fall smaller than this fraction of the term's level counts as "not trending down" (0.1).
    noise_k
        ... or smaller than this many noise units of the term (3.0).
    min_points
        Points of the term needed to judge a trend (5).
    """

    name = "sparsity-gradient-vanishing"
    severity = Severity.WARNING
    requires_any = (LOSS_TERMS, LOSS_TERMS_RAW)
    fixes = ("sparsity-l1", "sparsity-rescale")

    @dataclass
    class Params:
        max_share: float = 0.01
        min_drop: float = 0.1
        noise_k: float = 3.0
        min_points: int = 5

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        weighted = {k: s.finite() for k, s in run.group(LOSS_TERMS).items()}
        raw = {k: s.finite() for k, s in run.group(LOSS_TERMS_RAW).items()}
        # per-task terms of a multi-task loss are main terms too (their keys name the tasks)
        tasks = {k.lower() for role in (TASK_LOSSES, UW_WEIGHTS, UW_LOG_VARS) for k in run.roles.group(role)}
        aux_keys = sorted({k for k in list(weighted) + list(raw) if not is_main_term(k) and k.lower() not in tasks})
        if not aux_keys:
            yield self.skip("no auxiliary loss term logged (only the main term, or no loss/<term> tags)")
            return
        config = run.config or {}
        totals = [s.finite() for s in (run.role(TRAIN_LOSS), run.role(TRAIN_LOSS_STEP)) if s is not None]
        totals = [s for s in totals if len(s)]

        judged = 0
        reasons: list[str] = []
        for key in aux_keys:
            result = self._judge(key, weighted.get(key), raw.get(key), weighted, totals, config, params)
            if isinstance(result, str):
                reasons.append(result)
                continue
            judged += 1
            if result is not None:
                yield result
        if not judged and reasons:
            yield self.skip("; ".join(reasons))

    # ------------------------------------------------------------------------------------------
    def _judge(self, key, w_series, r_series, all_weighted, totals, config, params) -> Finding | str | None:
        weight, scale = knobs.term_weight_scale(config, key)
        if weight == 0.0:
            return None  # switched off on purpose
        # the weighted term as it enters the total: logged, else rebuilt from raw x weight / scale
        if w_series is not None and len(w_series) >= 1:
            w_steps, w_vals, w_how = w_series.steps, w_series.values, "logged"
            w_tag = w_series.tag
        elif r_series is not None and weight is not None:
            w_steps = r_series.steps
            w_vals = r_series.values * weight / (scale if scale else 1.0)
            w_how = "raw x weight / scale from the config"
            w_tag = r_series.tag
        else:
            return f"{key}: only the raw term is logged and no weight for it in the config"
        active = np.flatnonzero(w_vals != 0.0)
        if not active.size:
            return None  # identically zero: switched off (aux-loss-dead handles constant terms)
        # a term that switches on later (a consistency memory filled after the first epoch) is
        # judged from the step it becomes active
        on_step = float(w_steps[active[0]])
        keep = w_steps >= on_step
        w_steps, w_vals = w_steps[keep], w_vals[keep]
        trend_series = r_series if (r_series is not None and len(r_series) >= len(w_steps)) else None
        t_steps = trend_series.steps if trend_series is not None else w_steps
        t_vals = trend_series.values if trend_series is not None else w_vals
        t_tag = trend_series.tag if trend_series is not None else w_tag
        t_keep = t_steps >= on_step
        t_steps, t_vals = t_steps[t_keep], t_vals[t_keep]
        if len(t_vals) < params.min_points or len(w_vals) < params.min_points:
            return signals.need_reason(t_tag, min(len(t_vals), len(w_vals)), params.min_points)

        lo_step, hi_step = float(w_steps[0]), float(w_steps[-1])
        # denominator: the logged total (the one with most points over the term's steps),
        # interpolated to the term's steps; else the sum of the logged terms
        total = max(totals, key=lambda t: len(window(t.steps, t.values, lo_step, hi_step)), default=None)
        if total is not None:
            total_tag = total.tag
            denom_i = np.abs(np.interp(w_steps, total.steps, total.values))
        else:
            parts = [np.abs(np.interp(w_steps, t.steps, t.values)) for t in all_weighted.values() if len(t)]
            if len(parts) < 2:
                return f"{key}: no total loss to compare with (no train/loss and a single term)"
            denom_i = np.sum(parts, axis=0)
            total_tag = "sum of " + ", ".join(sorted(t.tag for t in all_weighted.values()))
        ok = denom_i > 0
        if not ok.any():
            return None
        ratios = np.abs(w_vals[ok]) / denom_i[ok]
        share = float(np.median(ratios))
        if not share < params.max_share:
            return None
        # a term that mattered at the start and was minimised since is converged, not vanishing:
        # its share must be negligible from the first points on (largest share over the first 10%)
        n_head = min(len(ratios), max(2, int(round(len(ratios) * 0.1))))
        share_head = float(np.max(ratios[:n_head]))
        if not share_head < params.max_share:
            return None

        # with the raw term logged: it must be the weight (x 1/scale) that makes the term small; a
        # raw term that is itself ~0 next to the total is a satisfied regulariser, not a starved one
        raw_share = None
        if r_series is not None and len(r_series) and (weight is not None or w_how == "logged"):
            r_keep = r_series.steps >= on_step
            r_denom = np.abs(np.interp(r_series.steps[r_keep], total.steps, total.values)) if total is not None else None
            if r_denom is not None and (r_denom > 0).any():
                # a configured divisor may already be inside the logged raw value (trainfix logs the
                # term after ``/ sparsity_scale``): undo it, the divisor is part of what starves it
                unscale = scale if (scale and scale > 0) else 1.0
                raw_share = float(np.median(np.abs(r_series.values[r_keep][r_denom > 0]) * unscale
                                            / r_denom[r_denom > 0]))
                if not raw_share >= params.max_share:
                    return None

        trend = signals.theil_sen(t_steps, t_vals)
        span = float(t_steps[-1] - t_steps[0])
        level = abs(signals.robust_level(t_vals))
        noise = signals.noise_scale(t_vals)
        implied = trend.change_over(span)  # negative = falling
        first, last = signals.head_tail(t_vals, 0.1, 2)
        rel = signals.rel_change(first, last)
        drop = -implied
        falls = bool(trend.hi < 0 and level > 0 and drop > params.min_drop * level
                     and (not noise > 0 or drop > params.noise_k * noise))
        # ... or it fell a lot from where it started (a fast early drop, then flat near zero)
        falls = falls or bool(rel < -2.0 * params.min_drop and (first - last) > params.noise_k * (noise or 0.0))
        if falls:
            return None

        wk, sk, kk = knobs.term_knobs(key)
        cfg = knobs.config_values(config, wk, sk, kk)
        kind = knobs.lookup(config, kk) if kk else None
        is_sparsity = "spars" in key.lower()
        if is_sparsity:
            fixes = ["sparsity-rescale"] if str(kind).lower() == "l1" else ["sparsity-l1", "sparsity-rescale"]
        else:
            fixes = []
        rel_implied = implied / level if level > 0 else float("nan")
        msg = (f"{key} term is {signals.pct(share)} of the total loss and moved "
               f"{signals.pct(rel_implied)} over steps {signals.fmt(lo_step)}-{signals.fmt(hi_step)} "
               f"(Theil-Sen slope {signals.fmt(trend.slope)}/step, 95% CI [{signals.fmt(trend.lo)}, "
               f"{signals.fmt(trend.hi)}]): its gradient is too small to shape the model")
        if cfg:
            msg += "; config: " + ", ".join(f"{k}: {v}" for k, v in cfg.items())
        if weight is not None and scale not in (None, 0.0, 1.0):
            msg += f" (effective factor {signals.fmt(weight / scale)})"
        if not fixes:
            msg += f"; raise {wk or 'its weight'} until the term is a few percent of the total"
        evidence = {
            "term": key,
            "share_of_total": share,
            "max_share_first_points": share_head,
            "raw_share_of_total": raw_share,
            "max_share": params.max_share,
            "weighted_from": w_how,
            "total_from": total_tag,
            "slope_per_step": trend.slope,
            "slope_ci": [trend.lo, trend.hi],
            "implied_change": implied,
            "implied_rel_change": rel_implied,
            "first_level": first,
            "last_level": last,
            "rel_change_first_last": rel,
            "noise_scale": noise,
            "points": len(t_vals),
            "config": cfg,
        }
        if weight is not None:
            evidence["weight"] = weight
        if scale is not None:
            evidence["scale"] = scale
        tags = sorted({w_tag, t_tag} | ({total_tag} if total is not None else set()))
        confidence = min(1.0, 0.6 + 0.4 * (1.0 - share / params.max_share))
        return self.finding(msg, evidence=evidence, steps=(lo_step, hi_step), tags=tags, fixes=fixes,
                            confidence=confidence)
