"""Validation of a config dict: every problem at once, each with its dotted path and a did-you-mean.

Fixed sections are checked against their dataclass's field types and ranges; component sections
are bound to their factory's signature (importing only trainfix's registered factories unless
``imports=True``); stages are checked with their overrides applied to the base config.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import typing
from typing import Any, Literal, Union

from trainfix import values
from trainfix.errors import ConfigError
from trainfix.trainers.config.overrides import set_dotted
from trainfix.trainers.config.schema import ALL_SECTIONS, COMPONENT_SECTIONS, REQUIRED_SECTIONS, SECTIONS, StageConfig

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
