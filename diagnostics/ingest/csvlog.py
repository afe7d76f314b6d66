"""CSV logs: Lightning's CSVLogger, Keras' CSVLogger, Ultralytics ``results.csv``, generic tables.

One row per logging event, one column per metric.  The step column is the first of ``step``,
``global_step``, ``iteration``, ``iter`` present, else ``epoch``, else the row number.  Every other
column whose non-empty cells are (mostly) numbers is a metric; its empty cells are "not logged in
this row" (Lightning interleaves train and val rows with sparse columns) while ``nan``/``inf``
cells are kept as values.  Header cells are stripped (Ultralytics pads them with spaces).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trainfix.diagnostics.ingest.safe_read import open_input, tick
from trainfix.diagnostics.ingest.table import Table

STEP_COLUMNS = ("step", "global_step", "trainer/global_step", "iteration", "iter", "epoch")
NAN_SPELLINGS = {"nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity", "+infinity"}


def read_csv(path: Path, source: str) -> Table:
    import pandas as pd

    fh = open_input(path)  # regular files only, within the size and time budget
    frame = pd.read_csv(
        fh,
        dtype=str,
        keep_default_na=False,
        skipinitialspace=True,
        encoding="utf-8-sig",  # Excel and some loggers start with a byte-order mark
        encoding_errors="replace",
        on_bad_lines="skip",
    )
    fh.close()
    frame.columns = [str(c).strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    step_col = next((lower[c] for c in STEP_COLUMNS if c in lower), None)
    n = len(frame)
    notes: list[str] = []
    if step_col is not None:
        steps_f = pd.to_numeric(frame[step_col].str.strip(), errors="coerce").ffill().to_numpy(dtype=float)
        if np.isnan(steps_f).any():
            steps_f = np.where(np.isnan(steps_f), np.arange(n), steps_f)
    else:
        steps_f = np.arange(n, dtype=float)
        notes.append("no step/epoch column: row number used as step")
    steps = steps_f.astype(np.int64)
    tags: list[str] = []
    parts_codes, parts_steps, parts_vals = [], [], []
    for col in frame.columns:
        tick()  # the time budget also holds for a file with 100,000 columns
        if col == step_col or not col or col.lower().startswith("unnamed:"):
            continue
        cells = frame[col].str.strip()
        present = (cells != "").to_numpy()
        if not present.any():
            continue
        vals = pd.to_numeric(cells.where(cells != "", None), errors="coerce").to_numpy(dtype=float, copy=True)
        spelled_nan = cells.str.lower().isin(NAN_SPELLINGS).to_numpy()
        numeric = present & (~np.isnan(vals) | spelled_nan)
        if numeric.sum() < 0.5 * present.sum():
            continue  # a text column (model name, asset, ...)
        fix = np.flatnonzero(spelled_nan & np.isnan(vals))
        if fix.size:  # spellings to_numeric leaves as NaN ("Infinity")
            raw = cells.to_numpy()
            vals[fix] = [float(raw[i]) for i in fix]
        code = len(tags)
        tags.append(col)
        parts_codes.append(np.full(int(numeric.sum()), code, dtype=np.int32))
        parts_steps.append(steps[numeric])
        parts_vals.append(vals[numeric])
    if tags:
        codes = np.concatenate(parts_codes)
        st = np.concatenate(parts_steps)
        vals = np.concatenate(parts_vals)
    else:
        codes, st, vals = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0)
    # Keep file (row) order within each tag: the concatenation is tag-major, rows in order.
    return Table(source, "csv", source, tags, codes, st, vals, np.full(st.shape[0], np.nan), notes=notes)
