"""Config knobs: one name per setting that detectors read and fix recipes edit, with the places
it lives in trainfix's own configs and the aliases it goes by in other people's.

Detectors use :func:`lookup` to read ``lambda_sparsity: 0.001`` from a foreign YAML just as they read
``loss.sparsity_weight`` from ours; recipes use :func:`locate` to find the key to edit.  Aliases
match a leaf key case-insensitively anywhere in the tree (``optimizer.lr`` and ``lr`` both match
``lr``); dotted aliases match a path suffix.  The first path of each knob is trainfix's own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterator

from trainfix.values import is_trainfix_config, truthy  # noqa: F401  (one parser for every package)


@dataclass(frozen=True)
class Knob:
    name: str
    path: str  # where trainfix's own config keeps it (dotted)
    aliases: tuple[str, ...]  # leaf names or dotted suffixes in foreign configs
    doc: str


KNOBS: dict[str, Knob] = {
    k.name: k
    for k in (
        Knob("lr", "optimizer.lr", ("lr", "learning_rate", "base_lr", "max_lr", "optimizer.lr"), "base learning rate"),
        Knob("scaled_lr", "optimizer.scaled_lr", ("scaled_lr", "lr_scaled", "effective_lr"), "lr after batch scaling (recorded by the trainer)"),
        Knob("lr_scaling", "optimizer.lr_scaling", ("lr_scaling", "lr_scale_rule", "scale_lr", "lr_scaling_rule"), "none | linear | sqrt"),
        Knob("reference_batch", "optimizer.reference_batch", ("reference_batch", "base_batch_size", "lr_reference_batch", "lr_base_batch"), "batch the base lr was tuned for"),
        Knob("weight_decay", "optimizer.weight_decay", ("weight_decay", "wd"), "weight decay"),
        Knob("optimizer", "optimizer.name", ("optimizer.name", "optim", "optimizer_name"), "optimizer name"),
        Knob("batch_size", "training.batch_size", ("batch_size", "per_device_train_batch_size", "train_batch_size", "batch"), "per-device batch size"),
        Knob("grad_accum", "training.grad_accum", ("grad_accum", "gradient_accumulation_steps", "accumulate_grad_batches", "accum_iter", "accumulation_steps"), "gradient accumulation steps"),
        Knob("world_size", "run.world_size", ("world_size", "num_gpus", "n_gpu", "nproc_per_node", "devices"), "data-parallel processes"),
        Knob("epochs", "training.epochs", ("epochs", "num_epochs", "num_train_epochs", "max_epochs", "n_epochs"), "training epochs"),
        Knob("schedule", "schedule.name", ("schedule.name", "lr_scheduler_type", "scheduler", "lr_schedule", "lr_scheduler"), "lr schedule"),
        Knob("warmup_epochs", "schedule.warmup_epochs", ("warmup_epochs", "warmup_epoch", "lr_warmup_epochs"), "warmup length in epochs"),
        Knob("warmup_steps", "schedule.warmup_steps", ("warmup_steps", "warmup_iters", "lr_warmup_steps", "num_warmup_steps"), "warmup length in steps"),
        Knob("warmup_ratio", "schedule.warmup_ratio", ("warmup_ratio",), "warmup as a fraction of training"),
        Knob("grad_clip", "training.grad_clip", ("grad_clip", "max_grad_norm", "clip_grad_norm", "gradient_clip_val", "clip_grad", "clip_norm"), "max global gradient norm"),
        Knob("label_smoothing", "loss.label_smoothing", ("label_smoothing", "label_smoothing_factor", "smoothing"), "label smoothing"),
        Knob("class_weights", "loss.class_weights", ("class_weights", "class_weight", "loss_weights"), "per-class loss weights"),
        Knob("sampler", "data.sampler", ("sampler", "weighted_sampler", "balanced_sampler", "sampling"), "uniform | balanced"),
        Knob("sparsity_kind", "loss.sparsity_kind", ("sparsity_kind", "sparsity_loss", "sparsity_type"), "entropy | l1 | none"),
        Knob("sparsity_weight", "loss.sparsity_weight", ("sparsity_weight", "lambda_sparsity", "sparsity_lambda", "lambda_sparse", "w_sparsity"), "weight of the sparsity term"),
        Knob("sparsity_scale", "loss.sparsity_scale", ("sparsity_scale", "sparsity_divisor", "sparsity_norm"), "divisor applied to the sparsity term"),
        Knob("consistency_weight", "loss.consistency_weight", ("consistency_weight", "lambda_consistency", "consistency_lambda"), "weight of the consistency term"),
        Knob("log_var_init", "loss.log_var_init", ("log_var_init", "uncertainty_init", "log_vars_init"), "zeros | random"),
        Knob("log_var_init_std", "loss.log_var_init_std", ("log_var_init_std",), "std of random log-variance init"),
        Knob("log_var_bounds", "loss.log_var_bounds", ("log_var_bounds", "log_var_range"), "[min, max] clamp of log-variances"),
        Knob("log_var_lr", "loss.log_var_lr", ("log_var_lr", "uncertainty_lr", "loss_weight_lr"), "lr of the log-variance group"),
        Knob("log_var_in_optimizer", "loss.log_var_in_optimizer", ("log_var_in_optimizer",), "whether log-variances are optimised"),
        Knob("mil_selection", "model.selection", ("selection", "selection_mode", "critical_selection_mode"), "hard | soft critical-instance selection"),
        Knob("temperature_start", "model.temperature_start", ("temperature_start", "temp_start"), "selection temperature at epoch 0"),
        Knob("temperature_end", "model.temperature_end", ("temperature_end", "temp_end"), "selection temperature at the last epoch"),
        Knob("entropy_weight", "loss.entropy_weight", ("entropy_weight", "reg_weight_entropy"), "attention-entropy regulariser weight"),
        Knob("confidence_weight", "loss.confidence_weight", ("confidence_weight", "reg_weight_confidence"), "selection-confidence regulariser weight"),
        Knob("sparse_enabled", "sparse.enabled", ("sparse.enabled", "use_ast", "ast_enabled", "sparse_training", "use_sparse"), "sparse training on/off"),
        Knob("active_fraction", "sparse.active_fraction", ("active_fraction", "activation_rate", "target_activation_rate", "ast_activation_rate", "density"), "fraction of weights kept"),
        Knob("sparse_start_epoch", "sparse.start_epoch", ("sparse.start_epoch", "sparse_start_epoch", "ast_start_epoch", "prune_start_epoch"), "epoch sparsity starts"),
        Knob("nonfinite_policy", "training.nonfinite_policy", ("nonfinite_policy", "nan_policy"), "stop | skip on NaN/Inf loss"),
        Knob("pretrained", "model.pretrained", ("pretrained", "model_name_or_path", "pretrained_model_name_or_path", "_name_or_path", "init_from", "from_pretrained", "pretrained_weights", "base_model", "finetune_from"), "pretrained weights the run starts from"),
        Knob("precision", "run.precision", ("precision", "mixed_precision", "amp"), "fp32 | bf16 | fp16"),
    )
}


def _norm(key: Any) -> str:
    return str(key).strip().lower().replace("-", "_")


def walk(tree: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every (path, leaf value) of a nested dict/list config; list items get their index."""
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from walk(value, prefix + (str(key),))
    elif isinstance(tree, list) and tree and all(isinstance(v, dict) for v in tree):
        for i, value in enumerate(tree):
            yield from walk(value, prefix + (str(i),))
    else:
        yield prefix, tree


