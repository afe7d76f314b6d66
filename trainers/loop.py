"""The training loop: one function to read top to bottom (:func:`run_stage`), and :func:`train`
around it (config, run directory, resume, stages).

Order of one optimizer step: set the lr from the pure schedule function; for each micro-batch,
forward under autocast, loss divided by the number of micro-batches in the step, backward (through a
GradScaler for fp16; DDP's gradient all-reduce only on the last micro-batch); check the step's loss
is finite; unscale, measure the pre-clip global grad norm and clip; optimizer step; zero grads;
EMA update.  Scalars reach the host only on logging steps (every ``logging.every_n_steps``), plus
one scalar per step for the non-finite check.

Exact resume: data order comes from a generator seeded by ``(seed, epoch)``, never from the global
RNG, so a checkpoint only has to remember how many batches of the epoch were done; RNG states,
optimizer, scaler, EMA, callbacks, running epoch sums and the number of log lines are saved with
the model.  A run killed at any point and resumed from ``last.pt`` logs the same numbers as one that
never stopped (on the same device and thread count).  Mid-epoch ``last.pt`` refreshes every
``checkpoint.every_n_steps`` steps when set; otherwise resume restarts the interrupted epoch.

Stages run one after another in one run directory, the global step and epoch counting on; each
runs with the base config plus its overrides and may start from the previous stage's best/last
weights.  Components' hooks (``on_epoch_start`` on model, loss and callbacks) get the epoch within
the stage and the stage's epoch count, and are called again when a run resumes mid-epoch, so they
must depend only on ``(epoch, num_epochs)`` and their saved state.
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trainfix import __version__
from trainfix.errors import ConfigError, InputError, TrainingError, UsageError
from trainfix.trainers import checkpoint as ckpt_io
from trainfix.trainers import distributed
from trainfix.trainers import logging as tags
from trainfix.trainers.attribution.evaluation import attention_capable, evaluate_attention
from trainfix.trainers.build import as_config, build
from trainfix.trainers.components.optimizers import build_optimizer, scaled_lr
from trainfix.trainers.components.schedules import lr_at
from trainfix.trainers.config import RunConfig, config_hash, stage_config, to_dict, write_resolved
from trainfix.trainers.evaluate import correct_count, evaluate, to_batch


@dataclass
class RunResult:
    """What :func:`train` returns: the run directory and the final epoch's metrics."""

    out_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best: float | None = None  # best value of checkpoint.best_metric (last stage)
    step: int = 0


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


