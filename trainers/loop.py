"""The training loop, shaped like nanoGPT's ``train.py``: :func:`run_stage` is an outer loop over
optimizer steps, and :func:`train_step` one step, an inner loop over its micro-batches; :func:`train`
around them handles the config, the run directory, resume and stages.

One optimizer step: set the lr from the pure schedule function of the step; for each micro-batch,
forward under autocast, loss divided by the number of micro-batches in the step, backward (through
a GradScaler for fp16; DDP's gradient all-reduce only on the last micro-batch); check the step's
loss is finite; unscale, measure the pre-clip global grad norm and clip; optimizer step; zero
grads; EMA update.  Scalars reach the host only on logging steps (every ``logging.every_n_steps``),
plus one scalar per step for the non-finite check.  An epoch of B batches makes ceil(B / grad_accum)
steps; the last one may have fewer micro-batches, and its loss is divided by that count.

Exact resume: data order comes from a generator seeded by ``(seed, epoch)``, never from the global
RNG (:mod:`trainfix.trainers.sampling`), so a checkpoint only has to remember how many batches of
the epoch were done; RNG states, optimizer, scaler, EMA, callbacks, and the :class:`TrainState`
(counters, running epoch sums) are saved with the model, and the number of log lines written.  A
run killed at any point and resumed from ``last.pt`` logs the same numbers as one that never
stopped (on the same device and thread count).  Mid-epoch ``last.pt`` refreshes every
``checkpoint.every_n_steps`` steps when set; otherwise resume restarts the interrupted epoch.

Stages run one after another in one run directory, the global step and epoch counting on; each
runs with the base config plus its overrides and may start from the previous stage's best/last
weights.  Components' hooks (``on_epoch_start`` on model, loss and callbacks) get the epoch within
the stage and the stage's epoch count, and are called again when a run resumes mid-epoch, so they
must depend only on ``(epoch, num_epochs)`` and their saved state.
"""

from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, NamedTuple, Sequence

import torch

from trainfix import __version__
from trainfix.errors import InputError, TrainingError, UsageError
from trainfix.trainers import checkpoint as ckpt_io
from trainfix.trainers import control, distributed
from trainfix.trainers import logging as tags
from trainfix.trainers.attribution.evaluation import attention_capable, evaluate_attention
from trainfix.trainers.build import as_config
from trainfix.trainers.components.schedules import lr_at
from trainfix.trainers.config import RunConfig, config_hash, stage_config, to_dict, write_resolved
from trainfix.trainers.evaluate import correct_count, evaluate, to_batch
from trainfix.trainers.sampling import epoch_order
from trainfix.trainers.stage import Context, Setup, StageInfo, global_batch_lr, setup_stage, wrap
from trainfix.trainers.state import EpochSums, TrainState


@dataclass
class RunResult:
    """What :func:`train` returns: the run directory and the final epoch's metrics."""

    out_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    best: float | None = None  # best value of checkpoint.best_metric (last stage)
    step: int = 0


