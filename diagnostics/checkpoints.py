"""Checkpoint inspection: read safely, find the weights, spot wrapper prefixes, measure updates.

Why this exists: a checkpoint whose keys carry ``module.`` (DataParallel/DDP), ``_orig_mod.``
(``torch.compile``) or ``model.`` (Lightning) loads *nothing* into a plain model under
``strict=False``, and nothing complains (seed 004: Grad-CAM broke this way).  Two checkpoints of one
run also tell how far the weights moved per optimizer step, evidence the logs lack.

Safety: files are read only with ``torch.load(weights_only=True, map_location="cpu")`` (``mmap=True``
for zip-format files) or through the safetensors library.  A file that needs arbitrary unpickling is
refused with :class:`~trainfix.errors.CheckpointError` naming the globals it asked for; its payload
is never executed.

torch is imported inside functions only: importing this module stays light (log reading must not
pay for torch).

Public API: :func:`load_checkpoint`, :func:`locate_state_dict`, :func:`summarize`
(:class:`CheckpointSummary`), :func:`wrapper_prefixes`, :func:`plan_renames`,
:func:`strip_prefixes`, :func:`compare_to_model` (:class:`KeyReport`), :func:`update_ratios`
(:class:`UpdateRatios`), :func:`update_ratio_evidence`.
"""

from __future__ import annotations

import json
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
#: healthy per-step update-to-weight ratio band (|dW|/|W| per optimizer step); ~1e-3 is typical
UPDATE_RATIO_BAND = (1e-4, 1e-2)
UPDATE_RATIO_TYPICAL = 1e-3

# Where training code keeps the weights, most specific first (Lightning, our trainer, HF, timm ...).
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network",
                    "model_state", "weights", "params", "params_ema")
_EMA_KEYS = ("ema", "model_ema", "ema_state_dict", "state_dict_ema", "ema_model", "ema_state")
_OPTIMIZER_KEYS = ("optimizer_state_dict", "optimizer", "optimizer_states", "optim", "opt",
                   "optimizer_state")
# Container entries that hold tensors but never weights.
_NOT_WEIGHTS = ("rng", "rng_state", "rng_states", "scaler", "scheduler", "lr_scheduler", "lr_schedulers",
                "callbacks", "loops", "sampler", "grad_scaler")
_STEP_KEYS = ("step", "global_step", "iteration", "iter", "num_updates")
_EPOCH_KEYS = ("epoch", "current_epoch")
# Nested entries that describe the run, not its progress (config.training.epochs is no epoch counter).
_NOT_PROGRESS = ("config", "hyper_parameters", "hparams", "args", "cfg", "opt", "hyperparameters")
# Where a loss module's own parameters are kept (uncertainty log-variances live there).
_LOSS_KEYS = ("loss", "criterion", "loss_fn")
# Buffers that are not parameters (the optimizer never holds them).
_BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


# --------------------------------------------------------------------------------------------
# reading


@dataclass
class LoadedCheckpoint:
    """What :func:`load_checkpoint` read: the container object and the file format."""

    path: Path
    format: str  # "torch-zip" | "torch-legacy" | "safetensors"
    obj: Any
    metadata: dict[str, str] = field(default_factory=dict)  # safetensors header metadata


def _is_safetensors(path: Path) -> bool:
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
    what = ", ".join(globals_asked) if globals_asked else "pickle instructions outside the weights-only set"
    return CheckpointError(
        f"refusing to unpickle {path.name}: it needs {what}, which a weights-only load does not allow",
        "trainfix never executes a checkpoint. If you trust this file, allowlist those globals in your "
        "own code with torch.serialization.add_safe_globals([...]) and re-save only the state_dict "
        "(torch.save(model.state_dict(), 'clean.pt')), then inspect the clean file",
        details=[f"unsupported global: {g}" for g in globals_asked],
    )


