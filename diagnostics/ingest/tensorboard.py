"""TensorBoard event files -> scalar arrays, fast, without TensorFlow or protobuf objects.

Why a reader of our own: TensorBoard's ``EventAccumulator`` (and tbparse, which sits on it) parses
every record into Python protobuf objects, samples 10,000 points per tag unless told otherwise, and
checks CRCs in pure Python: a million scalars take 15-20 s.  Here:

1. **Framing.**  An event file is a TFRecord stream: ``uint64 length | uint32 masked CRC of length |
   payload | uint32 masked CRC of payload``.  The walk is sequential, but one writer's scalar
   records repeat a short cycle of lengths (one record per tag per step), so after a few records
   the walker predicts the next thousands of record offsets from the cycle and *verifies* each
   predicted length with numpy.  Each prediction starts at a verified record boundary, so an
   accepted prefix is exactly what a sequential walk would find; the first mismatch falls back to
   the plain walk.
2. **Length CRCs are checked, payload CRCs are not (by default).**  The 4-byte CRC over each length
   is verified for all records at once with a vectorised CRC-32C: a flipped length would otherwise
   send the walk into garbage.  When it fails we resynchronise at the next offset whose length CRC
   is valid, and count one corrupt record.  Payload CRCs are skipped because checking them costs
   more than decoding (they cover every byte) while a damaged payload is still caught when it no
   longer parses; ``verify_payload_crc=True`` checks them too.
3. **Decoding.**  Scalar events written by ``SummaryWriter``/tensorboardX share one wire layout
   (``wall_time``, ``step``, one ``Summary.Value`` with ``tag`` and ``simple_value``).  Records of
   that layout are decoded column-wise with numpy (varint steps included); every other record
   goes through a small wire-format decoder that also reads TF2 tensor scalars (``float_val``,
   ``double_val``, ``int_val``, ``int64_val``, ``half_val``, ``bool_val``, ``tensor_content``
   of any numeric dtype) and skips histograms, images, audio, text and graphs cheaply.
4. **Bad input.**  A truncated last record (a run still being written) ends the read at the last
   complete record and is reported as ``truncated``; a record that does not parse is skipped and
   counted.

The file is read in blocks so memory stays near the size of the result.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainfix.diagnostics.ingest.safe_read import open_input

BLOCK_BYTES = 1 << 20  # read size; records spanning a block edge are carried over
_HEADER = 12  # uint64 length + uint32 masked crc
_FOOTER = 4
_MAX_RECORD = 1 << 31  # a longer "length" is corrupt, not data

# --- CRC-32C (Castagnoli), vectorised over rows -----------------------------------------------------


def _crc_table() -> np.ndarray:
    poly = 0x82F63B78
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table[i] = c
    return table


_CRC_TABLE = _crc_table()
_MASK_DELTA = np.uint32(0xA282EAD8)


def masked_crc32c_rows(rows: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of each row of a 2-D uint8 array (all rows the same length)."""
    crc = np.full(rows.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(rows.shape[1]):
        crc = _CRC_TABLE[(crc ^ rows[:, j]) & 0xFF] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    return (((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA).astype(np.uint32)


def masked_crc32c(data: bytes) -> int:
    """Masked CRC-32C of one byte string (used for payload checks and tests)."""
    if not data:
        rows = np.zeros((1, 0), dtype=np.uint8)
    else:
        rows = np.frombuffer(data, dtype=np.uint8)[None, :]
    return int(masked_crc32c_rows(rows)[0])


# --- results ---------------------------------------------------------------------------------------


@dataclass
class EventScalars:
    """Scalars of one event file in file order: ``codes`` index ``tags``."""

    tags: list[str]
    codes: np.ndarray  # int32
    steps: np.ndarray  # int64
    values: np.ndarray  # float64
    wall_times: np.ndarray  # float64
    records: int = 0
    corrupt_records: int = 0
    truncated: bool = False
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.steps.shape[0])


class _Out:
    """Growable column store (amortised doubling, one copy per growth)."""

    def __init__(self, capacity: int):
        capacity = max(1024, capacity)
        self.n = 0
        self.codes = np.empty(capacity, dtype=np.int32)
        self.steps = np.empty(capacity, dtype=np.int64)
        self.values = np.empty(capacity, dtype=np.float64)
        self.walls = np.empty(capacity, dtype=np.float64)
        self.tag_index: dict[str, int] = {}
        self.tags: list[str] = []
        self.corrupt = 0

    def code(self, tag: str) -> int:
        c = self.tag_index.get(tag)
        if c is None:
            c = self.tag_index[tag] = len(self.tags)
            self.tags.append(tag)
        return c

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = self.steps.shape[0]
        if need <= cap:
            return
        cap = max(need, int(cap * 1.25))
        for name in ("codes", "steps", "values", "walls"):
            old = getattr(self, name)
            new = np.empty(cap, dtype=old.dtype)
            new[: self.n] = old[: self.n]
            setattr(self, name, new)

    def extend(self, codes, steps, values, walls) -> None:
        k = len(steps)
        if not k:
            return
        self.reserve(k)
        s = slice(self.n, self.n + k)
        self.codes[s] = codes
        self.steps[s] = steps
        self.values[s] = values
        self.walls[s] = walls
        self.n += k

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        n = self.n
        # Shrink without keeping both: copy only when the slack is large.
        out = []
        for arr in (self.codes, self.steps, self.values, self.walls):
            out.append(arr[:n].copy() if arr.shape[0] > n * 1.25 + 1024 else arr[:n])
        self.codes = self.steps = self.values = self.walls = None  # type: ignore[assignment]
        return tuple(out)  # type: ignore[return-value]


# --- framing ---------------------------------------------------------------------------------------

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


def _crc_of_u64(words: np.ndarray) -> np.ndarray:
    """Masked CRC-32C of the 8 little-endian bytes of each uint64."""
    crc = np.full(words.shape[0], 0xFFFFFFFF, dtype=np.uint32)
    for j in range(8):
        byte = ((words >> np.uint64(8 * j)) & np.uint64(0xFF)).astype(np.uint32)
        crc = _CRC_TABLE[(crc ^ byte) & np.uint32(0xFF)] ^ (crc >> np.uint32(8))
    crc ^= np.uint32(0xFFFFFFFF)
    return (((crc >> np.uint32(15)) | (crc << np.uint32(17))) + _MASK_DELTA).astype(np.uint32)


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
        hit = np.nonzero((_crc_of_u64(lens) == w32[cand + 8]) & (lens < _MAX_RECORD))[0]
        if hit.size:
            return int(cand[hit[0]])
        pos = stop
    return None


# --- vectorised decode of the common scalar layout --------------------------------------------------


def _varints(u8: np.ndarray, offsets: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode one varint (at most 8 bytes, i.e. < 2**56) at each offset.

    Returns (value as int64, byte length; 0 when longer or malformed: those go the slow way).
    Offsets must leave 8 readable bytes (the caller clamps them).
    """
    words = _typed(u8, "<u8")[np.minimum(offsets, limit - 8)]
    vals = np.zeros(offsets.shape[0], dtype=np.uint64)
    nbytes = np.zeros(offsets.shape[0], dtype=np.int64)
    open_ = np.ones(offsets.shape[0], dtype=bool)
    for j in range(8):
        byte = (words >> np.uint64(8 * j)) & np.uint64(0xFF)
        vals |= np.where(open_, (byte & np.uint64(0x7F)) << np.uint64(7 * j), np.uint64(0))
        ends = open_ & (byte < 0x80)
        nbytes[ends] = j + 1
        open_ &= ~ends
        if not open_.any():
            break
    return vals.view(np.int64), nbytes


def _decode_simple(u8: np.ndarray, starts: np.ndarray, lens: np.ndarray, limit: int, out: _Out):
    """Decode records of the SummaryWriter scalar layout.

    Returns (mask of records handled, codes, steps, values, wall times) for the handled ones.
    """
    p = starts + _HEADER  # payload starts
    end = p + lens
    ok = (lens >= 20) & (u8[np.minimum(p, limit - 1)] == 0x09)
    has_step = ok & (u8[np.minimum(p + 9, limit - 1)] == 0x10)
    step = np.zeros(p.shape[0], dtype=np.int64)
    q = p + 9
    if has_step.any():
        sv, sn = _varints(u8, p + 10, limit)
        ok &= ~has_step | (sn > 0)
        step = np.where(has_step, sv, 0)
        q = np.where(has_step, p + 10 + sn, q)
    # One 8-byte read holds: 0x2A summary-len 0x0A value-len 0x0A tag-len.
    w = _typed(u8, "<u8")[np.minimum(q, limit - 8)]
    ok &= (w & np.uint64(0xFF00FF00FF)) == np.uint64(0x0A000A002A)
    slen = ((w >> np.uint64(8)) & np.uint64(0xFF)).astype(np.int64)
    vlen = ((w >> np.uint64(24)) & np.uint64(0xFF)).astype(np.int64)
    tlen = ((w >> np.uint64(40)) & np.uint64(0xFF)).astype(np.int64)
    ok &= (slen < 0x80) & (vlen < 0x80) & (tlen < 0x80)
    ok &= (q + 2 + slen == end) & (vlen + 2 == slen) & (tlen + 7 == vlen)
    fpos = np.minimum(q + 6 + tlen, limit - 5)
    ok &= u8[fpos] == 0x15
    sel = np.nonzero(ok)[0]
    if not sel.size:
        return ok, None
    p, q, tlen, step, fpos = p[sel], q[sel], tlen[sel], step[sel], fpos[sel]
    walls = _typed(u8, "<f8")[p + 1]
    with np.errstate(invalid="ignore"):  # signalling NaNs stay NaN (they are evidence), quietly
        values = _typed(u8, "<f4")[fpos + 1].astype(np.float64)
    codes = _tag_codes(u8, q + 6, tlen, out)
    return ok, (codes, step, values, walls)


def _tag_codes(u8: np.ndarray, starts: np.ndarray, tlen: np.ndarray, out: _Out) -> np.ndarray:
    """Tag code of every record, from the tag bytes at ``starts`` (lengths ``tlen``).

    One pass for all lengths: the key is (length, first 8 bytes, last 8 bytes), factorised; every
    row is then checked against its group's first row (middle words too, for tags longer than 16
    bytes), so equal keys with different tags cannot be merged.  Should a check fail, each
    length is handled exactly on its own (:func:`_unique_strings`).
    """
    import pandas as pd

    w64 = _typed(u8, "<u8")
    tl = tlen.astype(np.int64)
    limit = u8.shape[0]
    # Reading 8 bytes at the tag start is safe: a scalar tag is followed by 5 value bytes and the
    # record's 4-byte CRC.
    first = w64[np.minimum(starts, limit - 8)]
    short = tl < 8
    if short.any():
        shift = np.where(short, 8 * tl, 0).astype(np.uint64)
        mask = np.where(short, (np.uint64(1) << shift) - np.uint64(1), np.uint64(0xFFFFFFFFFFFFFFFF))
        first = first & mask
    last = np.where(short, np.uint64(0), w64[np.maximum(starts + tl - 8, 0)])
    key = first ^ (last * np.uint64(0x9E3779B97F4A7C15)) ^ (tl.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F))
    inverse, uniq = pd.factorize(key)
    rep = np.empty(len(uniq), dtype=np.int64)
    rep[inverse[::-1]] = np.arange(len(inverse) - 1, -1, -1)
    ok = (tl == tl[rep][inverse]) & (first == first[rep][inverse]) & (last == last[rep][inverse])
    longest = int(tl.max()) if tl.size else 0
    k = 8
    while k < longest - 8:  # words strictly between the first and the last one
        inside = tl - 8 > k
        word = w64[np.minimum(starts + k, limit - 8)]
        ok &= ~inside | (word == word[rep][inverse])
        k += 8
    if not ok.all():  # pragma: no cover - needs two different tags with equal key words
        codes = np.empty(starts.shape[0], dtype=np.int32)
        for length in np.flatnonzero(np.bincount(tl, minlength=1)):
            grp = np.flatnonzero(tl == length)
            if length == 0:
                codes[grp] = out.code("")
                continue
            firsts, inv = _unique_strings(u8, starts[grp], int(length))
            local = np.asarray([out.code(bytes(u8[f : f + length]).decode("utf-8", "replace")) for f in firsts],
                               dtype=np.int32)
            codes[grp] = local[inv]
        return codes
    local = np.asarray(
        [out.code(bytes(u8[int(starts[r]) : int(starts[r] + tl[r])]).decode("utf-8", "replace")) for r in rep],
        dtype=np.int32,
    )
    return local[inverse]


def _unique_strings(u8: np.ndarray, starts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct byte strings of ``width`` bytes at ``starts``.

    Returns (byte offset of one occurrence of each distinct string, inverse index).  Strings are
    read as uint64 words (the last one masked), hashed, factorised, then verified word by word,
    so a hash collision cannot merge two tags.
    """
    import pandas as pd

    w64 = _typed(u8, "<u8")
    nwords = (width + 7) // 8
    limit = u8.shape[0]
    words = []
    for k in range(nwords):
        take = min(8, width - 8 * k)
        off = starts + 8 * k
        if take == 8:
            words.append(w64[off])
        else:  # read the 8 bytes that end at the string's end, keep the top ``take``
            wd = w64[np.minimum(off + take - 8, limit - 8)] >> np.uint64(8 * (8 - take))
            words.append(wd)
    h = np.zeros(starts.shape[0], dtype=np.uint64)
    mult = np.uint64(1099511628211)
    for wd in words:
        h = (h ^ wd) * mult
        h ^= h >> np.uint64(29)
    inverse, uniq_h = pd.factorize(h)
    first = np.empty(len(uniq_h), dtype=np.int64)
    first[inverse[::-1]] = np.arange(len(inverse) - 1, -1, -1)
    same = np.ones(starts.shape[0], dtype=bool)
    for wd in words:
        same &= wd == wd[first][inverse]
    if not same.all():  # a collision: exact but slower
        rows = np.ascontiguousarray(_gather(u8, starts, width))
        _, first, inv = np.unique(rows, axis=0, return_index=True, return_inverse=True)
        return starts[first], inv.ravel()
    return starts[first], inverse


# --- generic wire decoder for every other record ----------------------------------------------------


class _Malformed(Exception):
    pass


def _varint(b: bytes, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise _Malformed("varint")
        c = b[i]
        i += 1
        result |= (c & 0x7F) << shift
        if c < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, i  # a 10th byte may carry bits past 2**64: protobuf drops them
        shift += 7


def _fields(b: bytes):
    """Yield (field number, wire type, value) of one message; value is int or bytes."""
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            if i + 8 > n:
                raise _Malformed("fixed64")
            v, i = b[i : i + 8], i + 8
        elif wt == 2:
            ln, i = _varint(b, i)
            if i + ln > n:
                raise _Malformed("length")
            v, i = b[i : i + ln], i + ln
        elif wt == 5:
            if i + 4 > n:
                raise _Malformed("fixed32")
            v, i = b[i : i + 4], i + 4
        else:
            raise _Malformed(f"wire type {wt}")
        yield num, wt, v


# TensorFlow DataType enum -> numpy dtype for tensor_content.
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 17: "<u2",
           19: "<f2", 22: "<u4", 23: "<u8"}
_NOT_SCALAR_PLUGINS = {"histograms", "images", "audio", "text", "pr_curves", "hparams", "graphs",
                       "projector", "mesh", "custom_scalars", "distributions"}


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _tensor_scalar(b: bytes) -> float | None:
    """The value of a one-element numeric TensorProto, else None."""
    dtype = None
    elems = 1
    content = None
    vals: list[float] = []
    for num, wt, v in _fields(b):
        if num == 1 and wt == 0:
            dtype = v
        elif num == 2 and wt == 2:  # TensorShapeProto: dim (1) { size (1) }, unknown_rank (3)
            for dn, dwt, dv in _fields(v):
                if dn == 1 and dwt == 2:
                    for sn, swt, sv in _fields(dv):
                        if sn == 1 and swt == 0 and _signed64(sv) != 1:
                            return None  # not one element: decided here, never by multiplying dims (quadratic)
        elif num == 4 and wt == 2:
            content = v
        elif num in (5, 6) and wt in (1, 2, 5):  # float_val / double_val (packed or not)
            fmt = "<f" if num == 5 else "<d"
            size = 4 if num == 5 else 8
            data = v if isinstance(v, bytes) else b""
            vals.extend(x for (x,) in struct.iter_unpack(fmt, data[: len(data) // size * size]))
        elif num in (7, 10, 11, 13, 16, 17):  # int_val, int64_val, bool_val, half_val, uint32, uint64
            if wt == 0:
                raw = [v]
            else:
                raw, i = [], 0
                while i < len(v):
                    x, i = _varint(v, i)
                    raw.append(x)
            if num == 13:
                vals.extend(float(np.frombuffer(struct.pack("<H", x & 0xFFFF), "<f2")[0]) for x in raw)
            elif num in (7, 10):
                vals.extend(float(_signed64(x)) for x in raw)
            else:
                vals.extend(float(x) for x in raw)
        elif num == 8:  # string_val: not a number
            return None
    if elems != 1:
        return None
    if content is not None and dtype in _DTYPES:
        arr = np.frombuffer(content, dtype=_DTYPES[dtype])
        return float(arr[0]) if arr.size == 1 else None
    if len(vals) == 1:
        return vals[0]
    return None


def _plugin_name(meta: bytes) -> str:
    for num, wt, v in _fields(meta):
        if num == 1 and wt == 2:
            for pn, pwt, pv in _fields(v):
                if pn == 1 and pwt == 2:
                    return pv.decode("utf-8", "replace")
    return ""


def _decode_generic(payload: bytes, out: _Out) -> list[tuple[int, int, float, float]]:
    """Decode one Event of any shape: its scalar values as (code, step, value, wall_time)."""
    wall = 0.0
    step = 0
    summary = None
    for num, wt, v in _fields(payload):
        if num == 1 and wt == 1:
            (wall,) = struct.unpack("<d", v)
        elif num == 2 and wt == 0:
            step = _signed64(v)
        elif num == 5 and wt == 2:
            summary = v
    found: list[tuple[int, int, float, float]] = []
    if summary is None:
        return found
    for num, wt, v in _fields(summary):
        if num != 1 or wt != 2:
            continue
        tag = ""
        value = None
        tensor = None
        plugin = ""
        skip = False
        for vn, vwt, vv in _fields(v):
            if vn == 1 and vwt == 2:
                tag = vv.decode("utf-8", "replace")
            elif vn == 7 and vwt == 2 and not tag:  # node_name: old writers put the tag here
                tag = vv.decode("utf-8", "replace")
            elif vn == 2 and vwt == 5:
                (value,) = struct.unpack("<f", vv)
            elif vn == 8 and vwt == 2:
                tensor = vv
            elif vn == 9 and vwt == 2:
                plugin = _plugin_name(vv)
            elif vn in (3, 4, 5, 6):  # histograms, images, audio
                skip = True
        if skip or plugin in _NOT_SCALAR_PLUGINS:
            continue
        if value is None and tensor is not None:
            value = _tensor_scalar(tensor)
        if value is None:
            continue
        found.append((out.code(tag), step, float(value), wall))
    return found


# --- the reader ------------------------------------------------------------------------------------


def read_events(path: str | Path, *, verify_payload_crc: bool = False, block_bytes: int = BLOCK_BYTES) -> EventScalars:
    """Every scalar of one event file, in file order (no sampling).

    Never raises for bad content: truncation and corrupt records are reported on the result.
    Raises OSError when the file cannot be opened.
    """
    path = Path(path)
    size = path.stat().st_size
    out = _Out(min(size // 16, block_bytes // 16) + 1024)
    sized = False
    records = 0
    corrupt = 0
    truncated = False
    carry = b""
    want = block_bytes
    history = _Lengths()  # record lengths framed last: the walker's cycle finder reads them
    with open_input(path) as fh:  # regular files only, within the size and time budget
        eof = False
        while not eof:
            chunk = fh.read(want)
            eof = len(chunk) < want
            want = block_bytes
            buf = carry + chunk if carry else chunk
            del chunk
            carry = b""
            pos = 0
            limit = len(buf)
            u8 = np.frombuffer(buf, dtype=np.uint8)
            while True:
                if pos == 0:
                    starts, lens, end = _frame(buf, u8, limit, history)
                else:
                    starts, lens, end = _frame_from(buf, u8, pos, limit, history)
                bad = _bad_length_crc(u8, starts)
                bad_at = int(starts[bad]) if bad is not None else None
                if bad_at is None and end + _HEADER <= limit and _bad_length_crc(u8, np.asarray([end])) is not None:
                    bad_at, bad = end, starts.size  # the pending record's length is itself corrupt
                if bad_at is not None:
                    # Everything before the bad header is sound; re-frame after it.
                    records += _decode_block(buf, u8, starts[:bad], lens[:bad], limit, out, verify_payload_crc)
                    corrupt += 1
                    nxt = _resync(u8, bad_at + 1, limit)
                    if nxt is None:
                        tail = max(bad_at + 1, limit - (_HEADER - 1))  # a header may span blocks
                        carry = bytes(buf[tail:]) if not eof else b""
                        break
                    pos = nxt
                    continue
                records += _decode_block(buf, u8, starts, lens, limit, out, verify_payload_crc)
                if not sized and out.n and not eof:
                    # Size the columns once from the first block's density (+3%): no doubling copies.
                    out.reserve(int(out.n * size / max(1, end) * 1.03) - out.n + 1024)
                    sized = True
                if end < limit:
                    if eof:
                        truncated = True
                    else:
                        carry = bytes(buf[end:])
                        if len(carry) >= _HEADER:  # a record longer than a block: read all of it at once
                            (length,) = _U64.unpack_from(carry, 0)
                            need = _HEADER + length + _FOOTER - len(carry)
                            # never ask for more than the file still holds (a damaged length
                            # that passed its CRC by chance must not allocate gigabytes)
                            want = max(block_bytes, min(need, size - fh.tell() + 1))
                break
            del u8, buf
    corrupt += out.corrupt
    codes, steps, values, walls = out.finish()
    res = EventScalars(out.tags, codes, steps, values, walls, records=records, corrupt_records=corrupt,
                       truncated=truncated)
    if truncated:
        res.notes.append("last record incomplete (file still being written?): read up to it")
    if corrupt:
        res.notes.append(f"{corrupt} corrupt record(s) skipped")
    return res


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
    bad = _crc_of_u64(np.asarray(uniq, dtype=np.uint64))[inverse] != _typed(u8, "<u4")[starts + 8]
    if not bad.any():
        return None
    return int(np.argmax(bad))


def _decode_block(buf, u8, starts, lens, limit, out: _Out, verify_payload_crc: bool) -> int:
    """Decode framed records in file order; return how many records were framed."""
    if not starts.size:
        return 0
    framed = int(starts.size)
    if verify_payload_crc:
        keep = np.ones(starts.size, dtype=bool)
        for i in range(starts.size):
            s, ln = int(starts[i]), int(lens[i])
            payload = bytes(buf[s + _HEADER : s + _HEADER + ln])
            (stored,) = struct.unpack_from("<I", buf, s + _HEADER + ln)
            keep[i] = masked_crc32c(payload) == stored
        if not keep.all():
            out.corrupt += int((~keep).sum())
            starts, lens = starts[keep], lens[keep]
            if not starts.size:
                return framed
    handled, fast = _decode_simple(u8, starts, lens, limit, out)
    rest = np.nonzero(~handled)[0]
    slow: list[tuple[int, int, float, float]] = []
    slow_idx: list[int] = []
    for i in rest:
        s, ln = int(starts[i]), int(lens[i])
        try:
            got = _decode_generic(bytes(buf[s + _HEADER : s + _HEADER + ln]), out)
        except (_Malformed, struct.error, ValueError):
            out.corrupt += 1
            continue
        slow.extend(got)
        slow_idx.extend([int(i)] * len(got))
    if not slow:
        if fast is not None:
            out.extend(*fast)
        return framed
    s_codes = np.asarray([r[0] for r in slow], dtype=np.int32)
    s_steps = np.asarray([r[1] for r in slow], dtype=np.int64)
    s_vals = np.asarray([r[2] for r in slow], dtype=np.float64)
    s_walls = np.asarray([r[3] for r in slow], dtype=np.float64)
    if fast is None:
        out.extend(s_codes, s_steps, s_vals, s_walls)
        return framed
    # Interleave both kinds back into file order (per tag, order is what restarts are judged on).
    order = np.argsort(np.concatenate([np.nonzero(handled)[0], np.asarray(slow_idx)]), kind="stable")
    out.extend(*(np.concatenate([f, sl])[order] for f, sl in zip(fast, (s_codes, s_steps, s_vals, s_walls))))
    return framed
