"""``loss-plateau`` after learning and on a flat validation loss, on real shapes.

- *validation-flat* fires on the committed real log txt-29 (a Transformer translation log, epochs
  16-30: validation loss 5.94-6.01 over 15 evaluations while the training loss creeps
  4.61 -> 4.37 and the lr is still ~3/4 of its peak).
- *after-learning* fires on a generated curve modelled on the corpus run pl-087 (a pendulum PINN,
  whose bytes are git-ignored: total loss 0.94 -> 0.33 in the first 4% of 1000 epochs, then flat
  at 0.31-0.32 while its initial-omega term keeps rising and the other two terms fall, no lr
  logged).  Its healthy twin pl-088 (same project, every term falling, total 0.62 -> 0.12) is
  modelled too and stays quiet, as does the pl-087 total alone (nothing to tell it from a
  converged run), the end of a cosine schedule (flat because the lr went to zero), and a
  constant-lr plateau whose validation loss or metric still improves.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import synthetic_runs as synthetic
from trainfix.diagnostics.detectors import load
from trainfix.diagnostics.finding import Finding

DATA = Path(__file__).parent / "data" / "real-logs"


def findings(run, **overrides) -> list[Finding]:
    cls = load("loss-plateau")
    return [f for f in cls().check(run, cls.Params(**overrides)) if isinstance(f, Finding)]


def per_epoch(tags: dict[str, np.ndarray], steps_per_epoch: int = 32):
    curves = {}
    for tag, values in tags.items():
        v = np.asarray(values, dtype=float)
        curves[tag] = (steps_per_epoch * np.arange(1, v.size + 1, dtype=float), v)
    n = max(len(v) for v in tags.values())
    curves["epoch"] = (steps_per_epoch * np.arange(1, n + 1, dtype=float), np.arange(n, dtype=float))
    return synthetic.make_run(curves, {})


def pinn_terms(stuck: bool, n: int = 1000, seed: int = 0) -> dict[str, np.ndarray]:
    """Three PINN terms and their sum, per epoch, shaped like pl-087 (stuck) or pl-088 (healthy)."""
    rng = np.random.default_rng(seed)
    ep = np.arange(n, dtype=float)
    fast = np.exp(-ep / 8)
    if stuck:  # the ODE residual falls, the initial conditions trade against each other at ~0.15
        dyn = 0.005 + 0.0075 * np.exp(-ep / 350) + 0.44 * fast
        omega = 0.143 + 0.006 * ep / n - 0.094 * fast
        theta = 0.168 - 0.007 * ep / n + 0.26 * fast
    else:  # every term keeps falling over the run
        dyn = 0.1 * np.exp(-ep / 600) + 0.02 + 8 * fast
        omega = 0.001 + 0.001 * fast
        theta = 0.6 * np.exp(-ep / 150) + 0.02
    dyn, omega, theta = (t * (1 + rng.normal(0, 0.004, n)) for t in (dyn, omega, theta))
    return {"dynamics_loss_epoch": dyn, "initial_omega_loss_epoch": omega,
            "initial_theta_loss_epoch": theta, "train_loss_epoch": dyn + omega + theta}


def test_validation_flat_fires_on_the_real_transformer_log():
    from trainfix.diagnostics.ingest import read_run

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = read_run(DATA / "txt-29")
    (f,) = findings(run)
    ev = f.evidence
    assert ev["signature"] == "validation-flat" and ev["evaluations"] == 15
    assert (ev["plateau_from"], ev["plateau_to"]) == (1330, 19950)
    assert ev["spread"] < 0.02 and 5.9 < ev["level"] < 6.05 and ev["train_fall"] > 0.03
    assert ev["lr_state"] == "kept" and 0.6 < ev["lr_end_to_peak"] < 0.9
    assert f.fixes == ["lower-lr"] and "stopped improving" in f.message
    assert not findings(run, val_band=0.004)  # the band decides: 0.5% spread here


def test_after_learning_fires_on_a_pinn_whose_terms_trade_while_the_total_is_flat():
    run = per_epoch(pinn_terms(stuck=True))
    (f,) = findings(run)
    ev = f.evidence
    assert ev["signature"] == "after-learning" and ev["lr_state"] == "unknown"
    assert ev["plateau_share"] > 0.8 and ev["fall"] < 0.03 * ev["level"]
    assert 0.3 < ev["level"] < 0.33 and ev["plateau_to"] == 32000
    assert ev["term"]["tag"] == "initial_omega_loss_epoch" and ev["term"]["rise"] > 0
    assert f.fixes == ["lower-lr"] and "trade against each other" in f.message
    assert f.steps[0] == ev["plateau_from"]


def test_after_learning_quiet_on_the_healthy_twin_and_on_the_total_alone():
    assert not findings(per_epoch(pinn_terms(stuck=False)))
    total = pinn_terms(stuck=True)["train_loss_epoch"]
    assert not findings(per_epoch({"train_loss_epoch": total}))  # no lr, no terms: could be converged


def cosine_run(n: int, lr: np.ndarray, seed: int, extra: dict | None = None):
    rng = np.random.default_rng(seed)
    ep = np.arange(n, dtype=float)
    loss = 0.9 + 1.4 * np.exp(-ep / 6) + rng.normal(0, 0.004, n)
    return per_epoch({"train/loss": loss, "lr": lr, **(extra or {})})


def test_after_learning_needs_the_lr_still_up():
    n = 100
    f = np.arange(n) / (n - 1)
    for seed in range(3):  # flat at the end of a cosine schedule: converged, not stuck
        assert not findings(cosine_run(n, 1e-3 * 0.5 * (1 + np.cos(np.pi * f)), seed))
    (g,) = findings(cosine_run(n, np.full(n, 1e-3), 0))  # the same loss at a constant lr
    assert g.evidence["signature"] == "after-learning" and g.evidence["lr_state"] == "kept"


def test_after_learning_quiet_while_validation_still_improves():
    n = 100
    ep = np.arange(n, dtype=float)
    rng = np.random.default_rng(4)
    val_loss = 1.3 - 0.2 * ep / n + rng.normal(0, 0.005, n)
    val_acc = 0.6 + 0.15 * ep / n + rng.normal(0, 0.005, n)
    assert not findings(cosine_run(n, np.full(n, 1e-3), 0, {"val/loss": val_loss}))
    assert not findings(cosine_run(n, np.full(n, 1e-3), 0, {"val/acc": val_acc}))


def test_validation_flat_quiet_when_the_metric_improves_or_the_lr_decayed():
    rng = np.random.default_rng(2)
    n = 15
    val = 5.97 + rng.normal(0, 0.01, n)
    train = np.linspace(4.61, 4.37, n) + rng.normal(0, 0.003, n)
    kept = np.linspace(3e-4, 2.2e-4, n)
    (f,) = findings(per_epoch({"train/loss": train, "val/loss": val, "lr": kept}))
    assert f.evidence["signature"] == "validation-flat"
    acc = np.linspace(0.5, 0.7, n) + rng.normal(0, 0.003, n)
    assert not findings(per_epoch({"train/loss": train, "val/loss": val, "lr": kept, "val/acc": acc}))
    decayed = 3e-4 * np.linspace(1, 0.01, n)
    assert not findings(per_epoch({"train/loss": train, "val/loss": val, "lr": decayed}))


def test_lower_lr_says_why_for_a_plateau_after_learning():
    from trainfix.fixes.recipes import load as load_recipe

    (f,) = findings(cosine_run(100, np.full(100, 1e-3), 0))
    patch = load_recipe("lower-lr")().plan({"optimizer": {"name": "adam", "lr": 1e-3}}, f)
    (edit,) = patch.edits
    assert edit.new == pytest.approx(3e-4)
    text = edit.reason
    assert "settle below the level it stalled at" in text and f"{f.evidence['plateau_from']:g}" in text
