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
