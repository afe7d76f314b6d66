"""The root of the ``trainfix`` command: composes one module per command.

Commands are plain functions (importable and testable) registered here; nothing else lives here.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from trainfix import __version__
from trainfix.cli import common

app = typer.Typer(
    name="trainfix",
    help="Training-instability triage for PyTorch: diagnose a run, apply a fix, retrain, prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trainfix {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    """trainfix: read the run directory you already have, say what went wrong, fix it, prove it."""
    common.set_debug(debug)


def _register() -> None:
    from trainfix.cli import (
        apply,
        attention,
        check,
        compare,
        demo,
        diagnose,
        explain,
        inspect,
        listing,
        metrics,
        report,
        train,
        watch,
    )

    app.command("diagnose")(diagnose.diagnose_command)
    app.command("check")(check.check_command)
    app.command("metrics")(metrics.metrics_command)
    app.command("explain")(explain.explain_command)
    app.command("list")(listing.list_command)
    app.command("inspect")(inspect.inspect_command)
    app.command("apply")(apply.apply_command)
    app.command("train")(train.train_command)
    app.command("compare")(compare.compare_command)
    app.command("demo")(demo.demo_command)
    app.command("report")(report.report_command)
    app.command("attention")(attention.attention_command)
    app.command("watch")(watch.watch_command)


_register()


def main() -> None:
    """Console-script entry point.

    Runs the app outside click's standalone mode so that command-line mistakes (a missing argument,
    an unknown option) end like every other bad input: one ``error:`` line, a hint, exit code 2.
    """
    import sys

    try:  # recent typer releases vendor click; older ones depend on it
        from typer._click import exceptions as click_exceptions
    except ImportError:  # pragma: no cover - depends on the installed typer
        from click import exceptions as click_exceptions

    try:
        rv = app(standalone_mode=False)
    except click_exceptions.UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare command: its help, as click would
            sys.stdout.write(exc.format_message() + "\n")
            sys.exit(2)
        cmd = exc.ctx.command_path if exc.ctx is not None else "trainfix"
        sys.stderr.write(f"error: {exc.format_message()}\nhint: see '{cmd} --help'\n")
        sys.exit(2)
    except click_exceptions.ClickException as exc:
        sys.stderr.write(f"error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.stderr.write("aborted\n")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
