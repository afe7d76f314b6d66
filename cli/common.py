"""What every command shares: option aliases, output consoles, the error boundary and readable help.

:func:`command` wraps a command function so that a :class:`~trainfix.errors.TrainfixError` becomes
``error: ...`` / ``hint: ...`` on stderr (or one JSON document on stdout when the command was asked
for ``--format json``) and exit code 2, and any other exception an "internal error" line, also exit
2; ``--debug`` (or ``TRAINFIX_DEBUG=1``) re-raises so the traceback shows.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from typing import Any, Callable

import typing
from pathlib import Path

import typer
from rich.console import Console
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from trainfix.errors import TrainfixError

# Consoles: stdout for results, stderr for errors and progress.  Created per call so that tests
# with CliRunner (which swaps sys.stdout) capture output.


def out() -> Console:
    return Console(file=sys.stdout, soft_wrap=True, highlight=False)


def err() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


_STATE: dict[str, Any] = {"debug": False}


def set_debug(value: bool) -> None:
    _STATE["debug"] = bool(value)


def debug_enabled() -> bool:
    return _STATE["debug"] or os.environ.get("TRAINFIX_DEBUG", "") not in ("", "0")


def expected_model(config: dict) -> Any:
    """The model builder the commands hand to the diagnosis: the state-dict layout of the model a
    run's trainfix config builds, from trainfix's registered components only (a ``_component_``
    path is refused, never imported).  torch is imported here, on first use, not when logs are read."""
    from trainfix.trainers.build import expected_model as build

    return build(config)


def fail(exc: TrainfixError, *, json_mode: bool = False) -> None:
    """Report an expected error and exit 2."""
    if json_mode:
        sys.stdout.write(json.dumps({"schema": 1, "error": exc.to_dict()}) + "\n")
    else:
        lines = [f"error: {exc.message}"]
        lines += [f"  - {d}" for d in exc.details]
        if exc.hint:
            lines.append(f"hint: {exc.hint}")
        sys.stderr.write("\n".join(lines) + "\n")
    raise typer.Exit(2)


def command(fn: Callable) -> Callable:
    """The error boundary around one command (see module docstring)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        json_mode = str(kwargs.get("format") or kwargs.get("fmt") or "").lower() == "json"
        from trainfix.outputs import tracking_reads

        try:
            with tracking_reads():  # what the command reads, no output may overwrite
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except TrainfixError as exc:
            if debug_enabled():
                raise
            fail(exc, json_mode=json_mode)
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(130) from None
        except Exception as exc:  # an internal error still ends in one line and exit 2
            if debug_enabled():
                raise
            internal = TrainfixError(
                f"internal error: {type(exc).__name__}: {exc}",
                "rerun with --debug for the traceback, and report it with the command you ran",
            )
            internal.code = "internal"
            fail(internal, json_mode=json_mode)

    return wrapper


# --- help: each value named the way a user types it -------------------------------------------------


class _Argument(TyperArgument):
    """An argument whose help row is its name alone (``PATH...``): no ``<list[Path]>`` type beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None


class _Option(TyperOption):
    """An option whose help row names its value as click does (``PATH``, ``TEXT``, ``INTEGER``,
    ``[a|b]``), or nothing for a flag, unless the option declares its own ``metavar``."""

    def display_type_rich(self, ctx: Any) -> str | None:
        if self.metavar is not None:
            return self.metavar
        if self.is_flag or self.count:
            return None
        return value_name(self)


#: What a value of each type is called in help (click's names).
_VALUE_NAMES = {Path: "PATH", str: "TEXT", int: "INTEGER", float: "FLOAT", bool: "BOOLEAN"}


def value_name(param: Any) -> str:
    """How help names ``param``'s value: its choices (``a|b``), ``FILE``/``DIR``/``PATH``, ``TEXT``,
    ``INTEGER``, ``FLOAT``; a list is named by its items."""
    desc = param.type_descriptor
    if desc.is_choice:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices or ())
    if desc.is_path and desc.path_type in ("file", "dir"):
        return desc.path_type.upper()
    hint = desc.annotation
    if desc.is_list and typing.get_args(hint):
        hint = typing.get_args(hint)[0]
    return _VALUE_NAMES.get(hint, getattr(hint, "__name__", str(hint)).upper())


def readable_params(params: list[Any]) -> list[Any]:
    """``params`` with readable help metavars (see :class:`_Option` and :class:`_Argument`); an
    argument without a metavar is named by its parameter name in capitals, as click names it."""
    for param in params:
        if type(param) is TyperArgument:
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
            param.__class__ = _Argument
        elif type(param) is TyperOption:
            param.__class__ = _Option
    return params


class Command(TyperCommand):
    """Every trainfix command: its ``--help`` shows readable metavars (:func:`readable_params`)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return readable_params(super().get_params(ctx))


class Group(TyperGroup):
    """The root command, with the same readable ``--help`` as each command."""

    def get_params(self, ctx: Any) -> list[Any]:
        return readable_params(super().get_params(ctx))
