"""Plain stdout/stderr text logs: metric lines among everything else a training script prints.

Streams the file in blocks of whole lines (a 100 MB log never sits in memory), splitting on ``\\n``
and ``\\r`` (progress bars redraw with ``\\r``); bytes that are not UTF-8 are replaced.  Understood:

* ``key: value`` and ``key=value`` pairs, separated by ``|``, ``,``, ``;``, `` - `` or spaces, with
  multi-word keys (``Train Loss: 0.41 | Val Acc: 85.91%``) and any script (``训练损失: 4.61``);
* Keras progress output: an ``Epoch 3/50`` line, then ``... - loss: 0.41 - val_accuracy: 0.85``;
  lines still showing ``ETA`` are running averages inside an epoch and are skipped;
* step indicators: ``Epoch 12/60``, ``epoch 3``, ``step 120``, ``iter 10``, a bare iteration counter
  ``i: 7`` / ``it=7``, ``Batch: 920/1330`` (with its epoch: global step = epochs done x batches per
  epoch + batch).

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
from array import array
from pathlib import Path

import numpy as np

from trainfix.diagnostics.ingest.safe_read import BudgetExceeded, open_input, until_spent
from trainfix.diagnostics.ingest.table import Table

_NUM = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|NaN|NAN|inf|Inf|INF|infinity|Infinity)"
_WORD = r"(?:[^\W\d]|\()[\w./()\[\]\-]*+"  # possessive: no backtracking inside a word
_KEY = rf"{_WORD}(?: {_WORD}){{0,3}}"
# A value right after ":" or "=", then what may follow it (a separator, the end, another key).
_VALUE = re.compile(rf"[:=][ \t]*(?P<val>{_NUM})(?P<pct>[ \t]*%)?")
_AFTER = re.compile(rf"\s*$|\s*[|,;]|\s+-\s|\s+{_KEY}\s*[:=]|\s*\)|\s*\}}")
# The key: the words just before the ":"/"=", starting at a word boundary.
_KEY_END = re.compile(rf"(?<![\w./()\-])(?P<key>{_KEY})[ \t]*$")
_EPOCH = re.compile(r"\bepoch\b\s*[:=#]?\s*\[?\s*(\d{1,12})(?:\s*/\s*(\d{1,12}))?(?!\d)", re.I)
_STEP = re.compile(r"\b(?:global[_ ]step|step|iteration|iter)\b\s*[:=#]?\s*\[?\s*(\d{1,15})(?:\s*/\s*(\d{1,15}))?(?!\d)", re.I)
# A bare iteration counter, "i: 12" / "it=12": the step when no step word names one.  Only with
# ":" or "=" and a whole number ("ratio i= 0.5" is no counter).
_ITER_I = re.compile(r"(?<![\w.\-])(?:it|i)\s*[:=]\s*(\d{1,15})(?![\w.])", re.I)
# Counters are at most 12-15 digits (a longer digit run is no epoch or step and matches nothing), and
# a step derived from them that leaves int64 drops its line: the steps live in an int64 array.
_MAX_STEP = 2**63 - 1
_BATCH = re.compile(r"\bbatch\b\s*[:=#]?\s*\[?\s*(\d{1,12})\s*/\s*(\d{1,12})(?!\d)", re.I)
_METRIC_WORD = re.compile(
    r"loss|acc|accuracy|\blr\b|learning[_ ]?rate|auc|f1|map|precision|recall|iou|dice|error|err\b|"
    r"perplexity|ppl|wer|cer|bleu|rouge|score|norm|grad|mem|损失|准确|精度",
    re.I,
)
# One pass per line for every pair: the words of a key (starting within 80 characters of its ":" or
# "="), the value (taken whole: atomic groups, as _VALUE takes it) and what must follow it.  It finds
# what _VALUE, _AFTER and _KEY_END find one value at a time (see _line_pairs), except after a value
# spelled in letters (nan, inf), where the next key may start inside that value: such lines go the
# one-at-a-time way (_HAS_WORD_VALUE).
_AFTER_BODY = rf"\s*$|\s*[|,;]|\s+-\s|\s+{_KEY}\s*[:=]|\s*\)|\s*\}}"
# A key that is a step indicator ("epoch: 3") is not a metric: _PAIR does not take it (ASCII case
# folding, as str.lower() folds these words).
_INDICATOR = r"(?ai:epoch|step|global[ _]step|iter|iteration|it|i|batch)"
_PAIR = re.compile(rf"(?<![\w./()\-])(?=[^\W\d]|\()(?=[^:=]{{0,80}}[:=])(?!{_INDICATOR}[ \t]*[:=])(?P<key>{_KEY})"
                   rf"[ \t]*(?>[:=][ \t]*(?P<val>(?>{_NUM}))(?P<pct>[ \t]*%)?)(?={_AFTER_BODY})")
_HAS_WORD_VALUE = re.compile(r"[:=][ \t]*[-+]?(?:nan|NaN|NAN|inf|Inf|INF)")
_INDICATOR_KEYS = {"epoch", "step", "global step", "global_step", "iter", "iteration", "it", "i", "batch"}
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


def _line_pairs(line: str) -> tuple[list[tuple[str, str, bool]], int | None]:
    """(pairs, where the first key starts) of one line, one value at a time: every ``:``/``=`` value
    that ends at a separator, with the key words just before it.  The definition _PAIR follows."""
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
    return pairs, first_key_at


def _lines_of(block) -> list[str]:
    """The lines of a block of whole lines, as reading them one at a time gave them: split at
    ``\\n``, ``\\r\\n`` and ``\\r``, a line keeping its ``\\n`` (not a ``\\r``), which matters only to a line
    ending in ``-`` (``" -\\n"`` is a separator, ``" -"`` at the end is not)."""
    text = str(block, "utf-8", "replace")  # \n and \r never sit inside a UTF-8 sequence: same as line by line
    if "-\r" in text or "-\n" in text:
        return [ln + "\n" if nl and ln.endswith("-") else ln for ln, nl in _split_parts(text)]
    return text.replace("\r", "\n").split("\n")


def _split_parts(text: str) -> list[tuple[str, bool]]:
    """(line, ended by a newline) of a block of text."""
    out = []
    for seg in text.split("\r"):
        lines = seg.split("\n")
        out.extend((ln, True) for ln in lines[:-1])
        out.append((lines[-1], False))
    return out


def _pairs_of(line: str) -> list[tuple[str, str, bool]]:
    """The (key, value, is-percent) pairs of one line, keys prefixed with the line's phase word."""
    if _HAS_WORD_VALUE.search(line):
        pairs, first_key_at = _line_pairs(line)
    else:
        found = _PAIR.findall(line)
        if not found:
            return []
        pairs = [(k, v, bool(p)) for k, v, p in found]
        first_key_at = None
        low = line.lower()
        if not line.isascii() or "val" in low or "train" in low or "test" in low:  # a phase word may come first
            first_key_at = _PAIR.search(line).start("key")
    if first_key_at is not None and pairs:
        pairs = _with_phase(line[:first_key_at], pairs)
    return pairs


