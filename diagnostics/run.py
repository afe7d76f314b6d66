"""The :class:`Run`: everything ingest found in one run directory, in the shape detectors read.

``scalars`` is a long pandas table (``tag, step, value, wall_time, source``), sorted by tag then
step, with resumed-run overlaps already resolved (the later segment wins).  Detectors never read
files: they read a Run.  Values are kept as they were logged, NaN and Inf included (they are evidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from trainfix.diagnostics.roles_vocab import RoleMap
from trainfix.weights import ExpectedModel

if TYPE_CHECKING:  # pandas is imported by ingest; keep this module cheap to import
    import pandas as pd

SCALAR_COLUMNS = ("tag", "step", "value", "wall_time", "source")


@dataclass(frozen=True)
class Series:
    """One metric over steps, sorted by step (float arrays; values may hold NaN/Inf)."""

    tag: str
    steps: np.ndarray
    values: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def finite(self) -> "Series":
        """The same series without NaN/Inf points."""
        keep = np.isfinite(self.values)
        return Series(self.tag, self.steps[keep], self.values[keep])

    def head(self, fraction: float) -> "Series":
        """The first ``fraction`` of the points (used to ask "would this have fired early?")."""
        n = max(1, int(round(len(self) * fraction)))
        return Series(self.tag, self.steps[:n], self.values[:n])


@dataclass
class CheckpointRef:
    """A checkpoint file found next to the logs. Listed by ingest, never loaded there.

    ``summary`` reads the file on first use, safely (``torch.load(weights_only=True)`` or
    safetensors) through ``trainfix.diagnostics.checkpoints``; it is None when reading failed, with
    the reason in ``error``.
    """

    path: Path
    size: int
    error: str | None = None

    @cached_property
    def summary(self) -> Any:
        try:
            from trainfix.diagnostics.checkpoints import summarize
        except ImportError as exc:  # torch missing: say so, do not crash the diagnosis
            self.error = f"checkpoint inspection unavailable: {exc}"
            return None
        try:
            return summarize(self.path)
        except Exception as exc:  # a hostile or corrupt file must not stop the diagnosis
            self.error = f"{type(exc).__name__}: {exc}"
            return None


@dataclass
class Run:
    """One run directory, read.

    ``inputs`` describes what was read, for ``trainfix metrics`` and the JSON report: ``formats``
    (format -> file count), ``files`` (list of ``{path, format, points}``), ``tags``, ``points``,
    ``checkpoints``, ``restarts`` (list of ``{tag or source, step}``), ``skipped`` (list of
    ``{path, reason}``), ``corrupt_records`` (count).

    ``own_config`` is trainfix's own run config when the directory holds one (``config.yaml`` with
    trainfix's sections), as read, before foreign configs are merged into ``config``.
    ``model_builder`` is set by whoever orchestrates the diagnosis (the commands pass
    ``trainfix.trainers.build.expected_model``, which builds registered components only): given
    ``own_config`` it returns an :class:`ExpectedModel`.  :attr:`expected_model` calls it once, on
    first use; detectors read that attribute and never build anything themselves.
    """

    path: Path
    scalars: "pd.DataFrame"
    config: dict[str, Any] = field(default_factory=dict)
    config_files: list[Path] = field(default_factory=list)
    checkpoints: list[CheckpointRef] = field(default_factory=list)
    roles: RoleMap = field(default_factory=RoleMap)
    inputs: dict[str, Any] = field(default_factory=dict)
    own_config: dict[str, Any] | None = None
    model_builder: Callable[[dict], ExpectedModel] | None = None

    def __post_init__(self) -> None:
        self._series_cache: dict[str, Series] = {}

    @cached_property
    def expected_model(self) -> tuple[ExpectedModel | None, str | None]:
        """(the layout of the model ``own_config`` builds, None) or (None, why there is none)."""
        if self.own_config is None:
            return None, "the run has no trainfix config.yaml"
        if self.model_builder is None:
            return None, "no model builder was given to this diagnosis"
        try:
            return self.model_builder(self.own_config), None
        except Exception as exc:  # an invalid or foreign-component config must not stop the diagnosis
            message = getattr(exc, "message", None) or str(exc)
            return None, f"building the model from the run's config.yaml failed: {type(exc).__name__}: {message}"

    @property
    def tags(self) -> list[str]:
        return sorted(self.scalars["tag"].unique().tolist()) if len(self.scalars) else []

    def series(self, tag: str) -> Series | None:
        """The series of one tag, sorted by step, one value per step (the last logged wins)."""
        if tag in self._series_cache:
            return self._series_cache[tag]
        if not len(self.scalars):
            return None
        rows = self.scalars[self.scalars["tag"] == tag]
        if rows.empty:
            return None
        rows = rows.drop_duplicates("step", keep="last").sort_values("step", kind="stable")
        s = Series(tag, rows["step"].to_numpy(dtype=float), rows["value"].to_numpy(dtype=float))
        self._series_cache[tag] = s
        return s

    def role(self, role: str) -> Series | None:
        """The series of a single role, or None when the role was not resolved."""
        tag = self.roles.tag(role)
        return self.series(tag) if tag else None

    def group(self, role: str) -> dict[str, Series]:
        """Key -> series for a group role (loss terms, tasks, classes)."""
        out: dict[str, Series] = {}
        for key, tag in self.roles.group(role).items():
            s = self.series(tag)
            if s is not None:
                out[key] = s
        return out

    def truncated(self, fraction: float) -> "Run":
        """A copy holding only the first ``fraction`` of each tag's points: what a detector would
        have seen part-way through the run (config and checkpoints unchanged)."""
        if not len(self.scalars):
            return self
        parts = []
        for _, rows in self.scalars.groupby("tag", sort=False):
            n = max(1, int(round(len(rows) * fraction)))
            parts.append(rows.iloc[:n])
        import pandas as pd

        return Run(self.path, pd.concat(parts, ignore_index=True), self.config, self.config_files,
                   self.checkpoints, self.roles, dict(self.inputs), self.own_config, self.model_builder)
