"""The ``batch-loss-variance`` detector: per-batch loss spans orders of magnitude and never settles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import MIL_TEMPERATURE, TRAIN_LOSS_STEP

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


def mil_evident(run: Any) -> dict | None:
    """Evidence that the run trains a multiple-instance model (selection mode, temperature tag or a
    MIL model/loss name in the config)."""
    hard = knobs.hard_mil_selection(run.config or {})
    if hard:
        return hard
    if run.roles.tag(MIL_TEMPERATURE):
        return {"temperature_tag": run.roles.tag(MIL_TEMPERATURE)}
    for path, value in knobs.walk(run.config or {}):
        if path and path[-1] in ("name", "model", "loss", "arch") and isinstance(value, str) \
                and "mil" in value.lower().replace("-", "_").split("_"):
            return {"config": f"{'.'.join(path)}: {value}"}
    return None


Groups = list[tuple[np.ndarray, np.ndarray]]


def _merge_small(groups: Groups, min_size: int) -> Groups:
    """Merge consecutive groups until each holds at least ``min_size`` points (a short tail group
    joins the previous one)."""
    out: list[tuple[np.ndarray, np.ndarray]] = []
    acc_s: list[np.ndarray] = []
    acc_v: list[np.ndarray] = []
    for st, va in groups:
        acc_s.append(st)
        acc_v.append(va)
        if sum(a.size for a in acc_s) >= min_size:
            out.append((np.concatenate(acc_s), np.concatenate(acc_v)))
            acc_s, acc_v = [], []
    if acc_s:
        if out:
            st, va = out.pop()
            out.append((np.concatenate([st] + acc_s), np.concatenate([va] + acc_v)))
        else:
            out.append((np.concatenate(acc_s), np.concatenate(acc_v)))
    return out


class BatchLossVariance(Detector):
    """Per-batch training loss spans orders of magnitude within epochs and does not settle.

    What it detects
    ---------------
    The per-step training loss, split into epochs (ends from the logged ``epoch`` tag or the
    per-epoch loss; consecutive epochs are merged when fewer than ``min_window`` steps of one were
    logged; without epochs, ``windows`` equal windows).  In each window with at least ``min_window``
    points, the spread ratio ``q98 / q02`` of the positive losses.  It fires when, over the last
    third of the windows, the median ratio is at least ``min_ratio`` (100x: two orders of magnitude)
    and the loss has not settled: the median absolute spread ``q98 - q02`` of those windows is still at
    least ``min_spread`` of the starting loss level (median of the first window).

    Why it matters
    --------------
    When one batch scores 0.01 and the next 5.0 for the whole run, the gradient direction is decided
    by whichever batches happen to be extreme: the model is pushed back and forth and validation
    swings with it.  In multiple-instance learning the usual cause is hard (argmax) instance selection:
    a tiny change of scores switches the selected instance, and with it the loss.  Over-confident
    logits (no label smoothing) make single wrong samples cost 10x more than the rest.

    Evidence
    --------
    ``median_ratio`` and ``max_ratio`` over the last third, ``ratio_first_third`` for comparison,
    ``late_spread`` against ``start_level`` (``spread_share``), ``windows`` and how they were formed,
    the number of points, and the MIL evidence behind the first fix.

    Fix
    ---
    ``mil-soft-selection`` when the run is MIL with hard selection (soft, temperature-annealed
    selection); ``label-smoothing`` when none is configured; ``grad-clip`` when clipping is off.

    False positives
    ---------------
    A classifier that has converged has many per-batch losses near 0 and a few at 0.3: a large ratio
    but a tiny absolute spread compared with where it started, so the settle test keeps it quiet.
    With small batches the few hard samples of a converged classifier still cost 1-4 each while most
    batches score 1e-3, so the spread stays as wide as the starting level; but the typical batch
    loss (the late median) has then fallen ``converged_drop`` times (an order of magnitude) below
    the start, which a loss pushed back and forth by extreme batches does not do, and the detector
    stays quiet.
    Early in such a run (watched live) the typical loss is only ``falling_drop`` times down but
    still falling from window to window: the detector waits.
    Losses that can be negative (log-likelihoods of continuous outputs) have no meaningful ratio and
    are skipped.

    Parameters
    ----------
    min_ratio
        Median within-epoch ``q98/q02`` ratio in the last third to call it orders of magnitude (100).
    min_spread
        Late absolute spread, as a share of the starting loss level, to call it unsettled (0.5).
    windows
        Equal windows used when no epoch boundaries are logged (10).
    min_window
        Points a window needs to be judged (8).
    converged_drop
        Factor by which the late median batch loss must lie below the starting level for the run
        to count as converged despite its spread (10).
    falling_drop
        Factor below the starting level past which a typical batch loss that still falls (a
        significant downward trend of the window medians after the first) is left to settle
        before it is judged (5): a run watched live is judged on its prefix.
    few_windows
        Below this many windows after the first a downward trend of the window medians counts as
        still falling without a significant test (8): four or five medians cannot reach p < 0.05
        unless every one is lower than the last.
    min_points
        Per-step points needed (50).
    """

    name = "batch-loss-variance"
    severity = Severity.WARNING
    requires = (TRAIN_LOSS_STEP,)
    fixes = ("mil-soft-selection", "label-smoothing", "grad-clip")

    @dataclass
    class Params:
        min_ratio: float = 100.0
        min_spread: float = 0.5
        windows: int = 10
        min_window: int = 8
        few_windows: int = 8
        min_points: int = 50
        converged_drop: float = 10.0
        falling_drop: float = 5.0

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        s, why = signals.usable(run.role(TRAIN_LOSS_STEP), "no per-step training loss logged", params.min_points)
        if s is None:
            yield self.skip(why)
            return
        if np.mean(s.values <= 0) > 0.05:
            yield self.skip(f"{s.tag} is zero or negative in {signals.pct(float(np.mean(s.values <= 0)))} "
                            "of the steps; a max/min ratio is meaningless")
            return
        groups, how = self._windows(run, s, params)
        if len(groups) < 3:
            yield self.skip(f"only {len(groups)} windows of {params.min_window}+ points in {s.tag}, need 3")
            return
        judged = self._judge(groups, params)
        if judged is not None:
            yield self._finding(run, s, how, judged, params)

    @staticmethod
    def _windows(run: Any, s: Any, params: Any) -> tuple[Groups, str]:
        """The per-step loss split into epochs (merged up to ``min_window`` points), else into
        ``windows`` equal windows; with how they were formed."""
        bounds = signals.epoch_boundaries(run)
        groups: Groups = []
        how = "epochs"
        if bounds is not None:
            groups = _merge_small(signals.group_by_boundaries(s.steps, s.values, bounds), params.min_window)
            merged = max(1, int(round(len(bounds) / max(len(groups), 1))))
            if merged > 1:
                how = f"epochs, about {merged} per window (few logged steps per epoch)"
        if len(groups) < 3:
            how = f"{params.windows} equal windows"
            n = len(s)
            edges = np.linspace(0, n, params.windows + 1).astype(int)
            groups = [(s.steps[a:b], s.values[a:b]) for a, b in zip(edges[:-1], edges[1:])
                      if b - a >= params.min_window]
        return groups, how

    @staticmethod
    def _judge(groups: Groups, params: Any) -> dict[str, Any] | None:
        """Spread ratio and absolute spread per window, and whether the last third is wide and
        unsettled; None when it is not (or too few windows hold enough positive losses)."""
        stats = []
        for st, va in groups:
            pos = va[va > 0]
            if pos.size < params.min_window:
                continue
            lo, hi = np.percentile(pos, [2, 98])
            stats.append((float(st[0]), float(st[-1]), float(hi / lo) if lo > 0 else float("inf"),
                          float(hi - lo), float(np.median(pos))))
        if len(stats) < 3:
            return None
        k = max(1, len(stats) // 3)
        late, early = stats[-k:], stats[:k]
        ratios = np.array([st[2] for st in late])
        median_ratio = float(np.median(ratios))
        late_spread = float(np.median([st[3] for st in late]))
        late_median = float(np.median([st[4] for st in late]))
        start_level = float(np.median(groups[0][1]))
        if start_level <= 0:
            return None
        share = late_spread / start_level
        if median_ratio < params.min_ratio or share < params.min_spread:
            return None
        if late_median * params.converged_drop <= start_level:
            return None  # the typical batch is fit: the spread is a few hard samples per small batch
        medians = [st[4] for st in stats[1:]]
        if late_median * params.falling_drop <= start_level and len(medians) >= 3:
            tau, p = signals.mann_kendall(medians)
            if tau < 0 and (p < 0.05 or len(medians) < params.few_windows):
                # well down and still coming down (on a few windows a downward tau is all there is
                # to see): settling is under way, judge it later
                return None
        return {"late": late, "early": early, "k": k, "ratios": ratios, "median_ratio": median_ratio,
                "late_spread": late_spread, "late_median": late_median, "start_level": start_level,
                "share": share, "windows": len(stats)}

    def _finding(self, run: Any, s: Any, how: str, j: dict[str, Any], params: Any) -> Finding:
        config = run.config or {}
        mil = mil_evident(run)
        smoothing = knobs.lookup_float(config, "label_smoothing")
        fixes = (["mil-soft-selection"] if mil else [])
        if not (smoothing is not None and smoothing > 0):
            fixes.append("label-smoothing")
        if not knobs.has_grad_clip(config):
            fixes.append("grad-clip")
        late, k, ratios = j["late"], j["k"], j["ratios"]
        median_ratio, share = j["median_ratio"], j["share"]
        first_step, last_step = late[0][0], late[-1][1]
        msg = (f"per-step {s.tag} spans {median_ratio:.0f}x (q98/q02, median over the last {k} "
               f"{'epochs' if how == 'epochs' else 'windows'}; max {float(np.max(ratios)):.0f}x) and has not "
               f"settled: its late spread {signals.fmt(j['late_spread'])} is {share:.2g}x the starting level "
               f"{signals.fmt(j['start_level'])}")
        if mil:
            msg += "; the run uses multiple-instance selection" + (
                f" ({mil['mil_selection']})" if "mil_selection" in mil else "")
        evidence = {
            "median_ratio": median_ratio,
            "max_ratio": float(np.max(ratios)),
            "ratio_first_third": float(np.median([st[2] for st in j["early"]])),
            "late_spread": j["late_spread"],
            "late_median": j["late_median"],
            "start_level": j["start_level"],
            "spread_share": share,
            "windows": j["windows"],
            "windows_from": how,
            "points": len(s),
            "mil": mil,
            "grad_clip": knobs.lookup_float(config, "grad_clip"),
            "grad_norm_median": signals.grad_norm_median(run),
            "label_smoothing": smoothing,
        }
        excess = np.log10(median_ratio / max(params.min_ratio, 1.0) + 1)
        conf = float(min(0.95, 0.6 + 0.1 * excess + 0.1 * min(share, 2)))
        return self.finding(msg, evidence=evidence, steps=(first_step, last_step), tags=[s.tag],
                            fixes=fixes, confidence=conf)