class _Points:
    """The points of one file in flat arrays (8 + 8 + 4 bytes a point, no Python object each)."""

    def __init__(self) -> None:
        self.tag_index: dict[str, int] = {}
        self.tags: list[str] = []
        self.codes = array("i")
        self.steps = array("q")
        self.values = array("d")
        self.units: dict[str, str] = {}

    def add_line(self, pairs: list[tuple[str, str, bool]], step: int) -> None:
        tag_index = self.tag_index
        for key, val, pct in pairs:
            try:
                value = float(val)
            except ValueError:
                continue
            if pct:
                value /= 100.0
                self.units[key] = "%"
            code = tag_index.get(key)
            if code is None:
                code = tag_index[key] = len(self.tags)
                self.tags.append(key)
            self.codes.append(code)
            self.steps.append(step)
            self.values.append(value)
    def table(self, source: str, notes: list[str]) -> Table:
        n = len(self.steps)
        codes = np.frombuffer(self.codes, dtype=np.intc).astype(np.int32) if n else np.zeros(0, np.int32)
        steps = np.frombuffer(self.steps, dtype=np.int64).copy() if n else np.zeros(0, np.int64)
        values = np.frombuffer(self.values, dtype=np.float64).copy() if n else np.zeros(0)
        t = Table(source, "text", source, self.tags, codes, steps, values, np.full(n, np.nan), notes=notes)
        t.units.update(self.units)
        return t


def read_text(path: Path, source: str, *, resolve: bool = False) -> Table:
    """Read one text log (see the module docstring for what is understood).

    ``resolve``: settle restarts while reading (:mod:`.resolve`), so memory holds the points that
    survive assembly, not every point read; the table then holds the survivors, tag by tag.
    Without it, every point in file order.  When the longest of several appended runs is not the
    last and its points were not kept, the file is read again (as far as the first read got),
    keeping that run.
    """
    if not resolve:
        pts = _Points()
        notes: list[str] = []
        _parse(path, pts, notes)
        return pts.table(source, notes)
    from trainfix.diagnostics.ingest.resolve import Resolver
    from trainfix.diagnostics.ingest.safe_read import deadline

    res = Resolver()
    notes = []
    blocks = _parse(path, res, notes)
    again = res.needs_attempt()
    if again is not None:
        res = Resolver(keep_attempt=again)
        with deadline():  # the second read has a budget of its own, and stops where the first did
            if _parse(path, res, [], max_blocks=blocks) < blocks:
                raise BudgetExceeded(f"its time budget ran out reading it a second time, for run {again + 1} of "
                                     "several appended (raise it with TRAINFIX_MAX_FILE_SECONDS)", "time")
    return res.table(source, notes)


def _parse(path: Path, pts, notes: list[str], max_blocks: int | None = None) -> int:
    """Feed every metric line of ``path`` to ``pts.add_line``; the number of blocks read.

    Lines are taken a block at a time; a line that holds no ``:``, ``=`` or ``poch`` costs three
    substring tests, and a metric line one :data:`_PAIR` scan, the indicator searches its words
    call for, and its points.
    """
    from itertools import islice

    epoch: int | None = None
    epoch0: int | None = None
    per_epoch: int | None = None  # batches per epoch, from "Batch: i/N"
    last_global: int | None = None
    batch_level = False
    count = 0
    nblocks = 0
    with open_input(path) as fh:  # regular files only, budgeted, bounded lines (a \r-only log too)
        for block in islice(until_spent(fh.blocks(), path, notes), max_blocks):
            nblocks += 1
            for line in _lines_of(block):
                if ":" not in line and "=" not in line and "poch" not in line:
                    continue
                m_epoch = _EPOCH.search(line) if ("poch" in line or "POCH" in line) else None
                if m_epoch:
                    epoch = int(m_epoch.group(1))
                    if epoch0 is None:
                        epoch0 = epoch
                if "ETA" in line or "Namespace(" in line or _ARG_DUMP.match(line):
                    continue
                pairs = _pairs_of(line)
                if not pairs:
                    continue
                low = line.lower()
                m_step = _STEP.search(line) if ("step" in low or "iter" in low) else None
                if m_step is None and ("i" in low):
                    m_step = _ITER_I.search(line)
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
                if abs(step) > _MAX_STEP:
                    continue
                pts.add_line(pairs, step)
    if pts.units:
        notes.append("percentages converted to fractions: " + ", ".join(sorted(pts.units)))
    return nblocks
