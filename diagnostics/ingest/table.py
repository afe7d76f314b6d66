"""Per-file scalar tables and their assembly into the Run's long DataFrame.

Every reader returns :class:`Table` objects (columnar numpy arrays in *file order*); the assembly
step here is the only place that decides what survives:

* **Resumed runs.**  Within one *stream* (one log file; for TensorBoard, all event files of one
  directory in name order, since a resumed writer starts a new file beside the old one) and one
  tag, a step lower than the previous one is a restart.  The later segment wins: every earlier
  point at a step >= the step the run resumed from is dropped (the abandoned trajectory), as
  TensorBoard itself does.  A step logged twice keeps its last value.  Restarts are reported.
  Several runs appended to one file, each from scratch, are the exception: the longest is kept
  (:mod:`.attempts`).
* **The same tag from several streams** (the trainer writes both ``metrics.jsonl`` and event
  files; Lightning writes CSV and TensorBoard) is kept from one stream only: the one with the most
  points for that tag, ties broken by the more precise format (JSON/CSV keep float64, TensorBoard
  float32).  The dropped copies are reported in ``duplicates``.
* The result is sorted by tag then step; ``tag`` and ``source`` are pandas categoricals.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trainfix.diagnostics.ingest.attempts import longest_attempts
from trainfix.diagnostics.ingest.collected import Collected

# Lower = preferred when two streams carry the same tag with as many points.
FORMAT_PRIORITY = {"jsonl": 0, "trainer_state": 1, "csv": 2, "history": 2, "mlflow": 3, "tensorboard": 4,
                   "table": 5, "ultralytics": 5, "text": 6}


@dataclass
class Table:
    """Scalars read from one file, in file order; ``codes`` index ``tags``."""

    source: str  # path relative to the run root
    fmt: str
    stream: str  # restart-resolution key (see module docstring)
    tags: list[str]
    codes: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    wall_times: np.ndarray
    corrupt_records: int = 0
    truncated: bool = False
    notes: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    # Set by a reader that resolved restarts as it read (:mod:`.resolve`): the points it read, and
    # what assembly would have found in the stream ({"restarts": [(tag, step, from step)],
    # "attempts": a report or None}).
    raw_points: int | None = None
    resolved: dict | None = None

    def __len__(self) -> int:
        return int(self.steps.shape[0])


class PointBuilder:
    """Collects points one at a time (text, JSON and CSV readers) and yields a :class:`Table`."""

    def __init__(self) -> None:
        self.tag_index: dict[str, int] = {}
        self.tags: list[str] = []
        self.codes: list[int] = []
        self.steps: list[int] = []
        self.values: list[float] = []
        self.walls: list[float] = []
        self.units: dict[str, str] = {}

    def add(self, tag: str, step: int, value: float, wall: float = float("nan")) -> None:
        code = self.tag_index.get(tag)
        if code is None:
            code = self.tag_index[tag] = len(self.tags)
            self.tags.append(tag)
        self.codes.append(code)
        self.steps.append(step)
        self.values.append(value)
        self.walls.append(wall)

    def __len__(self) -> int:
        return len(self.steps)

    def table(self, source: str, fmt: str, stream: str | None = None, **kw: Any) -> Table:
        t = Table(
            source=source,
            fmt=fmt,
            stream=stream or source,
            tags=self.tags,
            codes=np.asarray(self.codes, dtype=np.int32),
            steps=np.asarray(self.steps, dtype=np.int64),
            values=np.asarray(self.values, dtype=np.float64),
            wall_times=np.asarray(self.walls, dtype=np.float64),
            **kw,
        )
        t.units.update(self.units)
        return t


def _segmented_keep(group: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """For rows sorted by group (file order inside a group): keep a row when its step is lower
    than every later step of its group (later segment wins; last duplicate wins)."""
    n = steps.shape[0]
    keep = np.ones(n, dtype=bool)
    if n < 2:
        return keep
    lo = int(steps.min())
    span = int(steps.max()) - lo + 2
    ngroups = int(group.max()) + 1
    if span * ngroups < 2**62:
        key = group.astype(np.int64) * span + (steps - lo)
        nxt = np.empty(n, dtype=np.int64)
        nxt[-1] = np.iinfo(np.int64).max
        # suffix minimum of the *following* rows; crossing into a higher group gives larger keys
        nxt[:-1] = np.minimum.accumulate(key[::-1])[::-1][1:]
        keep = key < nxt
        return keep
    bounds = np.flatnonzero(np.diff(group)) + 1  # pragma: no cover - absurd step ranges only
    for seg in np.split(np.arange(n), bounds):
        s = steps[seg]
        suf = np.minimum.accumulate(s[::-1])[::-1]
        k = np.ones(seg.size, dtype=bool)
        k[:-1] = s[:-1] < suf[1:]
        keep[seg] = k
    return keep


def _needs_resolution(order: np.ndarray | None, group: np.ndarray, steps: np.ndarray, chunk: int = 1 << 18) -> bool:
    """Whether any group has a step that does not increase (a restart or a repeated step).

    ``order`` None means the rows are already in group order.  Checked in chunks so a
    million-row table needs no full-size temporaries."""
    n = group.shape[0]
    for lo in range(0, max(0, n - 1), chunk):
        hi = min(n, lo + chunk + 1)
        if order is None:
            g, st = group[lo:hi], steps[lo:hi]
        else:
            idx = order[lo:hi]
            g, st = group[idx], steps[idx]
        if ((g[1:] == g[:-1]) & (st[1:] <= st[:-1])).any():
            return True
    return False


def assemble(tables: list[Table] | Collected) -> tuple[Any, dict[str, Any]]:
    """Combine tables into the Run's DataFrame; return it and facts for ``Run.inputs``.

    Takes ownership of the tables' arrays (a list is gathered into a :class:`.collected.Collected`
    first; the reader of a run gathers each table as it is read): they are released while the
    frame is built (the tables keep their names, tags and notes), so peak memory stays near the
    frame's size.
    """
    info: dict[str, Any] = {"restarts": [], "duplicates": [], "attempts": []}
    if isinstance(tables, Collected):
        got = tables
    else:
        got = Collected()
        for t in tables:
            got.add(t)
        tables.clear()
    if not len(got):
        return _empty_frame(), info
    voc = _vocabulary(got)
    cols = _concatenate(got, voc)
    order, group = _order_resolving_restarts(cols, voc, info)
    _add_resolved(got, voc, info)
    if len(voc.streams) > 1:
        order = _keep_one_stream_per_tag(order, group, cols.codes, voc, info)
    del group
    # Reorder one column at a time and let go of the inputs as we go: peak memory stays near
    # one extra column, not a second copy of the table.
    frame = _frame(cols, voc, order)
    info["restarts"] = _summarise_restarts(info["restarts"])
    return frame, info


@dataclass
class _Vocabulary:
    """The tables' tags, files and streams, each given one code."""

    tags: list[str]
    tag_code: dict[str, int]
    sources: list[str]
    source_code: dict[str, int]
    streams: list[str]
    stream_code: dict[str, int]  # first-seen order; a dict, so 50,000 files stay linear
    stream_fmt: list[str]  # by stream code
    tag_remap: np.ndarray  # first-seen tag code -> sorted code
    source_remap: np.ndarray  # table number -> sorted file code


