"""``never-learned`` on the shapes real stuck runs have, and quiet on the healthy runs they resemble.

Each curve below is built the way the real run logged it (its tag names, its cadence, its numbers):

- a Keras regression on standardised targets whose loss and val loss go 1.0007 -> 1.0000 in four
  epochs, a logged ``mse`` equal to the loss: the mean predicted for every input;
- a multi-task keypoints + segmentation net whose mIoU stays at ~0.001 for six epochs while its
  keypoint PCK is 0.83-0.88;
- a Hugging Face binary classifier whose first evaluation has recall 1.0 and precision equal to the
  accuracy (0.6056: every example called positive), and that never gets far past that share;
- a Hugging Face fine-tune at lr 0.5 (AdamW): evaluation accuracy 0.457/0.543 (one class predicted),
  evaluation loss 0.69-1.6 around ln 2, the training loss wandering 0.7-2.7 (its median 0.92 is not
  ln 2: the evaluation carries the evidence);
- a Lightning cross-entropy run at lr 40: per-step loss 2.3 -> thousands -> ~10, val accuracy at
  chance for ten classes;
- a Lightning classifier whose val loss is 7.9e12 at epoch 0 and still 2e7-7e7 ten epochs later.

The healthy twins are noisy the way real ones are: an emotion CNN whose val accuracy climbs slowly
from 0.23 to 0.54, an Ultralytics segmentation run (box loss ~0.7, mAP50 ~0.5: neither is a binary
classifier at chance), a detector's mAP rising from 0.001 in its first epochs (the committed YOLOv5
run tfev-25 cut to them), a regression on raw prices with a loss in the billions that converges, a
binary classifier that starts by predicting one class and then learns (and the committed DNABERT
run hf-03 with its precision and recall).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import synthetic_runs as synthetic
from trainfix.diagnostics.detectors import load
from trainfix.diagnostics.finding import Finding
from trainfix.diagnostics.ingest import read_run

DATA = Path(__file__).parent / "data" / "real-logs"


def fired(run, **overrides) -> list[Finding]:
    cls = load("never-learned")
    return [f for f in cls().check(run, cls.Params(**overrides)) if isinstance(f, Finding)]


def real(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_run(DATA / name)


def epochs(tags, config=None, first=1, every=1):
    """One point per epoch (or evaluation) for each tag."""
    curves = {}
    for tag, values in tags.items():
        v = np.asarray(values, dtype=float)
        curves[tag] = (first + every * np.arange(v.size, dtype=float), v)
    return synthetic.make_run(curves, config or {})


def with_steps(curves, config=None):
    return synthetic.make_run({t: (np.asarray(s, float), np.asarray(v, float)) for t, (s, v) in curves.items()},
                              config or {})


# --- a regression predicting the mean -----------------------------------------------------------------
KERAS_MEAN = {"loss": [1.0007213, 1.0003194, 0.9999599, 1.0000420],
              "mse": [1.0007213, 1.0003194, 0.9999599, 1.0000420],
              "mape": [103.52, 102.30, 101.09, 100.78],
              "val_loss": [1.0013051, 1.0000759, 1.0000443, 1.0000465],
              "val_mse": [1.0013049, 1.0000759, 1.0000443, 1.0000464]}


def test_a_regression_whose_train_and_val_loss_sit_at_one_predicts_the_mean():
    (f,) = fired(epochs(KERAS_MEAN, first=0))
    assert f.evidence["signature"] == "constant-outputs" and f.evidence["constant_loss"] == 1.0
    assert f.evidence["points"] == 4 and f.evidence["confirmed_by"] == ["val_loss"]
    assert "predicting the mean" in f.message


def test_a_mean_absolute_percentage_error_is_lower_is_better():
    run = epochs(KERAS_MEAN, first=0)
    assert run.roles.direction("val_metric") == "min"  # MAPE, not mAP
    from trainfix.diagnostics.roles import direction_of

    assert direction_of("val_mape") == "min" and direction_of("val/mAP50") == "max"


def test_four_points_at_one_need_the_other_loss_to_agree():
    alone = {k: v for k, v in KERAS_MEAN.items() if not k.startswith("val")}
    assert fired(epochs(alone, first=0)) == []
    # five points, not frozen to 0.1% but at 1.0 all the same, are judged on their own
    five = [1.0007, 1.0003, 0.9985, 1.0012, 0.9995]
    (f,) = fired(epochs({"loss": five, "mse": five}))
    assert f.evidence["signature"] == "constant-outputs" and f.evidence["confirmed_by"] == []


def test_a_regression_that_learns_or_sits_near_but_not_at_one_is_quiet():
    rng = np.random.default_rng(3)
    learning = 1.0 * np.exp(-np.arange(12) / 4) + 0.2 + rng.normal(0, 0.01, 12)
    assert fired(epochs({"loss": learning, "mse": learning, "val_loss": learning + 0.05})) == []
    # flat at 1.03 with a loss of unknown kind: 1.0 is only called within 0.2% then
    flat = 1.03 + rng.uniform(-0.001, 0.001, 10)
    assert fired(epochs({"loss": flat, "val_loss": flat + 0.002})) == []


# --- a task metric near zero --------------------------------------------------------------------------
MTL = {"TrainLoss": [82.4678, 37.8939, 34.7004, 34.7138, 34.9201, 34.7048],
       "ValLoss": [36.8141, 35.6861, 36.3520, 36.1546, 36.2183, 35.8548],
       "mIoU": [0.0019, 0.0013, 0.0012, 0.0010, 0.0003, 0.0008],
       "mAcc": [0.0384, 0.0386, 0.0372, 0.0384, 0.0385, 0.0390],
       "PCK@0.5": [0.8820, 0.8576, 0.8399, 0.8379, 0.8758, 0.8291],
       "AUC": [0.2916, 0.2827, 0.2779, 0.2805, 0.2886, 0.2719],
       "LR": [4e-5] * 6}


def test_a_multitask_segmentation_head_whose_miou_stays_at_zero():
    (f,) = fired(epochs(MTL))
    assert f.evidence["signature"] == "metric-near-zero" and f.evidence["tag"] == "mIoU"
    assert f.evidence["max"] == pytest.approx(0.0019) and f.evidence["points"] == 6


def test_a_metric_rising_from_zero_or_exactly_zero_or_in_percent_is_not_near_zero():
    run = real("tfev-25")  # YOLOv5: mAP_0.5 0.0008, 0.0009, 0.002, 0.0046, ... 0.81
    first = run.truncated(5 / 150)
    assert len(first.series("metrics/mAP_0.5")) == 5 and first.series("metrics/mAP_0.5").values.max() < 0.025
    assert fired(first) == [] and fired(run) == []
    rng = np.random.default_rng(5)
    loss = 3.0 * np.exp(-np.arange(8) / 3) + 1 + rng.normal(0, 0.02, 8)
    rising = {"train_loss": loss, "val/mAP50": [0.0004, 0.0007, 0.0011, 0.0018, 0.0032, 0.0051, 0.0074, 0.0093]}
    assert fired(epochs(rising)) == []
    placeholder = {"train_loss": loss, "val/mIoU": np.linspace(0.2, 0.6, 8), "val/APs": np.zeros(8)}
    assert fired(epochs(placeholder)) == []
    percent = {"train_loss": loss, "val/mIoU": [0.8, 0.9, 0.7, 0.95, 0.85, 0.9, 0.88, 0.91]}  # of 100: unknown
    assert fired(epochs(percent)) == []


def test_a_detector_whose_map_is_still_zero_while_its_box_loss_falls_is_not_stuck_yet():
    """Watched live, a YOLOv5 run 25% in: mAP_0.5 has not left zero in 8 evaluations (it reaches
    0.83 at epoch 15 of 30) while the box loss falls every epoch; the summed loss alone wobbles.
    The same mAP beside losses that stopped falling is the stuck head of the multi-task run."""
    m_ap = [0.0022, 0.0004, 0.0005, 0.0005, 0.0005, 0.0005, 0.0004, 0.0003]
    box = [0.121, 0.110, 0.0944, 0.0898, 0.0875, 0.0834, 0.0828, 0.0821]
    total = [0.135, 0.127, 0.113, 0.109, 0.106, 0.103, 0.103, 0.0999]
    learning = {"metrics/mAP_0.5": m_ap, "train/box_loss": box, "train/loss": total,
                "train/obj_loss": [0.0146, 0.0167, 0.0188, 0.0194, 0.0186, 0.0194, 0.0201, 0.0179]}
    assert fired(epochs(learning)) == []
    flat = dict(learning, **{"train/box_loss": [0.121, 0.101, 0.0950, 0.0952, 0.0949, 0.0951, 0.0950, 0.0951],
                             "train/loss": [0.135, 0.115, 0.1100, 0.1102, 0.1101, 0.1099, 0.1100, 0.1101]})
    (f,) = fired(epochs(flat))
    assert f.evidence["signature"] == "metric-near-zero" and f.evidence["tag"] == "metrics/mAP_0.5"


# --- the majority class ------------------------------------------------------------------------------
def hf_binary(acc, prec, rec, loss_eval, config=None):
    evals = 43.0 * np.arange(1, len(acc) + 1)
    prec, rec = np.asarray(prec, float), np.asarray(rec, float)
    f1 = np.divide(2 * prec * rec, prec + rec, out=np.zeros_like(prec), where=prec + rec > 0)
    steps = 5.0 * np.arange(1, 26)
    rng = np.random.default_rng(9)
    train = 0.69 - 0.003 * np.arange(25) + rng.normal(0, 0.02, 25)
    return with_steps({"loss": (steps, train), "learning_rate": (steps, 1e-5 * (1 - steps / 645)),
                       "eval_accuracy": (evals, acc), "eval_precision": (evals, prec),
                       "eval_recall": (evals, rec), "eval_loss": (evals, loss_eval),
                       "eval_f1": (evals, f1)},
                      config or {"per_device_train_batch_size": 1, "learning_rate": 1e-5})


def test_a_binary_classifier_that_answers_the_majority_class():
    run = hf_binary([0.6056338, 0.6056338, 0.6197183], [0.6056338, 0.6119403, 0.6311475],
                    [1.0, 0.9534884, 0.8953488], [0.6676, 0.6604, 0.6354])
    (f,) = fired(run)
    assert f.evidence["signature"] == "majority-class" and f.evidence["tag"] == "eval_accuracy"
    assert f.evidence["majority_share"] == pytest.approx(0.6056, abs=1e-4)
    assert f.evidence["one_class_steps"] == [43.0]


def test_all_negative_predictions_give_the_majority_share_too():
    run = hf_binary([0.71, 0.71, 0.72, 0.71], [0.0, 0.0, 0.52, 0.0], [0.0, 0.0, 0.03, 0.0],
                    [0.61, 0.60, 0.60, 0.61])
    (f,) = fired(run)
    assert f.evidence["signature"] == "majority-class" and f.evidence["majority_share"] == pytest.approx(0.71)


def test_a_classifier_that_starts_at_the_majority_class_and_learns_is_quiet():
    run = hf_binary([0.6056, 0.71, 0.78, 0.83, 0.85], [0.6056, 0.70, 0.79, 0.84, 0.86],
                    [1.0, 0.93, 0.86, 0.88, 0.87], [0.67, 0.58, 0.49, 0.42, 0.40])
    assert fired(run) == []
    assert fired(real("hf-03")) == []  # a real binary classifier logging precision and recall: 0.89 -> 0.94


# --- chance: the evaluation carries it ---------------------------------------------------------------
def hf_lr_half():
    """A Hugging Face Trainer fine-tune at lr 0.5: six evaluations, training loss every 5 steps."""
    rng = np.random.default_rng(0)
    steps = 5.0 * np.arange(1, 25)
    train = [7.625, 2.095, 1.941, 1.832, 0.864, 1.817, 2.678, 1.211, 1.073, 0.930, 1.139, 1.046, 1.244, 1.178,
             0.870, 0.819, 0.690, 0.955, 0.957, 1.243, 1.009, 0.776, 0.744, 0.825]
    lr = 0.5 * (1 - steps / 120)
    evals = 20.0 * np.arange(1, 7)
    return with_steps({"loss": (steps, train), "learning_rate": (steps, lr), "grad_norm": (steps, rng.uniform(0.2, 4, 24)),
                       "eval_accuracy": (evals, [0.457, 0.457, 0.543, 0.543, 0.457, 0.543]),
                       "eval_loss": (evals, [0.6939, 1.3194, 0.7042, 0.6899, 1.5988, 0.7248])},
                      {"per_device_train_batch_size": 32, "output_dir": "out", "learning_rate": 0.5,
                       "model_name_or_path": "tiny-bert", "optim": "adamw_torch"})


def test_an_hf_fine_tune_at_lr_half_sits_at_chance_in_its_evaluations():
    run = hf_lr_half()
    assert abs(np.median(run.series("loss").values) - math.log(2)) > 0.15 * math.log(2)  # not the train loss
    (f,) = fired(run)
    assert f.evidence["signature"] == "chance" and f.evidence["loss_tag"] == "eval_loss"
    assert f.evidence["classes"] == 2 and f.fixes == ["lower-lr"]


def test_a_lightning_run_at_lr_40_whose_loss_blew_up_and_settled_above_chance():
    rng = np.random.default_rng(40)
    steps = np.arange(4, 304, 5, dtype=float)
    loss = np.concatenate([[2.3, 41.0, 812.0, 5168.0, 2210.0, 640.0], 10.4 + rng.normal(0, 0.8, steps.size - 6)])
    evals = np.arange(37, 304, 38, dtype=float)
    run = with_steps({"train_loss_step": (steps, np.abs(loss)), "lr-SGD": (steps, np.full(steps.size, 40.0)),
                      "val_acc": (evals, 0.09 + rng.uniform(0, 0.02, evals.size)),
                      "val_loss": (evals, 10.4 + rng.normal(0, 0.5, evals.size)),
                      "epoch": (evals, np.arange(evals.size, dtype=float))},
                     {"optimizer": "sgd", "learning_rate": 40.0, "momentum": 0.9})
    (f,) = fired(run)
    assert f.evidence["signature"] == "chance" and f.evidence["loss_min"] >= 0.85 * f.evidence["chance_loss"]
    assert "never went below the chance level" in f.message and f.fixes == ["lower-lr"]


def test_a_slow_start_is_not_chance_even_when_the_accuracy_ends_near_one_half():
    # an emotion CNN (seven classes, none in the config): val accuracy flat at ~0.21 for three epochs,
    # then climbing to 0.54 while both losses fall slowly; the median accuracy 0.44 reads as K = 2,
    # and the accuracy far below 1/2 at the start says that K is not the task's
    acc = [0.229, 0.211, 0.207, 0.287, 0.339, 0.442, 0.472, 0.506, 0.469, 0.532, 0.536]
    train = [1.941, 1.929, 1.893, 1.854, 1.809, 1.737, 1.627, 1.555, 1.489, 1.445, 1.395]
    val = [1.880, 1.884, 1.855, 1.755, 1.677, 1.482, 1.388, 1.313, 1.389, 1.234, 1.210]
    run = epochs({"Train Loss": train, "Val Loss": val, "Val Acc": acc, "Train Acc": np.asarray(acc) - 0.03})
    assert fired(run) == []


def test_a_segmentation_run_with_map_near_one_half_is_not_a_binary_classifier_at_chance():
    # Ultralytics YOLO11-seg: box loss ~0.75, mask mAP50 0.3 -> 0.52 -> 0.37; mAP is no accuracy
    rng = np.random.default_rng(75)
    n = 35
    m_map = np.concatenate([np.linspace(0.30, 0.52, 12), np.linspace(0.52, 0.37, n - 12)]) + rng.normal(0, 0.01, n)
    run = epochs({"train/box_loss": np.linspace(0.95, 0.62, n) + rng.normal(0, 0.01, n),
                  "train/seg_loss": np.linspace(1.9, 1.1, n) + rng.normal(0, 0.02, n),
                  "val/box_loss": np.linspace(0.9, 0.8, n) + rng.normal(0, 0.01, n),
                  "metrics/mAP50(B)": m_map + 0.02, "metrics/mAP50(M)": m_map,
                  "metrics/precision(B)": 0.6 + rng.normal(0, 0.02, n), "metrics/recall(B)": 0.89 + rng.normal(0, 0.01, n)})
    assert fired(run) == []


# --- a blown-up loss ---------------------------------------------------------------------------------
def test_a_val_loss_in_the_tens_of_millions_that_does_not_come_down():
    vals = [7930013286400.0, 638743488.0, 70471672.0, 59919968.0, 55250116.0, 72382712.0, 26574748.0,
            68784016.0, 20740904.0, 34560012.0]
    (f,) = fired(epochs({"val_loss": vals, "epoch": np.arange(10.0)}, first=24, every=25))
    assert f.evidence["signature"] == "blown-up" and f.evidence["min_second_half"] == pytest.approx(20740904.0)


def test_a_regression_on_raw_prices_with_a_loss_in_the_billions_is_quiet():
    rng = np.random.default_rng(11)
    n = 30
    mse = (4e10 * np.exp(-np.arange(n) / 5) + 2e9) * (1 + rng.normal(0, 0.05, n))
    assert fired(epochs({"train_loss": mse, "val_loss": mse * 1.1})) == []
    # converged: flat in its second half, within its noise
    flat = 2e9 * (1 + rng.normal(0, 0.05, n))
    flat[:5] = [4e10, 1.5e10, 6e9, 3e9, 2.2e9]
    assert fired(epochs({"train_loss": flat, "val_loss": flat * 1.1})) == []


@pytest.mark.parametrize("kind", sorted(synthetic.HEALTHY))
def test_the_new_signatures_are_quiet_on_noisy_healthy_runs(kind):
    for seed in range(2):
        assert fired(synthetic.healthy(kind, seed)) == []


# --- lr-miscaled on the same run: the schedule's peak is the config's lr ----------------------------
def test_lr_miscaled_takes_the_configs_lr_when_the_schedule_was_first_logged_after_it_began():
    from trainfix.fixes.patch import apply_patch
    from trainfix.fixes.recommend import make_recipe

    run = hf_lr_half()  # linear decay from 0.5: the first logged lr is 0.479
    cls = load("lr-miscaled")
    (f,) = [f for f in cls().check(run, cls.Params()) if isinstance(f, Finding)]
    assert f.evidence["effective_lr"] == 0.5 and f.evidence["logged_peak_lr"] < 0.5
    assert f.evidence["effective_lr_from"].startswith("optimizer lr in the config")
    patch = make_recipe("lower-lr").plan(dict(run.config), f)
    new = apply_patch(dict(run.config), patch, trainfix=False).tree
    assert 1e-6 <= new["learning_rate"] <= 3e-4  # lands inside the fine-tuning range, not 3% above it


def test_lr_miscaled_keeps_the_logged_peak_when_the_config_lr_is_far_from_it():
    run = hf_lr_half()
    run.config["learning_rate"] = 5.0  # the logged 0.479 is not a schedule of 5.0 sampled late
    cls = load("lr-miscaled")
    (f,) = [f for f in cls().check(run, cls.Params()) if isinstance(f, Finding)]
    assert f.evidence["effective_lr"] == pytest.approx(0.5 * (1 - 5 / 120))


def test_a_training_accuracy_that_rises_means_something_was_learned():
    # validation at chance while the training accuracy climbs 0.28 -> 0.86 and both losses rise from
    # 2.5: a run that fits its training data and fails elsewhere, not one that never learned
    rng = np.random.default_rng(28)
    n = 28
    run = epochs({"train/loss": np.linspace(2.53, 4.91, n), "val/loss": np.linspace(2.46, 4.89, n),
                  "train/acc": 0.87 - 0.59 * np.exp(-np.arange(n) / 4), "val/acc": 0.1 + rng.normal(0, 0.01, n)},
                 {"model": {"num_classes": 10}})
    assert fired(run) == []
    del_train = epochs({"train/loss": np.linspace(2.53, 4.91, n), "val/acc": 0.1 + rng.normal(0, 0.01, n)},
                       {"model": {"num_classes": 10}})
    (f,) = fired(del_train)  # without it, the accuracy at chance and the loss above ln 10 say so
    assert f.evidence["signature"] == "chance"


def test_four_points_at_ln_4_to_seven_digits_are_a_uniform_prediction():
    # a text log restarted several times: the last segment holds four iterations of 1.3862946
    (f,) = fired(epochs({"train_loss": [1.3862946, 1.3862946, 1.3862946, 1.38629472]}, first=0))
    assert f.evidence["signature"] == "constant-outputs" and f.evidence["constant_loss"] == pytest.approx(math.log(4))
    # four points 0.1% from ln 4, or falling through it, are too few to say so
    assert fired(epochs({"train_loss": [1.3877, 1.3879, 1.3876, 1.3878]})) == []
    assert fired(epochs({"train_loss": [1.52, 1.43, 1.39, 1.31]})) == []
