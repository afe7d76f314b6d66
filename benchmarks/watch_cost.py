"""What one ``trainfix watch`` poll costs: reading the run dir again and re-running every detector.

Run:  python benchmarks/watch_cost.py [--repeat 5]

Runs measured, side by side in one process (the machine is shared: compare the rows, not the
absolute numbers across machines): a corpus run written as trainfix's metrics.jsonl (about 1,200
points), the same shape at 10x and 100x the steps (per-step loss, lr and grad norm every step,
epoch metrics every 1,000 steps), and every real log of tests/data/real-logs.  For each: the
median over ``--repeat`` polls after a first warm-up poll (imports), split into reading and
detectors, and that cost as a share of the default 10 s interval (``watch`` stretches its interval
so the share never exceeds 5%).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_corpus_run(folder: Path) -> Path:
    import synthetic_runs as synthetic

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w") as fh:
        for rec in synthetic.as_records(synthetic.healthy("cosine")):
            fh.write(json.dumps(rec) + "\n")
    return folder


def write_long_run(folder: Path, steps: int) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "metrics.jsonl", "w") as fh:
        for s in range(1, steps + 1):
            rec = {"step": s, "train/loss_step": float(2 * np.exp(-s / (steps / 4)) + 0.1 * rng.random()),
                   "lr": 1e-3, "grad_norm": float(1 + rng.random())}
            if s % 1000 == 0:
                rec.update({"train/loss": 1 + 1 / s, "val/loss": 1.1 + 1 / s, "val/acc": 0.8})
            fh.write(json.dumps(rec) + "\n")
    return folder


def measure(path: Path, repeat: int) -> tuple[int, float, float]:
    from trainfix.diagnostics.ingest import read_run
    from trainfix.diagnostics.live import LiveDiagnosis

    live = LiveDiagnosis()
    live.update(read_run(path))  # warm-up: imports and first-use caches
    reads, dets = [], []
    points = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        run = read_run(path)
        t1 = time.perf_counter()
        live.update(run)
        t2 = time.perf_counter()
        reads.append(t1 - t0)
        dets.append(t2 - t1)
        points = len(run.scalars)
    return points, statistics.median(reads), statistics.median(dets)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cases = [("corpus run (jsonl)", write_corpus_run(tmp / "corpus")),
                 ("10k steps (jsonl)", write_long_run(tmp / "10k", 10_000)),
                 ("100k steps (jsonl)", write_long_run(tmp / "100k", 100_000))]
        real = sorted(p for p in (ROOT / "tests" / "data" / "real-logs").iterdir() if p.is_dir())
        cases += [(f"real {p.name}", p) for p in real]
        for name, path in cases:
            try:
                points, read, det = measure(path, args.repeat)
            except Exception as exc:  # a log this build cannot read: say so, go on
                print(f"{name}: not measured ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            rows.append((name, points, read, det))
    print(f"{'run':<24} {'points':>8} {'read ms':>8} {'detect ms':>9} {'poll ms':>8} {'% of 10 s':>9}")
    for name, points, read, det in rows:
        total = read + det
        print(f"{name:<24} {points:>8} {read * 1000:>8.0f} {det * 1000:>9.0f} {total * 1000:>8.0f} {total / 10 * 100:>8.2f}%")
    real_rows = [r for r in rows if r[0].startswith("real")]
    if real_rows:
        med = statistics.median(r[2] + r[3] for r in real_rows)
        print(f"median poll over {len(real_rows)} real logs: {med * 1000:.0f} ms ({med / 10 * 100:.2f}% of a 10 s interval)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
