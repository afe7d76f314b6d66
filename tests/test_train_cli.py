"""`trainfix train` on the command line: validation, errors with exit 2, a small run."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from trainfix.cli.app import app

CONFIG = """
# small run for CLI tests
run: {name: cli, device: cpu}
data: {name: synthetic, num_classes: 3, num_samples: 120, dim: 6}
model: {name: mlp, hidden: [8]}
training: {epochs: 1, batch_size: 30}
logging: {progress: false}
"""


def test_validate_only(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--validate"])
    assert res.exit_code == 0 and "valid" in res.stdout


def test_invalid_config_lists_every_problem_and_exits_2(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "optimizer.lr=-1", "model.hiden=3"])
    assert res.exit_code == 2
    assert "error: invalid config: 2 problems" in res.stderr
    assert "optimizer.lr: must be > 0" in res.stderr and "did you mean 'hidden'" in res.stderr
    assert "Traceback" not in res.stderr


def test_missing_config_and_bad_device(tmp_path):
    res = CliRunner().invoke(app, ["train"])
    assert res.exit_code == 2 and "--config is required" in res.stderr
    res = CliRunner().invoke(app, ["train", "--config", str(tmp_path / "nope.yaml")])
    assert res.exit_code == 2 and "config file not found" in res.stderr
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--device", "tpu"])
    assert res.exit_code == 2


def test_train_writes_the_run_and_resume_reuses_its_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(out), "training.epochs=2"])
    assert res.exit_code == 0, res.stderr
    assert f"run dir: {out}" in res.stdout and "val/acc" in res.stdout
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["epoch"] == 1
    again = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(out)])
    assert again.exit_code == 2 and "already holds a run" in again.stderr
    resumed = CliRunner().invoke(app, ["train", "--out", str(out), "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
