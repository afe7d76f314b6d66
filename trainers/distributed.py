"""Data-parallel training through torch's own launcher.

``trainfix train --nproc N`` runs ``python -m torch.distributed.run --standalone --nproc_per_node N
-m trainfix.trainers.distributed --config ... --out ...``; each process then calls :func:`init`,
which joins the process group torchrun set up (``nccl`` on CUDA, ``gloo`` on CPU).  Rank 0 alone
logs and checkpoints; every process runs the same loop on its shard of each epoch's data order.
You can launch it yourself: ``torchrun --nproc_per_node 2 -m trainfix.trainers.distributed
--config examples/digits-quick.yaml --out runs/ddp``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from trainfix.errors import TrainfixError, TrainingError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    launched: bool = False  # started by torchrun: joins a process group even at world size 1
    backend: str | None = None  # the process group's backend once joined (nccl | gloo)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.launched or self.world_size > 1


def env_info() -> DistInfo:
    """Rank and world size from torchrun's environment variables (1 process when absent).

    A process torchrun started (it sets ``TORCHELASTIC_RUN_ID`` and ``MASTER_ADDR``) joins the
    process group even when it is alone, so ``torchrun --nproc_per_node 1`` runs the same DDP code
    path (wrapper, all-reduces, nccl on CUDA) as a larger job.
    """
    env = os.environ
    return DistInfo(
        rank=int(env.get("RANK", 0)),
        local_rank=int(env.get("LOCAL_RANK", 0)),
        world_size=int(env.get("WORLD_SIZE", 1)),
        launched="TORCHELASTIC_RUN_ID" in env and "MASTER_ADDR" in env,
    )


def init(device: torch.device) -> DistInfo:
    """Join the process group when launched by torchrun; no-op for a single process."""
    info = env_info()
    if info.enabled:
        if not torch.distributed.is_initialized():
            torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        info = replace(info, backend=str(torch.distributed.get_backend()))
    return info


def all_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when ``flag`` holds on every process (one all-reduce under DDP)."""
    if not info.enabled:
        return flag
    t = torch.tensor([0.0 if flag else 1.0], device=device)
    torch.distributed.all_reduce(t)
    return bool(t.item() == 0.0)


def gather(obj: Any, info: DistInfo) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` (every process gets the list); ``[obj]`` alone."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    torch.distributed.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled and torch.distributed.is_initialized():
        torch.distributed.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def launch(config: str, nproc: int, out_dir: str, resume: bool, device: str | None, overrides: Sequence[str],
           init_from: Any = None) -> None:
    """Run the training under torchrun with ``nproc`` processes; raises TrainingError on failure."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "trainfix.trainers.distributed", "--config", str(config), "--out", str(out_dir)]
    if resume:
        cmd.append("--resume")
    if device:
        cmd += ["--device", device]
    if init_from is not None:
        cmd += ["--init-from", str(init_from)]
    cmd += list(overrides)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    rc = subprocess.call(cmd, env=env)
    if rc != 0:
        raise TrainingError(
            f"distributed training with {nproc} processes failed (exit code {rc})",
            "the error of the failing rank is printed above; try --nproc 1 to see it alone",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of each process torchrun starts."""
    parser = argparse.ArgumentParser(prog="trainfix.trainers.distributed")
    parser.add_argument("--config", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--device", default=None)
    parser.add_argument("--init-from", default=None)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    from trainfix.trainers.loop import train

    overrides = list(args.overrides) + ([f"run.device={args.device}"] if args.device else [])
    try:
        train(args.config, out_dir=args.out, resume=args.resume, overrides=overrides, init_from=args.init_from)
    except TrainfixError as exc:
        rank = env_info().rank
        sys.stderr.write(f"error (rank {rank}): {exc.message}\n" + (f"hint: {exc.hint}\n" if exc.hint else ""))
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
