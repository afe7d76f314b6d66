"""Robust noise and level of a series, the scale a metric lives on, and relative sizes (spread, change, head and tail)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from trainfix.diagnostics.signals.series import finite


#: 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826


def noise_scale(values: Any) -> float:
    """Robust point-to-point noise of a series, in the series' own units.

    ``1.4826 * MAD(first differences) / sqrt(2)``: differencing removes slow trends (a loss that
    falls smoothly has near-constant differences, whose MAD ignores the slope); the MAD ignores rare
    spikes; ``/sqrt(2)`` turns the spread of a difference of two noisy points back into the noise of
    one point.  When more than half the differences are identical (quantised metrics such as an
    accuracy over a small validation set, or a flat plateau) the MAD is 0; the scaled mean absolute
    deviation of the differences is used then, so the result is 0 only for a truly constant series.

    Returns nan for fewer than 3 finite points.
    """
    arr = finite(values)
    if arr.size < 3:
        return float("nan")
    diffs = np.diff(arr)
    centre = np.median(diffs)
    dev = np.abs(diffs - centre)
    scale = MAD_TO_SIGMA * float(np.median(dev))
    if scale == 0.0:
        scale = math.sqrt(math.pi / 2.0) * float(np.mean(dev))  # mean |dev| of a normal = sigma*sqrt(2/pi)
    return scale / math.sqrt(2.0)


def robust_level(values: Any) -> float:
    """The median of the finite values (nan when none)."""
    arr = finite(values)
    return float(np.median(arr)) if arr.size else float("nan")


def metric_unit(values: Any) -> float:
    """The scale a bounded metric lives on: 1.0 for fractions, 100.0 for percentages, else the
    robust range of the values (unbounded metrics)."""
    v = finite(values)
    if v.size == 0:
        return 1.0
    lo, hi = float(np.min(v)), float(np.max(v))
    if lo >= -1e-9 and hi <= 1.0 + 1e-9:
        return 1.0
    if lo >= -1e-9 and hi <= 100.0 + 1e-9:
        return 100.0
    q5, q95 = np.percentile(v, [5, 95])
    return float(max(q95 - q5, 1e-12))


# --- relative sizes ----------------------------------------------------------------------------------
def relative_spread(values: Any) -> float:
    """``(max - min) / |median|`` of the finite values, robust to a zero median.

    When the median is 0 the mean absolute value is the denominator; a series that is all zeros has
    spread 0.0.  nan when there are no finite values.  Used to call a term "constant" (spread ~0).
    """
    arr = finite(values)
    if arr.size == 0:
        return float("nan")
    span = float(np.max(arr) - np.min(arr))
    if span == 0.0:
        return 0.0
    denom = abs(float(np.median(arr)))
    if denom == 0.0:
        denom = float(np.mean(np.abs(arr)))
    return span / denom if denom > 0 else float("inf")


def rel_change(first: float, last: float) -> float:
    """``(last - first) / |first|``, robust to zero: 0.0 when both are 0, +-inf when only ``first``
    is 0, nan when either is not finite."""
    first, last = float(first), float(last)
    if not (math.isfinite(first) and math.isfinite(last)):
        return float("nan")
    if first == 0.0:
        return 0.0 if last == 0.0 else math.copysign(float("inf"), last)
    return (last - first) / abs(first)


def head_tail(values: Any, fraction: float = 0.1, min_points: int = 3) -> tuple[float, float]:
    """Medians of the first and last ``fraction`` of the finite values (at least ``min_points``
    each): a robust "where it started" and "where it ended"."""
    arr = finite(values)
    if arr.size == 0:
        return float("nan"), float("nan")
    n = min(arr.size, max(min_points, int(round(arr.size * fraction))))
    return float(np.median(arr[:n])), float(np.median(arr[-n:]))
