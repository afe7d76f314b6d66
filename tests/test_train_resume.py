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

CONFIG = """
run: {name: resume-test, seed: 3, device: cpu}
data: {name: digits, image_size: 8, noise: 0.1}
model: {name: cnn, width: 8, depth: 2, dropout: 0.3}
loss: {name: cross-entropy, label_smoothing: 0.05}
optimizer: {name: adamw, lr: 0.01, weight_decay: 0.0001}
schedule: {name: cosine, warmup_epochs: 0.5}
training: {epochs: 3, batch_size: 32, grad_accum: 2, ema_decay: 0.9}
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


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(CONFIG)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(cfg, ref), check=True, env=env, capture_output=True)

    proc = subprocess.Popen(_cmd(cfg, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = killed / "checkpoints" / "last.json"
    deadline = time.monotonic() + 120
    step = 0
    while time.monotonic() < deadline and proc.poll() is None:
        if meta.exists():
            try:
                m = json.loads(meta.read_text())
            except json.JSONDecodeError:
                m = {}
            # second epoch, in the middle: a mid-epoch checkpoint exists
            if m.get("epoch") == 1 and m.get("batch_in_epoch", 0) > 0:
                step = m["step"]
                break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert step > 0, "the run finished or never wrote a mid-epoch checkpoint before it could be killed"
    assert not (killed / "checkpoints" / "epoch_002.pt").exists()

    subprocess.run(_cmd(cfg, killed, "--resume"), check=True, env=env, capture_output=True)
    ref_rows, got_rows = _records(ref), _records(killed)
    assert [r["step"] for r in got_rows] == [r["step"] for r in ref_rows]
    assert got_rows == ref_rows
    assert got_rows[-1]["val/acc"] > 0.5
