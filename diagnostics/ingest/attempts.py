"""Several runs appended to one log file: keep the longest attempt, not merely the last one.

Python's ``logging.FileHandler`` opens its file in append mode, and ``python train.py >> log.txt``
does the same, so one text or CSV log often holds several runs, each started from scratch: a
15-epoch run followed by a 1-epoch export run, or three crashed starts before the real one.  The
general restart rule (:mod:`.table`: the later segment wins) is right for a *resumed* run, which
continues from a mid-run step, but it would diagnose the 1-epoch export instead of the 15 epochs
that show the problem.

An *attempt from scratch* starts where, within one file and one tag, the step falls back to (or
below) that tag's first step.  When every tag of the file starts over the same number of times,
the attempts line up, and the one with the most points is kept (ties: the later one); the file's
other attempts are dropped and reported.  When the tags disagree (a tag logged only in some
attempts, or an iteration counter that restarts every epoch) nothing is decided here and the
later-segment rule applies as before.  TensorBoard streams are left alone: a rerun writes a new
event file, which TensorBoard itself shows as the newer run.
"""

from __future__ import annotations

import numpy as np


def longest_attempts(group: np.ndarray, steps: np.ndarray, ntags: int, streams: list[str],
                     stream_fmt: list[str]) -> tuple[np.ndarray | None, list[dict]]:
    """Rows to keep (None: all) and one report per file whose runs were appended.

    ``group`` (stream * ntags + tag, or the tag alone with one stream) and ``steps`` are sorted by
    group with file order inside each group, as :func:`.table._order_resolving_restarts` holds them.
    """
    n = group.shape[0]
    if n < 2:
        return None, []
    starts = np.ones(n, dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    first_row = np.flatnonzero(starts)
    run_of_row = np.cumsum(starts) - 1  # index of each row's group among the groups present
    fresh = np.zeros(n, dtype=bool)
    fresh[1:] = ~starts[1:] & (steps[1:] < steps[:-1]) & (steps[1:] <= steps[first_row][run_of_row[1:]])
    if not fresh.any():
        return None, []
    cum = np.cumsum(fresh)
    attempt = cum - cum[first_row][run_of_row]  # attempt number of each row within its group
    last_row = np.append(first_row[1:] - 1, n - 1)
    starts_per_group = attempt[last_row]
    stream_of_group = group[first_row] // ntags if len(streams) > 1 else np.zeros(first_row.size, dtype=np.int64)
    stream_of_row = stream_of_group[run_of_row]

    keep = np.ones(n, dtype=bool)
    reports: list[dict] = []
    for s in np.unique(stream_of_row[fresh]).tolist():
        if stream_fmt[s] == "tensorboard":
            continue
        counts = np.unique(starts_per_group[stream_of_group == s])
        if counts.size != 1 or counts[0] < 1:
            continue  # the tags do not start over together: not a clean series of appended runs
        in_stream = stream_of_row == s
        points = np.bincount(attempt[in_stream], minlength=int(counts[0]) + 1)
        chosen = int(points.size - 1 - np.argmax(points[::-1]))  # the most points; ties: the later
        if chosen != points.size - 1:
            keep &= ~in_stream | (attempt == chosen)
        reports.append({"source": streams[s], "attempts": int(points.size), "kept": chosen + 1,
                        "points": points.astype(int).tolist()})
    return (None if keep.all() else keep), reports


def describe(report: dict) -> str:
    """One line for ``Run.inputs['notes']``: what was found in the file and which run was read."""
    n, k, pts = report["attempts"], report["kept"], report["points"]
    which = "the last" if k == n else f"run {k}, the longest ({pts[k - 1]} of {sum(pts)} points)"
    return (f"{report['source']} holds {n} runs appended one after another (each starts from its first step); "
            f"diagnosing {which}")
