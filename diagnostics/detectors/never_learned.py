"""The ``never-learned`` detector: the model learned nothing: frozen metrics, or loss and accuracy at chance."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import (
    CLASS_METRICS,
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
    Six signatures, any of which fires:

    * **frozen**: the validation metric, validation accuracy, validation loss or training loss holds
      the same value (relative spread at most ``frozen_spread``, 0.1%) from within its first
      ``frozen_start`` of points (20%) to the end, over at least ``min_points`` points.  A model
      that predicts one class for every input gives the same accuracy every epoch (a segmenter
      predicting background only scores 0.9866 forever); a loss identical to three decimals for
      1,400 epochs is not moving.  A metric frozen at its best possible value (accuracy 1, loss 0)
      is perfect, not stuck, and is left alone.
    * **chance**: an accuracy (a tag that says accuracy; mAP, F1 or IoU have no 1/K chance level)
      never more than ``chance_gap`` (10%) of the way from chance (1/K) to perfect, and a loss (the
      training or the validation loss, whichever shows it) that agrees: its median within
      ``chance_band`` (15%) of ln K, or never below ln K by more than the band (no better than a
      uniform guess: a too-large lr blows the loss up to thousands and it settles above ln K).  K
      comes from the config (``num_classes``-style keys) or per-class tags; without them, from the
      accuracy itself (K = 1 / median accuracy, the accuracy then within the gap of 1/K on both
      sides) when the loss agrees within the band or sits at twice ln K or more.  Every accuracy
      logged (training as well as validation) must be at chance.
    * **majority class**: a binary classifier whose evaluation logs precision and recall beside the
      accuracy predicted one class for every example at some evaluation (recall 1 with precision
      equal to the accuracy: all positive; recall and precision 0: all negative), which gives the
      majority share m, and its accuracy never rose more than ``chance_gap`` of the way from m to
      perfect in ``few_points`` (3) or more evaluations: the model never beat always answering the
      majority class.
    * **constant outputs**: a loss that moves less than ``negligible`` (1%) over the whole run
      while sitting at a value a constant prediction gives (ln 2 = 0.693 for binary cross-entropy,
      0.25 for squared error on 0/1 targets with outputs stuck at 0.5, 1.0 for squared error on
      standardised targets predicting their mean, ln K for a uniform prediction over the config's K
      classes), within 2% (1.0 within 0.2% unless the loss is known to be a squared error: its tag
      says ``mse`` or a logged ``mse`` equals it); without a class count, ln K for K = 3..20 within
      0.2% (1.3864 = ln 4 to four decimals is no coincidence).  ``min_points`` points, or
      ``few_points`` when the training and the validation loss both sit at the same level or the
      loss equals it to 0.01% (1.3862946 four times is a uniform prediction over four classes).
    * **task metric near zero**: a task metric in [0, 1] (accuracy, IoU, Dice, F1, mAP, AUC by its
      name) never above ``near_zero`` (1%) in ``min_points`` evaluations and not rising (its last
      third at most twice its first): a multi-task net's mIoU at 0.001 while its other head
      learns.  A metric exactly 0 throughout is left alone (often a placeholder).
    * **blown-up loss**: a loss whose second half never comes below ``absurd_loss`` (1e6), swings by
      more than half its level there and does not fall (Theil-Sen slope not significantly
      negative): outputs blown up by orders of magnitude (a classifier's validation loss 7.9e12 at
      epoch 0 and still 2e7-7e7 ten epochs later) that training does not bring back.

    Why it matters
    --------------
    Every epoch of such a run is wasted: the gradient does not reach the weights (frozen layers, a
    detached graph, a dead activation), the lr is so large the outputs saturate or so small nothing
    moves, or the labels do not match the inputs.  Other detectors look for changes; this one looks
    for the absence of any, which is what these runs show.

    Evidence
    --------
    ``signature`` (frozen, chance, majority-class, constant-outputs, metric-near-zero or blown-up),
    the tag and its level, the points and the stretch that was frozen (``frozen_from_step``,
    ``relative_spread``), for chance the ``classes`` and where K came from, ``chance_loss`` (ln K),
    ``chance_accuracy`` (1/K) and the observed ``loss_median``, ``loss_min`` and ``accuracy_max``;
    ``majority_share`` and the evaluations that predicted one class; ``confirmed_by`` (the other
    loss at a constant level); the effective ``lr``, how it compares with the optimizer's range
    (``lr_judgement``) and the ``expected_lr`` to aim for when it is far off (``knobs.target_lr``).

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
    this detector stays quiet.  mAP is no accuracy (a YOLO box loss near 0.69 with mAP50 near 0.5
    is not a binary classifier at chance); a metric rising from zero (early detection training) is
    learning; a regression on raw targets may have losses in the millions that fall or hold.

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
    near_zero
        A task metric never above this share of its scale is near zero (0.01).
    still_falling
        A loss that fell by this share of its level over its second half, steadily, means a task
        metric near zero is not yet stuck (0.05).
    absurd_loss
        A loss whose second half stays above this is blown up, when it swings and does not fall (1e6).
    min_points
        Points needed in the series judged (5).
    few_points
        Points enough where two measurements agree (majority class, a constant level in both the
        training and the validation loss) (3).
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
        near_zero: float = 0.01
        still_falling: float = 0.05
        absurd_loss: float = 1e6
        min_points: int = 5
        few_points: int = 3

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        losses = self._losses(run)
        metrics = self._metrics(run)
        if not any(len(s) >= params.few_points for s, _ in losses + metrics):
            yield self.skip(f"no loss or metric with {params.few_points} points")
            return
        if any((t := run.series(tag)) is not None and not np.isfinite(t.values).all()
               for tag in signals.loss_tags(run)):
            return  # a NaN/Inf loss freezes everything after it: that is nonfinite-loss's finding
        result = (self._frozen(run, metrics + losses, params)
                  or _chance(run, losses, params)
                  or _majority_class(run, params)
                  or _constant_outputs(run, losses, params)
                  or _metric_near_zero(run, params)
                  or _blown_up(losses, params))
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
            start = signals.frozen_from(v, params.frozen_spread)
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

    # --- lr context ----------------------------------------------------------------------------
    @staticmethod
    def _lr(run: Any) -> tuple[str, float | None, str]:
        lr, source = signals.effective_lr(run)
        config = run.config or {}
        family = knobs.optimizer_family(knobs.optimizer_name(config))
        regime, _ = knobs.training_regime(config)
        return knobs.judge_lr(lr, family, regime), lr, source


# --- chance and the majority class ---------------------------------------------------------------
_ACCURACY = re.compile(r"acc(?:uracy)?")


def _accuracies(run: Any, points: int) -> list[Any]:
    """The accuracy series (validation first), fractions in [0, 1] with ``points`` points: the
    accuracy roles, and the primary validation metric when its tag says accuracy (not mAP, F1 or
    IoU, whose chance level is not 1/K)."""
    out, seen = [], set()
    for role in (VAL_ACC, VAL_METRIC, TRAIN_ACC):
        s = run.role(role)
        if s is None or s.tag in seen or "loss" in s.tag.lower():
            continue
        if role == VAL_METRIC and (run.roles.direction(role) != "max" or not _ACCURACY.search(s.tag.lower())):
            continue
        seen.add(s.tag)
        s = s.finite()
        if len(s) >= points and np.max(s.values) <= 1.0 + 1e-9 and np.min(s.values) >= 0:
            out.append(s)
    return out


def _chance(run: Any, losses: list, params: Any):
    """An accuracy at chance (1/K) with a loss that is no better than a uniform guess (ln K)."""
    accs = _accuracies(run, params.min_points)
    if not accs:
        return None
    acc = accs[0]
    classes, source = signals.number_of_classes(run)
    acc_median = float(np.median(acc.values))
    inferred = classes is None
    if inferred:
        if not 0 < acc_median <= 0.5:
            return None
        classes = int(round(1.0 / acc_median))
        source = f"1 / median {acc.tag}"
    if classes < 2:
        return None
    chance_loss, chance_acc = math.log(classes), 1.0 / classes
    acc_max, acc_min = float(np.max(acc.values)), float(np.min(acc.values))
    band = params.chance_gap * (1.0 - chance_acc)
    if acc_max > chance_acc + band or (inferred and acc_min < chance_acc - band):
        return None  # above chance; or, with K read off the accuracy, below it: that K is not the task's
    if any(float(np.max(other.values)) > chance_acc + band for other in accs[1:]):
        return None  # the training accuracy rose: something was learned (what fails is elsewhere)
    for loss, _ in losses:
        if len(loss) < params.min_points:
            continue
        loss_median, loss_min = float(np.median(loss.values)), float(np.min(loss.values))
        near = abs(loss_median - chance_loss) <= params.chance_band * chance_loss
        # never better than a uniform guess; with K read off the accuracy, far above it as well
        above = (loss_min >= (1.0 - params.chance_band) * chance_loss
                 and loss_median >= (2.0 if inferred else 1.0) * chance_loss)
        if not (near or above):
            continue
        where = (f"sits at the chance level ln {classes} = {signals.fmt(chance_loss)}" if near else
                 f"never went below the chance level ln {classes} = {signals.fmt(chance_loss)} (min "
                 f"{signals.fmt(loss_min)})")
        msg = (f"{loss.tag} (median {signals.fmt(loss_median)}) {where} and {acc.tag} never rose above "
               f"{signals.pct(acc_max)} (chance {signals.pct(chance_acc)} for {classes} classes) in "
               f"{len(acc)} evaluations")
        evidence = {"signature": "chance", "tag": acc.tag, "loss_tag": loss.tag, "classes": classes,
                    "classes_from": source, "chance_loss": chance_loss, "chance_accuracy": chance_acc,
                    "loss_median": loss_median, "loss_min": loss_min, "accuracy_max": acc_max,
                    "points": len(acc)}
        return msg, evidence, acc
    return None


def _majority_class(run: Any, params: Any):
    """A binary classifier that predicted one class for every example at some evaluation (its
    precision and recall say so) and whose accuracy never beat that majority share by much."""
    for acc in _accuracies(run, params.few_points):
        prec, rec = (_sibling(run, acc.tag, word) for word in ("precision", "recall"))
        if prec is None or rec is None:
            continue
        p = dict(zip(prec.steps.tolist(), prec.values.tolist()))
        r = dict(zip(rec.steps.tolist(), rec.values.tolist()))
        one_class = [(step, a) for step, a in zip(acc.steps.tolist(), acc.values.tolist())
                     if step in p and step in r
                     and ((r[step] >= 0.999 and abs(p[step] - a) <= 1e-3)  # all predicted positive
                          or (r[step] <= 1e-3 and p[step] <= 1e-3))]  # all predicted negative
        if not one_class:
            continue
        share = max(a for _, a in one_class)
        acc_max = float(np.max(acc.values))
        if not 0.5 <= share < 1.0 or acc_max > share + params.chance_gap * (1.0 - share):
            continue
        msg = (f"{acc.tag} never rose above {signals.pct(acc_max)} in {len(acc)} evaluations, against "
               f"{signals.pct(share)} for predicting the majority class, which {len(one_class)} of them "
               f"did ({rec.tag} {signals.fmt(r[one_class[0][0]])}, {prec.tag} equal to the accuracy or 0)")
        evidence = {"signature": "majority-class", "tag": acc.tag, "majority_share": share,
                    "accuracy_max": acc_max, "one_class_steps": [float(s) for s, _ in one_class],
                    "precision_tag": prec.tag, "recall_tag": rec.tag, "points": len(acc)}
        return msg, evidence, acc
    return None


def _sibling(run: Any, tag: str, word: str) -> Any:
    """The tag logged beside an accuracy tag with ``word`` in its place (``eval_accuracy`` ->
    ``eval_recall``), finite, or None."""
    want = _ACCURACY.sub(word, tag.lower(), count=1)
    for t in run.tags:
        if t.lower() == want and t != tag:
            s = run.series(t)
            return s.finite() if s is not None and len(s.finite()) else None
    return None


# --- constant outputs --------------------------------------------------------------------------------
_EXACT = 1e-4  # a loss this close to a constant prediction's value is that prediction


def _constant_outputs(run: Any, losses: list, params: Any):
    """A loss that does not move, at the value a constant prediction gives; ``min_points`` points,
    or ``few_points`` when the training and the validation loss both sit at the same level or the
    level is met to 0.01%."""
    matches = []
    for s, _ in losses:
        if len(s) < params.few_points:
            continue
        head, tail = signals.head_tail(s.values, 0.1, 2)
        level = float(np.median(s.values))
        if not head or abs(head - tail) / abs(head) >= params.negligible:
            continue
        if signals.relative_spread(s.values[max(1, len(s) // 10):]) >= 5 * params.negligible:
            continue
        for value, what, tol in _constant_levels(run, s, level):
            if abs(level - value) <= tol * value:
                matches.append((s, head, tail, level, value, what))
                break
    for s, head, tail, level, value, what in matches:
        others = [m[0].tag for m in matches if m[0] is not s and m[4] == value]
        exact = abs(level - value) <= _EXACT * value  # the constant prediction to four decimals
        if len(s) < params.min_points and not (others or exact):
            continue
        msg = (f"{s.tag} went {signals.fmt(head, 4)} -> {signals.fmt(tail, 4)} over {len(s)} "
               f"points ({signals.pct(abs(head - tail) / abs(head), 2)}), at "
               f"{signals.fmt(value, 4)}, the {what}: the outputs are stuck at a constant")
        if others:
            msg += f" ({', '.join(others)} sits there too)"
        evidence = {"signature": "constant-outputs", "tag": s.tag, "level": level, "start": head,
                    "end": tail, "constant_loss": value, "points": len(s), "confirmed_by": others}
        return msg, evidence, s
    return None


def _constant_levels(run: Any, series: Any, level: float) -> list[tuple[float, str, float]]:
    """(loss value, what gives it, relative tolerance) of constant predictions: ln 2 and 0.25
    within 2%; 1.0 (squared error on standardised targets, predicting their mean) within 2% for a
    loss known to be a squared error, else 0.2%; ln K, the cross-entropy of a uniform prediction
    over the config's K classes, within 2%; without K, the ln K (K = 3..20) nearest the level
    within 0.2% only."""
    out = [(math.log(2), "binary cross-entropy of a constant 0.5 prediction", 0.02),
           (0.25, "squared error of a constant 0.5 prediction on 0/1 targets", 0.02),
           (1.0, "squared error of predicting the mean of standardised targets",
            0.02 if _squared_error(run, series) else 0.002)]
    classes, source = signals.number_of_classes(run)
    if classes is not None and classes > 2:
        out.append((math.log(classes), f"cross-entropy of a uniform prediction over {classes} classes ({source})", 0.02))
    elif level > 0:
        k = int(round(math.exp(level)))
        if 3 <= k <= 20:
            out.append((math.log(k), f"cross-entropy of a uniform prediction over {k} classes (ln {k})", 0.002))
    return out


_MSE = re.compile(r"mse|mean_squared|squared_error")


def _squared_error(run: Any, series: Any) -> bool:
    """The loss is a squared error: its tag says so, or a logged ``mse`` holds the same values."""
    if _MSE.search(series.tag.lower()):
        return True
    for t in run.tags:
        other = run.series(t) if t != series.tag and _MSE.search(t.lower()) else None
        if other is not None and len(other) == len(series) and np.allclose(other.values, series.values):
            return True
    return False


# --- a task metric near zero, a blown-up loss ---------------------------------------------------------
_TASK_METRIC = re.compile(r"(?:^|[/_.\s])(?:m|mean_?)?(?:acc|accuracy|iou|dice|f1|f1_score|map|ap(?:50|75)?|auc)"
                          r"(?:[/_.(@\s]|$)")


def _metric_near_zero(run: Any, params: Any):
    """A higher-is-better task metric in [0, 1] that never leaves zero and does not rise, while no
    loss is still falling steadily (a detector's mAP stays at zero for its first epochs while the
    box loss falls; it leaves zero later).  Every loss of the run counts (box, objectness, class)."""
    losses = [(s.finite(), "min") for t in dict.fromkeys(signals.loss_tags(run)) if (s := run.series(t)) is not None]
    if any(signals.falls_steadily(s.steps, s.values, params.still_falling) for s, _ in losses):
        return None
    per_class = set(run.roles.group(CLASS_METRICS).values())
    for t in run.tags:
        name = t.lower()
        if t in per_class or "loss" in name or not _TASK_METRIC.search(name):
            continue
        s = run.series(t)
        s = s.finite() if s is not None else None
        if s is None or len(s) < params.min_points:
            continue
        v = s.values
        if np.min(v) < 0 or np.max(v) > params.near_zero or not np.any(v):
            continue
        k = max(1, len(v) // 3)
        first, last = float(np.median(v[:k])), float(np.median(v[-k:]))
        if last > 2.0 * first:
            continue  # rising from zero: early training, not stuck
        msg = (f"{t} never exceeded {signals.fmt(float(np.max(v)))} (of 1) in {len(v)} evaluations and "
               f"does not rise ({signals.fmt(first)} -> {signals.fmt(last)}): that task is not learned")
        evidence = {"signature": "metric-near-zero", "tag": t, "max": float(np.max(v)), "first": first,
                    "last": last, "points": len(v)}
        return msg, evidence, s
    return None


def _blown_up(losses: list, params: Any):
    """A loss whose second half stays above ``absurd_loss``, swings by half its level or more and
    does not fall."""
    for s, _ in losses:
        if len(s) < params.min_points:
            continue
        half = len(s) // 2
        steps, tail = s.steps[half:], s.values[half:]
        if len(tail) < 3 or float(np.min(tail)) < params.absurd_loss:
            continue
        swing = signals.relative_spread(tail)
        trend = signals.theil_sen(steps, tail)
        if swing < 0.5 or trend.hi < 0:
            continue
        level = float(np.median(tail))
        msg = (f"{s.tag} started at {signals.fmt(float(s.values[0]))} and its second half still sits at "
               f"{signals.fmt(level)} (min {signals.fmt(float(np.min(tail)))}), swinging "
               f"{signals.pct(swing)} without falling: the outputs are blown up and training does not "
               f"bring them back")
        evidence = {"signature": "blown-up", "tag": s.tag, "first": float(s.values[0]), "level": level,
                    "min_second_half": float(np.min(tail)), "swing": swing, "points": len(s)}
        return msg, evidence, s
    return None


def _at_best_bound(level: float, direction: str, values: np.ndarray) -> bool:
    """A metric frozen at its best possible value (accuracy 1 or 100, a loss or error of 0)."""
    if direction == "max":
        unit = signals.metric_unit(values)
        return unit in (1.0, 100.0) and level >= 0.999 * unit
    return abs(level) <= 1e-6