def run_stage(cfg: RunConfig, ctx: Context, stage: StageInfo, saved: dict | None) -> tuple[dict, int, int]:
    """Train one stage of ``cfg``, from the checkpoint ``saved`` when resuming; returns (final epoch
    metrics, global step, global epoch at the end)."""
    tc, info, device, logger = cfg.training, ctx.info, ctx.device, ctx.logger
    s = setup_stage(cfg, ctx, stage, resuming=saved is not None)
    plan = s.plan
    st = TrainState(step=stage.step0)
    if saved is not None:  # everything the uninterrupted run would hold at this point
        s.load_state_dict(saved)
        st = TrainState.from_progress(saved["progress"], device)
        ctx.ckpt.best = saved["progress"].get("best")
    wrap(s, ctx)
    if saved is not None:  # last: building the components drew random numbers; each process gets its own back
        ranks = saved.get("rng_ranks") or []
        ckpt_io.set_rng_state(ranks[info.rank] if len(ranks) == info.world_size else saved["rng"])
    val_loader = torch.utils.data.DataLoader(s.bundle.val, batch_size=max(256, tc.batch_size), shuffle=False,
                                             collate_fn=s.bundle.collate_fn)
    bar = tags.EpochProgress(cfg.logging.progress, enabled=info.is_main)
    s.model.train()
    s.loss_fn.train()

    while st.epoch < tc.epochs:
        g_epoch = stage.epoch0 + st.epoch
        pending: dict[str, float] = {}
        for hook in s.hooks("on_epoch_start"):
            pending.update(hook(st.epoch, tc.epochs) or {})
        if s.ema is not None:
            s.ema.refresh(s.model)
        micro_batches = iter(train_loader(s, epoch_order(len(s.bundle.train), g_epoch, cfg.run.seed, s.sample_weights, info),
                                          st.batch))
        bar.start(f"epoch {g_epoch}", plan.steps_per_epoch, completed=st.batch // tc.grad_accum)

        while st.batch < plan.batches_per_epoch:  # one optimizer step
            n_micro = min(tc.grad_accum, plan.batches_per_epoch - st.batch)
            lr = plan.base_lr * lr_at(st.step - stage.step0, plan.total_steps, plan.steps_per_epoch, cfg.schedule)
            for group in s.optimizer.param_groups:
                group["lr"] = lr * group["lr_ratio"]
            log_now = (st.step + 1) % cfg.logging.every_n_steps == 0
            for hook in s.hooks("before_step", s.callbacks):  # ATCON's unlabelled steps fall here
                hook(s.model, s.optimizer, st.step, s.params, tc.grad_clip, device)
            step = train_step(s, ctx, micro_batches, n_micro, log_now, st.sums)
            st.step += 1
            st.batch += n_micro
            if not step.finite:
                st.skips += 1
                logger.log(st.step, g_epoch, {tags.TRAIN_LOSS_STEP: step.loss, tags.LR: lr, tags.NONFINITE_SKIPS: st.skips})
                if tc.nonfinite_policy == "stop" or st.skips > tc.max_nonfinite_skips:
                    logger.flush()
                    bar.stop()
                    raise nonfinite_error(float(step.loss), st.step, g_epoch, st.skips, tc, ctx)
                bar.advance()
                continue
            st.sums.add_step(step.loss)
            if log_now:  # the host reads values here, and only here
                logger.log(st.step, g_epoch, step_scalars(s, step, lr, device))
                bar.advance(f"loss {float(step.loss):.4f}")
            else:
                bar.advance()
            every = cfg.checkpoint.every_n_steps
            if every and st.step % every == 0 and st.batch < plan.batches_per_epoch:
                save_checkpoint(s, ctx, stage, st, epoch_end=False)
            if st.step % cfg.logging.every_n_steps == 0 and stop_requested(ctx):  # `trainfix watch --stop-on`
                save_checkpoint(s, ctx, stage, st, epoch_end=False)
                bar.stop()
                raise control.StopRequested(control.stop_requested(ctx.out) or "a stop request", st.step, g_epoch)

        # --- epoch end: epoch means, hooks, evaluation, log, checkpoint -------------------------
        record = end_of_epoch(s, ctx, stage, st, pending, val_loader)
        st.epoch, st.batch, st.sums = st.epoch + 1, 0, EpochSums()
        st.metrics = {k: float(v) for k, v in record.items()}
        logger.log(st.step, g_epoch, record)
        bar.stop(epoch_summary(g_epoch, record))
        save_checkpoint(s, ctx, stage, st, epoch_end=True, metric=record.get(cfg.checkpoint.best_metric))

    return st.metrics, st.step, stage.epoch0 + tc.epochs


class Step(NamedTuple):
    """What one optimizer step leaves for the loop to log (all on the device)."""

    loss: torch.Tensor  # the step's loss: the mean over its micro-batches
    finite: bool  # False: the step was skipped, no parameter moved
    grad_norm: torch.Tensor | None = None  # pre-clip global norm (when clipping or logging)
    terms: dict[str, list] | None = None  # loss term tag -> one value per micro-batch (logging steps)


def train_step(s: Setup, ctx: Context, micro_batches: Iterator, n_micro: int, log_now: bool, sums: EpochSums) -> Step:
    """One optimizer step over the next ``n_micro`` micro-batches."""
    tc, device = s.cfg.training, ctx.device
    loss, terms = None, {}
    for i in range(n_micro):
        batch = to_batch(next(micro_batches), device)
        # DDP all-reduces the gradients on the last micro-batch only
        no_sync = s.ddp.no_sync() if s.ddp is not None and i + 1 < n_micro else contextlib.nullcontext()
        with no_sync:
            with s.autocast():
                output = s.fwd(batch.inputs)
                out = s.loss_fn(output, batch)
            s.scaler.scale(out.total if n_micro == 1 else out.total / n_micro).backward()
        micro = out.total.detach()
        micro = micro if micro.dtype == torch.float32 else micro.float()
        micro = micro if n_micro == 1 else micro / n_micro
        loss = micro if loss is None else loss + micro
        sums.add_correct(*correct_count(output, batch, s.bundle))
        if log_now:
            for name, value in out.weighted.items():
                terms.setdefault(tags.loss_term_tags(name)[0], []).append(value)
            for name, value in out.raw.items():
                terms.setdefault(tags.loss_term_tags(name)[1], []).append(value)

    # non-finite loss: caught on the step it happens (a CPU-GPU sync point, one scalar per step;
    # under DDP one all-reduce so every process takes the same branch)
    if not distributed.all_true(math.isfinite(loss.item()), ctx.info, device):
        s.optimizer.zero_grad(set_to_none=True)
        return Step(loss, finite=False)

    s.scaler.unscale_(s.optimizer)
    grad_norm = None
    if tc.grad_clip:
        grad_norm = torch.nn.utils.clip_grad_norm_(s.params, tc.grad_clip)
    elif log_now:
        grad_norm = total_grad_norm(s.params)
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)
    if s.ema is not None:
        s.ema.update(s.model)
    return Step(loss, True, grad_norm, terms)