def _matches(path: tuple[str, ...], alias: str) -> bool:
    parts = [_norm(p) for p in alias.split(".")]
    if len(parts) > len(path):
        return False
    return [_norm(p) for p in path[-len(parts):]] == parts


def locate(config: dict, knob: str) -> list[tuple[tuple[str, ...], Any]]:
    """Every (path, value) in ``config`` that holds ``knob``: trainfix's own path first, then aliases.

    Paths under ``applied_fixes`` (provenance) are ignored.
    """
    spec = KNOBS[knob]
    found: list[tuple[tuple[str, ...], Any]] = []
    own = tuple(spec.path.split("."))
    for path, value in walk(config):
        if path and path[0] == "applied_fixes":
            continue
        if path == own or any(_matches(path, a) for a in spec.aliases):
            found.append((path, value))
    found.sort(key=lambda pv: (pv[0] != own, len(pv[0])))
    return found


def lookup(config: dict, knob: str, default: Any = None) -> Any:
    """The value of ``knob`` in ``config`` (trainfix's own path preferred), or ``default``."""
    hits = locate(config or {}, knob)
    return hits[0][1] if hits else default


def finite_float(value: Any) -> float | None:
    """A config value as a finite float ("5e-4" included); None for booleans, missing, non-numeric,
    NaN or Inf values."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def lookup_float(config: dict, knob: str) -> float | None:
    """``lookup`` coerced to a finite float (strings like "5e-4" included); None when absent or not numeric."""
    return finite_float(lookup(config, knob))


def config_values(config: dict, *knob_names: str | None) -> dict[str, Any]:
    """``{"lambda_sparsity": 0.001, ...}``: each knob's value, keyed by the dotted path it was found at."""
    out: dict[str, Any] = {}
    for name in knob_names:
        if not name:
            continue
        hits = locate(config or {}, name)
        if hits:
            path, value = hits[0]
            out[".".join(path)] = value
    return out


