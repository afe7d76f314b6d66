"""Config values as people write them, read one way by every package.

``truthy`` parses a switch (``true``/``yes``/``on``/``1``), ``coerce`` converts a value to a type
hint, and ``is_trainfix_config`` tells trainfix's own run config from anyone else's, with the one
list of its sections.  The detectors' parameters (``--param loss-plateau.min_drop=0.01``), the
settings file and the trainer's config validation all use these, so "1e-3" and "yes" mean the same
everywhere.  Like :mod:`trainfix.errors` this module imports nothing of ours, so diagnostics,
fixes and trainers may all import it without depending on each other.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from typing import Any

TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
FALSE_WORDS = frozenset({"false", "no", "off", "0"})
NONE_WORDS = frozenset({"none", "null", "~", ""})

#: the top-level sections of trainfix's own run config, in the order they are documented
TRAINFIX_SECTIONS = ("run", "data", "model", "loss", "optimizer", "schedule", "training", "sparse", "atcon", "stages",
                     "logging", "checkpoint", "applied_fixes")
#: the sections every trainfix run config has
REQUIRED_SECTIONS = ("data", "model")


def truthy(value: Any) -> bool | None:
    """A switch as a bool: True/False for booleans, numbers (non-zero) and the words ``true yes on 1``
    / ``false no off 0 none null`` (any case); None when absent or not a switch (``"auto"``)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    s = str(value).strip().lower()
    if s in TRUE_WORDS:
        return True
    if s in FALSE_WORDS or s in NONE_WORDS:
        return False
    return None


def is_trainfix_config(tree: Any) -> bool:
    """Whether ``tree`` is trainfix's own run config: a mapping of only trainfix's sections that has
    the required ones (``data`` and ``model``).  Anything else is a foreign config, read through the
    knob aliases."""
    if not isinstance(tree, dict):
        return False
    keys = {str(k) for k in tree}
    return keys <= set(TRAINFIX_SECTIONS) and set(REQUIRED_SECTIONS) <= keys


class BadValue(ValueError):
    """``value`` does not fit the hint; ``expected`` says what would ("a number", "true or false")."""

    def __init__(self, value: Any, expected: str):
        super().__init__(f"{value!r} is not {expected}")
        self.value = value
        self.expected = expected


def coerce(value: Any, hint: Any, *, strict: bool = False) -> Any:
    """``value`` converted to the annotation ``hint`` (int, float, bool, str, Optional/Union,
    Literal, Enum, tuple/list of those, dict); raises :class:`BadValue` when it does not fit.

    ``strict=False`` is for text typed on a command line or in a settings file: ``"true"`` is a
    bool, ``"0.01"`` a float, ``"1, 2"`` a list, ``"none"`` fills an Optional.  ``strict=True`` is
    for a typed document (YAML): a bool must be a bool and an int an int; only a number written as
    a string (``"1e-3"``, which YAML 1.1 reads as text) becomes a float, an int becomes a float, and
    lists stay lists.  Unresolvable hints (``Any``, a string annotation, an empty signature) accept
    anything.
    """
    if hint is Any or hint is None or isinstance(hint, str) or hint is _EMPTY:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _union(value, args, strict)
    if origin is typing.Literal:
        return _literal(value, args, strict)
    if origin in (tuple, list, set, frozenset) or hint in (tuple, list):
        return _sequence(value, hint, origin, args, strict)
    if origin is dict or hint is dict:
        if isinstance(value, dict):
            return value
        raise BadValue(value, "a mapping")
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value.strip().lower() if isinstance(value, str) and not strict else value)
        except ValueError:
            raise BadValue(value, "one of " + ", ".join(str(m.value) for m in hint)) from None
    if hint is bool:
        return _bool(value, strict)
    if hint is int:
        return _int(value, strict)
    if hint is float:
        return _float(value, strict)
    if hint is str:
        if isinstance(value, str) or (not strict and isinstance(value, (int, float)) and not isinstance(value, bool)):
            return str(value)
        raise BadValue(value, "a string")
    if strict and isinstance(hint, type) and not isinstance(value, hint):
        raise BadValue(value, type_name(hint))
    return value


def type_name(hint: Any) -> str:
    """A hint as a user reads it: ``a number``, ``true or false``, ``list of a number``."""
    if hint is type(None):
        return "none"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (list, tuple, set, frozenset):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
            list: "a list", tuple: "a list"}.get(hint, getattr(hint, "__name__", str(hint)))


# --- the cases -------------------------------------------------------------------------------------
_EMPTY: Any = inspect.Parameter.empty


def _union(value: Any, args: tuple, strict: bool) -> Any:
    non_none = [a for a in args if a is not type(None)]
    if len(non_none) < len(args):
        if value is None or (not strict and isinstance(value, str) and value.strip().lower() in NONE_WORDS):
            return None
    for arm in non_none:
        try:
            return coerce(value, arm, strict=strict)
        except BadValue:
            continue
    raise BadValue(value, " or ".join(type_name(a) for a in args))


def _literal(value: Any, args: tuple, strict: bool) -> Any:
    for a in args:
        if strict:
            if value == a and isinstance(value, bool) == isinstance(a, bool):
                return a
            continue
        try:
            if coerce(value, type(a)) == a:
                return a
        except BadValue:
            continue
    raise BadValue(value, "one of " + ", ".join(repr(a) for a in args))


def _sequence(value: Any, hint: Any, origin: Any, args: tuple, strict: bool) -> Any:
    items = value
    if isinstance(value, str) and not strict:
        text = value.strip().strip("[]()")
        items = [v.strip() for v in text.split(",")] if text else []
    if not isinstance(items, (list, tuple, set, frozenset)):
        raise BadValue(value, type_name(hint))
    items = list(items)
    fixed = origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis)
    if fixed and not strict:
        if len(items) != len(args):
            raise BadValue(value, f"{len(args)} values")
        return tuple(coerce(v, a) for v, a in zip(items, args))
    elem = args[0] if args else Any
    conv = [coerce(v, elem, strict=strict) for v in items]
    if strict:
        return conv  # a YAML list stays a list
    return (origin or hint)(conv)


def _bool(value: Any, strict: bool) -> bool:
    if isinstance(value, bool):
        return value
    if not strict:
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
            return value.strip().lower() in TRUE_WORDS
    raise BadValue(value, "true or false")


def _int(value: Any, strict: bool) -> int:
    if isinstance(value, bool):
        raise BadValue(value, "an integer")
    if isinstance(value, int):
        return value
    if strict:
        raise BadValue(value, "an integer")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise BadValue(value, "an integer") from None
    if f.is_integer():
        return int(f)
    raise BadValue(value, "an integer")


def _float(value: Any, strict: bool) -> float:
    if isinstance(value, bool) or (strict and not isinstance(value, (int, float, str))):
        raise BadValue(value, "a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise BadValue(value, "a number") from None
