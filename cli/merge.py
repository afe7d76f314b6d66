"""`trainfix merge REPORT.json...`: join the JSON reports of the shards of one sweep into one.

Each shard of a sweep (``trainfix diagnose SWEEP --shard K/N --format json -o shard-K.json`` in
a Slurm array, Kubernetes jobs or a CI matrix) writes a schema-1 report; ``merge`` joins their
``runs`` sorted by path, the order ``diagnose`` finds them in (a run that two reports both hold is
kept once, from the first report given) and writes one schema-1 document to stdout or ``-o FILE`` (atomically, never over an input).
``--fail-on SEVERITY`` makes the exit code the gate over the whole sweep: 1 when any finding of
any run is at or above it.  The reports are read as data: a file that is not a schema-1 report
ends in one error line and exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix.cli.common import command
from trainfix.errors import InputError, UsageError

RANKS = {"info": 1, "warning": 2, "error": 3}


def _load(path: Path) -> dict[str, Any]:
    from trainfix.diagnostics.ingest.safe_read import open_input

    try:
        with open_input(path) as fh:
            doc = json.loads(fh.read().decode("utf-8", "replace"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read it: {exc.strerror or exc}", "pass the JSON reports the shards wrote") from None
    except ValueError as exc:
        raise InputError(f"{path}: not JSON ({exc})", "pass reports written with --format json") from None
    if not isinstance(doc, dict) or doc.get("schema") != 1 or not isinstance(doc.get("runs"), list):
        raise InputError(f"{path}: not a trainfix JSON report (schema 1 with a 'runs' list)",
                         "write each shard's report with: trainfix diagnose ... --format json -o FILE")
    return doc


def merge_reports(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One schema-1 document holding the runs of ``docs`` sorted by path, each path once."""
    from trainfix import __version__

    seen: set[str] = set()
    runs = []
    for doc in docs:
        for run in doc["runs"]:
            key = str(run.get("path")) if isinstance(run, dict) else None
            if key is None or key in seen:
                continue
            seen.add(key)
            runs.append(run)
    runs.sort(key=lambda run: str(run.get("path")))
    return {"schema": 1, "trainfix_version": __version__, "runs": runs}


@command
def merge_command(
    reports: Annotated[list[Path], typer.Argument(help="JSON reports (schema 1) of the shards.", show_default=False,
                                                  metavar="REPORT")],
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the merged report to FILE (atomically).",
                                                   show_default=False, metavar="FILE")] = None,
    fail_on: Annotated[Optional[str], typer.Option("--fail-on", help="Exit 1 when any finding is at or above: "
                                                   "error | warning | info.", show_default=False,
                                                   metavar="SEVERITY")] = None,
) -> None:
    """Merge the JSON reports of a sharded sweep (diagnose/check --shard K/N) into one."""
    if fail_on is not None and fail_on not in RANKS:
        raise UsageError(f"--fail-on {fail_on}: one of error, warning, info", "e.g. --fail-on warning")
    if output is not None and any(output.resolve() == r.resolve() for r in reports):
        raise UsageError(f"{output} is one of the reports being merged; not overwritten", "write the merge elsewhere")
    merged = merge_reports([_load(r) for r in reports])
    text = json.dumps(merged, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        from trainfix.cli.diagnose import write_atomic

        write_atomic(output, text)
    if fail_on is not None:
        gate = RANKS[fail_on]
        worst = max((RANKS.get(str(f.get("severity")), 0) for run in merged["runs"] if isinstance(run, dict)
                     for f in run.get("findings", []) if isinstance(f, dict)), default=0)
        raise typer.Exit(1 if worst >= gate else 0)
