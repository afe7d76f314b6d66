"""Write large TensorBoard event files fast, byte for byte what ``SummaryWriter.add_scalar`` writes.

Generating 10M scalars through torch's ``SummaryWriter`` takes minutes of CPU; the speed
benchmarks need such files, so this writes the same TFRecord stream with numpy: for each record
``uint64 length | masked CRC-32C of length | Event payload | masked CRC-32C of payload``, where
the payload is ``wall_time (field 1, double) | step (field 2, varint) | summary (field 5) { value
(field 1) { tag (field 1) | simple_value (field 2, float) } }`` -- the layout ``add_scalar``
produces (``tests``: :func:`check_against_summary_writer` compares with a real writer).
A file-version record (``brain.Event:2``) comes first, as every writer writes one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _varint_bytes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Varint encoding of non-negative int64 values: (bytes as (n, 10) uint8, byte count)."""
    v = values.astype(np.uint64).copy()
    out = np.zeros((v.shape[0], 10), dtype=np.uint8)
    nbytes = np.zeros(v.shape[0], dtype=np.int64)
    open_ = np.ones(v.shape[0], dtype=bool)
    for j in range(10):
        byte = (v & np.uint64(0x7F)).astype(np.uint8)
        v >>= np.uint64(7)
        more = v > 0
        out[:, j] = np.where(open_, byte | np.where(more, 0x80, 0).astype(np.uint8), 0)
        nbytes[open_ & ~more] = j + 1
        open_ &= more
    return out, nbytes


# --- one record at a time: the protobuf wire format and TFRecord framing, for hand-made events ---------


