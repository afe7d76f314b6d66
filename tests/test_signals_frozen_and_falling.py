"""Two shared numerics the stuck-run signatures use: a stretch frozen to the end, a steady fall."""

from __future__ import annotations

import numpy as np

from trainfix.diagnostics import signals


def test_frozen_from_finds_where_a_series_stops_moving():
    assert signals.frozen_from([3.0, 2.0, 1.0, 1.0, 1.0005, 1.0], 1e-3) == 2
    assert signals.frozen_from([1.0, 1.0, 1.0], 1e-3) == 0
    assert signals.frozen_from([1.0, 2.0, 3.0], 1e-3) is None  # not even the last two agree
    assert signals.frozen_from([1.0], 1e-3) is None


def test_falls_steadily_on_a_falling_loss_not_on_a_flat_or_wobbling_one():
    steps = np.arange(12, dtype=float)
    assert signals.falls_steadily(steps, 1.0 - 0.03 * steps, 0.05)
    assert not signals.falls_steadily(steps, np.full(12, 0.5), 0.05)
    wobble = 0.5 + 0.05 * np.array([1, -1] * 6)
    assert not signals.falls_steadily(steps, wobble, 0.05)
    # five points: every step of the second half must be down
    assert signals.falls_steadily(steps[:5], [0.12, 0.11, 0.094, 0.090, 0.087], 0.05)
    assert not signals.falls_steadily(steps[:5], [0.12, 0.11, 0.094, 0.095, 0.087], 0.05)
    assert not signals.falls_steadily(steps[:3], [0.3, 0.2, 0.1], 0.05)  # too few points
