"""`trainfix apply` on config files and run dirs: new file + diff, never in place, clear refusals."""

from __future__ import annotations

import json
import os
import sys

import pytest
import yaml
from typer.testing import CliRunner

from trainfix.cli.app import app

CONFIG = """\
# attention story, buggy
run: {name: t, seed: 0, device: cpu}
data: {name: digits, image_size: 8}
model: {name: attention-cnn}
loss:
  name: self-corrective-attention
  sparsity_kind: entropy
  sparsity_weight: 0.001   # lambda_sparsity
  sparsity_scale: 1000.0
optimizer: {name: adam, lr: 0.001}
training: {epochs: 4, batch_size: 32}
"""


def run(*args, cwd=None):
    runner = CliRunner()
    if cwd is not None:
        old = os.getcwd()
        os.chdir(cwd)
    try:
        return runner.invoke(app, [str(a) for a in args])
    finally:
        if cwd is not None:
            os.chdir(old)


@pytest.fixture
def config(tmp_path):
    p = tmp_path / "buggy.yaml"
    p.write_text(CONFIG)
    return p


def test_apply_writes_a_new_file_with_diff_and_provenance(config):
    res = run("apply", config, "--fix", "sparsity-l1")
    assert res.exit_code == 0, res.output
    out = config.with_name("buggy.fixed.yaml")
    assert out.exists() and config.read_text() == CONFIG
    assert "-  sparsity_kind: entropy" in res.stdout and "+  sparsity_kind: l1" in res.stdout
    new = yaml.safe_load(out.read_text())
    assert new["loss"]["sparsity_kind"] == "l1"
    assert new["applied_fixes"] == [{"id": "sparsity-l1", "finding": "manual", "trainfix_version": "0.1.0"}]
    assert out.read_text().startswith("# attention story, buggy\n")


def test_dry_run_writes_nothing(config):
    res = run("apply", config, "--fix", "grad-clip", "--dry-run")
    assert res.exit_code == 0 and "+  grad_clip: 1.0" in res.stdout
    assert "dry run" in res.stdout
    assert sorted(p.name for p in config.parent.iterdir()) == ["buggy.yaml"]


def test_applying_twice_changes_nothing_and_says_so(config):
    assert run("apply", config, "--fix", "lower-lr").exit_code == 0
    fixed = config.with_name("buggy.fixed.yaml")
    before = fixed.read_text()
    res = run("apply", fixed, "--fix", "lower-lr", "-o", config.parent / "again.yaml")
    assert res.exit_code == 0
    assert "already applied" in res.stdout and "no file written" in res.stdout
    assert not (config.parent / "again.yaml").exists() and fixed.read_text() == before


def test_output_option_accepts_a_directory(config, tmp_path):
    outdir = tmp_path / "out"
    outdir.mkdir()
    res = run("apply", config, "--fix", "label-smoothing", "-o", outdir)
    assert res.exit_code == 0, res.output
    assert (outdir / "buggy.fixed.yaml").exists()


def test_unknown_fix_suggests_the_closest(config):
    res = run("apply", config, "--fix", "sparsity-l2")
    assert res.exit_code == 2
    assert "did you mean 'sparsity-l1'" in res.stderr and "Traceback" not in res.output


def test_fix_that_does_not_apply_says_why(config):
    res = run("apply", config, "--fix", "uncertainty-reinit")
    assert res.exit_code == 2
    assert "does not apply" in res.stderr and "uncertainty" in res.stderr
    assert not config.with_name("buggy.fixed.yaml").exists()


