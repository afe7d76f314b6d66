"""`trainfix diagnose RUN_DIR...`: read runs, run the detectors, render the report.

Exit codes: 0 when no finding is at or above ``--fail-on`` (default ``error`` here; ``trainfix
check`` defaults to ``warning``), 1 when one is, 2 for usage, input or internal errors.  Settings
come from ``[tool.trainfix]`` in the nearest pyproject.toml or trainfix.toml above the first path
(or the file given with ``--settings``); command-line options win over them.  ``--train-config
FILE`` names the user's own training config when it is not in the run dir (read as data, it wins
over the configs found there).  ``--config`` was the settings file's option before; it is refused
with a hint naming both, so that a training config is never read as settings.  The option aliases
declared here are shared with ``trainfix check``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix.cli import common
from trainfix.cli.common import command
from trainfix.diagnostics.finding import Severity
from trainfix.diagnostics.report import FORMATS, Report, exit_code, render
from trainfix.errors import UsageError

SEVERITIES = ("error", "warning", "info")

# --- option aliases shared with `check` -----------------------------------------------------------
PathsArg = Annotated[list[Path], typer.Argument(help="Run directories or log files.", show_default=False,
                                                metavar="PATH")]
FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", help="rich | json | md | github | junit.",
                                                  show_default=False, metavar="FORMAT")]
OutputOpt = Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the report to FILE (atomically).",
                                                   show_default=False, metavar="FILE")]
SelectOpt = Annotated[Optional[list[str]], typer.Option(
    "--select", help="Only these detectors (name or prefix; repeat or comma-separate).", show_default=False,
    metavar="NAME")]
IgnoreOpt = Annotated[Optional[list[str]], typer.Option(
    "--ignore", help="Skip these detectors (name or prefix).", show_default=False, metavar="NAME")]
ParamOpt = Annotated[Optional[list[str]], typer.Option(
    "--param", "-p", help="Detector threshold override, NAME.KEY=VALUE (see 'trainfix explain NAME').",
    show_default=False, metavar="NAME.KEY=VALUE")]
MetricOpt = Annotated[Optional[list[str]], typer.Option(
    "--metric", "-m", help="Map a role to a logged tag, ROLE=TAG (e.g. val_acc='Val Acc').", show_default=False,
    metavar="ROLE=TAG")]
FailOnOpt = Annotated[Optional[str], typer.Option(
    "--fail-on", help="Exit 1 when a finding is at or above: error | warning | info.", show_default=False,
    metavar="SEVERITY")]
SkippedOpt = Annotated[bool, typer.Option("--show-skipped", help="List detectors skipped for missing data.")]
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--settings", help="Settings file (\\[tool.trainfix] in a pyproject.toml, or a trainfix.toml).",
    show_default=False, metavar="FILE")]
TrainConfigOpt = Annotated[Optional[Path], typer.Option(
    "--train-config", help="Your training config (YAML/JSON) when it is not in the run dir; read as the run's config.",
    show_default=False, metavar="FILE")]
OldConfigOpt = Annotated[Optional[str], typer.Option("--config", hidden=True, show_default=False)]
JobsOpt = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", help="Worker processes for many runs (default: the number of cores).", show_default=False,
    metavar="N")]
ShardOpt = Annotated[Optional[str], typer.Option(
    "--shard", help="Only the K-th of N shares of the runs found (K/N, e.g. 3/8); join the JSON reports with "
    "'trainfix merge'.", show_default=False, metavar="K/N")]


def refuse_old_config(value: str | None) -> None:
    """``--config`` meant the settings file; it is gone so that nobody passes a training config there."""
    if value is not None:
        raise UsageError(f"--config {value}: this option is now --settings (a pyproject.toml or trainfix.toml)",
                         f"for your training config use --train-config {value}; for settings, --settings {value}")


@command
def diagnose_command(
    run_dirs: PathsArg,
    fmt: FormatOpt = None,
    output: OutputOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    param: ParamOpt = None,
    metric: MetricOpt = None,
    fail_on: FailOnOpt = None,
    show_skipped: SkippedOpt = False,
    config: ConfigOpt = None,
    train_config: TrainConfigOpt = None,
    old_config: OldConfigOpt = None,
    tensorboard: Annotated[bool, typer.Option(
        "--tensorboard", help="Also write each finding as a TensorBoard text summary (a new event file in the run dir).")] = False,
    jobs: JobsOpt = None,
    shard: ShardOpt = None,
) -> None:
    """Diagnose training runs: findings with their numbers and the fix for each.

    Exit 0: nothing at or above --fail-on (default error); 1: something is; 2: usage or input error.
    """
    refuse_old_config(old_config)
    code = run_and_render(run_dirs, fmt=fmt or "rich", output=output, select=select, ignore=ignore,
                          param=param, metric=metric, fail_on=fail_on, default_fail_on="error",
                          show_skipped=show_skipped, config=config, tensorboard=tensorboard,
                          train_config=train_config, jobs=jobs, shard=shard)
    raise typer.Exit(code)


# --- the pipeline both commands share ------------------------------------------------------------


def run_and_render(paths: list[Path], *, fmt: str, output: Path | None, select, ignore, param, metric,
                   fail_on: str | None, default_fail_on: str, show_skipped: bool, config: Path | None,
                   exit_zero: bool = False, junit: Path | None = None, step_summary: bool = False,
                   tensorboard: bool = False, train_config: Path | None = None, jobs: int | None = None,
                   shard: str | None = None) -> int:
    """Validate options, diagnose ``paths``, write the report, return the exit code (0 or 1).

    ``step_summary`` (github format in ``check``): also append the Markdown report to
    ``$GITHUB_STEP_SUMMARY`` when it is set, and print the one-line summary on stderr.
    """
    from trainfix.diagnostics import pipeline
    from trainfix.diagnostics.parallel import default_jobs, parse_shard

    fmt = choice(fmt, FORMATS, "--format")
    shard_kn = parse_shard(shard)
    if jobs is not None and jobs < 1:
        raise UsageError(f"--jobs {jobs}: needs at least one worker", "--jobs 1 diagnoses the runs one by one")
    if fail_on is not None:
        fail_on = choice(fail_on, SEVERITIES, "--fail-on")
    params = parse_params(param or [])
    metrics = parse_metrics(metric or [])
    settings = load_settings(paths, config)
    if fail_on is None:
        s_fail = getattr(settings, "fail_on", None)
        fail_on = choice(s_fail, SEVERITIES, "fail_on in [tool.trainfix]") if s_fail else default_fail_on
    with progress_bar(enabled=fmt == "rich" and output is None) as progress:
        report = pipeline.diagnose_paths(paths, metric_overrides=metrics, settings=settings, select=select,
                                       ignore=ignore, params=params, model_builder=common.expected_model,
                                       train_config=train_config, jobs=jobs or default_jobs(), shard=shard_kn,
                                       progress=progress)
    emit(report, fmt, output=output, show_skipped=show_skipped)
    if tensorboard:
        write_tensorboard(report)
    if junit is not None:
        write_atomic(junit, render(report, "junit"))
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary and summary_file:
        with open(summary_file, "a", encoding="utf-8") as fh:  # GitHub's contract: append
            fh.write(render(report, "md", show_skipped=show_skipped) + "\n")
    if step_summary and output is None:  # annotations alone say nothing when there are none
        from trainfix.diagnostics.render_text import summary_text

        common.err().print(f"trainfix: {summary_text(report)} (fail on {fail_on})", markup=False)
    return 0 if exit_zero else exit_code(report, Severity(fail_on))


def write_tensorboard(report: Report) -> None:
    """Each run's findings as TensorBoard text summaries, in a new event file in its run dir."""
    from trainfix.diagnostics.tb_findings import write_findings

    for rr in report.runs:
        path = write_findings(rr.path, rr.all_findings)
        if path is not None:
            common.err().print(f"wrote {len(rr.all_findings)} findings to TensorBoard: {path}", markup=False)


