"""`trainfix explain NAME`: the documentation of a detector or a fix, from its docstring.

The docstring's numpy-style sections (a heading underlined with dashes) become Markdown headings,
``literal`` spans become code, ``::`` literal blocks become code blocks, and the numpy parameter
list becomes a bullet list; rich renders the result.  A detector's current defaults (its
``Params``) and the ways to override them follow the text.  A name that is both a detector and a
fix shows both.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.rule import Rule
from rich.text import Text

from trainfix.cli.common import command
from trainfix.cli.listing import Entry, find_entry

_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def doc_to_markdown(doc: str) -> str:
    """A numpy/RST-style docstring (summary line + underlined sections) as Markdown."""
    lines = _dedent(doc).splitlines()
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(nxt):
            section = line.strip()
            out += ["", f"## {section}", ""]
            i += 2
            continue
        if line.rstrip().endswith("::"):
            head = line.rstrip()[:-2].rstrip()
            if head:
                out.append(_inline(head) + ":")
            block, i = _literal_block(lines, i + 1)
            lang = "diff" if "diff" in section.lower() else ""
            out += ["", f"```{lang}", *block, "```", ""]
            continue
        if section.lower() == "parameters" and line.strip() and not line.startswith((" ", "\t")):
            out.append(f"- **{line.strip()}**:")
            i += 1
            while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
                if lines[i].strip():
                    out[-1] += " " + _inline(lines[i].strip())
                elif i + 1 < len(lines) and not lines[i + 1].startswith((" ", "\t")):
                    break
                i += 1
            continue
        out.append(_inline(line))
        i += 1
    text = "\n".join(out).strip()
    first, _, rest = text.partition("\n")
    return f"**{first.strip()}**\n{rest}" if first else text


def _dedent(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc or "")


def _inline(text: str) -> str:
    return text.replace("``", "`")


def _literal_block(lines: list[str], i: int) -> tuple[list[str], int]:
    """The indented block after a ``::`` line, dedented; returns it and the next line index."""
    while i < len(lines) and not lines[i].strip():
        i += 1
    block: list[str] = []
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith((" ", "\t"))):
        block.append(lines[i])
        i += 1
    while block and not block[-1].strip():
        block.pop()
    indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
    return [b[indent:] for b in block], i


def params_markdown(name: str, module: str, cls_name: str) -> str:
    """The detector's current defaults and how to override them (imports the detector)."""
    cls = getattr(importlib.import_module(module), cls_name)
    params = getattr(cls, "Params", None)
    if params is None or not dataclasses.is_dataclass(params):
        return ""
    fields = [f for f in dataclasses.fields(params) if f.init]
    if not fields:
        return f"`{name}` has no parameters."
    defaults = params()
    rows = [f"- `{f.name}` = `{getattr(defaults, f.name)!r}`" for f in fields]
    example = fields[0].name
    return ("## Defaults\n\n" + "\n".join(rows) + "\n\n"
            f"Override with `--param {name}.{example}=VALUE` or in `pyproject.toml`:\n\n"
            f"```toml\n[tool.trainfix.detectors.{name}]\n{example} = {_toml(getattr(defaults, example))}\n```")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if value is None:
        return '"none"'
    return '"' + str(value).replace('"', '\\"') + '"'


def header(e: Entry) -> Text:
    t = Text()
    t.append(e.name, style="bold")
    a = e.attrs
    if e.kind == "detector":
        t.append(f"  detector · default severity {a.get('severity', '')}", style="dim")
        req = list(a.get("requires", ()) or ())
        if a.get("requires_any"):
            req.append("one of " + " / ".join(a["requires_any"]))
        if req:
            t.append(f" · needs {', '.join(req)}", style="dim")
        if a.get("fixes"):
            t.append(f" · fixes: {', '.join(a['fixes'])}", style="dim")
    else:
        t.append(f"  fix ({a.get('kind', 'config')})", style="dim")
        if a.get("resolves"):
            t.append(f" · resolves: {', '.join(a['resolves'])}", style="dim")
    return t


@command
def explain_command(
    name: Annotated[str, typer.Argument(help="A detector name or a fix id (see 'trainfix list').", metavar="NAME")],
) -> None:
    """Show the documentation of a detector or a fix."""
    console = Console(file=sys.stdout, highlight=False)  # wraps to the terminal, unlike out()
    for n, e in enumerate(find_entry(name.strip())):
        if n:
            console.print(Rule())
        console.print(header(e))
        console.print()
        console.print(Markdown(doc_to_markdown(e.doc)))
        if e.kind == "detector":
            extra = params_markdown(e.name, e.module, e.cls)
            if extra:
                console.print()
                console.print(Markdown(extra))
