"""The detector contract.

A detector is a small class in its own file whose docstring is its documentation (``trainfix
explain NAME``) with the sections *What it detects / Why it matters / Evidence / Fix / False
positives / Parameters*.  It declares the roles it needs, its typed ``Params`` (a dataclass with
defaults; overridable from ``[tool.trainfix.detectors.<name>]`` and ``--param name.key=value``), and
implements :meth:`Detector.check`, which is pure: it reads the :class:`Run`, never a file, prints
nothing, and yields :class:`Finding` objects, or one :class:`Skip` with the reason when the data
is not there.  It never raises for missing data; the engine reports any exception as an internal
error of that detector and runs the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from trainfix.diagnostics.finding import Finding, Severity, Skip

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

DOC_SECTIONS = ("What it detects", "Why it matters", "Evidence", "Fix", "False positives", "Parameters")


@dataclass
class NoParams:
    """For detectors without tunable thresholds."""


class Detector:
    """Base class: subclasses set the class attributes and implement :meth:`check`."""

    name: ClassVar[str]
    severity: ClassVar[Severity] = Severity.WARNING
    #: every one of these roles must be resolved, else the engine skips with the missing names
    requires: ClassVar[tuple[str, ...]] = ()
    #: at least one of these roles must be resolved (empty: no such condition)
    requires_any: ClassVar[tuple[str, ...]] = ()
    #: fix-recipe ids this detector may recommend, best first
    fixes: ClassVar[tuple[str, ...]] = ()
    Params: ClassVar[type] = NoParams

    def check(self, run: "Run", params: Any) -> Iterable[Finding | Skip]:
        raise NotImplementedError

    # -- helpers for subclasses ------------------------------------------------------------------
    def finding(self, message: str, *, severity: Severity | None = None, **kwargs: Any) -> Finding:
        """A Finding of this detector (default severity unless given)."""
        kwargs.setdefault("fixes", list(self.fixes))
        return Finding(self.name, severity or self.severity, message, **kwargs)

    def skip(self, reason: str) -> Skip:
        return Skip(self.name, reason)
