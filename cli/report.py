"""`trainfix report RUN_DIR... -o report.html`: the diagnosis as one self-contained HTML file.

The file opens offline (inline CSS and SVG, no script, nothing fetched): key curves per run with
each finding's steps shaded, the findings with their evidence and fixes, the diff ``trainfix apply``
would make for the best fix of each finding (planned on the run's config, nothing written, torch
never imported), the attention pictures the run holds, and with exactly two runs (``report RUN_A
RUN_B``, before then after) overlays of the curves both logged.  See
:mod:`trainfix.diagnostics.render_html` for what is drawn.

Attention pictures: the PNG files ``trainfix attention -o DIR`` writes (``overview.png`` first,
then ``samples/*.png``), found in any folder of the run dir holding an ``attention.json``, in an
``attention*/`` folder of the run dir, or in the folders given with ``--attention`` (for every
run); at most :data:`~trainfix.diagnostics.render_html.MAX_IMAGES` per run, within a byte budget.

The output is written atomically and refused when it is one of the files the diagnosis read.
Exit codes as ``diagnose``: 1 when a finding is at or above ``--fail-on`` (default: never, a report
is for reading), 2 for usage or input errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix.cli import common
from trainfix.cli.common import command
from trainfix.cli.diagnose import (
    ConfigOpt,
    IgnoreOpt,
    MetricOpt,
    ParamOpt,
    PathsArg,
    SelectOpt,
    choice,
    load_settings,
    parse_metrics,
    parse_params,
    SEVERITIES,
    write_atomic,
)
from trainfix.errors import UsageError

ReportOutputOpt = Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write (atomically).",
                                               metavar="FILE")]


@command
def report_command(
    run_dirs: PathsArg,
    output: ReportOutputOpt = Path("report.html"),
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    param: ParamOpt = None,
    metric: MetricOpt = None,
    fail_on: Annotated[Optional[str], typer.Option("--fail-on", help="Exit 1 when a finding is at or above: error | warning | info.",
                                                   show_default=False, metavar="SEVERITY")] = None,
    config: ConfigOpt = None,
    attention: Annotated[Optional[list[Path]], typer.Option(
        "--attention", help="A folder written by 'trainfix attention -o DIR' whose pictures to include (repeatable).",
        show_default=False, metavar="DIR")] = None,
) -> None:
    """Write an HTML report: curves with the flagged steps shaded, findings, evidence and fix diffs."""
    from trainfix.diagnostics import pipeline
    from trainfix.diagnostics.finding import Severity
    from trainfix.diagnostics.render_html import to_html
    from trainfix.diagnostics.report import exit_code

    if fail_on is not None:
        fail_on = choice(fail_on, SEVERITIES, "--fail-on")
    settings = load_settings(run_dirs, config)
    report = pipeline.diagnose_paths(run_dirs, metric_overrides=parse_metrics(metric or []), settings=settings,
                                   select=select, ignore=ignore, params=parse_params(param or []))
    refuse_input(output, report, run_dirs)
    text = to_html(report, extras_for(report, attention or []))
    write_atomic(output, text)
    size = len(text.encode("utf-8"))
    common.err().print(f"wrote HTML report to {output} ({size / 1024:.0f} KiB, {len(report.runs)} run"
                       f"{'s' if len(report.runs) != 1 else ''})", markup=False)
    raise typer.Exit(exit_code(report, Severity(fail_on)) if fail_on else 0)


def extras_for(report: Any, attention_dirs: list[Path] | None = None):
    """The fix diffs and attention pictures of every run in ``report``."""
    from trainfix.diagnostics.render_html import HtmlExtras

    extras = HtmlExtras()
    for rr in report.runs:
        fixes, note = fix_views(rr)
        extras.fixes.update(fixes)
        if note:
            extras.notes.setdefault(str(rr.path), []).append(note)
        extras.images[str(rr.path)] = attention_images(Path(str(rr.path)), extra=attention_dirs or [])
    return extras


def fix_views(rr: Any) -> tuple[dict[int, Any], str]:
    """Per finding (keyed by ``id``), the best fix's diff on the run's config, as ``apply`` would
    make it; and a note when the run has no config to patch.  Nothing is written."""
    from trainfix.diagnostics.render_html import FixView
    from trainfix.errors import TrainfixError

    findings = [f for f in rr.findings if f.fixes]
    if not findings:
        return {}, ""
    run_dir = Path(str(rr.path))
    run_dir = run_dir if run_dir.is_dir() else run_dir.parent
    try:
        from trainfix.fixes.foreign import default_output, find_config, load_document
        from trainfix.fixes.patch import patch_document
        from trainfix.fixes.recommend import recommend

        config_path = find_config(run_dir)
        doc = load_document(config_path)
        recs = recommend(doc.tree, findings)
    except TrainfixError as exc:
        return {}, f"fix diffs not shown: {exc.message}"
    out: dict[int, Any] = {}
    for rec in recs:
        if rec.patch is None:
            why = "; ".join(f"{i}: {r}" for i, r in rec.passed_over) or "no config fix"
            out[id(rec.finding)] = FixView(note=f"no config edit for this finding ({why})")
            continue
        if rec.shared:
            out[id(rec.finding)] = FixView(note=f"fixed by {rec.recipe_id}, shown above")
            continue
        try:
            rec.patch.finding = rec.finding.detector
            result = patch_document(doc, [rec.patch], str(default_output(config_path)))
        except TrainfixError as exc:
            out[id(rec.finding)] = FixView(rec.recipe_id, note=f"{rec.recipe_id}: {exc.message}")
            continue
        if result.changed:
            out[id(rec.finding)] = FixView(rec.recipe_id, result.diff)
        else:
            out[id(rec.finding)] = FixView(rec.recipe_id, note=f"{rec.recipe_id}: already in place in {config_path.name}")
    return out, ""


def attention_images(run_dir: Path, limit: int | None = None, extra: list[Path] | None = None) -> list[Path]:
    """The attention pictures of a run (see the module docstring); regular files only."""
    from trainfix.diagnostics.render_html import MAX_IMAGES

    limit = limit or MAX_IMAGES
    folders: list[Path] = [Path(d) for d in extra or [] if Path(d).is_dir()]
    if run_dir.is_dir():
        folders += [j.parent for j in sorted(run_dir.glob("attention.json")) + sorted(run_dir.glob("*/attention.json"))
                    if j.is_file() and not j.is_symlink()]
        folders += [d for d in sorted(run_dir.glob("attention*")) if d.is_dir() and not d.is_symlink()]
    found: list[Path] = []
    for folder in dict.fromkeys(folders):
        pngs = [folder / "overview.png"] + sorted(folder.glob("*.png")) + sorted(folder.glob("*/*.png"))
        for p in pngs:
            if p.is_file() and not p.is_symlink() and p not in found:
                found.append(p)
            if len(found) >= limit:
                return found
    return found


def refuse_input(output: Path, report: Any, paths: list[Path]) -> None:
    """A usage error when ``output`` is a file the diagnosis read (a log, a config, a checkpoint)."""
    target = Path(output).resolve()
    read: set[Path] = {Path(p).resolve() for p in paths if Path(p).is_file()}
    for rr in report.runs:
        root = Path(str(rr.path))
        base = root if root.is_dir() else root.parent
        if root.is_file():
            read.add(root.resolve())
        inputs = rr.run.inputs if rr.run is not None else rr.inputs
        for entry in inputs.get("files", []) or []:
            rel = entry.get("path") if isinstance(entry, dict) else entry
            if rel:
                read.add((base / str(rel)).resolve())
        for key in ("configs", "checkpoints"):
            for rel in inputs.get(key, []) or []:
                read.add((base / str(rel)).resolve())
    if target in read or target.is_dir():
        raise UsageError(f"refusing to write the report over {output}: it is an input of this report"
                         if target in read else f"{output} is a directory",
                         "pick another -o/--output, e.g. -o report.html")
