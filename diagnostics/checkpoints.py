"""Checkpoint inspection: what a checkpoint holds (:func:`summarize`), and how far the weights moved
between two checkpoints of one run (:func:`update_ratios`), evidence the logs lack.

Reading the file safely, finding the weights in it and matching their keys to a model live in
:mod:`trainfix.weights` (the trainer needs them too); the names are imported here so that
diagnostics code asks one module about checkpoints.

torch is not imported to look at a checkpoint: zip-format torch files and safetensors files are read
as data (:func:`read_checkpoint`, through :mod:`~trainfix.diagnostics.checkpoint_archive`) and
their values by numpy; only a legacy (pre-1.6) torch file, or one holding what that reader does not
model, goes through ``torch.load(weights_only=True)``.

Public API: :func:`summarize` (:class:`CheckpointSummary`), :func:`read_meta`,
:func:`find_optimizer_states`, :func:`update_ratios` (:class:`UpdateRatios`),
:func:`update_ratio_evidence`, :func:`read_checkpoint`; and, from :mod:`trainfix.weights`, :func:`load_checkpoint`,
:func:`locate_state_dict`, :func:`wrapper_prefixes`, :func:`plan_renames`, :func:`strip_prefixes`,
:func:`compare_to_model` (:class:`KeyReport`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainfix.errors import CheckpointError
from trainfix.weights import (  # noqa: F401 - re-exported: the diagnostics' one place to ask
    BUFFER_SUFFIXES,
    NOT_WEIGHTS,
    OPTIMIZER_KEYS,
    WRAPPER_PREFIXES,
    KeyReport,
    LoadedCheckpoint,
    Located,
    compare_to_model,
    is_optimizer_state,
    is_state_dict,
    is_tensor,
    load_checkpoint,
    locate_state_dict,
    plan_renames,
    strip_prefixes,
    wrapper_prefixes,
)

#: healthy per-step update-to-weight ratio band (|dW|/|W| per optimizer step); ~1e-3 is typical
UPDATE_RATIO_BAND = (1e-4, 1e-2)
UPDATE_RATIO_TYPICAL = 1e-3
_STEP_KEYS = ("step", "global_step", "iteration", "iter", "num_updates")
_EPOCH_KEYS = ("epoch", "current_epoch")
# Nested entries that describe the run, not its progress (config.training.epochs is no epoch counter).
_NOT_PROGRESS = ("config", "hyper_parameters", "hparams", "args", "cfg", "opt", "hyperparameters")
# Where a loss module's own parameters are kept (uncertainty log-variances live there).
_LOSS_KEYS = ("loss", "criterion", "loss_fn")


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




def find_optimizer_states(obj: Any) -> list[dict]:
    """Every optimizer state dict in a container (Lightning keeps a list under optimizer_states)."""
    found: list[dict] = []
    if not isinstance(obj, Mapping):
        return found
    for key in OPTIMIZER_KEYS:
        value = obj.get(key)
        if is_optimizer_state(value):
            found.append(value)
        elif isinstance(value, (list, tuple)):
            found.extend(v for v in value if is_optimizer_state(v))
        elif isinstance(value, Mapping) and "state_dict" in value and is_optimizer_state(value["state_dict"]):
            found.append(value["state_dict"])
    return found


def _scalar(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if is_tensor(value) and value.numel() == 1:
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
        if (isinstance(inner, Mapping) and not is_optimizer_state(inner) and not is_state_dict(inner)
                and key not in OPTIMIZER_KEYS and key not in NOT_WEIGHTS):
            v = _find_counter(inner, names, depth + 1)
            if v is not None:
                return v
    return None


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
            if is_tensor(v) and v.is_floating_point() and not k.endswith(BUFFER_SUFFIXES)]


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
                    if is_tensor(t):
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


def read_checkpoint(path: str | Path) -> LoadedCheckpoint:
    """A checkpoint as data, without torch for zip-format torch files and safetensors files
    (:mod:`~trainfix.diagnostics.checkpoint_archive`: tensors are ``ArrayRef``); a legacy torch file,
    or one holding what that reader does not model, goes through ``torch.load(weights_only=True)``."""
    from trainfix.diagnostics.checkpoint_archive import Unsupported, read_archive
    from trainfix.weights import check_checkpoint_file

    path = check_checkpoint_file(path)
    try:
        got = read_archive(path)
    except Unsupported:
        got = None
    if got is None:
        return load_checkpoint(path)
    fmt, obj, meta = got
    return LoadedCheckpoint(path, fmt, obj, meta)


def summarize(path: str | Path, *, n_norms: int = 5) -> CheckpointSummary:
    """Read one checkpoint safely and describe it (see :class:`CheckpointSummary`).

    Raises :class:`CheckpointError` for unreadable or hostile files (``CheckpointRef.summary``
    turns that into ``ref.error``).
    """
    import numpy as np

    from trainfix.diagnostics.checkpoint_archive import l2_norm as _norm, values_of

    path = Path(path)
    loaded = read_checkpoint(path)
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
        if not is_tensor(value):
            continue
        s.n_tensors += 1
        s.n_elements += int(value.numel())
        if value.is_floating_point() and not key.endswith(BUFFER_SUFFIXES):
            s.n_params += int(value.numel())
        dt = str(value.dtype).replace("torch.", "")
        s.dtypes[dt] = s.dtypes.get(dt, 0) + 1
        s.shapes[key] = [int(x) for x in value.shape]
        if value.is_floating_point():
            t = values_of(value)
            if not bool(np.isfinite(t).all()):
                s.nonfinite.append({"key": key, "nan": int(np.isnan(t).sum()), "inf": int(np.isinf(t).sum()),
                                    "numel": int(t.size)})
            elif t.size and not key.endswith(BUFFER_SUFFIXES):
                norms.append((key, _norm(t)))
    norms.sort(key=lambda kv: kv[1], reverse=True)
    s.layer_norms_top = norms[:n_norms]
    s.layer_norms_bottom = list(reversed(norms[max(n_norms, len(norms) - n_norms):]))
    s.prefixes = wrapper_prefixes(s.shapes)
    opts = find_optimizer_states(obj)
    covered = dict(sd)
    for name in _LOSS_KEYS:  # a loss module's parameters (log-variances) are optimizer parameters too
        extra = obj.get(name) if isinstance(obj, Mapping) and located.at else None
        if isinstance(extra, Mapping) and extra and all(is_tensor(v) for v in extra.values()):
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
        loaded = read_checkpoint(ckpt)
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
    from trainfix.diagnostics.checkpoint_archive import l2_norm as _norm, values_of

    sd_a, step_a, name_a = _weights_and_step(ckpt_a)
    sd_b, step_b, name_b = _weights_and_step(ckpt_b)
    sd_a = strip_prefixes(sd_a)
    sd_b = strip_prefixes(sd_b)
    per_layer: dict[str, float] = {}
    for key in _param_candidates(sd_a):
        wb = sd_b.get(key)
        wa = sd_a[key]
        if not is_tensor(wb) or tuple(wb.shape) != tuple(wa.shape) or not wb.is_floating_point():
            continue
        va = values_of(wa)
        na = _norm(va)
        if not math.isfinite(na) or na <= 1e-12:
            continue
        d = _norm(values_of(wb).astype("float64") - va.astype("float64"))
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
