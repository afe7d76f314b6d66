"""JSON logs: JSON lines (ours, detectron2, mmdetection, DETR-style ``log.txt``) and Hugging Face
``trainer_state.json``.

JSON lines, one object per line, in either shape:

* *long*: ``{"step": 120, "tag": "train/loss", "value": 0.41, "wall_time": ...}`` -- one point;
* *wide*: ``{"step": 120, "epoch": 3, "wall_time": ..., "train/loss_step": 0.41, "lr": 0.001}`` --
  every numeric key is a tag at that line's step.  The step is the first of ``step``,
  ``global_step``, ``iteration``, ``iter``, ``_step``, ``epoch`` present (DETR logs one object per
  epoch with only ``epoch``); ``epoch`` stays a tag too.  ``wall_time``/``timestamp`` fill the
  wall-time column.  Nested objects flatten to ``a/b``; short numeric lists (COCO stats) to
  ``name/0``, ``name/1``...; strings, booleans and nulls are ignored.
* *mmdetection* (``*.log.json``): lines carry ``mode`` (train/val) and an ``iter`` that restarts
  every epoch; the global step is rebuilt from the iterations per epoch, validation lines land on
  the last training step of their epoch, and their metrics get a ``val/`` prefix.

A line that is not JSON is counted as a corrupt record (the last line of a file still being
written is reported as truncated instead).  Non-UTF-8 bytes are replaced.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trainfix.diagnostics.ingest.safe_read import open_input
from trainfix.diagnostics.ingest.table import PointBuilder, Table

STEP_KEYS = ("step", "global_step", "iteration", "iter", "_step", "trainer/global_step", "epoch")
WALL_KEYS = ("wall_time", "timestamp", "_timestamp")
MAX_LIST = 32


def _numbers(obj: dict, prefix: str = "") -> list[tuple[str, float]]:
    """Numeric leaves of one JSON object as (tag, value)."""
    out: list[tuple[str, float]] = []
    for key, val in obj.items():
        tag = f"{prefix}{key}"
        if isinstance(val, bool) or val is None:
            continue
        if isinstance(val, (int, float)):
            out.append((tag, float(val)))
        elif isinstance(val, dict) and not prefix:
            out.extend(_numbers(val, tag + "/"))
        elif isinstance(val, list) and 0 < len(val) <= MAX_LIST and all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in val
        ):
            out.extend((f"{tag}/{i}", float(x)) for i, x in enumerate(val))
    return out


def _as_step(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None
    return int(value)


class _MMDetSteps:
    """Global steps for mmdetection logs, whose ``iter`` restarts every epoch."""

    def __init__(self) -> None:
        self.offset = 0
        self.epoch: Any = None
        self.last_iter = 0

    def train(self, epoch: Any, it: int) -> int:
        if epoch != self.epoch:
            if self.epoch is not None:
                self.offset += self.last_iter
            self.epoch = epoch
            self.last_iter = 0
        self.last_iter = max(self.last_iter, it)
        return self.offset + it

    def val(self) -> int:
        return self.offset + self.last_iter


_NUMBER_TYPES = (int, float)  # exact types: bool is not a number here, as in _numbers
#: Files up to this size may take the columnar path (it holds every parsed line at once).
FAST_PATH_MAX_BYTES = 256 << 20


def _flat(objs: list) -> bool:
    """Every object a dict whose values are all plain numbers (no text, bool, null, nesting)."""
    num = _NUMBER_TYPES
    return all(type(o) is dict for o in objs) and all(type(v) in num for o in objs for v in o.values())


def _columns(objs: list[dict], per_group) -> tuple:
    """The points of flat numeric objects, built one key at a time instead of one point at a time.

    Objects are grouped by their key tuple (train lines, eval lines, ...); ``per_group(keys, rows)``
    gives a group's steps and wall times (arrays over ``rows``) and the keys that are not tags (the
    step key, wall-time keys).  Points come out grouped by tag, each tag in file order -- what the
    assembly makes of the point-by-point order too.  Returns (tags, codes, steps, values, walls).
    """
    import numpy as np

    groups: dict[tuple, list[int]] = {}
    for i, o in enumerate(objs):
        groups.setdefault(tuple(o), []).append(i)
    tag_index: dict[str, int] = {}
    parts = []
    for keys, rows in groups.items():
        steps, walls, drop = per_group(keys, rows)
        idx = np.asarray(rows, dtype=np.int64)
        for k in keys:
            if k in drop:
                continue
            code = tag_index.setdefault(k, len(tag_index))
            vals = np.fromiter([objs[i][k] for i in rows], dtype=np.float64, count=len(rows))
            parts.append((np.full(len(rows), code, dtype=np.int32), idx, steps, vals, walls))
    if not parts:
        return [], np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    cols = [np.concatenate([p[j] for p in parts]) for j in range(5)]
    order = np.lexsort((cols[1], cols[0]))
    return list(tag_index), cols[0][order], cols[2][order], cols[3][order], cols[4][order]


def _steps_of(values: list, fallback) -> tuple[list[int], bool]:
    """``_as_step`` of each value (``fallback(i)`` where it gives None); whether any did."""
    if all(type(v) is int for v in values):
        return values, False
    out, missing = [], False
    for i, v in enumerate(values):
        step = _as_step(v)
        if step is None:
            missing = True
            step = fallback(i)
        out.append(step)
    return out, missing


_ASCII_SPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips


def _read_jsonl_columns(path: Path, source: str) -> Table | None:
    """The columnar path for the common file: every line one flat object of numbers (trainfix's
    ``metrics.jsonl``, most trainers' wide logs).  None when any line is not (text values, nested
    objects, long form, mmdetection, a bad or truncated line): then the careful path reads it.

    Lines are cut and stripped as the careful path cuts them, and each is parsed with the JSON
    module's own C scanner, which is what ``json.loads`` runs minus its per-call overhead.
    """
    import json.scanner

    import numpy as np

    from trainfix.diagnostics.ingest.safe_read import current_budget

    with open_input(path) as fh:
        if fh.seek(0, 2) > FAST_PATH_MAX_BYTES:
            return None
        fh.seek(0)
        data = fh.read()
    if not data.endswith(b"\n") or b"\r" in data:
        return None  # a last line still being written, or \r line ends: the careful path
    max_line = current_budget().max_line
    if len(data) >= max_line and any(len(ln) >= max_line for ln in data.split(b"\n")):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    del data
    scan = json.scanner.make_scanner(json.JSONDecoder())
    objs = []
    try:
        for raw in text.split("\n"):
            line = raw.strip(_ASCII_SPACE)
            if not line:
                continue
            obj, end = scan(line, 0)
            if end != len(line):
                return None  # "extra data" for json.loads
            objs.append(obj)
    except (StopIteration, ValueError):
        return None
    del text
    if not objs or not _flat(objs):
        return None
    fractional = False

    def per_group(keys: tuple, rows: list[int]):
        nonlocal fractional
        sk = next((k for k in STEP_KEYS if k in keys), None)
        if sk is None:
            steps = [i + 1 for i in rows]  # the line number (every line is an object here)
        else:
            steps, missing = _steps_of([objs[i][sk] for i in rows], lambda j: rows[j] + 1)
            fractional |= missing
        wk = next((k for k in WALL_KEYS if k in keys), None)
        walls = (np.fromiter([objs[i][wk] for i in rows], np.float64, len(rows)) if wk is not None
                 else np.full(len(rows), np.nan))
        drop = set(WALL_KEYS) | ({sk} if sk is not None and sk != "epoch" else set())
        return np.asarray(steps, dtype=np.int64), walls, drop

    tags, codes, st, vals, wt = _columns(objs, per_group)
    notes = ["fractional or missing steps: line number used as step"] if fractional else []
    return Table(source, "jsonl", source, tags, codes, st, vals, wt, notes=notes)


def read_jsonl(path: Path, source: str, *, careful_only: bool = False) -> Table:
    """Read one JSON-lines log: the columnar path when every line is a flat object of numbers,
    else line by line (``careful_only`` forces that; the tests compare both)."""
    if not careful_only:
        fast = _read_jsonl_columns(path, source)
        if fast is not None:
            return fast
    points = PointBuilder()
    corrupt = 0
    truncated = False
    notes: list[str] = []
    mmdet = _MMDetSteps()
    fractional = False
    line_no = 0
    with open_input(path) as fh:  # regular files only, budgeted, bounded lines
        pending: bytes | None = None
        for raw in fh:
            if pending is not None:
                corrupt += 1  # a bad line that was not the last one
                pending = None
            line = raw.strip()
            if not line:
                continue
            line_no += 1
            try:
                obj = json.loads(line.decode("utf-8", "replace"))
            except (ValueError, RecursionError):  # not JSON, a 5,000-digit number, nested too deep
                pending = raw
                continue
            if not isinstance(obj, dict):
                continue
            wall = next((float(obj[k]) for k in WALL_KEYS if isinstance(obj.get(k), (int, float))), math.nan)
            # long form
            if isinstance(obj.get("tag"), str) and "value" in obj:
                step = _as_step(obj.get("step"))
                val = obj["value"]
                if isinstance(val, (int, float)) and not isinstance(val, bool):
                    points.add(obj["tag"], step if step is not None else line_no, float(val), wall)
                continue
            mode = obj.get("mode")
            if isinstance(mode, str) and mode in ("train", "val", "test"):
                epoch = obj.get("epoch")
                it = _as_step(obj.get("iter")) or 0
                step = mmdet.train(epoch, it) if mode == "train" else mmdet.val()
                prefix = "" if mode == "train" else f"{mode}/"
                for tag, val in _numbers(obj):
                    if tag in ("iter", "epoch") and mode != "train":
                        continue
                    if tag == "iter":
                        continue
                    points.add(prefix + tag if tag != "epoch" else tag, step, val, wall)
                continue
            if "env_info" in obj or ("config" in obj and isinstance(obj.get("config"), str)):
                continue  # mmdetection's header line
            step_key = next((k for k in STEP_KEYS if k in obj), None)
            step = _as_step(obj[step_key]) if step_key else None
            if step is None:
                if step_key is not None:
                    fractional = True
                step = line_no
            for tag, val in _numbers(obj):
                if tag in WALL_KEYS or (tag == step_key and tag != "epoch"):
                    continue
                points.add(tag, step, val, wall)
    if pending is not None:
        if pending.endswith(b"\n"):
            corrupt += 1
        else:
            truncated = True
            notes.append("last line incomplete (file still being written?): ignored")
    if corrupt:
        notes.append(f"{corrupt} line(s) that are not JSON skipped")
    if fractional:
        notes.append("fractional or missing steps: line number used as step")
    return points.table(source, "jsonl", corrupt_records=corrupt, truncated=truncated, notes=notes)


def read_trainer_state(path: Path, source: str, *, careful_only: bool = False) -> tuple[Table, dict]:
    """Hugging Face ``trainer_state.json``: ``log_history`` entries (train and eval mixed) become
    points at their ``step``; the other top-level fields are returned as config.  Entries that are
    all flat objects of numbers take the columnar path (``careful_only``: entry by entry)."""
    with open_input(path) as fh:
        state = json.loads(fh.read().decode("utf-8", "replace"))
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise ValueError("not a trainer_state.json (no log_history list)")
    config = {k: v for k, v in state.items() if k not in ("log_history", "stateful_callbacks", "trial_params")}
    history = state["log_history"]
    if not careful_only and history and _flat(history):
        import numpy as np

        steps, last_step = [], 0
        for entry in history:
            step = _as_step(entry.get("step"))
            last_step = step = last_step if step is None else step
            steps.append(step)
        all_steps = np.asarray(steps, dtype=np.int64)

        def per_group(keys: tuple, rows: list[int]):
            return all_steps[rows], np.full(len(rows), np.nan), {"step"}

        tags, codes, st, vals, wt = _columns(history, per_group)
        return Table(source, "trainer_state", source, tags, codes, st, vals, wt), {"trainer_state": config}
    points = PointBuilder()
    last_step = 0
    for entry in state["log_history"]:
        if not isinstance(entry, dict):
            continue
        step = _as_step(entry.get("step"))
        if step is None:  # predict/test entries carry no step: they belong where training was
            step = last_step
        last_step = step
        for tag, val in _numbers(entry):
            if tag == "step":
                continue
            points.add(tag, step, val)
    return points.table(source, "trainer_state"), {"trainer_state": config}
