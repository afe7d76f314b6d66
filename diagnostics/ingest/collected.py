"""The points of every table of a run, gathered into one set of columns as the tables are read.

A run of 50,000 one-line logs would otherwise hold 50,000 :class:`.table.Table` objects (four
numpy arrays, lists and dicts each: about 1 KB a file for a point or two) until assembly.
:class:`Collected` takes each table's points as soon as it is read and lets the table go: a
small table's points are appended to flat buffers (36 bytes a point), a large one's arrays are
kept as they are (no copy).  What assembly needs of the tables (tags, files, streams and their
formats, what readers resolved) is kept once, in first-seen order, as
:func:`.table.assemble` numbers them.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np

# A table with at least this many points keeps its own arrays (a chunk); smaller ones share buffers.
OWN_CHUNK = 4096


@dataclass
class Chunk:
    """Points of one large table, or of many small ones: tag codes in first-seen order, and the
    table (file) and stream of each point, as one number when the whole chunk shares it."""

    codes: np.ndarray
    steps: np.ndarray
    values: np.ndarray
    walls: np.ndarray
    src: np.ndarray | int
    stream: np.ndarray | int


class Collected:
    """Every non-empty table's points and what assembly needs to know about it (see the module
    docstring); :meth:`add` takes over a table's arrays."""

    def __init__(self) -> None:
        self.tag_code: dict[str, int] = {}
        self.sources: list[str] = []  # one per table added, in order
        self.stream_code: dict[str, int] = {}
        self.stream_fmt: list[str] = []  # by stream code: the format of its last table
        self.resolved: list[tuple[str, dict]] = []  # (stream, what its reader resolved)
        self.chunks: list[Chunk] = []
        self.points = 0
        self._small = self._buffers()

    @staticmethod
    def _buffers() -> dict[str, array]:
        return {"codes": array("i"), "steps": array("q"), "values": array("d"), "walls": array("d"),
                "src": array("i"), "stream": array("i")}

    def __len__(self) -> int:
        return len(self.sources)

    def add(self, t: Any) -> None:
        """Take the points of table ``t`` (it keeps its names, tags and notes, not its arrays)."""
        n = len(t)
        if not n:
            return
        lut = np.asarray([self.tag_code.setdefault(tag, len(self.tag_code)) for tag in t.tags], dtype=np.int32)
        codes = lut[t.codes] if lut.size else np.asarray(t.codes, dtype=np.int32)
        src = len(self.sources)
        self.sources.append(t.source)
        stream = self.stream_code.setdefault(t.stream, len(self.stream_code))
        if stream == len(self.stream_fmt):
            self.stream_fmt.append(t.fmt)
        else:
            self.stream_fmt[stream] = t.fmt
        if t.resolved is not None:
            self.resolved.append((t.stream, t.resolved))
        if n >= OWN_CHUNK:
            self._flush()
            self.chunks.append(Chunk(codes, t.steps, t.values, t.wall_times, src, stream))
        else:
            b = self._small
            b["codes"].extend(codes.tolist())
            b["steps"].extend(np.asarray(t.steps, dtype=np.int64).tolist())
            b["values"].extend(np.asarray(t.values, dtype=np.float64).tolist())
            b["walls"].extend(np.asarray(t.wall_times, dtype=np.float64).tolist())
            b["src"].extend([src] * n)
            b["stream"].extend([stream] * n)
        self.points += n
        t.codes = t.steps = t.values = t.wall_times = None

    def _flush(self) -> None:
        b = self._small
        if not len(b["steps"]):
            return
        self.chunks.append(Chunk(np.frombuffer(b["codes"], dtype=np.intc).astype(np.int32),
                                 np.frombuffer(b["steps"], dtype=np.int64).copy(),
                                 np.frombuffer(b["values"], dtype=np.float64).copy(),
                                 np.frombuffer(b["walls"], dtype=np.float64).copy(),
                                 np.frombuffer(b["src"], dtype=np.intc).astype(np.int32),
                                 np.frombuffer(b["stream"], dtype=np.intc).astype(np.int32)))
        self._small = self._buffers()

    def take_chunks(self) -> list[Chunk]:
        """The chunks, in the order the points came (the collection keeps none of them)."""
        self._flush()
        chunks, self.chunks = self.chunks, []
        return chunks