def test_read_only_output_location(config, monkeypatch):
    def deny(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", deny)
    res = run("apply", config, "--fix", "grad-clip")
    assert res.exit_code == 2 and "permission denied" in res.stderr and "-o" in res.stderr


def test_missing_output_directory(config, tmp_path):
    res = run("apply", config, "--fix", "grad-clip", "-o", tmp_path / "nope" / "x.yaml")
    assert res.exit_code == 2 and "does not exist" in res.stderr


def test_run_dir_and_no_path_mean_its_config(tmp_path):
    rd = tmp_path / "run"
    rd.mkdir()
    (rd / "config.yaml").write_text(CONFIG)
    res = run("apply", "--fix", "grad-clip", cwd=rd)
    assert res.exit_code == 0, res.output
    # beside the run dir, not in it: the next diagnosis of the run must not read the patched copy
    assert (tmp_path / "run.config.fixed.yaml").exists() and not (rd / "config.fixed.yaml").exists()


def test_without_fix_and_without_logs_is_a_usage_error(config):
    res = run("apply", config)
    assert res.exit_code == 2 and "no --fix given" in res.stderr


def test_checkpoint_keys_on_a_config_points_at_checkpoints(config):
    res = run("apply", config, "--fix", "checkpoint-keys")
    assert res.exit_code == 2 and "repairs a checkpoint" in res.stderr


def test_invalid_result_is_refused_with_the_reasons(tmp_path):
    # a config the schema already rejects stays rejected: the patched result is refused, with why
    p = tmp_path / "c.yaml"
    p.write_text(CONFIG.replace("optimizer: {name: adam, lr: 0.001}", "optimizer: {name: adam, lr: 0.001, bogus: 1}"))
    res = run("apply", p, "--fix", "grad-clip")
    assert res.exit_code == 2
    assert "would make the config invalid" in res.stderr and "optimizer.bogus" in res.stderr


def test_foreign_json_is_edited_in_place_of_its_keys(tmp_path):
    p = tmp_path / "training_args.json"
    p.write_text(json.dumps({"output_dir": "o", "learning_rate": 5e-5, "per_device_train_batch_size": 8,
                             "label_smoothing_factor": 0.0}, indent=2))
    res = run("apply", p, "--fix", "label-smoothing")
    assert res.exit_code == 0, res.output
    assert "Hugging Face TrainingArguments" in res.stdout
    assert json.loads((tmp_path / "training_args.fixed.json").read_text())["label_smoothing_factor"] == 0.1


def test_relaunch_cmd_failure_shows_exit_code_and_tail_and_keeps_config(config, tmp_path):
    script = tmp_path / "train.py"
    script.write_text("import sys\nprint('reading', sys.argv[-1])\nfor i in range(30): print('line', i)\nsys.exit(3)\n")
    res = run("apply", config, "--fix", "grad-clip", "--relaunch-cmd", f"{sys.executable} {script} --config {{config}}")
    assert res.exit_code == 2
    assert "exit code 3" in res.stderr and "line 29" in res.stderr and "line 5\n" not in res.stderr
    assert "kept at" in res.stderr
    assert config.with_name("buggy.fixed.yaml").exists()


def test_relaunch_cmd_gets_the_patched_path(config, tmp_path):
    script = tmp_path / "train.py"
    marker = tmp_path / "seen.txt"
    script.write_text(f"import sys, pathlib\npathlib.Path({str(marker)!r}).write_text(open(sys.argv[-1]).read())\n")
    res = run("apply", config, "--fix", "grad-clip", "--relaunch-cmd", f"{sys.executable} {script} {{config}}")
    assert res.exit_code == 0, res.output
    assert "grad_clip: 1.0" in marker.read_text()


def test_relaunch_cmd_needs_the_placeholder(config):
    res = run("apply", config, "--fix", "grad-clip", "--relaunch-cmd", "python train.py")
    assert res.exit_code == 2 and "{config}" in res.stderr


def test_checkpoint_input_routes_to_the_artifact_repair(tmp_path):
    import torch
    model = torch.nn.Linear(3, 2)
    ckpt = tmp_path / "model.pt"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, ckpt)
    res = run("apply", ckpt, "--fix", "checkpoint-keys")
    assert res.exit_code == 0, res.output
    fixed = [p for p in tmp_path.iterdir() if p.name != "model.pt"]
    assert len(fixed) >= 1
    state = torch.load([p for p in fixed if p.suffix == ".pt"][0], weights_only=True)
    assert sorted(state) == ["bias", "weight"]
    res = run("apply", ckpt, "--fix", "lower-lr")
    assert res.exit_code == 2 and "checkpoint-keys" in res.stderr


