"""A one-line unicode picture of a metric (``▁▂▄█▅▂``) for reports.

Long series are bucketed to ``width`` characters.  A bucket's mean would hide spikes, so by default
(``keep_peaks``) a bucket shows its value furthest from the series median: a spike or a dip stays
visible after downsampling.  Non-finite values are drawn as ``×``: a NaN loss is the evidence.
"""

from __future__ import annotations

import math
from typing import Sequence

BARS = "▁▂▃▄▅▆▇█"
NONFINITE = "×"


def sparkline(values: Sequence[float], width: int = 32, *, keep_peaks: bool = True) -> str:
    """The sparkline of ``values`` in at most ``width`` characters ("" for no values)."""
    vals = [float(v) for v in values]
    if not vals or width < 1:
        return ""
    finite = sorted(v for v in vals if math.isfinite(v))
    median = finite[len(finite) // 2] if finite else 0.0
    buckets: list[float] = []
    n = len(vals)
    for i in range(min(width, n)):
        lo = i * n // min(width, n)
        hi = max(lo + 1, (i + 1) * n // min(width, n))
        chunk = vals[lo:hi]
        if any(not math.isfinite(v) for v in chunk):
            buckets.append(math.nan)
        elif keep_peaks:
            buckets.append(max(chunk, key=lambda v: abs(v - median)))
        else:
            buckets.append(sum(chunk) / len(chunk))
    fin = [b for b in buckets if math.isfinite(b)]
    if not fin:
        return NONFINITE * len(buckets)
    lo_v, hi_v = min(fin), max(fin)
    span = hi_v - lo_v
    chars = []
    for b in buckets:
        if not math.isfinite(b):
            chars.append(NONFINITE)
        elif span <= 0:
            chars.append(BARS[len(BARS) // 2])
        else:
            idx = int(round((b - lo_v) / span * (len(BARS) - 1)))
            chars.append(BARS[min(max(idx, 0), len(BARS) - 1)])
    return "".join(chars)