# --- schedule and clipping ----------------------------------------------------------------------------
def has_warmup(config: dict, lr_values: Any = None) -> bool:
    """True when the config sets a non-zero warmup (epochs, steps or ratio) or a one-cycle schedule,
    or the logged lr (``lr_values``, optional) ramps up to its peak from below half of it."""
    for knob in ("warmup_epochs", "warmup_steps", "warmup_ratio"):
        v = lookup_float(config or {}, knob)
        if v is not None and v > 0:
            return True
    sched = lookup(config or {}, "schedule")
    if isinstance(sched, str) and "one" in sched.lower() and "cycle" in sched.lower():
        return True
    if lr_values is not None:
        vals = [float(v) for v in lr_values if math.isfinite(float(v))]
        if len(vals) >= 3:
            peak = max(vals)
            if peak > 0 and vals[0] < 0.5 * peak and vals.index(peak) > 0:
                return True
    return False


def has_grad_clip(config: dict) -> bool:
    """True when the config clips the global gradient norm at a positive value."""
    v = lookup_float(config or {}, "grad_clip")
    return v is not None and v > 0


# --- optimizer and learning-rate range ------------------------------------------------------------------
def optimizer_name(config: dict) -> str | None:
    """The optimizer's name from a trainfix or foreign config (``optimizer.name``, ``optim``, a
    top-level ``optimizer: adamw`` string, HF's ``optim: adamw_torch``), lower-cased; a Hugging Face
    Trainer run that names none uses AdamW."""
    name = lookup(config or {}, "optimizer")
    if name is None and isinstance((config or {}).get("optimizer"), str):
        name = config["optimizer"]
    if name is None and is_hf_trainer(config):
        name = "adamw"  # the Trainer's default optimizer
    return str(name).lower() if name is not None else None


def optimizer_family(name: str | None) -> str:
    """``adam`` (Adam, AdamW, NAdam, RAdam, LAMB, Lion...), ``sgd`` or ``unknown``."""
    if not name:
        return "unknown"
    if "adam" in name or "lamb" in name or "lion" in name:
        return "adam"
    if "sgd" in name or "momentum" in name or "nesterov" in name:
        return "sgd"
    return "unknown"


#: the typical peak lr, [low, high], by optimizer family and regime: training from scratch or
#: fine-tuning a pretrained model (BERT/ViT/Whisper fine-tunes use 1e-5..1e-4 with AdamW, LoRA up to
#: 3e-4; SGD fine-tunes of ImageNet models 1e-4..5e-2).  The one range every detector and recipe uses.
LR_RANGES: dict[tuple[str, str], tuple[float, float]] = {
    ("adam", "scratch"): (1e-4, 3e-3),
    ("sgd", "scratch"): (1e-2, 0.5),
    ("adam", "finetune"): (1e-6, 3e-4),
    ("sgd", "finetune"): (1e-4, 5e-2),
}


#: keys a Hugging Face ``training_args.json`` always has: such runs fine-tune a pretrained model
HF_TRAINER_MARKERS = ("per_device_train_batch_size", "output_dir")


def training_regime(config: dict) -> tuple[str, str]:
    """``("finetune" | "scratch", why)``: whether the run starts from pretrained weights.

    ``pretrained: true``, a model name or path (``model_name_or_path: openai/whisper-small``, HF's
    ``_name_or_path``, nanoGPT's ``init_from: gpt2``) or a Hugging Face Trainer config mean a
    fine-tune; ``pretrained: false`` or ``init_from: scratch`` mean training from scratch, and so does
    a config that says nothing (the range that was used before regimes were told apart)."""
    config = config or {}
    for path, value in locate(config, "pretrained"):
        where = ".".join(path)
        switch = truthy(value)
        if isinstance(value, str) and switch is None:
            if value.strip().lower() in ("scratch", "resume", "random"):
                return "scratch", f"{where}: {value}"
            return "finetune", f"{where}: {value}"
        if switch is not None:
            return ("finetune" if switch else "scratch"), f"{where}: {value}"
    if is_hf_trainer(config):
        return "finetune", "a Hugging Face Trainer run (trainer_state / training_args)"
    return "scratch", "no pretrained weights in the config"


def is_hf_trainer(config: dict) -> bool:
    """Whether the config comes from a Hugging Face Trainer run (its ``training_args.json`` keys, or
    the ``trainer_state`` the ingest keeps from ``trainer_state.json``)."""
    if not isinstance(config, dict):
        return False
    return all(k in config for k in HF_TRAINER_MARKERS) or isinstance(config.get("trainer_state"), dict)


