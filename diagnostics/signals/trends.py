"""Robust trends: Theil-Sen slopes with their confidence interval and the Mann-Kendall test, in numpy (scipy's numbers)."""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from trainfix.diagnostics.signals.series import as_array, finite


#: Theil-Sen is O(n^2) in memory and time: longer series are reduced to this many bin medians.
THEIL_SEN_MAX_POINTS = 400


class Trend(NamedTuple):
    """A Theil-Sen line: ``slope`` with its confidence interval ``[lo, hi]`` and ``intercept``.

    ``n`` is the number of points used. ``significant`` is True when the interval excludes 0;
    ``direction`` is ``+1``/``-1`` for a significant rise/fall, else 0.
    """

    slope: float
    lo: float
    hi: float
    intercept: float
    n: int = 0

    @property
    def significant(self) -> bool:
        return bool(self.lo > 0 or self.hi < 0)

    @property
    def direction(self) -> int:
        if self.lo > 0:
            return 1
        if self.hi < 0:
            return -1
        return 0

    def change_over(self, span: float) -> float:
        """The change the slope implies over ``span`` x-units."""
        return float(self.slope * span)


_NAN_TREND = Trend(float("nan"), float("nan"), float("nan"), float("nan"), 0)


def bin_medians(x: Any, y: Any, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce (x, y) to at most ``n_bins`` points: the median x and y of consecutive equal-count
    bins (finite pairs only). Keeps the shape of a long per-step curve while dropping its noise."""
    xa, ya = as_array(x), as_array(y)
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    if xa.size <= n_bins:
        return xa, ya
    edges = np.linspace(0, xa.size, n_bins + 1).astype(int)
    return _bin_median(xa, edges), _bin_median(ya, edges)


def _bin_median(a: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``np.median`` of each bin ``a[edges[i]:edges[i+1]]``, as one 2-D median per bin size.

    Equal-count bins differ in size by at most one element, so this is two vectorised medians
    instead of one ``np.median`` call per bin; each row's median is the one the call would give.
    """
    starts, sizes = edges[:-1], np.diff(edges)
    out = np.empty(starts.size)
    for size in np.unique(sizes):
        rows = np.flatnonzero(sizes == size)
        if size == 0:
            continue
        out[rows] = np.median(a[starts[rows, None] + np.arange(size)[None, :]], axis=1)
    return out[sizes > 0]


def theil_sen(x: Any, y: Any = None, alpha: float = 0.05) -> Trend:
    """Robust linear trend of ``y`` against ``x``: the median of the pairwise slopes (Theil-Sen).

    ``alpha`` is the significance level: the interval ``[lo, hi]`` is the ``1 - alpha`` confidence
    interval of the slope (Sen 1968, eq. 2.6, with its tie correction; the same numbers as
    ``scipy.stats.theilslopes``, computed here so that reading a log never imports scipy).  Called
    with one argument, the values are taken against their index.  Non-finite pairs are dropped;
    series longer than ``THEIL_SEN_MAX_POINTS`` are first reduced to that many bin medians (the
    median-of-pairwise-slopes is quadratic in the point count).  Note the interval assumes
    independent residuals; for smooth, autocorrelated curves it is optimistic, so detectors combine
    it with a noise-relative size test rather than trusting it alone.

    Returns a Trend of nans (n=0) for fewer than 3 finite points or a constant x.
    """
    if y is None:
        y = as_array(x)
        x = np.arange(y.size, dtype=float)
    xa, ya = as_array(x), as_array(y)
    if xa.size != ya.size:
        raise ValueError(f"theil_sen: x has {xa.size} points, y has {ya.size}")
    keep = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[keep], ya[keep]
    if xa.size > THEIL_SEN_MAX_POINTS:
        xa, ya = bin_medians(xa, ya, THEIL_SEN_MAX_POINTS)
    if xa.size < 3 or np.ptp(xa) == 0:
        return _NAN_TREND
    if np.ptp(ya) == 0:
        return Trend(0.0, 0.0, 0.0, float(ya[0]), int(xa.size))
    dx = xa[:, None] - xa[None, :]
    rising = dx > 0
    slopes = np.sort((ya[:, None] - ya[None, :])[rising] / dx[rising])
    slope = float(np.median(slopes))
    intercept = float(np.median(ya) - slope * np.median(xa))
    n, nt = xa.size, slopes.size
    sigma = math.sqrt((n * (n - 1) * (2 * n + 5) - _tie_term(xa) - _tie_term(ya)) / 18.0)
    z = _normal_quantile(min(alpha, 1.0 - alpha) / 2.0)
    hi_i = min(int(np.round((nt - z * sigma) / 2.0)), nt - 1)
    lo_i = max(int(np.round((nt + z * sigma) / 2.0)) - 1, 0)
    return Trend(slope, float(slopes[lo_i]), float(slopes[hi_i]), intercept, int(n))


def _tie_term(a: np.ndarray) -> int:
    """``sum k(k-1)(2k+5)`` over the sizes ``k`` of the groups of equal values (0 without ties)."""
    k = np.unique(a, return_counts=True)[1].astype(np.int64)
    return int((k * (k - 1) * (2 * k + 5)).sum())


@functools.lru_cache(maxsize=16)
def _normal_quantile(p: float) -> float:
    """The standard normal quantile of ``p`` in (0, 1), to double precision.

    A logistic-style start refined by Halley steps on ``Phi(z) - p`` (``Phi`` from ``math.erfc``),
    so that no statistics library is imported for one number per significance level.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"normal quantile of {p}: needs 0 < p < 1")
    if p > 0.5:
        return -_normal_quantile(1.0 - p)
    t = math.sqrt(-2.0 * math.log(p))
    z = -(t - (2.515517 + 0.802853 * t + 0.010328 * t * t)
          / (1.0 + 1.432788 * t + 0.189269 * t * t + 0.001308 * t ** 3))  # Abramowitz-Stegun 26.2.23
    for _ in range(4):
        err = 0.5 * math.erfc(-z / math.sqrt(2.0)) - p
        density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
        if density == 0.0:
            break
        step = err / density
        z -= step / (1.0 + 0.5 * z * step)
    return z


def mann_kendall(values: Any) -> tuple[float, float]:
    """Mann-Kendall monotonic-trend test: ``(tau, p_value)`` of Kendall's tau-b against the index.

    ``tau`` in [-1, 1] (negative: falling); ``p_value`` two-sided: exact (the permutation
    distribution of the inversion count) when there are no ties and at most 33 points, otherwise
    the normal approximation of the S statistic with its tie-corrected variance; the same choice and
    numbers as ``scipy.stats.kendalltau``, in O(n log n).  Non-finite points are dropped (their index
    positions are kept, so gaps do not fake a trend).  A constant series or fewer than 3 finite
    points gives ``(0.0, 1.0)``: no evidence of a trend.
    """
    arr = finite(values)
    if arr.size < 3 or np.ptp(arr) == 0:
        return 0.0, 1.0
    n = int(arr.size)
    uniq, ranks, counts = np.unique(arr, return_inverse=True, return_counts=True)
    counts = counts.astype(np.int64)
    ties = int((counts * (counts - 1) // 2).sum())
    total = n * (n - 1) // 2
    dis = _inversions(ranks.reshape(-1), int(uniq.size))
    s = total - ties - 2 * dis  # concordant minus discordant pairs: the S statistic
    tau = max(-1.0, min(1.0, s / math.sqrt(total) / math.sqrt(total - ties)))
    if ties == 0 and (n <= 33 or min(dis, total - dis) <= 1):
        p = _kendall_exact_p(n, total - dis)
    else:
        m = n * (n - 1.0)
        tie_var = float((counts * (counts - 1.0) * (2 * counts + 5)).sum())
        p = math.erfc(abs(s) / math.sqrt((m * (2 * n + 5) - tie_var) / 18.0) / math.sqrt(2.0))
    if not math.isfinite(tau):
        return 0.0, 1.0
    return tau, (min(1.0, max(0.0, p)) if math.isfinite(p) else 1.0)


def _inversions(ranks: np.ndarray, n_values: int) -> int:
    """Pairs ``i < j`` with ``ranks[i] > ranks[j]``, for integer ranks in ``[0, n_values)``.

    Bit by bit from the top (a wavelet-tree pass: O(n log n_values), each bit a few vectorised
    passes): a pair first differs at some bit, and is an inversion exactly when the earlier element
    has that bit set.  The values stay grouped by their higher bits (position order inside a
    group); at each bit the set-bit elements before each clear-bit element of its group are
    counted, then every group is split by the bit (a stable partition) for the next bit down.
    """
    itype = np.int32 if max(ranks.size, n_values) < 2**30 else np.int64
    v = ranks.astype(itype)
    pos = np.arange(v.size, dtype=itype)
    total = 0
    for bit in range(max(1, int(n_values - 1).bit_length()) - 1, -1, -1):
        key = v >> bit
        one = (key & 1).astype(bool)
        group = key >> 1
        counts = np.bincount(key, minlength=2 * (int(group.max()) + 1)).reshape(-1, 2).astype(itype)
        size = counts.sum(axis=1)
        start = np.cumsum(size) - size  # where each group starts, before and after the split
        ones_before = np.cumsum(one, dtype=itype) - one  # set bits strictly before, whole array
        at_start = np.zeros(size.size, itype)
        filled = size > 0
        at_start[filled] = ones_before[start[filled]]
        zeros = ~one
        total += int(ones_before[zeros].sum(dtype=np.int64))
        total -= int((counts[:, 0].astype(np.int64) * at_start).sum())
        # a clear bit goes to start + (clear bits before it in the group), a set bit after them all
        set_off = (start + counts[:, 0] - at_start)[group]
        target = np.where(one, ones_before + set_off, pos - ones_before + at_start[group])
        nxt = np.empty_like(v)
        nxt[target] = v
        v = nxt
    return total


def _kendall_exact_p(n: int, concordant: int) -> float:
    """Two-sided exact p-value of ``concordant`` pairs among ``n`` untied points (Kendall 1970):
    twice the lower tail of the inversion-count distribution, counted by its recurrence."""
    total = n * (n - 1) // 2
    c = min(concordant, total - concordant)
    if n <= 2:
        return 1.0
    if c == 0:
        return 2.0 / math.factorial(n) if n < 171 else 0.0
    if c == 1:
        return 2.0 / math.factorial(n - 1) if n < 172 else 0.0
    if 4 * c == n * (n - 1):
        return 1.0
    counts = np.zeros(c + 1)
    counts[0:2] = 1.0
    for j in range(3, n + 1):
        counts = np.cumsum(counts) if n < 171 else np.cumsum(counts) / j
        if j <= c:
            counts[j:] -= counts[: c + 1 - j]
    prob = 2.0 * float(np.sum(counts)) / math.factorial(n) if n < 171 else float(np.sum(counts))
    return min(1.0, max(0.0, prob))


def falls_steadily(x: Any, y: Any, share: float) -> bool:
    """Whether ``y`` fell by ``share`` or more of its level over the second half of its points,
    steadily: a Theil-Sen slope below zero with confidence, or on fewer than six points every step
    down.  A model whose loss does this is still learning (fewer than four points: False)."""
    x, y = as_array(x), as_array(y)
    if y.size < 4:
        return False
    x, tail = x[(y.size - 1) // 2:], y[(y.size - 1) // 2:]
    k = max(1, tail.size // 3)
    first, last = float(np.median(tail[:k])), float(np.median(tail[-k:]))
    if not (first > 0 and first - last >= share * first):
        return False
    if tail.size < 6:
        return bool(np.all(np.diff(tail) < 0))
    return theil_sen(x, tail).hi < 0
