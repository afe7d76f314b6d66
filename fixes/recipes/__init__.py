"""The one table of fix recipes (id -> ``module:Class``), imported lazily.

Each recipe file's docstring has the sections *What it changes / When to use / Why / Example diff*;
a contract test checks the table, the files and the sections.
"""

from __future__ import annotations

import importlib

RECIPES: dict[str, str] = {
    "sparsity-l1": "sparsity_l1:SparsityL1",
    "sparsity-rescale": "sparsity_rescale:SparsityRescale",
    "lr-sqrt-scaling": "lr_sqrt_scaling:LrSqrtScaling",
    "lr-warmup": "lr_warmup:LrWarmup",
    "lower-lr": "lower_lr:LowerLr",
    "uncertainty-reinit": "uncertainty_reinit:UncertaintyReinit",
    "mil-soft-selection": "mil_soft_selection:MilSoftSelection",
    "two-stage-sparse": "two_stage_sparse:TwoStageSparse",
    "class-balance": "class_balance:ClassBalance",
    "checkpoint-keys": "checkpoint_keys:CheckpointKeys",
    "grad-clip": "grad_clip:GradClip",
    "label-smoothing": "label_smoothing:LabelSmoothing",
    "atcon": "atcon:Atcon",
    "nan-guard": "nan_guard:NanGuard",
}


def load(recipe_id: str):
    """The recipe class registered under ``recipe_id`` (KeyError when unknown)."""
    module_name, cls_name = RECIPES[recipe_id].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, cls_name)
