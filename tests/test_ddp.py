"""Data-parallel training on 2 CPU processes (gloo) through `trainfix train --nproc 2`.

Global-batch accounting: 2 processes x batch 16 see, step for step, the same 32 samples as one
process with batch 32 (the epoch order is sharded DistributedSampler-style), and DDP averages their
gradients, so both runs end at the same validation loss.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

CONFIG = """
run: {name: ddp-test, seed: 1, device: cpu}
data: {name: synthetic, num_classes: 4, num_samples: 512, dim: 16}
model: {name: mlp, hidden: [32]}
optimizer: {name: sgd, lr: 0.05, momentum: 0.9}
training: {epochs: 2, batch_size: 16}
logging: {every_n_steps: 4, progress: false}
"""


def _last(run) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def _ddp(cfg, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "trainfix", "train", "--config", str(cfg), "--out", str(out),
                          "--nproc", "2", *extra], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.ddp
def test_two_cpu_processes_match_one_process_with_the_global_batch(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    _ddp(cfg, ddp)
    from trainfix.trainers import train

    train(cfg, out_dir=single, overrides=["training.batch_size=32"])

    resolved = (ddp / "config.yaml").read_text()
    assert "world_size: 2" in resolved and "global_batch: 32" in resolved
    assert len(list(ddp.glob("events.out.tfevents.*"))) == 1  # rank 0 alone logs
    a, b = _last(ddp), _last(single)
    assert a["step"] == b["step"] == 24  # 384 training samples / 32 per global step x 2 epochs
    assert a["val/loss"] == pytest.approx(b["val/loss"], abs=1e-4)
    assert a["val/acc"] == pytest.approx(b["val/acc"], abs=1e-6)
    assert a["train/loss"] == pytest.approx(b["train/loss"], abs=1e-4)  # epoch means cover both processes
    assert a["val/acc"] > 0.6
    state = torch.load(ddp / "checkpoints" / "last.pt", weights_only=True)
    assert state["model"] and not any(k.startswith(("module.", "_orig_mod.")) for k in state["model"])

