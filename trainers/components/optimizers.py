"""Optimizers (SGD, Adam, AdamW) and the lr-scaling rule on the global batch.

The loss may add parameter groups (learnable uncertainty log-variances) through its
``param_groups(base_lr)`` hook unless it sets ``in_optimizer = False``; each group may carry its own
``lr``, kept as a ratio to the base lr so the schedule scales every group alike (``lr_ratio``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

OPTIMIZERS = ("sgd", "adam", "adamw")


def scaled_lr(lr: float, rule: str, global_batch: int, reference_batch: int) -> float:
    """``lr`` scaled by ``global_batch / reference_batch`` (linear) or its square root (sqrt)."""
    ratio = global_batch / reference_batch
    if rule == "linear":
        return lr * ratio
    if rule == "sqrt":
        return lr * math.sqrt(ratio)
    return lr


def build_optimizer(cfg: Any, model: nn.Module, loss: nn.Module, lr: float) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` (an OptimizerConfig) over the model and any loss parameter groups.

    Every group gets ``lr_ratio`` (its lr / the base lr): the loop sets ``lr = base * schedule *
    lr_ratio`` each step.
    """
    groups: list[dict] = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr, "lr_ratio": 1.0}]
    hook = getattr(loss, "param_groups", None)
    if callable(hook) and getattr(loss, "in_optimizer", True):
        for g in hook(lr) or []:
            g = dict(g)
            g.setdefault("lr", lr)
            g["lr_ratio"] = g["lr"] / lr if lr else 1.0
            groups.append(g)
    name = cfg.name
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {name!r}")
