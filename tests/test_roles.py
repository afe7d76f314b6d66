"""Metric roles: the names people log, mapped to what detectors ask for, and how."""

from __future__ import annotations

import pytest

from trainfix.diagnostics import roles_vocab as rv
from trainfix.diagnostics.roles import direction_of, resolve_roles
from trainfix.errors import UsageError


@pytest.mark.parametrize(
    "tag",
    ["val/acc", "val_acc", "Val Acc", "eval_accuracy", "accuracy/val", "epoch_val_accuracy", "val_accuracy",
     "Val Acc (TB)", "validation/epoch_accuracy", "val_acc_epoch", "valid/acc"],
)
def test_val_acc_spellings(tag):
    rm = resolve_roles(["train_loss", tag, "lr"], None, None)
    assert rm.tag(rv.VAL_ACC) == tag
    assert rm.direction(rv.VAL_ACC) == "max"
    assert rm.tag(rv.VAL_METRIC) == tag


@pytest.mark.parametrize("tag", ["val/loss", "val_loss", "valid/loss", "eval_loss", "Val Loss", "loss/val",
                                 "validation/epoch_loss"])
def test_val_loss_spellings(tag):
    assert resolve_roles([tag, "loss"], None, None).tag(rv.VAL_LOSS) == tag


@pytest.mark.parametrize("tag", ["train/loss", "train_loss", "loss", "Train Loss", "train/epoch_loss", "total_loss"])
def test_train_loss_spellings(tag):
    assert resolve_roles([tag, "val_loss"], None, None).tag(rv.TRAIN_LOSS) == tag


@pytest.mark.parametrize("tag", ["lr", "learning_rate", "lr-Adam", "lr/pg0", "train/learning_rate", "LR"])
def test_lr_spellings(tag):
    assert resolve_roles([tag, "loss"], None, None).tag(rv.LR) == tag


def test_other_single_roles():
    tags = ["grad_norm", "mem/allocated_mb", "train/loss_step", "train/acc", "sparsity/active_fraction",
            "mil/temperature"]
    rm = resolve_roles(tags, None, None)
    assert {r: rm.tag(r) for r in (rv.GRAD_NORM, rv.MEMORY, rv.TRAIN_LOSS_STEP, rv.TRAIN_ACC,
                                   rv.SPARSITY_ACTIVE_FRACTION, rv.MIL_TEMPERATURE)} == {
        rv.GRAD_NORM: "grad_norm", rv.MEMORY: "mem/allocated_mb", rv.TRAIN_LOSS_STEP: "train/loss_step",
        rv.TRAIN_ACC: "train/acc", rv.SPARSITY_ACTIVE_FRACTION: "sparsity/active_fraction",
        rv.MIL_TEMPERATURE: "mil/temperature"}
    assert all(rm.single[r].how == "canonical name" for r in rm.single if r != rv.VAL_METRIC)
    assert resolve_roles(["mem", "loss"], None, None).tag(rv.MEMORY) == "mem"


def test_every_resolution_says_how():
    rm = resolve_roles(["Val Acc", "val/acc/cat", "loss/ce", "uw/weight/seg", "lr"], None, None)
    for res in list(rm.single.values()) + [r for g in rm.groups.values() for r in g.values()]:
        assert res.how and (res.how.startswith(("pattern ", "canonical", "val_acc", "best", "validation", "override", "[tool")))


def test_val_metric_direction_and_fallbacks():
    assert resolve_roles(["metrics/mAP50(B)", "metrics/mAP50-95(B)", "train/box_loss"], None, None).single[
        rv.VAL_METRIC].tag == "metrics/mAP50(B)"
    rm = resolve_roles(["val_auc", "val_f1", "val_loss"], None, None)
    assert rm.tag(rv.VAL_METRIC) == "val_auc" and rm.direction(rv.VAL_METRIC) == "max"
    rm = resolve_roles(["val_f1", "val_loss"], None, None)
    assert rm.tag(rv.VAL_METRIC) == "val_f1"
    rm = resolve_roles(["eval_wer", "eval_loss", "loss"], None, None)
    assert rm.tag(rv.VAL_METRIC) == "eval_wer" and rm.direction(rv.VAL_METRIC) == "min"
    rm = resolve_roles(["val_loss", "train_loss"], None, None)
    assert rm.tag(rv.VAL_METRIC) == "val_loss" and rm.direction(rv.VAL_METRIC) == "min"
    assert rv.VAL_METRIC not in resolve_roles(["loss"], None, None).single


