"""The ``sparsity-gradient-vanishing`` detector: an auxiliary loss term too small to matter (seed 000)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

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
    from trainfix.diagnostics.run import Run, Series


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
        """One auxiliary term: a finding, a skip reason (text), or None (healthy or switched off).

        The steps read top to bottom: the term as it enters the total, its share of the total, the
        share of its raw value (it must be the weight that starves it), and its trend."""
        weight, scale = knobs.term_weight_scale(config, key)
        if weight == 0.0:
            return None  # switched off on purpose
        term = _term(key, w_series, r_series, weight, scale)
        if not isinstance(term, _Term):
            return term
        if len(term.t_values) < params.min_points or len(term.values) < params.min_points:
            return signals.need_reason(term.t_tag, min(len(term.t_values), len(term.values)), params.min_points)
        share = _share(term, all_weighted, totals)
        if not isinstance(share, _Share):
            return share
        # a term that mattered at the start and was minimised since is converged, not vanishing:
        # its share must be negligible from the first points on (largest share over the first 10%)
        if not (share.median < params.max_share and share.head < params.max_share):
            return None
        raw_share = _raw_share(term, r_series, share.total)
        if raw_share is not None and not raw_share >= params.max_share:
            return None
        trend = _trend(term)
        if trend.falls(params):
            return None
        return self._finding(term, share, raw_share, trend, config, params)

    def _finding(self, term: _Term, share: _Share, raw_share: float | None, trend: _Trend,
                 config: dict, params: Params) -> Finding:
        """The finding for a vanishing term: the fact with its numbers, the config that explains it."""
        key, weight, scale = term.key, term.weight, term.scale
        wk, sk, kk = knobs.term_knobs(key)
        cfg = knobs.config_values(config, wk, sk, kk)
        kind = knobs.lookup(config, kk) if kk else None
        is_sparsity = "spars" in key.lower()
        if is_sparsity:
            fixes = ["sparsity-rescale"] if str(kind).lower() == "l1" else ["sparsity-l1", "sparsity-rescale"]
        else:
            fixes = []
        lo_step, hi_step = float(term.steps[0]), float(term.steps[-1])
        fit = trend.fit
        rel_implied = trend.implied / trend.level if trend.level > 0 else float("nan")
        msg = (f"{key} term is {signals.pct(share.median)} of the total loss and moved "
               f"{signals.pct(rel_implied)} over steps {signals.fmt(lo_step)}-{signals.fmt(hi_step)} "
               f"(Theil-Sen slope {signals.fmt(fit.slope)}/step, 95% CI [{signals.fmt(fit.lo)}, "
               f"{signals.fmt(fit.hi)}]): its gradient is too small to shape the model")
        if cfg:
            msg += "; config: " + ", ".join(f"{k}: {v}" for k, v in cfg.items())
        if weight is not None and scale not in (None, 0.0, 1.0):
            msg += f" (effective factor {signals.fmt(weight / scale)})"
        if not fixes:
            msg += f"; raise {wk or 'its weight'} until the term is a few percent of the total"
        evidence = {
            "term": key,
            "share_of_total": share.median,
            "max_share_first_points": share.head,
            "raw_share_of_total": raw_share,
            "max_share": params.max_share,
            "weighted_from": term.how,
            "total_from": share.total_tag,
            "slope_per_step": fit.slope,
            "slope_ci": [fit.lo, fit.hi],
            "implied_change": trend.implied,
            "implied_rel_change": rel_implied,
            "first_level": trend.first,
            "last_level": trend.last,
            "rel_change_first_last": trend.rel,
            "noise_scale": trend.noise,
            "points": len(term.t_values),
            "config": cfg,
        }
        if weight is not None:
            evidence["weight"] = weight
        if scale is not None:
            evidence["scale"] = scale
        tags = sorted({term.tag, term.t_tag} | ({share.total_tag} if share.total is not None else set()))
        confidence = min(1.0, 0.6 + 0.4 * (1.0 - share.median / params.max_share))
        return self.finding(msg, evidence=evidence, steps=(lo_step, hi_step), tags=tags, fixes=fixes,
                            confidence=confidence)


# --- the steps of a judgement ------------------------------------------------------------------


@dataclass
class _Term:
    """One auxiliary term from the step it is active on: its weighted values as they enter the
    total (``how``: logged, or rebuilt from the config), and the values its trend is read from
    (the raw term when it is logged at least as densely, else the weighted one)."""

    key: str
    weight: float | None
    scale: float | None
    how: str
    tag: str
    steps: np.ndarray
    values: np.ndarray
    on_step: float
    t_tag: str
    t_steps: np.ndarray
    t_values: np.ndarray


@dataclass
class _Share:
    """The term's share of the total loss: median and largest over the first 10% of its points,
    and the total it was measured against (``total`` None: the sum of the logged terms)."""

    median: float
    head: float
    total: Series | None
    total_tag: str


@dataclass
class _Trend:
    """How the term moved: Theil-Sen fit, implied change over the analysed steps, level, noise,
    and the first/last levels with their relative change."""

    fit: Any
    implied: float
    level: float
    noise: float
    first: float
    last: float
    rel: float

    def falls(self, params: SparsityGradientVanishing.Params) -> bool:
        """Falling beyond its own noise, or a fast early fall from where it started."""
        drop = -self.implied
        falls = bool(self.fit.hi < 0 and self.level > 0 and drop > params.min_drop * self.level
                     and (not self.noise > 0 or drop > params.noise_k * self.noise))
        # ... or it fell a lot from where it started (a fast early drop, then flat near zero)
        return falls or bool(self.rel < -2.0 * params.min_drop
                             and (self.first - self.last) > params.noise_k * (self.noise or 0.0))


def _term(key: str, w_series: Series | None, r_series: Series | None, weight: float | None,
          scale: float | None) -> _Term | str | None:
    """The term as it enters the total (logged, else rebuilt as raw x weight / scale), from the
    step it becomes non-zero; a skip reason when it cannot be rebuilt, None when it is all zero."""
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
    return _Term(key, weight, scale, w_how, w_tag, w_steps, w_vals, on_step, t_tag, t_steps[t_keep], t_vals[t_keep])


def _share(term: _Term, all_weighted: dict[str, Series], totals: list[Series]) -> _Share | str | None:
    """The term's share of the total loss at each of its points.

    Denominator: the logged total (the one with most points over the term's steps), interpolated
    to the term's steps; else the sum of the logged terms.  A skip reason when there is no total
    to compare with, None when the total is zero everywhere."""
    lo_step, hi_step = float(term.steps[0]), float(term.steps[-1])
    total = max(totals, key=lambda t: len(window(t.steps, t.values, lo_step, hi_step)), default=None)
    if total is not None:
        total_tag = total.tag
        denom_i = np.abs(np.interp(term.steps, total.steps, total.values))
    else:
        parts = [np.abs(np.interp(term.steps, t.steps, t.values)) for t in all_weighted.values() if len(t)]
        if len(parts) < 2:
            return f"{term.key}: no total loss to compare with (no train/loss and a single term)"
        denom_i = np.sum(parts, axis=0)
        total_tag = "sum of " + ", ".join(sorted(t.tag for t in all_weighted.values()))
    ok = denom_i > 0
    if not ok.any():
        return None
    ratios = np.abs(term.values[ok]) / denom_i[ok]
    n_head = min(len(ratios), max(2, int(round(len(ratios) * 0.1))))
    return _Share(float(np.median(ratios)), float(np.max(ratios[:n_head])), total, total_tag)


def _raw_share(term: _Term, r_series: Series | None, total: Series | None) -> float | None:
    """The raw term's share of the logged total (times the configured divisor), or None when it
    cannot be measured.

    With the raw term logged, it must be the weight (x 1/scale) that makes the term small: a raw
    term that is itself ~0 next to the total is a satisfied regulariser, not a starved one."""
    if r_series is None or not len(r_series) or not (term.weight is not None or term.how == "logged"):
        return None
    if total is None:
        return None
    r_keep = r_series.steps >= term.on_step
    r_denom = np.abs(np.interp(r_series.steps[r_keep], total.steps, total.values))
    if not (r_denom > 0).any():
        return None
    # a configured divisor may already be inside the logged raw value (trainfix logs the term
    # after ``/ sparsity_scale``): undo it, the divisor is part of what starves it
    unscale = term.scale if (term.scale and term.scale > 0) else 1.0
    return float(np.median(np.abs(r_series.values[r_keep][r_denom > 0]) * unscale / r_denom[r_denom > 0]))


def _trend(term: _Term) -> _Trend:
    """The term's trend, read from ``term.t_values``."""
    fit = signals.theil_sen(term.t_steps, term.t_values)
    span = float(term.t_steps[-1] - term.t_steps[0])
    first, last = signals.head_tail(term.t_values, 0.1, 2)
    return _Trend(fit=fit, implied=fit.change_over(span), level=abs(signals.robust_level(term.t_values)),
                  noise=signals.noise_scale(term.t_values), first=first, last=last,
                  rel=signals.rel_change(first, last))
