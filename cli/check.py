"""`trainfix check PATH...`: the CI gate over log files and run directories.

Same pipeline as ``diagnose`` with CI defaults: ``--fail-on warning``, and ``--format github``
when ``GITHUB_ACTIONS=true`` (one annotation per finding; the Markdown report is also appended to
the job summary when ``GITHUB_STEP_SUMMARY`` is set), else ``rich``.  ``--junit FILE`` writes a
JUnit XML report besides the chosen format; ``--exit-zero`` reports without failing the build
(usage, input and internal errors still exit 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from trainfix.cli.common import command
from trainfix.cli.diagnose import (
    ConfigOpt,
    FailOnOpt,
    FormatOpt,
    IgnoreOpt,
    JobsOpt,
    MetricOpt,
    OldConfigOpt,
    OutputOpt,
    ParamOpt,
    PathsArg,
    SelectOpt,
    ShardOpt,
    SkippedOpt,
    TrainConfigOpt,
    refuse_old_config,
    run_and_render,
)

ExitZeroOpt = Annotated[bool, typer.Option("--exit-zero", help="Exit 0 even when findings are at or above --fail-on.")]
JunitOpt = Annotated[Optional[Path], typer.Option("--junit", help="Also write a JUnit XML report to FILE.",
                                                  show_default=False, metavar="FILE")]


def default_format() -> str:
    return "github" if os.environ.get("GITHUB_ACTIONS", "").lower() == "true" else "rich"


@command
def check_command(
    paths: PathsArg,
    fail_on: FailOnOpt = None,
    exit_zero: ExitZeroOpt = False,
    fmt: FormatOpt = None,
    junit: JunitOpt = None,
    output: OutputOpt = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    param: ParamOpt = None,
    metric: MetricOpt = None,
    show_skipped: SkippedOpt = False,
    config: ConfigOpt = None,
    train_config: TrainConfigOpt = None,
    old_config: OldConfigOpt = None,
    jobs: JobsOpt = None,
    shard: ShardOpt = None,
) -> None:
    """CI gate: exit 1 when a finding is at or above --fail-on (default: warning).

    Format: github annotations under GitHub Actions, else rich. Exit 2 on usage or input errors.
    """
    refuse_old_config(old_config)
    fmt = fmt or default_format()
    code = run_and_render(paths, fmt=fmt, output=output, select=select, ignore=ignore, param=param,
                          metric=metric, fail_on=fail_on, default_fail_on="warning",
                          show_skipped=show_skipped, config=config, exit_zero=exit_zero, junit=junit,
                          step_summary=fmt == "github", train_config=train_config, jobs=jobs, shard=shard)
    raise typer.Exit(code)
