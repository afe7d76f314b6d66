"""Config files as documents: read, edit and write them back without disturbing the rest.

A fix must change the few keys it means to change and nothing else: key order, comments, quoting
and indentation of the user's file stay as they were, so that the unified diff shows exactly the
fix.  YAML goes through ruamel.yaml's round-trip mode (it keeps comments and order; it only builds
plain maps, lists and scalars, never Python objects, so it is as safe as a safe loader); JSON keeps
its key order and the indent it was written with.

Which kind of config a file is decides how fixes edit it (:func:`detect_flavor`):

- ``trainfix``: our own run config (``run/data/model/loss/optimizer/training`` sections); fixes
  edit canonical paths, the result is validated against the schema, and provenance is recorded
  in its ``applied_fixes`` key.
- ``hf-training-args``: a Hugging Face ``TrainingArguments`` JSON (``learning_rate``,
  ``per_device_train_batch_size``, ``max_grad_norm``, ``warmup_ratio``, ...).
- ``lightning-hparams``: a Lightning ``hparams.yaml``.
- ``yaml`` / ``json``: any other config.

Foreign configs get no new keys they might reject (``TrainingArguments`` refuses unknown keys):
provenance goes into a header comment for YAML and into a sidecar ``<file>.applied_fixes.json``
for JSON.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainfix import values
from trainfix.errors import InputError

HF_MARKERS = {"per_device_train_batch_size", "learning_rate", "output_dir"}
PROVENANCE_PREFIX = "trainfix-applied:"


@dataclass
class ConfigDocument:
    """One config file, read: its parsed tree plus what is needed to write it back alike."""

    path: Path
    fmt: str  # "yaml" | "json"
    flavor: str  # "trainfix" | "hf-training-args" | "lightning-hparams" | "yaml" | "json"
    tree: Any
    text: str
    json_indent: int | None = 2
    yaml_indent: tuple[int, int, int] = (2, 4, 2)  # mapping, sequence, offset
    provenance: list[dict[str, Any]] = field(default_factory=list)

    @property
    def is_trainfix(self) -> bool:
        return self.flavor == "trainfix"


# --------------------------------------------------------------------------- YAML round trip


def _yaml(indent: tuple[int, int, int] = (2, 4, 2)):
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    mapping, sequence, offset = indent
    y.indent(mapping=mapping, sequence=sequence, offset=offset)
    y.representer.add_representer(float, _represent_float)
    y.representer.add_representer(type(None), _represent_none)
    return y


def _represent_none(representer, data: None):
    """``null`` spelled out (ruamel's round-trip default writes an empty value)."""
    return representer.represent_scalar("tag:yaml.org,2002:null", "null")


def _represent_float(representer, data: float):
    """Floats that every YAML reader parses as floats: ``3.0e-05``, never ``3e-05`` (YAML 1.1
    readers such as PyYAML read an exponent without a dot as a string)."""
    if data != data:
        text = ".nan"
    elif data in (float("inf"), float("-inf")):
        text = ".inf" if data > 0 else "-.inf"
    else:
        text = repr(float(data)).lower()
        mantissa, _, exponent = text.partition("e")
        if exponent and "." not in mantissa:
            text = f"{mantissa}.0e{exponent}"
    return representer.represent_scalar("tag:yaml.org,2002:float", text)


def guess_yaml_indent(text: str) -> tuple[int, int, int]:
    """(mapping indent, sequence indent, dash offset) as the file was written."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    mapping = None
    offset = None
    for prev, cur in zip(lines, lines[1:]):
        if not prev.rstrip().endswith(":"):
            continue
        p_ind = len(prev) - len(prev.lstrip(" "))
        c_ind = len(cur) - len(cur.lstrip(" "))
        if cur.lstrip().startswith("- "):
            if offset is None and c_ind >= p_ind:
                offset = c_ind - p_ind
        elif c_ind > p_ind and mapping is None:
            mapping = c_ind - p_ind
        if mapping is not None and offset is not None:
            break
    mapping = mapping or 2
    offset = mapping if offset is None else offset
    return mapping, offset + 2, offset


# --------------------------------------------------------------------------- reading


def looks_trainfix(tree: Any) -> bool:
    """A trainfix run config (:func:`trainfix.values.is_trainfix_config`)."""
    return values.is_trainfix_config(tree)


def detect_flavor(tree: Any, path: Path, fmt: str) -> str:
    """Which kind of config this is (see module docstring)."""
    if looks_trainfix(tree):
        return "trainfix"
    if isinstance(tree, dict):
        keys = {str(k) for k in tree}
        if fmt == "json" and HF_MARKERS <= keys:
            return "hf-training-args"
    if fmt == "yaml" and path.name == "hparams.yaml":
        return "lightning-hparams"
    return fmt


def load_document(path: str | os.PathLike) -> ConfigDocument:
    """Read a YAML or JSON config for editing (InputError when missing or unparsable)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no config file at {p}", "give a run directory, a .yaml/.json config or a checkpoint")
    from trainfix.diagnostics.ingest.configs import MAX_CONFIG_BYTES
    from trainfix.diagnostics.ingest.safe_read import check_tree, describe_failure, read_bytes

    try:
        text = read_bytes(p, MAX_CONFIG_BYTES).decode("utf-8")  # regular files only, bounded
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {p}: {describe_failure(exc)}", "check the file's permissions and encoding") from None
    fmt = "json" if p.suffix.lower() == ".json" else "yaml"
    if fmt == "json":
        try:
            tree = json.loads(text)
        except (ValueError, RecursionError) as exc:  # not JSON, a 5,000-digit number, 100,000 levels deep
            raise InputError(f"{p} is not valid JSON: {describe_failure(exc) if not isinstance(exc, json.JSONDecodeError) else exc}",
                             "fix the file or pass another config") from None
        doc = ConfigDocument(p, fmt, detect_flavor(tree, p, fmt), tree, text, json_indent=_json_indent(text))
        doc.provenance = _read_sidecar(p)
    else:
        indent = guess_yaml_indent(text)
        try:
            tree = _yaml(indent).load(text)
        except Exception as exc:  # ruamel raises several unrelated error types
            first = describe_failure(exc) if isinstance(exc, RecursionError) else (
                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            raise InputError(f"{p} is not valid YAML: {first}", "fix the file or pass another config") from None
        if tree is None:
            tree = {}
        doc = ConfigDocument(p, fmt, detect_flavor(tree, p, fmt), tree, text, yaml_indent=indent)
        if doc.is_trainfix:
            doc.provenance = [dict(x) for x in (tree.get("applied_fixes") or []) if isinstance(x, dict)]
        else:
            doc.provenance = _read_yaml_comment_provenance(text)
    if not isinstance(doc.tree, dict):
        raise InputError(f"{p} holds a {type(doc.tree).__name__}, not a mapping of settings",
                         "a config must be a YAML/JSON mapping at its top level")
    try:
        check_tree(doc.tree)  # a YAML alias bomb is small on disk and endless to walk, diff or write
    except ValueError as exc:
        raise InputError(f"{p} cannot be edited: {exc}", "pass a config without repeated aliases") from None
    return doc


def _json_indent(text: str) -> int | None:
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and len(stripped) < len(line):
            return len(line) - len(stripped)
    return None if "\n" not in text.strip() else 2


# --------------------------------------------------------------------------- writing


def dump_document(doc: ConfigDocument, tree: Any, new_provenance: list[dict[str, Any]] | None = None) -> str:
    """Serialise ``tree`` the way ``doc`` was written.

    YAML is rewritten one top-level key at a time: a key whose value did not change keeps its
    original text byte for byte (flow style, line wrapping, comments); a changed or new key is
    serialised by ruamel (a changed flow mapping becomes block style, one setting per line, so the
    diff shows the changed setting).  Foreign YAML gets ``new_provenance`` as header comments.
    """
    if doc.fmt == "json":
        text = json.dumps(plain(tree), indent=doc.json_indent, ensure_ascii=False)
        return text + ("\n" if doc.text.endswith("\n") or not doc.text else "")
    comments = []
    if new_provenance and not doc.is_trainfix:
        comments = [f"# {PROVENANCE_PREFIX} {json.dumps(e, sort_keys=True)}\n" for e in new_provenance]
    try:
        return _dump_yaml_by_key(doc, tree, comments)
    except Exception:  # an unusual layout: fall back to one full round-trip dump
        buf = io.StringIO()
        _yaml(doc.yaml_indent).dump(tree, buf)
        return "".join(comments) + buf.getvalue()


def _dump_yaml_by_key(doc: ConfigDocument, tree: Any, header_extra: list[str]) -> str:
    from ruamel.yaml.comments import CommentedMap

    from trainfix.fixes.patch import same_value

    orig = doc.tree
    lines = doc.text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    keys = list(orig.keys()) if isinstance(orig, CommentedMap) else []
    if not keys:
        buf = io.StringIO()
        _yaml(doc.yaml_indent).dump(tree, buf)
        return "".join(header_extra) + buf.getvalue()
    starts = [orig.lc.key(k)[0] for k in keys]
    if any(b <= a for a, b in zip(starts, starts[1:])) or any(orig.lc.key(k)[1] != 0 for k in keys):
        raise ValueError("top-level keys out of order")
    chunks = {k: lines[starts[i]: (starts[i + 1] if i + 1 < len(keys) else len(lines))] for i, k in enumerate(keys)}
    header = lines[: starts[0]]
    out = list(header) + list(header_extra)
    for key in tree:
        if key in chunks and same_value(orig[key], tree[key]):
            out += chunks[key]
            continue
        value = tree[key]
        if hasattr(value, "fa") and key in chunks:
            value.fa.set_block_style()
        single = CommentedMap()
        single[key] = value
        # the comment as the patch left it (``# was 0.5: ...`` after a changed value), else the original
        for source in (getattr(tree, "ca", None), orig.ca):
            if source is not None and key in getattr(source, "items", {}):
                single.ca.items[key] = source.items[key]
                break
        buf = io.StringIO()
        _yaml(doc.yaml_indent).dump(single, buf)
        text = buf.getvalue()
        out.append(text if text.endswith("\n") else text + "\n")
    return "".join(out)


def plain(tree: Any) -> Any:
    """A deep copy made of built-in dicts, lists and scalars (round-trip types dropped)."""
    if isinstance(tree, dict):
        return {str(k): plain(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [plain(v) for v in tree]
    if isinstance(tree, bool) or tree is None:
        return tree
    if isinstance(tree, int):
        return int(tree)
    if isinstance(tree, float):
        return float(tree)
    if isinstance(tree, str):
        return str(tree)
    return copy.deepcopy(tree)


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through the one atomic writer (:mod:`trainfix.outputs`): never over
    an input, the usual file mode, OutputError naming the path and the cause when it cannot."""
    from trainfix.outputs import write_text

    return write_text(path, text)


def record_provenance(doc: ConfigDocument, tree: Any, entries: list[dict[str, Any]]) -> Any:
    """Add ``entries`` to the provenance that travels with ``tree`` (see module docstring).

    trainfix configs get them in ``applied_fixes`` (here); foreign YAML in header comment lines
    (written by :func:`dump_document`); foreign JSON in the sidecar written by
    :func:`write_document`.  Returns the tree.
    """
    if not entries:
        return tree
    if doc.is_trainfix:
        existing = tree.get("applied_fixes")
        if not isinstance(existing, list):
            existing = []
        tree["applied_fixes"] = list(existing) + [dict(e) for e in entries]
    return tree


_COMMENT_RE = re.compile(r"^#\s*" + re.escape(PROVENANCE_PREFIX) + r"\s*(\{.*\})\s*$")


def _read_yaml_comment_provenance(text: str) -> list[dict[str, Any]]:
    found = []
    for line in text.splitlines():
        m = _COMMENT_RE.match(line.strip())
        if m:
            try:
                entry = json.loads(m.group(1))
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                found.append(entry)
    return found


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".applied_fixes.json")


def _read_sidecar(path: Path) -> list[dict[str, Any]]:
    side = sidecar_path(path)
    if not side.is_file():
        return []
    try:
        from trainfix.diagnostics.ingest.safe_read import read_bytes

        data = json.loads(read_bytes(side, 1 << 20).decode("utf-8", "replace"))
    except (OSError, ValueError, RecursionError):
        return []
    return [e for e in data.get("applied_fixes", []) if isinstance(e, dict)] if isinstance(data, dict) else []


def write_document(doc: ConfigDocument, text: str, out: Path, provenance: list[dict[str, Any]]) -> Path:
    """Write the patched config's ``text`` to ``out`` (atomically) plus, for foreign JSON, the
    sidecar holding its whole ``provenance``."""
    write_atomic(out, text)
    if doc.fmt == "json" and not doc.is_trainfix and provenance:
        write_atomic(sidecar_path(out), json.dumps({"source": str(doc.path), "applied_fixes": provenance}, indent=2) + "\n")
    return out


# --------------------------------------------------------------------------- where configs are

def find_config(run_dir: str | os.PathLike) -> Path:
    """The training config of a run directory: the file ``diagnose`` reads as its config and that
    ``trainfix apply RUN_DIR`` edits (see
    :func:`trainfix.diagnostics.ingest.configs.pick_training_config`), looked for with the same
    discovery as ``diagnose`` (Lightning's ``name/version_N/hparams.yaml`` included; metrics files,
    ``training_args.bin`` and apply's own outputs are never configs).  InputError when there is
    none or it is ambiguous; the hint says to pass the file with ``--train-config``."""
    from trainfix.diagnostics.ingest.configs import pick_training_config, training_config_candidates
    from trainfix.diagnostics.ingest.discover import scan

    root = Path(run_dir)
    found = scan(root).configs
    chosen = pick_training_config(root, found)
    if chosen is not None:
        return chosen
    candidates = training_config_candidates(found)
    if not candidates:
        raise InputError(f"no config file (YAML or JSON) in {root}",
                         f"pass your training config: trainfix apply {root} --train-config path/to/config.yaml --fix ID")
    listed = ", ".join(str(p.relative_to(root)) for p in candidates[:6])
    raise InputError(f"{len(candidates)} config files in {root} ({listed}); which one did the run use?",
                     f"pass it: trainfix apply {root} --train-config {candidates[0]} --fix ID")


_FIXED_STEM = re.compile(r"^(?P<base>.+?)\.fixed(?:-(?P<n>\d+))?$")


def is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` or below it (after resolving links)."""
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


def default_output(path: Path, out: str | os.PathLike | None = None, *, run_dir: Path | None = None) -> Path:
    """Where the patched config goes; never the input itself, never inside the run it fixes.

    - ``out``: that file, or ``<name>.fixed<ext>`` in that directory.
    - A config inside ``run_dir`` (``run/config.yaml``, ``run/lightning_logs/version_0/hparams.yaml``):
      ``<run>.<name>.fixed<ext>`` beside the run dir, so that the next diagnosis of the run does
      not read the patched copy as the run's own config.
    - Otherwise ``<name>.fixed<ext>`` next to the input.
    - An input that is itself a patched copy (``x.fixed.yaml``: fixes stacking on a fixed config)
      gets the next free ``x.fixed-N.yaml``.

    Whether the target already exists is the caller's decision (``apply`` refuses without --force).
    """
    path = Path(path)
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    m = _FIXED_STEM.match(stem)
    base = m.group("base") if m else stem
    stacking = m is not None
    name = f"{base}.fixed{path.suffix}"
    if out is not None:
        o = Path(out)
        target = o / name if (o.is_dir() or str(out).endswith(os.sep)) else o
    else:
        folder = path.parent
        if run_dir is not None and is_within(path, run_dir) and not stacking:
            rd = Path(run_dir).resolve()
            folder, base = rd.parent, f"{rd.name}.{base}"
            name = f"{base}.fixed{path.suffix}"
        target = folder / name
        n = 2
        while target.resolve() == path.resolve() or (stacking and target.exists()):
            target = folder / f"{base}.fixed-{n}{path.suffix}"
            n += 1
    if target.resolve() == path.resolve():
        raise InputError(f"refusing to overwrite the input {path}", "trainfix apply writes a new file: pick another -o/--output")
    return target
