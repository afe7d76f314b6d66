"""``a.b.c=value`` overrides: parse them and set them in a nested config dict."""

from __future__ import annotations

import copy
import typing
from typing import Any

import yaml

from trainfix.errors import ConfigError

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