def _oscillating_run(path, config_text):
    """A run dir whose validation accuracy swings (sparse training from epoch 0 in its config)."""
    path.mkdir()
    lines, step = [], 0
    swings = [0.86, 0.07, 0.64, 0.2, 0.81, 0.12, 0.7, 0.3, 0.85, 0.1]
    for epoch in range(30):
        for _ in range(10):
            step += 1
            lines.append({"step": step, "epoch": epoch, "train/loss_step": 1.0 + 0.1 * (step % 3)})
        lines.append({"step": step, "epoch": epoch, "train/loss": 1.0, "val/acc": swings[epoch % 10],
                      "val/loss": 1.5 - swings[epoch % 10], "sparsity/active_fraction": 0.1})
    (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (path / "config.yaml").write_text(config_text)
    return path


SPARSE_RUN_CONFIG = """\
run: {name: sparse, seed: 0, device: cpu}
data: {name: digits, image_size: 16}
model: {name: cnn}
optimizer: {name: adam, lr: 0.003}
training: {epochs: 30, batch_size: 64}
sparse: {enabled: true, active_fraction: 0.1, start_epoch: 0}
"""


def test_without_fix_the_diagnosis_recommends_and_lists_before_writing(tmp_path):
    rd = _oscillating_run(tmp_path / "run", SPARSE_RUN_CONFIG)
    res = run("apply", rd)
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "recommended fixes" in out and "accuracy-oscillation -> two-stage-sparse" in out
    assert out.index("recommended fixes") < out.index("wrote")
    fixed = yaml.safe_load((tmp_path / "run.config.fixed.yaml").read_text())
    assert [s["name"] for s in fixed["stages"]] == ["dense", "sparse"]
    assert fixed["applied_fixes"][0]["finding"] in ("accuracy-oscillation", "sparse-from-start")


@pytest.mark.slow
def test_relaunch_trains_the_patched_config_and_can_warm_start(tmp_path):
    from trainfix.trainers import train

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("run: {name: tiny, seed: 0, device: cpu}\n"
                   "data: {name: digits, image_size: 8}\n"
                   "model: {name: mlp}\n"
                   "optimizer: {name: adam, lr: 0.01}\n"
                   "training: {epochs: 2, batch_size: 128}\n"
                   "sparse: {enabled: true, active_fraction: 0.5}\n"
                   "logging: {every_n_steps: 5}\n")
    first = tmp_path / "first"
    train(str(cfg), out_dir=first)
    res = run("apply", first, "--fix", "lower-lr", "--relaunch")
    assert res.exit_code == 0, res.output
    new = tmp_path / "first-fixed"
    assert (new / "metrics.jsonl").exists()
    assert yaml.safe_load((new / "config.yaml").read_text())["optimizer"]["lr"] == pytest.approx(0.003)
    res = run("apply", first, "--fix", "grad-clip", "--relaunch", "--resume-from", first / "checkpoints" / "last.pt",
              "-o", tmp_path / "warm.yaml")
    assert res.exit_code == 0, res.output
    warm = tmp_path / "first-fixed-2" / "metrics.jsonl"
    assert warm.exists()

    def first_step_loss(path):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if "train/loss_step" in rec:
                return rec["train/loss_step"]

    def epochs_trained(path):
        return {json.loads(line).get("epoch") for line in path.read_text().splitlines()} - {None}

    # a warm start is a full new run (both epochs trained) that begins from the trained weights
    assert len(epochs_trained(warm)) == 2
    assert first_step_loss(warm) < 0.5 * first_step_loss(first / "metrics.jsonl")
    res = run("apply", first, "--fix", "two-stage-sparse", "--relaunch", "--resume-from", first / "checkpoints" / "last.pt",
              "-o", tmp_path / "stages.yaml")
    assert res.exit_code == 2 and "not safe with two-stage-sparse" in res.stderr  # no warm start for it
    assert not (tmp_path / "stages.yaml").exists() and not (tmp_path / "first-fixed-3").exists()


def test_advice_only_fix_writes_nothing_and_says_why(tmp_path):
    p = tmp_path / "args.yaml"
    p.write_text("lr: 0.001\nepochs: 10\n")
    res = run("apply", p, "--fix", "label-smoothing")
    assert res.exit_code == 0, res.output
    assert "advice:" in res.stdout and "label_smoothing=0.1" in res.stdout
    assert "nothing written" in res.stdout and not (tmp_path / "args.fixed.yaml").exists()
