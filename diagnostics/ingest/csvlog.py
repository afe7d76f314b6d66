"""CSV logs: Lightning's CSVLogger, Keras' CSVLogger, Ultralytics ``results.csv``, generic tables.

One row per logging event, one column per metric.  The step column is the first of ``step``,
``global_step``, ``iteration``, ``iter`` present, else ``epoch``, else the row number.  Every other
column whose non-empty cells are (mostly) numbers is a metric; its empty cells are "not logged in
this row" (Lightning interleaves train and val rows with sparse columns) while ``nan``/``inf``
cells are kept as values.  Header cells are stripped (Ultralytics pads them with spaces).  A file
with thousands of columns is read without pandas' parser (see :func:`_read_wide`): memory stays
linear in the cells, not ~1 KB a column.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from trainfix.diagnostics.ingest.safe_read import open_input, tick
from trainfix.diagnostics.ingest.table import Table

STEP_COLUMNS = ("step", "global_step", "trainer/global_step", "iteration", "iter", "epoch")
NAN_SPELLINGS = {"nan", "-nan", "inf", "+inf", "-inf", "infinity", "-infinity", "+infinity"}


def read_csv(path: Path, source: str, *, careful_only: bool = False) -> Table:
    """Read one CSV log.

    Two paths give the same values.  The file is parsed once by pandas' C parser with type
    inference, only empty cells as missing (``keep_default_na=False``): a column that comes out
    as integers or floats is taken as it is (empty = not logged; ``inf``/``Infinity`` parse to
    infinities as ``float()`` reads them).  A column that does not (text, a ``nan`` spelling the
    parser leaves as text, a repeated header row after a resume, booleans) goes the careful way:
    its cells are stripped, converted one by one, and kept when at least half of the non-empty
    cells are numbers.  ``careful_only`` sends every column the careful way (the tests compare).
    """
    import pandas as pd

    fh = open_input(path)  # regular files only, within the size and time budget
    try:
        head = fh.peek(1 << 16)
        if _header_width(head) > WIDE_COLUMNS:
            try:
                return _read_wide(fh, source, skip_space=b', "' in head)
            except _Ragged:  # rows of other lengths: the parser's rules (implicit index, padding, skips)
                fh.seek(0)
        with warnings.catch_warnings():
            # Parsed in chunks, a column can be numbers in one chunk and text in another: it then
            # holds both and goes the careful way below, which is what the warning is about.
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)
            frame = _parse(fh, head, careful_only)
    finally:
        fh.close()
    frame.columns = [str(c).strip() for c in frame.columns]
    lower = {c.lower(): c for c in frame.columns}
    step_col = next((lower[c] for c in STEP_COLUMNS if c in lower), None)
    n = len(frame)
    notes: list[str] = []
    if step_col is not None:
        steps_f = _step_values(frame[step_col])[0]
        steps_f = pd.Series(steps_f).ffill().to_numpy(dtype=float)
        if np.isnan(steps_f).any():
            steps_f = np.where(np.isnan(steps_f), np.arange(n), steps_f)
    else:
        steps_f = np.arange(n, dtype=float)
        notes.append("no step/epoch column: row number used as step")
    steps = steps_f.astype(np.int64)
    tags: list[str] = []
    counts: list[int] = []
    parts_steps, parts_vals = [], []
    # Tags in sorted order: the assembly then finds the table already grouped and sorted.
    for i, col in sorted(enumerate(frame.columns), key=lambda ic: ic[1]):
        tick()  # the time budget also holds for a file with 100,000 columns
        if col == step_col or not col or col.lower().startswith("unnamed:"):
            continue
        vals, numeric = _metric_column(frame.iloc[:, i])
        if vals is None:
            continue
        tags.append(col)
        parts_steps.append(steps[numeric])
        parts_vals.append(vals[numeric])
        counts.append(parts_steps[-1].shape[0])
    if tags:
        codes = np.repeat(np.arange(len(tags), dtype=np.int32), counts)
        st = np.concatenate(parts_steps)
        vals = np.concatenate(parts_vals)
    else:
        codes, st, vals = np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0)
    # Keep file (row) order within each tag: the concatenation is tag-major, rows in order.
    return Table(source, "csv", source, tags, codes, st, vals, np.full(st.shape[0], np.nan), notes=notes)


def _parse(fh, head: bytes, careful_only: bool):
    import pandas as pd

    return pd.read_csv(
        fh,
        dtype=str if careful_only else None,
        keep_default_na=False,
        na_values=[""],  # only an empty cell is "not logged in this row"
        # Padded cells (Ultralytics) are stripped column by column below; the parser is told to
        # skip spaces only where they would hide a quoted field (', "a, b"'): that option costs 30%.
        skipinitialspace=b', "' in head,
        encoding="utf-8-sig",  # Excel and some loggers start with a byte-order mark
        encoding_errors="replace",
        on_bad_lines="skip",
    )


def _is_parsed_number(column) -> bool:
    return column.dtype.kind in "iuf"


def _step_values(column) -> tuple[np.ndarray, np.ndarray]:
    """(values as float, mask of cells that hold a number) of a step column."""
    if _is_parsed_number(column):
        vals = column.to_numpy(dtype=float, na_value=np.nan)
        return vals, ~np.isnan(vals)
    import pandas as pd

    cells = column.fillna("").astype(str).str.strip()
    vals = pd.to_numeric(cells.where(cells != "", None), errors="coerce").to_numpy(dtype=float, copy=True)
    return vals, ~np.isnan(vals)


def _metric_column(column) -> tuple[np.ndarray | None, np.ndarray]:
    """(values, mask of the rows that logged a number) of a metric column; (None, _) when the
    column is empty or text."""
    if _is_parsed_number(column):
        vals = column.to_numpy(dtype=float, na_value=np.nan)
        numeric = ~np.isnan(vals)  # the parser turns only empty cells into NaN here
        return (vals, numeric) if numeric.any() else (None, numeric)
    import pandas as pd

    cells = column.fillna("").astype(str).str.strip()
    present = (cells != "").to_numpy()
    if not present.any():
        return None, present
    vals = pd.to_numeric(cells.where(cells != "", None), errors="coerce").to_numpy(dtype=float, copy=True)
    spelled_nan = cells.str.lower().isin(NAN_SPELLINGS).to_numpy()
    numeric = present & (~np.isnan(vals) | spelled_nan)
    if numeric.sum() < 0.5 * present.sum():
        return None, numeric  # a text column (model name, asset, ...)
    fix = np.flatnonzero(spelled_nan & np.isnan(vals))
    if fix.size:  # spellings to_numeric leaves as NaN ("Infinity")
        raw = cells.to_numpy()
        vals[fix] = [float(raw[i]) for i in fix]
    return vals, numeric


# --- wide files -------------------------------------------------------------------------------------
WIDE_COLUMNS = 2000  # past this many header cells the file is read without pandas' parser


class _Ragged(Exception):
    """A wide file's row has not as many cells as its header."""


