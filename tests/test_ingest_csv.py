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


TRICKY = (
    "step,loss,acc,model,flag,mixed,lr, padded \n"
    "0,0.5,1,resnet,True,1,1e-3, 1.5 \n"
    "1,nan,2,resnet,False,x,inf,2.5\n"
    "2,,3,resnet,True,3,-Infinity,\n"
    "3,0.25,,resnet,False,4,1e-4, 3.5\n"
    "step,loss,acc,model,flag,mixed,lr,padded\n"
    "4,0.125,5,resnet,True,5,,4.5\n"
)


def _columns(table):
    out = {}
    for i, tag in enumerate(table.tags):
        sel = table.codes == i
        out[tag] = (table.steps[sel].tolist(), table.values[sel].tolist())
    return out


@pytest.mark.parametrize("name", ["tricky", "real"])
def test_parser_path_and_careful_path_agree(tmp_path, name):
    from pathlib import Path

    import numpy as np

    from trainfix.diagnostics.ingest.csvlog import read_csv

    if name == "tricky":
        (tmp_path / "metrics.csv").write_text(TRICKY)
        files = [tmp_path / "metrics.csv"]
    else:
        files = sorted((Path(__file__).parent / "data" / "real-logs").rglob("*.csv"))
        assert files
    for f in files:
        fast, careful = read_csv(f, f.name), read_csv(f, f.name, careful_only=True)
        assert fast.tags == careful.tags, f
        a, b = _columns(fast), _columns(careful)
        for tag in a:
            assert a[tag][0] == b[tag][0], (f, tag)
            np.testing.assert_array_equal(np.asarray(a[tag][1]), np.asarray(b[tag][1]), err_msg=f"{f}: {tag}")
    if name == "tricky":
        got = _columns(fast)
        assert got["loss"][0] == [0, 1, 3, 4] and math.isnan(got["loss"][1][1])
        assert got["lr"][1] == [1e-3, math.inf, -math.inf, 1e-4]
        assert got["padded"][1] == [1.5, 2.5, 3.5, 4.5] and "model" not in got and "flag" not in got
        assert got["mixed"][0] == [0, 2, 3, 4]


def test_a_column_that_turns_to_text_late_in_a_long_file(tmp_path):
    # pandas parses long files in chunks: "loss" is numbers in the first chunks and meets a
    # repeated header (a resumed Keras run) at the end: the column holds numbers and text.
    from trainfix.diagnostics.ingest.csvlog import read_csv

    n = 270_000  # past the parser's first chunk of 262,144 rows
    f = tmp_path / "log.csv"
    f.write_text("epoch,loss\n" + "".join(f"{i},{i * 0.001!r}\n" for i in range(n)) + "epoch,loss\n7,0.5\n")
    steps, vals = _columns(read_csv(f, "log.csv"))["loss"]
    assert steps == [*range(n), 7] and vals == [i * 0.001 for i in range(n)] + [0.5]


@pytest.mark.parametrize("ragged", [False, True])
def test_a_wide_csv_reads_as_the_parser_reads_it(tmp_path, monkeypatch, ragged):
    # 3,000 columns go the csv-module way (memory linear in the cells); the points are the parser's
    import numpy as np

    from trainfix.diagnostics.ingest import csvlog

    names = ["step"] + [f"m{i}" for i in range(2_999)] + [" pad ", " pad ", "", "name"]
    rows = []
    for s in range(4):
        cells = [str(10 * s)] + [("" if (i + s) % 7 == 0 else f"{(i + 1) / (s + 1):.6g}") for i in range(2_999)]
        rows.append(cells + [" 3 ", "Infinity" if s else "nan", "1", f"run{s}"])
    if ragged:
        rows[2] = rows[2][:-1]  # the parser's rules for a short row: the file goes to the parser
    p = tmp_path / "metrics.csv"
    p.write_text(",".join(names) + "\n" + "\n\n".join(",".join(r) for r in rows) + "\n")
    wide = csvlog.read_csv(p, p.name)
    monkeypatch.setattr(csvlog, "WIDE_COLUMNS", 10**9)
    parsed = csvlog.read_csv(p, p.name)
    assert wide.tags == parsed.tags and "pad .1" in wide.tags and "name" not in wide.tags
    for a, b in ((wide.codes, parsed.codes), (wide.steps, parsed.steps), (wide.values, parsed.values)):
        np.testing.assert_array_equal(a, b)
    assert len(wide) > 4 * 2_999 * 0.8
