"""Asking for a series: as an array, its finite points, and whether there are enough (with the reason when not)."""

from __future__ import annotations

from typing import Any

import numpy as np


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
