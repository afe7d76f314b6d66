"""Checkpoint files as data: read them without executing anything, find the model weights inside
whatever container holds them, strip wrapper prefixes, and line the keys up with a model.

Why this exists: a checkpoint whose keys carry ``module.`` (DataParallel/DDP), ``_orig_mod.``
(``torch.compile``) or ``model.`` (Lightning) loads *nothing* into a plain model under
``strict=False``, and nothing complains (seed 004: Grad-CAM broke this way).

Safety: files are read only with ``torch.load(weights_only=True, map_location="cpu")`` (``mmap=True``
for zip-format files) or through the safetensors library.  A file that needs arbitrary unpickling is
refused with :class:`~trainfix.errors.CheckpointError` naming the globals it asked for; its payload
is never executed.

Both the diagnostics (checkpoint inspection, the key-mismatch check) and the trainer (strict loading,
attribution of a saved model) need this, so it lives beside :mod:`trainfix.errors`.  It imports
nothing else of ours but the file-safety check (:func:`trainfix.diagnostics.ingest.safe_read.file_problem`,
standard library only, imported when a file is opened; it belongs beside this module too).  torch is imported
inside functions only, so importing this module stays light (log reading must not pay for torch).

Public API: :func:`load_checkpoint` (:class:`LoadedCheckpoint`), :func:`locate_state_dict`
(:class:`Located`), :func:`wrapper_prefixes`, :func:`plan_renames`, :func:`strip_prefixes`,
:func:`compare_to_model` (:class:`KeyReport`) against a model or its layout (:class:`ExpectedModel`).
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from trainfix.errors import CheckpointError

#: wrapper segments that training code adds in front of the real parameter names
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.")
#: wrappers that are never a real attribute name choice: safe to strip wherever they lead
UNAMBIGUOUS_WRAPPERS = ("module.", "_orig_mod.")
# Where training code keeps the weights, most specific first (Lightning, our trainer, HF, timm ...).
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network",
                    "model_state", "weights", "params", "params_ema")
_EMA_KEYS = ("ema", "model_ema", "ema_state_dict", "state_dict_ema", "ema_model", "ema_state")
OPTIMIZER_KEYS = ("optimizer_state_dict", "optimizer", "optimizer_states", "optim", "opt",
                  "optimizer_state")
# Container entries that hold tensors but never weights.
NOT_WEIGHTS = ("rng", "rng_state", "rng_states", "scaler", "scheduler", "lr_scheduler", "lr_schedulers",
               "callbacks", "loops", "sampler", "grad_scaler")
# Buffers that are not parameters (the optimizer never holds them).
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


# --------------------------------------------------------------------------------------------
# reading


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` read: the container object and the file format."""

    path: Path
    format: str  # "torch-zip" | "torch-legacy" | "safetensors"
    obj: Any
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata


def is_safetensors(path: Path) -> bool:
    """A ``.safetensors`` file, or one whose first bytes are a safetensors header (a little-endian
    header length, then ``{``), whatever its name; False when it cannot be opened."""
    if path.suffix == ".safetensors":
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(9)
    except OSError:
        return False
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 2 <= n < (1 << 28) and head[8:9] == b"{"


