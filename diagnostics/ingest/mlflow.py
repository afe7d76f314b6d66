"""MLflow's file store: ``mlruns/<experiment>/<run>/metrics/<name>``.

Each metric file holds one line per point: ``<timestamp ms> <value> <step>`` (very old versions
omit the step: the line number is used).  Metric names containing ``/`` are nested folders under
``metrics/``; the tag is the path below ``metrics/``.  ``params/<name>`` files (one value each) are
returned as config under ``params``.
"""

from __future__ import annotations

import math
from pathlib import Path

from trainfix.diagnostics.ingest.safe_read import open_input, read_bytes
from trainfix.diagnostics.ingest.table import PointBuilder, Table


def metrics_dir(path: Path) -> Path:
    """The ``metrics`` folder that holds ``path``."""
    for parent in path.parents:
        if parent.name == "metrics" and (parent.parent / "meta.yaml").is_file():
            return parent
    return path.parent


def read_metric(path: Path, source: str) -> Table:
    tag = path.relative_to(metrics_dir(path)).as_posix()
    points = PointBuilder()
    corrupt = 0
    with open_input(path) as fh:
        for i, raw in enumerate(fh):
            parts = raw.decode("utf-8", "replace").split()
            if not parts:
                continue
            try:
                ts = float(parts[0])
                value = float(parts[1])
                step = int(parts[2]) if len(parts) > 2 else i
                if not -(1 << 63) <= step < 1 << 63:  # an int64 step column cannot hold it
                    raise ValueError("step out of range")
            except (ValueError, IndexError):
                corrupt += 1
                continue
            points.add(tag, step, value, ts / 1000.0 if math.isfinite(ts) else math.nan)
    notes = [f"{corrupt} malformed line(s) skipped"] if corrupt else []
    return points.table(source, "mlflow", corrupt_records=corrupt, notes=notes)


def read_params(run_dir: Path) -> dict:
    """``params/<name>`` files as a flat dict; numbers parsed, everything else kept as text."""
    params: dict = {}
    pdir = run_dir / "params"
    if not pdir.is_dir():
        return params
    for f in sorted(pdir.rglob("*")):
        if not f.is_file():
            continue
        try:
            text = read_bytes(f, 1 << 20).decode("utf-8", "replace").strip()
        except OSError:  # a FIFO, a device, a huge file: not a parameter
            continue
        value: object = text
        for cast in (int, float):
            try:
                value = cast(text)
                break
            except ValueError:
                pass
        if text in ("True", "False", "true", "false"):
            value = text.lower() == "true"
        elif text in ("None", "null"):
            value = None
        params[f.relative_to(pdir).as_posix()] = value
    return params
