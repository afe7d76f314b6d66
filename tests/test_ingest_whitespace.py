"""Whitespace tables: YOLOv5/YOLOv7 results.txt as the real repositories hold them (benchmarks/
real-logs, provenance in corpus.csv), and header tables; neither is mistaken for a stdout log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify
from trainfix.diagnostics.ingest.whitespace import looks_like_table, read_table
from trainfix.diagnostics.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "real-logs"
YOLO_RUNS = sorted(p.name for p in CORPUS.glob("yolo-*") if (p / "results.txt").is_file())


def _series(table, tag):
    code = table.tags.index(tag)
    keep = table.codes == code
    return table.steps[keep], table.values[keep]


def test_yolov5_results_txt_columns():
    # first row of Mushrooms_YOLOv5 runs/train/exp2/results.txt:
    #   0/99 1.86G 0.09831 0.09352 0 0.1918 24 416 0 0 0.005487 0.001083 0.09149 0.05837 0
    path = CORPUS / "yolo-030" / "results.txt"
    assert classify(path) == "table"
    t = read_table(path, "results.txt")
    assert t.fmt == "table"
    assert set(t.tags) == {"train/box_loss", "train/obj_loss", "train/cls_loss", "train/loss", "metrics/precision",
                           "metrics/recall", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95", "val/box_loss",
                           "val/obj_loss", "val/cls_loss", "mem/reserved_mb"}
    first = {tag: _series(t, tag)[1][0] for tag in t.tags}
    assert first["train/box_loss"] == pytest.approx(0.09831)
    assert first["train/loss"] == pytest.approx(0.1918)
    assert first["metrics/mAP_0.5"] == pytest.approx(0.005487)
    assert first["metrics/mAP_0.5:0.95"] == pytest.approx(0.001083)
    assert first["val/obj_loss"] == pytest.approx(0.05837)
    assert first["mem/reserved_mb"] == pytest.approx(1860.0)
    steps, _ = _series(t, "metrics/mAP_0.5")
    assert list(steps) == list(range(100))  # epochs 0/99 .. 99/99


@pytest.mark.parametrize("name", YOLO_RUNS)
def test_every_real_results_txt_is_read_as_a_yolo_table(name):
    run = read_run(CORPUS / name, settings=Settings())
    assert run.inputs["formats"] == {"table": 1}
    assert not run.inputs["skipped"]
    loss = run.scalars[run.scalars.tag == "train/loss"]
    epochs = {int(line.split()[0].split("/")[0]) for line in (CORPUS / name / "results.txt").read_text().splitlines()
              if line.strip()}
    assert loss.step.tolist() == sorted(epochs) and np.isfinite(loss.value).all()
    assert run.roles.tag("train_loss") == "train/loss"


def test_a_resumed_yolo_run_keeps_the_later_segment(tmp_path):
    rows = (CORPUS / "yolo-030" / "results.txt").read_text().splitlines()
    resumed = rows[:10] + rows[5:12]  # crashed after epoch 9, resumed from epoch 5
    path = tmp_path / "results.txt"
    path.write_text("\n".join(resumed) + "\n")
    run = read_run(path, settings=Settings())
    steps = run.scalars[run.scalars.tag == "train/loss"].step.tolist()
    assert steps == list(range(12))
    assert run.inputs["restarts"]


def test_a_header_table_with_tabs_and_spaces(tmp_path):
    path = tmp_path / "train_log.txt"
    path.write_text("epoch\ttrain_loss\tval_loss   val_acc\n"
                    "1\t0.91\t0.95   0.61\n2\t0.62\t0.70   0.72\n3\t0.48\t0.66   0.75\n")
    assert classify(path) == "table"
    t = read_table(path, path.name)
    steps, vals = _series(t, "val_acc")
    assert list(steps) == [1, 2, 3] and list(vals) == [0.61, 0.72, 0.75]
    assert "epoch" not in t.tags


@pytest.mark.parametrize("name", ["txt-26", "txt-28", "txt-29", "keras-14"])
def test_real_logs_of_other_shapes_are_not_tables(name):
    (path,) = [p for p in (CORPUS / name).iterdir() if p.is_file()]
    assert classify(path) != "table"
    assert not looks_like_table(path.read_bytes()[:4096])


def test_rows_that_do_not_fit_are_counted(tmp_path):
    rows = (CORPUS / "yolo-030" / "results.txt").read_text().splitlines()[:5]
    path = tmp_path / "results.txt"
    path.write_text("\n".join(rows[:3] + ["   3/99   garbage line"] + rows[3:]) + "\n")
    t = read_table(path, "results.txt")
    assert len(_series(t, "train/loss")[0]) == 5
    assert any("1 line(s)" in n for n in t.notes)


def test_nanogpt_step_name_value_lines():
    # build-nanogpt log.txt (AGNDM/build-nanogpt log_bigger/log.txt): "0 val 11.0864", "0 hella 0.2498", ...
    path = CORPUS / "txt-122" / "log.txt"
    assert classify(path) == "table"
    t = read_table(path, "log.txt")
    assert set(t.tags) == {"train", "val", "hella"}
    steps, vals = _series(t, "val")
    assert steps[0] == 0 and vals[0] == pytest.approx(11.0864)
    assert steps[1] == 250 and vals[1] == pytest.approx(6.0727)
    run = read_run(path.parent, settings=Settings())
    assert run.inputs["points"] == sum(1 for line in path.read_text().splitlines() if line.strip())
