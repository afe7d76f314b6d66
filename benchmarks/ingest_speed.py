"""Benchmark: every reader against the obvious baseline a user would write, side by side.

Targets (each a CPU-time ratio, min and median of ``--reps`` alternating repetitions):

* TensorBoard, wide steps: ``read_run`` on 10M scalars logged as 100 tags x 100k steps, per
  scalar, within 1.5x of the same on 10 tags x 1M steps;
* TensorBoard, 10M scalars over 100 tags within 3x of a numpy pass that only *frames* the
  records (reads the file, walks the record lengths knowing the cycle of 100, no decoding);
  peak memory (tracemalloc) <= 2x the DataFrame returned;
* CSV (1M rows as Lightning's ``CSVLogger`` writes them: train rows with step columns, a
  validation row per 1,000) within 2x of ``pandas.read_csv``;
* JSON lines (200k lines of trainfix's ``metrics.jsonl``) within 2x of
  ``pandas.read_json(lines=True)``; ``trainer_state.json`` (100k log entries) within 2x of
  ``json.load``;
* text (300k lines of a training script's stdout, metric lines among others) within 2x of a
  compiled-regex loop that pulls ``key: number`` pairs out of every line.

"ours" is always the whole ``read_run`` (discovery, reader, assembly into the Run's DataFrame,
roles), i.e. what ``trainfix diagnose`` pays before any detector runs.  Data is generated once
under ``$TRAINFIX_BENCH_DATA`` (default ``/tmp/trainfix-bench``) and reused.

Run: ``python benchmarks/ingest_speed.py [--reps 5] [--only tb,csv,jsonl,state,text] [--scale 1.0]``
(``--scale 0.1`` makes every file 10x smaller, for a quick look).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import Table, alternate, cache_dir, cached_file, cpu_call  # noqa: E402

TB_NAMES = ["train/loss_step", "lr", "grad_norm", "val/acc", "train/loss", "mem/allocated_mb", "loss/ce",
            "loss/sparsity/raw", "val/loss", "attn/entropy"]


def tag_names(n: int) -> list[str]:
    """``n`` realistic tag names of different lengths (``loss/ce_3`` style beyond the first 10)."""
    return [TB_NAMES[i % 10] + (f"_{i // 10}" if i >= 10 else "") for i in range(n)]


# --- data --------------------------------------------------------------------------------------------
def tb_dir(tags: int, steps: int) -> Path:
    from _eventgen import write_event_file

    root = cache_dir(f"tb-{tags}x{steps}")
    path = root / "events.out.tfevents.1700000000.bench"
    if not path.exists():
        rng = np.random.default_rng(0)
        values = np.empty((steps, tags), dtype=np.float32)
        for lo in range(0, steps, 100_000):  # keep the generator's memory small
            hi = min(steps, lo + 100_000)
            values[lo:hi] = rng.standard_normal((hi - lo, tags))
        write_event_file(path, tag_names(tags), np.arange(steps), values)
    return root


def csv_dir(rows: int) -> Path:
    def make() -> str:
        rng = np.random.default_rng(1)
        per_epoch = 1000
        lines = ["epoch,step,lr-AdamW,train_loss_step,train_acc_step,val_loss,val_acc,train_loss_epoch"]
        for i in range(rows):
            epoch = i // per_epoch
            if i % per_epoch == per_epoch - 1:  # Lightning's validation row: epoch metrics only
                lines.append(f"{epoch},{i},,,,{rng.random():.6f},{rng.random():.6f},{rng.random():.6f}")
            else:
                lines.append(f"{epoch},{i},{1e-3 * (1 - i / rows):.8g},{rng.random():.6f},{rng.random():.6f},,,")
        return "\n".join(lines) + "\n"

    return cached_file(f"csv-lightning-{rows}", "metrics.csv", make)


def jsonl_dir(lines: int) -> Path:
    def make() -> str:
        rng = np.random.default_rng(2)
        out = []
        for i in range(lines):
            rec = {"step": i, "epoch": i // 500, "wall_time": 1.7e9 + i * 0.05, "train/loss_step": float(rng.random()),
                   "lr": 1e-3 * (1 - i / lines), "grad_norm": float(rng.random() * 3)}
            out.append(json.dumps(rec))
        return "\n".join(out) + "\n"

    return cached_file(f"jsonl-{lines}", "metrics.jsonl", make)


def state_dir(entries: int) -> Path:
    def make() -> str:
        rng = np.random.default_rng(3)
        hist = []
        for i in range(entries):
            if i % 50 == 49:
                hist.append({"epoch": i / 1000, "eval_loss": float(rng.random()), "eval_accuracy": float(rng.random()),
                             "eval_runtime": 1.2, "step": (i + 1) * 10})
            else:
                hist.append({"epoch": i / 1000, "grad_norm": float(rng.random()), "learning_rate": 5e-5,
                             "loss": float(rng.random()), "step": (i + 1) * 10})
        state = {"best_metric": None, "epoch": entries / 1000, "global_step": entries * 10, "log_history": hist,
                 "max_steps": entries * 10, "train_batch_size": 8}
        return json.dumps(state, indent=2)

    return cached_file(f"trainer-state-{entries}", "trainer_state.json", make)


def text_dir(lines: int) -> Path:
    def make() -> str:
        rng = np.random.default_rng(4)
        out = []
        per_epoch = 200
        for i in range(lines):
            epoch, batch = divmod(i, per_epoch)
            k = i % 10
            if k == 9:
                out.append(f"[2024-05-01 12:00:{i % 60:02d}] INFO saving checkpoint to /ckpt/epoch_{epoch}.pt")
            elif k == 8:
                out.append(f"Epoch {epoch} | val loss: {rng.random():.4f} | val acc: {100 * rng.random():.2f}%")
            else:
                out.append(f"Epoch: [{epoch}][{batch}/{per_epoch}] step {i} loss: {rng.random():.4f} "
                           f"lr: {1e-3 * (1 - i / lines):.6f} grad_norm: {3 * rng.random():.3f}")
        return "\n".join(out) + "\n"

    return cached_file(f"text-{lines}", "train.log", make)


# --- baselines ----------------------------------------------------------------------------------------
def frame_only(path: Path, period: int) -> int:
    """The numpy pass that only frames an event file: read it, walk ``period`` records to learn
    the cycle of lengths, verify the predicted lengths of the following cycles with one numpy
    gather, walk again where the cycle changes.  No CRC checks, no decoding.  Returns the count."""
    u8 = np.fromfile(path, dtype=np.uint8)
    n = u8.shape[0]
    w64 = np.ndarray((n - 7,), dtype="<u8", buffer=u8, strides=(1,))
    pos, count = 0, 0
    while pos + 12 <= n:
        cyc, p = [], pos
        for _ in range(period):
            if p + 12 > n:
                break
            ln = int(w64[p])
            cyc.append(ln)
            p += 16 + ln
        count += len(cyc)
        pos = p
        if len(cyc) < period:
            break
        sizes = np.asarray(cyc, dtype=np.int64) + 16
        block = int(sizes.sum())
        rel = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        k = (n - pos) // block
        if k < 1:
            continue
        starts = (pos + np.arange(k, dtype=np.int64)[:, None] * block + rel[None, :]).ravel()
        ok = w64[starts] == np.tile(np.asarray(cyc, dtype=np.uint64), k)
        good = int(ok.size if ok.all() else np.argmin(ok))
        good -= good % period
        count += good
        pos += (good // period) * block
    return count


def regex_loop(path: Path) -> int:
    """The compiled-regex loop: every ``key: number`` / ``key=number`` pair of every line."""
    pair = re.compile(r"([A-Za-z_][\w/ ]*?)\s*[:=]\s*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)")
    found = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            for key, val in pair.findall(line):
                found.append((key, float(val)))
    return len(found)


def read_run_of(root: Path):
    from trainfix.diagnostics.ingest import read_run

    return read_run(root)


# --- the benchmark ------------------------------------------------------------------------------------
def versus(table: Table, reps: int, root: Path, target: str, baseline: str, run_baseline, goal: float) -> None:
    """``read_run`` of ``root`` against ``run_baseline()``, alternating, as one row of ``table``."""
    times = alternate({
        "ours": lambda: cpu_call(lambda: read_run_of(root)),
        baseline: lambda: cpu_call(run_baseline),
    }, reps)
    table.add(target, times["ours"], times[baseline], goal)


def bench_tb(table: Table, reps: int, scale: float) -> None:
    steps100 = max(1000, int(100_000 * scale))
    wide, narrow = tb_dir(100, steps100), tb_dir(10, steps100 * 10)
    print(f"TensorBoard: {100 * steps100:,} scalars as 100 tags and as 10 tags", flush=True)
    ev_wide = next(wide.glob("events.out.tfevents.*"))
    times = alternate({
        "wide": lambda: cpu_call(lambda: read_run_of(wide)),
        "narrow": lambda: cpu_call(lambda: read_run_of(narrow)),
        "frame": lambda: cpu_call(lambda: frame_only(ev_wide, 100)),
    }, reps)
    table.add("TensorBoard 100 tags/step vs 10 tags/step", times["wide"], times["narrow"], 1.5)
    table.add("TensorBoard 100 tags vs numpy framing only", times["wide"], times["frame"], 3.0)
    run = read_run_of(wide)
    frame_bytes = int(run.scalars.memory_usage(deep=True).sum())
    del run
    tracemalloc.start()
    run = read_run_of(wide)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"  peak traced memory while reading: {peak / 1e6:.0f} MB = {peak / frame_bytes:.2f}x the "
          f"DataFrame ({frame_bytes / 1e6:.0f} MB, {len(run.scalars):,} rows) (goal <= 2x)", flush=True)
    table.memory = (peak / frame_bytes)  # type: ignore[attr-defined]


def bench_csv(table: Table, reps: int, scale: float) -> None:
    import pandas as pd

    root = csv_dir(max(10_000, int(1_000_000 * scale)))
    print(f"CSV: {root.name}", flush=True)
    versus(table, reps, root, "CSV (Lightning) vs pandas.read_csv", "pandas", lambda: pd.read_csv(root / "metrics.csv"), 2.0)


def bench_jsonl(table: Table, reps: int, scale: float) -> None:
    import pandas as pd

    root = jsonl_dir(max(5_000, int(200_000 * scale)))
    print(f"JSON lines: {root.name}", flush=True)
    versus(table, reps, root, "JSONL vs pandas.read_json(lines=True)", "pandas",
           lambda: pd.read_json(root / "metrics.jsonl", lines=True), 2.0)


def bench_state(table: Table, reps: int, scale: float) -> None:
    root = state_dir(max(2_000, int(100_000 * scale)))
    print(f"trainer_state.json: {root.name}", flush=True)

    def load():
        with open(root / "trainer_state.json", "rb") as fh:
            return json.load(fh)

    versus(table, reps, root, "trainer_state.json vs json.load", "json", load, 2.0)


def bench_text(table: Table, reps: int, scale: float) -> None:
    root = text_dir(max(5_000, int(300_000 * scale)))
    print(f"text: {root.name}", flush=True)
    versus(table, reps, root, "text log vs compiled-regex loop", "regex", lambda: regex_loop(root / "train.log"), 2.0)


BENCHES = {"tb": bench_tb, "csv": bench_csv, "jsonl": bench_jsonl, "state": bench_state, "text": bench_text}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default=",".join(BENCHES))
    ap.add_argument("--scale", type=float, default=1.0)
    args = ap.parse_args()
    table = Table()
    read_run_of(csv_dir(10_000))  # warm imports outside the timings
    for name in args.only.split(","):
        BENCHES[name.strip()](table, max(1, args.reps), args.scale)
    ok = table.print()
    mem = getattr(table, "memory", None)
    if mem is not None:
        print(f"\nTensorBoard peak memory: {mem:.2f}x the DataFrame (goal <= 2x)")
        ok &= mem <= 2.0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
