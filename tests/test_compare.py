"""`trainfix compare`: findings resolved / remaining / new and key metrics side by side."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app
from trainfix.diagnostics.compare import run_metrics, verdict
from trainfix.diagnostics.ingest import read_run


def write_run(path, val_acc, step_loss, steps_per_epoch=20):
    path.mkdir(parents=True)
    lines = []
    step = 0
    for epoch, acc in enumerate(val_acc):
        for i in range(steps_per_epoch):
            step += 1
            lines.append({"step": step, "epoch": epoch, "train/loss_step": float(step_loss(step))})
        lines.append({"step": step, "epoch": epoch, "train/loss": float(step_loss(step)),
                      "val/acc": float(acc), "val/loss": float(1.0 - acc)})
    (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    n = 30
    swings = [0.86, 0.07, 0.64, 0.2, 0.81, 0.12, 0.7, 0.3, 0.85, 0.1]
    a_acc = [swings[i % len(swings)] for i in range(n)]
    b_acc = [min(0.95, 0.5 + 0.45 * (1 - np.exp(-i / 5))) + rng.normal(0, 0.003) for i in range(n)]
    a = write_run(tmp_path / "before", a_acc, lambda s: 1.0 + 0.5 * np.sin(s) + rng.uniform(0, 2))
    b = write_run(tmp_path / "after", b_acc, lambda s: 2.0 * np.exp(-s / 200) + 0.1 + rng.uniform(0, 0.02))
    return a, b


def test_run_metrics_measure_what_the_stories_are_judged_by(runs):
    a, b = runs
    ma, mb = run_metrics(read_run(a)), run_metrics(read_run(b))
    assert ma["final val/acc"] == pytest.approx(a_final(a))
    assert ma["best val/acc"] == pytest.approx(0.86)
    assert ma["largest val drop"] > 0.5 and mb["largest val drop"] < 0.05
    assert ma["val std"] > 5 * mb["val std"]
    assert mb["step loss max/min"] < ma["step loss max/min"]


def a_final(path):
    return [json.loads(x) for x in path.joinpath("metrics.jsonl").read_text().splitlines() if "val/acc" in x][-1]["val/acc"]


def test_verdict_knows_the_direction_of_each_metric():
    assert verdict("final val/acc", 0.5, 0.8) == "better"
    assert verdict("val std", 0.2, 0.01) == "better"
    assert verdict("per-class acc spread", 0.1, 0.5) == "worse"
    assert verdict("final val/acc", 0.8, 0.8005) == "same"
    assert verdict("peak lr", 1e-5, 5e-4) == ""
    assert verdict("final val/acc", None, 0.8) == ""
    # a frozen run (std ~0) is not "more stable" than a learning one wobbling by under a point
    assert verdict("val std", 1.8e-9, 0.0073) == "same"
    assert verdict("largest val drop", 0.0, 0.06) == "worse"


def test_compare_json_lists_resolved_findings_and_metrics(runs):
    a, b = runs
    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["schema"] == 1
    assert "accuracy-oscillation" in [f["detector"] for f in data["resolved"]]
    assert "accuracy-oscillation" not in [f["detector"] for f in data["remaining"] + data["new"]]
    rows = {m["metric"]: m for m in data["metrics"]}
    assert rows["val std"]["verdict"] == "better" and rows["largest val drop"]["verdict"] == "better"


def test_compare_rich_output_and_bad_input(runs, tmp_path):
    a, b = runs
    res = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert res.exit_code == 0, res.output
    assert "resolved" in res.stdout and "largest val drop" in res.stdout
    res = CliRunner().invoke(app, ["compare", str(a), str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such run directory" in res.stderr
    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--format", "xml"])
    assert res.exit_code == 2


def test_a_metric_still_climbing_is_not_called_unstable(tmp_path):
    rising = [0.5 + 0.02 * i for i in range(20)]
    m = run_metrics(read_run(write_run(tmp_path / "r", rising, lambda s: 1.0)))
    assert m["val std"] < 1e-6 and m["largest val drop"] == 0.0


def test_a_check_that_could_not_run_after_is_not_evaluated_not_resolved(runs, tmp_path):
    a, _ = runs
    # the after-run logs only a validation accuracy: oscillation can still be judged, the loss
    # plateau cannot (no training loss)
    short = tmp_path / "short"
    short.mkdir()
    (short / "metrics.jsonl").write_text("".join(
        json.dumps({"step": i, "epoch": i, "val/acc": 0.5 + 0.01 * i}) + "\n" for i in range(30)))
    data = json.loads(CliRunner().invoke(app, ["compare", str(a), str(short), "--format", "json"]).stdout)
    before = {f["detector"] for f in json.loads(CliRunner().invoke(
        app, ["diagnose", str(a), "--format", "json"]).stdout)["runs"][0]["findings"]}
    assert {"loss-plateau", "accuracy-oscillation"} <= before
    assert [f["detector"] for f in data["resolved"]] == ["accuracy-oscillation"]
    ne = {f["detector"]: f for f in data["not_evaluated"]}
    assert ne["loss-plateau"]["side"] == "after" and ne["loss-plateau"]["reason"]
    res = CliRunner().invoke(app, ["compare", str(a), str(short)])
    assert "not evaluated" in res.stdout


def test_different_tags_never_share_a_row_and_metric_overrides_apply(tmp_path):
    a = write_run(tmp_path / "a", [0.5 + 0.01 * i for i in range(12)], lambda s: 1.0)
    b = tmp_path / "b"
    b.mkdir()
    (b / "metrics.jsonl").write_text("".join(json.dumps(
        {"step": i, "epoch": i, "eval/loss": 0.4, "eval/acc": 0.6 + 0.01 * i, "Loss/total": 1.0}) + "\n"
        for i in range(12)))
    data = json.loads(CliRunner().invoke(app, ["compare", str(a), str(b), "--format", "json"]).stdout)
    loss_rows = [r for r in data["metrics"] if r["metric"] == "final val loss"]
    assert [(r["tag"], r["a"] is None, r["b"] is None) for r in loss_rows] == [("val/loss", False, True),
                                                                              ("eval/loss", True, False)]
    assert all(r["verdict"] == "" for r in loss_rows)
    res = CliRunner().invoke(app, ["compare", str(b), str(b), "--format", "json", "--metric", "val_loss=Loss/total"])
    assert res.exit_code == 0, res.output
    rows = [r for r in json.loads(res.stdout)["metrics"] if r["metric"] == "final val loss"]
    assert [(r["tag"], r["a"]) for r in rows] == [("Loss/total", 1.0)]
    res = CliRunner().invoke(app, ["compare", str(a), str(b), "--metric", "nonsense=x"])
    assert res.exit_code == 2 and "unknown role" in res.stderr


def test_multi_task_accuracies_are_tasks_not_classes(tmp_path):
    p = tmp_path / "mt"
    p.mkdir()
    rows = []
    for i in range(10):
        rows.append({"step": i, "epoch": i, "val/acc/cls": 0.5 + 0.03 * i, "val/acc/seg": 0.3 + 0.02 * i,
                     "uw/weight/cls": 1.0, "uw/weight/seg": 0.9})
    (p / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = run_metrics(read_run(p))
    assert "per-task acc spread" in m and "worst task acc" in m
    assert not any("class" in k for k in m)
