"""Whitespace- or tab-separated tables: YOLOv5/YOLOv7 ``results.txt`` (no header) and logs written
as ``epoch<TAB>loss<TAB>acc`` rows under one header line.

**YOLO ``results.txt``.**  YOLOv3 (2020 on), YOLOv5 before v6 and YOLOv7 write one row per epoch
and no header (their ``utils/plots.py`` reads it with ``np.loadtxt(usecols=...)``)::

    epoch/total  gpu_mem  box  obj  cls  total  targets  img_size  P  R  mAP@.5  mAP@.5:.95  val_box  val_obj  val_cls

e.g. ``  12/299     3.21G   0.04571   0.02245  0.006712   0.07487  51  640  0.6411  0.5522  0.5931  0.3126
0.03621  0.01762  0.004103``.  The columns become the tags YOLOv5's own TensorBoard logger uses
(``train/box_loss``, ``metrics/mAP_0.5``, ``val/box_loss``, ...) so that a run holding both the
event file and ``results.txt`` is not counted twice; the summed training loss is ``train/loss``
and the GPU memory column (``torch.cuda.memory_reserved()`` in GB of 1e9 bytes) becomes
``mem/reserved_mb``.  The target count and image size are bookkeeping, not metrics, and are left
out.  Column 11 is mAP@.5:.95 in YOLOv5/YOLOv7; the 2019-2020 YOLOv3 versions put F1 there, which
the file cannot tell apart: it keeps the YOLOv5 name.  Rows are epochs; the step is the epoch
number in the first column, so a resumed run (epochs counting again from a lower number) is
resolved like any restart.

**Step-name-value lines.**  Karpathy's nanoGPT/build-nanogpt ``log.txt`` writes one value per
line as ``<step> <name> <value>`` (``0 val 11.0864``, ``0 hella 0.2498``, ``1 train 10.974887``):
each name is a tag, the first field its step.

**Header tables.**  A first line of names (no numbers) followed by rows of as many numbers,
separated by tabs or runs of spaces: each column is a tag; the step column is the first of
``step``, ``iteration``, ``iter``, ``epoch`` (case-insensitive), else the row number.

Rows that do not fit (a different number of fields, a word where a number belongs) are skipped
and counted in a note; a table is recognised only when most of the sniffed lines fit (see
:func:`looks_like_table`).
"""

from __future__ import annotations

import re
from pathlib import Path

from trainfix.diagnostics.ingest.safe_read import open_input, until_spent
from trainfix.diagnostics.ingest.table import PointBuilder, Table

YOLO_COLUMNS = (
    None, None, "train/box_loss", "train/obj_loss", "train/cls_loss", "train/loss", None, None,
    "metrics/precision", "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95",
    "val/box_loss", "val/obj_loss", "val/cls_loss",
)
_NUM = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^[-+]?(?:nan|inf)$", re.I)
_EPOCH_OF = re.compile(r"^(\d+)/(\d+)$")
_MEM = re.compile(r"^(\d+\.?\d*)([GM])$")
_NAME = re.compile(r"^[A-Za-z_][\w./@-]*$")
STEP_NAMES = ("step", "global_step", "iteration", "iter", "epoch")


def _is_num(tok: str) -> bool:
    return bool(_NUM.match(tok))


def _yolo_row(fields: list[str]) -> bool:
    if len(fields) != len(YOLO_COLUMNS) or not _EPOCH_OF.match(fields[0]):
        return False
    if not (_MEM.match(fields[1]) or _is_num(fields[1])):
        return False
    return all(_is_num(f) for f in fields[2:])


def _long_row(fields: list[str]) -> bool:
    return len(fields) == 3 and fields[0].isdigit() and bool(_NAME.match(fields[1])) and _is_num(fields[2])


def _header(fields: list[str]) -> bool:
    return len(fields) >= 2 and not any(_is_num(f) for f in fields)


def looks_like_table(head: bytes) -> bool:
    """True when the first bytes of a file read as a YOLO ``results.txt`` or a header table.

    Needs at least two rows (one for YOLO) and no commas, braces or ``key: value`` pairs, so a
    CSV, a JSON-lines file or a stdout log is never taken for a table."""
    text = head.decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]  # the sniff window cut the last line
    if not lines or any(c in text for c in ",{}=") or re.search(r"[A-Za-z]\s*:", text):
        return False
    rows = [ln.split() for ln in lines]
    if all(_yolo_row(r) for r in rows) or (len(rows) >= 2 and all(_long_row(r) for r in rows)):
        return True
    if _header(rows[0]) and len(rows) >= 3:
        width = len(rows[0])
        body = rows[1:]
        return all(len(r) == width and all(_is_num(f) for f in r) for r in body)
    return False


def read_table(path: Path, source: str) -> Table:
    points = PointBuilder()
    header: list[str] | None = None
    step_col: int | None = None
    yolo = long = False
    bad = 0
    row_no = 0
    notes: list[str] = []
    with open_input(path) as fh:  # regular files only, budgeted, bounded lines; stops at the time budget
        for raw in until_spent(fh, path, notes):
            fields = raw.decode("utf-8", "replace").split()
            if not fields:
                continue
            if header is None and not yolo and not long:
                if _yolo_row(fields):
                    yolo = True
                elif _long_row(fields):
                    long = True
                elif _header(fields):
                    header = fields
                    low = [h.lower() for h in header]
                    step_col = next((low.index(n) for n in STEP_NAMES if n in low), None)
                    continue
                else:
                    bad += 1
                    continue
            if long:
                if _long_row(fields):
                    points.add(fields[1], int(fields[0]), float(fields[2]))
                else:
                    bad += 1
                continue
            if yolo:
                if not _yolo_row(fields):
                    bad += 1
                    continue
                step = int(_EPOCH_OF.match(fields[0]).group(1))
                mem = _MEM.match(fields[1])
                if mem:
                    scale = 1000.0 if mem.group(2) == "G" else 1.0
                    points.add("mem/reserved_mb", step, float(mem.group(1)) * scale)
                for name, tok in zip(YOLO_COLUMNS, fields):
                    if name is not None:
                        points.add(name, step, float(tok))
                continue
            assert header is not None
            if len(fields) != len(header) or not all(_is_num(f) for f in fields):
                bad += 1
                continue
            step = int(float(fields[step_col])) if step_col is not None else row_no
            row_no += 1
            for i, (name, tok) in enumerate(zip(header, fields)):
                if i != step_col:
                    points.add(name, step, float(tok))
    if yolo:
        notes.append("YOLO results.txt: columns named as YOLOv5 logs them (column 11 read as mAP@.5:.95)")
    if bad:
        notes.append(f"{bad} line(s) that do not fit the table skipped")
    return points.table(source, "table", notes=notes)