def _vocabulary(got: Collected) -> _Vocabulary:
    all_tags = sorted(got.tag_code)
    tag_code = {tag: i for i, tag in enumerate(all_tags)}
    sources = sorted(set(got.sources))
    source_code = {s: i for i, s in enumerate(sources)}
    tag_remap = np.asarray([tag_code[t] for t in got.tag_code], dtype=np.int64)
    source_remap = np.asarray([source_code[s] for s in got.sources], dtype=np.int64)
    return _Vocabulary(all_tags, tag_code, sources, source_code, list(got.stream_code), got.stream_code,
                       got.stream_fmt, tag_remap, source_remap)


def _empty_frame() -> Any:
    import pandas as pd

    return pd.DataFrame(
        {
            "tag": pd.Categorical([], categories=[]),
            "step": np.zeros(0, dtype=np.int64),
            "value": np.zeros(0),
            "wall_time": np.zeros(0),
            "source": pd.Categorical([], categories=[]),
        }
    )


@dataclass
class _Columns:
    """All tables' points in one set of columns (tag, file and stream as codes); :func:`_frame`
    releases each column as soon as it is reordered."""

    codes: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    walls: np.ndarray
    src: np.ndarray
    stream: np.ndarray


def _concatenate(got: Collected, voc: _Vocabulary) -> _Columns:
    """The collected chunks as one set of columns, tag and file codes sorted; one chunk's steps,
    values and wall times are used as they are (no copy)."""
    itype = np.int32 if len(voc.tags) > 32000 else np.int16
    ftype = np.int32 if max(len(voc.sources), len(voc.streams)) > 32000 else np.int16  # file and stream codes
    chunks = got.take_chunks()

    def per_point(c, name: str, remap: np.ndarray | None) -> np.ndarray:
        v = getattr(c, name)
        if isinstance(v, int):
            return np.full(len(c.steps), v if remap is None else remap[v], dtype=ftype)
        return (v if remap is None else remap[v]).astype(ftype)

    codes = [voc.tag_remap[c.codes].astype(itype) for c in chunks]
    src = [per_point(c, "src", voc.source_remap) for c in chunks]
    stream = [per_point(c, "stream", None) for c in chunks]
    if len(chunks) == 1:
        c = chunks[0]
        return _Columns(codes[0], c.steps, c.values, c.walls, src[0], stream[0])
    cols = _Columns(np.concatenate(codes), np.concatenate([c.steps for c in chunks]),
                    np.concatenate([c.values for c in chunks]), np.concatenate([c.walls for c in chunks]),
                    np.concatenate(src), np.concatenate(stream))
    chunks.clear()
    return cols


