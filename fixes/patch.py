"""Config patches: a fix as a short list of edits, applied to a copy, validated, diffed, recorded.

An :class:`Edit` sets one key (``path`` from the root, ``old`` as planned, ``new``, and the
``reason`` in words); a :class:`Patch` is one recipe's edits plus the advice for what no key in the
file can express.  :func:`apply_patch` never mutates its input: it deep-copies the tree, sets each
key, and for trainfix configs validates the result with ``trainers.config.validate`` (an invalid
result is refused with every reason, as :class:`~trainfix.errors.FixError`).

Applying is idempotent.  An edit whose key already holds the new value changes nothing; a patch
whose value depends on the current one (``lower-lr`` multiplies the lr) is marked ``relative``
and is not applied again to a config whose provenance already lists it.  Either way the result
says what stayed unchanged and why.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from typing import Any

from trainfix.errors import FixError


class _Missing:
    def __repr__(self) -> str:
        return "<absent>"


MISSING: Any = _Missing()


@dataclass(frozen=True)
class Edit:
    """Set ``path`` (keys from the root; list items by index) from ``old`` to ``new``."""

    path: tuple[str, ...]
    old: Any
    new: Any
    reason: str

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    def describe(self) -> str:
        old = "(absent)" if self.old is MISSING else _short(self.old)
        return f"{self.dotted}: {old} -> {_short(self.new)}  ({self.reason})"


@dataclass
class Patch:
    """One recipe's plan for one config: edits, plus advice for changes no key can express."""

    recipe_id: str
    edits: list[Edit] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    finding: str | None = None  # the detector name the patch answers, when planned from a finding
    relative: bool = False  # new values computed from current ones: never apply twice
    notes: list[str] = field(default_factory=list)  # how values were chosen (shown with the diff)


@dataclass
class ApplyResult:
    """What applying a patch did: the new tree, the edits that changed it, those that did not."""

    tree: Any
    changed: list[Edit]
    unchanged: list[Edit]
    already_applied: bool = False

    @property
    def is_noop(self) -> bool:
        return not self.changed


def get_path(tree: Any, path: tuple[str, ...], default: Any = MISSING) -> Any:
    """The value at ``path`` or ``default`` when any key on the way is absent."""
    node = tree
    for key in path:
        if isinstance(node, dict):
            real = _real_key(node, key)
            if real is MISSING:
                return default
            node = node[real]
        elif isinstance(node, list):
            try:
                node = node[int(key)]
            except (ValueError, IndexError):
                return default
        else:
            return default
    return node


def set_path(tree: Any, path: tuple[str, ...], value: Any) -> None:
    """Set ``path`` to ``value`` in place, creating missing mappings on the way."""
    node = tree
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(node, list):
            idx = int(key)
            if last:
                node[idx] = value
                return
            node = node[idx]
            continue
        if not isinstance(node, dict):
            raise FixError(f"cannot set {'.'.join(path)}: {'.'.join(path[:i])} is not a mapping",
                           "edit the config by hand")
        real = _real_key(node, key)
        if last:
            node[key if real is MISSING else real] = value
            return
        if real is MISSING or node[real] is None:
            node[key if real is MISSING else real] = {}
            real = key if real is MISSING else real
        node = node[real]


