"""Shared numerics: noise, trends, reversals, spikes, run lengths, relative sizes (NaN-safe)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainfix.diagnostics import signals as sg


def test_noise_scale_recovers_gaussian_sigma_and_ignores_trend():
    rng = np.random.default_rng(0)
    x = np.linspace(0, 10, 2000)
    y = 5.0 - 0.4 * x + rng.normal(0, 0.1, x.size)
    assert sg.noise_scale(y) == pytest.approx(0.1, rel=0.1)


def test_noise_scale_ignores_rare_spikes_and_nans():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1.0, 1000)
    y[::97] = 50.0
    y[5] = np.nan
    y[6] = np.inf
    assert sg.noise_scale(y) == pytest.approx(1.0, rel=0.15)


def test_noise_scale_quantised_and_degenerate():
    assert sg.noise_scale([1.0, 1.0, 1.0, 1.0]) == 0.0
    assert math.isnan(sg.noise_scale([1.0, 2.0]))
    # more than half the differences are zero: still a positive noise
    q = np.array([0.5] * 10 + [0.52] + [0.5] * 10)
    assert sg.noise_scale(q) > 0


def test_theil_sen_slope_interval_and_significance():
    rng = np.random.default_rng(2)
    x = np.arange(100.0)
    t = sg.theil_sen(x, 2.0 - 0.01 * x + rng.normal(0, 0.02, 100))
    assert t.slope == pytest.approx(-0.01, abs=0.001)
    assert t.lo <= t.slope <= t.hi and t.significant and t.direction == -1
    flat = sg.theil_sen(x, rng.normal(0, 0.02, 100))
    assert not flat.significant and flat.direction == 0


def test_theil_sen_long_series_and_degenerate():
    x = np.arange(20000.0)
    t = sg.theil_sen(x, 3.0 * x)
    assert t.slope == pytest.approx(3.0, rel=1e-3) and t.n <= sg.THEIL_SEN_MAX_POINTS
    assert math.isnan(sg.theil_sen([1.0, 2.0], [1.0, 2.0]).slope)
    single_arg = sg.theil_sen([1.0, 2.0, 3.0, np.nan, 5.0])
    assert single_arg.slope == pytest.approx(1.0)
    assert sg.theil_sen(x[:10], np.ones(10)).slope == 0.0


def test_mann_kendall():
    tau, p = sg.mann_kendall(np.arange(30.0))
    assert tau == pytest.approx(1.0) and p < 1e-6
    tau, p = sg.mann_kendall(-np.arange(30.0) ** 2)
    assert tau == pytest.approx(-1.0)
    assert sg.mann_kendall(np.ones(10)) == (0.0, 1.0)
    assert sg.mann_kendall([1.0, np.nan]) == (0.0, 1.0)
    rng = np.random.default_rng(3)
    _, p = sg.mann_kendall(rng.normal(size=50))
    assert p > 0.01


def test_smooth_is_centered_median_and_nan_safe():
    y = np.array([0, 0, 0, 10, 0, 0, 0], dtype=float)
    assert np.allclose(sg.smooth(y, 3), 0.0)
    step = np.array([0.0] * 5 + [1.0] * 5)
    s = sg.smooth(step, 3)
    assert s[4] == 0.0 and s[5] == 1.0  # no lag, edge kept sharp
    z = sg.smooth([1.0, np.nan, 3.0, np.inf], 3)
    assert z.shape == (4,) and np.isfinite(z).all()
    assert np.isnan(sg.smooth([np.nan, np.nan], 3)).all()
    assert sg.smooth([1.0, 2.0], 4).shape == (2,)


def test_ema():
    e = sg.ema([1.0, np.nan, 3.0], 0.5)
    assert e[0] == 1.0 and e[1] == 1.0 and e[2] == 2.0


def test_reversals_zigzag_seed_shape():
    # the seed's validation accuracy: 0.859 -> 0.07 -> 0.64 with small wobble
    y = np.array([0.5, 0.7, 0.859, 0.84, 0.30, 0.07, 0.1, 0.4, 0.64, 0.62, 0.63])
    legs = sg.reversals(y, 0.2)
    assert [(a, b) for a, b, _ in legs] == [(0, 2), (2, 5), (5, 8)]
    assert legs[1][2] == pytest.approx(0.07 - 0.859)
    assert len(legs) - 1 == 2  # two direction changes


def test_reversals_ignore_small_wobble_and_handle_degenerate():
    rng = np.random.default_rng(4)
    y = np.linspace(0.2, 0.9, 100) + rng.normal(0, 0.01, 100)
    legs = sg.reversals(y, 0.1)
    assert len(legs) == 1 and legs[0][2] > 0.6
    assert sg.reversals([1.0], 0.1) == []
    assert sg.reversals([1.0, 2.0, 1.0], 0.0) == []
    assert sg.reversals([1.0, 1.05, 1.0], 0.1) == []
    assert sg.reversals([0.0, np.nan, 1.0, 0.0], 0.5) == [(0, 2, 1.0), (2, 3, -1.0)]


def test_spikes():
    rng = np.random.default_rng(5)
    y = 1.0 + rng.normal(0, 0.01, 300)
    y[100] = 2.0
    y[200] = np.nan
    assert sg.spikes(y) == [100]
    assert sg.spikes(np.ones(50)) == []
    assert sg.spikes([1.0, 2.0]) == []


def test_run_lengths():
    assert sg.run_lengths([0, 1, 1, 0, 1, 0, 1, 1, 1]) == [(1, 2), (4, 1), (6, 3)]
    assert sg.run_lengths([]) == []
    assert sg.run_lengths([False, False]) == []
    assert sg.longest_run([1, 0, 1, 1]) == (2, 2)
    assert sg.longest_run([0]) == (0, 0)


def test_relative_spread_and_change():
    assert sg.relative_spread([1.0, 1.0, 1.0]) == 0.0
    assert sg.relative_spread([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert sg.relative_spread([0.0, 0.0, 0.0]) == 0.0
    assert sg.relative_spread([-1.0, 0.0, 1.0]) == pytest.approx(3.0)
    assert math.isnan(sg.relative_spread([np.nan]))
    assert sg.rel_change(2.0, 1.0) == -0.5
    assert sg.rel_change(-2.0, -1.0) == 0.5
    assert sg.rel_change(0.0, 0.0) == 0.0
    assert sg.rel_change(0.0, -1.0) == -math.inf
    assert math.isnan(sg.rel_change(np.nan, 1.0))


def test_enough_and_reason_and_format():
    assert sg.enough([1.0, np.nan, 2.0], 2) and not sg.enough([1.0, np.nan], 2)
    assert not sg.enough(None, 1)
    assert sg.need_reason("val/acc", 4, 6) == "only 4 points of val/acc, need 6"
    assert sg.pct(0.859) == "85.9%"
    assert sg.fmt(1.6e-5) == "1.6e-05"
    assert sg.head_tail(np.arange(100.0), 0.1) == (4.5, 94.5)


def test_usable_says_why_a_series_cannot_be_judged():
    from trainfix.diagnostics.run import Series

    s = Series("val/acc", np.arange(5.0), np.array([0.1, np.nan, 0.3, 0.4, np.inf]))
    assert sg.usable(None, "no validation metric logged", 3) == (None, "no validation metric logged")
    got, why = sg.usable(s, "missing", 3)
    assert why == "" and list(got.values) == [0.1, 0.3, 0.4]
    assert sg.usable(s, "missing", 4) == (None, "only 3 points of val/acc, need 4")
    kept, _ = sg.usable(s, "missing", 5, finite_only=False)
    assert len(kept) == 5


# --- the vectorised paths give what the one-call-per-window/bin/group versions give -------------------
def _smooth_reference(values, window):
    arr = np.asarray(values, dtype=float)
    if window % 2 == 0:
        window += 1
    half = window // 2
    clean = np.where(np.isfinite(arr), arr, np.nan)
    out = np.full(arr.size, np.nan)
    for i in range(arr.size):
        w = clean[max(0, i - half) : i + half + 1]
        if np.isfinite(w).any():
            out[i] = np.nanmedian(w)
    return out


@pytest.mark.parametrize("window", [2, 3, 5, 9, 21])
def test_smooth_equals_a_median_per_window(window):
    rng = np.random.default_rng(window)
    y = rng.normal(size=700)
    y[[0, 5, 6, 7, 300, 301, 699]] = np.nan
    y[[40, 41]] = [np.inf, -np.inf]
    y[500:530] = np.nan  # a gap longer than the window
    np.testing.assert_array_equal(sg.smooth(y, window), _smooth_reference(y, window))
    clean = rng.normal(size=333)
    np.testing.assert_array_equal(sg.smooth(clean, window), _smooth_reference(clean, window))


@pytest.mark.parametrize("n, bins", [(1000, 400), (1003, 400), (99_999, 400), (401, 400), (5000, 7)])
def test_bin_medians_equal_one_median_per_bin(n, bins):
    rng = np.random.default_rng(n)
    x, y = np.arange(n, dtype=float), rng.normal(size=n)
    y[::97] = np.nan
    xs, ys = sg.bin_medians(x, y, bins)
    keep = np.isfinite(y)
    xa, ya = x[keep], y[keep]
    edges = np.linspace(0, xa.size, bins + 1).astype(int)
    ref_x = [np.median(xa[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    ref_y = [np.median(ya[a:b]) for a, b in zip(edges[:-1], edges[1:]) if b > a]
    assert xs.tolist() == ref_x and ys.tolist() == ref_y


def test_group_by_boundaries_equals_one_mask_per_group():
    rng = np.random.default_rng(0)
    steps = np.concatenate([np.arange(0, 5000), rng.integers(0, 6000, 300)])  # unsorted tail too
    values = rng.normal(size=steps.size)
    bounds = np.array([999, 1999, 2999, 3999, 99, 4500])  # unsorted, one past most steps
    got = sg.group_by_boundaries(steps, values, bounds)
    which = np.searchsorted(np.sort(bounds), steps, side="left")
    ref = [(steps[which == g].astype(float), values[which == g]) for g in np.unique(which)]
    assert len(got) == len(ref)
    for (gs, gv), (rs, rv) in zip(got, ref):
        assert gs.tolist() == rs.tolist() and gv.tolist() == rv.tolist()
