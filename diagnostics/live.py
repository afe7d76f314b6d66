"""Diagnosing a run while it trains: the same detectors, run again as data arrives, each finding
reported once.

:class:`LiveDiagnosis` is what ``trainfix watch``, the Lightning and Hugging Face callbacks and
``benchmarks/early_warning.py`` share.  Each :meth:`LiveDiagnosis.update` diagnoses the run as it
stands (``engine.diagnose``: same selection, thresholds and crash isolation as ``diagnose``) and
returns only the findings not seen before.  A finding is the same finding when its detector and
first tag match (its numbers and step range move as the run grows, so they are not part of the
identity); a finding that disappears and comes back is not reported again.  Only findings at or
above ``min_severity`` count (default ``warning``: live output should be worth interrupting for).

:func:`run_from_records` builds a :class:`~trainfix.diagnostics.run.Run` from the dict records a
training loop logs (``{"step": 10, "train/loss": 0.7, ...}``), for the callbacks, which see what
the trainer logs in memory and read no files.

Cost: a poll re-runs every detector on the whole run (the detectors are not incremental).  For a
typical run that is tens of milliseconds; ``benchmarks/watch_cost.py`` measures it, and ``watch``
stretches its interval so that polling never takes more than a twentieth of the time.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from trainfix.diagnostics.finding import Finding, Severity

if TYPE_CHECKING:
    from trainfix.diagnostics.report import RunReport
    from trainfix.diagnostics.run import Run


def finding_key(f: Finding) -> tuple[str, str]:
    """The identity of a finding across polls: detector and first tag."""
    return (f.detector, str((f.tags or [""])[0]))


@dataclass
class LiveDiagnosis:
    """Diagnose a growing run repeatedly; :meth:`update` returns the findings new since last time."""

    select: Iterable[str] | None = None
    ignore: Iterable[str] | None = None
    params: Mapping[str, Mapping[str, Any]] | None = None
    min_severity: str = "warning"
    seen: dict[tuple[str, str], Finding] = field(default_factory=dict)
    polls: int = 0
    seconds: float = 0.0  # total time spent diagnosing
    last: "RunReport | None" = None

    def update(self, run: "Run") -> list[Finding]:
        from trainfix.diagnostics.engine import diagnose

        t0 = time.perf_counter()
        report = diagnose(run, select=self.select, ignore=self.ignore, params=self.params)
        self.seconds += time.perf_counter() - t0
        self.polls += 1
        self.last = report
        floor = Severity(self.min_severity)
        new = []
        for f in report.all_findings:
            if Severity(f.severity) < floor:
                continue
            key = finding_key(f)
            if key not in self.seen:
                self.seen[key] = f
                new.append(f)
        return new

    @property
    def findings(self) -> list[Finding]:
        """Every finding reported so far, in the order they were first seen."""
        return list(self.seen.values())

    def worst(self) -> Severity | None:
        found = [Severity(f.severity) for f in self.seen.values()]
        return max(found, key=lambda s: s.rank) if found else None


def at_or_above(findings: Iterable[Finding], severity: str | Severity) -> list[Finding]:
    floor = Severity(severity)
    return [f for f in findings if Severity(f.severity) >= floor]


def run_from_records(records: Iterable[Mapping[str, Any]], config: Mapping[str, Any] | None = None,
                     path: str | Path = "live", metric_overrides: Mapping[str, str] | None = None) -> "Run":
    """A Run from logged records: each a mapping with ``step`` and ``tag: number`` entries (other
    keys and values that are not numbers are ignored; NaN and Inf are kept as evidence)."""
    import pandas as pd

    from trainfix.diagnostics.roles import resolve_roles
    from trainfix.diagnostics.run import Run

    tags: list[str] = []
    steps: list[float] = []
    values: list[float] = []
    walls: list[float] = []
    for rec in records:
        try:
            step = float(rec.get("step"))
        except (TypeError, ValueError):
            continue
        wall = rec.get("wall_time")
        wall = float(wall) if isinstance(wall, (int, float)) else math.nan
        for key, value in rec.items():
            if key in ("step", "wall_time") or isinstance(value, bool):
                continue
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            tags.append(str(key))
            steps.append(step)
            values.append(v)
            walls.append(wall)
    scalars = pd.DataFrame({"tag": tags, "step": steps, "value": values, "wall_time": walls, "source": "live"})
    if len(scalars):
        scalars = scalars.sort_values(["tag", "step"], kind="stable").reset_index(drop=True)
    counts = {str(k): int(v) for k, v in scalars["tag"].value_counts(sort=False).items()} if len(scalars) else {}
    names = sorted(counts)
    roles = resolve_roles(names, dict(metric_overrides) if metric_overrides else None, counts=counts)
    inputs = {"formats": {"live": 1}, "tags": names, "points": int(len(scalars)), "checkpoints": [],
              "points_per_tag": counts}
    return Run(path=Path(str(path)), scalars=scalars, config=dict(config or {}), roles=roles, inputs=inputs)


def finding_line(f: Finding, *, step: float | None = None) -> str:
    """One line for a console: severity, detector, the message, the first fix."""
    sev = Severity(f.severity).value
    where = ""
    if f.steps:
        try:
            where = f" (steps {f.steps[0]:g}-{f.steps[-1]:g})"
        except (TypeError, ValueError):
            where = ""
    at = f"step {step:g}: " if step is not None else ""
    fix = f"; fix: {f.fixes[0]}" if f.fixes else ""
    return f"trainfix: {at}{sev} {f.detector}{where}: {f.message}{fix}"