def lr_range(family: str, regime: str = "scratch") -> tuple[float, float]:
    """The typical lr range of ``family`` in ``regime`` (``scratch`` unless ``finetune``); an unknown
    family gets the union of the Adam and SGD ranges."""
    reg = "finetune" if regime == "finetune" else "scratch"
    if family in ("adam", "sgd"):
        return LR_RANGES[(family, reg)]
    return LR_RANGES[("adam", reg)][0], LR_RANGES[("sgd", reg)][1]


def typical_lr(family: str, regime: str = "scratch") -> float:
    """The lr to aim for: the geometric middle of the range (its low end for an unknown family)."""
    lo, hi = lr_range(family, regime)
    return math.sqrt(lo * hi) if family in ("adam", "sgd") else lo


def target_lr(family: str, regime: str, judgement: str) -> float | None:
    """The lr a fix should aim for when the run's is out of range: the top of the range for a
    ``large`` lr (the smallest cut that leaves the unstable regime), the middle (:func:`typical_lr`)
    for a ``tiny`` one; None otherwise."""
    if judgement == "large":
        return lr_range(family, regime)[1]
    if judgement == "tiny":
        return typical_lr(family, regime)
    return None


def judge_lr(lr: float | None, family: str, regime: str = "scratch", far: float = 2.0) -> str:
    """``"tiny"`` (more than ``far`` times below the range), ``"large"`` (``far`` times its top or
    more), ``"moderate"``, or ``"unknown"`` for a missing or non-positive lr."""
    if lr is None or not lr > 0:
        return "unknown"
    lo, hi = lr_range(family, regime)
    if lr < lo / far:
        return "tiny"
    if lr >= hi * far:
        return "large"
    return "moderate"


# --- loss terms -------------------------------------------------------------------------------------
#: term-name fragment -> (weight knob, scale knob or None, kind knob or None)
TERM_KNOBS: tuple[tuple[str, tuple[str, str | None, str | None]], ...] = (
    ("spars", ("sparsity_weight", "sparsity_scale", "sparsity_kind")),
    ("consist", ("consistency_weight", None, None)),
    ("entropy", ("entropy_weight", None, None)),
    ("confid", ("confidence_weight", None, None)),
)


def term_knobs(key: str) -> tuple[str | None, str | None, str | None]:
    """(weight, scale, kind) knob names for a loss term, by a fragment of its name."""
    k = key.lower()
    for fragment, names in TERM_KNOBS:
        if fragment in k:
            return names
    return None, None, None


def term_weight_scale(config: dict, key: str) -> tuple[float | None, float | None]:
    """The configured weight and divisor of a term (None when not configured)."""
    wk, sk, _ = term_knobs(key)
    weight = lookup_float(config or {}, wk) if wk else None
    scale = lookup_float(config or {}, sk) if sk else None
    return weight, scale


# --- MIL and sparse training ------------------------------------------------------------------------
def hard_mil_selection(config: dict) -> dict | None:
    """Evidence of hard (argmax) MIL instance selection in the config."""
    sel = lookup(config or {}, "mil_selection")
    if isinstance(sel, str) and sel.strip().lower() in ("hard", "argmax", "top1", "max"):
        return {"mil_selection": sel}
    return None


def as_fraction(value: float | None) -> float | None:
    """An active fraction in [0, 1]; percentages (10, 25) are converted."""
    if value is None:
        return None
    if 1.0 < value <= 100.0:
        return value / 100.0
    return value


def first_stage_sparse(config: dict) -> tuple[bool | None, float | None, float | None, str]:
    """(enabled, active_fraction, start_epoch, where) of sparse training in force during the first
    epoch.  A multi-stage config (``stages: [{overrides: {sparse.enabled: ...}}]``) is judged by its
    first stage's overrides on top of the top-level values."""
    enabled = truthy(lookup(config, "sparse_enabled"))
    frac = as_fraction(lookup_float(config, "active_fraction"))
    start = lookup_float(config, "sparse_start_epoch")
    where = "config"
    stages = config.get("stages") if isinstance(config, dict) else None
    if isinstance(stages, list) and stages and isinstance(stages[0], dict):
        over = stages[0].get("overrides") or {}
        if isinstance(over, dict):
            flat = dict(over)
            for key, value in over.items():  # nested overrides: {sparse: {enabled: false}}
                if isinstance(value, dict):
                    for k2, v2 in value.items():
                        flat[f"{key}.{k2}"] = v2
            for key, value in flat.items():
                k = str(key).lower()
                if k.endswith("sparse.enabled"):
                    enabled = truthy(value)
                elif k.endswith("active_fraction"):
                    frac = as_fraction(finite_float(value))
                elif k.endswith("sparse.start_epoch"):
                    start = finite_float(value)
        where = f"first stage ({stages[0].get('name', 'stage 0')}) of the config"
    return enabled, frac, start, where
