"""End to end on a real trainer run: clean checkpoints stay quiet and give update-ratio evidence;
the same weights saved DataParallel-style (seed 004) are diagnosed with key counts, repaired by
`trainfix apply --fix checkpoint-keys`, proven to load strictly, and restore the trained weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import torch
nn = torch.nn

from typer.testing import CliRunner  # noqa: E402

from trainfix.cli.app import app  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_trainer_run_then_seed_004_checkpoint_diagnosed_repaired_and_loaded(tmp_path):
    from trainfix.diagnostics.checkpoints import update_ratio_evidence
    from trainfix.diagnostics.ingest import read_run
    from trainfix.trainers.build import model_from_config
    from trainfix.trainers.robust_load import load_state_dict_robust

    runner = CliRunner()
    run_dir = tmp_path / "run"
    res = runner.invoke(app, ["train", "--config", str(REPO / "examples" / "digits-quick.yaml"), "--out", str(run_dir),
                              "training.epochs=3", "logging.tensorboard=false"])
    assert res.exit_code == 0, res.output

    # 1. the trainer's own checkpoints: clean keys, quiet detector, healthy update ratio
    res = runner.invoke(app, ["diagnose", str(run_dir), "--format", "json", "--select", "checkpoint-key-mismatch"])
    doc = json.loads(res.stdout)
    assert doc["runs"][0]["findings"] == [], res.stdout
    evidence = update_ratio_evidence(read_run(run_dir))
    assert evidence is not None and evidence["verdict"] == "healthy", evidence

    # 2. seed 004: the best weights saved from a DataParallel wrapper, next to the run's config
    trained = torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True)["model"]
    bad_dir = tmp_path / "seed004"
    (bad_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(run_dir / "config.yaml", bad_dir / "config.yaml")
    shutil.copy(run_dir / "metrics.jsonl", bad_dir / "metrics.jsonl")
    bad = bad_dir / "checkpoints" / "best.pt"
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in trained.items()}}, bad)
    res = runner.invoke(app, ["diagnose", str(bad_dir), "--format", "json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    (finding,) = [f for f in doc["runs"][0]["findings"] if f["detector"] == "checkpoint-key-mismatch"]
    n = len(trained)
    assert f"{n} of {n} keys start with 'module.'" in finding["message"]
    assert finding["evidence"]["fill_share"] == 0.0 and finding["evidence"]["fill_share_after_strip"] == 1.0
    assert finding["fixes"][0] == "checkpoint-keys"

    # 3. repair with the model from the config: a new file, proven strict, the input untouched
    before = bad.read_bytes()
    res = runner.invoke(app, ["apply", str(bad), "--fix", "checkpoint-keys", "--model", str(bad_dir / "config.yaml")])
    assert res.exit_code == 0, res.output
    assert "strict=True" in res.stdout
    assert bad.read_bytes() == before
    fixed = bad_dir / "checkpoints" / "best.fixed.pt"
    model = model_from_config(bad_dir / "config.yaml")
    report = load_state_dict_robust(model, fixed)
    assert report.loads_strict and report.fill_share == 1.0
    assert all(torch.equal(model.state_dict()[k], v) for k, v in trained.items())
