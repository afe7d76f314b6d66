"""What both callbacks share: the logged records, the live diagnosis, the console and stop rule.

A :class:`LiveFeed` collects ``{"step": N, tag: value}`` records as the trainer logs them, and every
``every_n_steps`` steps (and whenever :meth:`check` is called with ``force``, e.g. after an
evaluation) builds a :class:`~trainfix.diagnostics.run.Run` from them and runs the detectors
(:class:`~trainfix.diagnostics.live.LiveDiagnosis`: each finding reported once).  New findings go
to the ``trainfix`` Python logger and to stderr; :meth:`should_stop` says whether one is at or above
``stop_on``.  Values that are not numbers are ignored; NaN and Inf are kept (they are evidence).
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any, Iterable, Mapping

from trainfix.diagnostics.finding import Finding, Severity

log = logging.getLogger("trainfix")


def as_number(value: Any) -> float | None:
    """A float from a Python number, a 0-d tensor or numpy scalar; None for anything else."""
    if isinstance(value, bool):
        return None
    if hasattr(value, "item") and getattr(value, "numel", lambda: 1)() == 1:
        try:
            value = value.item()
        except (TypeError, ValueError, RuntimeError):
            return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


class LiveFeed:
    """Records, the live diagnosis over them, and what to do with new findings."""

    def __init__(self, *, stop_on: str | None = "error", every_n_steps: int = 25, min_severity: str = "warning",
                 select: Iterable[str] | None = None, ignore: Iterable[str] | None = None,
                 params: Mapping[str, Mapping[str, Any]] | None = None, console: bool = True,
                 metric_overrides: Mapping[str, str] | None = None):
        from trainfix.diagnostics.live import LiveDiagnosis

        self.stop_on = Severity(stop_on) if stop_on else None
        self.every_n_steps = max(1, int(every_n_steps))
        self.console = console
        self.metric_overrides = dict(metric_overrides or {})
        self.live = LiveDiagnosis(select=select, ignore=ignore, params=params, min_severity=min_severity)
        self.records: list[dict[str, float]] = []
        self.config: dict[str, Any] = {}
        self._last_checked_step: float = -math.inf
        self.stop_reason: Finding | None = None

    def add(self, step: float, metrics: Mapping[str, Any]) -> None:
        rec: dict[str, float] = {}
        for key, value in metrics.items():
            v = as_number(value)
            if v is not None and key not in ("step", "wall_time"):
                rec[str(key)] = v
        if rec:
            self.records.append({"step": float(step), **rec})

    def due(self, step: float) -> bool:
        return step - self._last_checked_step >= self.every_n_steps

    def check(self, step: float, *, force: bool = False) -> list[Finding]:
        """Diagnose the records so far (when due or forced); the new findings, already logged."""
        if not self.records or not (force or self.due(step)):
            return []
        from trainfix.diagnostics.live import finding_line, run_from_records

        self._last_checked_step = step
        run = run_from_records(self.records, self.config, path="live", metric_overrides=self.metric_overrides)
        new = self.live.update(run)
        for f in new:
            line = finding_line(f, step=step)
            if log.hasHandlers():  # without handlers logging would print it a second time
                log.warning(line)
            if self.console:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            if self.stop_on is not None and self.stop_reason is None and Severity(f.severity) >= self.stop_on:
                self.stop_reason = f
        return new

    def should_stop(self) -> bool:
        return self.stop_reason is not None

    def stop_message(self) -> str:
        f = self.stop_reason
        return (f"trainfix: stopping the training: {f.severity.value} {f.detector}" if f is not None else "")

    @property
    def findings(self) -> list[Finding]:
        return self.live.findings
