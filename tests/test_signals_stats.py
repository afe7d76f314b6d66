"""Mann-Kendall and Theil-Sen computed with numpy give scipy's numbers (scipy is a dependency of
the project, so the reference is always there) without scipy being imported to read a log."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy.stats import kendalltau, theilslopes

from trainfix.diagnostics import signals as sg


def _series(rng: np.random.Generator, kind: int, n: int) -> np.ndarray:
    if kind == 0:
        return rng.normal(size=n).cumsum()  # untied random walk
    if kind == 1:
        return rng.integers(0, 5, n).astype(float)  # heavy ties
    if kind == 2:
        return np.round(rng.normal(size=n), 1) + 0.01 * np.arange(n)  # some ties, a trend
    return rng.normal(size=n)


@pytest.mark.parametrize("kind", [0, 1, 2, 3])
def test_mann_kendall_matches_scipy_kendalltau(kind):
    rng = np.random.default_rng(kind)
    for n in list(range(3, 40)) + [57, 120, 333, 2000]:  # exact p up to 33 untied points, normal after
        y = _series(rng, kind, n)
        if np.ptp(y) == 0:
            continue
        tau, p = sg.mann_kendall(y)
        ref = kendalltau(np.arange(n), y)
        assert tau == pytest.approx(float(ref[0]), rel=1e-9, abs=1e-12)
        assert p == pytest.approx(float(ref[1]), rel=1e-7, abs=1e-300)


def test_mann_kendall_near_perfect_order_uses_the_exact_tail():
    for n in (40, 200, 500):
        y = np.arange(float(n))
        y[[3, 4]] = y[[4, 3]]  # one discordant pair: scipy takes the exact tail here too
        assert sg.mann_kendall(y) == pytest.approx(tuple(map(float, kendalltau(np.arange(n), y))), abs=1e-300)


def test_mann_kendall_drops_nonfinite_points_like_scipy_on_the_rest():
    rng = np.random.default_rng(7)
    y = rng.normal(size=300).cumsum()
    y[::17] = np.nan
    y[5] = np.inf
    keep = np.isfinite(y)
    ref = kendalltau(np.flatnonzero(keep), y[keep])
    assert sg.mann_kendall(y) == pytest.approx((float(ref[0]), float(ref[1])), rel=1e-9)


def test_inversions_counts_every_pair_on_a_long_tied_series():
    rng = np.random.default_rng(8)
    ranks = rng.integers(0, 37, 3000)
    brute = int(sum(int((ranks[:j] > ranks[j]).sum()) for j in range(ranks.size)))
    assert sg._inversions(ranks, 37) == brute


@pytest.mark.parametrize("alpha", [0.05, 0.1, 0.01])
def test_theil_sen_matches_scipy_theilslopes(alpha):
    rng = np.random.default_rng(int(alpha * 100))
    for trial in range(60):
        n = int(rng.integers(3, 250))
        y = _series(rng, trial % 4, n)
        x = np.sort(rng.choice(np.arange(1000.0), n, replace=trial % 3 == 0))  # tied x sometimes
        if np.ptp(y) == 0 or np.ptp(x) == 0:
            continue
        t = sg.theil_sen(x, y, alpha=alpha)
        ref = theilslopes(y, x, alpha=1.0 - alpha)
        got = (t.slope, t.intercept, t.lo, t.hi)
        assert got == pytest.approx(tuple(float(v) for v in ref), rel=1e-9, abs=1e-12)


def test_signals_imports_no_scipy():
    code = "import sys; import trainfix.diagnostics.signals as s; s.mann_kendall([1.,3.,2.,4.]); "
    code += "s.theil_sen([1.,3.,2.,4.]); print('scipy' in sys.modules, 'statistics' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"
    assert not math.isnan(sg.theil_sen([1.0, 3.0, 2.0, 4.0]).slope)


def test_normal_quantile_matches_scipy_norm_ppf():
    from scipy.stats import norm

    for p in list(np.logspace(-300, -1, 60)) + list(np.linspace(0.001, 0.999, 97)):
        assert sg._normal_quantile(float(p)) == pytest.approx(float(norm.ppf(p)), rel=1e-13, abs=1e-13)
    with pytest.raises(ValueError):
        sg._normal_quantile(0.0)
