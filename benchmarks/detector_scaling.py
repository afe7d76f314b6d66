"""Benchmark: are the detectors linear in the run length?  A scaling table 1k / 10k / 100k / 1M steps.

Each run is what a long training writes to TensorBoard: per step ``train/loss_step``, ``lr``,
``grad_norm`` and ``epoch`` (a per-epoch tag logged every step, the case that made epoch grouping
quadratic), per epoch of 500 steps ``train/loss``, ``val/loss`` and ``val/acc``.  Curves are a
healthy run's: a falling noisy loss, a cosine lr, a rising and settling accuracy.  For each size
the script times (CPU, ``--reps`` alternating repetitions, min and median) ``read_run`` and
``engine.diagnose`` on the run read, and prints microseconds per step for both: flat columns
mean linear.  The target: the whole 1M-step diagnosis within 5x of its read time.

Data is generated once under ``$TRAINFIX_BENCH_DATA`` (default ``/tmp/trainfix-bench``).

Run: ``python benchmarks/detector_scaling.py [--reps 5] [--sizes 1000,10000,100000,1000000]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import alternate, cache_dir, cpu_call  # noqa: E402

STEPS_PER_EPOCH = 500


def run_dir(steps: int) -> Path:
    from _eventgen import write_event_file

    root = cache_dir(f"scaling-{steps}")
    per_step = root / "events.out.tfevents.1700000000.steps"
    per_epoch = root / "events.out.tfevents.1700000001.epochs"
    if per_step.exists() and per_epoch.exists():
        return root
    rng = np.random.default_rng(steps)
    t = np.arange(steps)
    frac = t / max(1, steps - 1)
    loss = 2.3 * np.exp(-4 * frac) + 0.1 + 0.05 * rng.standard_normal(steps)
    lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * frac))
    grad = 1.0 + 0.2 * rng.standard_normal(steps) ** 2
    epoch = t // STEPS_PER_EPOCH
    write_event_file(per_step, ["train/loss_step", "lr", "grad_norm", "epoch"], t,
                     np.stack([loss, lr, grad, epoch], axis=1).astype(np.float32))
    ends = np.unique(np.minimum(np.arange(STEPS_PER_EPOCH - 1, steps + STEPS_PER_EPOCH - 1, STEPS_PER_EPOCH), steps - 1))
    e = ends / max(1, steps - 1)
    train_loss = np.array([loss[max(0, s - STEPS_PER_EPOCH + 1) : s + 1].mean() for s in ends])
    val_loss = train_loss + 0.05 + 0.01 * rng.standard_normal(ends.size)
    val_acc = 0.95 - 0.6 * np.exp(-5 * e) + 0.005 * rng.standard_normal(ends.size)
    write_event_file(per_epoch, ["train/loss", "val/loss", "val/acc"], ends,
                     np.stack([train_loss, val_loss, val_acc], axis=1).astype(np.float32))
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    args = ap.parse_args()
    from trainfix.diagnostics.engine import diagnose
    from trainfix.diagnostics.ingest import read_run

    sizes = [int(s) for s in args.sizes.split(",")]
    dirs = {n: run_dir(n) for n in sizes}
    diagnose(read_run(dirs[sizes[0]]))  # imports and detector table outside the timings
    rows = []
    for n in sizes:
        holder = {}

        def read(n=n):
            holder["run"] = read_run(dirs[n])

        def diag():
            holder["report"] = diagnose(holder["run"])

        times = alternate({"read": lambda: cpu_call(read), "diagnose": lambda: cpu_call(diag)}, max(1, args.reps))
        rep = holder["report"]
        rows.append((n, times["read"], times["diagnose"], [f.detector for f in rep.findings], len(rep.errors)))
        print(f"{n:>9,} steps: read {min(times['read']):.3f} s, diagnose {min(times['diagnose']):.3f} s, "
              f"findings {rows[-1][3]}, internal errors {rows[-1][4]}", flush=True)

    print()
    print("| steps | read min / med (s) | diagnose min / med (s) | read us/step | diagnose us/step | diagnose / read (min / med) |")
    print("|------:|-------------------:|-----------------------:|-------------:|-----------------:|----------------------------:|")
    ratio = None
    for n, rd, dg, _, _ in rows:
        r_min, r_med = min(dg) / min(rd), statistics.median(dg) / statistics.median(rd)
        print(f"| {n:,} | {min(rd):.3f} / {statistics.median(rd):.3f} | {min(dg):.3f} / {statistics.median(dg):.3f} | "
              f"{1e6 * min(rd) / n:.2f} | {1e6 * min(dg) / n:.2f} | {r_min:.2f} / {r_med:.2f} |")
        ratio = r_med
    print(f"\nlargest run: diagnosis / read = {ratio:.2f} (median; goal <= 5)")
    return 0 if ratio is not None and ratio <= 5 and all(r[4] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
