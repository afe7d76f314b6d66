"""A small protobuf wire-format decoder for every Event that is not of the common scalar layout.

It reads TF2 tensor scalars (``float_val``, ``double_val``, ``int_val``, ``int64_val``,
``half_val``, ``bool_val``, ``tensor_content`` of any numeric dtype), old writers' ``node_name``
tags, and skips histograms, images, audio, text and graphs cheaply.  Malformed input raises
:class:`_Malformed`, which the reader counts as one corrupt record.
"""

from __future__ import annotations

import struct

import numpy as np

from trainfix.diagnostics.ingest.tensorboard.columns import _Out



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
