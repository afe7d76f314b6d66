"""Benchmark: how long a whole ``trainfix`` process takes on a small run, against ``import pandas``.

A small run is where startup is everything: the work is milliseconds, the imports are the rest.
Side by side, alternating, as whole processes (user + system CPU of the child):

* ``trainfix diagnose RUN`` on a small ``metrics.jsonl`` run (target: within 1.5x of
  ``python -c "import pandas"``, the floor any pandas-based reader pays);
* ``trainfix apply --fix lower-lr CONFIG`` on a 3-line YAML config, writing a patched copy
  (context: it never imports torch);
* a misspelled fix: ``trainfix apply --fix lower-lrr RUN`` is rejected before the run is read or
  diagnosed (it should cost what startup costs).

Every process runs with bytecode, as an installed package does (pip writes it): an inherited
``PYTHONDONTWRITEBYTECODE`` is dropped for the children, so the warm-up run writes trainfix's
``__pycache__`` (git-ignored) and no repetition pays for compiling the sources.

Run: ``python benchmarks/startup.py [--reps 7]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import Table, alternate, cache_dir, cpu_subprocess  # noqa: E402


def small_run() -> Path:
    root = cache_dir("startup-small-run")
    f = root / "metrics.jsonl"
    if not f.exists():
        lines = [f'{{"step": {i}, "epoch": {i // 10}, "train/loss": {2.0 / (1 + i):.4f}, "val/acc": {0.5 + i / 400:.4f}}}'
                 for i in range(100)]
        f.write_text("\n".join(lines) + "\n")
    (root / "config.yaml").write_text("optimizer:\n  name: adamw\n  lr: 0.001\ntraining:\n  epochs: 10\n")
    return root


def small_config() -> Path:
    root = cache_dir("startup-config")
    f = root / "config.yaml"
    f.write_text("optimizer:\n  name: adamw\n  lr: 0.1\n")
    return f


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=7)
    args = ap.parse_args()
    exe = shutil.which("trainfix", path=str(Path(sys.executable).parent)) or "trainfix"
    run, cfg = small_run(), small_config()
    out = cfg.parent / "patched.yaml"
    # as installed: with bytecode (PYTHONDONTWRITEBYTECODE would make every run compile trainfix from
    # source, ~40 ms that no user pays; the warm-up below writes it)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(NO_COLOR="1", OMP_NUM_THREADS="1")
    cmds = {
        "pandas": [sys.executable, "-c", "import pandas"],
        "diagnose": [exe, "diagnose", str(run)],
        "apply": [exe, "apply", "--fix", "lower-lr", str(cfg), "-o", str(out), "--force"],
        "bad-fix": [exe, "apply", "--fix", "lower-lrr", str(run)],
    }
    for name in ("diagnose", "apply"):
        cpu_subprocess(cmds[name], env)  # warm the file cache and bytecode
    times = alternate({k: (lambda c=c: cpu_subprocess(c, env, ok=(0, 1, 2))) for k, c in cmds.items()}, args.reps)
    table = Table()
    print(f"small run: {run} (100 lines and a config); config: {cfg}")
    table.add("trainfix diagnose (small run) vs import pandas", times["diagnose"], times["pandas"], 1.5)
    table.add("trainfix apply (3-line YAML) vs import pandas", times["apply"], times["pandas"], 1.5)
    table.add("apply --fix lower-lrr (typo) vs import pandas", times["bad-fix"], times["pandas"], 1.5)
    return 0 if table.print() else 1


if __name__ == "__main__":
    sys.exit(main())
