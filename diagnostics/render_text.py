"""Human renderers: the terminal view (rich) and Markdown for a pull-request comment.

Both group findings by severity (errors first) and show, for each finding, the message, the key
evidence, the fix ids with the command that applies the first one, and a sparkline of the flagged
metric over the flagged steps (from the Run the RunReport keeps).  Skipped detectors are counted,
and listed with their reasons when asked (``--show-skipped``).
"""

from __future__ import annotations

import html
import io
import math
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from trainfix.diagnostics.finding import Finding, Severity
from trainfix.diagnostics.report import Report, RunReport
from trainfix.diagnostics.sparkline import sparkline

SEVERITY_ORDER = (Severity.ERROR, Severity.WARNING, Severity.INFO)
STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "cyan"}
SYMBOL = {Severity.ERROR: "✖", Severity.WARNING: "▲", Severity.INFO: "●"}
EVIDENCE_ITEMS = 6  # evidence entries shown inline; the JSON report has them all
SPARK_WIDTH = 32
LABEL_WIDTH = 24  # the label column (evidence, metric tag, fix) of the rich view
CONTEXT_POINTS = 8  # points of context around a finding that covers very few points


# --- shared helpers ------------------------------------------------------------------------------


def fmt_num(value: Any) -> str:
    """A number as a person reads it: 4 significant digits, scientific when tiny or huge."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) < 1e6:
        return str(int(v))
    if abs(v) < 1e-3 or abs(v) >= 1e5:
        return f"{v:.3g}"
    return f"{v:.4g}"


def fmt_value(value: Any, max_items: int = 6) -> str:
    if isinstance(value, dict):
        items = list(value.items())
        body = ", ".join(f"{k}={fmt_value(v)}" for k, v in items[:max_items])
        return "{" + body + (", …" if len(items) > max_items else "") + "}"
    if isinstance(value, (list, tuple)):
        body = ", ".join(fmt_value(v) for v in list(value)[:max_items])
        return "[" + body + (", …" if len(value) > max_items else "") + "]"
    return fmt_num(value)


def evidence_text(f: Finding, limit: int = EVIDENCE_ITEMS) -> str:
    items = list((f.evidence or {}).items())
    text = " · ".join(f"{k}={fmt_value(v)}" for k, v in items[:limit])
    if len(items) > limit:
        text += f" · (+{len(items) - limit} more in --format json)"
    return text


def steps_text(f: Finding) -> str:
    if not f.steps:
        return ""
    a, b = f.steps[0], f.steps[-1]
    return f"step {fmt_num(a)}" if a == b else f"steps {fmt_num(a)}–{fmt_num(b)}"


def finding_series(rr: RunReport, f: Finding) -> tuple[str, np.ndarray, np.ndarray] | None:
    """The first of the finding's tags present in the run, cut to the flagged steps (with a little
    context when the range holds only a few points)."""
    run = rr.run
    if run is None:
        return None
    for tag in f.tags or ():
        try:
            s = run.series(tag)
        except Exception:  # a renderer never fails on a detector's odd tag
            s = None
        if s is None or len(s) == 0:
            continue
        steps, values = s.steps, s.values
        if f.steps:
            try:
                a, b = float(f.steps[0]), float(f.steps[-1])
            except (TypeError, ValueError):
                return tag, steps, values
            inside = np.nonzero((steps >= a) & (steps <= b))[0]
            if len(inside) >= CONTEXT_POINTS:
                lo, hi = inside[0], inside[-1] + 1
            elif len(inside):
                lo = max(0, inside[0] - CONTEXT_POINTS)
                hi = min(len(steps), inside[-1] + 1 + CONTEXT_POINTS)
            else:
                pos = int(np.searchsorted(steps, a))
                lo, hi = max(0, pos - CONTEXT_POINTS), min(len(steps), pos + CONTEXT_POINTS)
            if lo > 0 and not np.isfinite(values[lo:hi]).any():  # show what came before the NaNs
                lo = max(0, lo - CONTEXT_POINTS)
            steps, values = steps[lo:hi], values[lo:hi]
        if len(values):
            return tag, steps, values
    return None


def spark_text(rr: RunReport, f: Finding) -> tuple[str, str, str] | None:
    """(tag, sparkline, "first → last · steps a–b") for the finding, or None."""
    got = finding_series(rr, f)
    if got is None:
        return None
    tag, steps, values = got
    line = sparkline(values, SPARK_WIDTH)
    detail = f"{fmt_num(values[0])} → {fmt_num(values[-1])}"
    if len(values) > 1:
        fin = values[np.isfinite(values)]
        if len(fin) and fin.min() != fin.max():
            detail += f" (min {fmt_num(fin.min())}, max {fmt_num(fin.max())})"
    detail += f" · steps {fmt_num(steps[0])}–{fmt_num(steps[-1])}"
    return tag, line, detail


def inputs_text(rr: RunReport) -> str:
    inp = rr.inputs_summary()
    parts = []
    formats = inp.get("formats")
    if isinstance(formats, dict) and formats:
        parts.append(", ".join(f"{k} ×{v}" if isinstance(v, int) and v > 1 else str(k)
                               for k, v in formats.items()))
    elif isinstance(formats, list) and formats:
        parts.append(", ".join(map(str, formats)))
    parts.append(f"{_count(inp.get('points'))} points")
    n_tags = _count(inp.get("tags"))
    parts.append(f"{n_tags} tag{'s' if n_tags != 1 else ''}")
    ck = _count(inp.get("checkpoints"))
    if ck:
        parts.append(f"{ck} checkpoint{'s' if ck != 1 else ''}")
    return " · ".join(parts)


def summary_text(report: Report) -> str:
    c = report.counts()
    n = len(report.runs)
    text = (f"{c['error']} error{'s' if c['error'] != 1 else ''}, "
            f"{c['warning']} warning{'s' if c['warning'] != 1 else ''}, {c['info']} info "
            f"in {n} run{'s' if n != 1 else ''}")
    return text


def _count(value: Any) -> int:
    if isinstance(value, (list, tuple, dict, set)):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _fix_command(rr: RunReport, f: Finding) -> str:
    from trainfix.diagnostics.fix_command import fix_command

    return fix_command(rr, f)


# --- rich --------------------------------------------------------------------------------------


def render_rich(report: Report, console: Console, *, show_skipped: bool = False) -> None:
    """Print the report on ``console``: per run, findings grouped by severity, then a summary.

    Each finding: a title line (symbol, detector, step range), the message at full width, then
    labelled rows (evidence, the metric's sparkline, the fix).
    """
    for i, rr in enumerate(report.runs):
        if i:
            console.print()
        head = Text()
        head.append(str(rr.path), style="bold")
        head.append(f"  {inputs_text(rr)}", style="dim")
        console.print(head)
        findings = rr.all_findings
        if not findings:
            console.print(Text(f"  ✔ no findings ({len(rr.checked) - len(_skipped_names(rr))} "
                               f"detectors ran)", style="green"))
        label_width = min(LABEL_WIDTH, max([len("evidence")] + [len(t) for f in findings for t in f.tags[:1]]))
        for sev in SEVERITY_ORDER:
            group = [f for f in findings if Severity(f.severity) == sev]
            if not group:
                continue
            console.print(Text(f"  {sev.value}s ({len(group)})" if sev != Severity.INFO
                               else f"  info ({len(group)})", style=STYLE[sev]))
            for f in group:
                _print_finding(console, rr, f, label_width)
        if rr.skipped:
            if show_skipped:
                console.print(Text(f"  skipped ({len(rr.skipped)})", style="dim"))
                grid = Table.grid(padding=(0, 1))
                grid.add_column(width=3)
                grid.add_column(style="dim", no_wrap=True)
                grid.add_column(style="dim")
                for s in rr.skipped:
                    grid.add_row("", s.detector, escape(s.reason))
                console.print(grid)
            else:
                console.print(Text(f"  {len(rr.skipped)} detector{'s' if len(rr.skipped) != 1 else ''} "
                                   "skipped for missing data (--show-skipped lists them)", style="dim"))
    console.print()
    worst = max((Severity(f.severity) for r in report.runs for f in r.all_findings),
                key=lambda s: s.rank, default=None)
    summary = Text(summary_text(report), style=STYLE[worst] if worst else "green")
    if worst is not None:
        summary.append("  ('trainfix explain NAME' documents a detector or a fix)", style="dim")
    console.print(summary)


def _print_finding(console: Console, rr: RunReport, f: Finding, label_width: int) -> None:
    sev = Severity(f.severity)
    title = Text("  ")
    title.append(f"{SYMBOL[sev]} {f.detector}", style=STYLE[sev])
    where = steps_text(f)
    if where:
        title.append(f"  {where}", style="dim")
    if f.confidence < 0.995:
        title.append(f"  confidence {f.confidence:.0%}", style="dim")
    console.print(title)
    console.print(Padding(Text(f.message), (0, 0, 0, 4)))
    grid = Table.grid(padding=(0, 2))
    grid.add_column(width=4)
    grid.add_column(width=label_width, no_wrap=True, overflow="ellipsis")
    grid.add_column()
    ev = evidence_text(f)
    if ev:
        grid.add_row("", Text("evidence", style="dim"), Text(ev))
    sp = spark_text(rr, f)
    if sp:
        tag, line, detail = sp
        t = Text(line, style=STYLE[sev])
        t.append(f"  {detail}", style="dim")
        grid.add_row("", Text(tag, style="dim"), t)
    if f.fixes:
        t = Text(", ".join(f.fixes), style="bold")
        t.append(f"  → {_fix_command(rr, f)}", style="dim")
        grid.add_row("", Text("fix", style="dim"), t)
    if grid.row_count:
        console.print(grid)


def _skipped_names(rr: RunReport) -> set[str]:
    return {s.detector for s in rr.skipped}


def to_rich_text(report: Report, *, show_skipped: bool = False, width: int = 100,
                 color: bool = False) -> str:
    """The rich view as a string (for ``--output`` and golden tests): fixed width, no colour."""
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=color, no_color=not color,
                      color_system="standard" if color else None, highlight=False, emoji=False)
    render_rich(report, console, show_skipped=show_skipped)
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


# --- markdown ----------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\r", "").replace("\n", "<br>")


MD_LIMIT = 60_000  # GitHub rejects comments over 65,536 characters


def to_markdown(report: Report, *, show_skipped: bool = False, limit: int = MD_LIMIT) -> str:
    """A Markdown report for a pull-request comment: a summary heading, one table per run,
    evidence in a collapsible block.  Kept under ``limit`` characters (GitHub's comment limit):
    the evidence blocks go first, then the tail is cut with a note."""
    text = _markdown(report, show_skipped=show_skipped, evidence=True)
    if len(text) > limit:
        text = _markdown(report, show_skipped=show_skipped, evidence=False)
    if len(text) > limit:
        note = f"\n\n_(report cut at {limit} characters; the full report: --format json)_\n"
        text = text[: limit - len(note)].rsplit("\n", 1)[0] + note
    return text


def _markdown(report: Report, *, show_skipped: bool, evidence: bool) -> str:
    lines = [f"## trainfix: {summary_text(report)}", ""]
    for rr in report.runs:
        lines.append(f"### `{rr.path}`")
        lines.append("")
        lines.append(f"_{_md_cell(inputs_text(rr))}_")
        lines.append("")
        findings = rr.all_findings
        if not findings:
            lines.append(f"✔ no findings ({len(rr.checked) - len(_skipped_names(rr))} detectors ran)")
            lines.append("")
        else:
            lines.append("| severity | detector | finding | metric | fix |")
            lines.append("|---|---|---|---|---|")
            for f in findings:
                sev = Severity(f.severity)
                where = steps_text(f)
                msg = _md_cell(f.message) + (f" <br><sub>{_md_cell(where)}</sub>" if where else "")
                sp = spark_text(rr, f)
                metric = f"`{_md_cell(sp[0])}` {sp[1]}" if sp else ""
                fixes = ", ".join(f"`{x}`" for x in f.fixes)
                lines.append(f"| {SYMBOL[sev]} {sev.value} | `{f.detector}` | {msg} | {metric} | {fixes} |")
            lines.append("")
            if evidence:
                lines.append("<details><summary>evidence</summary>")
                lines.append("")
                for f in findings:
                    ev = evidence_text(f, limit=20)
                    if ev:
                        lines.append(f"- **{f.detector}**: {_md_cell(ev)}")
                lines.append("")
                lines.append("</details>")
                lines.append("")
        if rr.skipped:
            if show_skipped:
                lines.append(f"Skipped ({len(rr.skipped)}):")
                lines.append("")
                lines += [f"- `{s.detector}`: {_md_cell(s.reason)}" for s in rr.skipped]
            else:
                lines.append(f"_{len(rr.skipped)} detector{'s' if len(rr.skipped) != 1 else ''} "
                             "skipped for missing data._")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"
