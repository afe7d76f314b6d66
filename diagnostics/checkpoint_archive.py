"""Checkpoint files read as data without torch: the structure of a torch zip archive or a safetensors
file, with each tensor an :class:`ArrayRef` (shape, dtype, and its values read by numpy on demand).

Why: a diagnosis looks at key names, shapes, a few norms and counters; importing torch for that
costs seconds and hundreds of megabytes.  A zip-format ``torch.save`` file (torch >= 1.6) is a zip
archive holding ``data.pkl`` (the container, pickled) and one raw little-endian blob per storage
(``data/<key>``); a safetensors file is an 8-byte length, a JSON header and the raw tensors.

Safety: ``data.pkl`` is read by a :class:`pickle.Unpickler` whose ``find_class`` imports nothing:
it maps a small allowlist (``collections.OrderedDict``, the storage types, torch's tensor rebuild
functions, ``torch.Size``, ...) to inert stand-ins defined here, and refuses any other global (an
``os.system`` payload among them) with :class:`~trainfix.errors.CheckpointError` before anything
is called.  Storages are never deserialised by pickle: ``persistent_load`` hands back a
description, and the bytes are read from the archive by numpy.  Globals torch's weights-only
loader accepts but this reader does not model (quantized or sparse tensors, numpy arrays)
raise :class:`Unsupported`, and the caller falls back to ``torch.load(weights_only=True)``.
:func:`values_of` gives any tensor's values (an ``ArrayRef`` or a torch tensor) as numpy.
"""

from __future__ import annotations

import _compat_pickle
import collections
import json
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainfix.errors import CheckpointError
from trainfix.weights import is_safetensors, unsafe_globals_error


class Unsupported(Exception):
    """A well-formed checkpoint this reader does not model; torch's weights-only load may read it."""


@dataclass(frozen=True)
class DType:
    """A tensor dtype by torch's name (``str()`` gives ``torch.float32``, as a torch dtype does)."""

    name: str
    numpy: str  # numpy type of the raw elements ("<u2" for bfloat16: widened when read)
    floating: bool

    def __str__(self) -> str:
        return f"torch.{self.name}"


_DTYPES = {d.name: d for d in (
    DType("float32", "f4", True), DType("float64", "f8", True), DType("float16", "f2", True),
    DType("bfloat16", "u2", True), DType("int64", "i8", False), DType("int32", "i4", False),
    DType("int16", "i2", False), DType("int8", "i1", False), DType("uint8", "u1", False),
    DType("bool", "?", False), DType("complex64", "c8", False), DType("complex128", "c16", False))}
_STORAGES = {"FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
             "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
             "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8", "BoolStorage": "bool",
             "ComplexFloatStorage": "complex64", "ComplexDoubleStorage": "complex128"}
