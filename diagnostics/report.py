"""The report model (:class:`RunReport`, :class:`Report`), the JSON form (schema 1), the exit-code
rule, and :func:`render`, which dispatches to the renderers.

The JSON document is the stable interface CI and tools parse::

    {"schema": 1, "trainfix_version": "...",
     "runs": [{"path": "...", "inputs": {"formats", "tags", "points", "checkpoints"},
               "findings": [{"detector", "severity", "message", "evidence", "steps", "tags",
                             "fixes", "confidence"}],
               "skipped": [{"detector", "reason"}]}]}

``inputs`` also holds ``skipped: [{"path", "reason"}]`` when some input file was not read (a FIFO, a
file over its budget, a file its reader failed on): the run was diagnosed from the rest.

Internal errors (a detector that crashed) are findings of severity ``error`` whose message starts
with ``internal error:``.  Findings are ordered by severity (errors first), then by the detector
table's order.  A RunReport keeps a reference to its :class:`~trainfix.diagnostics.run.Run` so that
renderers can draw the flagged metric; the Run never enters the JSON.

Renderers: ``rich`` and ``md`` in :mod:`~trainfix.diagnostics.render_text`, ``github`` and ``junit``
in :mod:`~trainfix.diagnostics.render_ci`, ``json`` here.  None of them prints: they return text
(the rich renderer writes to the console it is given).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainfix.diagnostics.finding import Finding, Severity, Skip, _jsonable

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

SCHEMA = 1
FORMATS = ("rich", "json", "md", "github", "junit")
INPUT_KEYS = ("formats", "tags", "points", "checkpoints")


@dataclass
class RunReport:
    """What the detectors said about one run.

    ``findings`` are the detectors' findings; ``errors`` the internal-error findings of detectors
    that crashed (kept apart so callers can tell them from diagnoses; rendered as findings);
    ``checked`` the detectors selected for this run, in table order; ``run`` the Run itself (for
    sparklines; not serialised).
    """

    path: Path | str
    inputs: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    errors: list[Finding] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    run: "Run | None" = field(default=None, repr=False, compare=False)

    @property
    def all_findings(self) -> list[Finding]:
        """Findings and internal errors together, errors first (stable within a severity)."""
        return sorted(self.findings + self.errors, key=lambda f: -Severity(f.severity).rank)

    def inputs_summary(self) -> dict[str, Any]:
        """The four ``inputs`` keys of schema 1, from ingest's record or, failing that, the Run."""
        out: dict[str, Any] = {k: self.inputs[k] for k in INPUT_KEYS if k in self.inputs}
        run = self.run
        if "formats" not in out:
            out["formats"] = {}
        if "tags" not in out:
            out["tags"] = run.tags if run is not None else []
        if "points" not in out:
            out["points"] = int(len(run.scalars)) if run is not None else 0
        if "checkpoints" not in out:
            out["checkpoints"] = [str(c.path) for c in run.checkpoints] if run is not None else []
        summary = {k: _plain(out[k]) for k in INPUT_KEYS}
        if self.inputs.get("skipped"):  # files not read and why (a FIFO, a budget, a reader's failure)
            summary["skipped"] = [{"path": str(s.get("path")), "reason": str(s.get("reason"))}
                                  for s in self.inputs["skipped"]]
        return summary

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "inputs": self.inputs_summary(),
            "findings": [finding_dict(f) for f in self.all_findings],
            "skipped": [s.to_dict() for s in self.skipped],
        }

    def source_of(self, tag: str) -> str | None:
        """The file a tag was read from (for annotations that point at a file), when known."""
        run = self.run
        if run is None or not len(run.scalars) or "source" not in run.scalars.columns:
            return None
        rows = run.scalars.loc[run.scalars["tag"] == tag, "source"]
        if rows.empty:
            return None
        src = rows.iloc[0]
        return str(src) if src is not None and str(src) not in ("", "nan") else None


@dataclass
class Report:
    """The reports of every run one command looked at."""

    runs: list[RunReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        from trainfix import __version__

        return {"schema": SCHEMA, "trainfix_version": __version__,
                "runs": [r.to_dict() for r in self.runs]}

    def counts(self) -> dict[str, int]:
        """Number of findings per severity value over all runs (internal errors count as errors)."""
        out = {s.value: 0 for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}
        for r in self.runs:
            for f in r.all_findings:
                out[Severity(f.severity).value] += 1
        return out


def finding_dict(f: Finding) -> dict[str, Any]:
    """A finding in schema-1 form: plain JSON types, integral steps as ints, NaN/Inf as strings."""
    d = f.to_dict()
    d["evidence"] = _plain(d["evidence"])
    steps = _plain(d["steps"])
    if isinstance(steps, list):
        steps = [int(s) if isinstance(s, float) and s.is_integer() else s for s in steps]
    d["steps"] = steps
    d["confidence"] = _plain(d["confidence"])
    return d


def max_severity(report: Report | RunReport) -> Severity | None:
    """The most severe finding (internal errors included), or None when there is none."""
    runs = report.runs if isinstance(report, Report) else [report]
    found = [Severity(f.severity) for r in runs for f in r.all_findings]
    return max(found, key=lambda s: s.rank) if found else None


def exit_code(report: Report | RunReport, fail_on: Severity | str) -> int:
    """1 when any finding is at or above ``fail_on``, else 0 (usage/input errors exit 2 elsewhere)."""
    worst = max_severity(report)
    return 1 if worst is not None and worst.rank >= Severity(fail_on).rank else 0


def to_json(report: Report) -> str:
    """The schema-1 JSON document (valid JSON: no NaN literals)."""
    return json.dumps(report.to_dict(), indent=2, ensure_ascii=False, allow_nan=False, default=_fallback) + "\n"


def _fallback(value: Any) -> Any:
    """Evidence a detector left in a non-JSON type: sets become sorted lists, the rest strings."""
    if isinstance(value, (set, frozenset)):
        return sorted((_plain(v) for v in value), key=str)
    return str(value)


def render(report: Report, fmt: str, *, show_skipped: bool = False, width: int | None = None,
           color: bool = False) -> str:
    """The report as text in one of :data:`FORMATS` (rich is rendered without a terminal)."""
    if fmt == "json":
        return to_json(report)
    if fmt == "md":
        from trainfix.diagnostics.render_text import to_markdown

        return to_markdown(report, show_skipped=show_skipped)
    if fmt == "github":
        from trainfix.diagnostics.render_ci import to_github

        return to_github(report)
    if fmt == "junit":
        from trainfix.diagnostics.render_ci import to_junit

        return to_junit(report)
    if fmt == "rich":
        from trainfix.diagnostics.render_text import to_rich_text

        return to_rich_text(report, show_skipped=show_skipped, width=width or 100, color=color)
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy -> Python, non-finite floats -> strings, integral floats -> int."""
    value = _jsonable(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return value
    if isinstance(value, Path):
        return str(value)
    return value
