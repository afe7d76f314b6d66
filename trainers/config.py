"""The trainfix run config: typed sections, validated before anything runs.

A config is a YAML document (read with ``yaml.safe_load``) with the sections ``run, data, model,
loss, optimizer, schedule, training, sparse, stages, logging, checkpoint, applied_fixes``.  Fixed
sections are dataclasses below; their field types and defaults ARE the schema.  The component
sections ``data``, ``model`` and ``loss`` are ``name`` (or ``_component_: pkg.mod.Class``) plus the
keyword arguments of that component's factory, checked by binding them to the factory's signature.

:func:`validate` reports EVERY problem at once, each with its dotted path and, for unknown names, a
did-you-mean; :func:`load_config` applies ``a.b.c=value`` overrides (values parsed as YAML scalars)
and raises :class:`~trainfix.errors.ConfigError` with all of them.

Three values are *recorded* by the trainer, not set by users (any value given is replaced):
``run.world_size``, ``training.global_batch`` and ``optimizer.scaled_lr``.  They make a run directory's
``config.yaml`` say what actually ran, which the lr-scaling detector and fixes read back.

This module imports no torch: fix recipes use it for the schema.  Checking a component section
imports its factory module (and so torch) lazily: trainfix's own registered factories always, a
``_component_`` path outside the registries only with ``imports=True`` (``trainfix train`` on the
user's own config).  Read as data (diagnose, apply, compare), a config never imports anything it names.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import hashlib
import inspect
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from trainfix import values
from trainfix.errors import ConfigError, InputError


# libyaml's safe loader/dumper when present (several times faster), else the pure-Python safe ones.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)



# --- sections ------------------------------------------------------------------------------------
@dataclass
class RunSection:
    name: str = "run"
    out_dir: Optional[str] = None  # where run dirs go (default: runs/<name>)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype (fp16 adds a GradScaler)
    compile: bool = False  # torch.compile the model (checkpoints still hold the plain module)
    world_size: Optional[int] = None  # recorded: data-parallel processes
    dist_backend: Optional[str] = None  # recorded: the process group's backend under torchrun (nccl | gloo)
    device_total_mb: Optional[float] = None  # recorded: the device's total memory (CUDA) or the machine's (CPU)


@dataclass
class Component:
    """A ``data``/``model``/``loss`` section: which factory, and its keyword arguments."""

    name: Optional[str] = None
    component: Optional[str] = None  # the `_component_` import path, when given
    args: dict = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)

    def to_dict(self) -> dict:
        head = {"_component_": self.component} if self.component else {"name": self.name}
        return {**head, **copy.deepcopy(self.args)}


@dataclass
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam/adamw
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"  # rule applied on the GLOBAL batch
    reference_batch: int = 256  # the global batch `lr` was tuned for
    scaled_lr: Optional[float] = None  # recorded: the lr actually used


@dataclass
class ScheduleConfig:
    name: Literal["constant", "step", "cosine", "one-cycle"] = "constant"
    warmup_epochs: float = 0.0
    warmup_steps: Optional[int] = None  # overrides warmup_epochs when set
    warmup_ratio: Optional[float] = None  # fraction of all steps; overrides warmup_epochs when set
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of the lr
    step_epochs: int = 30  # step: decay every this many epochs
    gamma: float = 0.1  # step: decay factor
    pct_start: float = 0.3  # one-cycle: fraction of training spent rising


@dataclass
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 64  # per process
    grad_accum: int = 1
    grad_clip: Optional[float] = None  # max global grad norm (pre-clip norm is logged either way)
    ema_decay: Optional[float] = None  # e.g. 0.999; evaluation then uses the EMA weights
    nonfinite_policy: Literal["stop", "skip"] = "stop"
    max_nonfinite_skips: int = 3
    eval_every_epochs: int = 1
    global_batch: Optional[int] = None  # recorded: batch_size * grad_accum * world_size
    mode: Literal["supervised", "atcon"] = "supervised"  # atcon: supervised steps alternate with ATCON's unlabelled ones
    # attn/* map metrics at eval (auto: models with a gradcam_layer). YAML reads a bare on/off as
    # true/false, so both spellings are accepted.
    attention_eval: Union[bool, Literal["auto", "on", "off"]] = "auto"
    attention_samples: int = 128  # validation samples whose maps are measured


@dataclass
class SparseConfig:
    enabled: bool = False
    active_fraction: float = 0.25  # fraction of weights kept
    start_epoch: int = 0
    remask_every_epochs: int = 1
    scope: Literal["global", "layer"] = "global"  # one magnitude threshold for all layers, or per layer


@dataclass
class AtconConfig:
    """ATCON's unlabelled steps (``training.mode: atcon``; see trainfix.trainers.atcon)."""

    alpha: float = 8.0  # supervised step probability alpha*n_sup / (alpha*n_sup + n_unsup)
    mask_intensity: float = 8.0  # w in sigmoid(w (g - (mean + std/2)) / std)
    mask_scale: Literal["standardised", "raw"] = "standardised"  # raw: the paper code's unscaled map
    pairing: Literal["gb-mask", "gradcam-mask"] = "gb-mask"  # mask from Guided Backprop, Grad-CAMs compared (or the other way)
    unlabelled: Literal["unlabelled", "train", "val"] = "unlabelled"  # the unlabelled pool
    batch_size: Optional[int] = None  # unlabelled batch size (default: training.batch_size)
    weight: float = 1.0  # multiplies the consistency loss
    lr_scale: float = 1.0  # the unlabelled steps' lr as a fraction of the supervised lr (Adam ignores `weight`'s scale)
    layer: Optional[str] = None  # Grad-CAM layer (default: the model's own / its last Conv2d)


