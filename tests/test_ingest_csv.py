"""CSV logs in the exact shapes Lightning, Keras and Ultralytics write them."""

from __future__ import annotations

import math

import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify


def test_lightning_csvlogger_sparse_interleaved_rows(tmp_path):
    # CSVLogger: one row per log call, empty cells for metrics not logged in that row.
    (tmp_path / "metrics.csv").write_text(
        "epoch,lr-Adam,step,train_loss_step,val_loss,val_acc,train_loss_epoch\n"
        ",0.001,49,,,,\n"
        "0,,49,0.9,,,\n"
        "0,,99,0.7,,,\n"
        "0,,99,,0.8,0.55,\n"
        "0,,99,,,,0.75\n"
        ",0.0005,149,,,,\n"
        "1,,149,nan,,,\n"
        "1,,199,0.5,,,\n"
        "1,,199,,0.6,0.7,\n"
        "1,,199,,,,0.5\n"
    )
    run = read_run(tmp_path)
    assert run.series("train_loss_step").steps.tolist() == [49, 99, 149, 199]
    vals = run.series("train_loss_step").values.tolist()
    assert vals[:2] == [0.9, 0.7] and math.isnan(vals[2]) and vals[3] == 0.5  # "nan" kept as evidence
    assert run.series("val_acc").steps.tolist() == [99, 199]
    assert run.series("lr-Adam").values.tolist() == [0.001, 0.0005]
    assert run.series("epoch").values.tolist() == [0, 0, 1, 1]  # one per step; absent on the lr rows
    assert run.roles.tag("lr") == "lr-Adam"
    assert run.roles.tag("train_loss_step") == "train_loss_step"
    assert run.roles.tag("val_acc") == "val_acc"
    assert run.inputs["formats"] == {"csv": 1}


def test_keras_csvlogger_training_log_is_sniffed(tmp_path):
    log = tmp_path / "training.log"  # CSVLogger's default file name
    log.write_text(
        "epoch,accuracy,loss,val_accuracy,val_loss\r\n"
        "0,0.5,1.2,0.45,1.3\r\n1,0.6,1.0,0.55,1.1\r\n2,0.7,0.8,0.52,1.2\r\n"
    )
    assert classify(log) == "csv"
    run = read_run(tmp_path)
    assert run.roles.tag("val_acc") == "val_accuracy"
    assert run.roles.tag("train_loss") == "loss"
    assert run.roles.tag("train_acc") == "accuracy"
    assert run.series("val_accuracy").steps.tolist() == [0, 1, 2]


def test_keras_csvlogger_append_after_resume_is_a_restart(tmp_path):
    (tmp_path / "log.csv").write_text(
        "epoch,loss,val_accuracy\n0,1.0,0.1\n1,0.9,0.2\n2,0.8,0.3\n3,0.7,0.4\n"
        "epoch,loss,val_accuracy\n2,0.5,0.6\n3,0.4,0.7\n4,0.3,0.8\n"
    )
    run = read_run(tmp_path)
    s = run.series("loss")
    assert s.steps.tolist() == [0, 1, 2, 3, 4]
    assert s.values.tolist() == [1.0, 0.9, 0.5, 0.4, 0.3]
    assert run.inputs["restarts"][0]["step"] == 2


def test_ultralytics_results_csv_padded_headers(tmp_path):
    (tmp_path / "results.csv").write_text(
        "                  epoch,         train/box_loss,         train/cls_loss,   metrics/precision(B),"
        "      metrics/mAP50(B),   metrics/mAP50-95(B),           val/box_loss,                 lr/pg0\n"
        "                      1,                 1.2345,                 2.3456,                0.51234,"
        "                0.4,                0.2,                 1.5,              0.0033\n"
        "                      2,                 1.1,                 2.1,                0.6,"
        "                0.5,                0.25,                 1.4,              0.0030\n"
    )
    run = read_run(tmp_path)
    assert "metrics/mAP50(B)" in run.tags and "train/box_loss" in run.tags
    assert run.series("metrics/mAP50(B)").values.tolist() == [0.4, 0.5]
    assert run.roles.tag("val_metric") == "metrics/mAP50(B)"
    assert run.roles.direction("val_metric") == "max"
    assert run.roles.tag("val_loss") is None or run.roles.tag("val_loss") == "val/box_loss"
    assert run.roles.tag("lr") == "lr/pg0"


def test_generic_csv_without_step_column_uses_row_number_and_skips_text(tmp_path):
    (tmp_path / "history.csv").write_text("model,loss,note\nresnet,1.0,ok\nresnet,0.5,ok\nresnet,inf,diverged\n")
    run = read_run(tmp_path)
    assert run.tags == ["loss"]
    assert run.series("loss").steps.tolist() == [0, 1, 2]
    assert run.series("loss").values[2] == math.inf
    assert any("row number" in n for n in run.inputs["notes"])


@pytest.mark.parametrize("step_col", ["step", "global_step", "iteration"])
def test_generic_step_csv(tmp_path, step_col):
    (tmp_path / "m.csv").write_text(f"{step_col},train/loss,epoch\n10,2.0,0\n20,1.5,0\n30,1.0,1\n")
    run = read_run(tmp_path)
    assert run.series("train/loss").steps.tolist() == [10, 20, 30]
    assert run.roles.tag("train_loss") == "train/loss"
    assert run.roles.single["train_loss"].how == "canonical name"


def test_byte_order_mark_and_windows_line_ends(tmp_path):
    (tmp_path / "metrics.csv").write_bytes("\ufeffepoch,val_acc\r\n0,0.5\r\n1,0.6\r\n".encode("utf-8"))
    run = read_run(tmp_path)
    assert run.tags == ["val_acc"]
    assert run.series("val_acc").steps.tolist() == [0, 1]
