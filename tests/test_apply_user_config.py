"""`trainfix apply` on the user's own config: found where diagnose finds it, edited in its own
kinds of values, written beside (never into) the run, never over an earlier output without
--force, stacking on a fixed config, relaunching the user's command and ending with the comparison."""

from __future__ import annotations

import json
import re
import sys

import pytest
import yaml
from typer.testing import CliRunner

from trainfix.cli.app import app
from trainfix.diagnostics.fix_command import fix_command
from trainfix.diagnostics.finding import Finding
from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.report import RunReport
from trainfix.fixes.foreign import find_config
from trainfix.fixes.recommend import make_recipe


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def write_jsonl_run(path, acc=(0.1, 0.3, 0.5, 0.6, 0.7, 0.75, 0.8, 0.82, 0.85, 0.86)):
    path.mkdir(parents=True, exist_ok=True)
    lines = [{"step": (i + 1) * 10, "epoch": i, "train/loss": 2.0 - 0.15 * i, "val/acc": a, "val/loss": 2.1 - 0.15 * i}
             for i, a in enumerate(acc)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


USER_YAML = """\
# my experiment
lr: 0.5            # tuned on batch 512
optimizer: adamw
batch_size: 32
label_smoothing: 0.0
"""


# --------------------------------------------------------------------------- where the config is


def test_training_args_json_is_the_config_beside_the_pickled_bin(tmp_path):
    rd = write_jsonl_run(tmp_path / "hf")
    (rd / "training_args.json").write_text(json.dumps({"learning_rate": 0.5, "per_device_train_batch_size": 8,
                                                       "output_dir": "o"}, indent=2))
    (rd / "training_args.bin").write_bytes(b"\x80\x04not a checkpoint, a pickle of TrainingArguments")
    r = read_run(rd)
    assert r.inputs["configs"] == ["training_args.json"] and r.config["learning_rate"] == 0.5
    assert r.inputs["checkpoints"] == []  # never loaded, not even weights-only
    assert find_config(rd).name == "training_args.json"


def test_apply_run_dir_finds_lightnings_versioned_hparams(tmp_path):
    rd = tmp_path / "run"
    v0 = rd / "lightning_logs" / "version_0"
    v0.mkdir(parents=True)
    (v0 / "metrics.csv").write_text("epoch,step,train_loss,val_acc\n" + "".join(
        f"{e},{e * 10},{2 - 0.1 * e},{0.1 + 0.05 * e}\n" for e in range(10)))
    (v0 / "hparams.yaml").write_text("learning_rate: 3.0\noptimizer: sgd\n")
    assert read_run(rd).inputs["configs"] == ["lightning_logs/version_0/hparams.yaml"]
    res = run("apply", rd, "--fix", "lower-lr")
    assert res.exit_code == 0, res.output
    out = tmp_path / "run.hparams.fixed.yaml"
    assert yaml.safe_load(out.read_text())["learning_rate"] == pytest.approx(0.0707, rel=0.01)  # SGD's typical lr
    (rd / "lightning_logs" / "version_1").mkdir()
    (rd / "lightning_logs" / "version_1" / "hparams.yaml").write_text("learning_rate: 1.0\n")
    res = run("apply", rd, "--fix", "lower-lr", "--dry-run")
    assert res.exit_code == 2 and "--train-config" in res.stderr  # two versions: say which file to pass


def test_a_stray_results_json_is_not_a_config(tmp_path):
    rd = write_jsonl_run(tmp_path / "run")
    (rd / "results.json").write_text(json.dumps({"accuracy": 0.9, "lr": 0.1}))
    assert read_run(rd).inputs["configs"] == []
    res = run("apply", rd, "--fix", "lower-lr")
    assert res.exit_code == 2 and "no config file" in res.stderr and "--train-config" in res.stderr


# --------------------------------------------------------------------------- outputs


def test_outputs_never_become_inputs_of_their_run(tmp_path):
    rd = write_jsonl_run(tmp_path / "run")
    (rd / "hparams.yaml").write_text("lr: 0.5\noptimizer: adamw\n")
    assert run("apply", rd, "--fix", "lower-lr").exit_code == 0
    assert not list(rd.glob("*.fixed*")) and (tmp_path / "run.hparams.fixed.yaml").exists()
    assert read_run(rd).config["lr"] == 0.5
    res = run("apply", rd, "--fix", "grad-clip", "-o", rd / "mine.yaml")
    assert res.exit_code == 2 and "inside the run directory" in res.stderr
    # an old patched copy left in a run dir is not read as the run's config either
    (rd / "hparams.fixed.yaml").write_text("lr: 0.003\n")
    r = read_run(rd)
    assert r.config["lr"] == 0.5 and r.inputs["configs"] == ["hparams.yaml"]


def test_an_earlier_output_needs_force_and_fixes_stack_on_a_fixed_config(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(USER_YAML)
    assert run("apply", cfg, "--fix", "lower-lr").exit_code == 0
    first = tmp_path / "train.fixed.yaml"
    before = first.read_text()
    res = run("apply", cfg, "--fix", "grad-clip")
    assert res.exit_code == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert first.read_text() == before
    # stacking: apply to the fixed file; both fixes and both provenance entries in the new one
    res = run("apply", first, "--fix", "label-smoothing")
    assert res.exit_code == 0, res.output
    second = tmp_path / "train.fixed-2.yaml"
    new = yaml.safe_load(second.read_text())
    assert new["lr"] == pytest.approx(5.48e-4, rel=0.01) and new["label_smoothing"] == pytest.approx(0.1)
    ids = [json.loads(line.split("trainfix-applied:", 1)[1])["id"] for line in second.read_text().splitlines()
           if "trainfix-applied:" in line]
    assert ids == ["lower-lr", "label-smoothing"] and first.read_text() == before
    res = run("apply", cfg, "--fix", "lower-lr", "--force")
    assert res.exit_code == 0, res.output


def test_train_config_is_edited_and_its_comments_kept_or_flagged(tmp_path):
    rd = write_jsonl_run(tmp_path / "run")
    cfg = tmp_path / "configs" / "exp.yaml"
    cfg.parent.mkdir()
    cfg.write_text(USER_YAML)
    res = run("apply", rd, "--train-config", cfg, "--fix", "lower-lr")
    assert res.exit_code == 0, res.output
    out = tmp_path / "configs" / "exp.fixed.yaml"
    text = out.read_text()
    assert text.startswith("# my experiment\n")
    assert re.search(r"^lr: 0\.000548 +# was 0\.5: tuned on batch 512$", text, re.M)  # it described the old value
    assert cfg.read_text() == USER_YAML
    res = run("apply", cfg, "--train-config", cfg, "--fix", "lower-lr")
    assert res.exit_code == 2 and "run directory" in res.stderr


# --------------------------------------------------------------------------- values a config can hold


def test_a_number_stays_a_number_in_a_foreign_config():
    patch = make_recipe("uncertainty-reinit").plan({"loss_weighting": "uncertainty", "log_var_init": 0.0,
                                                    "log_var_lr": 1e-4})
    edits = {e.dotted: e.new for e in patch.edits}
    assert "log_var_init" not in edits and edits["log_var_lr"] == 0.01
    assert any("log_var_init holds 0.0" in a and "randn" in a for a in patch.advice)
    words = make_recipe("uncertainty-reinit").plan({"log_var_init": "zeros"})
    assert {e.dotted: e.new for e in words.edits}["log_var_init"] == "random"


@pytest.mark.parametrize("config, expected", [
    ({"learning_rate": 0.5, "per_device_train_batch_size": 32}, 5.48e-4),  # HF args: AdamW by default
    ({"lr": 0.5, "optimizer": "adam"}, 5.48e-4),
    ({"lr": 30.0, "optimizer": "sgd"}, 0.0707),
    ({"lr": 0.001, "optimizer": "adam"}, 0.0003),  # inside the range: the usual 0.3x
])
def test_lower_lr_lands_in_the_optimizers_range(config, expected):
    patch = make_recipe("lower-lr").plan(config, None)
    assert patch.edits[0].new == pytest.approx(expected, rel=0.01)


# --------------------------------------------------------------------------- relaunch


def test_relaunch_cmd_gets_config_and_out_and_ends_with_the_comparison(tmp_path):
    before = write_jsonl_run(tmp_path / "base", acc=[0.1] * 10)
    (before / "args.yaml").write_text(USER_YAML)
    script = tmp_path / "train.py"
    script.write_text(
        "import json, pathlib, sys, yaml\n"
        "cfg, out = yaml.safe_load(open(sys.argv[1])), pathlib.Path(sys.argv[2])\n"
        "out.mkdir(parents=True)\n"
        "rows = [{'step': (i + 1) * 10, 'epoch': i, 'train/loss': 2 - 0.15 * i, 'val/acc': 0.1 + 0.08 * i,"
        " 'val/loss': 2.1 - 0.15 * i, 'lr': cfg['lr']} for i in range(10)]\n"
        "(out / 'metrics.jsonl').write_text(''.join(json.dumps(r) + '\\n' for r in rows))\n")
    res = run("apply", before, "--fix", "lower-lr", "--relaunch-cmd", f"{sys.executable} {script} {{config}} {{out}}")
    assert res.exit_code == 0, res.output
    new = tmp_path / "base-fixed"
    assert (new / "metrics.jsonl").exists()
    lr = json.loads((new / "metrics.jsonl").read_text().splitlines()[0])["lr"]
    assert 1e-4 <= lr <= 3e-3  # the patched config reached the command: an lr inside AdamW's range
    assert "before" in res.stdout and "after" in res.stdout and "metrics" in res.stdout


# --------------------------------------------------------------------------- printed commands


def _report(tmp_path, configs, evidence=None, fixes=("lower-lr",)):
    f = Finding(detector="loss-divergence", severity="error", message="m", evidence=evidence or {}, fixes=list(fixes))
    return RunReport(path=tmp_path / "my run", inputs={"configs": configs}), f


def test_fix_command_names_the_file_to_pass_and_the_checkpoint(tmp_path):
    rr, f = _report(tmp_path, [])
    cmd = fix_command(rr, f)
    assert "--train-config" in cmd and f"'{tmp_path / 'my run'}'" in cmd
    rr, f = _report(tmp_path, ["lightning_logs/version_0/hparams.yaml"])
    assert fix_command(rr, f) == f"trainfix apply '{tmp_path / 'my run'}' --fix lower-lr"
    rr, f = _report(tmp_path, ["a.yaml", "b.yaml"])
    assert "--train-config" in fix_command(rr, f) and "a.yaml" in fix_command(rr, f)
    ckpts = [str(tmp_path / "ckpt" / f"epoch={i}.ckpt") for i in range(7)]
    rr, f = _report(tmp_path, [], {"checkpoint_paths": ckpts}, ("checkpoint-keys",))
    cmd = fix_command(rr, f)
    assert cmd.startswith(f"trainfix apply {ckpts[0]} --fix checkpoint-keys") and "other 6" in cmd


def test_checkpoint_keys_on_a_run_dir_names_its_checkpoint(tmp_path):
    rd = write_jsonl_run(tmp_path / "run")
    (rd / "checkpoints").mkdir()
    for name in ("best.pt", "last.pt"):
        (rd / "checkpoints" / name).write_bytes(b"x")
    res = run("apply", rd, "--fix", "checkpoint-keys")
    assert res.exit_code == 2 and "checkpoints/best.pt --fix checkpoint-keys" in res.stderr and "other 1" in res.stderr


def test_train_config_feeds_the_diagnosis_of_a_run_dir_without_a_config(tmp_path):
    # seed 003 logged by a script that keeps its config elsewhere: only with the config is the
    # scaling rule visible, so apply (no --fix) must read the run with it
    rd = tmp_path / "run"
    rd.mkdir()
    rows = [{"step": s, "LearningRate": 1.5625e-05, "Loss/train": 2.30 - 0.0001 * s} for s in range(0, 400, 10)]
    (rd / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("optimizer: adam\nbase_lr: 5.0e-4\nbatch_size: 16\nlr_scaling: linear\nbase_batch_size: 512\n")
    res = run("apply", rd, "--train-config", cfg, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "lr-miscaled -> lr-sqrt-scaling" in res.stdout and "+lr_scaling: sqrt" in res.stdout
    rr, f = _report(tmp_path, [str(cfg)])
    assert fix_command(rr, f) == f"trainfix apply '{tmp_path / 'my run'}' --train-config {cfg} --fix lower-lr"
