"""A config dict to a typed :class:`RunConfig` and back, the config of one stage, and the hash
of what determines training."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from typing import Any

from trainfix.errors import ConfigError
from trainfix.trainers.config.overrides import set_dotted
from trainfix.trainers.config.schema import (
    ALL_SECTIONS,
    RECORDED,
    AtconConfig,
    CheckpointConfig,
    Component,
    LoggingConfig,
    OptimizerConfig,
    RunConfig,
    RunSection,
    ScheduleConfig,
    SparseConfig,
    StageConfig,
    TrainingConfig,
)
from trainfix.trainers.config.validate import _BAD, _hints, check_value, validate

# --- building ------------------------------------------------------------------------------------
def _build_section(cls: type, value: dict | None) -> Any:
    hints = _hints(cls)
    kwargs = {}
    for k, v in (value or {}).items():
        got = check_value(v, hints[k])
        kwargs[k] = got if got is not _BAD else v
    return cls(**kwargs)


def _component(value: dict) -> Component:
    from trainfix.trainers.components.registry import COMPONENT_KEY

    args = {k: copy.deepcopy(v) for k, v in value.items() if k not in ("name", COMPONENT_KEY)}
    return Component(name=value.get("name"), component=value.get(COMPONENT_KEY), args=args)


def from_dict(config: dict, *, imports: bool = False) -> RunConfig:
    """A :class:`RunConfig` from a dict; raises ConfigError listing every problem (``imports``: see
    :func:`validate`)."""
    errors = validate(config, imports=imports)
    if errors:
        raise ConfigError(
            f"invalid config: {len(errors)} problem{'s' if len(errors) != 1 else ''}",
            "fix the keys listed above (dotted paths), or override them with a.b=value",
            details=errors,
        )
    return RunConfig(
        data=_component(config["data"]),
        model=_component(config["model"]),
        loss=_component(config.get("loss") or {"name": "cross-entropy"}),
        run=_build_section(RunSection, config.get("run")),
        optimizer=_build_section(OptimizerConfig, config.get("optimizer")),
        schedule=_build_section(ScheduleConfig, config.get("schedule")),
        training=_build_section(TrainingConfig, config.get("training")),
        sparse=_build_section(SparseConfig, config.get("sparse")),
        atcon=_build_section(AtconConfig, config.get("atcon")),
        stages=[_build_section(StageConfig, s) for s in config.get("stages") or []],
        logging=_build_section(LoggingConfig, config.get("logging")),
        checkpoint=_build_section(CheckpointConfig, config.get("checkpoint")),
        applied_fixes=copy.deepcopy(config.get("applied_fixes") or []),
    )


def to_dict(cfg: RunConfig) -> dict:
    """The config as a plain dict, in schema order (the inverse of :func:`from_dict`)."""
    out: dict[str, Any] = {}
    for name in ALL_SECTIONS:
        value = getattr(cfg, name)
        if isinstance(value, Component):
            out[name] = value.to_dict()
        elif name == "stages":
            out[name] = [dataclasses.asdict(s) for s in value]
        elif name == "applied_fixes":
            out[name] = copy.deepcopy(value)
        else:
            out[name] = dataclasses.asdict(value)
    return out


def stage_config(cfg: RunConfig, stage: StageConfig) -> RunConfig:
    """The config one stage runs with: the base config, its overrides, and the stage's epochs."""
    base = to_dict(cfg)
    base.pop("stages")
    for key, value in (stage.overrides or {}).items():
        set_dotted(base, str(key), copy.deepcopy(value))
    base.setdefault("training", {})["epochs"] = stage.epochs
    out = from_dict(base)
    out.stages = list(cfg.stages)
    return out


def config_hash(cfg: RunConfig | dict) -> str:
    """A short hash of what determines training (recorded values and provenance left out)."""
    d = to_dict(cfg) if isinstance(cfg, RunConfig) else copy.deepcopy(cfg)
    for section, key in RECORDED:
        d.get(section, {}).pop(key, None)
    d.pop("applied_fixes", None)
    d.get("run", {}).pop("out_dir", None)
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]
