"""JSON logs: our metrics.jsonl (both shapes), detectron2, mmdetection, DETR log.txt and Hugging
Face trainer_state.json, in the shapes those tools write."""

from __future__ import annotations

import json
import math

import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify


def _lines(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_metrics_jsonl_long_form(tmp_path):
    _lines(tmp_path / "metrics.jsonl", [
        {"step": s, "tag": "train/loss_step", "value": 1.0 / (s + 1), "wall_time": 1700000000.0 + s} for s in range(5)
    ] + [{"step": 4, "tag": "val/acc", "value": 0.75, "wall_time": 1700000004.5}])
    run = read_run(tmp_path)
    assert run.series("train/loss_step").steps.tolist() == [0, 1, 2, 3, 4]
    assert run.series("val/acc").values.tolist() == [0.75]
    assert run.scalars["wall_time"].min() == 1700000000.0
    assert run.roles.single["train_loss_step"].how == "canonical name"


def test_metrics_jsonl_wide_form_as_the_trainer_writes(tmp_path):
    _lines(tmp_path / "metrics.jsonl", [
        {"step": 10, "epoch": 0, "wall_time": 1.0, "train/loss_step": 0.9, "lr": 0.001},
        {"step": 20, "epoch": 0, "wall_time": 2.0, "train/loss_step": 0.8, "lr": 0.001, "grad_norm": 1.5},
        {"step": 20, "epoch": 0, "wall_time": 2.5, "train/loss": 0.85, "val/loss": 0.9, "val/acc": 0.6},
        {"step": 30, "epoch": 1, "wall_time": 3.0, "train/loss_step": float("nan"), "lr": 0.0005},
    ])
    run = read_run(tmp_path)
    assert set(run.tags) == {"epoch", "train/loss_step", "lr", "grad_norm", "train/loss", "val/loss", "val/acc"}
    s = run.series("train/loss_step")
    assert s.steps.tolist() == [10, 20, 30] and math.isnan(s.values[-1])
    assert run.series("epoch").values.tolist() == [0, 0, 1]  # one value per step (last wins)
    assert {r: run.roles.tag(r) for r in ("train_loss", "val_acc", "lr", "grad_norm")} == {
        "train_loss": "train/loss", "val_acc": "val/acc", "lr": "lr", "grad_norm": "grad_norm"}


def test_truncated_last_line_and_corrupt_line(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": \n{"step": 3, "loss": 0.5}\n{"step": 4, "lo')
    run = read_run(tmp_path)
    assert run.series("loss").steps.tolist() == [1, 3]
    assert run.inputs["corrupt_records"] == 1
    assert run.inputs["truncated"] == ["metrics.jsonl"]


def test_resumed_jsonl_appended_later_segment_wins(tmp_path):
    rows = [{"step": s, "train/loss": 1.0} for s in range(0, 50, 10)]
    rows += [{"step": s, "train/loss": 2.0} for s in range(20, 70, 10)]
    _lines(tmp_path / "metrics.jsonl", rows)
    run = read_run(tmp_path)
    s = run.series("train/loss")
    assert s.steps.tolist() == [0, 10, 20, 30, 40, 50, 60]
    assert s.values.tolist() == [1.0, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    assert run.inputs["restarts"] == [
        {"source": "metrics.jsonl", "step": 20, "from_step": 40, "tags": ["train/loss"]}]


def test_detectron2_metrics_json(tmp_path):
    _lines(tmp_path / "metrics.json", [
        {"data_time": 0.02, "eta_seconds": 100.0, "fast_rcnn/cls_accuracy": 0.5, "iteration": 19, "loss_box_reg": 0.5,
         "loss_cls": 1.9, "loss_rpn_cls": 0.3, "loss_rpn_loc": 0.04, "lr": 2e-06, "time": 2.2, "total_loss": 2.7},
        {"iteration": 39, "loss_box_reg": 0.4, "loss_cls": 1.2, "loss_rpn_cls": 0.2, "loss_rpn_loc": 0.03, "lr": 4e-06,
         "total_loss": 1.9},
        {"bbox/AP": 12.5, "bbox/AP50": 30.1, "iteration": 39},
    ])
    assert classify(tmp_path / "metrics.json") == "jsonl"
    run = read_run(tmp_path)
    assert run.series("total_loss").steps.tolist() == [19, 39]
    assert run.roles.tag("train_loss") == "total_loss"
    assert run.roles.group("loss_terms") == {"box_reg": "loss_box_reg", "cls": "loss_cls",
                                             "rpn_cls": "loss_rpn_cls", "rpn_loc": "loss_rpn_loc"}
    assert run.roles.tag("val_metric") == "bbox/AP"


def test_mmdetection_log_json_rebuilds_global_steps(tmp_path):
    _lines(tmp_path / "20240101_000000.log.json", [
        {"env_info": "sys.platform: linux", "config": "model = dict()", "seed": 0},
        {"mode": "train", "epoch": 1, "iter": 50, "lr": 0.02, "memory": 3000, "loss_cls": 1.0, "loss_bbox": 0.5, "loss": 1.5},
        {"mode": "train", "epoch": 1, "iter": 100, "lr": 0.02, "memory": 3000, "loss_cls": 0.8, "loss_bbox": 0.4, "loss": 1.2},
        {"mode": "val", "epoch": 1, "iter": 500, "lr": 0.02, "bbox_mAP": 0.2, "bbox_mAP_50": 0.4},
        {"mode": "train", "epoch": 2, "iter": 50, "lr": 0.02, "memory": 3100, "loss_cls": 0.7, "loss_bbox": 0.3, "loss": 1.0},
        {"mode": "train", "epoch": 2, "iter": 100, "lr": 0.02, "memory": 3100, "loss_cls": 0.6, "loss_bbox": 0.3, "loss": 0.9},
        {"mode": "val", "epoch": 2, "iter": 500, "lr": 0.02, "bbox_mAP": 0.3, "bbox_mAP_50": 0.5},
    ])
    run = read_run(tmp_path)
    assert run.series("loss").steps.tolist() == [50, 100, 150, 200]
    assert run.series("val/bbox_mAP").steps.tolist() == [100, 200]
    assert run.inputs["restarts"] == []
    assert run.roles.tag("val_metric") == "val/bbox_mAP"
    assert run.roles.tag("memory") == "memory"
    assert "seed" not in run.tags


def test_detr_log_txt_one_object_per_epoch(tmp_path):
    rows = [{"train_lr": 1e-4, "train_class_error": 40.0 - e, "train_loss": 18.0 - e, "train_loss_ce": 1.0,
             "train_loss_ce_unscaled": 1.0, "train_loss_bbox": 0.7, "train_loss_bbox_unscaled": 0.14,
             "test_loss": 17.0 - e, "test_coco_eval_bbox": [0.1 * e] * 12, "epoch": e, "n_parameters": 41000000}
            for e in range(3)]
    _lines(tmp_path / "log.txt", rows)
    assert classify(tmp_path / "log.txt") == "jsonl"
    run = read_run(tmp_path)
    assert run.series("train_loss").steps.tolist() == [0, 1, 2]
    assert "test_coco_eval_bbox/0" in run.tags
    assert run.roles.tag("val_loss") == "test_loss"
    assert run.roles.group("loss_terms") == {"ce": "train_loss_ce", "bbox": "train_loss_bbox"}
    assert run.roles.group("loss_terms_raw") == {"ce": "train_loss_ce_unscaled", "bbox": "train_loss_bbox_unscaled"}


def test_hf_trainer_state_mixed_entries(tmp_path):
    state = {
        "best_metric": 0.8, "epoch": 2.0, "global_step": 300, "train_batch_size": 16,
        "log_history": [
            {"epoch": 0.33, "grad_norm": 3.0, "learning_rate": 5e-05, "loss": 2.0, "step": 100},
            {"epoch": 0.67, "grad_norm": 2.5, "learning_rate": 4e-05, "loss": 1.5, "step": 200},
            {"epoch": 1.0, "eval_accuracy": 0.7, "eval_loss": 1.4, "eval_runtime": 3.2, "step": 300},
            {"epoch": 1.0, "predict_loss": 1.3},
            {"epoch": 1.0, "step": 300, "total_flos": 1e15, "train_loss": 1.75, "train_runtime": 99.0},
        ],
    }
    (tmp_path / "trainer_state.json").write_text(json.dumps(state, indent=2))
    run = read_run(tmp_path)
    assert run.roles.tag("train_loss") == "loss"  # the per-step loss, not the one-point summary
    assert run.roles.tag("val_acc") == "eval_accuracy"
    assert run.roles.tag("val_loss") == "eval_loss"
    assert run.roles.tag("lr") == "learning_rate"
    assert run.series("predict_loss").steps.tolist() == [300]
    assert run.config["trainer_state"]["train_batch_size"] == 16
    assert "eval_runtime" not in run.roles.group("val_metrics").values()


def _by_tag(table):
    out = {}
    for i, tag in enumerate(table.tags):
        sel = table.codes == i
        # repr: NaN equals NaN, and 1.0 vs 1 or -0.0 vs 0.0 would still differ
        out[tag] = (table.steps[sel].tolist(), [repr(v) for v in table.values[sel].tolist()],
                    [repr(v) for v in table.wall_times[sel].tolist()])
    return out


_SAMPLES = {
    "wide": '{"step": 1, "epoch": 0, "wall_time": 5.0, "train/loss": 1.5, "lr": 0.1}\n'
            '{"step": 2, "epoch": 0, "train/loss": 1.25}\n\n'
            '{"step": 2, "epoch": 0, "val/acc": 0.5, "train/loss": 1.0}\n',
    "fractional": '{"epoch": 0.5, "loss": 2}\n{"epoch": 1.0, "loss": 1}\n{"loss": 0.5}\n',
    "big-int-step": '{"global_step": 12345678901234, "loss": 1}\n{"global_step": 12345678901235, "loss": 2}\n',
    "mixed": '{"step": 1, "loss": 1.0, "name": "x"}\n{"step": 2, "loss": 0.5, "ok": true}\n',
    "bad-line": '{"step": 1, "loss": 1.0}\nnot json\n{"step": 2, "loss": 0.5}\n',
    "nbsp": '\u00a0{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 0.5}\n',
}


@pytest.mark.parametrize("name", sorted(_SAMPLES))
def test_columnar_path_and_line_by_line_path_agree(tmp_path, name):
    from trainfix.diagnostics.ingest.jsonlog import read_jsonl

    f = tmp_path / "metrics.jsonl"
    f.write_text(_SAMPLES[name], encoding="utf-8")
    fast, careful = read_jsonl(f, "m"), read_jsonl(f, "m", careful_only=True)
    assert _by_tag(fast) == _by_tag(careful)
    assert (fast.notes, fast.corrupt_records, fast.truncated) == (careful.notes, careful.corrupt_records, careful.truncated)


def test_columnar_paths_agree_on_the_real_logs():
    from pathlib import Path

    from trainfix.diagnostics.ingest.jsonlog import read_jsonl, read_trainer_state

    root = Path(__file__).parent / "data" / "real-logs"
    jsonl = sorted(root.rglob("*.jsonl")) + sorted(root.rglob("log.txt"))
    states = sorted(root.rglob("trainer_state.json"))
    assert jsonl and states
    for f in jsonl:
        assert _by_tag(read_jsonl(f, "x")) == _by_tag(read_jsonl(f, "x", careful_only=True)), f
    for f in states:
        (a, ca), (b, cb) = read_trainer_state(f, "x"), read_trainer_state(f, "x", careful_only=True)
        assert _by_tag(a) == _by_tag(b) and ca == cb, f