def run_stage(cfg: RunConfig, ctx: Context, stage: StageInfo, state: dict | None) -> tuple[dict, int, int]:
    """Train one stage of ``cfg``; returns (final epoch metrics, global step, global epoch at the end)."""
    info, device, logger = ctx.info, ctx.device, ctx.logger
    tc = cfg.training

    # --- setup: seeds, precision --------------------------------------------------------------
    seed = cfg.run.seed
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.run.precision)
    if amp_dtype is torch.float16 and device.type != "cuda":
        amp_dtype = None  # fp16 autocast is a CUDA feature; CPU runs fall back to fp32 (said at start)

    def autocast():
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=amp_dtype)

    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)

    # --- data, model, loss ----------------------------------------------------------------------
    # `train` runs the user's own config (_component_ allowed); init seeded by run.seed on every rank
    bundle, model, loss_fn = build(cfg, imports=True)
    model.to(device)
    loss_fn.to(device)
    torch.manual_seed(seed + 7919 * info.rank + 104729 * stage.index)  # dropout etc. differ per rank/stage
    sampler = cfg.data.get("sampler", bundle.info.get("sampler", "uniform"))
    weights = balanced_weights(bundle) if sampler == "balanced" else None
    n_train = len(bundle.train)
    per_rank = math.ceil(n_train / info.world_size)
    drop_last = per_rank % tc.batch_size == 1  # a lone 1-sample batch would break BatchNorm
    batches_per_epoch = per_rank // tc.batch_size if drop_last else math.ceil(per_rank / tc.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / tc.grad_accum)
    total_steps = steps_per_epoch * tc.epochs
    if info.is_main:  # class counts etc. of what was trained on, beside the logs
        write_data_info(ctx.out / "dataset.json", bundle, stage)
    val_loader = torch.utils.data.DataLoader(bundle.val, batch_size=max(256, tc.batch_size), shuffle=False,
                                             collate_fn=bundle.collate_fn)

    # --- lr scaling on the GLOBAL batch --------------------------------------------------------
    global_batch = tc.batch_size * tc.grad_accum * info.world_size
    base_lr = scaled_lr(cfg.optimizer.lr, cfg.optimizer.lr_scaling, global_batch, cfg.optimizer.reference_batch)

    # --- warm start: a stage may start from the previous stage's weights, a run from a checkpoint ---
    src = stage.init_path or (ctx.out / "checkpoints" / f"stage-{stage.previous}-{stage.init_from}.pt"
                              if stage.init_from else None)
    if src is not None and state is None:
        try:
            model.load_state_dict(ckpt_io.load_weights(src, map_location=device))
        except RuntimeError as exc:
            raise ConfigError(
                f"cannot start {stage.name or 'the run'} from {src}: {str(exc).splitlines()[0]}",
                "the weights must match the model the config builds (same architecture)",
            ) from None

    optimizer = build_optimizer(cfg.optimizer, model, loss_fn, base_lr)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    callbacks = build_callbacks(cfg, model, steps_per_epoch)
    ema = EMA(model, tc.ema_decay) if tc.ema_decay else None

    # --- resume: everything the uninterrupted run would hold at this point ---------------------
    step, epoch_start, batch_start = stage.step0, 0, 0
    sums = EpochSums()
    skips = 0
    last_metrics: dict[str, float] = {}
    if state is not None:
        model.load_state_dict(state["model"])
        if state.get("loss"):
            loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        for cb, cb_state in zip(callbacks, state.get("callbacks", [])):
            cb.load_state_dict(cb_state)
        if ema is not None and state.get("ema"):
            ema.load_state_dict(state["ema"], model)
        p = state["progress"]
        step, epoch_start, batch_start, skips = p["step"], p["epoch"], p["batch"], p["skips"]
        sums = EpochSums.from_dict(p["sums"], device)
        last_metrics = dict(p.get("metrics", {}))
        ctx.ckpt.best = p.get("best")

    # --- wrap: DDP, then compile; checkpoints always come from `model`, the plain module ---------
    ddp = None
    if info.enabled:
        ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    fwd = ddp if ddp is not None else model
    if cfg.run.compile:
        fwd = torch.compile(fwd)
    if state is not None:
        # last: building the components above drew random numbers; each process gets its own state back
        ranks = state.get("rng_ranks") or []
        ckpt_io.set_rng_state(ranks[info.rank] if len(ranks) == info.world_size else state["rng"])

    def save(epoch: int, batch: int, epoch_end: bool, metric: float | None = None) -> None:
        """Checkpoint the state that continues at (stage-local) ``epoch``, batch ``batch``."""
        rng = distributed.gather(ckpt_io.rng_state(), info)  # every process's RNG (a collective under DDP)
        if not ctx.ckpt.enabled:
            return
        logger.flush()
        cleaners = [cb.clean_state_dict for cb in callbacks if hasattr(cb, "clean_state_dict")]
        progress = {"stage": stage.index, "stage_step0": stage.step0, "stage_epoch0": stage.epoch0,
                    "step": step, "epoch": epoch, "batch": batch, "skips": skips, "sums": sums.to_dict(),
                    "metrics": last_metrics, "best": ctx.ckpt.best, "log_lines": logger.lines,
                    "run_config_hash": ctx.run_hash}
        state_out = {
            "model": ckpt_io.model_state(model, cleaners),
            "optimizer": optimizer.state_dict(),
            "scaler": scaler.state_dict(),
            "loss": ckpt_io.model_state(loss_fn),
            "ema": ckpt_io.model_state(ema.module, cleaners) if ema is not None else {},
            "callbacks": [cb.state_dict() for cb in callbacks],
            "rng": rng[0],
            "rng_ranks": rng,
            "progress": progress,
            "config": ctx_config_dict(cfg, info, global_batch, base_lr),
            "trainfix_version": __version__,
        }
        g_epoch = stage.epoch0 + (epoch - 1 if epoch_end else epoch)  # the epoch these weights belong to
        meta = {"epoch": g_epoch, "step": step, "stage": stage.name, "batch_in_epoch": batch,
                "metrics": last_metrics, "config_hash": config_hash(cfg), "trainfix_version": __version__}
        ctx.ckpt.save(state_out, meta, epoch_end=epoch_end, epoch=g_epoch, metric=metric)

    progress_bar = tags.EpochProgress(cfg.logging.progress, enabled=info.is_main)
    every = cfg.logging.every_n_steps
    model.train()
    loss_fn.train()

    for epoch in range(epoch_start, tc.epochs):
        g_epoch = stage.epoch0 + epoch
        # --- epoch start: component hooks, this epoch's data order ----------------------------
        pending: dict[str, float] = {}
        for part in (model, loss_fn, *callbacks):
            hook = getattr(part, "on_epoch_start", None)
            if callable(hook):
                pending.update(hook(epoch, tc.epochs) or {})
        if ema is not None:
            ema.refresh(model)
        order = epoch_order(n_train, g_epoch, seed, weights, info)[batch_start * tc.batch_size:]
        loader = torch.utils.data.DataLoader(bundle.train, batch_size=tc.batch_size, sampler=order, drop_last=drop_last,
                                             collate_fn=bundle.collate_fn, generator=torch.Generator())
        progress_bar.start(f"epoch {g_epoch}", batches_per_epoch, completed=batch_start)

        for b, raw in enumerate(loader, start=batch_start):
            group_start = b - b % tc.grad_accum
            group_size = min(tc.grad_accum, batches_per_epoch - group_start)
            last_micro = b + 1 == group_start + group_size
            if b == group_start:
                # set the lr of this step (a pure function of the step within the stage)
                lr = base_lr * lr_at(step - stage.step0, total_steps, steps_per_epoch, cfg.schedule)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group["lr_ratio"]
                log_now = (step + 1) % every == 0
                step_loss = None
                terms: dict[str, list] = {}

            # forward / backward of one micro-batch; DDP syncs gradients on the last one only
            batch = to_batch(raw, device)
            no_sync = ddp.no_sync() if ddp is not None and not last_micro else contextlib.nullcontext()
            with no_sync:
                with autocast():
                    output = fwd(batch.inputs)
                    out = loss_fn(output, batch)
                scaler.scale(out.total if group_size == 1 else out.total / group_size).backward()
            micro = out.total.detach()
            micro = micro if micro.dtype == torch.float32 else micro.float()
            micro = micro if group_size == 1 else micro / group_size
            step_loss = micro if step_loss is None else step_loss + micro
            correct, count = correct_count(output, batch, bundle)
            sums.add_correct(correct, count)
            if log_now:
                for name, value in out.weighted.items():
                    terms.setdefault(tags.loss_term_tags(name)[0], []).append(value)
                for name, value in out.raw.items():
                    terms.setdefault(tags.loss_term_tags(name)[1], []).append(value)
            if not last_micro:
                continue

            # non-finite loss: caught on the step it happens (a CPU-GPU sync point, one scalar per
            # step; under DDP one all-reduce so every process takes the same branch)
            if not distributed.all_true(math.isfinite(step_loss.item()), info, device):
                optimizer.zero_grad(set_to_none=True)
                step += 1
                skips += 1
                logger.log(step, g_epoch, {tags.TRAIN_LOSS_STEP: step_loss, tags.LR: lr, tags.NONFINITE_SKIPS: skips})
                if tc.nonfinite_policy == "stop" or skips > tc.max_nonfinite_skips:
                    logger.flush()
                    progress_bar.stop()
                    raise nonfinite_error(float(step_loss), step, g_epoch, skips, tc, ctx)
                progress_bar.advance()
                continue

            # unscale, pre-clip grad norm, clip, step
            scaler.unscale_(optimizer)
            if tc.grad_clip:
                grad_norm = torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
            elif log_now:
                grad_norm = total_grad_norm(params)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update(model)
            step += 1
            sums.add_step(step_loss)

            if log_now:  # the host reads values here, and only here
                scalars = {tags.TRAIN_LOSS_STEP: step_loss, tags.LR: lr, tags.GRAD_NORM: grad_norm,
                           tags.MEMORY: tags.memory_mb(device)}
                scalars.update({tag: torch.stack([torch.as_tensor(v, device=device).float() for v in vs]).mean()
                                for tag, vs in terms.items()})
                for part in (model, loss_fn, *callbacks):
                    hook = getattr(part, "scalars", None)
                    if callable(hook):
                        scalars.update(hook() or {})
                logger.log(step, g_epoch, scalars)
                progress_bar.advance(f"loss {float(step_loss):.4f}")
            else:
                progress_bar.advance()
            if cfg.checkpoint.every_n_steps and step % cfg.checkpoint.every_n_steps == 0 and b + 1 < batches_per_epoch:
                save(epoch, b + 1, epoch_end=False)

        # --- epoch end: epoch means, hooks, evaluation, log, checkpoint -------------------------
        batch_start = 0
        record: dict[str, Any] = {tags.EPOCH: g_epoch, **pending}
        record.update(sums.epoch_scalars(info, device))  # averaged over processes under DDP
        if ctx.staged:
            record[tags.STAGE] = stage.index
        for cb in callbacks:
            hook = getattr(cb, "on_epoch_end", None)
            if callable(hook):
                record.update(hook(epoch) or {})
        if info.is_main and ((epoch + 1) % tc.eval_every_epochs == 0 or epoch + 1 == tc.epochs):
            eval_model = ema.module if ema is not None else model
            record.update(evaluate(eval_model, loss_fn, val_loader, bundle, device, autocast))
            if attention_capable(eval_model, bundle, tc.attention_eval):  # attn/* from Grad-CAM and Guided Backprop
                record.update(evaluate_attention(eval_model, bundle, tc.attention_samples))
        last_metrics = {k: float(v) for k, v in record.items()}
        logger.log(step, g_epoch, record)
        progress_bar.stop(epoch_summary(g_epoch, record))
        sums = EpochSums()
        save(epoch + 1, 0, epoch_end=True, metric=record.get(cfg.checkpoint.best_metric))

    return last_metrics, step, stage.epoch0 + tc.epochs


