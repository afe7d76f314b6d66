"""lr schedules are pure functions of the step: warmup, constant, step, cosine floor, one-cycle."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from trainfix.trainers.components.schedules import lr_at, warmup_steps
from trainfix.trainers.config import ScheduleConfig


def cfg(**kw):
    return ScheduleConfig(**kw)


def test_constant_is_one_everywhere():
    assert [lr_at(s, 100, 10, cfg()) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]


def test_linear_warmup_from_epochs_then_constant():
    c = cfg(warmup_epochs=1.0)
    assert [lr_at(s, 100, 10, c) for s in range(10)] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert lr_at(10, 100, 10, c) == 1.0


def test_warmup_steps_and_ratio_take_precedence():
    assert warmup_steps(100, 10, cfg(warmup_epochs=5, warmup_steps=3)) == 3
    assert warmup_steps(100, 10, cfg(warmup_epochs=5, warmup_ratio=0.2)) == 20
    assert warmup_steps(100, 10, cfg(warmup_epochs=0.5)) == 5


def test_step_decay_by_epoch():
    c = cfg(name="step", step_epochs=2, gamma=0.5)
    assert [lr_at(e * 10, 100, 10, c) for e in range(6)] == pytest.approx([1, 1, 0.5, 0.5, 0.25, 0.25])


def test_cosine_decays_to_its_floor_after_warmup():
    c = cfg(name="cosine", warmup_epochs=1, min_lr_ratio=0.1)
    values = [lr_at(s, 100, 10, c) for s in range(100)]
    assert values[9] == 1.0 and values[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[10:], values[11:]))
    assert values[55] == pytest.approx(0.1 + 0.9 * 0.5, abs=0.02)
    assert values[-1] == pytest.approx(0.1, abs=1e-3)
    assert lr_at(100, 100, 10, c) == pytest.approx(0.1)


def test_one_cycle_rises_then_falls():
    c = cfg(name="one-cycle", pct_start=0.3)
    values = [lr_at(s, 100, 10, c) for s in range(100)]
    assert values[0] == pytest.approx(1 / 25)
    assert max(values) == pytest.approx(1.0) and values.index(max(values)) == 30
    assert values[-1] < 0.01
    assert all(a <= b for a, b in zip(values[:30], values[1:31]))


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError):
        lr_at(0, 10, 1, SimpleNamespace(name="linear", warmup_epochs=0))
