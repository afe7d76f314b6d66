"""Several runs appended to one log file (logging's append mode, ``>> log.txt``): the longest run
from scratch is diagnosed, not a short export run that happened to come last; a resumed run still
keeps its later segment."""

from __future__ import annotations

import numpy as np

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.attempts import longest_attempts


def _epoch_lines(epochs, loss=lambda e: 1 / e, val=lambda e: 0.5 + 0.05 * e):
    return [f"2025-07-05 12:00:00,000 - INFO - Epoch {e} - loss: {loss(e):.4f}, val_loss: {val(e):.4f}" for e in epochs]


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path.parent


def _values(run, tag):
    s = run.scalars
    return s[s.tag == tag]["value"].to_numpy()


def test_a_long_run_followed_by_a_short_one_from_scratch_is_diagnosed_as_the_long_run(tmp_path):
    lines = _epoch_lines(range(1, 16)) + ["Starting training for 1 epochs..."] + _epoch_lines([1], lambda e: 0.9, lambda e: 0.6)
    run = read_run(_write(tmp_path / "r" / "training.log", lines))
    assert len(_values(run, "val_loss")) == 15
    assert _values(run, "val_loss")[-1] == 1.25
    (report,) = run.inputs["appended_runs"]
    assert report == {"source": "training.log", "attempts": 2, "kept": 1, "points": [30, 2]}
    assert any("2 runs appended" in n and "run 1, the longest" in n for n in run.inputs["notes"])


def test_a_rerun_that_outlasts_the_first_attempt_is_the_one_read(tmp_path):
    lines = _epoch_lines(range(1, 4), lambda e: 2.0, lambda e: 2.0) + _epoch_lines(range(1, 11))
    run = read_run(_write(tmp_path / "r" / "train.log", lines))
    assert len(_values(run, "loss")) == 10
    assert _values(run, "loss")[0] == 1.0  # the rerun's first epoch, not the crashed start's 2.0
    assert run.inputs["appended_runs"][0]["kept"] == 2
    assert any("diagnosing the last" in n for n in run.inputs["notes"])


def test_appended_csv_logs_with_a_repeated_header_keep_the_longest_run(tmp_path):
    rows = ["epoch,loss,val_loss"] + [f"{e},{1 / e:.4f},{0.5 + e * 0.05:.4f}" for e in range(1, 16)]
    rows += ["epoch,loss,val_loss", "1,0.9,0.6"]
    run = read_run(_write(tmp_path / "r" / "log.csv", rows))
    assert len(_values(run, "loss")) == 15
    assert run.inputs["appended_runs"][0]["points"] == [30, 2]


def test_a_resumed_run_still_keeps_its_later_segment(tmp_path):
    lines = _epoch_lines(range(1, 11), lambda e: 9.0) + _epoch_lines(range(6, 16))
    run = read_run(_write(tmp_path / "r" / "train.log", lines))
    loss = _values(run, "loss")
    assert len(loss) == 15 and loss[5] == round(1 / 6, 4)  # epochs 6-10 from the resumed segment
    assert run.inputs["appended_runs"] == []
    assert run.inputs["restarts"][0]["step"] == 6


def test_tags_that_do_not_start_over_together_fall_back_to_the_later_segment():
    # tag 0 starts over once, tag 1 never does: the attempts do not line up, nothing is decided
    group = np.array([0, 0, 0, 0, 1, 1, 1])
    steps = np.array([1, 2, 3, 1, 1, 2, 3])
    keep, reports = longest_attempts(group, steps, ntags=2, streams=["a.log"], stream_fmt={0: "text"})
    assert keep is None and reports == []


def test_each_file_is_judged_on_its_own_and_tensorboard_streams_are_left_alone():
    ntags = 1
    # stream 0 (text): 3 points then 1 from scratch; stream 1 (tensorboard) the same; stream 2 no restart
    group = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    steps = np.array([1, 2, 3, 1, 1, 2, 3, 1, 1, 2])
    keep, reports = longest_attempts(group, steps, ntags, ["a.log", "tb", "b.log"], {0: "text", 1: "tensorboard", 2: "text"})
    assert keep.tolist() == [True, True, True, False, True, True, True, True, True, True]
    assert reports == [{"source": "a.log", "attempts": 2, "kept": 1, "points": [3, 1]}]
