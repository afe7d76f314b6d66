"""Read one event file block by block: frame, check length CRCs, resync, decode, in file order."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from trainfix.diagnostics.ingest.safe_read import open_input
from trainfix.diagnostics.ingest.tensorboard.columns import EventScalars, _Out
from trainfix.diagnostics.ingest.tensorboard.crc import masked_crc32c
from trainfix.diagnostics.ingest.tensorboard.framing import (
    _FOOTER,
    _HEADER,
    _U64,
    _bad_length_crc,
    _frame,
    _frame_from,
    _Lengths,
    _resync,
)
from trainfix.diagnostics.ingest.tensorboard.scalar_layout import _decode_simple
from trainfix.diagnostics.ingest.tensorboard.wire import _decode_generic, _Malformed

BLOCK_BYTES = 1 << 20  # read size; records spanning a block edge are carried over


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
