"""`trainfix list detectors|fixes`: every detector or fix with its one-line summary.

Listing reads each entry's source file with :mod:`ast` instead of importing it: it stays fast and
never imports torch or anything else a detector or recipe module might pull in.  Only when an
attribute is not a literal in the class body (inherited or computed) is the module imported.
"""

from __future__ import annotations

import ast
import difflib
import enum
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from trainfix.cli import common
from trainfix.cli.common import command
from trainfix.errors import UsageError

KINDS = ("detectors", "fixes")


@dataclass
class Entry:
    """What the listing and ``explain`` show about one detector or fix."""

    kind: str  # "detector" | "fix"
    name: str
    module: str  # dotted module path
    cls: str
    doc: str = ""
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        for line in self.doc.strip().splitlines():
            if line.strip():
                return line.strip()
        return ""


def tables() -> dict[str, tuple[str, dict[str, str]]]:
    """kind -> (package, table) for detectors and fixes (importing only the table modules)."""
    from trainfix.diagnostics.detectors import DETECTORS
    from trainfix.fixes.recipes import RECIPES

    return {"detectors": ("trainfix.diagnostics.detectors", DETECTORS),
            "fixes": ("trainfix.fixes.recipes", RECIPES)}


DETECTOR_ATTRS = {"name": "", "severity": "warning", "requires": (), "requires_any": (), "fixes": ()}
FIX_ATTRS = {"id": "", "resolves": (), "kind": "config"}


def entries(kind: str) -> list[Entry]:
    package, table = tables()[kind]
    wanted = DETECTOR_ATTRS if kind == "detectors" else FIX_ATTRS
    out = []
    for name, target in table.items():
        module_name, cls_name = target.split(":")
        e = Entry("detector" if kind == "detectors" else "fix", name, f"{package}.{module_name}", cls_name)
        try:
            _fill(e, wanted)
        except Exception as exc:  # a broken entry is shown as such, the listing goes on
            e.doc = f"(cannot load {target}: {type(exc).__name__}: {exc})"
            e.attrs = dict(wanted)
        out.append(e)
    return out


def find_entry(name: str) -> list[Entry]:
    """The detector and/or fix called ``name``; UsageError with did-you-mean when neither."""
    found = []
    names: list[str] = []
    for kind in KINDS:
        for e in entries(kind):
            names.append(e.name)
            if e.name == name:
                found.append(e)
    if not found:
        close = difflib.get_close_matches(name, names, n=3)
        hint = (f"did you mean {' or '.join(repr(c) for c in close)}?" if close
                else "see 'trainfix list detectors' and 'trainfix list fixes'")
        raise UsageError(f"no detector or fix named '{name}'", hint)
    return found


def _fill(e: Entry, wanted: dict[str, Any]) -> None:
    """Docstring and class attributes from the source file; import only for what is not literal."""
    static = _static(e)
    if static is not None:
        doc, attrs = static
        if doc and all(k in attrs for k in wanted):
            e.doc, e.attrs = doc, attrs
            return
    cls = getattr(importlib.import_module(e.module), e.cls)
    e.doc = cls.__doc__ or ""
    e.attrs = {k: _plain(getattr(cls, k, default)) for k, default in wanted.items()}


def _static(e: Entry) -> tuple[str, dict[str, Any]] | None:
    package, _, module = e.module.rpartition(".")
    try:
        pkg = importlib.import_module(package)
        path = Path(pkg.__file__).parent / f"{module}.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ImportError, TypeError):
        return None
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == e.cls:
            doc = ast.get_docstring(node) or ""
            attrs: dict[str, Any] = {}
            for stmt in node.body:
                targets = []
                if isinstance(stmt, ast.Assign):
                    targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
                elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
                    targets = [stmt.target.id]
                for t in targets:
                    if t == "__doc__" and isinstance(stmt.value, ast.Name) and stmt.value.id == "__doc__":
                        doc = ast.get_docstring(tree) or ""
                        continue
                    value = _literal(stmt.value)
                    if value is not _NOT_LITERAL:
                        attrs[t] = value
            return doc, attrs
    return None


_NOT_LITERAL = object()


def _literal(node: ast.AST | None) -> Any:
    if node is None:
        return _NOT_LITERAL
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Severity":
        return node.attr.lower()
    try:
        return _plain(ast.literal_eval(node))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value  # Severity
    if isinstance(value, list):
        return tuple(value)
    return value


def markdown_table(kind: str) -> str:
    """The README's table of ``kind`` ("detectors" or "fixes"), from the same entries the listing
    shows; ``tests/test_readme_tables.py`` checks the README against it, so the two cannot drift."""
    def codes(names: Any) -> str:
        return ", ".join(f"`{n}`" for n in names or ())

    if kind == "detectors":
        rows = ["| detector | default severity | what it catches | fixes, best first |", "| --- | --- | --- | --- |"]
        rows += [f"| `{e.name}` | {e.attrs.get('severity', '')} | {e.summary.replace('``', '`')} | "
                 f"{codes(e.attrs.get('fixes')) or '(none)'} |" for e in entries(kind)]
    else:
        rows = ["| fix | resolves | what it changes |", "| --- | --- | --- |"]
        rows += [f"| `{e.name}` | {codes(e.attrs.get('resolves'))} | {e.summary.replace('``', '`')} |" for e in entries(kind)]
    return "\n".join(rows)


@command
def list_command(
    what: Annotated[str, typer.Argument(help="detectors | fixes", metavar="detectors|fixes")],
) -> None:
    """List the detectors or the fixes: name, severity, summary, fixes (or the detectors a fix resolves)."""
    kind = what.strip().lower()
    kind = {"detector": "detectors", "fix": "fixes", "recipes": "fixes", "recipe": "fixes"}.get(kind, kind)
    if kind not in KINDS:
        close = difflib.get_close_matches(kind, KINDS, n=1)
        raise UsageError(f"cannot list '{what}'", f"did you mean '{close[0]}'?" if close
                         else "use 'trainfix list detectors' or 'trainfix list fixes'")
    items = entries(kind)
    table = Table.grid(padding=(0, 2))
    table.add_column(no_wrap=True, style="bold")
    table.add_column(no_wrap=True)
    table.add_column()
    for e in items:
        if kind == "detectors":
            second = str(e.attrs.get("severity", ""))
            related = "fixes: " + (", ".join(e.attrs.get("fixes", ()) or ()) or "-")
        else:
            second = str(e.attrs.get("kind", ""))
            related = "resolves: " + (", ".join(e.attrs.get("resolves", ()) or ()) or "-")
        text = Text(e.summary.replace("``", "`"))
        text.append("\n" + related, style="dim")
        table.add_row(Text(e.name), Text(second), text)
    console = common.out()
    console.print(table)
    console.print(f"\n{len(items)} {kind}; 'trainfix explain NAME' shows the documentation of one.",
                  style="dim", markup=False)
