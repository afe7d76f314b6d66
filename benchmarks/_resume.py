"""The exact-resume check shared by ``tests/test_train_resume.py`` (CPU) and ``gpu_check.py`` (CUDA):
a small digits config that checkpoints mid-epoch, a run killed with SIGKILL inside epoch 1, its
resume and the uninterrupted reference, and their records made comparable (wall time and process
memory dropped: they differ between processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

RESUME_CONFIG = """
run: {{name: {name}, seed: 3, device: {device}}}
data: {{name: digits, image_size: {size}, noise: 0.1}}
model: {{name: cnn, width: {size}, depth: 2, dropout: 0.3}}
loss: {{name: cross-entropy, label_smoothing: 0.05}}
optimizer: {{name: adamw, lr: 0.01, weight_decay: 0.0001}}
schedule: {{name: cosine, warmup_epochs: 0.5}}
training: {{epochs: 2, batch_size: 32, grad_accum: 2, ema_decay: 0.9}}
logging: {{every_n_steps: 3, progress: false}}
checkpoint: {{every_n_steps: 4}}
"""


def resume_config(name: str = "resume-test", device: str = "cpu", size: int = 8) -> str:
    """The config text: 2 epochs, a checkpoint every 4 steps (so one lands inside epoch 1),
    gradient accumulation and EMA (both must survive the resume)."""
    return RESUME_CONFIG.format(name=name, device=device, size=size)


def comparable_records(run: Path) -> list[dict]:
    """The run's metrics.jsonl records without wall time and process memory."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("wall_time", None)
        r.pop("mem/allocated_mb", None)  # process memory differs between processes
    return rows


def kill_mid_second_epoch(cfg: Path, out: Path, env: dict, timeout: float = 240.0) -> int:
    """Start ``trainfix train`` in a subprocess and SIGKILL it once it saved a checkpoint inside
    epoch 1; the step of that checkpoint, or 0 when the run finished or never saved one in time."""
    cmd = [sys.executable, "-m", "trainfix", "train", "--config", str(cfg), "--out", str(out)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = out / "checkpoints" / "last.json"
    deadline = time.monotonic() + timeout
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
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return step


def resume_and_reference(cfg: Path, killed: Path, ref: Path) -> None:
    """Resume the killed run in this process, then train the run that never stopped, both on one
    thread (the killed process's float reduction order: it ran with OMP_NUM_THREADS=1)."""
    import torch

    from trainfix.trainers import train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg, out_dir=killed, resume=True)  # resumed here, from what the killed process saved
        train(cfg, out_dir=ref)
    finally:
        torch.set_num_threads(threads)