def _refusal(path: Path, exc: Exception) -> CheckpointError:
    """The error for a file that needs arbitrary unpickling (its globals named when knowable)."""
    globals_asked: list[str] = []
    try:
        import torch.serialization as ts

        if zipfile.is_zipfile(path) and hasattr(ts, "get_unsafe_globals_in_checkpoint"):
            globals_asked = list(ts.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # listing is best effort; the refusal stands regardless
        globals_asked = []
    if not globals_asked:
        globals_asked = sorted(set(re.findall(r"GLOBAL ([\w.]+)", str(exc))))
    return unsafe_globals_error(path.name, globals_asked)


def unsafe_globals_error(name: str, globals_asked: list[str]) -> CheckpointError:
    """The refusal of a file named ``name`` whose pickle asks for ``globals_asked`` (never called)."""
    what = ", ".join(globals_asked) if globals_asked else "pickle instructions outside the weights-only set"
    return CheckpointError(
        f"refusing to unpickle {name}: it needs {what}, which a weights-only load does not allow",
        "trainfix never executes a checkpoint. If you trust this file, allowlist those globals in your "
        "own code with torch.serialization.add_safe_globals([...]) and re-save only the state_dict "
        "(torch.save(model.state_dict(), 'clean.pt')), then inspect the clean file",
        details=[f"unsupported global: {g}" for g in globals_asked],
    )


def check_checkpoint_file(path: str | Path) -> Path:
    """``path`` as a Path once it is known to be a regular file (CheckpointError otherwise), noted
    as an input of the command (no output may be written over it)."""
    from trainfix.diagnostics.ingest.safe_read import file_problem, note_read

    path = Path(path)
    problem = file_problem(path) if path.exists() or path.is_symlink() else None
    if problem:  # a FIFO or a device would block a reader forever
        raise CheckpointError(f"{path.name}: {problem}", "give a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", "check the path")
    note_read(path)
    return path


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read a checkpoint without executing anything.

    safetensors -> the safetensors library (tensors on CPU); zip-format torch files ->
    ``torch.load(weights_only=True, map_location="cpu", mmap=True)``; legacy (pre-1.6) torch files ->
    the same without mmap.  Raises :class:`CheckpointError` for a missing, corrupt or hostile file.
    """
    path = check_checkpoint_file(path)
    if is_safetensors(path):
        try:
            from safetensors import safe_open
            from safetensors.torch import load_file

            tensors = load_file(str(path), device="cpu")
            with safe_open(str(path), framework="pt") as fh:
                meta = dict(fh.metadata() or {})
        except Exception as exc:
            raise CheckpointError(f"cannot read {path.name} as safetensors: {exc}",
                                  "the file is truncated or not a safetensors file") from None
        return LoadedCheckpoint(path, "safetensors", tensors, meta)

    import pickle

    import torch

    zipped = zipfile.is_zipfile(path)
    try:
        try:
            obj = torch.load(str(path), weights_only=True, map_location="cpu", mmap=zipped)
        except RuntimeError as exc:
            if not zipped or "mmap" not in str(exc):
                raise
            obj = torch.load(str(path), weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as exc:
        raise _refusal(path, exc) from None
    except Exception as exc:
        raise CheckpointError(f"cannot read {path.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                              "the file is truncated, corrupt, or not a PyTorch checkpoint") from None
    return LoadedCheckpoint(path, "torch-zip" if zipped else "torch-legacy", obj)


# --------------------------------------------------------------------------------------------
# finding the weights inside a container


def is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "numel")


def is_state_dict(value: Any) -> bool:
    """A mapping of string keys whose values are (mostly) tensors."""
    if not isinstance(value, Mapping) or not value:
        return False
    n_tensor = sum(1 for k, v in value.items() if isinstance(k, str) and is_tensor(v))
    return n_tensor >= max(1, int(0.9 * len(value)))


def is_optimizer_state(value: Any) -> bool:
    return isinstance(value, Mapping) and "param_groups" in value and "state" in value


@dataclass
class Located:
    """Where the weights live in a container (``at`` is a dotted path; "" = the top level)."""

    at: str
    state_dict: dict[str, Any]
    others: dict[str, dict[str, Any]]  # other state dicts found (ema ...), by dotted path


def _walk_state_dicts(obj: Any, prefix: str, depth: int, out: list[tuple[str, dict]]) -> None:
    if depth > 3 or not isinstance(obj, Mapping):
        return
    if is_state_dict(obj):
        out.append((prefix, obj))
        return
    for key, value in obj.items():
        if (isinstance(key, str) and not is_optimizer_state(value) and key not in OPTIMIZER_KEYS
                and key not in NOT_WEIGHTS):
            _walk_state_dicts(value, f"{prefix}.{key}" if prefix else key, depth + 1, out)


def locate_state_dict(obj: Any) -> Located:
    """Find the model weights in a checkpoint container.

    Handles plain state_dicts, Lightning (``state_dict``), training dicts (``model_state_dict``,
    ``model``), nested ones (``{"checkpoint": {"model": ...}}``) and EMA copies (reported in
    ``others``).  Preference: a known weights key, else the largest tensor mapping found; EMA copies
    are chosen only when nothing else holds weights.
    """
    if is_state_dict(obj):
        return Located("", dict(obj), {})
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint holds a {type(obj).__name__}, not a mapping of weights",
                              "save model.state_dict() (or a dict containing it)")
    found: list[tuple[str, dict]] = []
    _walk_state_dicts(obj, "", 0, found)
    if not found:
        raise CheckpointError("no state_dict (mapping of parameter names to tensors) found in the checkpoint",
                              "save model.state_dict(), or a dict with it under 'state_dict' or 'model'")

    def rank(item: tuple[str, dict]) -> tuple[int, int, int]:
        at, sd = item
        last = at.rsplit(".", 1)[-1]
        is_ema = any(seg in _EMA_KEYS or seg.startswith("ema") for seg in at.lower().split("."))
        known = last in _STATE_DICT_KEYS
        return (0 if is_ema else 1, 1 if known else 0, len(sd))

    best = max(found, key=rank)
    others = {at: dict(sd) for at, sd in found if at != best[0]}
    return Located(best[0], dict(best[1]), others)


# --------------------------------------------------------------------------------------------
# prefixes and renaming


def _leading_chain(key: str) -> str:
    """The run of wrapper segments a key starts with ("module._orig_mod." ...), or ""."""
    chain = ""
    rest = key
    while True:
        for p in WRAPPER_PREFIXES:
            if rest.startswith(p) and len(rest) > len(p):
                chain += p
                rest = rest[len(p):]
                break
        else:
            return chain


def wrapper_prefixes(keys: Iterable[str]) -> dict[str, int]:
    """Leading wrapper chains and how many keys carry each, e.g. ``{"module._orig_mod.": 412}``.

    Interior ``._orig_mod.`` segments (a compiled submodule) are counted under ``"*._orig_mod."``.
    """
    counts: dict[str, int] = {}
    for key in keys:
        chain = _leading_chain(key)
        if chain:
            counts[chain] = counts.get(chain, 0) + 1
        if "._orig_mod." in key[len(chain):]:
            counts["*._orig_mod."] = counts.get("*._orig_mod.", 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _candidates(key: str) -> list[str]:
    """Names a key may have had before wrappers were added, least stripped first."""
    out = []
    base = key.replace("._orig_mod.", ".")
    for k in dict.fromkeys([key, base]):
        rest = k
        out.append(rest)
        while True:
            for p in WRAPPER_PREFIXES:
                if rest.startswith(p) and len(rest) > len(p):
                    rest = rest[len(p):]
                    out.append(rest)
                    break
            else:
                break
    return list(dict.fromkeys(out))


def plan_renames(keys: Iterable[str], expected_keys: Iterable[str] | None = None) -> dict[str, str]:
    """Map each checkpoint key to its clean name (only keys that change are listed).

    With ``expected_keys`` (the model's own state_dict keys) each key takes the first stripped form
    the model knows, and a clean checkpoint meant for a wrapped model gets the model's wrapper
    added.  Without it: ``_orig_mod.`` segments are removed everywhere; a leading ``module.`` /
    ``_orig_mod.`` is stripped from the keys that carry it when most keys do; ``model.`` only when
    every key starts with it (a Lightning module's ``self.model``).  A rename that would collide
    with another key is not made.
    """
    keys = list(keys)
    renames: dict[str, str] = {}
    if expected_keys is not None:
        expected = set(expected_keys)
        exp_chains = {_leading_chain(k) for k in expected}
        add = next(iter(exp_chains)) if len(exp_chains) == 1 else ""
        generic = plan_renames(keys)  # for keys the model does not know: the plain wrapper rules
        for key in keys:
            if key in expected:
                continue
            for cand in _candidates(key):
                if cand in expected:
                    renames[key] = cand
                    break
                if add and add + cand in expected:
                    renames[key] = add + cand
                    break
            else:
                if key in generic:
                    renames[key] = generic[key]
    else:
        n = len(keys)
        stripped = {k: k.replace("._orig_mod.", ".") if "._orig_mod." in k else k for k in keys}
        while True:
            changed = False
            for p in WRAPPER_PREFIXES:
                carriers = [k for k, v in stripped.items() if v.startswith(p) and len(v) > len(p)]
                need = n if p not in UNAMBIGUOUS_WRAPPERS else n // 2 + 1
                if n and len(carriers) >= need:
                    for k in carriers:
                        stripped[k] = stripped[k][len(p):]
                    changed = True
            if not changed:
                break
        renames = {k: v for k, v in stripped.items() if v != k}
    # no collisions: a target that already exists (or is claimed twice) keeps its original name
    final_names: dict[str, int] = {}
    for key in keys:
        final_names[renames.get(key, key)] = final_names.get(renames.get(key, key), 0) + 1
    return {k: v for k, v in renames.items() if final_names[v] == 1}


def strip_prefixes(keys_or_sd: Any, expected_keys: Iterable[str] | None = None) -> Any:
    """Remove wrapper prefixes: a state_dict in -> a new state_dict (same order) out; keys in ->
    a list of keys out.  See :func:`plan_renames` for the rules."""
    if isinstance(keys_or_sd, Mapping):
        plan = plan_renames(list(keys_or_sd.keys()), expected_keys)
        return {plan.get(k, k): v for k, v in keys_or_sd.items()}
    keys = list(keys_or_sd)
    plan = plan_renames(keys, expected_keys)
    return [plan.get(k, k) for k in keys]


# --------------------------------------------------------------------------------------------
# comparing with a model


@dataclass
class ExpectedModel:
    """The state-dict layout of the model a run's config builds: key -> shape, and which keys are
    parameters (the rest are buffers).  Plain data: detectors compare checkpoints with it."""

    shapes: dict[str, tuple[int, ...]]
    params: set[str]


def shape_of(value: Any) -> tuple[int, ...] | None:
    if is_tensor(value):
        return tuple(int(x) for x in value.shape)
    if isinstance(value, (list, tuple)) and all(isinstance(x, int) for x in value):
        return tuple(value)
    return None


def numel(shape: tuple[int, ...] | None) -> int:
    return int(math.prod(shape)) if shape is not None else 0


@dataclass
class KeyReport:
    """How a state_dict lines up with a model.

    ``fill_share`` is the share of the model's parameter elements a ``load_state_dict(strict=False)``
    would actually fill (matching name and shape; note torch raises on a shape mismatch even with
    strict=False); ``key_fill_share`` the same by key count.
    """

    n_checkpoint_keys: int
    n_model_keys: int
    missing: list[str]
    unexpected: list[str]
    shape_mismatched: list[tuple[str, tuple, tuple]]  # (key, checkpoint shape, model shape)
    matched: int
    fill_share: float
    key_fill_share: float
    prefixes: dict[str, int] = field(default_factory=dict)

    @property
    def loads_strict(self) -> bool:
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["shape_mismatched"] = [[k, list(a), list(b)] for k, a, b in self.shape_mismatched]
        d["loads_strict"] = self.loads_strict
        return d


def _model_shapes(model: Any) -> tuple[dict[str, tuple], set[str]]:
    """(key -> shape of the model's state_dict, names that are parameters)."""
    if hasattr(model, "shapes") and hasattr(model, "params"):  # an ExpectedModel
        return {k: tuple(v) for k, v in model.shapes.items()}, set(model.params)
    if hasattr(model, "state_dict") and hasattr(model, "named_parameters"):
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        params = {k for k, _ in model.named_parameters()}
        return shapes, params
    if isinstance(model, Mapping):
        shapes = {k: shape_of(v) or () for k, v in model.items()}
        return shapes, {k for k in shapes if not k.endswith(BUFFER_SUFFIXES)}
    raise TypeError(f"expected an nn.Module or a state_dict, got {type(model).__name__}")


def compare_to_model(state_dict: Mapping[str, Any], model: Any) -> KeyReport:
    """Missing, unexpected and shape-mismatched keys of ``state_dict`` against ``model`` (an
    ``nn.Module`` or its state_dict / key->shape map), as a plain ``load_state_dict`` sees them (no
    renaming: call :func:`strip_prefixes` first to judge the repaired keys)."""
    shapes, params = _model_shapes(model)
    ck = {k: shape_of(v) for k, v in state_dict.items()}
    missing = [k for k in shapes if k not in ck]
    unexpected = [k for k in ck if k not in shapes]
    mismatched = [(k, ck[k], shapes[k]) for k in shapes if k in ck and ck[k] is not None and ck[k] != shapes[k]]
    bad = {k for k, _, _ in mismatched}
    matched = [k for k in shapes if k in ck and k not in bad]
    weight_keys = [k for k in shapes if k in params] or list(shapes)
    total = sum(numel(shapes[k]) for k in weight_keys)
    filled = sum(numel(shapes[k]) for k in weight_keys if k in ck and k not in bad)
    return KeyReport(
        n_checkpoint_keys=len(ck), n_model_keys=len(shapes), missing=missing, unexpected=unexpected,
        shape_mismatched=mismatched, matched=len(matched),
        fill_share=(filled / total) if total else (1.0 if not shapes else 0.0),
        key_fill_share=(len(matched) / len(shapes)) if shapes else 1.0,
        prefixes=wrapper_prefixes(ck),
    )