def _real_key(node: dict, key: str) -> Any:
    if key in node:
        return key
    for k in node:
        if str(k) == key:
            return k
    return MISSING


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats 0.1 and 0.1000000001, and 1 and 1.0, as the same setting."""
    if a is MISSING or b is MISSING:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, dict) and isinstance(b, dict):
        return set(map(str, a)) == set(map(str, b)) and all(same_value(a[k], get_path(b, (str(k),))) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    return a == b


def applied_ids(provenance: list[dict[str, Any]]) -> set[str]:
    return {str(e.get("id")) for e in provenance if isinstance(e, dict) and e.get("id")}


def apply_patch(tree: Any, patch: Patch, *, trainfix: bool, provenance: list[dict[str, Any]] | None = None) -> ApplyResult:
    """Apply ``patch`` to a deep copy of ``tree`` (see module docstring); validate trainfix configs."""
    if patch.relative and patch.recipe_id in applied_ids(provenance or []):
        return ApplyResult(copy.deepcopy(tree), [], list(patch.edits), already_applied=True)
    new = copy.deepcopy(tree)
    changed: list[Edit] = []
    unchanged: list[Edit] = []
    for edit in patch.edits:
        current = get_path(new, edit.path)
        if current is not MISSING and same_value(current, edit.new):
            unchanged.append(edit)
            continue
        set_path(new, edit.path, copy.deepcopy(edit.new))
        if current is not MISSING:
            _note_old_value_in_comment(new, edit.path, current)
        changed.append(edit if same_value(edit.old, current) else Edit(edit.path, current, edit.new, edit.reason))
    if trainfix and changed:
        validate_trainfix(new, patch.recipe_id)
    return ApplyResult(new, changed, unchanged)


def _note_old_value_in_comment(tree: Any, path: tuple[str, ...], old: Any) -> None:
    """A changed YAML key's end-of-line comment described its old value: prefix it with
    ``was <old>:`` so the comment stays true (``lr: 0.0003  # was 0.001: tuned on batch 512``)."""
    parent = get_path(tree, path[:-1]) if len(path) > 1 else tree
    ca = getattr(parent, "ca", None)
    items = getattr(ca, "items", None)
    if not isinstance(items, dict):
        return
    key = _real_key(parent, path[-1])
    entry = items.get(key)
    if not entry or len(entry) < 3 or entry[2] is None or not hasattr(entry[2], "value"):
        return
    token = copy.copy(entry[2])
    text = str(token.value)
    if not text.lstrip().startswith("#"):
        return
    body = text.lstrip()[1:].strip()
    was = _yaml_text(old)
    token.value = f"# was {was}: {body}\n" if body else f"# was {was}\n"
    items[key] = list(entry[:2]) + [token] + list(entry[3:])


def validate_trainfix(tree: Any, recipe_id: str) -> None:
    """Refuse a patched trainfix config that the schema rejects (FixError listing every problem)."""
    from trainfix.fixes.foreign import plain
    from trainfix.trainers.config import validate

    problems = validate(plain(tree))
    if problems:
        raise FixError(
            f"fix '{recipe_id}' would make the config invalid ({len(problems)} problem(s))",
            "edit the config by hand, or report this with the config attached",
            details=[str(p) for p in problems],
        )


def provenance_entry(recipe_id: str, finding: str | None) -> dict[str, Any]:
    from trainfix import __version__

    return {"id": recipe_id, "finding": finding or "manual", "trainfix_version": __version__}


def unified_diff(old_text: str, new_text: str, old_name: str, new_name: str) -> str:
    """The unified diff of two serialised configs ('' when equal)."""
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile=old_name, tofile=new_name,
    )
    out = []
    for line in lines:
        out.append(line if line.endswith("\n") else line + "\n")
    return "".join(out)


def _yaml_text(value: Any) -> str:
    """A value as it reads in YAML (``null``, ``true``, ``0.001``, ``[-1, 1]``), kept short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_yaml_text(v) for v in value) + "]"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _short(value: Any) -> str:
    text = repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, float):
        text = f"{value:.4g}"
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class DocumentPatch:
    """Several patches applied to one config document, ready to write."""

    tree: Any
    text: str  # the new file's text
    diff: str
    applied: list[tuple[Patch, ApplyResult]]
    provenance: list[dict[str, Any]]  # the document's whole provenance after this apply

    @property
    def changed(self) -> bool:
        return any(r.changed for _, r in self.applied)


def patch_document(doc: Any, patches: list[Patch], out_name: str | None = None) -> DocumentPatch:
    """Apply ``patches`` in order to ``doc`` (a :class:`~trainfix.fixes.foreign.ConfigDocument`);
    validate (trainfix configs), record provenance for each patch that changed something, and
    produce the new text and its diff against the input.  The document is not modified."""
    from trainfix.fixes.foreign import dump_document, record_provenance

    tree = doc.tree
    provenance = [dict(e) for e in doc.provenance]
    applied: list[tuple[Patch, ApplyResult]] = []
    new_entries: list[dict[str, Any]] = []
    for patch in patches:
        result = apply_patch(tree, patch, trainfix=doc.is_trainfix, provenance=provenance)
        applied.append((patch, result))
        tree = result.tree
        if result.changed:
            entry = provenance_entry(patch.recipe_id, patch.finding)
            provenance.append(entry)
            new_entries.append(entry)
    if new_entries:
        tree = record_provenance(doc, tree, new_entries)
    text = dump_document(doc, tree, new_entries) if new_entries else doc.text
    diff = unified_diff(doc.text, text, str(doc.path), out_name or str(doc.path))
    return DocumentPatch(tree, text, diff, applied, provenance)
