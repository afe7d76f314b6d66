"""The ``uncertainty-weights-similar`` detector: learned multi-task weights that never learn (seed 003)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.run import Series
from trainfix.diagnostics.roles_vocab import LR, TASK_LOSSES, UW_LOG_VARS, UW_WEIGHTS

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class UncertaintyWeightsSimilar(Detector):
    """Learned multi-task loss weights stay equal and frozen while the task losses differ.

    What it detects
    ---------------
    Uncertainty (Kendall et al.) weighting learns one log-variance ``s_i`` per task and weights each
    task loss by ``exp(-s_i)``.  The detector reads the weights (``uw/weight/<task>``), else the
    log-variances (``uw/log_var/<task>``, converted with ``exp(-s)``), else sigma tags (``1/sigma^2``),
    and fires when, for two or more tasks,

    * the weights end within a small band of each other: the spread of the per-task medians over
      the last quarter is at most ``max_band`` (0.01) or ``max_band_rel`` (5%) of their mean, and
    * no weight moves: each task's median over the last quarter differs from its median over the
      first quarter by less than ``max_move`` (5%) of its level, and
    * the task losses (``loss/task/<task>``), when logged, differ: the largest median is at least
      ``min_loss_ratio`` (1.5x) the smallest.

    Why it matters
    --------------
    The weighting's optimum is ``s_i = log L_i``, so a learned weight is driven toward ``1/L_i``:
    tasks with different losses must end with different weights.  Equal, frozen weights mean the
    log-variances are not being learned at all and the "adaptive" weighting is a fixed, arbitrary
    one (seed: all weights about 0.08, differences under 0.01, while accuracy collapsed).

    Evidence
    --------
    Per-task start and end weights, their band, the largest movement, the task losses with the
    weights ``1/L_i`` they call for, the cause the data points to: **not in the optimizer** (every
    weight exactly constant, or the config says ``log_var_in_optimizer: false``) or **starved by a
    tiny lr** (weights move, but by less than the threshold, and the lr in the config or log is small),
    and the config values of the log-variance init, bounds, lr and optimizer flag.

    Fix
    ---
    ``uncertainty-reinit``: put the log-variances in the optimizer with their own, adequate lr, and
    initialise them with small random values inside sensible bounds.

    False positives
    ---------------
    Tasks whose losses really are about equal have about equal optimal weights: when task losses are
    logged and within ``min_loss_ratio`` of each other the detector stays quiet.  When task losses are
    not logged it still fires (equal and frozen is suspicious on its own) with lower confidence.
    Very short runs, where the log-variances have had no time to move, need ``min_points`` points.

    Parameters
    ----------
    max_band
        Largest absolute spread of the final weights still called "similar" (0.01).
    max_band_rel
        ... or largest spread relative to their mean (0.05).
    max_move
        Largest relative movement (first quarter to last quarter) still called "frozen" (0.05).
    min_loss_ratio
        Task losses differ when the largest median is this many times the smallest (1.5).
    exact_spread
        Relative spread at or below which a weight counts as exactly constant (1e-6).
    small_lr
        An lr at or below this counts as tiny when explaining the cause (1e-4).
    min_points
        Points per weight needed (5).
    """

    name = "uncertainty-weights-similar"
    severity = Severity.WARNING
    requires_any = (UW_WEIGHTS, UW_LOG_VARS)
    fixes = ("uncertainty-reinit",)

    @dataclass
    class Params:
        max_band: float = 0.01
        max_band_rel: float = 0.05
        max_move: float = 0.05
        min_loss_ratio: float = 1.5
        exact_spread: float = 1e-6
        small_lr: float = 1e-4
        min_points: int = 5

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        weights, source = self._weights(run)
        if len(weights) < 2:
            yield self.skip("fewer than two learned task weights logged (uw/weight/<task> or uw/log_var/<task>)")
            return
        short = [w for w in weights.values() if len(w) < params.min_points]
        if short:
            s = short[0]
            yield self.skip(signals.need_reason(s.tag, len(s), params.min_points))
            return
        moved = _Movement.of(weights)
        if not (moved.similar(params) and moved.frozen(params)):
            return
        losses = _TaskLosses.of(run)
        if losses.ratio is not None and losses.ratio < params.min_loss_ratio:
            return  # tasks about equally hard: equal weights are right
        yield self._finding(run, weights, source, moved, losses, params)

    def _finding(self, run: Run, weights: dict[str, Series], source: str, moved: _Movement,
                 losses: _TaskLosses, params: Params) -> Finding:
        """The finding: the weights' start and end, the task losses they ignore, and the cause."""
        config = run.config or {}
        cause, why, lr_used, exact = _cause(run, config, moved, params)
        starts, ends, band, mean = moved.starts, moved.ends, moved.band, moved.mean
        largest_move = max(moved.moves.values())
        loss_medians, loss_ratio = losses.medians, losses.ratio
        shown = ", ".join(f"{t} {signals.fmt(starts[t])}->{signals.fmt(ends[t])}" for t in sorted(weights))
        within = "identical to each other" if band == 0 else f"within {signals.fmt(band)} of each other"
        msg = (f"{len(weights)} learned task weights stay {within} and move "
               f"at most {signals.pct(largest_move)} ({shown})")
        if loss_medians:
            msg += (" while the task losses differ " + (f"{signals.fmt(loss_ratio, 3)}x " if loss_ratio else "")
                    + "(" + ", ".join(f"{t} {signals.fmt(v)}" for t, v in sorted(loss_medians.items()))
                    + "); Kendall weighting would drive them toward 1/L_i ("
                    + ", ".join(f"{t} {signals.fmt(1.0 / v)}" for t, v in sorted(loss_medians.items()) if v > 0)
                    + ")")
        msg += f"; {why}"
        cfg = knobs.config_values(config, "log_var_init", "log_var_init_std", "log_var_bounds", "log_var_lr",
                                  "log_var_in_optimizer")
        evidence = {
            "weights_from": source,
            "start_weights": starts,
            "end_weights": ends,
            "band": band,
            "max_band": params.max_band,
            "relative_band": band / mean if mean > 0 else None,
            "max_move": largest_move,
            "moves": moved.moves,
            "exactly_constant": exact,
            "task_losses": loss_medians,
            "task_loss_ratio": loss_ratio,
            "kendall_target_weights": {t: 1.0 / v for t, v in loss_medians.items() if v > 0},
            "cause": cause,
            "lr_for_log_vars": lr_used,
            "config": cfg,
        }
        tags = sorted([w.tag for w in weights.values()] + [s.tag for s in losses.series.values()])
        first = min(float(w.steps[0]) for w in weights.values())
        last = max(float(w.steps[-1]) for w in weights.values())
        confidence = 0.9 if loss_ratio is not None else 0.65
        return self.finding(msg, evidence=evidence, steps=(first, last), tags=tags, confidence=confidence)

    @staticmethod
    def _weights(run: Any) -> tuple[dict[str, Series], str]:
        """Task -> weight series (exp(-s) from log-variances, 1/sigma^2 from sigmas), and the source."""
        direct = {t: s.finite() for t, s in run.group(UW_WEIGHTS).items()}
        sigmas = {t: s for t, s in direct.items() if "sigma" in s.tag.lower()}
        plain = {t: s for t, s in direct.items() if t not in sigmas}
        if len(plain) >= 2:
            return plain, "weights"
        log_vars = {t: s.finite() for t, s in run.group(UW_LOG_VARS).items()}
        if len(log_vars) >= 2:
            return {t: Series(s.tag, s.steps, np.exp(-s.values)) for t, s in log_vars.items()}, "exp(-log_var)"
        if len(sigmas) >= 2:
            out = {}
            for t, s in sigmas.items():
                with np.errstate(divide="ignore"):
                    w = 1.0 / np.square(s.values)
                keep = np.isfinite(w)
                out[t] = Series(s.tag, s.steps[keep], w[keep])
            return out, "1/sigma^2"
        return plain, "weights"