def load_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """Read a checkpoint without executing anything.

    safetensors -> the safetensors library (tensors on CPU); zip-format torch files ->
    ``torch.load(weights_only=True, map_location="cpu", mmap=True)``; legacy (pre-1.6) torch files ->
    the same without mmap.  Raises :class:`CheckpointError` for a missing, corrupt or hostile file.
    """
    from trainfix.diagnostics.ingest.safe_read import file_problem

    path = Path(path)
    problem = file_problem(path) if path.exists() or path.is_symlink() else None
    if problem:  # a FIFO or a device would block torch.load forever
        raise CheckpointError(f"{path.name}: {problem}", "give a checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}", "check the path")
    if _is_safetensors(path):
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


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON meta a trainer wrote beside a checkpoint (``x.json`` or ``x.pt.json``), or {}."""
    path = Path(path)
    for cand in (path.with_suffix(".json"), path.with_name(path.name + ".json")):
        if cand.is_file() and cand != path:
            try:
                from trainfix.diagnostics.ingest.safe_read import read_bytes

                data = json.loads(read_bytes(cand, 1 << 20).decode("utf-8", "replace"))
            except Exception:  # not JSON, too large, too deep: no meta
                continue
            if isinstance(data, dict):
                return data
    return {}


# --------------------------------------------------------------------------------------------
# finding the weights inside a container


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and hasattr(value, "numel")


def _is_state_dict(value: Any) -> bool:
    """A mapping of string keys whose values are (mostly) tensors."""
    if not isinstance(value, Mapping) or not value:
        return False
    n_tensor = sum(1 for k, v in value.items() if isinstance(k, str) and _is_tensor(v))
    return n_tensor >= max(1, int(0.9 * len(value)))


def _is_optimizer_state(value: Any) -> bool:
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
    if _is_state_dict(obj):
        out.append((prefix, obj))
        return
    for key, value in obj.items():
        if (isinstance(key, str) and not _is_optimizer_state(value) and key not in _OPTIMIZER_KEYS
                and key not in _NOT_WEIGHTS):
            _walk_state_dicts(value, f"{prefix}.{key}" if prefix else key, depth + 1, out)


def locate_state_dict(obj: Any) -> Located:
    """Find the model weights in a checkpoint container.

    Handles plain state_dicts, Lightning (``state_dict``), training dicts (``model_state_dict``,
    ``model``), nested ones (``{"checkpoint": {"model": ...}}``) and EMA copies (reported in
    ``others``).  Preference: a known weights key, else the largest tensor mapping found; EMA copies
    are chosen only when nothing else holds weights.
    """
    if _is_state_dict(obj):
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


def find_optimizer_states(obj: Any) -> list[dict]:
    """Every optimizer state dict in a container (Lightning keeps a list under optimizer_states)."""
    found: list[dict] = []
    if not isinstance(obj, Mapping):
        return found
    for key in _OPTIMIZER_KEYS:
        value = obj.get(key)
        if _is_optimizer_state(value):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if _is_optimizer_state(v))
        elif isinstance(value, Mapping) and "state_dict" in value and _is_optimizer_state(value["state_dict"]):
            found.append(value["state_dict"])
    return found


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if _is_tensor(value) and value.numel() == 1:
        return float(value.item())
    return None


def _find_counter(obj: Any, names: tuple[str, ...], depth: int = 0, nested: bool = True) -> int | None:
    """The first integer counter named in ``names``: top level first, then (``nested``) nested
    progress dicts (never weights, optimizer states or configs)."""
    if not isinstance(obj, Mapping) or depth > 2:
        return None
    for name in names:
        v = _scalar(obj.get(name))
        if v is not None and math.isfinite(v):
            return int(v)
    if not nested:
        return None
    for key, inner in obj.items():
        if key in _NOT_PROGRESS:
            continue
        if (isinstance(inner, Mapping) and not _is_optimizer_state(inner) and not _is_state_dict(inner)
                and key not in _OPTIMIZER_KEYS and key not in _NOT_WEIGHTS):
            v = _find_counter(inner, names, depth + 1)
            if v is not None:
                return v
    return None


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


def _shape_of(value: Any) -> tuple[int, ...] | None:
    if _is_tensor(value):
        return tuple(int(x) for x in value.shape)
    if isinstance(value, (list, tuple)) and all(isinstance(x, int) for x in value):
        return tuple(value)
    return None


def _numel(shape: tuple[int, ...] | None) -> int:
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
        shapes = {k: _shape_of(v) or () for k, v in model.items()}
        return shapes, {k for k in shapes if not k.endswith(_BUFFER_SUFFIXES)}
    raise TypeError(f"expected an nn.Module or a state_dict, got {type(model).__name__}")


def compare_to_model(state_dict: Mapping[str, Any], model: Any) -> KeyReport:
    """Missing, unexpected and shape-mismatched keys of ``state_dict`` against ``model`` (an
    ``nn.Module`` or its state_dict / key->shape map), as a plain ``load_state_dict`` sees them (no
    renaming: call :func:`strip_prefixes` first to judge the repaired keys)."""
    shapes, params = _model_shapes(model)
    ck = {k: _shape_of(v) for k, v in state_dict.items()}
    missing = [k for k in shapes if k not in ck]
    unexpected = [k for k in ck if k not in shapes]
    mismatched = [(k, ck[k], shapes[k]) for k in shapes if k in ck and ck[k] is not None and ck[k] != shapes[k]]
    bad = {k for k, _, _ in mismatched}
    matched = [k for k in shapes if k in ck and k not in bad]
    weight_keys = [k for k in shapes if k in params] or list(shapes)
    total = sum(_numel(shapes[k]) for k in weight_keys)
    filled = sum(_numel(shapes[k]) for k in weight_keys if k in ck and k not in bad)
    return KeyReport(
        n_checkpoint_keys=len(ck), n_model_keys=len(shapes), missing=missing, unexpected=unexpected,
        shape_mismatched=mismatched, matched=len(matched),
        fill_share=(filled / total) if total else (1.0 if not shapes else 0.0),
        key_fill_share=(len(matched) / len(shapes)) if shapes else 1.0,
        prefixes=wrapper_prefixes(ck),
    )


# --------------------------------------------------------------------------------------------
# summary


@dataclass
class CheckpointSummary:
    """What one checkpoint holds, read safely (see :func:`summarize`)."""

    path: str
    format: str | None = None
    kind: str | None = None  # state_dict | training | lightning | hf | safetensors
    top_level_keys: list[str] = field(default_factory=list)
    state_dict_at: str | None = None  # dotted path of the weights ("" = top level)
    other_state_dicts: dict[str, int] = field(default_factory=dict)  # path -> tensor count (ema ...)
    n_tensors: int = 0
    n_params: int = 0  # elements of the parameter-like tensors (floating, not BN running stats)
    n_elements: int = 0  # elements of every tensor of the weights (buffers included)
    dtypes: dict[str, int] = field(default_factory=dict)
    prefixes: dict[str, int] = field(default_factory=dict)  # wrapper chain -> key count
    shapes: dict[str, list[int]] = field(default_factory=dict)  # key -> shape (weights only)
    nonfinite: list[dict[str, Any]] = field(default_factory=list)  # {key, nan, inf}
    layer_norms_top: list[tuple[str, float]] = field(default_factory=list)
    layer_norms_bottom: list[tuple[str, float]] = field(default_factory=list)
    optimizer: dict[str, Any] | None = None
    epoch: int | None = None
    step: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def keys(self) -> list[str]:
        return list(self.shapes)

    def prefix_share(self) -> tuple[str, int] | None:
        """The most common leading wrapper chain and its key count, or None."""
        lead = {k: v for k, v in self.prefixes.items() if not k.startswith("*")}
        if not lead:
            return None
        chain = max(lead, key=lambda k: (lead[k], len(k)))
        return chain, lead[chain]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["layer_norms_top"] = [[k, v] for k, v in self.layer_norms_top]
        d["layer_norms_bottom"] = [[k, v] for k, v in self.layer_norms_bottom]
        d.pop("shapes")
        d["n_keys"] = len(self.shapes)
        return d


def _kind(obj: Any, fmt: str, at: str, path: Path) -> str:
    if fmt == "safetensors":
        return "safetensors"
    if isinstance(obj, Mapping):
        if "pytorch-lightning_version" in obj or "optimizer_states" in obj or "lr_schedulers" in obj:
            return "lightning"
        if at == "":
            return "hf" if path.name.startswith("pytorch_model") else "state_dict"
    return "training"


def _param_candidates(sd: Mapping[str, Any]) -> list[str]:
    """Keys that look like parameters (floating tensors, not BN running stats)."""
    return [k for k, v in sd.items()
            if _is_tensor(v) and v.is_floating_point() and not k.endswith(_BUFFER_SUFFIXES)]


def _optimizer_coverage(opts: list[dict], sd: Mapping[str, Any]) -> dict[str, Any]:
    """How many parameters the optimizer state covers, and which ones it seems to lack.

    Optimizer states name parameters by index, so this is an estimate: the parameter-like tensors of
    the weights, in order, are aligned with the optimizer's parameters by the shapes of their state
    (Adam's ``exp_avg``); a tensor the alignment skips has no optimizer state.
    """
    cands = _param_candidates(sd)
    ids: list[Any] = []
    state_shapes: list[tuple | None] = []
    n_with_state = 0
    groups = 0
    for opt in opts:
        state = opt.get("state", {}) or {}
        n_with_state += sum(1 for v in state.values() if v)
        for g in opt.get("param_groups", []) or []:
            groups += 1
            for pid in g.get("params", []) or []:
                ids.append(pid)
                entry = state.get(pid) or {}
                shp = None
                for name in ("exp_avg", "momentum_buffer", "square_avg", "sum", "exp_avg_sq"):
                    t = entry.get(name) if isinstance(entry, Mapping) else None
                    if _is_tensor(t):
                        shp = tuple(t.shape)
                        break
                state_shapes.append(shp)
    result: dict[str, Any] = {
        "present": True, "n_optimizers": len(opts), "n_param_groups": groups,
        "n_params_in_optimizer": len(ids), "n_params_with_state": n_with_state,
        "n_param_tensors": len(cands), "params_without_state": [],
    }
    if len(ids) < len(cands) and state_shapes and all(s is not None for s in state_shapes):
        lacking: list[str] = []
        j = 0
        for key in cands:
            if j < len(state_shapes) and tuple(sd[key].shape) == state_shapes[j]:
                j += 1
            else:
                lacking.append(key)
        if j == len(state_shapes):
            result["params_without_state"] = lacking
    if len(ids) < len(cands):
        result["params_without_state_count"] = len(cands) - len(ids)
    return result


def summarize(path: str | Path, *, n_norms: int = 5) -> CheckpointSummary:
    """Read one checkpoint safely and describe it (see :class:`CheckpointSummary`).

    Raises :class:`CheckpointError` for unreadable or hostile files (``CheckpointRef.summary``
    turns that into ``ref.error``).
    """
    import torch

    path = Path(path)
    loaded = load_checkpoint(path)
    obj = loaded.obj
    located = locate_state_dict(obj)
    sd = located.state_dict
    s = CheckpointSummary(path=str(path), format=loaded.format)
    s.kind = _kind(obj, loaded.format, located.at, path)
    s.top_level_keys = [str(k) for k in obj.keys()][:50] if isinstance(obj, Mapping) and located.at else []
    s.state_dict_at = located.at
    s.other_state_dicts = {at: len(o) for at, o in located.others.items()}
    norms: list[tuple[str, float]] = []
    for key, value in sd.items():
        if not _is_tensor(value):
            continue
        s.n_tensors += 1
        s.n_elements += int(value.numel())
        if value.is_floating_point() and not key.endswith(_BUFFER_SUFFIXES):
            s.n_params += int(value.numel())
        dt = str(value.dtype).replace("torch.", "")
        s.dtypes[dt] = s.dtypes.get(dt, 0) + 1
        s.shapes[key] = [int(x) for x in value.shape]
        if value.is_floating_point():
            t = value.detach()
            if not bool(torch.isfinite(t).all()):
                s.nonfinite.append({"key": key, "nan": int(torch.isnan(t).sum()), "inf": int(torch.isinf(t).sum()),
                                    "numel": int(t.numel())})
            elif t.numel() and not key.endswith(_BUFFER_SUFFIXES):
                norms.append((key, float(torch.linalg.vector_norm(t, dtype=torch.float64))))
    norms.sort(key=lambda kv: kv[1], reverse=True)
    s.layer_norms_top = norms[:n_norms]
    s.layer_norms_bottom = list(reversed(norms[max(n_norms, len(norms) - n_norms):]))
    s.prefixes = wrapper_prefixes(s.shapes)
    opts = find_optimizer_states(obj)
    covered = dict(sd)
    for name in _LOSS_KEYS:  # a loss module's parameters (log-variances) are optimizer parameters too
        extra = obj.get(name) if isinstance(obj, Mapping) and located.at else None
        if isinstance(extra, Mapping) and extra and all(_is_tensor(v) for v in extra.values()):
            covered.update({f"{name}.{k}": v for k, v in extra.items()})
    s.optimizer = _optimizer_coverage(opts, covered) if opts else {"present": False}
    s.meta = read_meta(path)
    s.epoch, s.step = _counters(obj, s.meta)
    return s


def _counters(obj: Any, meta: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """(epoch, step): the container's top level, else the JSON meta beside it (the trainer's
    record of the finished epoch), else nested progress dicts."""
    out = []
    for names in (_EPOCH_KEYS, _STEP_KEYS):
        value = _find_counter(obj, names, nested=False)
        if value is None:
            value = _find_counter(meta, names, nested=False)
        if value is None:
            value = _find_counter(obj, names)
        out.append(value)
    return out[0], out[1]


# --------------------------------------------------------------------------------------------
# update-to-weight ratios


@dataclass
class UpdateRatios:
    """Per-layer ``|W_b - W_a| / |W_a|`` between two saves of one model.

    ``median``/``q25``/``q75`` summarise the layers; ``steps`` is the number of optimizer steps
    between the saves when both recorded a step, and ``median_per_step = median / steps``.  Dividing
    the net displacement by the step count gives a lower bound of the per-step update (noisy steps
    partly cancel), so the closest pair of saves is the best evidence.
    """

    per_layer: dict[str, float]
    median: float
    q25: float
    q75: float
    spread_decades: float  # log10(q75 / q25)
    steps: int | None = None
    median_per_step: float | None = None
    a: str | None = None
    b: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _weights_and_step(ckpt: Any) -> tuple[dict[str, Any], int | None, str | None]:
    if isinstance(ckpt, (str, Path)):
        loaded = load_checkpoint(ckpt)
        sd = locate_state_dict(loaded.obj).state_dict
        return sd, _counters(loaded.obj, read_meta(ckpt))[1], str(ckpt)
    if isinstance(ckpt, Mapping):
        located = locate_state_dict(ckpt)
        return located.state_dict, _find_counter(ckpt, _STEP_KEYS), None
    raise TypeError(f"expected a checkpoint path or a state_dict, got {type(ckpt).__name__}")


def update_ratios(ckpt_a: Any, ckpt_b: Any, steps: int | None = None) -> UpdateRatios:
    """Per-layer update-to-weight ratio between two checkpoints (paths or state_dicts).

    Only parameter-like tensors present in both with the same shape and a non-zero norm in ``a``
    count (BN running stats and integer buffers are skipped); keys are compared after stripping
    wrapper prefixes so a DataParallel save and a plain one still line up.  ``steps`` overrides the
    step difference read from the checkpoints (``step``/``global_step``, or the JSON meta beside).
    """
    import torch

    sd_a, step_a, name_a = _weights_and_step(ckpt_a)
    sd_b, step_b, name_b = _weights_and_step(ckpt_b)
    sd_a = strip_prefixes(sd_a)
    sd_b = strip_prefixes(sd_b)
    per_layer: dict[str, float] = {}
    for key in _param_candidates(sd_a):
        wb = sd_b.get(key)
        wa = sd_a[key]
        if not _is_tensor(wb) or tuple(wb.shape) != tuple(wa.shape) or not wb.is_floating_point():
            continue
        na = float(torch.linalg.vector_norm(wa, dtype=torch.float64))
        if not math.isfinite(na) or na <= 1e-12:
            continue
        d = float(torch.linalg.vector_norm(wb.double() - wa.double()))
        if math.isfinite(d):
            per_layer[key] = d / na
    if not per_layer:
        raise CheckpointError("the two checkpoints share no parameter tensor of the same name and shape",
                              "compare two saves of the same model")
    import numpy as np

    vals = np.array(list(per_layer.values()), dtype=float)
    med, q25, q75 = (float(x) for x in np.quantile(vals, [0.5, 0.25, 0.75]))
    spread = math.log10(q75 / q25) if q25 > 0 and q75 > 0 else float("inf") if q75 > 0 else 0.0
    if steps is None and step_a is not None and step_b is not None:
        steps = abs(step_b - step_a)  # 0: saved at the same step (last.pt beside epoch_XXX.pt)
    per_step = med / steps if steps else None
    return UpdateRatios(per_layer, med, q25, q75, spread, steps, per_step, name_a, name_b)


def _lr_scale(run: Any, lo: float, hi: float) -> float | None:
    """Mean lr over steps [lo, hi] relative to the run's peak lr (None when no lr was logged)."""
    try:
        from trainfix.diagnostics.roles_vocab import LR

        series = run.role(LR)
    except Exception:
        series = None
    if series is None or not len(series):
        return None
    import numpy as np

    vals = series.values[np.isfinite(series.values)]
    steps = series.steps[np.isfinite(series.values)]
    if not len(vals) or vals.max() <= 0:
        return None
    inside = vals[(steps >= lo) & (steps <= hi)]
    if not len(inside):  # no lr point inside the interval: nearest one at or before hi
        before = vals[steps <= hi]
        inside = before[-1:] if len(before) else vals[:1]
    return float(inside.mean() / vals.max())