_SAFETENSORS = {"F32": "float32", "F64": "float64", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool"}


class ArrayRef:
    """A tensor in a checkpoint file: ``shape``, ``dtype``, ``numel()``, ``is_floating_point()``,
    and :meth:`array` (its values as a numpy array, read from the file when asked)."""

    def __init__(self, source: Any, dtype: DType, shape: tuple[int, ...], offset: int = 0,
                 stride: tuple[int, ...] | None = None) -> None:
        self.source, self.dtype, self.shape = source, dtype, tuple(int(s) for s in shape)
        self.offset = int(offset)
        self.stride = tuple(int(s) for s in stride) if stride is not None else _contiguous(self.shape)

    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def is_floating_point(self) -> bool:
        return self.dtype.floating

    def item(self) -> Any:
        if self.numel() != 1:
            raise ValueError(f"item() of a tensor with {self.numel()} elements")
        return self.array().reshape(-1)[0].item()

    def array(self) -> np.ndarray:
        """The values (bfloat16 widened to float32), read from the file."""
        raw, n_items = self.source.read(self.dtype)
        last = self.offset + sum((s - 1) * st for s, st in zip(self.shape, self.stride)) if self.numel() else -1
        if self.offset < 0 or min(self.stride, default=0) < 0 or last >= n_items:
            raise CheckpointError(f"{self.source.name}: a tensor reaches past its storage",
                                  "the file is truncated or corrupt")
        view = np.lib.stride_tricks.as_strided(raw[self.offset:], shape=self.shape,
                                               strides=[s * raw.itemsize for s in self.stride])
        if self.dtype.name == "bfloat16":
            return (view.astype(np.uint32) << 16).view(np.float32)
        return np.array(view)

    def __repr__(self) -> str:
        return f"ArrayRef({self.dtype}, {list(self.shape)})"


def values_of(tensor: Any) -> Any:
    """A tensor's values as a numpy array: an ``ArrayRef`` reads them from its file; a torch tensor
    (a legacy file, or a state_dict passed in) is copied to the CPU, bfloat16 widened to float32."""
    if hasattr(tensor, "array"):
        return tensor.array()
    t = tensor.detach().cpu()
    if str(t.dtype) == "torch.bfloat16":
        t = t.float()
    return t.numpy()


def l2_norm(values: Any) -> float:
    """The L2 norm, accumulated in float64 (as ``torch.linalg.vector_norm(dtype=float64)``)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    return float(np.sqrt(np.dot(flat, flat)))


def _contiguous(shape: tuple[int, ...]) -> tuple[int, ...]:
    out, acc = [], 1
    for s in reversed(shape):
        out.append(acc)
        acc *= max(int(s), 1)
    return tuple(reversed(out))


class _Archive:
    """The zip file behind a container's storages, opened once when the first values are read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None

    def read(self, member: str) -> bytes:
        if self._zip is None:
            self._zip = zipfile.ZipFile(self.path)
        return self._zip.read(member)


@dataclass
class _Storage:
    """One storage blob of a zip archive (``data/<key>``), read each time a tensor's values are
    (not kept: a summary walks a checkpoint larger than memory one tensor at a time)."""

    archive: _Archive
    member: str
    dtype: DType
    numel: int
    byteorder: str
    name: str

    def read(self, dtype: DType) -> tuple[np.ndarray, int]:
        try:
            blob = self.archive.read(self.member)
        except (KeyError, OSError, zipfile.BadZipFile) as exc:
            raise CheckpointError(f"{self.name}: storage {self.member} unreadable ({exc})",
                                  "the file is truncated or corrupt") from None
        kind = np.dtype(self.dtype.numpy).newbyteorder(self.byteorder)
        raw = np.frombuffer(blob, dtype=kind, count=min(self.numel, len(blob) // kind.itemsize))
        return raw, raw.size


def _rebuild_tensor(storage: Any, offset: int, size: Any, stride: Any, *_: Any) -> ArrayRef:
    if not isinstance(storage, _Storage):
        raise CheckpointError("a tensor without a storage in data.pkl", "the file is corrupt")
    return ArrayRef(storage, storage.dtype, tuple(size), offset, tuple(stride))


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


def _rebuild_from_type(func: Any, _type: Any, args: Any, _state: Any) -> Any:
    return func(*args)


def _encode(text: str, encoding: str = "latin1") -> bytes:
    if encoding not in ("latin1", "latin-1"):
        raise CheckpointError(f"data.pkl encodes bytes as {encoding}", "the file is not a torch checkpoint")
    return text.encode("latin1")


_TorchDtype = type("_TorchDtype", (), {})
_ALLOWED: dict[str, Any] = {
    "collections.OrderedDict": collections.OrderedDict, "collections.Counter": collections.Counter,
    "builtins.set": set, "builtins.bytearray": bytearray, "builtins.complex": complex, "_codecs.encode": _encode,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor, "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type,
    "torch.Size": tuple, "torch.device": str, "torch.nn.parameter.Parameter": _rebuild_parameter,
    "torch.Tensor": _rebuild_parameter,
    **{f"torch.{name}": _DTYPES[dt] for name, dt in _STORAGES.items()},
    **{f"torch.{name}": _DTYPES[name] for name in _DTYPES},
}
# accepted by torch's weights-only loader, not modelled here: the caller lets torch read these files
_TORCH_ONLY = ("torch._utils.", "torch.serialization._get_layout", "torch.per_", "torch.storage.",
               "torch.UntypedStorage", "torch.float8", "torch.uint", "torch.int", "torch.complex32",
               "torch.Float8", "torch.QInt", "torch.QUInt", "torch.ComplexHalf", "torch.sparse")


class _IndexUnpickler(pickle.Unpickler):
    """Unpickles ``data.pkl`` with stand-ins for the allowlisted globals and nothing imported."""

    def __init__(self, fh: Any, path: Path, prefix: str, byteorder: str) -> None:
        super().__init__(fh)
        self.path, self.prefix, self.byteorder = path, prefix, byteorder
        self.archive = _Archive(path)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # protocol 2 writes Python 2 names
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if full in _ALLOWED:
            return _ALLOWED[full]
        if full.startswith(_TORCH_ONLY):
            raise Unsupported(full)
        raise unsafe_globals_error(self.path.name, [full])

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], DType)):
            raise Unsupported(f"persistent id {str(pid)[:80]}")
        _, dtype, key, _location, numel = pid
        return _Storage(self.archive, f"{self.prefix}data/{key}", dtype, int(numel), self.byteorder, self.path.name)


