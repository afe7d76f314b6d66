"""The basic and oscillation detectors on generated runs.

Each detector must fire on the failure it names (at the strength the seed stories describe, with the
numbers in its evidence) and stay quiet on healthy runs, including noisy small-batch curves, step
schedules, warm restarts, fine-tunes near their optimum and near-zero losses.  Runs come from
``benchmarks/synthetic_runs.py`` or are built by hand from the seed numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import synthetic_runs as synthetic
from trainfix.diagnostics.detectors import load
from trainfix.diagnostics.finding import Finding, Severity, Skip

MINE = ("accuracy-oscillation", "accuracy-collapse", "batch-loss-variance", "nonfinite-loss",
        "loss-divergence", "loss-plateau", "overfitting")


def run_detector(name, run, **overrides):
    cls = load(name)
    params = cls.Params(**overrides)
    return list(cls().check(run, params))


def findings(name, run, **overrides) -> list[Finding]:
    return [f for f in run_detector(name, run, **overrides) if isinstance(f, Finding)]


def skips(name, run) -> list[Skip]:
    return [s for s in run_detector(name, run) if isinstance(s, Skip)]


def epochs_run(tags: dict[str, list | np.ndarray], config=None, steps_per_epoch=100):
    """A run with per-epoch tags: values are logged at the step that ended each epoch."""
    curves = {}
    for tag, values in tags.items():
        v = np.asarray(values, dtype=float)
        curves[tag] = (steps_per_epoch * np.arange(1, v.size + 1, dtype=float), v)
    n = max(len(v) for v in tags.values())
    curves.setdefault("epoch", (steps_per_epoch * np.arange(1, n + 1, dtype=float), np.arange(1, n + 1.0)))
    return synthetic.make_run(curves, config or {})


HEALTHY_CASES = [(kind, seed) for kind in synthetic.HEALTHY for seed in (0, 1)]


# --- quiet on healthy -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,seed", HEALTHY_CASES, ids=[f"{k}-{s}" for k, s in HEALTHY_CASES])
def test_quiet_on_healthy_runs(kind, seed):
    run = synthetic.healthy(kind, seed)
    for name in MINE:
        got = findings(name, run)
        assert not got, f"{name} fired on healthy {kind}: {got[0].message}"


@pytest.mark.parametrize("kind", ["noisy-small-batch", "warmup-cosine", "restarts", "near-zero-loss",
                                  "finetune-near-optimum", "slow"])
@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_quiet_on_the_start_of_healthy_runs(kind, fraction):
    run = synthetic.healthy(kind, 2).truncated(fraction)
    for name in MINE:
        got = findings(name, run)
        assert not got, f"{name} fired on the first {fraction:.0%} of healthy {kind}: {got[0].message}"


# --- accuracy-oscillation ---------------------------------------------------------------------------
def test_oscillation_fires_on_the_seed_numbers_with_sparse_fix():
    acc = [0.31, 0.52, 0.66, 0.75, 0.81, 0.859, 0.07, 0.64, 0.79, 0.83, 0.22, 0.71, 0.80, 0.82]
    cfg = {"sparse": {"enabled": True, "active_fraction": 0.1, "start_epoch": 0}}
    (f,) = findings("accuracy-oscillation", epochs_run({"val/acc": acc}, cfg))
    ev = f.evidence
    assert ev["reversals"] >= 3 and ev["bad_swings"] >= 2
    assert ev["largest_swing"] == pytest.approx(0.859 - 0.07)
    assert ev["largest_leg"]["from_value"] == pytest.approx(0.859)
    assert ev["largest_leg"]["to_value"] == pytest.approx(0.07)
    assert f.fixes[0] == "two-stage-sparse" and "sparse_from_start" in ev
    assert "85.9%" in f.message and "7%" in f.message
    assert f.tags == ["val/acc"] and f.steps[0] < f.steps[1]


def test_oscillation_picks_mil_soft_selection_for_hard_mil():
    rng = np.random.default_rng(0)
    base = np.linspace(0.6, 0.85, 30)
    auc = np.clip(base + np.where(np.arange(30) % 3 == 1, -0.45, 0.0) + rng.normal(0, 0.01, 30), 0, 1)
    cfg = {"model": {"name": "mil-dual-stream", "selection": "hard"}}
    (f,) = findings("accuracy-oscillation", epochs_run({"val/auc": auc}, cfg))
    assert f.fixes[0] == "mil-soft-selection"
    assert f.evidence["mil"] == {"mil_selection": "hard"}
    assert f.evidence["largest_swing"] > 0.4


def test_oscillation_without_specific_evidence_suggests_lower_lr():
    run = synthetic.pathology("accuracy-oscillation", "seed", 1)
    (f,) = findings("accuracy-oscillation", run)
    assert f.fixes[:2] == ["lower-lr", "grad-clip"]


def test_oscillation_on_percent_scale_and_logged_sparsity():
    acc = np.array([31, 52, 66, 75, 81, 85.9, 7, 64, 79, 83, 20, 71, 80, 82.0])
    run = epochs_run({"val/acc": acc, "sparsity/active_fraction": np.full(acc.size, 0.1)})
    (f,) = findings("accuracy-oscillation", run)
    assert f.evidence["unit"] == 100.0 and f.fixes[0] == "two-stage-sparse"
    assert f.evidence["sparse_from_start"]["first_active_fraction"] == pytest.approx(0.1)


def test_oscillation_quiet_on_single_drop_steady_rise_and_wobble():
    rng = np.random.default_rng(1)
    rise = np.linspace(0.1, 0.9, 40) + rng.normal(0, 0.02, 40)
    one_drop = np.concatenate([np.linspace(0.1, 0.9, 20), np.full(20, 0.3)])
    wobble = 0.8 + rng.normal(0, 0.03, 40)
    for values in (rise, one_drop, wobble):
        assert not findings("accuracy-oscillation", epochs_run({"val/acc": values}))


def test_oscillation_respects_direction_of_a_minimised_metric():
    # an error rate that dips (improves) and comes back is bad only upward; this one only improves
    err = np.concatenate([np.linspace(0.9, 0.1, 20), 0.1 + np.zeros(10)])
    run = epochs_run({"val/err": err})
    run.roles.single["val_metric"] = type(run.roles.single["val_metric"])("val/err", "test", "min")
    assert not findings("accuracy-oscillation", run)


def test_oscillation_skips_short_series():
    (s,) = skips("accuracy-oscillation", epochs_run({"val/acc": [0.1, 0.5, 0.2]}))
    assert s.reason == "only 3 points of val/acc, need 6"


# --- accuracy-collapse ------------------------------------------------------------------------------
def test_collapse_fires_on_the_seed_numbers():
    acc = [0.02, 0.06, 0.11, 0.1538, 0.149, 0.13, 0.11, 0.085, 0.06, 0.041, 0.03, 0.019, 0.0117]
    cfg = {"model": {"num_classes": 100}}
    (f,) = findings("accuracy-collapse", epochs_run({"val/acc": acc}, cfg))
    ev = f.evidence
    assert ev["peak"] == pytest.approx(0.1538, abs=0.005)
    assert ev["end"] == pytest.approx(0.019, abs=0.01)
    assert ev["chance"] == pytest.approx(0.01) and ev["classes"] == 100
    assert ev["mann_kendall_p"] < 0.05 and ev["slope_interval"][1] < 0
    assert "15.4%" in f.message and "1.17%" in f.message and ev["peak_raw"] == pytest.approx(0.1538)
    assert f.fixes[0] == "lower-lr"


def test_collapse_puts_nan_guard_first_when_a_loss_went_nonfinite():
    acc = [0.2, 0.5, 0.7, 0.8, 0.6, 0.4, 0.3, 0.2, 0.12, 0.1]
    loss = [2.0, 1.5, 1.0, 0.8, 0.9, np.nan, np.nan, np.nan, np.nan, np.nan]
    (f,) = findings("accuracy-collapse", epochs_run({"val/acc": acc, "train/loss": loss},
                                                    {"model": {"num_classes": 10}}))
    assert f.fixes[0] == "nan-guard"


def test_collapse_quiet_on_a_dip_that_recovers_and_on_a_plateau():
    rng = np.random.default_rng(2)
    dip = np.concatenate([np.linspace(0.2, 0.8, 15), [0.6, 0.5, 0.55, 0.7, 0.78, 0.8]])
    flat = 0.1 + rng.normal(0, 0.01, 30)
    small_decline = np.concatenate([np.linspace(0.2, 0.9, 15), np.linspace(0.9, 0.85, 15)])
    for values in (dip, flat, small_decline):
        assert not findings("accuracy-collapse", epochs_run({"val/acc": values}))


def test_collapse_skips_minimised_metric():
    run = epochs_run({"val/acc": np.linspace(0.9, 0.1, 10)})
    run.roles.single["val_metric"] = type(run.roles.single["val_metric"])("val/acc", "test", "min")
    (s,) = skips("accuracy-collapse", run)
    assert "minimised" in s.reason


@pytest.mark.parametrize("strength", ["seed", "medium", "strong"])
def test_collapse_fires_on_generated_runs(strength):
    for seed in range(3):
        assert findings("accuracy-collapse", synthetic.pathology("accuracy-collapse", strength, seed))


# --- batch-loss-variance ----------------------------------------------------------------------------
def test_batch_variance_fires_on_hard_mil_with_the_seed_spread():
    run = synthetic.pathology("mil-hard-selection", "seed", 0)
    (f,) = findings("batch-loss-variance", run)
    ev = f.evidence
    assert ev["median_ratio"] >= 100 and ev["spread_share"] >= 0.5
    assert ev["windows_from"].startswith("epochs")
    assert f.fixes[0] == "mil-soft-selection"
    assert "grad-clip" not in f.fixes  # clipping is already configured in that run
    assert f.tags == ["train/loss_step"]


def test_batch_variance_without_mil_suggests_label_smoothing():
    (f,) = findings("batch-loss-variance", synthetic.pathology("batch-loss-variance", "seed", 1))
    assert f.fixes == ["label-smoothing", "grad-clip"]


def test_batch_variance_quiet_when_converged_near_zero():
    # per-batch losses spread over orders of magnitude, but tiny next to the starting level
    for seed in range(4):
        assert not findings("batch-loss-variance", synthetic.healthy("near-zero-loss", seed))


def test_batch_variance_works_without_epoch_boundaries_and_skips_bad_input():
    rng = np.random.default_rng(3)
    steps = np.arange(1, 601, dtype=float)
    wild = 0.5 * rng.lognormal(0, 2.0, steps.size)
    run = synthetic.make_run({"train/loss_step": (steps, wild)})
    (f,) = findings("batch-loss-variance", run)
    assert f.evidence["windows_from"] == "10 equal windows"
    neg = synthetic.make_run({"train/loss_step": (steps, rng.normal(0, 1, steps.size))})
    (s,) = skips("batch-loss-variance", neg)
    assert "negative" in s.reason
    short = synthetic.make_run({"train/loss_step": (steps[:20], wild[:20])})
    assert skips("batch-loss-variance", short)[0].reason == "only 20 points of train/loss_step, need 50"


# --- nonfinite-loss ---------------------------------------------------------------------------------
def test_nonfinite_reports_first_step_count_and_tags():
    run = synthetic.pathology("nonfinite-loss", "quarter", 0)
    (f,) = findings("nonfinite-loss", run)
    assert f.severity == Severity.ERROR
    ev = f.evidence
    assert ev["nonfinite_points"] > 0 and ev["nan_points"] == ev["nonfinite_points"]
    assert set(ev["per_tag"]) == {"train/loss_step", "train/loss", "val/loss"}
    total = run.series("train/loss_step").steps.max()
    assert 0.2 * total < ev["first_step"] <= 0.3 * total
    assert f.fixes[0] == "nan-guard" and ev["precision"] == "fp16"
    assert str(int(ev["first_step"])) in f.message


def test_nonfinite_scattered_inf_and_training_went_on():
    (f,) = findings("nonfinite-loss", synthetic.pathology("nonfinite-loss", "scattered", 1))
    ev = f.evidence
    assert ev["inf_points"] == 1 and ev["finite_after"] > 0
    assert "Inf" in f.message and "went on" in f.message


def test_nonfinite_on_a_loss_term_and_on_an_unmapped_loss_tag():
    steps = np.arange(1, 11, dtype=float)
    term = np.linspace(1, 0.5, 10)
    term[7] = np.inf
    run = synthetic.make_run({"train/loss": (steps, np.linspace(2, 1, 10)), "loss/sparsity": (steps, term)})
    (f,) = findings("nonfinite-loss", run)
    assert f.evidence["first_tag"] == "loss/sparsity" and f.evidence["first_step"] == 8.0
    run2 = synthetic.make_run({"train/loss": (steps, np.linspace(2, 1, 10)),
                               "aux_loss_mine": (steps, np.where(steps > 5, np.nan, 1.0))})
    (f2,) = findings("nonfinite-loss", run2)
    assert f2.evidence["first_tag"] == "aux_loss_mine"


def test_nonfinite_quiet_on_finite_losses_and_drops_grad_clip_when_configured():
    assert not findings("nonfinite-loss", synthetic.healthy("noisy-small-batch", 0))
    run = synthetic.pathology("nonfinite-loss", "early", 0)
    run.config["training"]["grad_clip"] = 1.0
    (f,) = findings("nonfinite-loss", run)
    assert f.fixes == ["nan-guard", "lower-lr"]


# --- loss-divergence --------------------------------------------------------------------------------
@pytest.mark.parametrize("strength", ["mild", "strong", "explode", "from-start"])
def test_divergence_fires(strength):
    for seed in range(3):
        got = findings("loss-divergence", synthetic.pathology("loss-divergence", strength, seed))
        assert got, f"{strength}/{seed}"
        ev = got[0].evidence
        assert ev["rise_in_noise_units"] >= 8 and ev["mann_kendall_p"] < 0.05


def test_divergence_evidence_and_severity_on_explosion():
    (f,) = findings("loss-divergence", synthetic.pathology("loss-divergence", "explode", 0))
    ev = f.evidence
    assert f.severity == Severity.ERROR and ev["ended_above_start"]
    assert ev["end"] > ev["start"] > ev["minimum"]
    assert f.fixes[0] == "lower-lr" and "lr-warmup" in f.fixes and "grad-clip" in f.fixes
    assert f.steps[0] == ev["min_step"]


def test_divergence_quiet_on_a_spike_that_recovers():
    rng = np.random.default_rng(4)
    loss = 2.0 * np.exp(-np.linspace(0, 4, 50)) + 0.2 + rng.normal(0, 0.01, 50)
    loss[30:33] += [1.5, 0.8, 0.3]
    assert not findings("loss-divergence", epochs_run({"train/loss": loss}))


def test_divergence_uses_per_step_loss_when_no_epoch_loss():
    rng = np.random.default_rng(5)
    steps = np.arange(10, 3001, 10, dtype=float)
    f = steps / steps.max()
    loss = (0.3 + 2 * np.exp(-6 * f)) * np.exp(np.log(20) * np.clip((f - 0.5) / 0.5, 0, 1))
    run = synthetic.make_run({"train/loss_step": (steps, loss * rng.lognormal(0, 0.3, steps.size))})
    (f1,) = findings("loss-divergence", run)
    assert f1.evidence["curve"] == "binned median of per-step"


# --- loss-plateau -----------------------------------------------------------------------------------
def test_plateau_fires_on_a_flat_loss_with_tiny_lr():
    (f,) = findings("loss-plateau", synthetic.pathology("loss-plateau", "flat-tiny-lr", 0))
    ev = f.evidence
    assert ev["stuck_fraction"] == 1.0 and ev["lr_judgement"] == "tiny"
    assert f.fixes[0] == "lr-sqrt-scaling"
    assert ev["drop_in_noise_units"] < 4


def test_plateau_fires_with_large_lr_and_suggests_lower_lr():
    (f,) = findings("loss-plateau", synthetic.pathology("loss-plateau", "flat-large-lr", 1))
    assert f.evidence["lr_judgement"] == "large" and f.fixes[0] == "lower-lr"


def test_plateau_stuck_then_learning():
    rng = np.random.default_rng(6)
    loss = np.concatenate([np.full(30, 2.3), 2.3 * np.exp(-np.linspace(0, 2, 20))]) + rng.normal(0, 0.01, 50)
    (f,) = findings("loss-plateau", epochs_run({"train/loss": loss}))
    assert 0.55 < f.evidence["stuck_fraction"] < 0.7
    assert f.confidence < 0.9


def test_plateau_vetoed_when_the_metric_improves_and_quiet_on_finetunes():
    rng = np.random.default_rng(7)
    loss = 0.3 + rng.normal(0, 0.002, 30)
    acc = np.linspace(0.6, 0.9, 30)
    assert not findings("loss-plateau", epochs_run({"train/loss": loss, "val/acc": acc}))
    flat_acc = 0.1 + rng.normal(0, 0.01, 30)
    (f,) = findings("loss-plateau", epochs_run({"train/loss": loss, "val/acc": flat_acc}))
    assert f.evidence["metric"]["tag"] == "val/acc" and not f.evidence["metric"]["improves"]
    # an extremely flat loss (per-epoch means over many batches) needs no metric to confirm it
    (g,) = findings("loss-plateau", epochs_run({"train/loss": 2.3026 + rng.normal(0, 1e-4, 30)}))
    assert g.evidence["metric"] is None and g.evidence["drop_relative"] < 1e-3
    for seed in range(4):
        assert not findings("loss-plateau", synthetic.healthy("finetune-near-optimum", seed))


def test_plateau_with_large_noise_needs_a_flat_metric_to_confirm():
    # a noisy loss that wanders by several percent: a fine-tune near its optimum looks like this
    rng = np.random.default_rng(9)
    loss = 2.1 + rng.normal(0, 0.1, 60)
    loss[:4] = [2.25, 2.23, 2.18, 2.08]
    assert not findings("loss-plateau", epochs_run({"train/loss": loss}))
    stuck_acc = 0.1 + rng.normal(0, 0.03, 60)
    (f,) = findings("loss-plateau", epochs_run({"train/loss": loss, "train/acc": stuck_acc}))
    assert f.evidence["metric"]["tag"] == "train/acc" and f.evidence["metric"]["flat_or_worse"]


def test_plateau_skips_without_loss():
    (s,) = skips("loss-plateau", epochs_run({"val/acc": np.linspace(0, 1, 10)}))
    assert s.reason == "no training loss logged"


# --- overfitting ------------------------------------------------------------------------------------
def test_overfitting_fires_with_early_stopping_step():
    run = synthetic.pathology("overfitting", "medium", 0)
    (f,) = findings("overfitting", run)
    ev = f.evidence
    assert ev["rise_relative"] > 0.3 and ev["gap_growth"] > 0
    assert ev["train_end"] < ev["train_at_val_min"]
    assert f"early stopping at step {ev['val_min_step']:g}" in f.message
    assert f.fixes == ["label-smoothing"]
    assert f.tags == ["val/loss", "train/loss"]


def test_overfitting_quiet_when_train_rises_too_and_on_mild_drift():
    rng = np.random.default_rng(8)
    val = np.concatenate([np.linspace(1.0, 0.5, 15), np.linspace(0.5, 1.5, 15)]) + rng.normal(0, 0.01, 30)
    train = np.concatenate([np.linspace(1.0, 0.4, 15), np.linspace(0.4, 1.4, 15)])
    assert not findings("overfitting", epochs_run({"val/loss": val, "train/loss": train}))
    for seed in range(4):
        assert not findings("overfitting", synthetic.healthy("mild-val-drift", seed))


def test_overfitting_skips_without_enough_validation_points():
    run = epochs_run({"val/loss": [1.0, 0.8, 0.9], "train/loss": [1.0, 0.7, 0.5]})
    (s,) = skips("overfitting", run)
    assert s.reason == "only 3 points of val/loss, need 5"


# --- everything together ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", MINE)
def test_findings_are_json_ready_and_well_formed(name):
    cases = {
        "accuracy-oscillation": ("accuracy-oscillation", "seed"),
        "accuracy-collapse": ("accuracy-collapse", "seed"),
        "batch-loss-variance": ("mil-hard-selection", "seed"),
        "nonfinite-loss": ("nonfinite-loss", "early"),
        "loss-divergence": ("loss-divergence", "strong"),
        "loss-plateau": ("loss-plateau", "creep"),
        "overfitting": ("overfitting", "strong"),
    }
    import json

    run = synthetic.pathology(*cases[name], seed=2)
    (f,) = findings(name, run)
    d = f.to_dict()
    json.dumps(d, allow_nan=False)
    assert d["detector"] == name and d["message"] and d["fixes"] and d["tags"]
    assert 0 < d["confidence"] <= 1
    assert d["steps"] is None or d["steps"][0] <= d["steps"][1]
    assert all(t in run.tags for t in d["tags"])
    assert any(ch.isdigit() for ch in d["message"])


def test_empty_run_gives_skips_not_errors():
    run = synthetic.make_run({"something/else": (np.arange(5.0), np.arange(5.0))})
    for name in MINE:
        out = run_detector(name, run)
        assert all(isinstance(o, Skip) for o in out), name


def test_nan_values_do_not_break_detectors():
    run = synthetic.pathology("nonfinite-loss", "early", 2)
    for name in MINE:
        out = run_detector(name, run)
        assert all(isinstance(o, (Finding, Skip)) for o in out)
        for o in out:
            if isinstance(o, Finding):
                assert all(not (isinstance(v, float) and math.isnan(v)) for v in [o.confidence])


# --- the generators themselves ----------------------------------------------------------------------
def test_synthetic_runs_are_deterministic_and_canonical():
    a = synthetic.pathology("mil-hard-selection", "seed", 3)
    b = synthetic.pathology("mil-hard-selection", "seed", 3)
    c = synthetic.pathology("mil-hard-selection", "seed", 4)
    assert a.scalars.equals(b.scalars) and not a.scalars.equals(c.scalars)
    assert list(a.scalars.columns) == ["tag", "step", "value", "wall_time", "source"]
    assert {"train/loss_step", "train/loss", "val/loss", "val/acc", "lr", "epoch"} <= set(a.tags)
    assert a.roles.tag("train_loss_step") == "train/loss_step"
    assert a.roles.direction("val_metric") == "max"
    assert a.config["model"]["selection"] == "hard"


def test_synthetic_corpus_labels():
    items = synthetic.corpus(seeds=(0,), healthy_seeds=(0, 1))
    healthy = [i for i in items if i.label == "healthy"]
    assert len(healthy) == 2 * len(synthetic.HEALTHY)
    assert all(not i.expected for i in healthy)
    sick = [i for i in items if i.label != "healthy"]
    assert {i.label for i in sick} == set(synthetic.PATHOLOGIES)
    assert all(i.expected for i in sick)
    with pytest.raises(ValueError):
        synthetic.pathology("overfitting", "enormous")


def test_synthetic_seed_numbers_are_in_the_seed_strength_runs():
    lr = synthetic.pathology("lr-miscaled", "seed", 0)
    assert lr.series("lr").values.max() == pytest.approx(5e-4 * 16 / 512)
    assert lr.config["optimizer"]["lr_scaling"] == "linear" and lr.config["training"]["batch_size"] == 16
    uw = synthetic.pathology("uncertainty-weights-similar", "seed", 0)
    w = uw.series("uw/weight/cls").values
    assert abs(np.median(w) - 0.08) <= 0.004
    col = synthetic.pathology("accuracy-collapse", "seed", 0)
    acc = col.series("val/acc").values
    assert 0.14 <= acc.max() <= 0.18 and acc[-3:].mean() < 0.02


def test_benchmark_scoring_on_a_small_corpus():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent.parent / "benchmarks" / "detector_accuracy.py"
    spec = importlib.util.spec_from_file_location("detector_accuracy", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    items = [
        synthetic.LabelledRun(synthetic.healthy("cosine", 0), "healthy", "cosine", 0),
        synthetic.LabelledRun(synthetic.pathology("overfitting", "strong", 0), "overfitting", "strong", 0,
                              frozenset({"overfitting"})),
        synthetic.LabelledRun(synthetic.pathology("nonfinite-loss", "early", 0), "nonfinite-loss", "early", 0,
                              frozenset({"nonfinite-loss"}), synthetic.PATHOLOGIES["nonfinite-loss"].allowed,
                              frozenset({"nonfinite-loss"})),
    ]
    res = bench.evaluate(items)
    assert res["healthy_runs"] == 1 and res["healthy_flagged"] == 0
    assert res["detectors"]["overfitting"]["tp"] == 1
    assert res["detectors"]["nonfinite-loss"]["early_tp"] == 1
    assert not res["internal_errors"] and not res["false_positives"]
