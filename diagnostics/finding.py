"""What a detector says: a :class:`Finding` (a problem, with its numbers) or a :class:`Skip`
(why the detector could not judge this run).

Findings are plain data: detectors build them, the engine collects them, renderers print them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Severity(str, enum.Enum):
    """How bad a finding is. Ordered: ``info < warning < error``."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return {"info": 0, "warning": 1, "error": 2}[self.value]

    def __ge__(self, other: "Severity") -> bool:  # type: ignore[override]
        return self.rank >= Severity(other).rank

    def __gt__(self, other: "Severity") -> bool:  # type: ignore[override]
        return self.rank > Severity(other).rank

    def __le__(self, other: "Severity") -> bool:  # type: ignore[override]
        return self.rank <= Severity(other).rank

    def __lt__(self, other: "Severity") -> bool:  # type: ignore[override]
        return self.rank < Severity(other).rank


@dataclass
class Finding:
    """One diagnosed problem.

    ``message`` states the fact with its number ("sparsity term is 0.0004% of the total loss and
    moved 0.3% in 40 epochs"); ``evidence`` holds every number the decision used (JSON-serialisable
    scalars, short lists or strings); ``steps`` is the ``(first, last)`` step range the finding is
    about; ``tags`` are the original metric names; ``fixes`` are fix-recipe ids, best first;
    ``confidence`` is in ``[0, 1]``.
    """

    detector: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    steps: tuple[float, float] | None = None
    tags: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    confidence: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        """The JSON-report (schema 1) form of this finding."""
        return {
            "detector": self.detector,
            "severity": Severity(self.severity).value,
            "message": self.message,
            "evidence": _jsonable(self.evidence),
            "steps": list(self.steps) if self.steps is not None else None,
            "tags": list(self.tags),
            "fixes": list(self.fixes),
            "confidence": round(float(self.confidence), 4),
        }


@dataclass
class Skip:
    """A detector could not judge this run; ``reason`` says exactly what was missing
    ("no per-step training loss logged", "only 4 validation points, need 6")."""

    detector: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"detector": self.detector, "reason": self.reason}


def _jsonable(value: Any) -> Any:
    """Convert numpy scalars/arrays and tuples into plain JSON types; NaN/Inf become strings."""
    import math

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    return value
