"""Ultralytics (YOLOv8, YOLO11) console output saved to a file: the training progress table and the
per-epoch validation line, among everything else ``yolo train`` prints.

The layout, as ``ultralytics`` prints it (ANSI colours and ``\\r`` progress redraws included)::

          Epoch    GPU_mem   box_loss   seg_loss   cls_loss   dfl_loss  Instances       Size
          1/500      1.67G     0.8078      2.903      2.326      1.167        145        640: 78% ...
                     Class     Images  Instances      Box(P          R      mAP50  mAP50-95) ...
                       all         18         52      0.661      0.553      0.515      0.378 ...

A progress row repeats many times per epoch as the bar redraws; its loss columns are running means
over the epoch so far, and the last row of an epoch (the ``100%`` one) is the epoch's mean: the
last value of each epoch is kept (a step logged twice keeps its last value).  Loss columns become
``train/<name>`` (``train/box_loss``), as Ultralytics' own ``results.csv`` names them, and
``GPU_mem`` (``torch.cuda.memory_reserved()`` in GB of 1e9 bytes) ``mem/reserved_mb``.  The
``all`` row of a validation table gives ``metrics/precision(B)``, ``metrics/recall(B)``,
``metrics/mAP50(B)``, ``metrics/mAP50-95(B)`` (``(M)`` for masks, ``(P)`` for poses), at the
epoch of the progress rows before it.  ``Instances`` and ``Size`` are bookkeeping, not metrics.
The final validation of ``best.pt`` after ``N epochs completed`` is not an epoch and is skipped.

Recognised by its header line (``Epoch  GPU_mem  ..._loss``) in the first 256 KiB
(:func:`looks_like_ultralytics`): the argument dump before it can be long.
"""

from __future__ import annotations

import re
from pathlib import Path

from trainfix.diagnostics.ingest.table import PointBuilder, Table

SNIFF_BYTES = 262_144
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_HEADER = re.compile(r"^\s*Epoch\s+GPU_mem\s+(?:\w+_loss\s+)+", re.M)
_EPOCH_OF = re.compile(r"^(\d+)/(\d+)$")
_MEM = re.compile(r"^(\d+(?:\.\d+)?)([GM])$")
_NUM = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?$|^nan$|^inf$", re.I)
_GROUP = re.compile(r"(Box|Mask|Pose)\(P\s+R\s+mAP50\s+mAP50-95\)")
_DONE = re.compile(r"\d+ epochs completed in")
BOOKKEEPING = {"instances", "size"}
SUFFIX = {"Box": "B", "Mask": "M", "Pose": "P"}


def looks_like_ultralytics(path: Path) -> bool:
    if not path.is_file():  # a FIFO or device would block the read
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(SNIFF_BYTES)
    except OSError:
        return False
    return bool(_HEADER.search(_ANSI.sub("", head.decode("utf-8", "replace"))))


def read_ultralytics(path: Path, source: str) -> Table:
    points = PointBuilder()
    columns: list[str] | None = None
    groups: list[str] = []
    epoch: int | None = None
    done = False
    with open(path, "rb") as fh:
        for raw in fh:
            for part in raw.split(b"\r"):
                line = _ANSI.sub("", part.decode("utf-8", "replace"))
                fields = line.split()
                if not fields:
                    continue
                if fields[0] == "Epoch" and len(fields) > 2 and fields[1] == "GPU_mem":
                    columns = fields
                    continue
                if _DONE.search(line):
                    done = True
                    continue
                if done:
                    continue
                if "Class" in fields and "Images" in fields:
                    groups = _GROUP.findall(line)
                    continue
                if columns and _EPOCH_OF.match(fields[0]):
                    epoch = int(_EPOCH_OF.match(fields[0]).group(1))
                    mem = _MEM.match(fields[1])
                    if mem:
                        scale = 1000.0 if mem.group(2) == "G" else 1.0
                        points.add("mem/reserved_mb", epoch, float(mem.group(1)) * scale)
                    for name, tok in zip(columns[2:], fields[2:]):
                        tok = tok.rstrip(":")
                        if name.lower() in BOOKKEEPING or not _NUM.match(tok):
                            break
                        points.add(f"train/{name}", epoch, float(tok))
                    continue
                if fields[0] == "all" and groups and epoch is not None:
                    values = fields[3:]
                    if len(values) < 4 * len(groups) or not all(_NUM.match(v) for v in values[:4 * len(groups)]):
                        continue
                    for g, group in enumerate(groups):
                        s = SUFFIX[group]
                        for k, name in enumerate(("precision", "recall", "mAP50", "mAP50-95")):
                            points.add(f"metrics/{name}({s})", epoch, float(values[4 * g + k]))
    return points.table(source, "ultralytics", notes=["Ultralytics console output: progress and validation rows read"])
