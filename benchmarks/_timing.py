"""Side-by-side timing for the speed benchmarks: alternating repetitions, CPU time, min and median.

The machine these run on is shared and noisy, so no figure is an absolute time taken alone: every
target is a *ratio* of two things timed in the same process, alternating (ours, baseline, ours,
baseline, ...) so both see the same load.  CPU time of this process (``time.process_time``) is
the figure compared; for commands run as subprocesses, the children's user+system time.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def cache_dir(name: str) -> Path:
    """Where generated benchmark data lives between runs (generated once, reused)."""
    root = Path(os.environ.get("TRAINFIX_BENCH_DATA", "/tmp/trainfix-bench")) / name
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached_file(name: str, filename: str, make: Callable[[], str]) -> Path:
    """The folder :func:`cache_dir` gives ``name``, holding ``filename`` with the text ``make()``
    returns: generated once, written atomically (an interrupted generation is never reused)."""
    root = cache_dir(name)
    path = root / filename
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_text(make())
        tmp.replace(path)
    return root


def cpu_call(fn: Callable[[], Any]) -> float:
    """CPU seconds of this process spent in ``fn()``."""
    gc.collect()
    c0 = time.process_time()
    fn()
    return time.process_time() - c0


def cpu_subprocess(cmd: list[str], env: dict | None = None, ok: tuple[int, ...] = (0, 1)) -> float:
    """User+system CPU seconds of a command run to completion (its exit status must be in ``ok``)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in ok:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def alternate(cases: dict[str, Callable[[], float]], reps: int) -> dict[str, list[float]]:
    """Run each case once per repetition, in turn; each case returns its own seconds."""
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(reps):
        for name, fn in cases.items():
            out[name].append(fn())
    return out


class Table:
    """Rows of (target, ours, baseline, ratio min, ratio median, goal) printed as one table."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, list[float], list[float], float]] = []

    def add(self, target: str, ours: list[float], base: list[float], goal: float) -> tuple[float, float]:
        self.rows.append((target, ours, base, goal))
        r_min = min(ours) / min(base)
        r_med = statistics.median(ours) / statistics.median(base)
        print(f"  {target}: ours min {min(ours):.3f} s median {statistics.median(ours):.3f} s; "
              f"baseline min {min(base):.3f} s median {statistics.median(base):.3f} s; "
              f"ratio min {r_min:.2f} median {r_med:.2f} (goal <= {goal:g})", flush=True)
        return r_min, r_med

    def print(self) -> bool:
        """Print the table; True when every median ratio meets its goal."""
        print()
        head = f"| {'target':48} | {'ours min / med (s)':>19} | {'baseline min / med (s)':>23} | " \
               f"{'ratio min / med':>15} | {'goal':>5} | ok |"
        print(head)
        print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
        ok_all = True
        for target, ours, base, goal in self.rows:
            r_min = min(ours) / min(base)
            r_med = statistics.median(ours) / statistics.median(base)
            ok = r_med <= goal
            ok_all &= ok
            print(f"| {target:48} | {min(ours):8.3f} / {statistics.median(ours):8.3f} | "
                  f"{min(base):10.3f} / {statistics.median(base):10.3f} | {r_min:6.2f} / {r_med:6.2f} | "
                  f"{goal:5g} | {'yes' if ok else 'NO '}|")
        return ok_all
