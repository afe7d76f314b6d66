"""The trainer side of `trainfix watch`: a stop request is honoured (checkpoint saved, clean end,
the resume command printed), the end marker says how the run ended, a resumed run says where it
resumes from, and per-epoch progress lines appear when stderr is not a terminal.  (`watch`
writing the request is tested in test_watch.py.)"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from trainfix.trainers import control

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
QUICK = ["training.epochs=2", "data.image_size=8", "model.width=8", "logging.every_n_steps=5",
         "checkpoint.keep_last=1", "run.device=cpu"]


def test_control_files(tmp_path):
    assert control.stop_requested(tmp_path) is None
    (tmp_path / control.STOP_REQUEST).write_text(json.dumps({"detector": "nonfinite-loss", "severity": "error"}))
    assert control.stop_requested(tmp_path) == "error nonfinite-loss finding"
    control.write_end(tmp_path, "stopped", step=7, epoch=1, resumable=True)
    end = json.loads((tmp_path / control.END_MARKER).read_text())
    assert end["status"] == "stopped" and end["resume"] == f"trainfix train --resume --out {tmp_path}"
    control.clear(tmp_path)
    assert not (tmp_path / control.STOP_REQUEST).exists() and not (tmp_path / control.END_MARKER).exists()


@pytest.mark.slow
def test_stop_request_saves_stops_and_resumes(tmp_path, capfd):
    from trainfix.trainers.loop import train

    out = tmp_path / "run"

    def ask_to_stop():
        jsonl = out / "metrics.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline:
            if jsonl.is_file() and len(jsonl.read_text().splitlines()) >= 4:
                (out / control.STOP_REQUEST).write_text("{}")
                return
            time.sleep(0.02)

    t = threading.Thread(target=ask_to_stop)
    t.start()
    res = train(EXAMPLES / "digits-quick.yaml", out_dir=out, overrides=QUICK)
    t.join()
    err = capfd.readouterr().err
    end = json.loads((out / control.END_MARKER).read_text())
    assert end["status"] == "stopped", end
    assert f"Resume with: trainfix train --resume --out {out}" in err
    assert (out / "checkpoints" / "last.pt").is_file()
    stopped_at = end["step"]
    assert 0 < stopped_at == res.step

    res2 = train(out / "config.yaml", out_dir=out, resume=True)
    err2 = capfd.readouterr().err
    assert f"resuming {out} from epoch {end['epoch']}, step {stopped_at}" in err2
    assert json.loads((out / control.END_MARKER).read_text())["status"] == "finished"
    assert not (out / control.STOP_REQUEST).exists()
    assert res2.step > stopped_at
    assert err2.count("epoch ") >= 1 and " s)" in err2  # per-epoch lines with their time, no terminal


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "trainfix", "train", "--config", str(EXAMPLES / "digits-quick.yaml"),
           "--out", str(out), *QUICK, "training.epochs=50"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.time() + 120
        while not (out / "checkpoints" / "last.pt").is_file() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert f"interrupted; resume with: trainfix train --resume --out {out}" in err
    assert "epoch 0: train/loss" in err  # the per-epoch line, stderr being a pipe
    assert json.loads((out / control.END_MARKER).read_text())["status"] == "interrupted"