@dataclass
class StageConfig:
    name: str = "stage"
    epochs: int = 1
    init_from: Optional[Literal["best", "last"]] = None  # previous stage's checkpoint to start from
    overrides: dict = field(default_factory=dict)  # {dotted.key: value} on top of the base config


@dataclass
class LoggingConfig:
    every_n_steps: int = 10  # step scalars (and their one host sync) every N optimizer steps
    tensorboard: bool = True
    jsonl: bool = True
    progress: Union[bool, Literal["auto"]] = "auto"  # rich progress bar; auto = only on a TTY


@dataclass
class CheckpointConfig:
    every_n_epochs: int = 1
    every_n_steps: Optional[int] = None  # also refresh last.pt mid-epoch every N optimizer steps
    keep_last: int = 2  # epoch_XXX.pt files kept
    best_metric: str = "val/acc"
    best_mode: Literal["max", "min"] = "max"


@dataclass
class RunConfig:
    data: Component
    model: Component
    loss: Component = field(default_factory=lambda: Component(name="cross-entropy"))
    run: RunSection = field(default_factory=RunSection)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sparse: SparseConfig = field(default_factory=SparseConfig)
    atcon: AtconConfig = field(default_factory=AtconConfig)
    stages: list[StageConfig] = field(default_factory=list)  # when given, their epochs replace training.epochs
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    applied_fixes: list[dict] = field(default_factory=list)


SECTIONS: dict[str, type] = {
    "run": RunSection,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "training": TrainingConfig,
    "sparse": SparseConfig,
    "atcon": AtconConfig,
    "logging": LoggingConfig,
    "checkpoint": CheckpointConfig,
}
COMPONENT_SECTIONS = ("data", "model", "loss")
ALL_SECTIONS = values.TRAINFIX_SECTIONS
REQUIRED_SECTIONS = values.REQUIRED_SECTIONS
RECORDED = (("run", "world_size"), ("run", "dist_backend"), ("run", "device_total_mb"), ("training", "global_batch"),
            ("optimizer", "scaled_lr"))


# --- helpers -------------------------------------------------------------------------------------
def did_you_mean(name: Any, choices: typing.Iterable[str]) -> str:
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _type_name(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "|".join(str(a) for a in typing.get_args(hint))
    if origin is Union:
        return "|".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(hint))
    if origin in (list, tuple):
        args = typing.get_args(hint)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return {int: "int", float: "float", str: "string", bool: "bool", dict: "mapping", list: "list"}.get(hint, str(hint))


_BAD = object()


def check_value(value: Any, hint: Any) -> Any:
    """``value`` converted to ``hint`` as a YAML document holds it (int -> float, "1e-3" -> float; a
    bool must be a bool), by :func:`trainfix.values.coerce`; ``_BAD`` when it does not fit."""
    try:
        return values.coerce(value, hint, strict=True)
    except values.BadValue:
        return _BAD


def _hints(cls_or_fn: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls_or_fn)
    except Exception:  # unresolvable annotations (a user's component): skip type checks
        return {}


