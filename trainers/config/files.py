"""Reading a YAML run config (safe loader only) and writing the resolved one atomically."""

from __future__ import annotations

import os
import typing
from pathlib import Path

import yaml

from trainfix.errors import ConfigError, InputError
from trainfix.trainers.config.convert import from_dict, to_dict
from trainfix.trainers.config.overrides import apply_overrides
from trainfix.trainers.config.schema import RunConfig

# libyaml's safe loader/dumper when present (several times faster), else the pure-Python safe ones.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def read_yaml(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"config file not found: {p}", "pass --config PATH to a YAML run config (see examples/)")
    try:
        data = yaml.load(p.read_text(encoding="utf-8"), Loader=_SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}", "check indentation and quoting") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a UTF-8 text file", "pass a YAML run config") from None
    if data is None:
        raise ConfigError(f"{p}: the file is empty", "see examples/digits-quick.yaml for a complete config")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections, got {type(data).__name__}", "see examples/digits-quick.yaml")
    return data


def load_config(path: str | os.PathLike, overrides: typing.Sequence[str] = (), *, imports: bool = False) -> RunConfig:
    """Read, override and validate a YAML run config (``imports``: see :func:`validate`)."""
    return from_dict(apply_overrides(read_yaml(path), overrides), imports=imports)


def dump_yaml(config: dict) -> str:
    return yaml.dump(config, Dumper=_SAFE_DUMPER, sort_keys=False, default_flow_style=False, width=100)


def write_resolved(cfg: RunConfig, path: str | os.PathLike, source: str | None = None) -> None:
    """Write the resolved config (with recorded values) atomically, with a header comment."""
    header = [
        "# Resolved trainfix run config: every default filled in, plus values the trainer recorded",
        "# (run.world_size, run.dist_backend, run.device_total_mb, training.global_batch, optimizer.scaled_lr).",
    ]
    if source:
        header.append(f"# Source: {source}")
    header.append("# Re-run: trainfix train --config config.yaml")
    atomic_write_text(path, "\n".join(header) + "\n" + dump_yaml(to_dict(cfg)))


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` atomically through the one writer (:mod:`trainfix.outputs`), creating folders."""
    from trainfix.outputs import write_text

    write_text(path, text, parents=True)
