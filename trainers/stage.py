"""One stage's setup: seeds, data, model, loss, optimizer, callbacks and EMA (:func:`setup_stage`),
how its epochs divide into micro-batches and optimizer steps (:class:`StepPlan`), and the DDP and
``torch.compile`` wrappers (:func:`wrap`).  :mod:`trainfix.trainers.loop` trains what this builds.

The build order is part of exact resume: it draws the same random numbers on every run, so a
resumed run's components start from the state the uninterrupted run's had.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trainfix.errors import ConfigError
from trainfix.trainers import checkpoint as ckpt_io
from trainfix.trainers import distributed
from trainfix.trainers import logging as tags
from trainfix.trainers.build import build
from trainfix.trainers.components.optimizers import build_optimizer, scaled_lr
from trainfix.trainers.config import RunConfig, atomic_write_text
from trainfix.trainers.ema import EMA
from trainfix.trainers.sampling import balanced_weights


@dataclass
class StageInfo:
    index: int = 0
    name: str | None = None  # None: a run without stages
    init_from: str | None = None
    previous: str | None = None  # previous stage's name (init_from source)
    init_path: Path | None = None  # weights to start from (`train(init_from=...)`, first stage only)
    step0: int = 0  # global step when the stage started
    epoch0: int = 0  # global epoch when the stage started


@dataclass
class Context:
    out: Path
    info: distributed.DistInfo
    device: torch.device
    logger: tags.MetricLogger
    ckpt: ckpt_io.CheckpointManager
    staged: bool = False
    run_hash: str = ""  # hash of the whole run's config (stages included), checked on resume


def global_batch_lr(cfg: RunConfig, world_size: int) -> tuple[int, float]:
    """The global batch (batch x accumulation x processes) and the base lr scaled to it."""
    tc = cfg.training
    global_batch = tc.batch_size * tc.grad_accum * world_size
    return global_batch, scaled_lr(cfg.optimizer.lr, cfg.optimizer.lr_scaling, global_batch, cfg.optimizer.reference_batch)


@dataclass(frozen=True)
class StepPlan:
    """How one stage's epochs divide into micro-batches and optimizer steps, and its base lr."""

    global_batch: int
    base_lr: float
    drop_last: bool  # a lone 1-sample last batch is dropped: it would break BatchNorm
    batches_per_epoch: int  # per process
    steps_per_epoch: int
    total_steps: int

    @classmethod
    def of(cls, cfg: RunConfig, n_train: int, world_size: int) -> "StepPlan":
        tc = cfg.training
        global_batch, base_lr = global_batch_lr(cfg, world_size)
        per_rank = math.ceil(n_train / world_size)
        drop_last = per_rank % tc.batch_size == 1
        batches = per_rank // tc.batch_size if drop_last else math.ceil(per_rank / tc.batch_size)
        steps = math.ceil(batches / tc.grad_accum)
        return cls(global_batch, base_lr, drop_last, batches, steps, steps * tc.epochs)


@dataclass
class Setup:
    """What one stage trains with.  Checkpoints always come from ``model``, the plain module, never
    from ``fwd``, the DDP/compiled wrapper the forward pass runs through."""

    cfg: RunConfig
    plan: StepPlan
    bundle: Any  # DataBundle
    sample_weights: torch.Tensor | None  # data.sampler 'balanced'
    model: torch.nn.Module
    loss_fn: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    callbacks: list
    ema: EMA | None
    amp_dtype: torch.dtype | None
    device: torch.device
    fwd: Any = None
    ddp: torch.nn.parallel.DistributedDataParallel | None = None

    def __post_init__(self):
        self.params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.fwd = self.model

    def autocast(self) -> Any:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def hooks(self, name: str, parts: Sequence[Any] | None = None) -> list:
        """The ``name`` hooks of model, loss and callbacks (or of ``parts``), in that order."""
        found = (getattr(part, name, None) for part in (parts if parts is not None else (self.model, self.loss_fn, *self.callbacks)))
        return [hook for hook in found if callable(hook)]

    def state_dict(self) -> dict:
        cleaners = [cb.clean_state_dict for cb in self.callbacks if hasattr(cb, "clean_state_dict")]
        return {"model": ckpt_io.model_state(self.model, cleaners), "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(), "loss": ckpt_io.model_state(self.loss_fn),
                "ema": ckpt_io.model_state(self.ema.module, cleaners) if self.ema is not None else {},
                "callbacks": [cb.state_dict() for cb in self.callbacks]}

    def load_state_dict(self, saved: dict) -> None:
        self.model.load_state_dict(saved["model"])
        if saved.get("loss"):
            self.loss_fn.load_state_dict(saved["loss"])
        self.optimizer.load_state_dict(saved["optimizer"])
        self.scaler.load_state_dict(saved["scaler"])
        for cb, cb_state in zip(self.callbacks, saved.get("callbacks", [])):
            cb.load_state_dict(cb_state)
        if self.ema is not None and saved.get("ema"):
            self.ema.load_state_dict(saved["ema"], self.model)