def _header_width(head: bytes) -> int:
    """Header cells in the first line of ``head`` (an upper bound: quoted commas count too)."""
    first = head.split(b"\n", 1)[0]
    return first.count(b",") + 1


def _read_wide(fh, source: str, skip_space: bool) -> Table:
    """A CSV with thousands of columns (and, in practice, few rows), read with the ``csv`` module
    and converted in one pass over all cells: pandas' parser holds ~1 KB a column (100 MiB for
    100,000 columns of a 1 MB file).  The cells go the careful way (stripped, ``to_numeric``, the
    nan spellings), which the tests show gives the parser's values.  A row with more or fewer cells
    than the header raises :class:`_Ragged`: such a file goes to the parser after all."""
    import csv
    import io

    import pandas as pd

    text = io.TextIOWrapper(fh, encoding="utf-8-sig", errors="replace", newline="")
    try:
        reader = csv.reader(text, skipinitialspace=skip_space)
        header = next(reader, None) or []
        names = [h.strip() for h in _unique(header)]
        width = len(names)
        rows = []
        for row in reader:
            tick()
            if not row or (len(row) == 1 and not row[0]):
                continue  # a blank line
            if len(row) != width:
                raise _Ragged
            rows.append(row)
    finally:
        text.detach()  # the file stays open for the caller
    n = len(rows)
    cells = np.asarray(rows, dtype=object).reshape(n, width) if n else np.zeros((0, width), dtype=object)
    del rows
    vals, present, numeric = _convert_cells(cells)
    del cells
    lower = {c.lower(): i for i, c in enumerate(names)}
    step_i = next((lower[c] for c in STEP_COLUMNS if c in lower), None)
    notes: list[str] = []
    if step_i is not None:
        steps_f = pd.Series(np.where(numeric[step_i], vals[step_i], np.nan)).ffill().to_numpy(dtype=float)
        steps_f = np.where(np.isnan(steps_f), np.arange(n), steps_f)
    else:
        steps_f = np.arange(n, dtype=float)
        notes.append("no step/epoch column: row number used as step")
    steps = steps_f.astype(np.int64)
    keep = numeric.any(axis=1) & (numeric.sum(axis=1) >= 0.5 * present.sum(axis=1))
    order = [i for i in sorted(range(width), key=names.__getitem__)
             if keep[i] and i != step_i and names[i] and not names[i].lower().startswith("unnamed:")]
    tags = [names[i] for i in order]
    sel = numeric[order]
    counts = sel.sum(axis=1)
    codes = np.repeat(np.arange(len(tags), dtype=np.int32), counts)
    st = np.broadcast_to(steps, sel.shape)[sel]
    out = vals[order][sel]
    return Table(source, "csv", source, tags, codes, st, out, np.full(st.shape[0], np.nan), notes=notes)