def train_loader(s: Setup, order: list[int], start_batch: int) -> torch.utils.data.DataLoader:
    """This epoch's training batches in ``order``, from batch ``start_batch`` on (a resumed epoch)."""
    tc = s.cfg.training
    return torch.utils.data.DataLoader(s.bundle.train, batch_size=tc.batch_size, sampler=order[start_batch * tc.batch_size:],
                                       drop_last=s.plan.drop_last, collate_fn=s.bundle.collate_fn, generator=torch.Generator())


def step_scalars(s: Setup, step: Step, lr: float, device: torch.device) -> dict[str, Any]:
    """A logging step's scalars: loss, the lr used, grad norm, memory, loss terms, component scalars."""
    scalars = {tags.TRAIN_LOSS_STEP: step.loss, tags.LR: lr, tags.GRAD_NORM: step.grad_norm,
               tags.MEMORY: tags.memory_mb(device)}
    scalars.update({tag: torch.stack([torch.as_tensor(v, device=device).float() for v in vs]).mean()
                    for tag, vs in step.terms.items()})
    for hook in s.hooks("scalars"):
        scalars.update(hook() or {})
    return scalars


def end_of_epoch(s: Setup, ctx: Context, stage: StageInfo, st: TrainState, pending: dict, val_loader: Any) -> dict[str, Any]:
    """The epoch's record: what the epoch-start hooks reported, the epoch means (averaged over
    processes under DDP), callbacks' epoch-end scalars, and the evaluation when due."""
    tc = s.cfg.training
    record: dict[str, Any] = {tags.EPOCH: stage.epoch0 + st.epoch, **pending}
    record.update(st.sums.epoch_scalars(ctx.info, ctx.device))
    if ctx.staged:
        record[tags.STAGE] = stage.index
    for hook in s.hooks("on_epoch_end", s.callbacks):
        record.update(hook(st.epoch) or {})
    if ctx.info.is_main and ((st.epoch + 1) % tc.eval_every_epochs == 0 or st.epoch + 1 == tc.epochs):
        eval_model = s.ema.module if s.ema is not None else s.model
        record.update(evaluate(eval_model, s.loss_fn, val_loader, s.bundle, ctx.device, s.autocast))
        if attention_capable(eval_model, s.bundle, tc.attention_eval):  # attn/* from Grad-CAM and Guided Backprop
            record.update(evaluate_attention(eval_model, s.bundle, tc.attention_samples))
    return record


