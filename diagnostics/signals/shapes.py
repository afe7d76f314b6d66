"""The shape of a series: rolling median and EMA smoothing, zigzag reversals, spikes, and runs of a condition."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainfix.diagnostics.signals.noise import noise_scale
from trainfix.diagnostics.signals.series import as_array, count_finite


def smooth(values: Any, window: int) -> np.ndarray:
    """Centered rolling **median** over ``window`` points (made odd; shrinks at the edges).

    A median, not a mean or EMA: it keeps real steps (an lr drop, a collapse) sharp, has no lag,
    and ignores isolated spikes.  NaN/Inf points are ignored inside each window; a window with no
    finite value gives NaN.  Output has the input's length.  ``window <= 1`` returns a copy.
    """
    arr = as_array(values)
    window = int(window)
    if window <= 1 or arr.size == 0:
        return arr.copy()
    if window % 2 == 0:
        window += 1
    half = window // 2
    ok = np.isfinite(arr)
    clean = np.where(ok, arr, np.nan)
    padded = np.concatenate([np.full(half, np.nan), clean, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, window)
    # Finite points per window, from a running count: windows without a gap take np.median
    # (numpy's nanmedian of short rows goes through masked arrays, ~100x slower); only the
    # windows that touch a NaN or an edge take np.nanmedian.  Same values either way.
    count = np.concatenate([[0], np.cumsum(np.concatenate([np.zeros(half, bool), ok, np.zeros(half, bool)]))])
    finite_in = count[window:] - count[:-window]
    out = np.full(arr.size, np.nan)
    full = np.flatnonzero(finite_in == window)
    for lo in range(0, full.size, _SMOOTH_CHUNK):  # bounded temporaries on a million points
        rows = full[lo : lo + _SMOOTH_CHUNK]
        out[rows] = np.median(windows[rows], axis=1)
    part = np.flatnonzero((finite_in > 0) & (finite_in < window))
    if part.size:
        out[part] = np.nanmedian(windows[part], axis=1)
    return out


_SMOOTH_CHUNK = 1 << 16


def ema(values: Any, alpha: float) -> np.ndarray:
    """Exponential moving average (``alpha`` = weight of the new point), the TensorBoard-style
    smoother; NaN/Inf points are skipped (the previous average is carried)."""
    arr = as_array(values)
    out = np.full(arr.size, np.nan)
    acc = float("nan")
    for i, v in enumerate(arr):
        if math.isfinite(v):
            acc = v if not math.isfinite(acc) else alpha * v + (1.0 - alpha) * acc
        out[i] = acc
    return out


# --- reversals, spikes, runs -------------------------------------------------------------------------
def reversals(values: Any, min_amplitude: float, window: int = 1) -> list[tuple[int, int, float]]:
    """Zigzag decomposition: the monotone legs of a series that each move at least ``min_amplitude``.

    Returns ``[(i_start, i_end, change), ...]`` where ``i_start``/``i_end`` are indices into
    ``values`` of the turning points (a trough then a peak for a rise, a peak then a trough for a
    fall) and ``change = y[i_end] - y[i_start]`` (signed, ``|change| >= min_amplitude``).
    Consecutive legs alternate direction, so the number of direction changes (reversals) is
    ``len(legs) - 1``.  Moves smaller than ``min_amplitude`` never start a new leg, which is what
    makes this robust: pass a multiple of :func:`noise_scale` and ordinary wobble is ignored.

    ``window > 1`` first applies :func:`smooth` (rolling median).  Non-finite points are skipped.
    """
    arr = as_array(values)
    if window > 1:
        arr = smooth(arr, window)
    idx = np.flatnonzero(np.isfinite(arr))
    if idx.size < 2 or not (min_amplitude > 0):
        return []
    y = arr[idx]
    legs: list[tuple[int, int, float]] = []
    pivot = 0  # index (into y) of the last confirmed turning point
    ext = 0  # index of the running extreme since the pivot
    direction = 0  # +1 rising leg in progress, -1 falling, 0 not decided yet
    lo = hi = 0  # before the first leg: running min and max since the start
    for j in range(1, y.size):
        if direction == 0:
            if y[j] < y[lo]:
                lo = j
            if y[j] > y[hi]:
                hi = j
            if y[j] - y[lo] >= min_amplitude:
                pivot, ext, direction = lo, j, 1
            elif y[hi] - y[j] >= min_amplitude:
                pivot, ext, direction = hi, j, -1
            continue
        if direction == 1:
            if y[j] >= y[ext]:
                ext = j
            elif y[ext] - y[j] >= min_amplitude:
                legs.append((int(idx[pivot]), int(idx[ext]), float(y[ext] - y[pivot])))
                pivot, ext, direction = ext, j, -1
        else:
            if y[j] <= y[ext]:
                ext = j
            elif y[j] - y[ext] >= min_amplitude:
                legs.append((int(idx[pivot]), int(idx[ext]), float(y[ext] - y[pivot])))
                pivot, ext, direction = ext, j, 1
    if direction != 0 and abs(y[ext] - y[pivot]) >= min_amplitude:
        legs.append((int(idx[pivot]), int(idx[ext]), float(y[ext] - y[pivot])))
    return legs


def spikes(values: Any, k: float = 6.0, window: int = 9) -> list[int]:
    """Indices of points more than ``k`` robust-noise units (:func:`noise_scale`) away from the
    centered rolling median over ``window`` points.  Non-finite points are never reported (they are
    a different problem).  Empty when the series has fewer than ``window`` finite points or no noise.
    """
    arr = as_array(values)
    if count_finite(arr) < max(window, 3):
        return []
    noise = noise_scale(arr)
    if not (noise > 0):
        return []
    base = smooth(arr, window)
    dev = np.abs(arr - base)
    hit = np.isfinite(dev) & (dev > k * noise)
    return [int(i) for i in np.flatnonzero(hit)]


def run_lengths(mask: Any) -> list[tuple[int, int]]:
    """``[(start, length), ...]`` of each run of consecutive True values in a boolean mask."""
    m = np.asarray(mask, dtype=bool).reshape(-1)
    if m.size == 0:
        return []
    padded = np.concatenate([[False], m, [False]]).astype(np.int8)
    d = np.diff(padded)
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [(int(s), int(e - s)) for s, e in zip(starts, ends)]


def longest_run(mask: Any) -> tuple[int, int]:
    """The longest True run as ``(start, length)``; ``(0, 0)`` when there is none."""
    runs = run_lengths(mask)
    return max(runs, key=lambda r: (r[1], -r[0])) if runs else (0, 0)


def frozen_from(values: Any, max_spread: float) -> int | None:
    """The first index from which every later value lies within ``max_spread`` (relative to the
    last value) of the others, or None when not even the last two points do."""
    v = as_array(values)
    if v.size < 2:
        return None
    suf_max = np.maximum.accumulate(v[::-1])[::-1]
    suf_min = np.minimum.accumulate(v[::-1])[::-1]
    scale = max(abs(float(v[-1])), 1e-12)
    ok = (suf_max - suf_min) <= max_spread * scale
    if not ok[-2]:
        return None
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 1) if bad.size else 0
