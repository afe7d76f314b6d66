"""How much slower is `trainfix train` than a hand-written PyTorch loop doing the same work?

Both sides build the same digits data (``digits`` factory, 16x16), the same CNN (width 16, depth 2),
AdamW at the same lr, batch 32, the same number of steps and epochs.  The plain loop does what a
user's own loop does at the same cadence as trainfix's defaults: every 10 steps it reads the loss
(``loss.item()``) and appends a JSON line to its own log file; at each epoch end a validation pass
(loss and accuracy), a ``torch.save`` of model + optimizer + epoch to ``last.pt``, and a copy to
``best.pt`` when the validation accuracy improved.  trainfix runs at its default cadence what it
always does: schedule, grad-norm, non-finite check each step, scalars to metrics.jsonl + TensorBoard
every 10 steps, per-class metrics, clean-keyed atomic checkpoints with RNG state and JSON meta,
epoch_XXX/last/best files.  With the ``cnn`` model its default ``training.attention_eval: auto``
also measures Grad-CAM and Guided Backprop maps on 128 validation samples at each evaluation (the
``attn/*`` scalars): work the plain loop does not do, so it is timed in its own row, and the
same-work row runs trainfix with ``training.attention_eval=off``.

Runs alternate (plain, trainfix, trainfix same-work, plain, ...) in one process so all see the same
machine load; min and median of the repetitions are reported.  The headline figure is the
steady-state step time (from the end of step 10 to the end of the run: evaluation, logging and
checkpointing included); CPU time of whole runs, setup included, is printed too.

On a GPU (``--device cuda``) both loops keep the data loading on the CPU, as trainfix does, and every
timer reading is preceded by ``torch.cuda.synchronize()`` so queued kernels are counted.

Run: python benchmarks/trainer_overhead.py [--epochs 5] [--reps 7] [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from trainfix.trainers import train
from trainfix.trainers.components.datasets import digits
from trainfix.trainers.components.models import cnn

CONFIG = {
    "run": {"name": "overhead", "seed": 0, "device": "cpu"},
    "data": {"name": "digits", "image_size": 16},
    "model": {"name": "cnn", "width": 16, "depth": 2},
    "loss": {"name": "cross-entropy"},
    "optimizer": {"name": "adamw", "lr": 0.003, "weight_decay": 0.0001},
    "schedule": {"name": "constant"},
    "training": {"batch_size": 32},
    "logging": {"progress": False},
}


WARM = 10  # steady-state step time is measured from the end of this step to the end of the run


def sync(device: str) -> None:
    """Wait for the device's queued work before reading a clock (a no-op on the CPU)."""
    if device == "cuda":
        torch.cuda.synchronize()


def plain_loop(epochs: int, out: Path, device: str = "cpu") -> tuple[float, float, int, float]:
    """A hand-written loop: (wall s, CPU s, optimizer steps, wall s from the end of step WARM to the end)."""
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    bundle = digits(0, image_size=16)
    model = cnn(bundle, width=16, depth=2).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=0.003, weight_decay=0.0001)
    train_dl = torch.utils.data.DataLoader(bundle.train, batch_size=32, shuffle=True)
    val_dl = torch.utils.data.DataLoader(bundle.val, batch_size=256)
    steps, best = 0, -1.0
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "log.jsonl", "w") as log:
        for epoch in range(epochs):
            model.train()
            for x, y, _ in train_dl:
                x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)
                steps += 1
                if steps % 10 == 0:
                    log.write(json.dumps({"step": steps, "loss": loss.item(), "time": time.time()}) + "\n")
                    log.flush()
                if steps == WARM:
                    sync(device)
                    t_warm = time.time()
            model.eval()
            correct, val_loss = 0, 0.0
            with torch.no_grad():
                for x, y, _ in val_dl:
                    x, y = x.to(device), y.to(device)
                    logits = model(x)
                    val_loss += F.cross_entropy(logits, y, reduction="sum").item()
                    correct += (logits.argmax(1) == y).sum().item()
            acc = correct / len(bundle.val)
            log.write(json.dumps({"step": steps, "epoch": epoch, "val_loss": val_loss / len(bundle.val), "val_acc": acc}) + "\n")
            log.flush()
            torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, out / "last.pt")
            if acc > best:
                best = acc
                shutil.copyfile(out / "last.pt", out / "best.pt")
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0, steps, time.time() - t_warm


def trainfix_loop(epochs: int, out: Path, device: str = "cpu", extra: Sequence[str] = ()) -> tuple[float, float, int, float]:
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(CONFIG, out_dir=out, overrides=[f"training.epochs={epochs}", f"run.device={device}", *extra])
    sync(device)
    wall, cpu, end = time.perf_counter() - t0, time.process_time() - c0, time.time()
    # the wall clock of the record logged at step WARM (logging.every_n_steps is 10 by default)
    with open(result.out_dir / "metrics.jsonl") as f:
        t_warm = next(r["wall_time"] for r in map(json.loads, f) if r["step"] == WARM)
    return wall, cpu, result.step, end - t_warm


CASES: dict[str, Callable[[int, Path, str], tuple[float, float, int, float]]] = {
    "plain": plain_loop,
    "trainfix (default: attn/* maps at each eval)": trainfix_loop,
    "trainfix, same work (attention_eval=off)": partial(trainfix_loop, extra=("training.attention_eval=off",)),
}


def row(name: str, ours: list[float], base: list[float], unit: str) -> str:
    r_min, r_med = min(ours) / min(base), statistics.median(ours) / statistics.median(base)
    return (f"| {name:62} | {min(ours):7.3f} / {statistics.median(ours):7.3f} {unit:7} | "
            f"{min(base):7.3f} / {statistics.median(base):7.3f} {unit:7} | {r_min:5.3f} / {r_med:5.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    steady: dict[str, list[float]] = {name: [] for name in CASES}
    steps: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stderr(io.StringIO()):
        # warm-up of every case (imports, allocator, first-call costs) is not measured
        for i, fn in enumerate(CASES.values()):
            fn(1, Path(tmp) / f"warm{i}", args.device)
        for rep in range(args.reps):
            for i, (name, fn) in enumerate(CASES.items()):
                seconds, cpu_seconds, n, after_warm = fn(args.epochs, Path(tmp) / f"{i}-{rep}", args.device)
                cpu[name].append(cpu_seconds)
                steady[name].append(1000 * after_warm / (n - WARM))
                steps[name] = n
                print(f"rep {rep} {name:46s} {seconds:7.3f} s wall {cpu_seconds:7.3f} s CPU  "
                      f"{1000 * after_warm / (n - WARM):7.3f} ms/step steady", file=sys.__stdout__, flush=True)
    assert len(set(steps.values())) == 1, steps
    n = steps["plain"]
    print(f"\n{n} steps, {args.epochs} epochs, batch 32, {args.threads} thread(s), {args.device}, "
          f"{args.reps} alternating repetitions; ratio = trainfix / plain (goal: same work within 1.05)")
    print(f"| {'trainfix case':62} | {'trainfix min / median':23} | {'plain min / median':23} | ratio min / med |")
    print(f"|{'-' * 64}|{'-' * 25}|{'-' * 25}|{'-' * 17}|")
    for name in list(CASES)[1:]:
        print(row(name + ": step time", steady[name], steady["plain"], "ms/step"))
        print(row(name + ": CPU, whole run", cpu[name], cpu["plain"], "s"))


if __name__ == "__main__":
    main()
