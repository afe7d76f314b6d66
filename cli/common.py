"""What every command shares: option aliases, output consoles and the error boundary.

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

import typer
from rich.console import Console

from trainfix.cli import coercion
from trainfix.errors import TrainfixError

coercion.install()  # plain options without building pydantic adapters (cli/coercion.py says why)

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
