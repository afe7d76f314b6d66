"""Exact resume: a CPU run killed with SIGKILL mid-epoch and resumed logs exactly what a run that
never stopped logs (every record of metrics.jsonl, wall time aside)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from trainfix.trainers import train

CONFIG = """
run: {name: resume-test, seed: 3, device: cpu}
data: {name: digits, image_size: 8, noise: 0.1}
model: {name: cnn, width: 8, depth: 2, dropout: 0.3}
loss: {name: cross-entropy, label_smoothing: 0.05}
optimizer: {name: adamw, lr: 0.01, weight_decay: 0.0001}
schedule: {name: cosine, warmup_epochs: 0.5}
training: {epochs: 2, batch_size: 32, grad_accum: 2, ema_decay: 0.9}
logging: {every_n_steps: 3, progress: false}
checkpoint: {every_n_steps: 4}
"""


def _cmd(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "trainfix", "train", "--config", str(cfg), "--out", str(out), *extra]


def _records(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("wall_time")
        r.pop("mem/allocated_mb", None)  # process memory differs between processes
    return rows


def _kill_mid_second_epoch(cfg: Path, out: Path, env: dict) -> int:
    """Start a run in a subprocess, SIGKILL it once it saved a checkpoint inside epoch 1."""
    proc = subprocess.Popen(_cmd(cfg, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = out / "checkpoints" / "last.json"
    deadline = time.monotonic() + 240
    step = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            m = json.loads(meta.read_text()) if meta.exists() else {}
        except json.JSONDecodeError:
            m = {}
        if m.get("epoch") == 1 and m.get("batch_in_epoch", 0) > 0:
            step = m["step"]
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return step


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    step = _kill_mid_second_epoch(cfg, killed, {**os.environ, "OMP_NUM_THREADS": "1"})
    assert step > 0, "the run finished or never wrote a mid-epoch checkpoint before it could be killed"
    assert not (killed / "checkpoints" / "epoch_001.pt").exists()

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the killed process's float reduction order
    try:
        train(cfg, out_dir=killed, resume=True)  # resumed here, from what the killed process saved
        train(cfg, out_dir=ref)  # the run that never stopped
    finally:
        torch.set_num_threads(threads)
    ref_rows, got_rows = _records(ref), _records(killed)
    assert [r["step"] for r in got_rows] == [r["step"] for r in ref_rows]
    assert got_rows == ref_rows
    assert got_rows[-1]["val/acc"] > 0.5