def save_checkpoint(s: Setup, ctx: Context, stage: StageInfo, st: TrainState, epoch_end: bool,
                    metric: float | None = None) -> None:
    """Checkpoint what continues at ``st`` (its stage-local epoch and batch)."""
    rng = distributed.gather(ckpt_io.rng_state(), ctx.info)  # every process's RNG (a collective under DDP)
    if not ctx.ckpt.enabled:
        return
    ctx.logger.flush()
    progress = {"stage": stage.index, "stage_step0": stage.step0, "stage_epoch0": stage.epoch0, **st.progress(),
                "best": ctx.ckpt.best, "log_lines": ctx.logger.lines, "run_config_hash": ctx.run_hash}
    state = {**s.state_dict(), "rng": rng[0], "rng_ranks": rng, "progress": progress,
             "config": ctx_config_dict(s.cfg, ctx.info, s.plan.global_batch, s.plan.base_lr),
             "trainfix_version": __version__}
    g_epoch = stage.epoch0 + (st.epoch - 1 if epoch_end else st.epoch)  # the epoch these weights belong to
    meta = {"epoch": g_epoch, "step": st.step, "stage": stage.name, "batch_in_epoch": st.batch,
            "metrics": st.metrics, "config_hash": config_hash(s.cfg), "trainfix_version": __version__}
    ctx.ckpt.save(state, meta, epoch_end=epoch_end, epoch=g_epoch, metric=metric)


