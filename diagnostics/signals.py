"""Shared numerics for detectors: robust noise, robust trends, reversals, spikes, run lengths.

Detectors decide relative to each series' *own* noise instead of on absolute thresholds alone: a
validation accuracy that wobbles by 1% between epochs is healthy; one that swings by 40% is not.
Everything here takes numpy arrays (or anything ``np.asarray`` accepts), returns plain Python
floats, ints, tuples or lists, and is NaN-safe: non-finite points are dropped before any statistic
is computed (NaN/Inf are evidence for the ``nonfinite-loss`` detector, not noise), and a statistic
that cannot be computed from too few points is ``nan`` (every comparison with ``nan`` is False, so a
detector that forgets to check :func:`enough` stays quiet instead of raising).

Only numpy is used (reading a log never imports scipy); the run-level functions at the end read a Run
duck-typed and import the role names lazily (detectors import this module, not the other way round).
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

#: 1.4826 * MAD estimates the standard deviation of normally distributed data.
MAD_TO_SIGMA = 1.4826
#: Theil-Sen is O(n^2) in memory and time: longer series are reduced to this many bin medians.
THEIL_SEN_MAX_POINTS = 400


# --- small utilities --------------------------------------------------------------------------------
def as_array(values: Any) -> np.ndarray:
    """``values`` as a 1-D float array (a trainfix ``Series`` gives its ``values``; None gives [])."""
    if values is None:
        return np.zeros(0, dtype=float)
    if hasattr(values, "values") and not isinstance(values, np.ndarray):
        values = values.values
    return np.asarray(values, dtype=float).reshape(-1)


def finite(values: Any) -> np.ndarray:
    """The finite values only (NaN and +-Inf removed), order kept."""
    arr = as_array(values)
    return arr[np.isfinite(arr)]


def count_finite(values: Any) -> int:
    arr = as_array(values)
    return int(np.isfinite(arr).sum())


def enough(series: Any, n: int) -> bool:
    """True when ``series`` (a Series, an array, or None) has at least ``n`` finite values."""
    return count_finite(series) >= n


def need_reason(tag: str, have: int, need: int) -> str:
    """The standard skip reason: ``"only 4 points of val/acc, need 6"``."""
    return f"only {have} points of {tag}, need {need}"


def usable(series: Any, missing: str, need: int, *, finite_only: bool = True) -> tuple[Any, str]:
    """Every detector's first question, asked one way: ``(series, "")`` when ``series`` exists with
    at least ``need`` points (its finite points when ``finite_only``), else ``(None, reason)`` with
    ``missing`` when it is absent or the standard :func:`need_reason` when it is too short."""
    if series is None:
        return None, missing
    if finite_only:
        series = series.finite()
    if len(series) < need:
        return None, need_reason(series.tag, len(series), need)
    return series, ""


# --- noise -------------------------------------------------------------------------------------------
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


# --- trends ------------------------------------------------------------------------------------------
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


# --- smoothing ---------------------------------------------------------------------------------------
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


# --- metric scales ---------------------------------------------------------------------------------
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


def fmt(value: float, digits: int = 3) -> str:
    """A number for a message: ``0.000431``, ``1.6e-05``, ``85.9``; 'nan'/'inf' as such."""
    if value is None or not math.isfinite(value):
        return str(value)
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1e4 or mag < 1e-3:
        mantissa, exponent = f"{value:.{max(1, digits - 1)}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{exponent}"
    return f"{value:.{digits}g}"


def pct(fraction: float, digits: int = 3) -> str:
    """A fraction as a percentage for messages: ``0.859 -> '85.9%'``."""
    if fraction is None or not math.isfinite(fraction):
        return str(fraction)
    return f"{fmt(fraction * 100.0, digits)}%"


# --- run-level functions (duck-typed on trainfix.diagnostics.run.Run) ----------------------------------
def epoch_boundaries(run: Any) -> np.ndarray | None:
    """Steps that ended an epoch: the last step of each distinct value of the logged ``epoch`` tag
    (loggers such as trainfix's ``metrics.jsonl`` repeat the epoch on every logged step), else the
    steps of the per-epoch training loss; None when neither gives at least 2 boundaries."""
    from trainfix.diagnostics.roles_vocab import TRAIN_LOSS

    epoch = run.series("epoch")
    if epoch is not None and len(epoch) >= 2:
        keep = np.isfinite(epoch.steps) & np.isfinite(epoch.values)
        st, ep = epoch.steps[keep], epoch.values[keep]
        if st.size >= 2:
            last_of_epoch = np.append(ep[1:] != ep[:-1], True)
            steps = np.unique(st[last_of_epoch])
            if steps.size >= 2:
                return steps
    loss = run.role(TRAIN_LOSS)
    if loss is not None and len(loss) >= 2:
        steps = np.unique(loss.steps[np.isfinite(loss.steps)])
        if steps.size >= 2:
            return steps
    return None


def group_by_boundaries(steps: Any, values: Any, boundaries: Any) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split (steps, values) into consecutive groups, a group ending at each boundary step
    (inclusive); points after the last boundary form a final group.  Empty groups are dropped."""
    st, va = as_array(steps), as_array(values)
    b = np.sort(as_array(boundaries))
    which = np.searchsorted(b, st, side="left")
    # One stable sort by group, then split where the group changes: linear in the points (a mask
    # per group was points x epochs).  Order inside each group is the input order, as before.
    order = np.argsort(which, kind="stable")
    cuts = np.flatnonzero(np.diff(which[order])) + 1
    return [(st[idx], va[idx]) for idx in np.split(order, cuts) if idx.size]


def training_loss(run: Any, max_points: int = 200) -> Any:
    """The training-loss curve detectors judge: the ``TRAIN_LOSS`` role (per-epoch) when resolved,
    else the per-step loss (``TRAIN_LOSS_STEP``) reduced to one median per epoch (epoch ends from
    :func:`epoch_boundaries`) or, without epochs, to medians of bins of ~10 points (at most
    ``max_points`` bins).

    Returns ``(series, how)`` where ``series`` is a trainfix ``Series`` (tag = the original tag)
    of finite points and ``how`` is ``"per-epoch"``, ``"per-epoch median of per-step"`` or
    ``"binned median of per-step"``; ``(None, reason)`` when no training loss is logged.
    """
    from trainfix.diagnostics.roles_vocab import TRAIN_LOSS, TRAIN_LOSS_STEP
    from trainfix.diagnostics.run import Series

    s = run.role(TRAIN_LOSS)
    if s is not None and count_finite(s.values) >= 3:
        return s.finite(), "per-epoch"
    step = run.role(TRAIN_LOSS_STEP)
    if step is None:
        if s is not None:
            return s.finite(), "per-epoch"
        return None, "no training loss logged"
    step = step.finite()
    bounds = epoch_boundaries(run)
    if bounds is not None and bounds.size >= 3:
        groups = group_by_boundaries(step.steps, step.values, bounds)
        if len(groups) >= 3:
            xs = np.array([g[0][-1] for g in groups])
            ys = np.array([np.median(g[1]) for g in groups])
            return Series(step.tag, xs, ys), "per-epoch median of per-step"
    n_bins = min(max_points, max(10, len(step) // 10))
    xs, ys = bin_medians(step.steps, step.values, n_bins)
    return Series(step.tag, xs, ys), "binned median of per-step"


def loss_tags(run: Any) -> list[str]:
    """Every tag that holds a loss: the loss roles and groups, plus any tag with "loss" in its name."""
    from trainfix.diagnostics.roles_vocab import (LOSS_TERMS, LOSS_TERMS_RAW, TASK_LOSSES, TRAIN_LOSS,
                                                  TRAIN_LOSS_STEP, VAL_LOSS)

    tags: list[str] = []
    for role in (TRAIN_LOSS, TRAIN_LOSS_STEP, VAL_LOSS):
        t = run.roles.tag(role)
        if t:
            tags.append(t)
    for role in (LOSS_TERMS, LOSS_TERMS_RAW, TASK_LOSSES):
        tags.extend(run.roles.group(role).values())
    tags.extend(t for t in run.tags if "loss" in t.lower())
    seen: set[str] = set()
    return [t for t in tags if not (t in seen or seen.add(t))]


def effective_lr(run: Any) -> tuple[float | None, str]:
    """The lr the run trained with: the median of the logged lr, else the config's scaled_lr, else
    its lr; with where it came from (``"logged lr (median)"``, ``"config lr"``, ``"unknown"``)."""
    from trainfix.diagnostics import knobs
    from trainfix.diagnostics.roles_vocab import LR

    s = run.role(LR)
    if s is not None and enough(s.values, 1):
        return float(np.median(finite(s.values))), f"logged {s.tag} (median)"
    config = run.config or {}
    for knob in ("scaled_lr", "lr"):
        v = knobs.lookup_float(config, knob)
        if v is not None:
            return v, f"config {knob}"
    return None, "unknown"


def grad_norm_median(run: Any, before: float | None = None) -> float | None:
    """The median of the logged global gradient norm (the ``grad_norm`` role), over the steps
    before ``before`` when given (the healthy part of a run that later broke); None when not logged.
    ``grad-clip`` clips at twice this."""
    from trainfix.diagnostics.roles_vocab import GRAD_NORM

    s = run.role(GRAD_NORM)
    if s is None:
        return None
    steps, vals = as_array(s.steps), as_array(s.values)
    keep = np.isfinite(vals) & (vals > 0)
    if before is not None:
        early = keep & (steps < before)
        keep = early if early.sum() >= 3 else keep
    return float(np.median(vals[keep])) if keep.any() else None


#: config keys that hold the number of classes of a classification task
NUM_CLASS_KEYS = ("num_classes", "n_classes", "nb_classes", "number_of_classes", "num_labels", "n_class")


def number_of_classes(run: Any) -> tuple[int | None, str]:
    """Classes of the task: a ``num_classes``-style config key, else the per-class metric tags;
    ``(None, "unknown")`` when neither says."""
    from trainfix.diagnostics import knobs
    from trainfix.diagnostics.roles_vocab import CLASS_METRICS

    for path, value in knobs.walk(run.config or {}):
        if path and str(path[-1]).lower() in NUM_CLASS_KEYS:
            try:
                k = int(value)
            except (TypeError, ValueError):
                continue
            if k >= 2:
                return k, "config " + ".".join(path)
    classes = run.roles.group(CLASS_METRICS)
    if len(classes) >= 2:
        return len(classes), f"{len(classes)} per-class metric tags"
    return None, "unknown"