@pytest.mark.parametrize("tag,direction", [
    ("val_acc", "max"), ("val/auc", "max"), ("val_f1", "max"), ("metrics/mAP50(B)", "max"), ("val/precision", "max"),
    ("val/recall", "max"), ("val_iou", "max"), ("val_dice", "max"), ("val_loss", "min"), ("val/error", "min"),
    ("perplexity", "min"), ("eval_wer", "min"), ("eval_cer", "min"), ("epoch", None)])
def test_direction_of(tag, direction):
    assert direction_of(tag) == direction


def test_group_roles():
    tags = ["train/loss", "loss/ce", "loss/sparsity", "loss/sparsity/raw", "loss/task/seg", "loss/task/depth",
            "uw/weight/seg", "uw/weight/depth", "uw/log_var/seg", "uw/log_var/depth", "val/acc", "val/acc/cat",
            "val/acc/dog", "val/auc", "attn/entropy", "attn/gradcam_energy"]
    rm = resolve_roles(tags, None, None)
    assert rm.group(rv.LOSS_TERMS) == {"ce": "loss/ce", "sparsity": "loss/sparsity"}
    assert rm.group(rv.LOSS_TERMS_RAW) == {"sparsity": "loss/sparsity/raw"}
    assert rm.group(rv.TASK_LOSSES) == {"seg": "loss/task/seg", "depth": "loss/task/depth"}
    assert rm.group(rv.UW_WEIGHTS) == {"seg": "uw/weight/seg", "depth": "uw/weight/depth"}
    assert rm.group(rv.UW_LOG_VARS) == {"seg": "uw/log_var/seg", "depth": "uw/log_var/depth"}
    assert rm.group(rv.CLASS_METRICS) == {"cat": "val/acc/cat", "dog": "val/acc/dog"}
    assert rm.group(rv.ATTN_METRICS) == {"entropy": "attn/entropy", "gradcam_energy": "attn/gradcam_energy"}
    vm = rm.groups[rv.VAL_METRICS]
    assert vm["auc"].tag == "val/auc" and vm["auc"].direction == "max"
    assert vm["acc"].tag == "val/acc"
    assert rm.tag(rv.VAL_ACC) == "val/acc"


def test_foreign_group_spellings():
    rm = resolve_roles(["loss", "loss_ce", "loss_bbox", "sparsity_loss", "consistency_loss", "w1", "w2",
                        "log_var_0", "log_var_1", "sigma_seg", "val_loss"], None, None)
    assert rm.tag(rv.TRAIN_LOSS) == "loss"
    assert rm.group(rv.LOSS_TERMS) == {"ce": "loss_ce", "bbox": "loss_bbox", "sparsity": "sparsity_loss",
                                       "consistency": "consistency_loss"}
    assert rm.group(rv.UW_WEIGHTS) == {"1": "w1", "2": "w2", "seg": "sigma_seg"}
    assert rm.group(rv.UW_LOG_VARS) == {"0": "log_var_0", "1": "log_var_1"}


def test_one_point_summary_loses_to_a_series():
    rm = resolve_roles(["loss", "train_loss", "eval_loss"], None, None, counts={"loss": 50, "train_loss": 1, "eval_loss": 5})
    assert rm.tag(rv.TRAIN_LOSS) == "loss"
    rm = resolve_roles(["loss", "train_loss"], None, None, counts={"loss": 50, "train_loss": 40})
    assert rm.tag(rv.TRAIN_LOSS) == "train_loss"


def test_overrides_win_and_are_validated():
    tags = ["val_acc", "Metrics/Val Accuracy", "score"]
    rm = resolve_roles(tags, {"val_acc": "Metrics/Val Accuracy"}, {"val_acc": "score"})
    assert rm.single[rv.VAL_ACC].tag == "Metrics/Val Accuracy"
    assert rm.single[rv.VAL_ACC].how == "override --metric"
    rm = resolve_roles(tags, None, {"val_acc": "score", "loss_terms.aux": "val_acc"})
    assert rm.single[rv.VAL_ACC].how == "[tool.trainfix.metrics]"
    assert rm.groups[rv.LOSS_TERMS]["aux"].tag == "val_acc"
    with pytest.raises(UsageError) as info:
        resolve_roles(tags, {"val_accuracy": "score"}, None)
    assert "did you mean 'val_acc'" in info.value.hint
    with pytest.raises(UsageError) as info:
        resolve_roles(tags, {"val_acc": "Metrics/Val Acc"}, None)
    assert "Metrics/Val Accuracy" in info.value.hint


def test_no_false_matches():
    rm = resolve_roles(["epoch", "eval_runtime", "data_time", "n_parameters", "eta_seconds"], None, None)
    assert rm.single == {} and rm.groups == {}
