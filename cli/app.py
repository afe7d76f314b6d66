"""The root of the ``trainfix`` command: composes one module per command.

Commands are plain functions (importable and testable) registered here; nothing else lives here.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from trainfix import __version__
from trainfix.cli import common

_app = typer.Typer(
    name="trainfix",
    help="Training-instability triage for PyTorch: diagnose a run, apply a fix, retrain, prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    cls=common.Group,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trainfix {__version__}")
        raise typer.Exit(0)


@_app.callback()
def root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks instead of one-line errors.")] = False,
) -> None:
    """trainfix: read the run directory you already have, say what went wrong, fix it, prove it."""
    common.set_debug(debug)


#: Command name -> (module under ``trainfix.cli``, function), in the order ``--help`` lists them.
COMMANDS = {
    "diagnose": ("diagnose", "diagnose_command"),
    "check": ("check", "check_command"),
    "metrics": ("metrics", "metrics_command"),
    "explain": ("explain", "explain_command"),
    "list": ("listing", "list_command"),
    "inspect": ("inspect", "inspect_command"),
    "apply": ("apply", "apply_command"),
    "train": ("train", "train_command"),
    "compare": ("compare", "compare_command"),
    "demo": ("demo", "demo_command"),
    "report": ("report", "report_command"),
    "attention": ("attention", "attention_command"),
    "watch": ("watch", "watch_command"),
    "merge": ("merge", "merge_command"),
}
_registered: set[str] = set()


def _register(only: str | None = None) -> typer.Typer:
    """Register every command, or ``only`` the one about to run.

    Each command module imports what its command needs (rich markdown, the trainer's config
    schema, ...); importing all of them is most of what a small ``diagnose`` costs, so the console
    script registers only the command it was asked for (:func:`main`).  ``from trainfix.cli.app
    import app`` (tests, embedding) gets them all.  Building the app is also when typer's plain
    options start being coerced without pydantic (``cli/coercion.py`` says why): importing a
    trainfix module never patches typer.
    """
    import importlib

    from trainfix.cli import coercion

    coercion.install()
    for name, (module, func) in COMMANDS.items():
        if name in _registered or (only is not None and name != only):
            continue
        _app.command(name, cls=common.Command)(getattr(importlib.import_module(f"trainfix.cli.{module}"), func))
        _registered.add(name)
    return _app


def __getattr__(name: str):
    if name == "app":
        return _register() if len(_registered) < len(COMMANDS) else _app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _invoked(argv: list[str]) -> str | None:
    """The command ``argv`` runs (the first word after the root options), if it is one of ours."""
    for arg in argv:
        if arg in ("--help", "--version"):
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None



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
        rv = _register(_invoked(sys.argv[1:]))(standalone_mode=False)
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