def update_ratio_evidence(run: Any, *, band: tuple[float, float] = UPDATE_RATIO_BAND,
                          max_pairs: int = 4) -> dict[str, Any] | None:
    """Update-ratio evidence for ``lr-miscaled``: None unless the run holds >= 2 readable
    checkpoints with distinct step counts.

    Pairs consecutive saves (by step; duplicates such as last.pt of the same step dropped), takes
    each pair's median per-layer ratio per step, and the median over pairs.  When the run logged its
    lr, the figure is scaled to the peak lr (``ratio / (lr_during_pair / peak_lr)``) so a decayed
    schedule tail is not mistaken for starvation; when the lr during the pairs is below 5% of the
    peak the evidence is too weak and None is returned.  Verdict: below ``band[0]`` starving, above
    ``band[1]`` exploding, else healthy (~1e-3 per step is typical).
    """
    refs = list(getattr(run, "checkpoints", []) or [])
    if len(refs) < 2:
        return None
    by_step: dict[int, Any] = {}
    for ref in refs:
        summ = getattr(ref, "summary", None)
        if summ is None or summ.step is None:
            continue
        prefer = Path(ref.path).name.startswith("epoch_")
        if summ.step not in by_step or prefer:
            by_step[summ.step] = ref
    if len(by_step) < 2:
        return None
    ordered = sorted(by_step.items())
    pairs = list(zip(ordered[:-1], ordered[1:]))[-max_pairs:]
    per_pair = []
    used: list[str] = []
    for (sa, ra), (sb, rb) in pairs:
        try:
            r = update_ratios(ra.path, rb.path, steps=sb - sa)
        except Exception:
            continue
        if r.median_per_step is None:
            continue
        scale = _lr_scale(run, sa, sb)
        per_pair.append({"a": Path(ra.path).name, "b": Path(rb.path).name, "steps": sb - sa,
                         "median_ratio": r.median, "median_ratio_per_step": r.median_per_step,
                         "spread_decades": r.spread_decades, "lr_scale": scale})
        used += [str(ra.path), str(rb.path)]
    if not per_pair:
        return None
    import numpy as np

    raw = float(np.median([p["median_ratio_per_step"] for p in per_pair]))
    scales = [p["lr_scale"] for p in per_pair if p["lr_scale"] is not None]
    scale = float(np.median(scales)) if scales else None
    if scale is not None and scale < 0.05:
        return None
    judged = raw / scale if scale else raw
    verdict = "starving" if judged < band[0] else "exploding" if judged > band[1] else "healthy"
    return {
        "median_update_ratio_per_step": judged,
        "median_update_ratio_per_step_raw": raw,
        "lr_scale": scale,
        "band": [float(band[0]), float(band[1])],
        "typical": UPDATE_RATIO_TYPICAL,
        "verdict": verdict,
        "pairs": per_pair,
        "checkpoints": list(dict.fromkeys(used)),
    }