# --- the steps of a judgement ------------------------------------------------------------------


@dataclass
class _Movement:
    """Per task: the weight's median over the first and the last quarter, its relative move, and
    its relative spread; across tasks: the band of the end weights and their mean size."""

    starts: dict[str, float]
    ends: dict[str, float]
    moves: dict[str, float]
    spreads: dict[str, float]
    band: float
    mean: float

    @classmethod
    def of(cls, weights: dict[str, Series]) -> _Movement:
        starts, ends, moves, spreads = {}, {}, {}, {}
        for task, w in weights.items():
            q = max(1, len(w) // 4)
            starts[task] = float(np.median(w.values[:q]))
            ends[task] = float(np.median(w.values[-q:]))
            level = abs(float(np.median(w.values))) or 1.0
            moves[task] = abs(ends[task] - starts[task]) / level
            spreads[task] = signals.relative_spread(w.values)
        end_vals = np.array(list(ends.values()))
        band = float(end_vals.max() - end_vals.min())
        mean = float(np.mean(np.abs(end_vals)))
        return cls(starts, ends, moves, spreads, band, mean)

    def similar(self, params: UncertaintyWeightsSimilar.Params) -> bool:
        """The end weights lie within the band (absolute or relative to their mean)."""
        return self.band <= params.max_band or (self.mean > 0 and self.band / self.mean <= params.max_band_rel)

    def frozen(self, params: UncertaintyWeightsSimilar.Params) -> bool:
        """No weight moves by ``max_move`` of its level or more."""
        return max(self.moves.values()) < params.max_move


@dataclass
class _TaskLosses:
    """The logged task losses, their medians over the last quarter, and the largest / smallest
    ratio of the positive medians (None with fewer than two)."""

    series: dict[str, Series]
    medians: dict[str, float]
    ratio: float | None

    @classmethod
    def of(cls, run: Run) -> _TaskLosses:
        losses = {t: s.finite() for t, s in run.group(TASK_LOSSES).items()}
        losses = {t: s for t, s in losses.items() if len(s)}
        medians = {t: float(np.median(s.values[-max(1, len(s) // 4):])) for t, s in losses.items()}
        positive = [v for v in medians.values() if v > 0]
        ratio = (max(positive) / min(positive)) if len(positive) >= 2 else None
        return cls(losses, medians, ratio)


def _cause(run: Run, config: dict, moved: _Movement,
           params: UncertaintyWeightsSimilar.Params) -> tuple[str, str, float | None, bool]:
    """What the data points to: ``(cause, why, lr the log-variances get, every weight exactly constant)``.

    ``not_in_optimizer`` when the config says so or no weight moves at all; ``starved_by_tiny_lr``
    when they move a little and the lr they get (``log_var_lr``, else the logged lr, else the
    config's) is at most ``small_lr``; else ``unclear``."""
    exact = all(sp <= params.exact_spread for sp in moved.spreads.values())
    largest_move = max(moved.moves.values())
    in_opt = knobs.lookup(config, "log_var_in_optimizer")
    lr_log = run.role(LR)
    lr_vals = lr_log.finite().values if lr_log is not None else np.zeros(0)
    lr_seen = float(np.max(lr_vals)) if lr_vals.size else None
    lv_lr = knobs.finite_float(knobs.lookup(config, "log_var_lr"))
    cfg_lr = knobs.finite_float(knobs.lookup(config, "scaled_lr")) or knobs.finite_float(knobs.lookup(config, "lr"))
    lr_used = lv_lr if lv_lr is not None else (lr_seen if lr_seen is not None else cfg_lr)
    if in_opt is False or (isinstance(in_opt, str) and in_opt.lower() in ("false", "no", "0")):
        cause = "not_in_optimizer"
        why = "the config leaves the log-variances out of the optimizer (log_var_in_optimizer: false)"
    elif exact:
        cause = "not_in_optimizer"
        why = ("every weight is exactly constant: the log-variances are not updated at all "
               "(not in the optimizer, or their lr is 0)")
        if lr_used is not None and lr_used <= params.small_lr:
            why += f"; the lr they would get is also tiny ({signals.fmt(lr_used)})"
    elif lr_used is not None and lr_used <= params.small_lr:
        cause = "starved_by_tiny_lr"
        why = (f"the weights move, but by at most {signals.pct(largest_move)}: the lr they get, "
               f"{signals.fmt(lr_used)}, is too small for them to reach 1/L_i")
    else:
        cause = "unclear"
        why = (f"the weights move by at most {signals.pct(largest_move)}; check that the "
               "log-variances are in the optimizer with an adequate lr")
    return cause, why, lr_used, exact
