"""How much slower is `trainfix train` than a hand-written PyTorch loop doing the same work?

Both sides build the same digits data (``digits`` factory, 16x16), the same CNN (width 16, depth 2),
AdamW at the same lr, batch 32, the same number of steps and epochs, a validation pass and a
``torch.save`` per epoch (what any hand-written loop does).  trainfix additionally runs at its
default cadence what it always does: schedule, grad-norm, non-finite check each step, scalars
to metrics.jsonl + TensorBoard every 10 steps, per-class metrics, clean-keyed atomic checkpoints
with RNG state and JSON meta.  Runs alternate (plain, trainfix, plain, ...) in one process so both
see the same machine load; the median of the repetitions is reported.  The headline figure is the
steady-state step time (from the end of step 10 to the end of the run: evaluation, logging and
checkpointing included); whole-run figures, setup included, are printed too.

On a GPU (``--device cuda``) both loops keep the data loading on the CPU, as trainfix does, and every
timer reading is preceded by ``torch.cuda.synchronize()`` so queued kernels are counted.

Run: python benchmarks/trainer_overhead.py [--epochs 5] [--reps 7] [--threads 1] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

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
    steps = 0
    for epoch in range(epochs):
        model.train()
        for x, y, _ in train_dl:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            steps += 1
            if steps == WARM:
                sync(device)
                t_warm = time.time()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y, _ in val_dl:
                x, y = x.to(device), y.to(device)
                correct += (model(x).argmax(1) == y).sum().item()
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}, out / "last.pt")
    sync(device)
    return time.perf_counter() - t0, time.process_time() - c0, steps, time.time() - t_warm


def trainfix_loop(epochs: int, out: Path, device: str = "cpu") -> tuple[float, float, int, float]:
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    result = train(CONFIG, out_dir=out, overrides=[f"training.epochs={epochs}", f"run.device={device}"])
    sync(device)
    wall, cpu, end = time.perf_counter() - t0, time.process_time() - c0, time.time()
    # the wall clock of the record logged at step WARM (logging.every_n_steps is 10 by default)
    with open(result.out_dir / "metrics.jsonl") as f:
        t_warm = next(r["wall_time"] for r in map(json.loads, f) if r["step"] == WARM)
    return wall, cpu, result.step, end - t_warm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    times: dict[str, list[float]] = {"plain": [], "trainfix": []}
    cpu: dict[str, list[float]] = {"plain": [], "trainfix": []}
    steady: dict[str, list[float]] = {"plain": [], "trainfix": []}
    steps: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # warm-up of both (imports, allocator, first-call costs) is not measured
        plain_loop(1, Path(tmp), args.device)
        trainfix_loop(1, Path(tmp) / "warm", args.device)
        for rep in range(args.reps):
            for name, fn in (("plain", plain_loop), ("trainfix", trainfix_loop)):
                out = Path(tmp) / f"{name}-{rep}"
                out.mkdir(exist_ok=True) if name == "plain" else None
                seconds, cpu_seconds, n, after_warm = fn(args.epochs, out, args.device)
                times[name].append(seconds)
                cpu[name].append(cpu_seconds)
                steady[name].append(1000 * after_warm / (n - WARM))
                steps[name] = n
                print(f"rep {rep} {name:8s} {seconds:7.3f} s wall {cpu_seconds:7.3f} s CPU  "
                      f"{1000 * seconds / n:7.3f} ms/step")
    assert steps["plain"] == steps["trainfix"], steps
    med = {k: statistics.median(v) for k, v in times.items()}
    per_step = {k: 1000 * v / steps[k] for k, v in med.items()}
    overhead = 100 * (med["trainfix"] / med["plain"] - 1)
    # each trainfix run against the plain run just before it: robust to slow drifts of machine load
    paired = sorted(100 * (t / p - 1) for p, t in zip(times["plain"], times["trainfix"]))
    print(f"\n{steps['plain']} steps, {args.epochs} epochs, batch 32, {args.threads} thread(s), median of {args.reps}")
    st = {k: statistics.median(v) for k, v in steady.items()}
    st_paired = sorted(100 * (t / p - 1) for p, t in zip(steady["plain"], steady["trainfix"]))
    print(f"step time (steady state: after step {WARM} to the end; evals, logging, checkpoints included):")
    print(f"  plain {st['plain']:.3f} ms/step, trainfix {st['trainfix']:.3f} ms/step, overhead "
          f"{100 * (st['trainfix'] / st['plain'] - 1):+.1f}% (medians), paired median {statistics.median(st_paired):+.1f}%"
          "  (goal: within 5%)")
    cpu_med = {k: statistics.median(v) for k, v in cpu.items()}
    cpu_overhead = 100 * (cpu_med["trainfix"] / cpu_med["plain"] - 1)
    print("whole run (setup included: config validation, data, writers):")
    print(f"  plain {per_step['plain']:.3f} ms/step, trainfix {per_step['trainfix']:.3f} ms/step, overhead "
          f"{overhead:+.1f}% wall (medians); paired median {statistics.median(paired):+.1f}%, "
          f"range {paired[0]:+.1f}% .. {paired[-1]:+.1f}%")
    print(f"  CPU time: plain {cpu_med['plain']:.3f} s, trainfix {cpu_med['trainfix']:.3f} s, "
          f"overhead {cpu_overhead:+.1f}% (less sensitive to other load on the machine)")


if __name__ == "__main__":
    main()
