"""The detectors real logs need: never learned, validation never improving, lr out of range for the
regime, overfitting that consults the task metric, and sparse cadences.

Real files from tests/data/real-logs (provenance in its PROVENANCE.md) must fire or stay quiet as a
person reading their curves says; the stories from the issue (SGD at lr 3.0 at chance, a Lightning
LSTM whose loss goes 0.2522 -> 0.2514, an HF run with five train-loss points) are generated here as
their users logged them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import synthetic_runs as synthetic
from trainfix.diagnostics.detectors import load
from trainfix.diagnostics.engine import diagnose
from trainfix.diagnostics.finding import Finding, Severity
from trainfix.diagnostics.ingest import read_run

DATA = Path(__file__).parent / "data" / "real-logs"


def real(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_run(DATA / name)


def fired(name, run, **overrides) -> list[Finding]:
    cls = load(name)
    return [f for f in cls().check(run, cls.Params(**overrides)) if isinstance(f, Finding)]


def epochs_run(tags, config=None, steps_per_epoch=100):
    curves = {}
    for tag, values in tags.items():
        v = np.asarray(values, dtype=float)
        curves[tag] = (steps_per_epoch * np.arange(1, v.size + 1, dtype=float), v)
    return synthetic.make_run(curves, config or {})


# --- never-learned -----------------------------------------------------------------------------------
def test_never_learned_fires_on_a_real_segmenter_frozen_at_one_accuracy():
    (f,) = fired("never-learned", real("keras-14"))
    assert f.evidence["signature"] == "frozen" and f.evidence["tag"] == "val_accuracy"
    assert f.evidence["level"] == pytest.approx(0.9866, abs=1e-4)
    assert f.evidence["frozen_points"] == 35


def test_never_learned_on_sgd_at_lr_3_with_accuracy_at_chance():
    rng = np.random.default_rng(0)
    run = epochs_run({"train_loss": 2.303 + rng.normal(0, 0.01, 8), "val_acc": rng.uniform(0.08, 0.10, 8)},
                     {"optimizer": "sgd", "lr": 3.0, "num_classes": 10})
    (f,) = fired("never-learned", run)
    assert f.evidence["signature"] == "chance" and f.evidence["classes"] == 10
    assert f.fixes == ["lower-lr"] and f.evidence["lr_judgement"] == "large"
    assert f.evidence["expected_lr"] == 0.5  # the top of the SGD range: the smallest cut out of the unstable regime


def test_never_learned_infers_the_classes_from_accuracy_and_loss_agreeing():
    rng = np.random.default_rng(1)
    run = epochs_run({"train_loss": 1.61 + rng.normal(0, 0.02, 10), "val_acc": rng.uniform(0.18, 0.22, 10)})
    (f,) = fired("never-learned", run)
    assert f.evidence["classes"] == 5 and f.evidence["classes_from"].startswith("1 / median")


def test_never_learned_on_a_lightning_lstm_whose_outputs_are_stuck_at_one_half():
    run = epochs_run({"train_loss": np.linspace(0.2522, 0.2514, 30)})
    (f,) = fired("never-learned", run)
    assert f.evidence["signature"] == "constant-outputs" and f.evidence["constant_loss"] == 0.25


def test_never_learned_on_a_loss_at_ln_4_to_four_decimals_without_a_class_count():
    rng = np.random.default_rng(4)
    run = epochs_run({"train_loss": 1.3862 + rng.uniform(-0.003, 0.001, 60)})
    (f,) = fired("never-learned", run)
    assert f.evidence["signature"] == "constant-outputs" and f.evidence["constant_loss"] == pytest.approx(np.log(4))
    near = epochs_run({"train_loss": 1.36 + rng.uniform(-0.001, 0.001, 60)})  # 2% off ln 4: not that
    assert fired("never-learned", near) == []


def test_never_learned_stays_quiet_on_learning_and_on_perfect_and_on_nan_runs():
    learning = epochs_run({"train_loss": 2.3 * np.exp(-np.arange(20) / 5) + 0.1,
                           "val_acc": np.linspace(0.1, 0.9, 20)}, {"num_classes": 10})
    assert fired("never-learned", learning) == []
    perfect = epochs_run({"train_loss": np.linspace(0.5, 0.01, 12), "val_acc": [0.8] + [1.0] * 11})
    assert fired("never-learned", perfect) == []
    assert fired("never-learned", synthetic.pathology("nonfinite-loss", "early", 0)) == []


@pytest.mark.parametrize("kind", sorted(synthetic.HEALTHY))
def test_never_learned_and_validation_never_improves_quiet_on_synthetic_healthy_runs(kind):
    run = synthetic.healthy(kind, 0)
    assert fired("never-learned", run) == [] and fired("validation-never-improves", run) == []


# --- validation-never-improves -------------------------------------------------------------------------
def test_validation_never_improves_on_a_real_whisper_fine_tune():
    (f,) = fired("validation-never-improves", real("hf-08"))
    assert f.evidence["tag"] == "eval_wer" and f.evidence["direction"] == "min"
    assert f.evidence["first"] == pytest.approx(17.7, abs=0.1)
    assert f.evidence["regime"] == "finetune"  # trainer_state.json: a Hugging Face Trainer run
    assert f.fixes[0] == "lower-lr"


def test_validation_never_improves_quiet_when_the_metric_improves_once():
    run = epochs_run({"val_acc": [0.5, 0.62, 0.55, 0.52, 0.50, 0.49], "train_loss": np.linspace(1, 0.5, 6)})
    assert fired("validation-never-improves", run) == []


# --- lr out of range for the regime ----------------------------------------------------------------
def hf_whisper_run(peak_lr):
    """An HF Trainer run as trainer_state.json logs it: train loss every 500 steps (5 points), eval
    every 250 (20 points) with eval loss rising from the first evaluation."""
    rng = np.random.default_rng(2)
    steps = np.arange(500, 2501, 500, dtype=float)
    lr = peak_lr * np.array([0.5, 1.0, 0.7, 0.4, 0.1])
    eval_steps = np.arange(250, 5001, 250, dtype=float)
    curves = {"loss": (steps, np.array([1.24, 2.03, 2.16, 1.99, 1.79])), "learning_rate": (steps, lr),
              "eval_loss": (eval_steps, 2.55 + 1.2 * (1 - np.exp(-eval_steps / 800)) + rng.normal(0, 0.1, 20)),
              "eval_wer": (eval_steps, rng.uniform(90, 97, 20))}
    return synthetic.make_run(curves, {"trainer_state": {"global_step": 5000, "max_steps": 5000}})


def test_lr_miscaled_judges_a_fine_tune_against_the_fine_tuning_range():
    (f,) = fired("lr-miscaled", hf_whisper_run(3e-3))
    assert f.evidence["direction"] == "too_high" and f.evidence["regime"] == "finetune"
    assert f.evidence["optimizer_family"] == "adam"  # the Trainer's default AdamW
    assert "eval_loss never beat its first evaluation" in f.message
    assert fired("lr-miscaled", hf_whisper_run(1e-5)) == []


# --- overfitting consults the task metric; sparse cadences --------------------------------------------
def test_overfitting_reads_a_handful_of_evaluations_with_a_lower_confidence():
    val = [0.32, 0.36, 0.39, 0.41, 0.42]
    few = epochs_run({"val_loss": val, "train_loss": np.geomspace(0.3, 2e-4, 5)})
    (f,) = fired("overfitting", few)
    assert f.confidence < 0.6 and "first evaluation" in f.message and "early stopping" not in f.message


def test_a_visible_problem_in_five_train_points_is_not_skipped_for_lack_of_them():
    report = diagnose(hf_whisper_run(3e-3))
    fired_names = {f.detector for f in report.findings if Severity(f.severity) >= Severity.WARNING}
    assert fired_names & {"lr-miscaled", "validation-never-improves", "loss-divergence"}


# --- on the labelled corpus (benchmarks/real-logs, provenance in its corpus.csv) --------------------
CORPUS = Path(__file__).parent.parent / "benchmarks" / "real-logs"


def corpus(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_run(CORPUS / name)


def test_loss_divergence_judges_a_few_points_with_a_confidence_that_scales_with_them():
    few = epochs_run({"train_loss": [1.0, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4]})  # below the 8 it once needed
    (f,) = fired("loss-divergence", few)
    many = epochs_run({"train_loss": np.concatenate([np.linspace(0.9, 0.5, 10), np.linspace(0.6, 4.0, 10)])})
    (g,) = fired("loss-divergence", many)
    assert f.confidence < g.confidence and f.evidence["points"] == 7


def test_loss_plateau_judges_effect_size_as_well_as_significance():
    # the Lightning LSTM: 0.2522 -> 0.2514, a fall far beyond its tiny noise but of 0.3%
    rng = np.random.default_rng(5)
    run = epochs_run({"train_loss": np.linspace(0.2522, 0.2514, 30) + rng.normal(0, 1e-5, 30)})
    (f,) = fired("loss-plateau", run)
    assert f.evidence["significant_but_negligible"] and "negligible" in f.message
    assert "did not fall beyond its noise" not in f.message
