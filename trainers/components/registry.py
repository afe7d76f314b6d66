"""Short component names -> the factory that builds them, one table per kind.

A config section names its component (``model: {name: cnn, width: 32}``); the remaining keys are the
factory's keyword arguments.  Entries are ``"module:factory"`` strings imported on first use, so
reading this table (and validating a config) imports nothing heavy until a component is built.

Escape hatch: a section with ``_component_: mypkg.models.Net`` (or ``mypkg.models:Net``) instead of
``name`` imports that callable; it is called exactly like a registered factory.

Factory signatures (the first parameter is injected by the trainer, never set in the config):

- dataset ``(seed: int, **args) -> DataBundle``
- model   ``(bundle: DataBundle, **args) -> nn.Module`` returning a Tensor or ``ModelOutput``
- loss    ``(bundle: DataBundle, **args) -> nn.Module`` called ``loss(output, batch) -> LossOutput``
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Callable

from trainfix.errors import ConfigError

_PKG = "trainfix.trainers.components"

DATASETS: dict[str, str] = {
    "digits": f"{_PKG}.datasets:digits",
    "synthetic": f"{_PKG}.datasets:synthetic",
    "image-folder": f"{_PKG}.datasets:image_folder",
    "digits-multitask": f"{_PKG}.multitask:digits_multitask",
    "digits-bags": f"{_PKG}.mil:digits_bags",
    "digits-canvas": f"{_PKG}.attention:digits_canvas",
}

MODELS: dict[str, str] = {
    "cnn": f"{_PKG}.models:cnn",
    "mlp": f"{_PKG}.models:mlp",
    "attention-cnn": f"{_PKG}.attention:attention_cnn",
    "multitask-cnn": f"{_PKG}.multitask:multitask_cnn",
    "mil-dual-stream": f"{_PKG}.mil:mil_dual_stream",
}

LOSSES: dict[str, str] = {
    "cross-entropy": f"{_PKG}.losses:cross_entropy",
    "bce": f"{_PKG}.losses:bce",
    "self-corrective-attention": f"{_PKG}.attention:self_corrective_attention",
    "uncertainty-multitask": f"{_PKG}.multitask:uncertainty_multitask",
    "mil": f"{_PKG}.mil:mil_loss",
}

REGISTRIES: dict[str, dict[str, str]] = {"data": DATASETS, "model": MODELS, "loss": LOSSES}

# The parameter the trainer passes positionally; configs never set it.
INJECTED: dict[str, str] = {"data": "seed", "model": "bundle", "loss": "bundle"}

COMPONENT_KEY = "_component_"


def import_target(target: str) -> Callable:
    """Import ``"pkg.mod:attr"`` or ``"pkg.mod.attr"`` and return the attribute."""
    if ":" in target:
        module_name, _, attr = target.partition(":")
    else:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(
            f"cannot import {target!r}", "write it as 'package.module.Name' or 'package.module:Name'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {target!r}: {exc}", "check the module is installed and on PYTHONPATH") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConfigError(f"{module_name!r} has no attribute {attr!r}", "check the name after the module")
        obj = getattr(obj, part)
    return obj


def target_of(kind: str, section: dict) -> str:
    """The import string a component section refers to (registered name or ``_component_``)."""
    if section.get(COMPONENT_KEY):
        return str(section[COMPONENT_KEY])
    registry = REGISTRIES[kind]
    name = section.get("name")
    if name not in registry:
        raise ConfigError(f"{kind}.name: unknown {kind} {name!r}", f"known: {', '.join(sorted(registry))}")
    return registry[name]


def factory_for(kind: str, section: dict) -> Callable:
    """The factory (or class) a component section names."""
    return import_target(target_of(kind, section))


def factory_args(section: dict) -> dict:
    """The keyword arguments a section passes to its factory (everything but name/_component_)."""
    return {k: v for k, v in section.items() if k not in ("name", COMPONENT_KEY)}


def signature_params(kind: str, factory: Callable) -> tuple[dict[str, inspect.Parameter], bool]:
    """The configurable parameters of ``factory`` (injected first one dropped) and whether it takes **kwargs."""
    sig = inspect.signature(factory)
    params = dict(sig.parameters)
    if inspect.isclass(factory):
        params.pop("self", None)
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    params = {
        n: p
        for n, p in params.items()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
    injected = INJECTED[kind]
    if injected in params:
        params.pop(injected)
    elif params:
        # A user class may call its first parameter anything; it is still the injected one.
        first = next(iter(params))
        if params[first].default is inspect.Parameter.empty:
            params.pop(first)
    return params, var_kw


def build(kind: str, section: dict, injected: Any) -> Any:
    """Call the factory of ``section`` with the injected argument and the section's arguments."""
    return factory_for(kind, section)(injected, **factory_args(section))
