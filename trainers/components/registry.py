"""Short component names -> the factory that builds them, one table per kind.

A config section names its component (``model: {name: cnn, width: 32}``); the remaining keys are the
factory's keyword arguments.  Entries are ``"module:factory"`` strings imported on first use, so
reading this table (and validating a config) imports nothing heavy until a component is built.

Escape hatch: a section with ``_component_: mypkg.models.Net`` (or ``mypkg.models:Net``) instead of
``name`` imports that callable; it is called exactly like a registered factory.

Trust: ``_component_`` is code named by a config file, so it is imported only when the caller says
the config is the user's own (``imports=True``: ``trainfix train`` and its Python API).  Everywhere
else (diagnosing, comparing, planning fixes, validating) a ``_component_`` resolves only when it
names one of the registered factories below; any other path raises
:class:`UntrustedComponent` and nothing is imported.

Factory signatures (the first parameter is injected by the trainer, never set in the config):

- dataset ``(seed: int, **args) -> DataBundle``
- model   ``(bundle: DataBundle, **args) -> nn.Module`` returning a Tensor or ``ModelOutput``
- loss    ``(bundle: DataBundle, **args) -> nn.Module`` called ``loss(output, batch) -> LossOutput``
"""

from __future__ import annotations

import importlib
import inspect
import sys
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


class UntrustedComponent(ConfigError):
    """A ``_component_`` path outside the registries, met where configs are read as data."""


def _normalise(target: str) -> str:
    return target.replace(":", ".")


def is_registered_target(target: str) -> bool:
    """Whether ``target`` (``pkg.mod:name`` or ``pkg.mod.name``) is one of trainfix's own factories."""
    if not isinstance(target, str):
        return False
    return _normalise(target) in {_normalise(t) for reg in REGISTRIES.values() for t in reg.values()}


def target_problem(target: Any) -> str | None:
    """What is wrong with the form of a ``_component_`` path (checked without importing), or None."""
    if not isinstance(target, str) or not target.strip():
        return "expected an import path such as 'mypkg.models.Net'"
    module_name, attr = _split_target(target)
    parts = module_name.split(".") + attr.split(".") if module_name and attr else []
    if not parts or not all(p.isidentifier() for p in parts):
        return f"{target!r} is not an import path; write it as 'package.module.Name' or 'package.module:Name'"
    return None


def _split_target(target: str) -> tuple[str, str]:
    if ":" in target:
        module_name, _, attr = target.partition(":")
    else:
        module_name, _, attr = target.rpartition(".")
    return module_name, attr


def locate_target(target: str) -> str | None:
    """Why the module of ``target`` cannot be found, or None when it can: found on ``sys.path``
    WITHOUT importing it or its parent packages (no package ``__init__`` runs)."""
    import importlib.machinery
    import importlib.util

    module_name, _ = _split_target(target)
    parts = module_name.split(".")
    try:
        spec = importlib.util.find_spec(parts[0]) if parts[0] not in sys.modules else getattr(
            sys.modules[parts[0]], "__spec__", None)
    except (ImportError, ValueError) as exc:
        return f"cannot find module {parts[0]!r}: {exc}"
    if spec is None:
        return f"no module named {parts[0]!r} on the import path"
    for i, part in enumerate(parts[1:], start=1):
        locations = spec.submodule_search_locations
        if not locations:
            return f"{'.'.join(parts[:i])!r} is a module, not a package: it has no {part!r}"
        spec = importlib.machinery.PathFinder.find_spec(part, list(locations))
        if spec is None:
            return f"no module named {'.'.join(parts[:i + 1])!r} on the import path"
    return None


def import_target(target: str) -> Callable:
    """Import ``"pkg.mod:attr"`` or ``"pkg.mod.attr"`` and return the attribute.

    This runs the module's code: callers outside ``trainfix train`` go through :func:`factory_for`
    with ``imports=False``, which only ever imports registered factories."""
    module_name, attr = _split_target(target)
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


def target_of(kind: str, section: dict, *, imports: bool = False) -> str:
    """The import string a component section refers to (registered name or ``_component_``).

    Without ``imports`` a ``_component_`` outside the registries raises :class:`UntrustedComponent`."""
    if section.get(COMPONENT_KEY):
        target = str(section[COMPONENT_KEY])
        if not imports and not is_registered_target(target):
            raise UntrustedComponent(
                f"{kind}._component_ {target!r} is not one of trainfix's registered {kind} components; "
                "code a config names is imported only by 'trainfix train'",
                f"known {kind} names: {', '.join(sorted(REGISTRIES[kind]))}",
            )
        return target
    registry = REGISTRIES[kind]
    name = section.get("name")
    if name not in registry:
        raise ConfigError(f"{kind}.name: unknown {kind} {name!r}", f"known: {', '.join(sorted(registry))}")
    return registry[name]


def factory_for(kind: str, section: dict, *, imports: bool = False) -> Callable:
    """The factory (or class) a component section names; ``imports=True`` (the user's own config,
    in ``trainfix train``) also imports a ``_component_`` outside the registries."""
    return import_target(target_of(kind, section, imports=imports))


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


def build(kind: str, section: dict, injected: Any, *, imports: bool = False) -> Any:
    """Call the factory of ``section`` with the injected argument and the section's arguments
    (``imports``: see :func:`factory_for`)."""
    return factory_for(kind, section, imports=imports)(injected, **factory_args(section))