def _convert_cells(cells: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, non-empty, number) per (column, row) of a 2-D array of cells, the careful way
    (:func:`_metric_column`), a few thousand columns at a time so the stripped copies stay small."""
    import pandas as pd

    n, width = cells.shape
    vals = np.empty((width, n))
    present = np.empty((width, n), dtype=bool)
    numeric = np.empty((width, n), dtype=bool)
    step = max(1, (1 << 16) // max(n, 1))
    for lo in range(0, width, step):
        tick()
        hi = min(width, lo + step)
        flat = pd.Series(cells[:, lo:hi].T.ravel(), dtype=object).astype(str).str.strip()  # column-major
        full = (flat != "").to_numpy()
        v = pd.to_numeric(flat.where(flat != "", None), errors="coerce").to_numpy(dtype=float, copy=True)
        spelled = flat.str.lower().isin(NAN_SPELLINGS).to_numpy()
        fix = np.flatnonzero(spelled & np.isnan(v))
        if fix.size:  # spellings to_numeric leaves as NaN ("Infinity")
            raw = flat.to_numpy()
            v[fix] = [float(raw[i]) for i in fix]
        vals[lo:hi] = v.reshape(hi - lo, n)
        present[lo:hi] = full.reshape(hi - lo, n)
        numeric[lo:hi] = (full & (~np.isnan(v) | spelled)).reshape(hi - lo, n)
    return vals, present, numeric


def _unique(names: list[str]) -> list[str]:
    """Header names made unique as pandas makes them (``x``, ``x.1``, ``x.2``); empty ones become
    ``Unnamed: i`` (left out as metrics)."""
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        if not name:
            name = f"Unnamed: {i}"
        base = name
        k = seen.get(base, 0)
        while name in seen:
            k += 1
            name = f"{base}.{k}"
        seen[base] = k
        seen.setdefault(name, 0)
        out.append(name)
    return out
