"""Plain stdout/stderr text logs: metric lines among everything else a training script prints.

Streams the file line by line (a 100 MB log never sits in memory), splitting on ``\\n`` and ``\\r``
(progress bars redraw with ``\\r``); bytes that are not UTF-8 are replaced.  Understood:

* ``key: value`` and ``key=value`` pairs, separated by ``|``, ``,``, ``;``, `` - `` or spaces, with
  multi-word keys (``Train Loss: 0.41 | Val Acc: 85.91%``) and any script (``训练损失: 4.61``);
* Keras progress output: an ``Epoch 3/50`` line, then ``... - loss: 0.41 - val_accuracy: 0.85``;
  lines still showing ``ETA`` are running averages inside an epoch and are skipped;
* step indicators: ``Epoch 12/60``, ``epoch 3``, ``step 120``, ``iter 10``, ``Batch: 920/1330``
  (with its epoch: global step = epochs done x batches per epoch + batch).

A phase word right before a line's first pair (``Epoch 3 Validation - Loss: 0.41``, ``- Eval
metrics: accuracy: 0.72``) prefixes that line's keys (``Validation Loss``), so training and
validation lines printing the same keys stay two series.

Values with ``%`` become fractions (85.91% -> 0.8591) and the unit is recorded per tag.  A value
must end at a separator: ``timer: 0.35 sec.`` or ``Time: 266.5s`` are not metrics.  A line is a
metric line only when it has a step indicator or a key that names a metric (loss, acc, lr, ...);
argument dumps (``Namespace(lr=0.1, ...)``) are ignored.

Steps: an explicit step/iteration wins; else batch-in-epoch; else the epoch (when the file also
has batch-level lines, the epoch's last global step); else the count of metric lines so far.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainfix.diagnostics.ingest.safe_read import open_input
from trainfix.diagnostics.ingest.table import PointBuilder, Table

_NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)"
_WORD = r"(?:[^\W\d]|\()[\w./()\[\]\-]*+"  # possessive: no backtracking inside a word
_KEY = rf"{_WORD}(?: {_WORD}){{0,3}}"
# A value right after ":" or "=", then what may follow it (a separator, the end, another key).
_VALUE = re.compile(rf"[:=][ \t]*(?P<val>{_NUM})(?P<pct>[ \t]*%)?")
_AFTER = re.compile(rf"\s*$|\s*[|,;]|\s+-\s|\s+{_KEY}\s*[:=]|\s*\)|\s*\}}")
# The key: the words just before the ":"/"=", starting at a word boundary.
_KEY_END = re.compile(rf"(?<![\w./()\-])(?P<key>{_KEY})[ \t]*$")
_EPOCH = re.compile(r"\bepoch\b\s*[:=#]?\s*\[?\s*(\d+)(?:\s*/\s*(\d+))?", re.I)
_STEP = re.compile(r"\b(?:global[_ ]step|step|iteration|iter)\b\s*[:=#]?\s*\[?\s*(\d+)(?:\s*/\s*(\d+))?", re.I)
_BATCH = re.compile(r"\bbatch\b\s*[:=#]?\s*\[?\s*(\d+)\s*/\s*(\d+)", re.I)
_METRIC_WORD = re.compile(
    r"loss|acc|accuracy|\blr\b|learning[_ ]?rate|auc|f1|map|precision|recall|iou|dice|error|err\b|"
    r"perplexity|ppl|wer|cer|bleu|rouge|score|norm|grad|mem|损失|准确|精度",
    re.I,
)
_INDICATOR_KEYS = {"epoch", "step", "global step", "global_step", "iter", "iteration", "it", "batch"}
_ARG_DUMP = re.compile(r"\s*(args|arguments|config|hparams|hyperparameters)\b", re.I)


# "Epoch 3 Validation - Loss: 0.41, Acc: 0.85" / "- Eval metrics: accuracy: 0.72": a phase word just
# before the first pair names the phase of every pair on the line.
_PHASE = re.compile(r"\b(train(?:ing)?|val(?:id|idation)?|eval(?:uation)?|test(?:ing)?)(?:\s+(?:set|phase|metrics))?"
                    r"[\s:|\-]*$", re.I)
_HAS_PHASE = re.compile(r"^(?:train|val|valid|eval|test)", re.I)


def _with_phase(prefix: str, pairs: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """Prefix keys with the phase word that introduces them (``Validation Loss``), unless they
    already name a phase, so a script printing the same keys for training and validation lines
    does not merge the two into one series."""
    m = _PHASE.search(prefix)
    if not m:
        return pairs
    phase = m.group(1)
    return [(k if _HAS_PHASE.match(k) else f"{phase} {k}", v, pct) for k, v, pct in pairs]


def read_text(path: Path, source: str) -> Table:
    points = PointBuilder()
    epoch: int | None = None
    epoch0: int | None = None
    per_epoch: int | None = None  # batches per epoch, from "Batch: i/N"
    last_global: int | None = None
    batch_level = False
    count = 0
    with open_input(path) as fh:  # regular files only, budgeted, bounded lines (a \r-only log too)
        for raw in fh:
            for part in raw.split(b"\r"):
                if len(part) < 3:
                    continue
                line = part.decode("utf-8", "replace")
                if ":" not in line and "=" not in line and "poch" not in line:
                    continue
                m_epoch = _EPOCH.search(line) if ("poch" in line or "POCH" in line) else None
                if m_epoch:
                    epoch = int(m_epoch.group(1))
                    if epoch0 is None:
                        epoch0 = epoch
                if "ETA" in line or "Namespace(" in line or _ARG_DUMP.match(line):
                    continue
                pairs = []
                first_key_at: int | None = None
                for vm in _VALUE.finditer(line):
                    start = vm.start()
                    if not _AFTER.match(line, vm.end()):
                        continue
                    km = _KEY_END.search(line, max(0, start - 80), start)
                    if not km:
                        continue
                    key = km.group("key").strip()
                    if key.lower() in _INDICATOR_KEYS:
                        continue
                    if first_key_at is None:
                        first_key_at = km.start("key")
                    pairs.append((key, vm.group("val"), bool(vm.group("pct"))))
                if not pairs:
                    continue
                pairs = _with_phase(line[:first_key_at], pairs)
                low = line.lower()
                m_step = _STEP.search(line) if ("step" in low or "iter" in low) else None
                m_batch = _BATCH.search(line) if "batch" in low else None
                if not (m_step or m_epoch or m_batch or any(_METRIC_WORD.search(k) for k, _, _ in pairs)):
                    continue
                if m_step:
                    step = int(m_step.group(1))
                    batch_level = True
                    last_global = step
                elif m_batch and epoch is not None:
                    per_epoch = int(m_batch.group(2))
                    step = (epoch - (epoch0 or 0)) * per_epoch + int(m_batch.group(1))
                    batch_level = True
                    last_global = step
                elif epoch is not None:
                    if batch_level and per_epoch:
                        step = (epoch - (epoch0 or 0) + 1) * per_epoch
                    elif batch_level and last_global is not None:
                        step = last_global
                    else:
                        step = epoch
                else:
                    step = count
                count += 1
                for key, val, pct in pairs:
                    try:
                        value = float(val)
                    except ValueError:
                        continue
                    if pct:
                        value /= 100.0
                        points.units[key] = "%"
                    points.add(key, step, value)
    notes = []
    if points.units:
        notes.append("percentages converted to fractions: " + ", ".join(sorted(points.units)))
    return points.table(source, "text", notes=notes)
