"""CI renderers: GitHub Actions workflow commands and JUnit XML.

GitHub: one line per finding, ``::error`` / ``::warning`` / ``::notice`` with ``file=`` (the log
file the flagged metric came from, else the run path) and ``title=trainfix <detector>``.  Values are
escaped by GitHub's rules: in the message ``%``, CR and LF; in properties also ``:`` and ``,``.

JUnit: one ``<testsuite>`` per run and one ``<testcase>`` per detector checked on it.  A warning or
error finding is a ``<failure>`` (all of one detector's findings in it), an internal error an
``<error>``, a skip a ``<skipped>`` element with the reason; info findings pass and appear in
``<system-out>``.  Built with :mod:`xml.etree.ElementTree`, so text is always well-formed.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from trainfix.diagnostics.finding import Finding, Severity
from trainfix.diagnostics.render_text import evidence_text, steps_text
from trainfix.diagnostics.report import Report, RunReport

GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape_data(text: str) -> str:
    """Escape a workflow-command message (GitHub's escapeData)."""
    return str(text).replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow-command property value (GitHub's escapeProperty)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _display_path(path: str | Path) -> str:
    """Paths relative to the working directory when they are under it (annotations need that)."""
    p = Path(path)
    if p.is_absolute():
        try:
            return p.resolve().relative_to(Path.cwd().resolve()).as_posix()
        except (ValueError, OSError):
            return p.as_posix()
    return p.as_posix()


def annotation_file(rr: RunReport, f: Finding) -> str:
    """The file an annotation points at: the log the finding's first tag came from (ingest records
    sources relative to the run root), the log file itself for a single-file run, else the run."""
    root = Path(rr.path)
    if root.is_file():
        return _display_path(root)
    for tag in f.tags or ():
        src = rr.source_of(tag)
        if src:
            src_path = Path(src)
            return _display_path(src_path if src_path.is_absolute() else root / src_path)
    return _display_path(root)


def to_github(report: Report) -> str:
    """One workflow command per finding (empty string when there are none)."""
    lines = []
    for rr in report.runs:
        for f in rr.all_findings:
            sev = Severity(f.severity)
            msg = f.message
            extra = [x for x in (steps_text(f), f"fix: {', '.join(f.fixes)}" if f.fixes else "") if x]
            if extra:
                msg += " (" + "; ".join(extra) + ")"
            if len(report.runs) > 1:
                msg = f"{rr.path}: {msg}"
            props = f"file={escape_property(annotation_file(rr, f))},title={escape_property('trainfix ' + f.detector)}"
            lines.append(f"::{GITHUB_COMMAND[sev]} {props}::{escape_data(msg)}")
    return "\n".join(lines) + ("\n" if lines else "")


def _clean(text: str) -> str:
    return _XML_BAD.sub("?", str(text))


def to_junit(report: Report) -> str:
    """JUnit XML: a testcase per detector per run (see module docstring)."""
    root = ET.Element("testsuites", name="trainfix")
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for rr in report.runs:
        suite = ET.SubElement(root, "testsuite", name=_clean(str(rr.path)))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        names = list(rr.checked)
        for f in rr.all_findings:
            if f.detector not in names:
                names.append(f.detector)
        by_det: dict[str, list[Finding]] = {}
        for f in rr.all_findings:
            by_det.setdefault(f.detector, []).append(f)
        skips = {}
        for s in rr.skipped:
            skips.setdefault(s.detector, []).append(s.reason)
        errors_of = {id(f) for f in rr.errors}
        for name in names:
            case = ET.SubElement(suite, "testcase", classname=_clean(f"trainfix.{rr.path}"), name=name)
            counts["tests"] += 1
            found = by_det.get(name, [])
            internal = [f for f in found if id(f) in errors_of]
            failing = [f for f in found if id(f) not in errors_of and Severity(f.severity) >= Severity.WARNING]
            infos = [f for f in found if id(f) not in errors_of and Severity(f.severity) == Severity.INFO]
            if internal:
                el = ET.SubElement(case, "error", type="internal", message=_clean(internal[0].message))
                el.text = _clean("\n".join(f"{f.message} {evidence_text(f, limit=20)}".strip() for f in internal))
                counts["errors"] += 1
            elif failing:
                worst = max(failing, key=lambda f: Severity(f.severity).rank)
                el = ET.SubElement(case, "failure", type=Severity(worst.severity).value,
                                   message=_clean(worst.message))
                el.text = _clean("\n\n".join(_failure_text(f) for f in failing))
                counts["failures"] += 1
            elif name in skips and not found:
                ET.SubElement(case, "skipped", message=_clean("; ".join(skips[name])))
                counts["skipped"] += 1
            if infos:
                out = ET.SubElement(case, "system-out")
                out.text = _clean("\n".join(_failure_text(f) for f in infos))
        for k, v in counts.items():
            suite.set(k, str(v))
            totals[k] += v
    for k, v in totals.items():
        root.set(k, str(v))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def _failure_text(f: Finding) -> str:
    parts = [f"[{Severity(f.severity).value}] {f.message}"]
    where = steps_text(f)
    if where:
        parts.append(where)
    if f.tags:
        parts.append("tags: " + ", ".join(f.tags))
    ev = evidence_text(f, limit=20)
    if ev:
        parts.append("evidence: " + ev)
    if f.fixes:
        parts.append("fix: " + ", ".join(f.fixes))
    return "\n".join(parts)
