"""`trainfix metrics RUN_DIR`: show what trainfix read from a run directory.

Formats and files, every tag with its point count and step range, the role each detector input was
mapped to and how, restarts, corrupt records, skipped files and why.  A directory holding several
runs (``lightning_logs/version_*``) is shown run by run.  Thin: reading is
:func:`trainfix.diagnostics.ingest.read_run`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix import __version__
from trainfix.cli.common import command, out
from trainfix.errors import UsageError


def parse_metric_overrides(items: list[str] | None) -> dict[str, str]:
    """``["val_acc=Val Acc", ...]`` -> ``{"val_acc": "Val Acc"}`` (UsageError on a bad item)."""
    result: dict[str, str] = {}
    for item in items or []:
        role, sep, tag = item.partition("=")
        if not sep or not role.strip() or not tag.strip():
            raise UsageError(f"--metric {item!r} is not ROLE=TAG", "e.g. --metric val_acc='Val Acc'")
        result[role.strip()] = tag.strip()
    return result


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def tag_summary(run: Any) -> list[dict]:
    """Per tag: points, first/last step, last value (None when not finite), unit."""
    df = run.scalars
    if not len(df):
        return []
    g = df.groupby("tag", observed=True, sort=True)
    first = g["step"].min()
    last = g["step"].max()
    n = g.size()
    last_val = g["value"].last()
    nonfinite = g["value"].agg(lambda v: int((~pd_isfinite(v)).sum()))
    units = run.inputs.get("units", {})
    return [
        {
            "tag": str(tag),
            "points": int(n[tag]),
            "first_step": int(first[tag]),
            "last_step": int(last[tag]),
            "last_value": _finite(float(last_val[tag])),
            "nonfinite": int(nonfinite[tag]),
            "unit": units.get(str(tag)),
        }
        for tag in n.index
    ]


def pd_isfinite(values: Any) -> Any:
    import numpy as np

    return np.isfinite(values.to_numpy(dtype=float))


def _clean(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become null (stdout must stay one valid JSON document)."""
    if isinstance(obj, float):
        return _finite(obj)
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _run_doc(run: Any) -> dict:
    inputs = {k: v for k, v in run.inputs.items() if k != "points_per_tag"}
    return {"path": str(run.path), "inputs": inputs, "roles": run.roles.to_dict(), "tags": tag_summary(run)}


def _render(run: Any) -> None:
    from rich.markup import escape as e
    from rich.table import Table
    from rich.text import Text

    con = out()
    inp = run.inputs
    fmts = ", ".join(f"{k} ({v} file{'s' if v != 1 else ''})" for k, v in inp["formats"].items())
    con.print(f"[bold]{e(str(run.path))}[/bold]")
    con.print(f"  formats: {fmts}; {len(inp['tags'])} tags, {inp['points']:,} points")
    if inp.get("configs"):
        con.print(f"  configs: {e(', '.join(inp['configs']))} (later wins)")
    if inp.get("checkpoints"):
        shown = inp["checkpoints"][:8]
        more = f" and {len(inp['checkpoints']) - 8} more" if len(inp["checkpoints"]) > 8 else ""
        con.print(f"  checkpoints: {e(', '.join(shown))}{more} (listed, not loaded)")

    files = Table(title="files", title_justify="left", show_edge=False)
    for col in ("file", "format", "points", "tags"):
        files.add_column(col, justify="right" if col in ("points", "tags") else "left")
    for f in inp["files"]:
        files.add_row(Text(f["path"]), f["format"], f"{f['points']:,}", str(f["tags"]))
    con.print(files)

    tags = Table(title="tags", title_justify="left", show_edge=False)
    for col in ("tag", "points", "steps", "last value", "non-finite"):
        tags.add_column(col, justify="left" if col == "tag" else "right")
    for t in tag_summary(run):
        last = "nan/inf" if t["last_value"] is None else f"{t['last_value']:.6g}"
        unit = " (from %)" if t["unit"] == "%" else ""
        tags.add_row(Text(t["tag"]), f"{t['points']:,}", f"{t['first_step']}..{t['last_step']}", last + unit,
                     str(t["nonfinite"]) if t["nonfinite"] else "")
    con.print(tags)

    # Roles as lines, not a table: "how" holds patterns that must not be cut.
    con.print("[bold]roles[/bold] (role -> tag, direction, how it was resolved):")
    for role, res in run.roles.single.items():
        d = f" ({res.direction})" if res.direction else ""
        con.print(f"  {role} -> {e(res.tag)}{d}  [dim]{e(res.how)}[/dim]")
    for role, members in run.roles.groups.items():
        for key, res in members.items():
            d = f" ({res.direction})" if res.direction else ""
            label = e(f"{role}[{key}]")
            con.print(f"  {label} -> {e(res.tag)}{d}  [dim]{e(res.how)}[/dim]")
    if not run.roles.single and not run.roles.groups:
        con.print("  none resolved: map them with --metric ROLE=TAG")

    if inp["restarts"]:
        con.print("[bold]restarts[/bold] (later segment wins):")
        for r in inp["restarts"]:
            con.print(f"  {e(r['source'])}: step {r['from_step']} -> {r['step']} ({len(r['tags'])} tag(s))")
    if inp.get("duplicates"):
        con.print(f"duplicates: {len(inp['duplicates'])} tag(s) logged by several files; kept the fullest copy")
    if inp["corrupt_records"]:
        con.print(f"[yellow]corrupt records skipped: {inp['corrupt_records']}[/yellow]")
    for t in inp.get("truncated", []):
        con.print(f"[yellow]truncated: {e(t)} (read up to the incomplete last record)[/yellow]")
    if inp["skipped"]:
        con.print("[bold]skipped[/bold]:")
        for s in inp["skipped"]:
            con.print(f"  {e(s['path'])}: {e(s['reason'])}")
    for note in inp.get("notes", []):
        con.print(f"note: {e(note)}")


@command
def metrics_command(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (or one log file) to read.", show_default=False)],
    metric: Annotated[
        Optional[list[str]],
        typer.Option("--metric", "-m", help="Map a role to a tag: ROLE=TAG (repeatable), e.g. val_acc='Val Acc'."),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="Output: rich or json.")] = "rich",
    train_config: Annotated[Optional[Path], typer.Option(
        "--train-config", help="Your training config (YAML/JSON) when it is not in the run dir; read as the run's config.",
        show_default=False, metavar="FILE")] = None,
) -> None:
    """Show what trainfix reads from RUN_DIR: formats, files, tags, roles (each with how it was
    inferred: its name, a pattern, an override, or the training config), restarts, skipped files."""
    from trainfix.diagnostics.ingest import find_runs, read_run

    fmt = fmt.lower()
    if fmt not in ("rich", "json"):
        raise UsageError(f"unknown --format {fmt!r}", "use rich or json")
    overrides = parse_metric_overrides(metric)
    paths = find_runs(run_dir) if run_dir.is_dir() else []
    paths = paths or [run_dir]
    runs = [read_run(p, metric_overrides=overrides, train_config=train_config) for p in paths]
    if fmt == "json":
        doc = {"schema": 1, "trainfix_version": __version__, "runs": [_run_doc(r) for r in runs]}
        typer.echo(json.dumps(_clean(doc), default=str, allow_nan=False))
        return
    for i, run in enumerate(runs):
        if i:
            out().print()
        _render(run)
