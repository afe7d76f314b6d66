"""TFRecord framing: where each record starts, how long it is, and whether its length is sound.

An event file is a TFRecord stream (``uint64 length | uint32 masked CRC of length | payload |
uint32 masked CRC of payload``).  :func:`_frame` walks it, predicting long stretches of record
offsets from the cycle of lengths one writer repeats (:func:`_find_period`, :func:`_predict`) and
verifying each prediction; :func:`_bad_length_crc` checks the length CRCs of all framed records at
once and :func:`_resync` finds the next sound header after a corrupt one.
"""

from __future__ import annotations

import struct

import numpy as np

from trainfix.diagnostics.ingest.tensorboard.crc import crc_of_u64

_HEADER = 12  # uint64 length + uint32 masked crc
_FOOTER = 4
_MAX_RECORD = 1 << 31  # a longer "length" is corrupt, not data

_U64 = struct.Struct("<Q")


def _gather(u8: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """Rows of ``width`` bytes starting at each offset (caller guarantees bounds)."""
    return u8[offsets[:, None] + np.arange(width, dtype=np.int64)[None, :]]


def _typed(u8: np.ndarray, dtype: str) -> np.ndarray:
    """A view of ``u8`` as ``dtype`` starting at *every* byte (stride 1, unaligned reads).

    ``_typed(u8, "<u8")[offsets]`` reads one little-endian uint64 at each byte offset in one
    vectorised take, without building an index matrix.
    """
    size = np.dtype(dtype).itemsize
    n = max(0, u8.shape[0] - size + 1)
    return np.ndarray((n,), dtype=dtype, buffer=u8, offset=0, strides=(1,))


def _u64_at(u8: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    return _typed(u8, "<u8")[offsets]


#: The longest logging cycle (records per step: tags plus anything else written every step) the
#: walker predicts; a wider cycle is still read exactly, one record at a time.
MAX_PERIOD = 4096
#: Records walked one by one after which the walker looks for a cycle again.
_CHECK_AT = frozenset(2**k for k in range(3, 14))


class _Lengths:
    """The record lengths framed last, carried from block to block, and the cycle found in them."""

    def __init__(self) -> None:
        self.recent: list[int] = []
        self.period = 0  # length of the cycle found last (0: none yet)

    def add(self, lengths: list[int]) -> None:
        self.recent.extend(lengths)
        if len(self.recent) > 4 * MAX_PERIOD:
            del self.recent[: -2 * MAX_PERIOD]


def _frame(buf: bytes, u8: np.ndarray, limit: int, history: _Lengths | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Record starts and payload lengths of the complete records in ``buf[:limit]``.

    Returns (starts, lengths, end) where ``end`` is where the first incomplete record starts.
    Lengths are not trusted yet: the caller checks their CRCs.  After 8, 16, 32, ... records
    walked one by one, the walker looks for the repeating cycle of lengths in ``history`` (the
    lengths framed last, carried from block to block by the caller; one record per tag per step,
    so the cycle is as long as the number of tags) and, when it finds one, lets :func:`_predict`
    jump ahead.
    """
    if history is None:
        history = _Lengths()
    parts_s: list[np.ndarray] = []
    parts_l: list[np.ndarray] = []
    starts: list[int] = []
    lens: list[int] = []
    pos = 0
    walked = 0  # records walked one by one since the last prediction
    unpack = _U64.unpack_from
    while pos + _HEADER <= limit:
        if walked in _CHECK_AT:
            period = _find_period(history)
            got = _predict(u8, pos, period, limit) if period is not None else None
            if got is not None:
                s, ln, pos = got
                parts_s += [np.asarray(starts, dtype=np.int64), s]
                parts_l += [np.asarray(lens, dtype=np.int64), ln]
                starts, lens = [], []
                history.add(ln[-2 * MAX_PERIOD :].tolist())
                walked = 0
                continue
            if walked == 2 * MAX_PERIOD:
                walked = 0
        (length,) = unpack(buf, pos)
        end = pos + _HEADER + length + _FOOTER
        if length > _MAX_RECORD or end > limit:
            break
        starts.append(pos)
        lens.append(length)
        history.recent.append(length)
        walked += 1
        pos = end
    history.add([])
    parts_s.append(np.asarray(starts, dtype=np.int64))
    parts_l.append(np.asarray(lens, dtype=np.int64))
    return np.concatenate(parts_s), np.concatenate(parts_l), pos


def _find_period(history: _Lengths) -> list[int] | None:
    """The cycle of lengths that explains the longest stretch at the end of ``history``.

    For each period ``p`` the stretch is how many trailing lengths equal the one ``p`` earlier.
    The longest stretch wins, not the shortest period that repeats twice: 100 tags whose names
    fall into groups of equal length repeat a short period for a while, but only the true cycle
    (one record per tag) explains the whole history.  At least two full cycles must be seen.
    Returns the last ``p`` lengths, or None.
    """
    n = min(len(history.recent), 2 * MAX_PERIOD)
    if n < 4:
        return None
    h = np.asarray(history.recent[-n:], dtype=np.int64)
    p0 = history.period  # the cycle found last time usually still explains everything
    if 0 < p0 <= n // 2 and np.array_equal(h[p0:], h[:-p0]):
        return h[n - p0 :].tolist()
    ps = np.arange(1, n // 2 + 1)
    cand = ps[h[n - 1 - ps] == h[n - 1]]
    best_p, best_len = 0, 0
    for p in cand.tolist():
        if n - p <= best_len:
            break  # no longer period can explain a longer stretch
        same = h[p:] == h[:-p]
        stretch = int(same.size) if same.all() else int(same[::-1].argmin())  # trailing matches
        if stretch >= p and stretch > best_len:
            best_p, best_len = p, stretch
    if not best_p:
        return None
    history.period = best_p
    return h[n - best_p :].tolist()


def _predict(u8: np.ndarray, pos: int, period: list[int], limit: int):
    """Extend the walk from ``pos`` by assuming ``period`` (a cycle of lengths) repeats; verify
    every predicted length with numpy and keep the prefix that matches."""
    cyc = np.asarray(period, dtype=np.int64)
    sizes = cyc + (_HEADER + _FOOTER)
    block = int(sizes.sum())
    rel = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    all_starts, all_lens = [], []
    while True:
        nblocks = min((limit - pos) // block, max(1, 65536 // len(cyc)))
        if nblocks < 1:
            break
        cand = (pos + np.arange(nblocks, dtype=np.int64)[:, None] * block + rel[None, :]).ravel()
        want = np.tile(cyc, nblocks)
        ok = _u64_at(u8, cand) == want.astype(np.uint64)
        k = int(ok.size if ok.all() else np.argmin(ok))
        if k == 0:
            break
        all_starts.append(cand[:k])
        all_lens.append(want[:k])
        pos = int(cand[k - 1] + want[k - 1] + _HEADER + _FOOTER)
        if k < ok.size:
            break
    if not all_starts:
        return None
    return np.concatenate(all_starts), np.concatenate(all_lens), pos


def _resync(u8: np.ndarray, start: int, limit: int) -> int | None:
    """The next offset after ``start`` whose 8 length bytes carry a valid masked CRC."""
    window = 1 << 16
    pos = start
    w64, w32 = _typed(u8, "<u8"), _typed(u8, "<u4")
    while pos + _HEADER <= limit:
        stop = min(limit - _HEADER + 1, pos + window)
        cand = np.arange(pos, stop, dtype=np.int64)
        lens = w64[cand]
        hit = np.nonzero((crc_of_u64(lens) == w32[cand + 8]) & (lens < _MAX_RECORD))[0]
        if hit.size:
            return int(cand[hit[0]])
        pos = stop
    return None


def _frame_from(buf: bytes, u8: np.ndarray, pos: int, limit: int, history: _Lengths | None = None):
    """Frame starting at ``pos`` (after a resync); offsets returned are absolute."""
    view = memoryview(buf)[pos:]
    starts, lens, end = _frame(view, u8[pos:], limit - pos, history)
    return starts + pos, lens, end + pos


def _bad_length_crc(u8: np.ndarray, starts: np.ndarray) -> int | None:
    """Index of the first record whose length CRC does not match, or None."""
    if not starts.size:
        return None
    import pandas as pd

    # The CRC depends only on the length, and one file has few distinct lengths.
    inverse, uniq = pd.factorize(_typed(u8, "<u8")[starts])
    bad = crc_of_u64(np.asarray(uniq, dtype=np.uint64))[inverse] != _typed(u8, "<u4")[starts + 8]
    if not bad.any():
        return None
    return int(np.argmax(bad))
