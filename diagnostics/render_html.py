"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched) that a
browser opens offline.

What it holds, per run: the key curves (training loss per epoch and per step, validation loss and
accuracy, learning rate, gradient norm) plus every tag a finding names, each as an inline SVG chart
with the finding's step range shaded in its severity's colour; under the charts one card per
finding: severity, detector, message, the evidence table, the fix ids and the unified diff ``trainfix
apply`` would make (computed by the caller, who knows the fixes; this module only draws); and the
attention pictures a run holds (PNG files, embedded as data URIs).  With two runs, before/after
overlays of the curves both runs logged come first, each run drawn in steps from its own first
logged step (a fixed run relaunched or resumed at step 5,000 lines up with the run it repairs;
absolute steps would set it beside the other's end).

Size: a series is cut to at most :data:`MAX_POINTS` points by keeping each bucket's minimum and
maximum (spikes survive the cut), so a typical report stays well under 2 MB; attention pictures
are limited in number and size (:data:`MAX_IMAGES`, :data:`MAX_IMAGE_BYTES` each,
:data:`MAX_IMAGES_TOTAL` per run).

Non-finite values (NaN, Inf) cannot be drawn as a line: each one is a red tick along the top
edge of the chart at its step, and the chart's title counts them.

Everything taken from a run (tag names, messages, evidence, file names) is HTML-escaped: a run
directory may come from a stranger.
"""

from __future__ import annotations

import base64
import html
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics.finding import Finding, Severity

if TYPE_CHECKING:
    from trainfix.diagnostics.report import Report, RunReport
    from trainfix.diagnostics.run import Run, Series

MAX_POINTS = 600
MAX_IMAGES = 12
MAX_IMAGE_BYTES = 600_000
MAX_IMAGES_TOTAL = 1_200_000  # bytes of pictures per run, so the report stays small
#: roles drawn for every run that has them, in this order
KEY_ROLES = ("train_loss", "train_loss_step", "val_loss", "val_acc", "val_metric", "lr", "grad_norm")
SEVERITY_COLOUR = {"error": "#d62728", "warning": "#ff9f1c", "info": "#1f77b4"}
RUN_COLOURS = ("#1f77b4", "#e6550d")
W, H = 560, 170
PAD_L, PAD_R, PAD_T, PAD_B = 58, 12, 22, 26


@dataclass
class FixView:
    """What the report shows for one finding's fix: the recipe chosen and its diff (or why none)."""

    recipe_id: str | None = None
    diff: str = ""
    note: str = ""


@dataclass
class HtmlExtras:
    """What the caller adds to the diagnosis: fixes per finding (keyed by ``id(finding)``) and the
    attention pictures per run path."""

    fixes: dict[int, FixView] = field(default_factory=dict)
    images: dict[str, list[Path]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)


# --- series preparation --------------------------------------------------------------------------


def downsample(steps: np.ndarray, values: np.ndarray, limit: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``limit`` points: each of ``limit // 2`` buckets keeps its minimum and maximum, in
    step order, so spikes and drops survive.  Non-finite points must be removed first."""
    n = len(values)
    if n <= limit:
        return steps, values
    buckets = max(1, limit // 2)
    edges = np.linspace(0, n, buckets + 1).astype(int)
    keep: list[int] = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        chunk = values[a:b]
        i, j = a + int(np.argmin(chunk)), a + int(np.argmax(chunk))
        keep.extend(sorted({i, j}))
    idx = np.array(keep, dtype=int)
    return steps[idx], values[idx]


def _fmt(v: float) -> str:
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e5 or a < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4g}"


def _finding_range(f: Finding) -> tuple[float, float] | None:
    steps = f.steps
    if not steps:
        return None
    try:
        lo, hi = float(steps[0]), float(steps[-1])
    except (TypeError, ValueError, IndexError):
        return None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return (min(lo, hi), max(lo, hi))


# --- SVG charts ------------------------------------------------------------------------------------


def _prepare(lines: list[tuple[str, str, "Series"]]) -> tuple[list, list[tuple[float, str]]]:
    """((label, colour, steps, values) of each line's finite points, downsampled; (step, colour)
    of every non-finite point)."""
    prepared = []
    nonfinite: list[tuple[float, str]] = []
    for label, colour, s in lines:
        st = np.asarray(s.steps, dtype=float)
        va = np.asarray(s.values, dtype=float)
        ok = np.isfinite(va) & np.isfinite(st)
        nonfinite += [(float(x), colour) for x in st[~np.isfinite(va) & np.isfinite(st)]]
        xs, ys = downsample(st[ok], va[ok])
        prepared.append((label, colour, xs, ys))
    return prepared, nonfinite


def _y_range(all_y: np.ndarray) -> tuple[float, float, bool]:
    """(bottom, top, log scale) of the y axis: log when every value is positive and they span more
    than three decades; a flat line gets a band of +-10% around it (+-1 around zero); 5% margins."""
    log = bool(len(all_y)) and float(all_y.min()) > 0 and float(all_y.max()) / float(all_y.min()) > 1e3
    if len(all_y):
        ty = np.log10(all_y) if log else all_y
        y0, y1 = float(ty.min()), float(ty.max())
    else:
        y0, y1 = 0.0, 1.0
    if y1 <= y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    margin = (y1 - y0) * 0.05
    return y0 - margin, y1 + margin, log


def svg_chart(title: str, lines: list[tuple[str, str, "Series"]],
              shades: Iterable[tuple[float, float, str, str]] = (), *, x_label: str = "step") -> str:
    """One chart: ``lines`` are (label, colour, series); ``shades`` (first step, last step, colour,
    label) are drawn under the lines.  Log scale on y when every value is positive and they span
    more than three decades (learning rates, gradient norms).  ``x_label`` names the x axis."""
    prepared, nonfinite = _prepare(lines)
    shades = list(shades)
    all_x = np.concatenate([p[2] for p in prepared] + [np.array([x for x, _ in nonfinite], dtype=float)])
    all_y = np.concatenate([p[3] for p in prepared]) if prepared else np.array([])
    if not len(all_x):
        return ""
    x0, x1 = float(all_x.min()), float(all_x.max())
    for lo, hi, _, _ in shades:
        x0, x1 = min(x0, lo), max(x1, hi)
    if x1 <= x0:
        x1 = x0 + 1.0
    y0, y1, log = _y_range(all_y)
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def px(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        t = math.log10(y) if log else y
        return PAD_T + (1 - (t - y0) / (y1 - y0)) * ph

    parts = [f'<svg class="chart" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(title)}">',
             f'<rect x="{PAD_L}" y="{PAD_T}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#ccc"/>']
    for lo, hi, colour, label in shades:
        a, b = px(lo), px(hi)
        width = max(b - a, 3.0)
        parts.append(f'<rect class="shade" x="{a:.1f}" y="{PAD_T}" width="{width:.1f}" height="{ph}" '
                     f'fill="{colour}" fill-opacity="0.22"><title>{html.escape(label)}</title></rect>')
    for label, colour, xs, ys in prepared:
        if not len(xs):
            continue
        pts = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in zip(xs, ys))
        if len(xs) == 1:
            parts.append(f'<circle cx="{px(xs[0]):.1f}" cy="{py(ys[0]):.1f}" r="2.5" fill="{colour}"/>')
        else:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.4" points="{pts}">'
                         f'<title>{html.escape(label)}</title></polyline>')
    for x, colour in nonfinite[:500]:
        parts.append(f'<line x1="{px(x):.1f}" y1="{PAD_T}" x2="{px(x):.1f}" y2="{PAD_T + 8}" '
                     f'stroke="#d62728" stroke-width="2"/>')
    # axes: the range of each, enough to read the scale
    lo_y, hi_y = (10 ** y0, 10 ** y1) if log else (y0, y1)
    parts += [
        f'<text x="{PAD_L - 4}" y="{PAD_T + 9}" text-anchor="end" class="ax">{_fmt(hi_y)}</text>',
        f'<text x="{PAD_L - 4}" y="{PAD_T + ph}" text-anchor="end" class="ax">{_fmt(lo_y)}</text>',
        f'<text x="{PAD_L}" y="{H - 8}" class="ax">{html.escape(x_label)} {_fmt(x0)}</text>',
        f'<text x="{W - PAD_R}" y="{H - 8}" text-anchor="end" class="ax">{_fmt(x1)}</text>',
    ]
    head = html.escape(title) + (" (log scale)" if log else "")
    if nonfinite:
        head += f" — {len(nonfinite)} non-finite value{'s' if len(nonfinite) > 1 else ''} (red ticks)"
    parts.append(f'<text x="{PAD_L}" y="14" class="ttl">{head}</text>')
    if len(lines) > 1:
        lx = W - PAD_R - 6
        for i, (label, colour, _, _) in enumerate(reversed(prepared)):
            parts.append(f'<text x="{lx}" y="{14}" text-anchor="end" fill="{colour}" class="lg" '
                         f'dx="{-i * 150}">{html.escape(label[:24])}</text>')
    parts.append("</svg>")
    return "".join(parts)


# --- which curves a run gets -----------------------------------------------------------------------


def chart_tags(rr: "RunReport") -> list[str]:
    """The tags drawn for a run: the key roles it resolved, then every tag a finding names."""
    run = rr.run
    if run is None:
        return []
    out: list[str] = []
    for role in KEY_ROLES:
        try:
            tag = run.roles.tag(role)
        except Exception:
            tag = None
        if tag and tag not in out and run.series(tag) is not None:
            out.append(tag)
    for f in rr.all_findings:
        for tag in f.tags or []:
            if isinstance(tag, str) and tag not in out and run.series(tag) is not None:
                out.append(tag)
    return out[:24]


def _shades_for(rr: "RunReport", tag: str, first: bool, plotted: set[str]) -> list[tuple[float, float, str, str]]:
    out = []
    for f in rr.all_findings:
        rng = _finding_range(f)
        if rng is None:
            continue
        tags = [t for t in (f.tags or []) if t in plotted]
        if tag in tags or (first and not tags):
            sev = Severity(f.severity).value
            out.append((rng[0], rng[1], SEVERITY_COLOUR[sev], f"{sev} {f.detector}: steps {_fmt(rng[0])}-{_fmt(rng[1])}"))
    return out


# --- the document ------------------------------------------------------------------------------------

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin:18px 0 6px} .muted{color:#666;font-size:13px}
.charts{display:flex;flex-wrap:wrap;gap:10px} .chart{background:#fff;border:1px solid #e3e3e3;border-radius:4px}
.ax{font-size:10px;fill:#555} .ttl{font-size:12px;font-weight:600;fill:#222} .lg{font-size:11px;font-weight:600}
.finding{border:1px solid #ddd;border-left:6px solid #999;border-radius:4px;padding:10px 14px;margin:12px 0;background:#fff}
.finding.error{border-left-color:#d62728} .finding.warning{border-left-color:#ff9f1c} .finding.info{border-left-color:#1f77b4}
.sev{display:inline-block;font-size:11px;font-weight:700;text-transform:uppercase;color:#fff;padding:1px 7px;border-radius:3px;margin-right:6px}
.sev.error{background:#d62728} .sev.warning{background:#e08a00} .sev.info{background:#1f77b4}
.det{font-weight:700;font-family:monospace;font-size:14px} .msg{margin:6px 0 8px;font-size:14px}
table.ev{border-collapse:collapse;font-size:12px;margin:4px 0 8px} table.ev td{border:1px solid #e3e3e3;padding:2px 8px;font-family:monospace;vertical-align:top}
table.ev td.k{background:#f6f6f6} pre.diff{background:#f7f7f7;border:1px solid #e3e3e3;padding:8px;font-size:12px;overflow-x:auto}
pre.diff .add{color:#22863a;background:#e6ffed;display:block} pre.diff .del{color:#b31d28;background:#ffeef0;display:block}
.summary span{margin-right:14px} .imgs img{max-width:360px;border:1px solid #ddd;margin:4px}
.ok{color:#22863a;font-weight:600}
"""


def _evidence_rows(evidence: dict[str, Any]) -> str:
    rows = []
    for k, v in list(evidence.items())[:40]:
        try:
            text = v if isinstance(v, str) else json.dumps(v, default=str, allow_nan=True)
        except (TypeError, ValueError):
            text = str(v)
        if isinstance(v, float):
            text = _fmt(v)
        if len(text) > 300:
            text = text[:297] + "..."
        rows.append(f'<tr><td class="k">{html.escape(str(k))}</td><td>{html.escape(text)}</td></tr>')
    return f'<table class="ev">{"".join(rows)}</table>' if rows else ""


def _diff_html(diff: str) -> str:
    lines = []
    for line in diff.splitlines()[:200]:
        cls = "add" if line.startswith("+") and not line.startswith("+++") else (
            "del" if line.startswith("-") and not line.startswith("---") else "")
        esc = html.escape(line)
        lines.append(f'<span class="{cls}">{esc}</span>' if cls else esc + "\n")
    return '<pre class="diff">' + "".join(lines) + "</pre>"


def _finding_card(f: Finding, anchor: str, fix: FixView | None) -> str:
    sev = Severity(f.severity).value
    rng = _finding_range(f)
    where = f"steps {_fmt(rng[0])}–{_fmt(rng[1])}" if rng else "no step range"
    tags = ", ".join(html.escape(str(t)) for t in f.tags or [])
    parts = [f'<div class="finding {sev}" id="{anchor}" data-detector="{html.escape(f.detector)}">',
             f'<span class="sev {sev}">{sev}</span><span class="det">{html.escape(f.detector)}</span>',
             f' <span class="muted">{where}{" · " + tags if tags else ""} · confidence {float(f.confidence):.2f}</span>',
             f'<div class="msg">{html.escape(f.message)}</div>',
             _evidence_rows(dict(f.evidence or {}))]
    if f.fixes:
        parts.append('<div><b>fixes</b> (best first): ' + ", ".join(
            f"<code>{html.escape(x)}</code>" for x in f.fixes) + "</div>")
    if fix is not None and fix.recipe_id and fix.diff:
        parts.append(f'<div class="muted">what <code>trainfix apply --fix {html.escape(fix.recipe_id)}</code> '
                     f'would change (a new file; the config itself is not modified):</div>')
        parts.append(_diff_html(fix.diff))
    elif fix is not None and fix.note:
        parts.append(f'<div class="muted">{html.escape(fix.note)}</div>')
    parts.append("</div>")
    return "".join(parts)


def _images_html(paths: list[Path]) -> str:
    out = []
    total = 0
    for p in paths[:MAX_IMAGES]:
        try:
            if not p.is_file() or p.is_symlink() or p.stat().st_size > MAX_IMAGE_BYTES:
                continue
            data = p.read_bytes()
        except OSError:
            continue
        if not data.startswith(b"\x89PNG\r\n\x1a\n") or total + len(data) > MAX_IMAGES_TOTAL:
            continue
        total += len(data)
        b64 = base64.b64encode(data).decode("ascii")
        out.append(f'<figure style="display:inline-block;margin:4px"><img alt="{html.escape(p.name)}" '
                   f'src="data:image/png;base64,{b64}"/><figcaption class="muted">{html.escape(p.name)}</figcaption></figure>')
    return '<div class="imgs">' + "".join(out) + "</div>" if out else ""


def run_start(run: "Run") -> float:
    """The first step a run logged anything at (0 for a run with no finite step)."""
    steps = np.asarray(run.scalars["step"], dtype=float) if len(run.scalars) else np.zeros(0)
    steps = steps[np.isfinite(steps)]
    return float(steps.min()) if steps.size else 0.0


def from_start(s: "Series", start: float) -> "Series":
    """``s`` with its steps counted from ``start`` (the run's first logged step)."""
    from trainfix.diagnostics.run import Series

    return Series(s.tag, np.asarray(s.steps, dtype=float) - start, s.values)


def _overlay_section(a: "RunReport", b: "RunReport") -> str:
    """Before/after charts of the tags both runs logged (key roles first)."""
    ra, rb = a.run, b.run
    if ra is None or rb is None:
        return ""
    tags_a = chart_tags(a)
    common = [t for t in tags_a if rb.series(t) is not None]
    for role in KEY_ROLES:  # a role both resolved under different names
        ta, tb = ra.roles.tag(role), rb.roles.tag(role)
        if ta and tb and ta != tb and ta not in common and ra.series(ta) is not None and rb.series(tb) is not None:
            common.append((ta, tb))  # type: ignore[arg-type]
    charts = []
    start_a, start_b = run_start(ra), run_start(rb)
    for item in common[:12]:
        ta, tb = item if isinstance(item, tuple) else (item, item)
        sa, sb = from_start(ra.series(ta), start_a), from_start(rb.series(tb), start_b)
        title = ta if ta == tb else f"{ta} / {tb}"
        charts.append(svg_chart(title, [(f"A: {Path(str(a.path)).name}", RUN_COLOURS[0], sa),
                                        (f"B: {Path(str(b.path)).name}", RUN_COLOURS[1], sb)],
                                x_label="steps from start"))
    if not charts:
        return ""
    return ('<h2 id="overlay">Before / after</h2><p class="muted">A (blue): '
            f'{html.escape(str(a.path))} · B (orange): {html.escape(str(b.path))}. '
            'Each run is drawn from its own first logged step, so a run resumed or relaunched at a '
            'later step lines up with the one it repairs.</p>'
            f'<div class="charts">{"".join(charts)}</div>')


def _run_section(i: int, rr: "RunReport", extras: HtmlExtras) -> str:
    run = rr.run
    findings = rr.all_findings
    counts = {s: sum(1 for f in findings if Severity(f.severity).value == s) for s in ("error", "warning", "info")}
    parts = [f'<h2 id="run-{i}">Run {i + 1}: {html.escape(str(rr.path))}</h2>']
    inputs = rr.inputs_summary()
    fmts = ", ".join(f"{html.escape(str(k))} ×{v}" for k, v in (inputs.get("formats") or {}).items())
    parts.append(f'<p class="muted">{len(inputs.get("tags") or [])} tags, {inputs.get("points", 0)} points'
                 f'{" from " + fmts if fmts else ""} · {counts["error"]} errors, {counts["warning"]} warnings, '
                 f'{counts["info"]} info</p>')
    for note in extras.notes.get(str(rr.path), []):
        parts.append(f'<p class="muted">{html.escape(note)}</p>')
    tags = chart_tags(rr)
    plotted = set(tags)
    charts = []
    for j, tag in enumerate(tags):
        s = run.series(tag) if run is not None else None
        if s is None:
            continue
        charts.append(svg_chart(tag, [(tag, RUN_COLOURS[0], s)], _shades_for(rr, tag, j == 0, plotted)))
    if charts:
        parts.append(f'<div class="charts">{"".join(charts)}</div>')
    parts.append(f"<h3>Findings ({len(findings)})</h3>")
    if not findings:
        parts.append('<p class="ok">no findings: every detector that could judge this run stayed quiet</p>')
    for k, f in enumerate(findings):
        parts.append(_finding_card(f, f"run-{i}-finding-{k}", extras.fixes.get(id(f))))
    imgs = _images_html(extras.images.get(str(rr.path), []))
    if imgs:
        parts.append("<h3>Attention pictures</h3>" + imgs)
    if rr.skipped:
        items = "".join(f"<li><code>{html.escape(s.detector)}</code>: {html.escape(s.reason)}</li>" for s in rr.skipped)
        parts.append(f'<details><summary class="muted">{len(rr.skipped)} detectors skipped (missing data)</summary>'
                     f'<ul class="muted">{items}</ul></details>')
    return "".join(parts)


def to_html(report: "Report", extras: HtmlExtras | None = None, *, title: str = "trainfix report") -> str:
    """The whole report as one HTML document (see the module docstring)."""
    from trainfix import __version__

    extras = extras or HtmlExtras()
    counts = report.counts()
    body = [f"<h1>{html.escape(title)}</h1>",
            f'<p class="muted summary">trainfix {html.escape(__version__)} · {len(report.runs)} run'
            f'{"s" if len(report.runs) != 1 else ""} · <span>{counts["error"]} errors</span>'
            f'<span>{counts["warning"]} warnings</span><span>{counts["info"]} info</span></p>',
            '<p class="muted">Shaded bands mark the steps each finding is about '
            '(<span style="color:#d62728">error</span>, <span style="color:#e08a00">warning</span>, '
            '<span style="color:#1f77b4">info</span>).</p>']
    if len(report.runs) == 2:
        body.append(_overlay_section(report.runs[0], report.runs[1]))
    for i, rr in enumerate(report.runs):
        body.append(_run_section(i, rr, extras))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
            + "".join(body) + "</body></html>\n")
