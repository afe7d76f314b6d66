"""Did a fix work?  Two diagnosed runs side by side: findings resolved, remaining, new and not
evaluated, and the key metrics of both.

A finding is matched across runs by detector and its first tag.  A finding of one run whose
detector could not run on the other (skipped there for missing data, or crashed) is *not
evaluated*, never "resolved" or "new": nothing says the problem went away.  A metric row holds one
metric: when the two runs measure a row's quantity on different tags (training-time ``val/loss``
before, a post-load ``eval/loss`` after) each gets its own row, unjudged.  Per-class figures of a
multi-task run (its class group names the tasks its uncertainty weights or task losses name) are
called per-task.  The metrics (:func:`run_metrics`)
are the ones the seed stories are judged by: final and best validation metric (direction-aware),
over the second half of the run the validation std around its linear trend and the largest
epoch-to-epoch drop, the per-step loss max/min ratio within an epoch (median over epochs), each loss
term's change from the first to the last tenth of the run, the spread of per-class accuracy (each
class's median over its last 3 evaluations), and the spread of learned uncertainty weights.
Used by ``trainfix compare``, ``trainfix demo`` and the repair benchmark.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from trainfix.errors import InputError

NEUTRAL = {"peak lr"}
#: stability measures of a metric in [0, 1]: differences inside this floor are noise, not a change
NOISE_FLOOR = {"val std": 0.01, "largest val drop": 0.01}
LOWER_IS_BETTER = {"val std", "largest val drop", "step loss max/min", "per-class acc spread", "per-task acc spread",
                   "final val loss"}


def diagnose_one(path: Path, model_builder: Any = None, metric_overrides: dict[str, str] | None = None,
                 train_config: Path | None = None):
    """The diagnosis (RunReport, with its Run) of exactly one run at ``path`` (``model_builder``:
    see :func:`~trainfix.diagnostics.pipeline.diagnose_paths`; ``metric_overrides``: role -> tag, as
    ``--metric``; ``train_config``: the user's training config outside the run dir)."""
    from trainfix.diagnostics.pipeline import diagnose_paths

    if not Path(path).exists():
        raise InputError(f"no such run directory: {path}", "give two run directories (before, after)")
    report = diagnose_paths([path], model_builder=model_builder, metric_overrides=metric_overrides,
                            train_config=train_config)
    runs = list(report.runs)
    if len(runs) != 1:
        raise InputError(f"{path} holds {len(runs)} runs; compare needs exactly one on each side",
                         "point at the run directory itself")
    return runs[0]


def _key(f) -> tuple[str, str]:
    return (f.detector, (f.tags or [""])[0])


def _fdict(f) -> dict[str, Any]:
    return {"detector": f.detector, "severity": getattr(f.severity, "value", f.severity), "message": f.message,
            "fixes": list(f.fixes)}


def _not_run(rr) -> dict[str, str]:
    """Detector -> why it did not judge this run (skipped for missing data, or crashed)."""
    out = {str(getattr(sk, "detector", "")): str(getattr(sk, "reason", "")) for sk in getattr(rr, "skipped", []) or []}
    for e in getattr(rr, "errors", []) or []:
        out.setdefault(str(e.detector), e.message)
    return out


def comparison(a, b) -> dict[str, Any]:
    """The comparison as plain data (what ``--format json`` prints)."""
    fa = {_key(f): f for f in a.findings}
    fb = {_key(f): f for f in b.findings}
    skipped_a, skipped_b = _not_run(a), _not_run(b)
    not_evaluated = []
    for k, f in fa.items():
        if k not in fb and f.detector in skipped_b:
            not_evaluated.append(dict(_fdict(f), side="after", reason=skipped_b[f.detector]))
    for k, f in fb.items():
        if k not in fa and f.detector in skipped_a:
            not_evaluated.append(dict(_fdict(f), side="before", reason=skipped_a[f.detector]))
    return {
        "schema": 1,
        "a": str(a.path),
        "b": str(b.path),
        "resolved": [_fdict(f) for k, f in fa.items() if k not in fb and f.detector not in skipped_b],
        "remaining": [_fdict(f) for k, f in fb.items() if k in fa],
        "new": [_fdict(f) for k, f in fb.items() if k not in fa and f.detector not in skipped_a],
        "not_evaluated": not_evaluated,
        "metrics": metric_rows(tagged_metrics(a.run), tagged_metrics(b.run)),
    }


def metric_rows(ma: dict[str, tuple[float, str | None]], mb: dict[str, tuple[float, str | None]]) -> list[dict[str, Any]]:
    """One row per metric: the same quantity on the same tag in both runs is judged; on different
    tags the two are different metrics, each on its own row, unjudged."""
    rows = []
    for name in list(dict.fromkeys(list(ma) + list(mb))):
        (va, ta), (vb, tb) = ma.get(name, (None, None)), mb.get(name, (None, None))
        if va is not None and vb is not None and ta != tb:
            rows.append({"metric": name, "tag": ta, "a": va, "b": None, "verdict": ""})
            rows.append({"metric": name, "tag": tb, "a": None, "b": vb, "verdict": ""})
            continue
        rows.append({"metric": name, "tag": ta or tb, "a": va, "b": vb, "verdict": verdict(name, va, vb)})
    return rows


def metric_label(row: dict[str, Any]) -> str:
    """A row's metric with the tag it was measured on, unless the name already says it."""
    name, tag = row["metric"], row.get("tag")
    return name if not tag or tag in name else f"{name} ({tag})"


def verdict(name: str, a: float | None, b: float | None) -> str:
    """"better", "worse" or "same" for metric ``name`` going from ``a`` to ``b`` ("" when unknown)."""
    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
        return ""
    if name.startswith("loss term") or name in NEUTRAL:
        return ""  # a term falling is good for a regulariser and neutral otherwise: shown, not judged
    scale = max(abs(a), abs(b), 1e-12)
    if abs(a - b) <= 0.02 * scale or abs(a - b) <= NOISE_FLOOR.get(name, 0.0):
        return "same"
    lower = name in LOWER_IS_BETTER
    return ("better" if b < a else "worse") if lower else ("better" if b > a else "worse")


def _tail(values: np.ndarray, frac: float) -> np.ndarray:
    n = max(1, int(round(len(values) * frac)))
    return values[-n:]


def batch_loss_ratio(run) -> float | None:
    """Median over epochs of the max/min ratio of the per-step losses logged within the epoch.

    Within an epoch, so that a loss falling from 2 to 0.1 over a healthy run is not mistaken for
    erratic batches; None when the loss crosses zero (a ratio means nothing then) or is too short.
    """
    from trainfix.diagnostics import roles_vocab as R

    step = run.role(R.TRAIN_LOSS_STEP)
    if step is None:
        return None
    s = step.finite()
    if len(s) < 4 or not np.all(s.values > 0):
        return None
    epoch = run.series("epoch")
    if epoch is not None and len(epoch) >= 2:
        ep = np.interp(s.steps, epoch.steps, epoch.values, left=epoch.values[0], right=epoch.values[-1])
        groups = [s.values[np.floor(ep + 1e-9) == e] for e in np.unique(np.floor(ep + 1e-9))]
    else:
        groups = [s.values[i:i + 20] for i in range(0, len(s), 20)]
    ratios = [float(np.max(g) / np.min(g)) for g in groups if len(g) >= 3]
    return float(np.median(ratios)) if ratios else None


def late_stability(values: Any, direction: str = "max") -> tuple[float, float] | None:
    """How unsteady a validation metric is over the second half of its evaluations: (its std around
    its own linear trend, the largest epoch-to-epoch move the bad way); None with fewer than 3.

    Around the trend, because a metric still climbing is not unstable; the bad way is a fall for a
    metric to maximise and a rise for one to minimise.  The one definition of ``val std`` and
    ``largest val drop``, for ``compare``, the repair loop and the story benchmark.
    """
    half = np.asarray(values, dtype=float)[len(values) // 2:]
    if len(half) < 3:
        return None
    x = np.arange(len(half), dtype=float)
    resid = half - np.polyval(np.polyfit(x, half, 1), x)
    worse = -np.diff(half) if direction != "min" else np.diff(half)
    return float(np.std(resid)), float(max(0.0, np.max(worse)))


def run_metrics(run) -> dict[str, float]:
    """The key metrics of one run (see module docstring); missing data leaves a metric out."""
    return {name: value for name, (value, _) in tagged_metrics(run).items()}


def _tasks(run) -> set[str]:
    from trainfix.diagnostics import roles_vocab as R

    keys: set[str] = set()
    for group in (R.UW_WEIGHTS, R.UW_LOG_VARS, R.TASK_LOSSES):
        keys |= {str(k) for k in run.group(group)}
    return keys


def tagged_metrics(run) -> dict[str, tuple[float, str | None]]:
    """Each key metric of one run with the tag it was measured on (None for a figure of several
    tags, such as the spread of per-class accuracies)."""
    from trainfix.diagnostics import roles_vocab as R

    m: dict[str, tuple[float, str | None]] = {}
    if run is None:
        return m
    metric = None
    for role in (R.VAL_ACC, R.VAL_METRIC):
        s = run.role(role)
        if s is not None and len(s.finite()):
            metric, tag, direction = s.finite(), s.tag, run.roles.direction(role) or "max"
            break
    if metric is not None:
        v = metric.values
        best = float(np.max(v)) if direction != "min" else float(np.min(v))
        m[f"final {tag}"] = (float(v[-1]), tag)
        m[f"best {tag}"] = (best, tag)
        stability = late_stability(v, direction)
        if stability is not None:
            m["val std"] = (stability[0], tag)
            m["largest val drop"] = (stability[1], tag)
    vl = run.role(R.VAL_LOSS)
    if vl is not None and len(vl.finite()):
        m["final val loss"] = (float(vl.finite().values[-1]), vl.tag)
    ratio = batch_loss_ratio(run)
    if ratio is not None:
        step = run.role(R.TRAIN_LOSS_STEP)
        m["step loss max/min"] = (ratio, getattr(step, "tag", None))
    for key, s in sorted(run.group(R.LOSS_TERMS).items()):
        v = s.finite().values
        if len(v) >= 4:
            first = float(np.mean(v[: max(1, len(v) // 10)]))
            last = float(np.mean(_tail(v, 0.1)))
            if abs(first) > 1e-12:
                m[f"loss term {key} change"] = ((last - first) / abs(first), s.tag)
    classes = run.group(R.CLASS_METRICS)
    # each class's final accuracy as the median of its last 3 evaluations: one evaluation of a
    # class with ~45 validation images moves by 2 points per image
    finals = [float(np.median(s.finite().values[-3:])) for s in classes.values() if len(s.finite())]
    if len(finals) >= 2:
        tasks = _tasks(run)
        what = "task" if tasks and {str(k) for k in classes} <= tasks else "class"
        m[f"per-{what} acc spread"] = (max(finals) - min(finals), None)
        m[f"worst {what} acc"] = (min(finals), None)
    weights = run.group(R.UW_WEIGHTS)
    wf = [float(s.finite().values[-1]) for s in weights.values() if len(s.finite())]
    if len(wf) >= 2:
        m["uw weight spread"] = (max(wf) - min(wf), None)
    lr = run.role(R.LR)
    if lr is not None and len(lr.finite()):
        m["peak lr"] = (float(np.max(lr.finite().values)), lr.tag)
    return m


# --------------------------------------------------------------------------- rendering