def train(config: Any, out_dir: str | Path | None = None, resume: bool = False,
          overrides: Sequence[str] = (), init_from: str | Path | None = None) -> RunResult:
    """Train from a config (path, dict or RunConfig) into ``out_dir``; the Python API of ``trainfix train``.

    ``resume`` continues the run in ``out_dir`` exactly where its ``checkpoints/last.pt`` left it.
    ``init_from`` (a checkpoint or state-dict file) is a warm start instead: a NEW run whose model
    starts from those weights, with fresh optimizer, schedule and step count.
    """
    cfg = as_config(config, tuple(overrides), imports=True)  # the user's own config: _component_ allowed
    info0 = distributed.env_info()
    device = pick_device(cfg.run.device, info0.local_rank)
    info = distributed.init(device)
    out = resolve_out_dir(cfg, out_dir, resume)
    distributed.barrier(info)  # every rank checked the run dir before rank 0 writes into it

    state = ckpt_io.load(out / "checkpoints" / "last.pt", map_location=device) if resume else None
    if state is not None and info.is_main and state["progress"].get("run_config_hash") != config_hash(cfg):
        say("warning: the config differs from the one the checkpoint was trained with; resuming with the new one")

    global_batch = cfg.training.batch_size * cfg.training.grad_accum * info.world_size
    base_lr = scaled_lr(cfg.optimizer.lr, cfg.optimizer.lr_scaling, global_batch, cfg.optimizer.reference_batch)
    if info.is_main:
        cfg.run.world_size = info.world_size
        cfg.run.dist_backend = info.backend
        cfg.run.device_total_mb = round(tags.device_total_mb(device), 1)
        cfg.training.global_batch = global_batch
        cfg.optimizer.scaled_lr = base_lr
        write_resolved(cfg, out / "config.yaml", source=str(config) if isinstance(config, (str, Path)) else None)
        say(f"trainfix train -> {out}  (device {device}, {info.world_size} process{'es' if info.world_size > 1 else ''}"
            f"{', ' + info.backend if info.backend else ''})")
        say(f"lr {cfg.optimizer.lr:g} -> {base_lr:g} ({cfg.optimizer.lr_scaling} scaling; global batch {global_batch} = "
            f"{cfg.training.batch_size} x {cfg.training.grad_accum} accum x {info.world_size} process"
            f"{'es' if info.world_size > 1 else ''}; reference {cfg.optimizer.reference_batch})")
        if cfg.run.precision == "fp16" and device.type != "cuda":
            say("note: fp16 autocast needs CUDA; training in fp32 on this device")

    progress = state["progress"] if state is not None else None
    logger = tags.MetricLogger(out, cfg.logging, enabled=info.is_main,
                               resume_lines=progress["log_lines"] if progress else None,
                               resume_step=progress["step"] if progress else None)
    ctx = Context(out=out, info=info, device=device, logger=logger,
                  ckpt=ckpt_io.CheckpointManager(out / "checkpoints", cfg.checkpoint, enabled=info.is_main),
                  staged=bool(cfg.stages), run_hash=config_hash(cfg))
    metrics: dict[str, float] = dict(progress.get("metrics", {})) if progress else {}
    try:
        step, epoch = 0, 0
        stages = cfg.stages or [None]
        for index, st in enumerate(stages):
            if progress and index < progress["stage"]:
                continue
            resuming = progress is not None and index == progress["stage"]
            if resuming:
                step, epoch = progress["stage_step0"], progress["stage_epoch0"]
            scfg = stage_config(cfg, st) if st is not None else cfg
            stage = StageInfo(index=index, name=st.name if st else None, init_from=st.init_from if st else None,
                              previous=stages[index - 1].name if index > 0 and st else None, step0=step, epoch0=epoch,
                              init_path=Path(init_from) if init_from is not None and index == 0 else None)
            if not resuming:
                ctx.ckpt.best = None
            metrics, step, epoch = run_stage(scfg, ctx, stage, state if resuming else None)
            if st is not None:
                ctx.ckpt.stage_copy(st.name)
        distributed.barrier(info)
    finally:
        logger.close()
        distributed.shutdown(info)
    if info.is_main:
        say("done: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(("val/loss", "val/acc", "val/auc")) and k.count("/") == 1))
    return RunResult(out_dir=out, metrics=metrics, best=ctx.ckpt.best, step=step)


# --- helpers the loop reads as single lines ----------------------------------------------------
def say(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def pick_device(setting: str, local_rank: int = 0) -> torch.device:
    if setting == "cuda" and not torch.cuda.is_available():
        raise UsageError("run.device is 'cuda' but no CUDA device is available", "use run.device=auto or cpu")
    if setting in ("cuda", "auto") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def resolve_out_dir(cfg: RunConfig, out_dir: str | Path | None, resume: bool) -> Path:
    """``--out``, else ``run.out_dir``, else the first free ``runs/<name>[-N]``; an explicitly named
    run dir that already holds a run is refused unless resuming (never overwritten)."""
    if out_dir is not None:
        out = Path(out_dir)
    elif cfg.run.out_dir:
        out = Path(cfg.run.out_dir)
    else:
        out = Path("runs") / cfg.run.name
        n = 2
        while not resume and _holds_run(out):
            out = Path("runs") / f"{cfg.run.name}-{n}"
            n += 1
    if resume:
        if not (out / "checkpoints" / "last.pt").is_file():
            raise InputError(f"nothing to resume in {out}: no checkpoints/last.pt", "train without --resume first, or pass --out RUN_DIR")
    elif _holds_run(out):
        raise UsageError(f"{out} already holds a run", "pass --resume to continue it, or --out NEW_DIR for a new run")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _holds_run(path: Path) -> bool:
    return (path / "metrics.jsonl").exists() or (path / "checkpoints").exists()


def ctx_config_dict(cfg: RunConfig, info: distributed.DistInfo, global_batch: int, lr: float) -> dict:
    d = to_dict(cfg)
    d["run"]["world_size"], d["training"]["global_batch"], d["optimizer"]["scaled_lr"] = info.world_size, global_batch, lr
    return d


def write_data_info(path: Path, bundle: Any, stage: StageInfo) -> None:
    """``dataset.json``: the dataset's own summary (sizes, class counts), one entry per stage."""
    import json

    from trainfix.trainers.config import atomic_write_text

    entries = json.loads(path.read_text()) if stage.index > 0 and path.exists() else {}
    entries[stage.name or "run"] = {"task": bundle.task, "num_classes": bundle.num_classes,
                                    "class_names": list(bundle.class_names), "train_size": len(bundle.train),
                                    "val_size": len(bundle.val), **bundle.info}
    atomic_write_text(path, json.dumps(entries, indent=2, default=str) + "\n")


def balanced_weights(bundle: Any) -> torch.Tensor:
    """Per-sample weights 1/count(class): a WeightedRandomSampler's class-balanced draw."""
    if not bundle.train_targets:
        raise UsageError("data.sampler 'balanced' needs the dataset's training targets", "use sampler: uniform")
    targets = torch.tensor(bundle.train_targets)
    counts = torch.bincount(targets).double()
    return (1.0 / counts)[targets]


def epoch_order(n: int, epoch: int, seed: int, weights: torch.Tensor | None, info: distributed.DistInfo) -> list[int]:
    """This process's sample indices for ``epoch``: a shuffle (or a weighted draw with replacement,
    as ``WeightedRandomSampler`` does) from a generator seeded by ``(seed, epoch)``, sharded across
    processes as ``DistributedSampler`` does (padded by wrapping so every rank gets the same count)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g) if weights is None else torch.multinomial(weights, n, True, generator=g)
    if info.enabled:
        total = math.ceil(n / info.world_size) * info.world_size
        order = torch.cat([order, order[: total - n]])[info.rank: total: info.world_size]
    return order.tolist()


def build_callbacks(cfg: RunConfig, model: torch.nn.Module, steps_per_epoch: int) -> list:
    callbacks = []
    if cfg.sparse.enabled:
        from trainfix.trainers.components.sparse import SparseTraining

        callbacks.append(SparseTraining(model, cfg.sparse, steps_per_epoch))
    return callbacks


def total_grad_norm(params: Sequence[torch.nn.Parameter]) -> torch.Tensor:
    """The global L2 norm of the gradients, as ``clip_grad_norm_`` computes it, without clipping
    (``torch.nn.utils.get_total_norm`` only exists from torch 2.6; we support 2.4)."""
    grads = [p.grad.detach() for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, 2.0) for g in grads]), 2.0)


def nonfinite_error(value: float, step: int, epoch: int, skips: int, tc: Any, ctx: Context) -> TrainingError:
    last = ctx.out / "checkpoints" / "last.pt"
    kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written before it"
    why = "policy 'stop'" if tc.nonfinite_policy == "stop" else f"{skips} non-finite steps > max_nonfinite_skips {tc.max_nonfinite_skips}"
    return TrainingError(
        f"non-finite loss ({value}) at step {step}, epoch {epoch}; stopped ({why}); {kept}",
        "try a lower optimizer.lr, training.grad_clip=1.0, schedule.warmup_epochs=1, or precision=fp32; "
        f"`trainfix diagnose {ctx.out}` shows which",
    )


def epoch_summary(epoch: int, record: dict) -> str:
    keys = ("train/loss", "val/loss", "val/acc", "val/auc")
    return f"epoch {epoch}: " + "  ".join(f"{k} {float(record[k]):.4f}" for k in keys if k in record)


class EpochSums:
    """Running sums for the epoch means, kept on the device (no host sync per step)."""

    def __init__(self):
        self.loss = 0.0
        self.steps = 0
        self.correct: Any = 0.0
        self.count = 0

    def add_step(self, loss: torch.Tensor) -> None:
        self.loss = self.loss + loss
        self.steps += 1

    def add_correct(self, correct: torch.Tensor, count: int) -> None:
        self.correct = self.correct + correct
        self.count += count

    def epoch_scalars(self, info: distributed.DistInfo, device: torch.device) -> dict[str, float]:
        loss, steps, correct, count = float(self.loss), self.steps, float(self.correct), self.count
        if info.enabled:  # one all-reduce per epoch: the means cover every process's samples
            t = torch.tensor([loss, steps, correct, count], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(t)
            loss, steps, correct, count = t.tolist()
        out = {}
        if steps:
            out[tags.TRAIN_LOSS] = loss / steps
        if count:
            out[tags.TRAIN_ACC] = correct / count
        return out

    def to_dict(self) -> dict:
        return {"loss": float(self.loss), "steps": self.steps, "correct": float(self.correct), "count": self.count}

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> "EpochSums":
        s = cls()
        s.loss = torch.tensor(d["loss"], device=device) if d["steps"] else 0.0
        s.steps = d["steps"]
        s.correct = torch.tensor(d["correct"], device=device) if d["count"] else 0.0
        s.count = d["count"]
        return s


class EMA:
    """Exponential moving average of the model's floating-point state (``decay`` per step)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.refresh(model, force=True)

    def refresh(self, model: torch.nn.Module, force: bool = False) -> None:
        """(Re)bind to ``model``'s tensors; a model whose state keys changed (pruning) is re-copied."""
        if force or list(self.module.state_dict()) != list(model.state_dict()):
            self.module = copy.deepcopy(model).eval()
            for p in self.module.parameters():
                p.requires_grad_(False)
        ema_sd, sd = self.module.state_dict(), model.state_dict()
        self.floats = [(ema_sd[k], sd[k]) for k in sd if sd[k].is_floating_point()]
        self.others = [(ema_sd[k], sd[k]) for k in sd if not sd[k].is_floating_point()]

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        if self.floats:
            torch._foreach_lerp_([e for e, _ in self.floats], [m for _, m in self.floats], 1.0 - self.decay)
        for e, m in self.others:
            e.copy_(m)

    def load_state_dict(self, state: dict, model: torch.nn.Module) -> None:
        if list(state) == list(self.module.state_dict()):
            self.module.load_state_dict(state)
            self.refresh(model)
