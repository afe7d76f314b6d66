"""Benchmark: a sweep of 1,000 small runs, diagnosed with worker processes.

The ideal is the sum of the single-run work spread perfectly over the cores: for each run, the
CPU time of ``read_run`` + ``engine.diagnose`` measured one by one in this process (imports done),
summed, divided by ``--jobs``.  Against it: the wall time of the whole command ``trainfix check
SWEEP --format json --jobs N -o FILE`` (startup, discovery, workers, merging the results, writing
the report).  Target: within 1.2x.  Wall time is what parallelism buys, so this one figure is a
wall-clock ratio; on a machine other jobs share it is pessimistic (the workers wait for cores the
one-by-one CPU sum does not).  Alternating repetitions, min and median.

Run: ``python benchmarks/many_runs.py [--runs 1000] [--reps 5] [--jobs CORES]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import Table, alternate, cache_dir  # noqa: E402


def sweep(n: int) -> Path:
    root = cache_dir(f"sweep-{n}")
    if (root / "DONE").exists():
        return root
    for i in range(n):
        run = root / f"run-{i:04d}"
        run.mkdir(exist_ok=True)
        lines = []
        for step in range(200):
            diverge = i % 10 == 3 and step > 120
            loss = (0.3 + 0.02 * (step - 120)) if diverge else 2.0 / (1 + 0.1 * step) + 0.01 * ((step * 7919 + i) % 13)
            lines.append(json.dumps({"step": step, "epoch": step // 20, "train/loss": loss, "lr": 1e-3,
                                     "val/acc": min(0.95, 0.2 + step / 250)}))
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (root / "DONE").write_text("ok\n")
    return root


def main() -> int:
    from trainfix.diagnostics.parallel import default_jobs

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--jobs", type=int, default=default_jobs())
    args = ap.parse_args()
    from trainfix.diagnostics.engine import diagnose
    from trainfix.diagnostics.ingest import read_run

    root = sweep(args.runs)
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    diagnose(read_run(runs[0]))  # imports outside the timing
    exe = shutil.which("trainfix", path=str(Path(sys.executable).parent)) or "trainfix"
    out = root.parent / f"{root.name}-report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def one_by_one() -> float:
        total = 0.0
        for r in runs:
            c0 = time.process_time()
            diagnose(read_run(r))
            total += time.process_time() - c0
        return total / args.jobs

    def command() -> float:
        t0 = time.perf_counter()
        proc = subprocess.run([exe, "check", str(root), "--format", "json", "--exit-zero", "--jobs", str(args.jobs),
                               "-o", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode()[-1000:])
        return time.perf_counter() - t0

    times = alternate({"ideal": one_by_one, "ours": command}, max(1, args.reps))
    n_runs = len(json.loads(out.read_text())["runs"])
    print(f"{n_runs} runs in the report; {args.jobs} workers")
    table = Table()
    table.add(f"{args.runs} runs, --jobs {args.jobs} vs sum(one run)/cores", times["ours"], times["ideal"], 1.2)
    return 0 if table.print() and n_runs == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
