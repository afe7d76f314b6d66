"""Exact resume: a CPU run killed with SIGKILL mid-epoch and resumed logs exactly what a run that
never stopped logs (every record of metrics.jsonl, wall time aside)."""

from __future__ import annotations

import os

import pytest

from _resume import comparable_records, kill_mid_second_epoch, resume_and_reference, resume_config


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(resume_config())
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    step = kill_mid_second_epoch(cfg, killed, {**os.environ, "OMP_NUM_THREADS": "1"})
    assert step > 0, "the run finished or never wrote a mid-epoch checkpoint before it could be killed"
    assert not (killed / "checkpoints" / "epoch_001.pt").exists()

    resume_and_reference(cfg, killed, ref)  # resumed from what the killed process saved; the run that never stopped
    ref_rows, got_rows = comparable_records(ref), comparable_records(killed)
    assert [r["step"] for r in got_rows] == [r["step"] for r in ref_rows]
    assert got_rows == ref_rows
    assert got_rows[-1]["val/acc"] > 0.5
