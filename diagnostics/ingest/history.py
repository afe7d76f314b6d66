"""Training histories saved as one JSON object of per-epoch lists: Keras' ``History.history`` dumped
with ``json.dump`` (``{"loss": [...], "val_loss": [...], "accuracy": [...]}``) and the hand-rolled
``history.json`` / ``training_history.json`` files of plain PyTorch scripts
(``{"train_loss": [...], "val_acc": [...], "lr": [...]}``), optionally under a ``"history"`` key.

Each key whose value is a list of numbers is a tag; the list index is the step (the epoch count
from 0, as Keras numbers epochs in its CSV log), unless an ``epoch``/``epochs`` or ``step`` list of
the same length gives the steps.  ``null`` entries (a metric not computed that epoch) are
skipped; ``NaN``/``Infinity`` (Python's ``json`` writes them) are kept as values.  Keys holding
anything else (strings, nested objects, per-class lists of lists) are ignored.

Only files whose name says they are a history (``*history*.json``), whose content has that shape
and one of whose lists is named as a metric (``loss``, ``acc``, ``f1``, ...) are read this way
(:func:`looks_like_history`); any other JSON (``{"layers": [64, 128]}``) is a config.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from trainfix.diagnostics.ingest.safe_read import read_bytes
from trainfix.diagnostics.ingest.table import PointBuilder, Table

MAX_BYTES = 20_000_000
STEP_KEYS = ("epoch", "epochs", "step", "steps")
_METRIC_NAME = re.compile(r"loss|acc|auc|f1|iou|dice|mae|mse|rmse|err|\blr\b|learning_rate|precision|recall|score|"
                          r"perplexity|ppl|bleu|rouge|wer", re.I)


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _series(data: dict) -> dict[str, list]:
    """The keys of ``data`` that hold lists of numbers (``None`` allowed)."""
    out = {}
    for key, value in data.items():
        if isinstance(value, list) and len(value) >= 1 and all(v is None or _number(v) for v in value) \
                and any(_number(v) for v in value):
            out[str(key)] = value
    return out


def _history_dict(doc: object) -> dict | None:
    if isinstance(doc, dict) and isinstance(doc.get("history"), dict):
        doc = doc["history"]
    return doc if isinstance(doc, dict) else None


def looks_like_history(path: Path) -> bool:
    """A ``*history*.json`` file holding at least one list of numbers per metric name."""
    if "hist" not in path.name.lower() or not path.is_file():
        return False
    try:
        doc = json.loads(read_bytes(path, MAX_BYTES).decode("utf-8", "replace"))  # regular files only
    except (OSError, ValueError, RecursionError):  # a sniff never fails: too large, a FIFO, not JSON
        return False
    data = _history_dict(doc)
    return bool(data) and any(_METRIC_NAME.search(k) for k in _series(data))


def read_history(path: Path, source: str) -> Table:
    if path.stat().st_size > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // 1_000_000} MB")
    data = _history_dict(json.loads(read_bytes(path, MAX_BYTES).decode("utf-8", "replace")))
    if data is None:
        raise ValueError("not a JSON object")
    series = _series(data)
    steps_key = next((k for k in STEP_KEYS if k in series), None)
    points = PointBuilder()
    for key, values in series.items():
        if key == steps_key:
            continue
        steps = series[steps_key] if steps_key and len(series[steps_key]) == len(values) else None
        for i, v in enumerate(values):
            if v is None:
                continue
            s = steps[i] if steps is not None and steps[i] is not None and math.isfinite(steps[i]) else i
            points.add(key, int(s), float(v))
    return points.table(source, "history")
