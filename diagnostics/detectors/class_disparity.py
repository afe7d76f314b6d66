"""The ``class-disparity`` detector: some classes learned far worse than others (seed 004)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import (
    CLASS_METRICS,
    SPARSITY_ACTIVE_FRACTION,
    TASK_LOSSES,
    UW_LOG_VARS,
    UW_WEIGHTS,
)

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

#: config / inputs keys that hold per-class training counts (the trainer records ``class_counts``)
COUNT_KEYS = ("class_counts", "train_class_counts", "class_count", "samples_per_class", "class_sizes")


def find_class_counts(config: dict, inputs: dict) -> dict[str, float] | None:
    """Per-class training counts recorded in the run's inputs or config (any nesting), or None."""
    for source in (inputs or {}, config or {}):
        for path, value in _walk_dicts(source):
            if path and str(path[-1]).lower() in COUNT_KEYS:
                counts = _as_counts(value)
                if counts:
                    return counts
    return None


def _walk_dicts(tree: Any, prefix: tuple = ()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield prefix + (k,), v
            yield from _walk_dicts(v, prefix + (k,))


def _as_counts(value: Any) -> dict[str, float] | None:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            try:
                out[str(k)] = float(v)
            except (TypeError, ValueError):
                return None
        return out or None
    if isinstance(value, (list, tuple)) and value:
        try:
            return {str(i): float(v) for i, v in enumerate(value)}
        except (TypeError, ValueError):
            return None
    return None


def _count_ratio(counts: dict[str, float] | None) -> float | None:
    """max/min of the positive recorded per-class training counts, or None when there are none."""
    positive = [v for v in (counts or {}).values() if v > 0]
    return max(positive) / min(positive) if positive else None


def _is_on(value: Any) -> bool:
    if value is None or value is False:
        return False
    s = str(value).strip().lower()
    return s not in ("", "none", "null", "uniform", "false", "no", "off", "0")


def _aggressive_sparse(run: Any, config: dict) -> float | None:
    """The active fraction when sparse training runs from the first epoch at <= 30%, else None."""
    logged = run.role(SPARSITY_ACTIVE_FRACTION)
    if logged is not None and len(logged.finite()):
        first = float(logged.finite().values[0])
        first = first / 100.0 if first > 1.0 else first
        return first if first <= 0.3 else None
    enabled, frac, start, _ = knobs.first_stage_sparse(config)
    if enabled and frac is not None and frac <= 0.3 and (start or 0.0) <= 1.0:
        return frac
    return None


class ClassDisparity(Detector):
    """Per-class accuracy or recall spreads far apart at the end of training.

    What it detects
    ---------------
    The per-class validation accuracy/recall tags (``val/acc/<class>``, the ``class_metrics`` role)
    of at least two classes, each smoothed as the median of its last ``last_evals`` evaluations, span
    more than ``max_spread`` (0.3 = 30 points) from the best to the worst class, and that spread is
    larger than ``noise_k`` times the classes' typical evaluation-to-evaluation noise (the median
    over classes of each one's robust noise scale), and every lagging class has stalled: its last
    ``last_evals`` evaluations gained at most ``max_recent_gain`` over the ``last_evals`` before.
    At least ``min_evals`` evaluations per class are needed.  Percentages
    (0..100) are converted to fractions.  In a multi-task run, ``val/acc/<task>`` tags whose key names
    a task (it has a task loss or uncertainty weight) are per-task accuracies and are left out.

    Why it matters
    --------------
    An overall accuracy hides which classes are learned.  In the seed, three classes sat at 60% and
    one at 100%: the model had learned one class and guessed the rest, the typical result of class
    imbalance (the minority classes contribute few gradients) or of a model too small for the
    distinctions asked of it.  Such a model fails on exactly the cases it was built for.

    Evidence
    --------
    Each class's final (smoothed) accuracy, the spread and its threshold, the worst and best class,
    the pooled noise, the per-class training counts and their max/min ratio when the run records them
    (``class_counts`` in the config, the trainer's meta or the ingest inputs), and whether the config
    already balances classes (``class_weights``, ``sampler``).

    Fix
    ---
    ``class-balance``: class-weighted loss and a balanced sampler.  When the config already balances
    both, or the recorded training counts are balanced (within ``balanced_ratio``), no recipe applies
    and the message says so (the disparity is then about capacity, data or training stability).  When sparse
    training keeps at most 30% of the weights from the first epoch (the seed's 10%), ``two-stage-
    sparse`` is recommended too, first unless the classes are known to be imbalanced.

    False positives
    ---------------
    Some classes are genuinely harder (cats vs. cars in CIFAR-10 can differ by 25 points in a healthy
    model); the default threshold of 30 points and the noise test keep most of those quiet, but a
    dataset with one truly ambiguous class can trip it: raise ``max_spread`` for such data.  Tiny
    validation sets make per-class accuracies coarse; the smoothing and noise test account for that.

    Parameters
    ----------
    max_spread
        Largest best-minus-worst class accuracy still called fine (0.3).
    last_evals
        Evaluations at the end smoothed into each class's final value (3).
    noise_k
        The spread must also exceed this many units of the pooled per-class noise (2.5).
    max_recent_gain
        A lagging class that gained more than this over its last ``last_evals`` evaluations (their
        median against the median of the ``last_evals`` before) is still learning: quiet (0.05).
    min_evals
        Evaluations per class needed (5).
    balanced_ratio
        Training counts within this max/min ratio are balanced: then no class-balance fix (1.5).
    imbalanced_ratio
        Training counts beyond this max/min ratio explain a gap even while the tail still climbs (3).
    """

    name = "class-disparity"
    severity = Severity.WARNING
    requires = (CLASS_METRICS,)
    fixes = ("class-balance",)

    @dataclass
    class Params:
        max_spread: float = 0.3
        last_evals: int = 3
        noise_k: float = 2.5
        max_recent_gain: float = 0.05
        balanced_ratio: float = 1.5
        min_evals: int = 5
        imbalanced_ratio: float = 3.0

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        classes = self._classes(run)
        if len(classes) < 2:
            yield self.skip("per-class accuracy logged for fewer than two classes")
            return
        fewest = min(classes.values(), key=len)
        if len(fewest) < params.min_evals:
            yield self.skip(signals.need_reason(fewest.tag, len(fewest), params.min_evals))
            return
        percent = max(float(np.max(s.values)) for s in classes.values()) > 1.5
        scale = 100.0 if percent else 1.0
        finals, noise = self._finals(classes, scale, params)
        worst = min(finals, key=finals.get)
        best = max(finals, key=finals.get)
        spread = finals[best] - finals[worst]
        if not spread > params.max_spread:
            return
        # the spread must also stand out from the per-evaluation noise (coarse small validation sets)
        if math.isfinite(noise) and not spread > params.noise_k * noise:
            return
        gains = self._lagging_gains(classes, finals, best, scale, params)
        config = run.config or {}
        counts = find_class_counts(config, getattr(run, "inputs", {}) or {})
        count_ratio = _count_ratio(counts)
        known_imbalanced = count_ratio is not None and count_ratio > params.imbalanced_ratio
        if gains and max(gains.values()) > params.max_recent_gain and not known_imbalanced:
            return
        weights = knobs.lookup(config, "class_weights")
        sampler = knobs.lookup(config, "sampler")
        low = sorted(k for k, v in finals.items() if finals[best] - v > params.max_spread)
        msg = (f"per-class accuracy spans {signals.fmt(spread * 100)} points at the end: "
               + ", ".join(f"{k} {signals.pct(finals[k])}" for k in sorted(finals, key=finals.get))
               + f" (threshold {signals.fmt(params.max_spread * 100)} points)")
        evidence: dict[str, Any] = {
            "final_per_class": finals,
            "spread": spread,
            "max_spread": params.max_spread,
            "worst_class": worst,
            "best_class": best,
            "classes_far_below_best": low,
            "noise": noise,
            "last_evals": params.last_evals,
            "recent_gain_of_lagging_classes": gains,
            "class_weights": weights,
            "sampler": sampler,
        }
        msg, fixes = self._advice(run, config, counts, count_ratio, weights, sampler, msg, evidence, params)
        tags = sorted(classes[k].tag for k in classes)
        steps = (min(float(s.steps[0]) for s in classes.values()), max(float(s.steps[-1]) for s in classes.values()))
        confidence = min(0.95, 0.6 + (spread - params.max_spread))
        yield self.finding(msg, evidence=evidence, steps=steps, tags=tags, fixes=fixes, confidence=confidence)

    @staticmethod
    def _classes(run: Any) -> dict[str, Any]:
        """The per-class accuracy series judged: per-class losses and per-task accuracies left out."""
        resolutions = getattr(run.roles, "groups", {}).get(CLASS_METRICS, {})
        # a multi-task run logs val/acc/<task>: tasks with different class counts (10-way digit vs
        # 2-way parity) have different natural accuracies; those are not classes of one task
        tasks = {k.lower() for role in (TASK_LOSSES, UW_WEIGHTS, UW_LOG_VARS) for k in run.roles.group(role)}
        classes = {}
        for key, s in run.group(CLASS_METRICS).items():
            res = resolutions.get(key)
            if res is not None and getattr(res, "direction", None) == "min":
                continue  # a per-class loss, not an accuracy
            if key.lower() in tasks:
                continue
            s = s.finite()
            if len(s):
                classes[key] = s
        return classes

    @staticmethod
    def _finals(classes: dict[str, Any], scale: float, params: Any) -> tuple[dict[str, float], float]:
        """Each class's final accuracy (median of its last evaluations, as a fraction) and the
        classes' pooled noise (median of their robust noise scales; nan when none is known)."""
        finals, noises = {}, []
        for key, s in classes.items():
            v = s.values / scale
            finals[key] = float(np.median(v[-max(1, params.last_evals):]))
            n = signals.noise_scale(v)
            if math.isfinite(n):
                noises.append(n)
        return finals, float(np.median(noises)) if noises else float("nan")

    @staticmethod
    def _lagging_gains(classes: dict[str, Any], finals: dict[str, float], best: str, scale: float,
                       params: Any) -> dict[str, float]:
        """What each lagging class gained over its last evaluations: a class still climbing (early in
        training, classes are learned one after another) may close the gap on its own."""
        k = max(1, params.last_evals)
        gains = {}
        for key in classes:
            if finals[best] - finals[key] > params.max_spread:
                v = classes[key].values / scale
                prev = v[-2 * k:-k] if len(v) >= 2 * k else v[:max(1, len(v) - k)]
                gains[key] = finals[key] - float(np.median(prev))
        return gains

    @staticmethod
    def _advice(run: Any, config: dict, counts: Any, ratio: float | None, weights: Any, sampler: Any,
                msg: str, evidence: dict[str, Any], params: Any) -> tuple[str, list[str]]:
        """The fixes and the message's advice: class-balance unless the config or the counts say the
        classes are already balanced; two-stage-sparse when sparse training starts aggressive.
        Adds the counts and the sparsity it read to ``evidence``."""
        balanced_loss, balanced_sampler = _is_on(weights), _is_on(sampler)
        if counts:
            evidence["class_counts"] = counts
            evidence["count_ratio"] = ratio
            if ratio:
                positive = [c for c in counts.values() if c > 0]
                msg += f"; training counts range {min(positive):g}..{max(positive):g} ({signals.fmt(ratio, 3)}x)"
        if balanced_loss and balanced_sampler:
            fixes: list[str] = []
            msg += "; the config already balances the loss and the sampler, so look at capacity and data"
        elif ratio is not None and ratio < params.balanced_ratio:
            fixes = []
            msg += (f"; the training classes are balanced ({signals.fmt(ratio, 3)}x), so the gap is not from "
                    f"class frequency: look at capacity, the data and training stability")
        else:
            fixes = ["class-balance"]
        # seed 004: aggressive sparse training from the start costs the fine distinctions first
        sparse = _aggressive_sparse(run, config)
        if sparse is not None:
            evidence["sparse_active_fraction"] = sparse
            msg += (f"; sparse training keeps {signals.pct(sparse)} of the weights from the start, which "
                    f"removes the fine-grained features the weaker classes need")
            fixes = fixes + ["two-stage-sparse"] if fixes and ratio is not None and ratio >= params.balanced_ratio \
                else ["two-stage-sparse"] + fixes
        return msg, fixes
