"""Shared test fixtures: writing real TensorBoard event files on the fly.

``write_tb`` uses torch's ``SummaryWriter`` (the writer users have); ``write_events`` frames raw
``Event`` protobufs from the ``tensorboard`` package for shapes SummaryWriter does not produce (TF2
tensor scalars, hand-made corruption).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Callable, Iterable

import pytest


def frame_record(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of length, payload, masked CRC of payload."""
    from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


@pytest.fixture
def write_tb() -> Callable[..., Path]:
    """``write_tb(logdir, {tag: [(step, value), ...]}, interleave=True)`` with SummaryWriter."""

    def _write(logdir: Path, series: dict[str, Iterable[tuple[int, float]]], interleave: bool = True) -> Path:
        from torch.utils.tensorboard import SummaryWriter

        logdir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(logdir))
        items = {tag: list(points) for tag, points in series.items()}
        if interleave:
            longest = max((len(p) for p in items.values()), default=0)
            for i in range(longest):
                for tag, points in items.items():
                    if i < len(points):
                        writer.add_scalar(tag, points[i][1], points[i][0])
        else:
            for tag, points in items.items():
                for step, value in points:
                    writer.add_scalar(tag, value, step)
        writer.close()
        files = sorted(logdir.glob("events.out.tfevents.*"))
        return files[-1]

    return _write


@pytest.fixture
def write_events() -> Callable[[Path, list], Path]:
    """``write_events(path, [Event, ...])``: frame protobuf events into one event file."""

    def _write(path: Path, events: list) -> Path:
        from tensorboard.compat.proto import event_pb2

        path.parent.mkdir(parents=True, exist_ok=True)
        head = event_pb2.Event(wall_time=1.0, file_version="brain.Event:2")
        with open(path, "wb") as fh:
            fh.write(frame_record(head.SerializeToString()))
            for ev in events:
                fh.write(frame_record(ev.SerializeToString() if hasattr(ev, "SerializeToString") else ev))
        return path

    return _write