def _check_fixed(section: str, cls: type, value: Any, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{section}: expected a mapping, got {type(value).__name__}")
        return
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, v in value.items():
        if key not in names:
            errors.append(f"{section}.{key}: unknown key{did_you_mean(key, names)}; known: {', '.join(names)}")
            continue
        if check_value(v, hints[key]) is _BAD:
            errors.append(f"{section}.{key}: {v!r} is not {_type_name(hints[key])}")
    _check_ranges(section, value, errors)


_POSITIVE = {
    "training": ("epochs", "batch_size", "grad_accum", "eval_every_epochs", "attention_samples"),
    "logging": ("every_n_steps",),
    "checkpoint": ("every_n_epochs",),
    "optimizer": ("reference_batch",),
    "schedule": ("step_epochs",),
    "sparse": ("remask_every_epochs",),
    "atcon": ("alpha", "mask_intensity", "batch_size", "lr_scale"),
}


def _check_ranges(section: str, value: dict, errors: list[str]) -> None:
    for key in _POSITIVE.get(section, ()):
        v = value.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0:
            errors.append(f"{section}.{key}: must be > 0, got {v}")
    if section == "optimizer" and isinstance(value.get("lr"), (int, float)) and value["lr"] <= 0:
        errors.append(f"optimizer.lr: must be > 0, got {value['lr']}")
    if section == "training":
        for key in ("grad_clip",):
            v = value.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0:
                errors.append(f"training.{key}: must be > 0 or null, got {v}")
        v = value.get("ema_decay")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not 0.0 < v < 1.0:
            errors.append(f"training.ema_decay: must be in (0, 1) or null, got {v}")
    if section == "sparse":
        v = value.get("active_fraction")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and not 0.0 < v <= 1.0:
            errors.append(f"sparse.active_fraction: must be in (0, 1], got {v}")
    if section == "schedule":
        for key in ("min_lr_ratio", "pct_start", "warmup_ratio"):
            v = value.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not 0.0 <= v <= 1.0:
                errors.append(f"schedule.{key}: must be in [0, 1], got {v}")
        v = value.get("warmup_epochs")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            errors.append(f"schedule.warmup_epochs: must be >= 0, got {v}")


def _check_component(kind: str, value: Any, errors: list[str], imports: bool = False) -> None:
    """Check a ``data``/``model``/``loss`` section.  Registered names are bound to their factory's
    signature.  A ``_component_`` outside the registries is bound only with ``imports`` (the user's
    own config, in ``trainfix train``); otherwise its path is checked for form and nothing is imported."""
    from trainfix.trainers.components import registry

    if not isinstance(value, dict):
        errors.append(f"{kind}: expected a mapping with 'name', got {type(value).__name__}")
        return
    if registry.COMPONENT_KEY in value:
        target = value[registry.COMPONENT_KEY]
        problem = registry.target_problem(target)
        if problem:
            errors.append(f"{kind}._component_: {problem}")
            return
        if not imports and not registry.is_registered_target(target):
            return  # not imported: its arguments are bound when `trainfix train` imports it
    else:
        reg = registry.REGISTRIES[kind]
        name = value.get("name")
        if name is None:
            errors.append(f"{kind}.name: missing; known: {', '.join(sorted(reg))} (or _component_: pkg.mod.Class)")
            return
        if not isinstance(name, str) or name not in reg:
            errors.append(f"{kind}.name: unknown {kind} {name!r}{did_you_mean(name, reg)}; known: {', '.join(sorted(reg))}")
            return
        target = reg[name]
    try:
        factory = registry.import_target(target)
    except ConfigError as exc:
        errors.append(f"{kind}: {exc.message}")
        return
    params, var_kw = registry.signature_params(kind, factory)
    hints = _hints(factory)
    args = registry.factory_args(value)
    label = value.get("name") or target
    for key, v in args.items():
        if key not in params:
            if not var_kw:
                errors.append(
                    f"{kind}.{key}: not an argument of {kind} {label!r}{did_you_mean(key, params)}; "
                    f"known: {', '.join(params) or '(none)'}"
                )
            continue
        hint = hints.get(key)
        if hint is not None and check_value(v, hint) is _BAD:
            errors.append(f"{kind}.{key}: {v!r} is not {_type_name(hint)}")
    for key, p in params.items():
        if p.default is inspect.Parameter.empty and key not in args:
            errors.append(f"{kind}.{key}: required by {kind} {label!r}")


def component_accepts(config: dict, kind: str, arg: str) -> bool | None:
    """Whether the ``data``/``model``/``loss`` factory a trainfix config names takes keyword ``arg``
    (None when the factory cannot be resolved).  Fix recipes ask before setting a component
    argument, so that they refuse with a reason instead of producing a config the schema rejects.
    Like :func:`validate` without ``imports``, it imports only trainfix's registered factories."""
    section = config.get(kind) if isinstance(config, dict) else None
    if not isinstance(section, dict):
        return None
    try:
        from trainfix.trainers.components.registry import factory_for, signature_params

        params, var_kw = signature_params(kind, factory_for(kind, section))
    except Exception:  # unknown component, import failure: let validation speak
        return None
    return arg in params or var_kw


def _check_stages(value: Any, base: dict, errors: list[str], deep: bool, imports: bool = False) -> None:
    if not isinstance(value, list):
        errors.append(f"stages: expected a list, got {type(value).__name__}")
        return
    hints = _hints(StageConfig)
    names = [f.name for f in dataclasses.fields(StageConfig)]
    seen: set[str] = set()
    for i, stage in enumerate(value):
        where = f"stages[{i}]"
        if not isinstance(stage, dict):
            errors.append(f"{where}: expected a mapping, got {type(stage).__name__}")
            continue
        for key, v in stage.items():
            if key not in names:
                errors.append(f"{where}.{key}: unknown key{did_you_mean(key, names)}; known: {', '.join(names)}")
            elif check_value(v, hints[key]) is _BAD:
                errors.append(f"{where}.{key}: {v!r} is not {_type_name(hints[key])}")
        if "epochs" not in stage:
            errors.append(f"{where}.epochs: required")
        name = stage.get("name", f"stage{i}")
        if name in seen:
            errors.append(f"{where}.name: {name!r} used twice")
        seen.add(name)
        if i == 0 and stage.get("init_from"):
            errors.append(f"{where}.init_from: the first stage has no previous checkpoint to start from")
        overrides = stage.get("overrides") or {}
        if deep and isinstance(overrides, dict) and overrides:
            merged = copy.deepcopy(base)
            merged.pop("stages", None)
            try:
                for k, v in overrides.items():
                    set_dotted(merged, str(k), v)
            except ConfigError as exc:
                errors.append(f"{where}.overrides: {exc.message}")
                continue
            errors.extend(f"{where}.overrides: {e}" for e in validate(merged, imports=imports))


def validate(config: Any, *, imports: bool = False) -> list[str]:
    """Every problem in ``config`` (a dict as loaded from YAML), each with its dotted path.

    ``imports=True`` also imports each ``_component_`` outside the registries to bind its arguments;
    only ``trainfix train`` on the user's own config (or ``train --validate --import-components``)
    asks for it.  Without it nothing a config names is imported."""
    errors: list[str] = []
    if not isinstance(config, dict):
        return [f"config: expected a mapping of sections, got {type(config).__name__}"]
    for key in config:
        if key not in ALL_SECTIONS:
            errors.append(f"{key}: unknown section{did_you_mean(key, ALL_SECTIONS)}; known: {', '.join(ALL_SECTIONS)}")
    for key in REQUIRED_SECTIONS:
        if key not in config:
            errors.append(f"{key}: required section missing")
    for key, cls in SECTIONS.items():
        if key in config and config[key] is not None:
            _check_fixed(key, cls, config[key], errors)
    for kind in COMPONENT_SECTIONS:
        if kind in config:
            _check_component(kind, config[kind], errors, imports)
    if config.get("stages"):
        _check_stages(config["stages"], config, errors, deep=True, imports=imports)
    fixes = config.get("applied_fixes")
    if fixes is not None and not (isinstance(fixes, list) and all(isinstance(f, dict) for f in fixes)):
        errors.append("applied_fixes: expected a list of mappings")
    return errors


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


def set_dotted(config: dict, key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict (creating mappings; integer parts index lists)."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"override {key!r}: empty key part", "write overrides as a.b.c=value")
    node: Any = config
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ConfigError(f"override {key!r}: {'.'.join(parts[:i])} has no item {part}", "index lists from 0")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
            continue
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:i])} is not a mapping", "check the dotted path")
        if last:
            node[part] = value
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]


def parse_override(text: str) -> tuple[str, Any]:
    """``a.b.c=value`` -> (``a.b.c``, value parsed as a YAML scalar/flow value)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override {text!r} is not key=value", "write overrides as a.b.c=value, e.g. optimizer.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(config: dict, overrides: typing.Sequence[str]) -> dict:
    """A copy of ``config`` with each ``a.b.c=value`` applied in order."""
    out = copy.deepcopy(config)
    for text in overrides or ():
        key, value = parse_override(text)
        set_dotted(out, key, value)
    return out


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
