"""The prepared GPU check (benchmarks/gpu_check.py) on the CPU: the rows that need no CUDA device.

On a GPU machine the same functions run on CUDA; here they prove the check itself and the trainer
facts it reads: a leaking training run makes ``memory-growth`` fire while a healthy one stays quiet,
``run.device_total_mb`` is recorded, and ``torchrun --nproc_per_node 1`` joins a real process group.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from trainfix.trainers.checkpoint import rng_state, set_rng_state

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("trainfix_gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = gpu_check
_spec.loader.exec_module(gpu_check)


def test_rng_state_restores_from_a_saved_checkpoint(tmp_path):
    torch.manual_seed(5)
    state = rng_state()
    expected = torch.rand(3)
    torch.save({"rng": state}, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", map_location="cpu", weights_only=True)["rng"]
    torch.manual_seed(99)
    set_rng_state(loaded)
    assert torch.equal(torch.rand(3), expected)


def test_table_fails_when_any_row_failed():
    table = gpu_check.Table()
    table.add("a", "PASS", "fine")
    table.add("b", "SKIP", "needs CUDA")
    assert not table.failed
    table.passed("c", False, "broken")
    assert table.failed
    assert "| c " in table.render()


@pytest.mark.slow
def test_memory_growth_fires_on_a_leaking_run_and_not_on_a_healthy_one(tmp_path):
    healthy, _ = gpu_check.train_run(gpu_check.QUICK, tmp_path / "quick-cpu-fp32",
                                     ["run.device=cpu", "training.epochs=3", "logging.every_n_steps=4"])
    table = gpu_check.Table()
    gpu_check.check_memory(table, "cpu", tmp_path, [healthy], cuda=False)
    assert [(r.check, r.status) for r in table.rows] == [
        ("memory/logged", "PASS"), ("memory/quiet", "PASS"), ("memory/leak", "PASS")], table.render()


@pytest.mark.slow
def test_torchrun_with_one_process_joins_a_gloo_process_group(tmp_path):
    table = gpu_check.Table()
    gpu_check.check_ddp(table, "cpu", tmp_path, None, overrides=("training.epochs=1",))
    assert table.rows[0].status == "PASS", table.render()
    assert "backend gloo" in table.rows[0].detail
