"""Column-wise decode of the one wire layout SummaryWriter and tensorboardX use for scalars.

Records of this layout (``wall_time``, ``step``, one ``Summary.Value`` with ``tag`` and
``simple_value``) are nearly every record of a training log, so they are decoded for all records
of a block at once with numpy; the records that do not match go to :mod:`.wire`.
"""

from __future__ import annotations

import numpy as np

from trainfix.diagnostics.ingest.tensorboard.columns import _Out
from trainfix.diagnostics.ingest.tensorboard.framing import _HEADER, _gather, _typed



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