def train(config: Any, out_dir: str | Path | None = None, resume: bool = False,
          overrides: Sequence[str] = (), init_from: str | Path | None = None) -> RunResult:
    """Train from a config (path, dict or RunConfig) into ``out_dir``; the Python API of ``trainfix train``.

    ``resume`` continues the run in ``out_dir`` exactly where its ``checkpoints/last.pt`` left it; a
    run killed before its first checkpoint has nothing to continue and starts over in place.
    ``init_from`` (a checkpoint or state-dict file) is a warm start instead: a NEW run whose model
    starts from those weights, with fresh optimizer, schedule and step count.
    """
    cfg = as_config(config, tuple(overrides), imports=True)  # the user's own config: _component_ allowed
    info0 = distributed.env_info()
    device = pick_device(cfg.run.device, info0.local_rank)
    info = distributed.init(device)
    out = resolve_out_dir(cfg, out_dir, resume)
    distributed.barrier(info)  # every rank checked the run dir before rank 0 writes into it

    state = resume_state(cfg, out, resume, device, info)  # None: a new run (or one never checkpointed)
    if info.is_main:
        control.clear(out)  # a stale end marker or an already handled stop request
        write_run_header(cfg, config, out, device, info)

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
        ended = ("finished", {"step": step, "epoch": epoch})
    except control.StopRequested as stop:
        ended = ("stopped", {"step": stop.step, "epoch": stop.epoch, "reason": stop.reason, "resumable": True})
        step = stop.step
        if info.is_main:
            say(f"stopped on request ({stop.reason}) at epoch {stop.epoch}, step {stop.step}; checkpoint saved. "
                f"Resume with: {control.resume_command(out)}")
    except KeyboardInterrupt:
        last = (out / "checkpoints" / "last.pt").is_file()
        ended = ("interrupted", {"resumable": last})
        if info.is_main:
            say(f"interrupted; resume with: {control.resume_command(out)}" if last else
                "interrupted before the first checkpoint; nothing to resume: train again")
        raise
    except BaseException as exc:
        ended = ("failed", {"reason": f"{type(exc).__name__}: {exc}"[:500],
                            "resumable": (out / "checkpoints" / "last.pt").is_file()})
        raise
    finally:
        logger.close()
        distributed.shutdown(info)
        if info.is_main:
            control.write_end(out, ended[0], **ended[1])
    if info.is_main:
        say("done: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k.startswith(("val/loss", "val/acc", "val/auc")) and k.count("/") == 1))
    return RunResult(out_dir=out, metrics=metrics, best=ctx.ckpt.best, step=step)


# --- helpers the loop reads as single lines ----------------------------------------------------
def resume_state(cfg: RunConfig, out: Path, resume: bool, device: torch.device, info: distributed.DistInfo) -> dict | None:
    """The checkpoint ``--resume`` continues from (``last.pt``), and where it resumes said once on
    stderr; None for a new run, or for one killed before its first checkpoint (it starts over)."""
    last = out / "checkpoints" / "last.pt"
    if resume and not last.is_file():
        if info.is_main:
            say(f"{out} never saved a checkpoint: starting the run over")
        return None
    if not resume:
        return None
    state = ckpt_io.load(last, map_location=device)
    if info.is_main:
        p = state["progress"]
        if p.get("run_config_hash") != config_hash(cfg):
            say("warning: the config differs from the one the checkpoint was trained with; resuming with the new one")
        within = f" (batch {p['batch']} of the epoch)" if p.get("batch") else ""
        say(f"resuming {out} from epoch {p['stage_epoch0'] + p['epoch']}, step {p['step']}{within}")
    return state


def write_run_header(cfg: RunConfig, config: Any, out: Path, device: torch.device, info: distributed.DistInfo) -> None:
    """The resolved config beside the logs (world size, backend, device memory, the global batch and
    the lr scaled to it recorded in it), and what will run, said once on stderr."""
    global_batch, base_lr = global_batch_lr(cfg, info.world_size)
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


def stop_requested(ctx: Context) -> bool:
    """Whether ``trainfix-stop.json`` is in the run dir (rank 0 looks; under DDP every process
    learns the answer through one all-reduce, so all of them stop at the same step)."""
    asked = ctx.info.is_main and (ctx.out / control.STOP_REQUEST).is_file()
    if ctx.info.enabled:
        return not distributed.all_true(not asked, ctx.info, ctx.device)
    return asked


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
        if not (out / "checkpoints" / "last.pt").is_file() and not _never_checkpointed(out):
            raise InputError(f"nothing to resume in {out}: no checkpoints/last.pt", "train without --resume first, or pass --out RUN_DIR")
    elif _holds_run(out):
        if _never_checkpointed(out):
            raise UsageError(f"{out} holds a run that was stopped before its first checkpoint",
                             "pass --resume to start it over in place, or --out NEW_DIR for a new run")
        raise UsageError(f"{out} already holds a run", "pass --resume to continue it, or --out NEW_DIR for a new run")
    out.mkdir(parents=True, exist_ok=True)
    return out


def _never_checkpointed(path: Path) -> bool:
    """A run dir the trainer started (its config.yaml) that holds no checkpoint at all."""
    return (path / "config.yaml").is_file() and not any((path / "checkpoints").glob("*.pt"))


def _holds_run(path: Path) -> bool:
    return (path / "metrics.jsonl").exists() or (path / "checkpoints").exists()


def ctx_config_dict(cfg: RunConfig, info: distributed.DistInfo, global_batch: int, lr: float) -> dict:
    d = to_dict(cfg)
    d["run"]["world_size"], d["training"]["global_batch"], d["optimizer"]["scaled_lr"] = info.world_size, global_batch, lr
    return d


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
