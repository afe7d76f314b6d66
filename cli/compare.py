"""`trainfix compare RUN_A RUN_B`: did the fix work?  Findings resolved, remaining and new, and the
key metrics of both runs side by side.

Both runs are read and diagnosed the same way as ``trainfix diagnose`` does; what is compared and
how is :mod:`trainfix.diagnostics.compare`.  ``--format json`` prints one JSON document.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from trainfix.cli.common import command, expected_model, out
from trainfix.cli.diagnose import MetricOpt, parse_metrics
from trainfix.diagnostics.compare import comparison, diagnose_one, metric_label
from trainfix.errors import UsageError


@command
def compare_command(
    run_a: Annotated[Path, typer.Argument(help="The run before the fix.")],
    run_b: Annotated[Path, typer.Argument(help="The run after the fix.")],
    format: Annotated[str, typer.Option("--format", help="rich | json")] = "rich",
    metric: MetricOpt = None,
) -> None:
    """Compare two runs: findings resolved / remaining / new / not evaluated, and key metrics side by side."""
    if format not in ("rich", "json"):
        raise UsageError(f"unknown format '{format}'", "use --format rich or --format json")
    overrides = parse_metrics(metric or [])
    a = diagnose_one(run_a, expected_model, overrides)
    b = diagnose_one(run_b, expected_model, overrides)
    data = comparison(a, b)
    if format == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
        return
    render(data)


# --------------------------------------------------------------------------- rendering


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e4):
        return f"{v:.3g}"
    return f"{v:.4g}"


def render(data: dict[str, Any]) -> None:
    con = out()
    con.print(f"[bold]before[/] {escape(data['a'])}\n[bold]after[/]  {escape(data['b'])}")
    t = Table(title="findings", show_lines=False)
    t.add_column("status")
    t.add_column("severity")
    t.add_column("detector")
    t.add_column("message", overflow="fold")
    for status, style, key in (("resolved", "green", "resolved"), ("remaining", "yellow", "remaining"), ("new", "red", "new")):
        for f in data[key]:
            t.add_row(f"[{style}]{status}[/]", f["severity"], f["detector"], escape(f["message"]))
    for f in data.get("not_evaluated", []):
        why = f"not evaluated {'after' if f['side'] == 'after' else 'before'}: {f['reason']}"
        t.add_row("[dim]not evaluated[/]", f["severity"], f["detector"],
                  escape(f["message"]) + f"\n[dim]{escape(why)}[/]")
    if data["resolved"] or data["remaining"] or data["new"] or data.get("not_evaluated"):
        con.print(t)
    else:
        con.print("findings: none in either run")
    m = Table(title="metrics")
    m.add_column("metric")
    m.add_column("before", justify="right")
    m.add_column("after", justify="right")
    m.add_column("")
    for row in data["metrics"]:
        style = {"better": "green", "worse": "red"}.get(row["verdict"], "dim")
        m.add_row(escape(metric_label(row)), fmt(row["a"]), fmt(row["b"]), f"[{style}]{row['verdict']}[/]")
    con.print(m)
    ne = len(data.get("not_evaluated", []))
    con.print(f"{len(data['resolved'])} resolved, {len(data['remaining'])} remaining, {len(data['new'])} new"
              + (f", {ne} not evaluated" if ne else ""))


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