def read_archive(path: str | Path) -> tuple[str, Any, dict[str, str]] | None:
    """``(format, container, metadata)`` of a zip-format torch file or a safetensors file, tensors
    as :class:`ArrayRef`; None for any other file (a legacy torch file: torch must read it).

    Raises :class:`CheckpointError` for a hostile or corrupt file and :class:`Unsupported` for one
    that holds what this reader does not model.
    """
    path = Path(path)
    if is_safetensors(path):
        try:
            return ("safetensors", *_read_safetensors(path))
        except OSError as exc:  # named .safetensors, but it cannot be read
            raise CheckpointError(f"cannot read {path.name}: {type(exc).__name__}: {exc.strerror or exc}",
                                  "check that the file exists and is readable") from None
    if not zipfile.is_zipfile(path):
        return None
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            pkl = next((n for n in names if n.endswith("data.pkl") and n.count("/") <= 1), None)
            if pkl is None:
                return None  # a zip, but not torch's
            prefix = pkl[: -len("data.pkl")]
            order = zf.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
            with zf.open(pkl) as fh:
                obj = _IndexUnpickler(fh, path, prefix, "<" if order == "little" else ">").load()
    except (CheckpointError, Unsupported):
        raise
    except Exception as exc:
        raise CheckpointError(f"cannot read {path.name}: {type(exc).__name__}: {str(exc)[:200]}",
                              "the file is truncated, corrupt, or not a PyTorch checkpoint") from None
    return "torch-zip", obj, {}


@dataclass
class _FileSpan:
    """A safetensors tensor's bytes: ``[start, end)`` of the file."""

    path: Path
    start: int
    end: int
    dtype: DType
    name: str

    def read(self, dtype: DType) -> tuple[np.ndarray, int]:
        kind = np.dtype(dtype.numpy).newbyteorder("<")
        with open(self.path, "rb") as fh:
            fh.seek(self.start)
            blob = fh.read(self.end - self.start)
        raw = np.frombuffer(blob, dtype=kind, count=len(blob) // kind.itemsize)
        return raw, raw.size


def _read_safetensors(path: Path) -> tuple[dict[str, ArrayRef], dict[str, str]]:
    bad = CheckpointError(f"cannot read {path.name} as safetensors: the header is not valid",
                          "the file is truncated or not a safetensors file")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 2 <= n <= size - 8:
            raise bad
        try:
            header = json.loads(fh.read(n))
        except (ValueError, UnicodeDecodeError):
            raise bad from None
    if not isinstance(header, dict):
        raise bad
    meta = header.pop("__metadata__", None) or {}
    tensors: dict[str, ArrayRef] = {}
    for key, info in header.items():
        try:
            dtype = _DTYPES[_SAFETENSORS[info["dtype"]]]
            shape = tuple(int(s) for s in info["shape"])
            lo, hi = (int(x) for x in info["data_offsets"])
        except KeyError:
            raise Unsupported(f"safetensors dtype {info.get('dtype') if isinstance(info, dict) else info}") from None
        except (TypeError, ValueError):
            raise bad from None
        if not 0 <= lo <= hi <= size - 8 - n:
            raise bad
        tensors[key] = ArrayRef(_FileSpan(path, 8 + n + lo, 8 + n + hi, dtype, path.name), dtype, shape)
    tensors = dict(sorted(tensors.items(), key=lambda kv: kv[1].source.start))  # file order, as safetensors gives
    return tensors, {str(k): str(v) for k, v in dict(meta).items()}
