"""Measure what the README says about training an example: wall and CPU time of the whole
``trainfix train --config CONFIG`` process (startup included), on one CPU thread (``--threads``), and the final
validation accuracy it reached.  The README's figures are copied from what this prints.

Run: ``python benchmarks/example_timings.py [--config examples/digits-quick.yaml] [--reps 1]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def final_val_acc(run_dir: Path) -> float | None:
    last = None
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if rec.get("tag") == "val/acc":
            last = rec.get("value")
        elif isinstance(rec.get("val/acc"), (int, float)):
            last = rec["val/acc"]
    return last


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "digits-quick.yaml"))
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default, all cores)")
    args = ap.parse_args()
    exe = shutil.which("trainfix", path=str(Path(sys.executable).parent)) or "trainfix"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    if args.threads:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    threads = f"{args.threads} thread(s)" if args.threads else "torch's default threads"
    for _ in range(max(1, args.reps)):
        out = Path(tempfile.mkdtemp(prefix="trainfix-example-")) / "run"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([exe, "train", "--config", args.config, "--out", str(out)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        if proc.returncode != 0:
            print(proc.stderr.decode()[-2000:])
            return 1
        acc = final_val_acc(out)
        print(f"{Path(args.config).name}: wall {wall:.1f} s, CPU {cpu:.1f} s ({threads}, startup included), "
              f"final val/acc {acc if acc is None else round(acc, 4)}", flush=True)
        shutil.rmtree(out.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