def emit(report: Report, fmt: str, *, output: Path | None, show_skipped: bool) -> None:
    """Print the report on stdout, or write it to ``output`` (then one line on stderr says where)."""
    if output is not None:
        write_atomic(output, render(report, fmt, show_skipped=show_skipped))
        common.err().print(f"wrote {fmt} report to {output}", markup=False)
        return
    if fmt == "rich":
        from trainfix.diagnostics.render_text import render_rich

        from rich.console import Console

        # not common.out(): its soft wrapping would crop the report's wrapped columns
        render_rich(report, Console(file=sys.stdout, highlight=False), show_skipped=show_skipped)
    else:
        sys.stdout.write(render(report, fmt, show_skipped=show_skipped))
        sys.stdout.flush()


@contextlib.contextmanager
def progress_bar(enabled: bool):
    """A ``progress(done, total)`` callback drawing a rich progress bar on stderr while many runs
    are diagnosed, on a terminal only; None (nothing drawn) in CI formats, in pipes and for one run."""
    if not enabled or not common.err().is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("diagnosing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=common.err(), transient=True)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if total < 2:
            return
        if task is None:
            bar.start()
            task = bar.add_task("runs", total=total)
        bar.update(task, completed=done)

    try:
        yield update
    finally:
        bar.stop()


def choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    v = str(value).strip().lower()
    if v in allowed:
        return v
    close = difflib.get_close_matches(v, allowed, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"use one of: {', '.join(allowed)}"
    raise UsageError(f"{option} '{value}' is not one of {', '.join(allowed)}", hint)


def parse_params(items: list[str]) -> dict[str, dict[str, str]]:
    """``NAME.KEY=VALUE`` options -> {name: {key: value}} (values coerced later by the engine)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        left, eq, value = item.partition("=")
        name, dot, key = left.strip().partition(".")
        if not eq or not dot or not name or not key:
            raise UsageError(f"bad --param '{item}': expected NAME.KEY=VALUE",
                             "for example --param loss-plateau.window=20")
        out.setdefault(name, {})[key.strip()] = value.strip()
    return out


def parse_metrics(items: list[str]) -> dict[str, str]:
    """``ROLE=TAG`` options -> {role: tag}; the role must be one of the known roles."""
    from trainfix.diagnostics.roles_vocab import ALL_ROLES

    out: dict[str, str] = {}
    for item in items:
        role, eq, tag = item.partition("=")
        role = role.strip()
        if not eq or not role or not tag.strip():
            raise UsageError(f"bad --metric '{item}': expected ROLE=TAG", "for example --metric val_acc='Val Acc'")
        base = role.split(".", 1)[0]
        if base not in ALL_ROLES:
            close = difflib.get_close_matches(base, ALL_ROLES, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"roles: {', '.join(ALL_ROLES)}"
            raise UsageError(f"bad --metric '{item}': unknown role '{base}'", hint)
        out[role] = tag.strip()
    return out


def load_settings(paths: list[Path], config: Path | None) -> Any:
    """Settings from ``--settings`` or the nearest pyproject.toml/trainfix.toml above the first path."""
    from trainfix.diagnostics import settings as settings_mod

    if config is not None:
        return settings_mod.load_settings_file(config)
    start = paths[0] if paths else Path.cwd()
    start = start if start.is_dir() else start.parent
    return settings_mod.load_settings(start if start.exists() else Path.cwd())


def write_atomic(path: Path, text: str) -> None:
    """Write a report to ``path`` through the one atomic writer (never over an input, one-line errors)."""
    from trainfix.outputs import write_text

    write_text(path, text)
