"""The loop for a user's own script, per framework: a real script (tests/userscripts/) with a seed
bug in its own config, logged the way its framework logs, is diagnosed by ``trainfix diagnose``,
fixed in that config by ``trainfix apply``, rerun with the user's command (``--relaunch-cmd``) and
the finding is gone in ``trainfix compare``.

- plain PyTorch (TensorBoard ``SummaryWriter``, tags ``Loss/train``, ``Accuracy/val``,
  ``LearningRate``): seed 003's ``lr = base_lr * batch_size / base_batch_size`` (5e-4 x 16 / 512 =
  1.56e-5 with Adam) in its own YAML (``lr_scaling: linear``, ``base_batch_size: 512``), passed to
  apply with ``--train-config``.
- PyTorch Lightning (``CSVLogger`` under ``lightning_logs/version_0/``, ``LearningRateMonitor``'s
  ``lr-SGD``): a learning rate far too high for SGD; apply finds Lightning's ``hparams.yaml`` in
  the run dir and the script is relaunched on the patched copy.
- Hugging Face Trainer (with accelerate; a tiny BERT fine-tuned from tests/data/hf-tiny-bert-counting,
  no download; ``trainer_state.json`` with ``training_args.bin`` and ``training_args.json`` beside
  it): lr 0.5 with AdamW, the evaluation accuracy sits at chance (0.457/0.543, predicting one
  class) with the evaluation loss at ln 2; the user's JSON (``model_name_or_path`` +
  TrainingArguments keys, read with ``HfArgumentParser``) is passed with ``--train-config``.

Small data (sklearn digits, generated token sequences), a few epochs, one thread.  Each test
prints its before/after figures.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from trainfix.cli.app import app

pytestmark = pytest.mark.slow

SCRIPTS = Path(__file__).parent / "userscripts"
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
           HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONWARNINGS="ignore")


def train(script: str, flag: str, config: Path, out: Path) -> None:
    proc = subprocess.run([sys.executable, str(SCRIPTS / script), flag, str(config), "--out", str(out)],
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def trainfix(*args) -> str:
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code in (0, 1), res.output
    return res.stdout


def findings(run: Path) -> dict[str, dict]:
    report = json.loads(trainfix("diagnose", run, "--format", "json"))
    return {f["detector"]: f for f in report["runs"][0]["findings"]}


def relaunch_cmd(script: str, flag: str) -> str:
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(SCRIPTS / script))} {flag} {{config}} --out {{out}}"


def figures(before: Path, after: Path) -> dict:
    data = json.loads(trainfix("compare", before, after, "--format", "json"))
    rows = {(r["metric"], r["tag"]): r for r in data["metrics"]}
    return data, rows


def check_gone(data: dict, detector: str) -> None:
    assert detector in [f["detector"] for f in data["resolved"]], data
    for key in ("remaining", "new", "not_evaluated"):
        assert detector not in [f["detector"] for f in data[key]], (key, data[key])


def report(name: str, detector: str, fix: str, rows: dict, acc_key) -> None:
    r = rows[acc_key]
    print(f"\n[e2e {name}] {detector} -> {fix}: final {acc_key[1]} {r['a']:.3f} -> {r['b']:.3f}")


PLAIN_CONFIG = """\
# digits MLP, the paper's recipe
seed: 0
hidden: 64
optimizer: adam
base_lr: 5.0e-4         # the paper's lr
batch_size: 16          # what fits on my GPU
lr_scaling: linear      # lr = base_lr * batch_size / base_batch_size
base_batch_size: 512    # the paper's batch
warmup_epochs: 0
epochs: 8
"""


def test_plain_pytorch_script_seed_003_lr_scaling(tmp_path):
    cfg = tmp_path / "train.yaml"
    cfg.write_text(PLAIN_CONFIG)
    before = tmp_path / "run"
    train("plain_torch_train.py", "--config", cfg, before)
    found = findings(before)
    assert "lr-miscaled" in found and found["lr-miscaled"]["fixes"][0] == "lr-sqrt-scaling"

    out = trainfix("apply", before, "--train-config", cfg, "--relaunch-cmd",
                   relaunch_cmd("plain_torch_train.py", "--config"))
    fixed = tmp_path / "train.fixed.yaml"
    new = yaml.safe_load(fixed.read_text())
    assert new["lr_scaling"] == "sqrt" and new["base_batch_size"] == 16 and new["base_lr"] == 5e-4
    assert cfg.read_text() == PLAIN_CONFIG  # the user's file is untouched
    text = fixed.read_text()
    assert text.startswith("# digits MLP") and "# the paper's lr" in text
    assert "# was linear: lr = base_lr * batch_size / base_batch_size" in text  # a comment the edit made false
    assert "resolved" in out  # apply ended with the comparison

    after = tmp_path / "run-fixed"
    data, rows = figures(before, after)
    check_gone(data, "lr-miscaled")
    acc = ("final Accuracy/val", "Accuracy/val")
    assert rows[acc]["a"] < 0.5 and rows[acc]["b"] > 0.9
    report("plain", "lr-miscaled", "lr-sqrt-scaling", rows, acc)


LIGHTNING_HPARAMS = """\
hidden: 64
optimizer: sgd
learning_rate: 3.0
momentum: 0.9
batch_size: 32
max_epochs: 8
seed: 0
"""


def test_lightning_script_lr_far_too_high(tmp_path):
    hp = tmp_path / "hparams.yaml"
    hp.write_text(LIGHTNING_HPARAMS)
    before = tmp_path / "run"
    train("lightning_train.py", "--hparams", hp, before)
    assert (before / "lightning_logs" / "version_0" / "hparams.yaml").is_file()
    found = findings(before)
    assert "nonfinite-loss" in found and "lower-lr" in found["nonfinite-loss"]["fixes"]

    # no --fix: apply diagnoses the run, picks the best fix per finding and edits the hparams.yaml
    # Lightning wrote under lightning_logs/version_0/, writing the patched copy beside the run dir
    out = trainfix("apply", before, "--relaunch-cmd", relaunch_cmd("lightning_train.py", "--hparams"))
    assert "lower-lr" in out and "resolved" in out
    fixed = tmp_path / "run.hparams.fixed.yaml"
    lr = yaml.safe_load(fixed.read_text())["learning_rate"]
    assert isinstance(lr, float) and 0.01 <= lr <= 0.5  # inside SGD's typical range
    assert not list(before.rglob("*.fixed*"))

    after = tmp_path / "run-fixed"
    data, rows = figures(before, after)
    for detector in found:  # every finding of the broken run is gone
        check_gone(data, detector)
    acc = ("final val_acc", "val_acc")
    assert rows[acc]["a"] < 0.2 and rows[acc]["b"] > 0.8
    report("lightning", " + ".join(sorted(found)), "lower-lr", rows, acc)

HF_COMMON = {"per_device_train_batch_size": 32, "per_device_eval_batch_size": 128, "logging_steps": 5,
             "eval_strategy": "epoch", "save_strategy": "no", "report_to": "none", "seed": 0, "use_cpu": True,
             "disable_tqdm": True}


PRETRAINED = Path(__file__).parent / "data" / "hf-tiny-bert-counting"


def test_hf_trainer_script_fine_tune_lr_far_too_high(tmp_path):
    # a small pretrained model (made by the same script, see its README) fine-tuned at lr 0.5 with AdamW:
    # the training loss wanders 0.7-2.7 while the evaluations sit at chance
    pretrained = PRETRAINED
    args = tmp_path / "finetune.json"
    args.write_text(json.dumps(dict(HF_COMMON, model_name_or_path=str(pretrained), learning_rate=0.5,
                                    num_train_epochs=6), indent=2))
    before = tmp_path / "run"
    train("hf_trainer_train.py", "--args", args, before)
    assert (before / "training_args.bin").is_file() and (before / "training_args.json").is_file()
    found = findings(before)
    assert "never-learned" in found and "lower-lr" in found["never-learned"]["fixes"], found
    assert found["never-learned"]["evidence"]["signature"] == "chance"
    assert found["never-learned"]["evidence"]["loss_tag"] == "eval_loss"  # the train loss is not at ln 2

    out = trainfix("apply", before, "--train-config", args, "--relaunch-cmd",
                   relaunch_cmd("hf_trainer_train.py", "--args"))
    assert "resolved" in out
    fixed = json.loads((tmp_path / "finetune.fixed.json").read_text())
    assert isinstance(fixed["learning_rate"], float) and 1e-6 <= fixed["learning_rate"] <= 3e-4  # fine-tuning range
    assert fixed["model_name_or_path"] == str(pretrained)

    after = tmp_path / "run-fixed"
    data, rows = figures(before, after)
    for detector in found:  # every finding of the broken run is gone
        check_gone(data, detector)
    acc = ("final eval_accuracy", "eval_accuracy")
    assert rows[acc]["a"] < 0.6 and rows[acc]["b"] > 0.7
    report("hf-trainer", " + ".join(sorted(found)), "lower-lr", rows, acc)
