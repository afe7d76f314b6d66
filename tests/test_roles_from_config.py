"""Roles inferred from the config and the data, not only from names: the seed stories as their
authors logged them (their tag names, their config keys, their config outside the run dir)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app
from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.roles import resolve_roles


def write_jsonl(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run_dir


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("tag", ["LearningRate", "lr-Adam", "lr-SGD", "Misc/lr", "learning_rate",
                                 "lr-AdamW/pg1", "train/lr_0", "optimizer/lr_group_0", "Learning Rate"])
def test_learning_rate_tags_as_people_log_them(tag):
    assert resolve_roles(["train/loss", tag]).tag("lr") == tag


def seed_003_run(tmp_path):
    """seed 003 as its author logged it: Adam at 5e-4 x 16 / 512 = 1.56e-5 (tag LearningRate),
    val acc ~0.50 for 15 epochs, uncertainty weights train/w1..w3 all ~0.08; the YAML sits outside
    the run dir with the author's own keys."""
    rng = np.random.default_rng(0)
    rows = [{"epoch": e, "step": (e + 1) * 100, "LearningRate": 1.5625e-05,
             "train/loss": 2.30 - 0.002 * e + rng.normal(0, 0.004), "val/acc": 0.50 + rng.normal(0, 0.004),
             **{f"train/w{i}": 0.08 + rng.normal(0, 1e-4) for i in (1, 2, 3)},
             **{f"train/{t}_loss": 2.3 + k + rng.normal(0, 0.01) for k, t in enumerate(("cls", "glca", "pwca"))}}
            for e in range(15)]
    run = write_jsonl(tmp_path / "run", rows)
    cfg = tmp_path / "configs" / "fgvc.yaml"
    cfg.parent.mkdir()
    cfg.write_text("optimizer: adamw\nlearning_rate: 5.0e-4\nbatch_size: 4\ngradient_accumulation_steps: 4\n"
                   "scaled_lr: 1.5625e-05\nwarmup_epochs: 0\nloss_weighting: uncertainty\n")
    return run, cfg


def test_diagnose_reads_the_users_training_config_outside_the_run_dir(tmp_path):
    run, cfg = seed_003_run(tmp_path)
    without = json.loads(invoke("diagnose", run, "--format", "json").stdout)
    assert "lr-miscaled" not in {f["detector"] for f in without["runs"][0]["findings"]}
    res = invoke("diagnose", run, "--train-config", cfg, "--format", "json")
    doc = json.loads(res.stdout)
    findings = {f["detector"]: f for f in doc["runs"][0]["findings"]}
    assert "lr-miscaled" in findings, res.stdout
    assert findings["lr-miscaled"]["evidence"]["effective_lr"] == pytest.approx(1.5625e-05)
    assert findings["lr-miscaled"]["evidence"]["global_batch"] == 16
    assert "uncertainty-weights-similar" in findings  # train/w1..w3 read as the task weights


def test_uncertainty_weights_recognised_from_the_config_and_their_sibling_tags(tmp_path):
    run, cfg = seed_003_run(tmp_path)
    r = read_run(run, train_config=cfg)
    weights = r.roles.groups["uw_weights"]
    assert sorted(res.tag for res in weights.values()) == ["train/w1", "train/w2", "train/w3"]
    assert "loss_weighting: uncertainty" in next(iter(weights.values())).how
    assert "uw_weights" not in read_run(run).roles.groups  # names alone do not say it


def test_metrics_shows_each_inference_and_why(tmp_path):
    run, cfg = seed_003_run(tmp_path)
    res = invoke("metrics", run, "--train-config", cfg)
    assert res.exit_code == 0, res.output
    assert "uw_weights[1] -> train/w1" in res.stdout and "loss_weighting: uncertainty" in res.stdout
    assert "fgvc.yaml" in res.stdout  # the config it read


def test_glob_override_on_the_command_line_and_in_settings(tmp_path):
    run, _ = seed_003_run(tmp_path)
    r = read_run(run, metric_overrides={"uw_weights": "train/w*"})
    assert {k: v.tag for k, v in r.roles.groups["uw_weights"].items()} == {
        "1": "train/w1", "2": "train/w2", "3": "train/w3"}
    (run / "trainfix.toml").write_text("[metrics]\nuw_weights = \"train/w*\"\n")
    res = invoke("metrics", run, "--format", "json")
    roles = json.loads(res.stdout)["runs"][0]["roles"]
    assert sorted(v["tag"] for v in roles["uw_weights"].values()) == ["train/w1", "train/w2", "train/w3"]
    bad = invoke("metrics", run, "--metric", "uw_weights=train/q*")
    assert bad.exit_code == 2 and "matches no tag" in bad.output


def test_a_raw_regulariser_is_weighed_with_its_weight_and_divisor_from_the_config(tmp_path):
    """seed 000 as logged: train/sparsity_loss flat at 5.05 next to lambda_sparsity: 0.001 and
    sparsity_scale: 1000; its share of the loss is 5.05 x 0.001 / 1000 over ~0.7."""
    rng = np.random.default_rng(3)
    rows = [{"epoch": e, "step": (e + 1) * 50, "train/loss": 0.7 * np.exp(-e / 20) + 0.2 + rng.normal(0, 0.005),
             "train/sparsity_loss": 5.05 + rng.normal(0, 0.002), "val/acc": 0.6 + 0.01 * e} for e in range(20)]
    run = write_jsonl(tmp_path / "run", rows)
    cfg = tmp_path / "train.yaml"
    cfg.write_text("lambda_sparsity: 0.001\nsparsity_scale: 1000\nlambda_consistency: 0.1\n")
    r = read_run(run, train_config=cfg)
    raw = r.roles.groups["loss_terms_raw"]["sparsity"]
    assert raw.tag == "train/sparsity_loss" and "above the total loss" in raw.how
    doc = json.loads(invoke("diagnose", run, "--train-config", cfg, "--format", "json").stdout)
    (f,) = [f for f in doc["runs"][0]["findings"] if f["detector"] == "sparsity-gradient-vanishing"]
    assert f["evidence"]["share_of_total"] == pytest.approx(5.05e-6 / 0.55, rel=0.5)


def test_the_old_config_option_is_refused_with_both_new_names(tmp_path):
    run, cfg = seed_003_run(tmp_path)
    res = invoke("diagnose", run, "--config", cfg)
    assert res.exit_code == 2
    assert "--train-config" in res.output and "--settings" in res.output
    settings = tmp_path / "trainfix.toml"
    settings.write_text("fail_on = \"info\"\n")
    assert invoke("check", run, "--settings", settings, "--train-config", cfg).exit_code == 1
    missing = invoke("diagnose", run, "--train-config", tmp_path / "nope.yaml")
    assert missing.exit_code == 2 and "no such file" in missing.output
