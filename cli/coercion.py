"""Typer's parameter coercion without pydantic for the plain cases: an absent option, a string, a path.

Typer (0.2x) coerces every command-line value through a pydantic ``TypeAdapter`` that it builds on
first use, even for an option left at ``None``; importing pydantic and building a dozen adapters is
about a third of what a small ``trainfix diagnose`` costs beyond its reader.  :func:`install` puts
a deferring runtime parameter in front of typer's: a missing value, a ``str`` value of a ``str``
parameter, and a ``str`` value of a plain ``Path`` parameter (or a list of them) are coerced the way
typer's own adapter would (typer's ``coerce_cli_path`` still runs every exists/file/dir check; it
is handed the ``Path`` that pydantic would have made, ``Path(value)``); anything else builds
typer's own runtime parameter and is coerced by it, error messages included.  Where typer's private
names are not there (another typer), nothing is installed and typer works as it always does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

_PLAIN_PATHS = (Path, type(Path()))


def install() -> bool:
    """Route typer's runtime-parameter building through :class:`Deferred`; True when installed."""
    try:
        from typer import _coercion, core
        from typer._param_types import coerce_cli_path
        from typer._typing import get_args, get_origin
    except ImportError:
        return False
    original = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if original is None or base is None or getattr(original, "_trainfix_deferred", False):
        return original is not None and getattr(original, "_trainfix_deferred", False)

    class Deferred(base):  # type: ignore[misc, valid-type]
        """Coerces the plain cases itself and hands everything else to typer's own parameter."""

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            plain = _plain(self.annotation, self.parameter_info, value, param, ctx)
            if plain is not _NOT_PLAIN:
                return plain
            return _typer_param(self, original)._coerce_value(value, param=param, ctx=ctx)

    def _plain(annotation: Any, info: Any, value: Any, param: Any, ctx: Any) -> Any:
        if info.parser is not None:
            return _NOT_PLAIN
        if get_origin(annotation) is list:
            (item,) = get_args(annotation) or (None,)
            if item is None or get_origin(item) is not None or not isinstance(value, (list, tuple)):
                return _NOT_PLAIN
            items = [_plain(item, info, v, param, ctx) for v in value]
            return _NOT_PLAIN if any(v is _NOT_PLAIN for v in items) else items
        if not isinstance(value, str):
            return _NOT_PLAIN
        if annotation is str and not _path_options(info):
            return value
        if annotation in _PLAIN_PATHS and info.path_type is None and not info.allow_dash:
            return coerce_cli_path(annotation(value), info, path_type=annotation, param=param, ctx=ctx)
        return _NOT_PLAIN

    def build(descriptor: Any) -> Any:
        if descriptor.file_annotation is not None:
            return original(descriptor)
        return Deferred(annotation=descriptor.annotation, parameter_info=descriptor.parameter_info)

    build._trainfix_deferred = True  # type: ignore[attr-defined]
    build.typer_original = original  # type: ignore[attr-defined]
    core.build_runtime_param = build
    return True


_NOT_PLAIN = object()


def _path_options(info: Any) -> bool:
    """A ``str`` parameter that asked for path handling (typer routes it through its path checks)."""
    return bool(getattr(info, "allow_dash", False) or getattr(info, "path_type", None) is not None
                or getattr(info, "resolve_path", False))


def _typer_param(deferred: Any, original: Any) -> Any:
    """Typer's own runtime parameter for ``deferred``'s annotation, built once."""
    built = deferred.__dict__.get("_typer")
    if built is None:
        from typer._coercion import resolve_type_descriptor

        built = original(resolve_type_descriptor(deferred.annotation, deferred.parameter_info))
        object.__setattr__(deferred, "_typer", built)
    return built
