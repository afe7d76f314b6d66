"""examples/digits-quick.yaml: trains digits on CPU to a sensible accuracy, and trainfix reads
back every role the trainer's canonical tags stand for."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits-quick.yaml"


@pytest.mark.slow
def test_digits_quick_trains_and_is_read_back_with_every_role(tmp_path):
    from trainfix.trainers import train

    result = train(EXAMPLE, out_dir=tmp_path / "run")
    assert result.metrics["val/acc"] >= 0.93
    assert result.metrics["train/loss"] < 0.5

    out = subprocess.run([sys.executable, "-m", "trainfix", "metrics", str(result.out_dir), "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    roles = json.loads(out.stdout)["runs"][0]["roles"]
    expected = {"train_loss": "train/loss", "train_loss_step": "train/loss_step", "val_loss": "val/loss",
                "val_acc": "val/acc", "val_metric": "val/acc", "train_acc": "train/acc", "lr": "lr",
                "grad_norm": "grad_norm", "memory": "mem/allocated_mb"}
    assert {role: roles[role]["tag"] for role in expected} == expected
    assert roles["loss_terms"]["cls"]["tag"] == "loss/cls" and roles["loss_terms_raw"]["cls"]["tag"] == "loss/cls/raw"
    assert len(roles["class_metrics"]) == 10
