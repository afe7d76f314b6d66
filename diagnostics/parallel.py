"""Many runs at once: worker processes, shards of a sweep, and a progress callback.

``diagnose``/``check`` over a folder of hundreds of runs spend almost all their time in work that
is independent per run (read it, run the detectors), so the runs are handed to worker processes,
``jobs`` at a time (default: the usable cores).  Results come back in the order the runs were
found, whatever order the workers finish in, so a report is the same with 1 job or 16.

A sweep larger than one machine is split with ``shard=(K, N)``: this process takes every N-th run
starting at the K-th (1-based), in the order the runs were found (sorted paths), so N jobs of an
existing scheduler (a Slurm array, Kubernetes jobs, a CI matrix) each take their share and
``trainfix merge`` joins their JSON reports.

Workers are forked where the platform allows (the detector table and imports are inherited, a
worker starts in milliseconds) and spawned elsewhere.  A worker that dies is an error for the runs
it held, never a hang.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from trainfix.errors import UsageError

T = TypeVar("T")
R = TypeVar("R")


def default_jobs() -> int:
    """The cores this process may use (its CPU affinity where the platform tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``; None stays None.  UsageError otherwise."""
    if text is None:
        return None
    parts = str(text).strip().split("/")
    try:
        k, n = (int(p) for p in parts)
        if len(parts) != 2 or not 1 <= k <= n:
            raise ValueError
    except ValueError:
        raise UsageError(f"--shard {text}: expected K/N with 1 <= K <= N (e.g. 2/8)",
                         "the runs found are split into N shares; this process takes the K-th") from None
    return k, n


def take_shard(items: Sequence[T], shard: tuple[int, int] | None) -> list[T]:
    """The ``K``-th of ``N`` interleaved shares of ``items`` (all of them without a shard)."""
    if shard is None:
        return list(items)
    k, n = shard
    return [x for i, x in enumerate(items) if i % n == k - 1]


def map_ordered(fn: Callable[[T], R], items: Iterable[T], *, jobs: int = 1,
                progress: Callable[[int, int], None] | None = None) -> list[R]:
    """``[fn(x) for x in items]``, with ``jobs`` worker processes when there is more than one item.

    ``fn`` must be a module-level function (it is pickled to the workers) and so must its results.
    ``progress(done, total)`` is called in this process as items finish.  An exception in ``fn``
    is re-raised here (the remaining items are cancelled).
    """
    items = list(items)
    total = len(items)
    jobs = max(1, min(int(jobs), total))
    if jobs == 1:
        out = []
        for i, x in enumerate(items):
            out.append(fn(x))
            if progress:
                progress(i + 1, total)
        return out
    import concurrent.futures as cf
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    results: list[Any] = [None] * total
    # Small chunks keep every worker busy to the end; not one-by-one, which would cost a round trip each.
    chunk = max(1, min(16, total // (jobs * 8)))
    batches = [list(range(lo, min(total, lo + chunk))) for lo in range(0, total, chunk)]
    done = 0
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        futures = {pool.submit(_run_batch, fn, [items[i] for i in b]): b for b in batches}
        for fut in cf.as_completed(futures):
            idx = futures[fut]
            for i, res in zip(idx, fut.result()):
                results[i] = res
            done += len(idx)
            if progress:
                progress(done, total)
    return results


def _run_batch(fn: Callable[[T], R], xs: list[T]) -> list[R]:
    return [fn(x) for x in xs]
