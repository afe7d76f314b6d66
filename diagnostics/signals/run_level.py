"""Series and facts of a whole run, read duck-typed from a :class:`~trainfix.diagnostics.run.Run`: epoch
boundaries, the training loss, the loss terms, the effective lr, the gradient norm, the number of
classes.  Role names are imported lazily (detectors import this package, not the other way round)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trainfix.diagnostics.signals.series import as_array, count_finite, enough, finite
from trainfix.diagnostics.signals.trends import bin_medians


def epoch_boundaries(run: Any) -> np.ndarray | None:
    """Steps that ended an epoch: the last step of each distinct value of the logged ``epoch`` tag
    (loggers such as trainfix's ``metrics.jsonl`` repeat the epoch on every logged step), else the
    steps of the per-epoch training loss; None when neither gives at least 2 boundaries."""
    from trainfix.diagnostics.roles_vocab import TRAIN_LOSS

    epoch = run.series("epoch")
    if epoch is not None and len(epoch) >= 2:
        keep = np.isfinite(epoch.steps) & np.isfinite(epoch.values)
        st, ep = epoch.steps[keep], epoch.values[keep]
        if st.size >= 2:
            last_of_epoch = np.append(ep[1:] != ep[:-1], True)
            steps = np.unique(st[last_of_epoch])
            if steps.size >= 2:
                return steps
    loss = run.role(TRAIN_LOSS)
    if loss is not None and len(loss) >= 2:
        steps = np.unique(loss.steps[np.isfinite(loss.steps)])
        if steps.size >= 2:
            return steps
    return None


def group_by_boundaries(steps: Any, values: Any, boundaries: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split (steps, values) into consecutive groups, a group ending at each boundary step
    (inclusive); points after the last boundary form a final group.  Empty groups are dropped."""
    st, va = as_array(steps), as_array(values)
    b = np.sort(as_array(boundaries))
    which = np.searchsorted(b, st, side="left")
    # One stable sort by group, then split where the group changes: linear in the points (a mask
    # per group was points x epochs).  Order inside each group is the input order, as before.
    order = np.argsort(which, kind="stable")
    cuts = np.flatnonzero(np.diff(which[order])) + 1
    return [(st[idx], va[idx]) for idx in np.split(order, cuts) if idx.size]


def training_loss(run: Any, max_points: int = 200) -> Any:
    """The training-loss curve detectors judge: the ``TRAIN_LOSS`` role (per-epoch) when resolved,
    else the per-step loss (``TRAIN_LOSS_STEP``) reduced to one median per epoch (epoch ends from
    :func:`epoch_boundaries`) or, without epochs, to medians of bins of ~10 points (at most
    ``max_points`` bins).

    Returns ``(series, how)`` where ``series`` is a trainfix ``Series`` (tag = the original tag)
    of finite points and ``how`` is ``"per-epoch"``, ``"per-epoch median of per-step"`` or
    ``"binned median of per-step"``; ``(None, reason)`` when no training loss is logged.
    """
    from trainfix.diagnostics.roles_vocab import TRAIN_LOSS, TRAIN_LOSS_STEP
    from trainfix.diagnostics.run import Series

    s = run.role(TRAIN_LOSS)
    if s is not None and count_finite(s.values) >= 3:
        return s.finite(), "per-epoch"
    step = run.role(TRAIN_LOSS_STEP)
    if step is None:
        if s is not None:
            return s.finite(), "per-epoch"
        return None, "no training loss logged"
    step = step.finite()
    bounds = epoch_boundaries(run)
    if bounds is not None and bounds.size >= 3:
        groups = group_by_boundaries(step.steps, step.values, bounds)
        if len(groups) >= 3:
            xs = np.array([g[0][-1] for g in groups])
            ys = np.array([np.median(g[1]) for g in groups])
            return Series(step.tag, xs, ys), "per-epoch median of per-step"
    n_bins = min(max_points, max(10, len(step) // 10))
    xs, ys = bin_medians(step.steps, step.values, n_bins)
    return Series(step.tag, xs, ys), "binned median of per-step"


def loss_tags(run: Any) -> list[str]:
    """Every tag that holds a loss: the loss roles and groups, plus any tag with "loss" in its name."""
    from trainfix.diagnostics.roles_vocab import (LOSS_TERMS, LOSS_TERMS_RAW, TASK_LOSSES, TRAIN_LOSS,
                                                  TRAIN_LOSS_STEP, VAL_LOSS)

    tags: list[str] = []
    for role in (TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS):
        t = run.roles.tag(role)
        if t:
            tags.append(t)
    for role in (LOSS_TERMS, LOSS_TERMS_RAW, TASK_LOSSES):
        tags.extend(run.roles.group(role).values())
    tags.extend(t for t in run.tags if "loss" in t.lower())
    seen: set[str] = set()
    return [t for t in tags if not (t in seen or seen.add(t))]


def effective_lr(run: Any) -> tuple[float | None, str]:
    """The lr the run trained with: the median of the logged lr, else the config's scaled_lr, else
    its lr; with where it came from (``"logged lr (median)"``, ``"config lr"``, ``"unknown"``)."""
    from trainfix.diagnostics import knobs
    from trainfix.diagnostics.roles_vocab import LR

    s = run.role(LR)
    if s is not None and enough(s.values, 1):
        return float(np.median(finite(s.values))), f"logged {s.tag} (median)"
    config = run.config or {}
    for knob in ("scaled_lr", "lr"):
        v = knobs.lookup_float(config, knob)
        if v is not None:
            return v, f"config {knob}"
    return None, "unknown"


def grad_norm_median(run: Any, before: float | None = None) -> float | None:
    """The median of the logged global gradient norm (the ``grad_norm`` role), over the steps
    before ``before`` when given (the healthy part of a run that later broke); None when not logged.
    ``grad-clip`` clips at twice this."""
    from trainfix.diagnostics.roles_vocab import GRAD_NORM

    s = run.role(GRAD_NORM)
    if s is None:
        return None
    steps, vals = as_array(s.steps), as_array(s.values)
    keep = np.isfinite(vals) & (vals > 0)
    if before is not None:
        early = keep & (steps < before)
        keep = early if early.sum() >= 3 else keep
    return float(np.median(vals[keep])) if keep.any() else None


#: config keys that hold the number of classes of a classification task
NUM_CLASS_KEYS = ("num_classes", "n_classes", "nb_classes", "number_of_classes", "num_labels", "n_class")


def number_of_classes(run: Any) -> tuple[int | None, str]:
    """Classes of the task: a ``num_classes``-style config key, else the per-class metric tags;
    ``(None, "unknown")`` when neither says."""
    from trainfix.diagnostics import knobs
    from trainfix.diagnostics.roles_vocab import CLASS_METRICS

    for path, value in knobs.walk(run.config or {}):
        if path and str(path[-1]).lower() in NUM_CLASS_KEYS:
            try:
                k = int(value)
            except (TypeError, ValueError):
                continue
            if k >= 2:
                return k, "config " + ".".join(path)
    classes = run.roles.group(CLASS_METRICS)
    if len(classes) >= 2:
        return len(classes), f"{len(classes)} per-class metric tags"
    return None, "unknown"
