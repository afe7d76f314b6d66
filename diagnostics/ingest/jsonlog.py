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


def read_jsonl(path: Path, source: str) -> Table:
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
            except ValueError:
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


def read_trainer_state(path: Path, source: str) -> tuple[Table, dict]:
    """Hugging Face ``trainer_state.json``: ``log_history`` entries (train and eval mixed) become
    points at their ``step``; the other top-level fields are returned as config."""
    with open_input(path) as fh:
        state = json.loads(fh.read().decode("utf-8", "replace"))
    if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
        raise ValueError("not a trainer_state.json (no log_history list)")
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
    config = {k: v for k, v in state.items() if k not in ("log_history", "stateful_callbacks", "trial_params")}
    return points.table(source, "trainer_state"), {"trainer_state": config}
