"""Benchmark: trainfix's TensorBoard reader against tbparse and TensorBoard's EventAccumulator.

Writes (once, cached under the system temp dir) an event file holding 1,000,000 scalars -- 10 tags
x 100,000 steps, realistic tag names of different lengths, one ``add_scalar`` per tag per step --
with torch's ``SummaryWriter``, then in one process times:

* ``trainfix.diagnostics.ingest.read_run(dir).scalars`` (the whole ingest, event reader included),
* ``tbparse.SummaryReader(dir).scalars``,
* ``EventAccumulator(dir, size_guidance={'scalars': 0})`` + ``Reload()`` + ``Scalars(tag)`` per tag,

checks that all three return identical (tag, step, value) triples, and prints wall and CPU times
(CPU time is the fair figure on a shared machine), the ratios against the faster of the two
references, and trainfix's peak memory (tracemalloc, which numpy reports into) against the size
of the DataFrame it returns.  trainfix is timed through ``read_run`` -- discovery, the event reader,
assembly into the DataFrame and role resolution -- i.e. what ``trainfix diagnose`` pays.

Run: ``python benchmarks/ingest_tensorboard.py [--tags 10] [--steps 100000] [--repeat 3]``.
The writer needs torch; the reader under test does not.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np


def write_events(tags: int, steps: int) -> Path:
    """Write (or reuse) the benchmark event file; return its directory."""
    root = Path(tempfile.gettempdir()) / f"trainfix-bench-tb-v2-{tags}x{steps}"
    done = root / "DONE"
    if done.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("events.out.tfevents.*"):
        old.unlink()
    from torch.utils.tensorboard import SummaryWriter

    rng = np.random.default_rng(0)
    values = rng.standard_normal((steps, tags)).astype(np.float32)
    # Realistic names of different lengths: records do not all share one size.
    base = ["train/loss_step", "lr", "grad_norm", "val/acc", "train/loss", "mem/allocated_mb", "loss/ce",
            "loss/sparsity/raw", "val/loss", "attn/entropy"]
    names = [base[i % len(base)] + (f"_{i // len(base)}" if i >= len(base) else "") for i in range(tags)]
    t0 = time.perf_counter()
    writer = SummaryWriter(str(root), max_queue=1000, flush_secs=600)
    for step in range(steps):
        row = values[step]
        for i, name in enumerate(names):
            writer.add_scalar(name, float(row[i]), step)
    writer.close()
    done.write_text("ok\n")
    print(f"wrote {tags * steps:,} scalars in {time.perf_counter() - t0:.1f} s to {root}", flush=True)
    return root


def run_trainfix(root: Path):
    from trainfix.diagnostics.ingest import read_run

    return read_run(root).scalars


def run_tbparse(root: Path):
    from tbparse import SummaryReader

    return SummaryReader(str(root)).scalars


def run_event_accumulator(root: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(root), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: acc.Scalars(tag) for tag in acc.Tags()["scalars"]}


def _timed(fn, *args):
    """(wall seconds, CPU seconds of this process, result).  CPU time is what to compare on a
    shared machine: wall time there depends on what else runs."""
    gc.collect()
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - t0, time.process_time() - c0, result


def _by_tag_trainfix(df) -> dict:
    out = {}
    for tag, rows in df.groupby("tag", observed=True, sort=True):
        out[str(tag)] = (rows["step"].to_numpy(np.int64), rows["value"].to_numpy(np.float64))
    return out


def _by_tag_tbparse(df) -> dict:
    out = {}
    for tag, rows in df.groupby("tag", sort=True):
        rows = rows.sort_values("step", kind="stable")
        out[str(tag)] = (rows["step"].to_numpy(np.int64), rows["value"].to_numpy(np.float64))
    return out


def _by_tag_ea(scalars: dict) -> dict:
    return {
        tag: (np.fromiter((e.step for e in evs), np.int64, len(evs)), np.fromiter((e.value for e in evs), np.float64, len(evs)))
        for tag, evs in scalars.items()
    }


def _same(a: dict, b: dict) -> tuple[bool, str]:
    if sorted(a) != sorted(b):
        return False, f"tags differ: {sorted(set(a) ^ set(b))[:5]}"
    for tag in a:
        (sa, va), (sb, vb) = a[tag], b[tag]
        if sa.shape != sb.shape or not np.array_equal(sa, sb):
            return False, f"{tag}: steps differ ({sa.shape[0]} vs {sb.shape[0]} points)"
        # Event files store float32: compare at that precision, NaN equal to NaN.
        if not np.array_equal(va.astype(np.float32), vb.astype(np.float32), equal_nan=True):
            return False, f"{tag}: values differ"
    return True, "identical"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tags", type=int, default=10)
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3, help="trainfix timings to take the best of")
    ap.add_argument("--skip-references", action="store_true", help="time trainfix only")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    root = write_events(args.tags, args.steps)
    size = sum(p.stat().st_size for p in root.glob("events.out.tfevents.*"))
    t0 = time.perf_counter()
    for p in root.glob("events.out.tfevents.*"):
        p.read_bytes()
    t_bytes = time.perf_counter() - t0
    print(f"file: {size / 1e6:.1f} MB, {args.tags * args.steps:,} scalars; reading its bytes: {t_bytes:.3f} s")

    walls, cpus = [], []
    df = None
    for _ in range(max(1, args.repeat)):
        df = None
        w, c, df = _timed(run_trainfix, root)
        walls.append(w)
        cpus.append(c)
    t_tf, c_tf = min(walls), min(cpus)
    df_bytes = int(df.memory_usage(deep=True).sum())
    df = None
    gc.collect()
    tracemalloc.start()
    df = run_trainfix(root)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"trainfix read_run:  wall {t_tf:8.3f} s  cpu {c_tf:8.3f} s  (best of {len(walls)}; "
          f"wall {', '.join(f'{t:.3f}' for t in walls)})")
    print(f"  DataFrame: {len(df):,} rows, {df_bytes / 1e6:.1f} MB; peak traced memory while reading: "
          f"{peak / 1e6:.1f} MB = {peak / df_bytes:.2f}x the DataFrame")
    if args.skip_references:
        return 0
    ours = _by_tag_trainfix(df)
    df = None
    gc.collect()

    t_tbp, c_tbp, tbp = _timed(run_tbparse, root)
    print(f"tbparse .scalars:   wall {t_tbp:8.3f} s  cpu {c_tbp:8.3f} s")
    same_tbp, why_tbp = _same(ours, _by_tag_tbparse(tbp))
    tbp = None
    gc.collect()
    t_ea, c_ea, ea = _timed(run_event_accumulator, root)
    print(f"EventAccumulator:   wall {t_ea:8.3f} s  cpu {c_ea:8.3f} s")
    same_ea, why_ea = _same(ours, _by_tag_ea(ea))
    ea = None

    print(f"values: trainfix vs tbparse {why_tbp}; trainfix vs EventAccumulator {why_ea}")
    for label, a, b, mine in (("wall", t_tbp, t_ea, t_tf), ("cpu", c_tbp, c_ea, c_tf)):
        print(f"speed-up ({label}): {a / mine:.1f}x vs tbparse, {b / mine:.1f}x vs EventAccumulator, "
              f"{min(a, b) / mine:.1f}x vs the faster of the two (goal >= 10x, stretch 30x)")
    ok = same_tbp and same_ea
    return 0 if ok else 1


if __name__ == "__main__" and "--write-only" in sys.argv:
    write_events(10, 100_000)
    sys.exit(0)

if __name__ == "__main__":
    sys.exit(main())