def varint(n: int) -> bytes:
    """Protobuf varint of a non-negative int."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def pb_field(num: int, wt: int, payload: bytes) -> bytes:
    """One protobuf field: its key, then ``payload`` (length-prefixed for wire type 2)."""
    return varint(num << 3 | wt) + (varint(len(payload)) + payload if wt == 2 else payload)


def tfrecord(payload: bytes) -> bytes:
    """One TFRecord; the payload CRC only for a small payload (the reader checks payload CRCs
    only when asked, and the pure-numpy CRC of a 1 MB payload is slow)."""
    import struct

    from trainfix.diagnostics.ingest.tensorboard import masked_crc32c

    head = struct.pack("<Q", len(payload))
    foot = masked_crc32c(payload) if len(payload) < 4096 else 0
    return head + struct.pack("<I", masked_crc32c(head)) + payload + struct.pack("<I", foot)


def scalar_event(step_bytes: bytes, tag: str, value: float, wall: float = 1.0) -> bytes:
    """An Event payload with one ``simple_value`` scalar; ``step_bytes`` is the step's varint (or
    any bytes a test wants there)."""
    import struct

    val = pb_field(1, 2, tag.encode()) + pb_field(2, 5, struct.pack("<f", value))
    return (pb_field(1, 1, struct.pack("<d", wall)) + pb_field(2, 0, step_bytes)
            + pb_field(5, 2, pb_field(1, 2, val)))


# --- many records at once, with numpy -----------------------------------------------------------------


def _masked_crc_rows(rows: np.ndarray) -> np.ndarray:
    from trainfix.diagnostics.ingest.tensorboard import masked_crc32c_rows

    return masked_crc32c_rows(rows)


def _records(payloads: list[bytes]) -> bytes:
    """TFRecord framing of a few payloads (slow path, for the header record)."""
    from trainfix.diagnostics.ingest.tensorboard import masked_crc32c

    out = bytearray()
    for p in payloads:
        ln = len(p).to_bytes(8, "little")
        out += ln + masked_crc32c(ln).to_bytes(4, "little") + p + masked_crc32c(p).to_bytes(4, "little")
    return bytes(out)


def file_version_record(wall: float = 1.7e9) -> bytes:
    import struct

    body = b"brain.Event:2"
    payload = b"\x09" + struct.pack("<d", wall) + b"\x1a" + bytes([len(body)]) + body
    return _records([payload])


def write_event_file(path: Path, tags: list[str], steps: np.ndarray, values: np.ndarray,
                     walls: np.ndarray | None = None, block_steps: int = 20000) -> None:
    """Write one event file (written in blocks of steps so memory stays small)."""
    steps = np.asarray(steps, dtype=np.int64)
    if walls is None:
        walls = 1.7e9 + np.arange(steps.shape[0], dtype=np.float64) * 0.01
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(file_version_record(float(walls[0]) if walls.size else 1.7e9))
        for lo in range(0, steps.shape[0], block_steps):
            hi = min(steps.shape[0], lo + block_steps)
            fh.write(_fast_block(tags, steps[lo:hi], values[lo:hi], walls[lo:hi]))
    tmp.replace(path)


def _fast_block(tags, steps, values, walls) -> bytes:
    """The records of one block of steps (step-major: all tags of a step, then the next), built as one (steps, tags) grid of fixed-size rows
    per varint width (steps of one block mostly share a varint width)."""
    nsteps, ntags = values.shape
    vb, vn = _varint_bytes(steps)
    vn = np.where(steps == 0, 0, vn)  # proto3 leaves a default (zero) step out of the record
    out = []
    # Split the block where the varint width changes so every row of a piece has one layout.
    cuts = np.flatnonzero(np.diff(vn)) + 1
    for rows in np.split(np.arange(nsteps), cuts):
        if not rows.size:
            continue
        nb = int(vn[rows[0]])
        cols = []
        for j, tag in enumerate(tags):
            tb = tag.encode("utf-8")
            tl = len(tb)
            value_msg_len = 2 + tl + 5
            summary_len = 2 + value_msg_len
            step_len = 1 + nb if nb else 0
            plen = 9 + step_len + 2 + summary_len
            rec = np.zeros((rows.size, 12 + plen + 4), dtype=np.uint8)
            rec[:, 0:8] = np.frombuffer(np.uint64(plen).tobytes(), dtype=np.uint8)
            rec[:, 8:12] = np.frombuffer(_masked_crc_rows(rec[:1, 0:8]).astype("<u4").tobytes(), np.uint8)
            p = 12
            rec[:, p] = 0x09
            rec[:, p + 1 : p + 9] = walls[rows].astype("<f8").view(np.uint8).reshape(-1, 8)
            if nb:
                rec[:, p + 9] = 0x10
                rec[:, p + 10 : p + 10 + nb] = vb[rows, :nb]
            q = p + 9 + step_len
            rec[:, q : q + 6] = [0x2A, summary_len, 0x0A, value_msg_len, 0x0A, tl]
            rec[:, q + 6 : q + 6 + tl] = np.frombuffer(tb, dtype=np.uint8)
            rec[:, q + 6 + tl] = 0x15
            rec[:, q + 7 + tl : q + 11 + tl] = values[rows, j].astype("<f4").view(np.uint8).reshape(-1, 4)
            rec[:, 12 + plen :] = _masked_crc_rows(rec[:, 12 : 12 + plen]).astype("<u4").view(np.uint8).reshape(-1, 4)
            cols.append(rec)
        out.append(np.concatenate(cols, axis=1).tobytes())  # row i = all tags of step i, in tag order
    return b"".join(out)


def check_against_summary_writer(tmp: Path) -> bool:
    """True when this writer's records equal those of torch's ``SummaryWriter`` (wall times
    taken from the real file), on a few tags and steps including multi-byte varint steps."""
    import glob

    from torch.utils.tensorboard import SummaryWriter

    from trainfix.diagnostics.ingest.tensorboard import read_events

    tags = ["train/loss", "lr", "a_much_longer_tag/name_here"]
    steps = np.array([0, 1, 127, 128, 300, 16384, 2_000_000], dtype=np.int64)
    vals = np.random.default_rng(1).standard_normal((steps.size, len(tags))).astype(np.float32)
    w = SummaryWriter(str(tmp / "real"))
    for i, s in enumerate(steps):
        for j, t in enumerate(tags):
            w.add_scalar(t, float(vals[i, j]), int(s))
    w.close()
    real = Path(glob.glob(str(tmp / "real" / "events.out.tfevents.*"))[0])
    ev = read_events(real)
    walls = ev.wall_times.reshape(steps.size, len(tags))[:, 0]
    data = real.read_bytes()
    first_len = int.from_bytes(data[:8], "little") + 16
    ours = _fast_block(tags, steps, vals, walls)
    # Real writers stamp each record with its own time: compare with the real per-record times.
    wall_grid = ev.wall_times.reshape(steps.size, len(tags))
    same_wall = bool((wall_grid == wall_grid[:, :1]).all())
    if not same_wall:
        ours = scalar_records_with_walls(tags, steps, vals, wall_grid)
    return data[first_len:] == ours


def scalar_records_with_walls(tags, steps, vals, wall_grid) -> bytes:
    out = []
    for i in range(steps.size):
        for j in range(len(tags)):
            out.append(_fast_block([tags[j]], steps[i : i + 1], vals[i : i + 1, j : j + 1],
                                   np.asarray([wall_grid[i, j]])))
    return b"".join(out)
