"""Project settings: ``[tool.trainfix]`` in the nearest ``pyproject.toml``, or a ``trainfix.toml``.

Search: from ``start`` (a run directory or file) upwards, the first directory holding a
``trainfix.toml`` (whole file = the settings, a ``[tool.trainfix]`` table is accepted too) or a
``pyproject.toml`` with a ``[tool.trainfix]`` table wins.  The walk stops at the filesystem root
or after the first directory holding ``.git`` (the repository root).  Keys::

    [tool.trainfix]
    select = ["accuracy-oscillation"]      # only these detectors
    ignore = ["memory-growth"]             # never these
    fail_on = "warning"                    # for `trainfix check`
    [tool.trainfix.metrics]                # role -> tag
    val_acc = "Metrics/Val Accuracy"
    [tool.trainfix.detectors.loss-plateau] # detector parameter overrides
    patience = 20
    [tool.trainfix.ingest]                 # what reading one file may cost (see ingest.safe_read)
    max_file_mb = 2048
    max_file_seconds = 60

Unknown top-level keys are a :class:`~trainfix.errors.UsageError` with a did-you-mean; detector
parameter names are validated by the engine, not here.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainfix.errors import UsageError

KEYS = ("metrics", "detectors", "select", "ignore", "fail_on", "ingest")
INGEST_KEYS = ("max_file_mb", "max_file_seconds")
MAX_SETTINGS_BYTES = 1 << 20
SEVERITIES = ("info", "warning", "error", "never")


@dataclass
class Settings:
    metrics: dict[str, str] = field(default_factory=dict)
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)
    select: list[str] = field(default_factory=list)
    ignore: list[str] = field(default_factory=list)
    fail_on: str | None = None
    ingest: dict[str, float] = field(default_factory=dict)  # max_file_mb, max_file_seconds
    source: Path | None = None  # the file the settings came from, None for defaults


def _read(path: Path) -> str:
    from trainfix.diagnostics.ingest.safe_read import read_bytes

    return read_bytes(path, MAX_SETTINGS_BYTES).decode("utf-8", "replace")  # regular files only, bounded


def _table(path: Path) -> dict | None:
    try:
        data = tomllib.loads(_read(path))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}", "fix the file or remove it") from None
    except RecursionError:
        raise UsageError(f"{path}: not valid TOML: nested too deeply", "fix the file or remove it") from None
    except OSError:
        return None
    tool = data.get("tool", {})
    if isinstance(tool, dict) and isinstance(tool.get("trainfix"), dict):
        return tool["trainfix"]
    if path.name == "trainfix.toml":
        return data
    return None


def _parse(raw: dict, path: Path) -> Settings:
    for key in raw:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(KEYS)}"
            raise UsageError(f"{path}: unknown key '{key}' in [tool.trainfix]", hint)

    def str_list(name: str) -> list[str]:
        val = raw.get(name, [])
        if isinstance(val, str):
            val = [val]
        if not isinstance(val, list) or not all(isinstance(v, str) for v in val):
            raise UsageError(f"{path}: '{name}' must be a list of detector names", f'e.g. {name} = ["loss-plateau"]')
        return list(val)

    metrics = raw.get("metrics", {})
    if not isinstance(metrics, dict) or not all(isinstance(v, str) for v in metrics.values()):
        raise UsageError(f"{path}: [tool.trainfix.metrics] must map roles to tag names", 'e.g. val_acc = "Val Acc"')
    detectors = raw.get("detectors", {})
    if not isinstance(detectors, dict) or not all(isinstance(v, dict) for v in detectors.values()):
        raise UsageError(f"{path}: [tool.trainfix.detectors.NAME] tables hold parameter overrides",
                         "e.g. [tool.trainfix.detectors.loss-plateau] then patience = 20")
    ingest = raw.get("ingest", {})
    if not isinstance(ingest, dict) or any(k not in INGEST_KEYS for k in ingest) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in ingest.values()):
        raise UsageError(f"{path}: [tool.trainfix.ingest] takes positive numbers for {', '.join(INGEST_KEYS)}",
                         "e.g. [tool.trainfix.ingest] then max_file_mb = 4096")
    fail_on = raw.get("fail_on")
    if fail_on is not None and (not isinstance(fail_on, str) or fail_on.lower() not in SEVERITIES):
        raise UsageError(f"{path}: fail_on = {fail_on!r} is not a severity", f"use one of {', '.join(SEVERITIES)}")
    return Settings(
        metrics=dict(metrics),
        detectors={k: dict(v) for k, v in detectors.items()},
        select=str_list("select"),
        ignore=str_list("ignore"),
        fail_on=fail_on.lower() if isinstance(fail_on, str) else None,
        ingest={k: float(v) for k, v in ingest.items()},
        source=path,
    )


def load_settings(start: str | Path) -> Settings:
    """Settings for ``start``'s project (defaults when no file has a ``[tool.trainfix]`` table)."""
    here = Path(start).resolve()
    if here.is_file() or not here.exists():
        here = here.parent
    for folder in (here, *here.parents):
        for name in ("trainfix.toml", "pyproject.toml"):
            candidate = folder / name
            if candidate.is_file():
                raw = _table(candidate)
                if raw is not None:
                    return _parse(raw, candidate)
        if (folder / ".git").exists():
            break
    return Settings()


def load_settings_file(path: str | Path) -> Settings:
    """Settings from exactly ``path`` (``--config``): its ``[tool.trainfix]`` table, or, for a
    ``trainfix.toml``, its top level.  A pyproject.toml without the table is a UsageError."""
    path = Path(path)
    if not path.is_file():
        from trainfix.errors import InputError

        raise InputError(f"settings file not found: {path}", "pass a pyproject.toml or trainfix.toml")
    raw = _table(path)
    if raw is None:
        try:
            data = tomllib.loads(_read(path))
        except tomllib.TOMLDecodeError as exc:  # pragma: no cover - _table raised already
            raise UsageError(f"{path}: not valid TOML: {exc}", "fix the file") from None
        if path.name == "pyproject.toml":
            raise UsageError(f"{path} has no [tool.trainfix] table", "add one, or pass the file that has it")
        raw = data
    return _parse(raw, path)
