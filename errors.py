"""Errors the user can act on.

Every expected failure (a missing path, an invalid config, a fix that does not apply, a hostile
checkpoint) is a :class:`TrainfixError` with a one-line message and a hint.  The CLI prints
``error: <message>`` and ``hint: <hint>`` and exits 2, without a traceback (``--debug`` shows it).
This module imports nothing so every subpackage can use it.
"""

from __future__ import annotations


class TrainfixError(Exception):
    """Base of expected errors. ``code`` is a stable kebab-case word from a closed vocabulary."""

    code = "error"

    def __init__(self, message: str, hint: str | None = None, *, details: list[str] | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = list(details or [])

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint, "details": self.details}


class UsageError(TrainfixError):
    """The command line itself is wrong (unknown detector, bad ``--param``)."""

    code = "usage"


class InputError(TrainfixError):
    """An input path is missing, empty, unreadable or holds nothing trainfix can read."""

    code = "input"


class ConfigError(TrainfixError):
    """A config failed validation; ``details`` lists every problem with its path."""

    code = "config"


class FixError(TrainfixError):
    """A fix recipe does not apply to this config or would make it invalid."""

    code = "fix"


class CheckpointError(TrainfixError):
    """A checkpoint cannot be read safely (needs arbitrary unpickling, corrupt, wrong format)."""

    code = "checkpoint"


class OutputError(TrainfixError):
    """An output file could not be written (read-only folder, full disk, file too large)."""

    code = "output"


class TrainingError(TrainfixError):
    """Training stopped for a reason the user must act on (non-finite loss under policy stop)."""

    code = "training"
