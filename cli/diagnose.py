"""`trainfix diagnose`: placeholder until the command lands (see the issue that owns it)."""

from __future__ import annotations

from trainfix.cli.common import command
from trainfix.errors import UsageError


@command
def diagnose_command() -> None:
    """Not available yet."""
    raise UsageError("'trainfix diagnose' is not available in this build", "see 'trainfix --help'")