def _order_resolving_restarts(cols: _Columns, voc: _Vocabulary, info: dict) -> tuple[np.ndarray | None, np.ndarray]:
    """(row order, group of each row): rows sorted by group = (stream, tag), file order inside each
    group, with the abandoned points of every restart dropped and the restarts recorded in
    ``info``.  The order is None when the rows already stand in group order and nothing is dropped."""
    streams, ntags, steps = voc.streams, len(voc.tags), cols.steps
    # Radix-friendly stable sort keeps file order inside each group.
    group = cols.stream.astype(np.int64) * ntags + cols.codes if len(streams) > 1 else cols.codes
    order: np.ndarray | None
    if len(streams) == 1 and bool((group[1:] >= group[:-1]).all()):
        order = None  # already in group order (a CSV is read column by column): no copies
    else:
        order = np.argsort(group, kind="stable")
    if not _needs_resolution(order, group, steps):
        return order, group
    if order is None:
        order = np.arange(group.size)
    g_sorted = group[order]
    s_sorted = steps[order]
    picked, info["attempts"] = longest_attempts(g_sorted, s_sorted, ntags, streams, voc.stream_fmt)
    if picked is not None:
        order, g_sorted, s_sorted = order[picked], g_sorted[picked], s_sorted[picked]
    same = g_sorted[1:] == g_sorted[:-1]
    back = same & (s_sorted[1:] < s_sorted[:-1])
    keep = _segmented_keep(g_sorted, s_sorted)
    for i in np.flatnonzero(back):
        gi = int(g_sorted[i + 1])
        info["restarts"].append(
            {
                "stream": streams[gi // ntags] if len(streams) > 1 else streams[0],
                "tag": voc.tags[gi % ntags],
                "step": int(s_sorted[i + 1]),
                "from_step": int(s_sorted[i]),
            }
        )
    return order[keep], group


def _add_resolved(got: Collected, voc: _Vocabulary, info: dict) -> None:
    """What readers that resolved restarts as they read found in their streams, merged into
    ``info`` as assembly reports it (appended runs in stream order)."""
    reports = [(voc.stream_code[r["source"]], r) for r in info["attempts"]]
    for stream, resolved in got.resolved:
        info["restarts"].extend({"stream": stream, "tag": tag, "step": int(step), "from_step": int(frm)}
                                for tag, step, frm in resolved["restarts"])
        if resolved["attempts"] is not None:
            reports.append((voc.stream_code[stream], {**resolved["attempts"], "source": stream}))
    if len(reports) > len(info["attempts"]):
        info["attempts"] = [r for _, r in sorted(reports, key=lambda sr: sr[0])]


def _keep_one_stream_per_tag(order: np.ndarray, group: np.ndarray, codes: np.ndarray, voc: _Vocabulary,
                             info: dict) -> np.ndarray:
    """Same tag in several streams: keep the stream with the most points (then the finer format),
    record the dropped copies in ``info``, and sort the rows by tag only."""
    streams, ntags = voc.streams, len(voc.tags)
    g_kept = group[order]
    # Points per (stream, tag) present, sparse: 50,000 one-tag files by 50 tags is no 2.5M-cell grid.
    present, counts = np.unique(g_kept, return_counts=True)
    p_stream, p_tag = present // ntags, present % ntags
    by_tag = np.argsort(p_tag, kind="stable")  # streams stay in ascending order within a tag
    p_stream, p_tag, counts = p_stream[by_tag], p_tag[by_tag], counts[by_tag]
    edges = np.flatnonzero(np.diff(p_tag)) + 1
    drop_groups = []
    for lo, hi in zip(np.concatenate([[0], edges]).tolist(), np.concatenate([edges, [p_tag.size]]).tolist()):
        if hi - lo < 2:
            continue
        tc = int(p_tag[lo])
        cands = p_stream[lo:hi].tolist()
        count = dict(zip(cands, counts[lo:hi].tolist()))
        best = min(cands, key=lambda s: (-count[s], FORMAT_PRIORITY.get(voc.stream_fmt[s], 9), s))
        dropped = [s for s in cands if s != best]
        drop_groups += [s * ntags + tc for s in dropped]
        info["duplicates"].append({"tag": voc.tags[tc], "kept": streams[best], "dropped": [streams[s] for s in dropped]})
    if drop_groups:
        order = order[~np.isin(g_kept, np.asarray(drop_groups), kind="sort")]  # no lookup table as wide as the codes
    del g_kept
    # Within a tag the kept stream's steps are strictly increasing: sort by tag only.
    return order[np.argsort(codes[order], kind="stable")]


def _frame(cols: _Columns, voc: _Vocabulary, order: np.ndarray | None) -> Any:
    """The long DataFrame in ``order``, built one column at a time, each input column released
    as soon as it is copied."""
    import pandas as pd

    def pick(column: np.ndarray) -> np.ndarray:
        return column if order is None else column[order]

    out: dict[str, Any] = {}
    out["tag"] = pd.Categorical.from_codes(pick(cols.codes), categories=pd.Index(voc.tags, dtype=object))
    cols.codes = None  # type: ignore[assignment]
    out["step"] = pick(cols.steps)
    cols.steps = None  # type: ignore[assignment]
    out["value"] = pick(cols.values)
    cols.values = None  # type: ignore[assignment]
    out["wall_time"] = pick(cols.walls)
    cols.walls = None  # type: ignore[assignment]
    out["source"] = pd.Categorical.from_codes(pick(cols.src), categories=pd.Index(voc.sources, dtype=object))
    cols.src = cols.stream = None  # type: ignore[assignment]
    return pd.DataFrame(out, copy=False)


def _summarise_restarts(events: list[dict]) -> list[dict]:
    """One entry per (stream, resumed step): how many tags restarted there."""
    merged: dict[tuple[str, int], dict] = {}
    for e in events:
        key = (e["stream"], e["step"])
        m = merged.setdefault(key, {"source": e["stream"], "step": e["step"], "from_step": e["from_step"], "tags": []})
        m["from_step"] = max(m["from_step"], e["from_step"])
        if e["tag"] not in m["tags"]:
            m["tags"].append(e["tag"])
    out = sorted(merged.values(), key=lambda m: (m["source"], m["step"]))
    for m in out:
        m["tags"] = sorted(m["tags"])
    return out
