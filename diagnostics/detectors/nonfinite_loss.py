"""The ``nonfinite-loss`` detector: NaN or Inf in any logged loss."""

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
    VAL_LOSS,
)

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class NonfiniteLoss(Detector):
    """A loss became NaN or Inf.

    What it detects
    ---------------
    Any NaN, +Inf or -Inf value in a loss tag: the training loss (per epoch and per step), the
    validation loss, every loss term (``loss/<term>``, ``loss/<term>/raw``), per-task losses, and any
    other tag whose name contains "loss".  One finding per run, naming the first step at which a loss
    went non-finite, how many points did, and in which tags.

    Why it matters
    --------------
    One non-finite loss poisons every weight it reaches through the backward pass: after it the model
    is usually garbage (accuracy at chance, NaN predictions) and every later epoch is wasted compute.
    Loggers often keep writing "nan" for hours; the first step tells you where to look (an lr spike, an
    fp16 overflow, a log of zero, a division by a normaliser that reached zero).

    Evidence
    --------
    ``first_step``, ``first_tag``, ``nonfinite_points`` and ``points`` (over all loss tags),
    ``nan_points``/``inf_points``, per-tag counts, the last finite value of the first tag before it
    broke, whether training continued past it (``finite_after``: finite points after the first bad
    one, i.e. the run skipped bad steps), the config's precision and grad_clip when present, and
    ``grad_norm_median``, the median logged gradient norm before the first bad step (``grad-clip``
    clips at twice it).

    Fix
    ---
    ``nan-guard`` (skip non-finite steps and stop after a few), ``lower-lr`` (the usual cause),
    ``grad-clip`` (when no clipping is configured).

    False positives
    ---------------
    A logger that writes NaN for "not computed at this step" (a validation loss placeholder) looks
    the same; trainfix's own logs never do this.  Such tags can be excluded with ``--ignore`` or by
    mapping the role elsewhere.

    Parameters
    ----------
    min_points
        Non-finite points needed to report (1: a single NaN is already a bug).
    """

    name = "nonfinite-loss"
    severity = Severity.ERROR
    requires_any = (TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS, LOSS_TERMS, LOSS_TERMS_RAW, TASK_LOSSES)
    fixes = ("nan-guard", "lower-lr", "grad-clip")

    @dataclass
    class Params:
        min_points: int = 1

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        tags = signals.loss_tags(run)
        if not tags:
            yield self.skip("no loss tags logged")
            return
        per_tag: dict[str, dict[str, Any]] = {}
        total = bad_total = nan_total = 0
        first: tuple[float, str] | None = None
        for tag in tags:
            s = run.series(tag)
            if s is None or len(s) == 0:
                continue
            bad = ~np.isfinite(s.values)
            total += len(s)
            n_bad = int(bad.sum())
            if not n_bad:
                continue
            n_nan = int(np.isnan(s.values).sum())
            bad_total += n_bad
            nan_total += n_nan
            i0 = int(np.flatnonzero(bad)[0])
            step0 = float(s.steps[i0])
            before = s.values[:i0][np.isfinite(s.values[:i0])]
            per_tag[tag] = {
                "nonfinite": n_bad,
                "nan": n_nan,
                "points": len(s),
                "first_step": step0,
                "last_finite_before": float(before[-1]) if before.size else None,
                "finite_after": int(np.isfinite(s.values[i0:]).sum()),
            }
            if first is None or step0 < first[0]:
                first = (step0, tag)
        if bad_total < max(1, params.min_points) or first is None:
            return
        first_step, first_tag = first
        info = per_tag[first_tag]
        config = run.config or {}
        clip = knobs.lookup_float(config, "grad_clip")
        precision = knobs.lookup(config, "precision")
        fixes = ["nan-guard", "lower-lr"]
        if not (clip is not None and clip > 0):
            fixes.append("grad-clip")
        kinds = []
        if nan_total:
            kinds.append("NaN")
        if bad_total - nan_total:
            kinds.append("Inf")
        other = sorted(t for t in per_tag if t != first_tag)
        msg = (f"{first_tag} became {'/'.join(kinds)} at step {first_step:g}; "
               f"{bad_total} of {total} loss points are non-finite")
        if other:
            msg += f" (also in {', '.join(other[:4])}{' ...' if len(other) > 4 else ''})"
        if info["last_finite_before"] is not None:
            msg += f"; last finite value before it: {signals.fmt(info['last_finite_before'])}"
        if info["finite_after"]:
            msg += f"; training went on with {info['finite_after']} finite points after it"
        steps_all = [run.series(t).steps for t in per_tag]
        last_step = max(float(np.max(x)) for x in steps_all)
        evidence = {
            "first_step": first_step,
            "first_tag": first_tag,
            "nonfinite_points": bad_total,
            "nan_points": nan_total,
            "inf_points": bad_total - nan_total,
            "points": total,
            "per_tag": per_tag,
            "finite_after": info["finite_after"],
            "grad_clip": clip,
            "grad_norm_median": signals.grad_norm_median(run, before=first_step),
            "precision": precision,
        }
        yield self.finding(msg, evidence=evidence, steps=(first_step, last_step),
                           tags=[first_tag] + other, fixes=fixes, confidence=1.0)
