"""The ``never-learned`` detector: the model learned nothing: frozen metrics, or loss and accuracy at chance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import (
    TRAIN_ACC,
    TRAIN_LOSS,
    TRAIN_LOSS_STEP,
    VAL_ACC,
    VAL_LOSS,
    VAL_METRIC,
)

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class NeverLearned(Detector):
    """The run learned nothing: a metric frozen from the start, or loss and accuracy at chance.

    What it detects
    ---------------
    Three signatures, any of which fires:

    * **frozen**: the validation metric, validation accuracy, validation loss or training loss holds
      the same value (relative spread at most ``frozen_spread``, 0.1%) from within its first
      ``frozen_start`` of points (20%) to the end, over at least ``min_points`` points.  A model
      that predicts one class for every input gives the same accuracy every epoch (a segmenter
      predicting background only scores 0.9866 forever); a loss identical to three decimals for
      1,400 epochs is not moving.  A metric frozen at its best possible value (accuracy 1, loss 0)
      is perfect, not stuck, and is left alone.
    * **chance**: the loss and the accuracy both sit at chance for K classes from the start: the
      loss's median within ``chance_band`` (15%) of ln K and the accuracy never more than
      ``chance_gap`` (10%) of the way from chance (1/K) to perfect.  K comes from the config (``num_classes``-style keys) or
      per-class tags; without them, from the accuracy itself (K = 1/median accuracy) when the loss
      agrees with ln K within the band: two independent measurements of the same K.
    * **constant outputs**: a loss that moves less than ``negligible`` (1%) over the whole run
      while sitting at a value a constant prediction gives (ln 2 = 0.693 for binary cross-entropy,
      0.25 for squared error on 0/1 targets with outputs stuck at 0.5, ln K for a uniform
      prediction over the config's K classes), within 2%; without a class count, ln K for K = 3..20
      within 0.2% (1.3864 = ln 4 to four decimals is no coincidence).

    Why it matters
    --------------
    Every epoch of such a run is wasted: the gradient does not reach the weights (frozen layers, a
    detached graph, a dead activation), the lr is so large the outputs saturate or so small nothing
    moves, or the labels do not match the inputs.  Other detectors look for changes; this one looks
    for the absence of any, which is what these runs show.

    Evidence
    --------
    ``signature`` (frozen, chance or constant-outputs), the tag and its level, the points and the
    stretch that was frozen (``frozen_from_step``, ``relative_spread``), for chance the ``classes``
    and where K came from, ``chance_loss`` (ln K), ``chance_accuracy`` (1/K) and the observed
    ``loss_median`` and ``accuracy_max``; the effective ``lr``, how it compares with the optimizer's
    range (``lr_judgement``) and the ``expected_lr`` to aim for when it is far off (``knobs.target_lr``).

    Fix
    ---
    With an lr far above the optimizer's range: ``lower-lr``.  Far below it: ``lr-sqrt-scaling``.
    Otherwise no config change is known to help: check that the parameters are trainable and reach
    the optimizer, that the loss is computed on the model's output (not a detached copy), and that
    labels line up with inputs.

    False positives
    ---------------
    Metrics computed on a validation set of a handful of samples take few distinct values and can
    repeat; the frozen stretch must start in the first 20% of the run and last to its end, so a
    run that learned first and then converged is not reported.  A constant metric that is not a
    model output (a logged hyper-parameter) is not read: only loss and metric roles are judged.
    A run whose loss went NaN or Inf freezes after it; that is ``nonfinite-loss``'s finding, and
    this detector stays quiet.

    Parameters
    ----------
    frozen_spread
        Largest relative spread (max - min) / |median| of a frozen stretch (0.001).
    frozen_start
        Share of the run within which the frozen stretch must begin (0.2).
    chance_band
        Relative distance of the loss from ln K still called chance (0.15).
    chance_gap
        Accuracy never more than this share of the way from 1/K to 1 is at chance (0.1).
    negligible
        Relative movement of a loss at a constant-output level called none (0.01).
    min_points
        Points needed in the series judged (5).
    """

    name = "never-learned"
    severity = Severity.WARNING
    requires_any = (TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS, VAL_METRIC, VAL_ACC, TRAIN_ACC)
    fixes = ("lower-lr", "lr-sqrt-scaling")

    @dataclass
    class Params:
        frozen_spread: float = 1e-3
        frozen_start: float = 0.2
        chance_band: float = 0.15
        chance_gap: float = 0.1
        negligible: float = 0.01
        min_points: int = 5

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        losses = self._losses(run)
        metrics = self._metrics(run)
        if not any(len(s) >= params.min_points for s, _ in losses + metrics):
            yield self.skip(f"no loss or metric with {params.min_points} points")
            return
        if any((t := run.series(tag)) is not None and not np.isfinite(t.values).all()
               for tag in signals.loss_tags(run)):
            return  # a NaN/Inf loss freezes everything after it: that is nonfinite-loss's finding
        result = (self._frozen(run, metrics + losses, params)
                  or self._chance(run, losses, metrics, params)
                  or self._constant_outputs(run, losses, params))
        if result is None:
            return
        message, evidence, series = result
        judgement, lr, lr_source = self._lr(run)
        evidence.update({"lr": lr, "lr_source": lr_source, "lr_judgement": judgement})
        fixes: list[str] = []
        if judgement == "large":
            fixes = ["lower-lr"]
        elif judgement == "tiny":
            fixes = ["lr-sqrt-scaling"]
        if fixes:
            config = run.config or {}
            family = knobs.optimizer_family(knobs.optimizer_name(config))
            evidence["expected_lr"] = knobs.target_lr(family, knobs.training_regime(config)[0], judgement)
            message += f"; lr {signals.fmt(lr)} is {judgement} for the optimizer"
        confidence = float(min(0.95, 0.6 + 0.03 * len(series)))
        yield self.finding(message, evidence=evidence, fixes=fixes, tags=[series.tag],
                           steps=(float(series.steps[0]), float(series.steps[-1])), confidence=confidence)

    # --- the series judged ---------------------------------------------------------------------
    @staticmethod
    def _losses(run: Any) -> list[tuple[Any, str]]:
        out = []
        train, _ = signals.training_loss(run)
        if train is not None:
            out.append((train, "min"))
        val = run.role(VAL_LOSS)
        if val is not None:
            out.append((val.finite(), "min"))
        return out

    @staticmethod
    def _metrics(run: Any) -> list[tuple[Any, str]]:
        out, seen = [], set()
        for role in (VAL_METRIC, VAL_ACC, TRAIN_ACC):
            s = run.role(role)
            if s is None or s.tag in seen or "loss" in s.tag.lower():
                continue
            seen.add(s.tag)
            direction = (run.roles.direction(role) or "max") if role == VAL_METRIC else "max"
            out.append((s.finite(), direction))
        return out

    # --- signatures ----------------------------------------------------------------------------
    def _frozen(self, run: Any, candidates: list[tuple[Any, str]], params: Any):
        for s, direction in candidates:
            n = len(s)
            if n < params.min_points:
                continue
            v = s.values
            start = _frozen_from(v, params.frozen_spread)
            if start is None or start > max(1, int(math.floor(params.frozen_start * n))) or n - start < params.min_points:
                continue
            level = float(np.median(v[start:]))
            if _at_best_bound(level, direction, v):
                continue
            spread = signals.relative_spread(v[start:])
            msg = (f"{s.tag} stayed at {signals.fmt(level, 4)} (spread {signals.pct(spread, 2)}) for "
                   f"{n - start} of its {n} points, from step {float(s.steps[start]):g} to the end: "
                   f"the model's output does not change")
            evidence = {"signature": "frozen", "tag": s.tag, "level": level, "points": n,
                        "frozen_points": n - start, "frozen_from_step": float(s.steps[start]),
                        "relative_spread": spread}
            return msg, evidence, s
        return None

    def _chance(self, run: Any, losses: list, metrics: list, params: Any):
        accs = [(s, d) for s, d in metrics if d == "max" and len(s) >= params.min_points
                and np.nanmax(s.values) <= 1.0 + 1e-9 and np.nanmin(s.values) >= 0]
        loss = next((s for s, _ in losses if len(s) >= params.min_points), None)
        if not accs or loss is None:
            return None
        acc = accs[0][0]
        classes, source = signals.number_of_classes(run)
        acc_median = float(np.median(acc.values))
        loss_median = float(np.median(loss.values))
        if classes is None:
            if not 0 < acc_median <= 0.5:
                return None
            classes = int(round(1.0 / acc_median))
            source = f"1 / median {acc.tag}"
        if classes < 2:
            return None
        chance_loss, chance_acc = math.log(classes), 1.0 / classes
        acc_max = float(np.max(acc.values))
        near = abs(loss_median - chance_loss) <= params.chance_band * chance_loss
        if not (near and acc_max <= chance_acc + params.chance_gap * (1.0 - chance_acc)):
            return None
        msg = (f"{loss.tag} (median {signals.fmt(loss_median)}) sits at the chance level ln {classes} = "
               f"{signals.fmt(chance_loss)} and {acc.tag} never rose above {signals.pct(acc_max)} "
               f"(chance {signals.pct(chance_acc)} for {classes} classes) in {len(acc)} evaluations")
        evidence = {"signature": "chance", "tag": acc.tag, "loss_tag": loss.tag, "classes": classes,
                    "classes_from": source, "chance_loss": chance_loss, "chance_accuracy": chance_acc,
                    "loss_median": loss_median, "accuracy_max": acc_max, "points": len(acc),
}
        return msg, evidence, acc

    def _constant_outputs(self, run: Any, losses: list, params: Any):
        for s, _ in losses:
            if len(s) < params.min_points:
                continue
            head, tail = signals.head_tail(s.values, 0.1, 2)
            level = float(np.median(s.values))
            if not head or abs(head - tail) / abs(head) >= params.negligible:
                continue
            spread = signals.relative_spread(s.values[max(1, len(s) // 10):])
            if spread >= 5 * params.negligible:
                continue
            for value, what, tol in self._constant_levels(run, level):
                if abs(level - value) <= tol * value:
                    msg = (f"{s.tag} went {signals.fmt(head, 4)} -> {signals.fmt(tail, 4)} over {len(s)} "
                           f"points ({signals.pct(abs(head - tail) / abs(head), 2)}), at "
                           f"{signals.fmt(value, 4)}, the {what}: the outputs are stuck at a constant")
                    evidence = {"signature": "constant-outputs", "tag": s.tag, "level": level, "start": head,
                                "end": tail, "constant_loss": value, "points": len(s)}
                    return msg, evidence, s
        return None

    @staticmethod
    def _constant_levels(run: Any, level: float) -> list[tuple[float, str, float]]:
        """(loss value, what gives it, relative tolerance) of constant predictions: ln 2 and 0.25
        within 2%; ln K, the cross-entropy of a uniform prediction over the config's K classes,
        within 2%; without K, the ln K (K = 3..20) nearest the level within 0.2% only."""
        out = [(math.log(2), "binary cross-entropy of a constant 0.5 prediction", 0.02),
               (0.25, "squared error of a constant 0.5 prediction on 0/1 targets", 0.02)]
        classes, source = signals.number_of_classes(run)
        if classes is not None and classes > 2:
            out.append((math.log(classes), f"cross-entropy of a uniform prediction over {classes} classes ({source})", 0.02))
        elif level > 0:
            k = int(round(math.exp(level)))
            if 3 <= k <= 20:
                out.append((math.log(k), f"cross-entropy of a uniform prediction over {k} classes (ln {k})", 0.002))
        return out

    # --- lr context ----------------------------------------------------------------------------
    @staticmethod
    def _lr(run: Any) -> tuple[str, float | None, str]:
        lr, source = signals.effective_lr(run)
        config = run.config or {}
        family = knobs.optimizer_family(knobs.optimizer_name(config))
        regime, _ = knobs.training_regime(config)
        return knobs.judge_lr(lr, family, regime), lr, source


def _frozen_from(values: np.ndarray, max_spread: float) -> int | None:
    """The first index from which every later value lies within ``max_spread`` (relative) of the
    others, or None when not even the last two points do."""
    v = np.asarray(values, dtype=float)
    if v.size < 2:
        return None
    suf_max = np.maximum.accumulate(v[::-1])[::-1]
    suf_min = np.minimum.accumulate(v[::-1])[::-1]
    scale = max(abs(float(v[-1])), 1e-12)
    ok = (suf_max - suf_min) <= max_spread * scale
    if not ok[-2]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 1) if bad.size else 0


def _at_best_bound(level: float, direction: str, values: np.ndarray) -> bool:
    """A metric frozen at its best possible value (accuracy 1 or 100, a loss or error of 0)."""
    if direction == "max":
        unit = signals.metric_unit(values)
        return unit in (1.0, 100.0) and level >= 0.999 * unit
    return abs(level) <= 1e-6