def setup_stage(cfg: RunConfig, ctx: Context, stage: StageInfo, resuming: bool) -> Setup:
    """Seeds, data, model, loss, optimizer, callbacks and EMA of one stage, built in an order that
    draws the same random numbers on every run (exact resume depends on it)."""
    info, device, seed = ctx.info, ctx.device, cfg.run.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.precision)
    if amp_dtype is torch.float16 and device.type != "cuda":
        amp_dtype = None  # fp16 autocast is a CUDA feature; CPU runs fall back to fp32 (said at start)
    # `train` runs the user's own config (_component_ allowed); init seeded by run.seed on every rank
    bundle, model, loss_fn = build(cfg, imports=True)
    model.to(device)
    loss_fn.to(device)
    torch.manual_seed(seed + 7919 * info.rank + 104729 * stage.index)  # dropout etc. differ per rank/stage
    sampler = cfg.data.get("sampler", bundle.info.get("sampler", "uniform"))
    plan = StepPlan.of(cfg, len(bundle.train), info.world_size)
    if info.is_main:  # class counts etc. of what was trained on, beside the logs
        write_data_info(ctx.out / "dataset.json", bundle, stage)
    if not resuming:
        warm_start(model, stage, ctx)
    optimizer = build_optimizer(cfg.optimizer, model, loss_fn, plan.base_lr)
    return Setup(cfg=cfg, plan=plan, bundle=bundle, model=model, loss_fn=loss_fn, optimizer=optimizer,
                 sample_weights=balanced_weights(bundle) if sampler == "balanced" else None,
                 scaler=torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16),
                 callbacks=build_callbacks(cfg, model, plan.steps_per_epoch, bundle, info.world_size),
                 ema=EMA(model, cfg.training.ema_decay) if cfg.training.ema_decay else None,
                 amp_dtype=amp_dtype, device=device)


def warm_start(model: torch.nn.Module, stage: StageInfo, ctx: Context) -> None:
    """A stage may start from the previous stage's weights, a run from a checkpoint (``init_from``)."""
    src = stage.init_path or (ctx.out / "checkpoints" / f"stage-{stage.previous}-{stage.init_from}.pt"
                              if stage.init_from else None)
    if src is None:
        return
    try:
        model.load_state_dict(ckpt_io.load_weights(src, map_location=ctx.device))
    except RuntimeError as exc:
        raise ConfigError(
            f"cannot start {stage.name or 'the run'} from {src}: {str(exc).splitlines()[0]}",
            "the weights must match the model the config builds (same architecture)",
        ) from None


def wrap(s: Setup, ctx: Context) -> None:
    """DDP, then ``torch.compile``, around the plain model: what the forward pass runs through."""
    if ctx.info.enabled:
        device = ctx.device
        s.ddp = torch.nn.parallel.DistributedDataParallel(s.model, device_ids=[device.index] if device.type == "cuda" else None)
    s.fwd = s.ddp if s.ddp is not None else s.model
    if s.cfg.run.compile:
        s.fwd = torch.compile(s.fwd)


def write_data_info(path: Path, bundle: Any, stage: StageInfo) -> None:
    """``dataset.json``: the dataset's own summary (sizes, class counts), one entry per stage."""
    entries = json.loads(path.read_text()) if stage.index > 0 and path.exists() else {}
    entries[stage.name or "run"] = {"task": bundle.task, "num_classes": bundle.num_classes,
                                    "class_names": list(bundle.class_names), "train_size": len(bundle.train),
                                    "val_size": len(bundle.val), **bundle.info}
    atomic_write_text(path, json.dumps(entries, indent=2, default=str) + "\n")


def build_callbacks(cfg: RunConfig, model: torch.nn.Module, steps_per_epoch: int, bundle: Any = None,
                    world_size: int = 1) -> list:
    callbacks = []
    if cfg.sparse.enabled:
        from trainfix.trainers.components.sparse import SparseTraining

        callbacks.append(SparseTraining(model, cfg.sparse, steps_per_epoch))
    if cfg.training.mode == "atcon":  # unlabelled attention-consistency steps between the supervised ones
        from trainfix.trainers.atcon import Atcon

        callbacks.append(Atcon(cfg, bundle, model, cfg.run.seed, world_size))
    return callbacks
