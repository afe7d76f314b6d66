"""Plain stdout text: metric lines among everything else a training script prints."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.text import read_text

KERAS = """Found 4575 images belonging to 62 classes.
Epoch 1/3

  1/285 [..............................] - ETA: 1:04 - loss: 4.0902 - acc: 0.0000e+00\r 13/285 [>....] - ETA: 5s - loss: 3.9622 - acc: 0.0577
285/285 [==============================] - 6s 22ms/step - loss: 2.5736 - acc: 0.4192 - val_loss: 1.3943 - val_acc: 0.6647
Epoch 2/3
285/285 [==============================] - 3s 11ms/step - loss: 1.2441 - acc: 0.6813 - val_loss: 0.8853 - val_acc: 0.7663
Epoch 3/3
285/285 [==============================] - 3s 11ms/step - loss: 0.9124 - acc: 0.7556 - val_loss: 0.7434 - val_acc: 0.7829
"""


def test_keras_progress_lines(tmp_path):
    (tmp_path / "stdout.txt").write_text(KERAS)
    run = read_run(tmp_path)
    assert sorted(run.tags) == ["acc", "loss", "val_acc", "val_loss"]
    assert run.series("val_acc").steps.tolist() == [1, 2, 3]
    assert run.series("val_acc").values.tolist() == [0.6647, 0.7663, 0.7829]
    assert run.series("loss").values.tolist() == [2.5736, 1.2441, 0.9124]  # ETA lines are running averages
    assert run.roles.tag("val_acc") == "val_acc"


def test_epoch_lines_with_percentages(tmp_path):
    (tmp_path / "train.log").write_text(
        "Loading data...\n"
        "Epoch 1/60: Train Loss: 0.91 | Val Acc: 45.50% | Val Acc (TB): 44.00%\n"
        "Epoch 2/60: Train Loss: 0.41 | Val Acc: 85.91% | Val Acc (TB): 80.00%\n"
        "Saved checkpoint to ckpt/epoch_2.pt\n"
    )
    run = read_run(tmp_path)
    assert run.series("Val Acc").values.tolist() == pytest.approx([0.455, 0.8591])
    assert run.series("Val Acc").steps.tolist() == [1, 2]
    assert run.inputs["units"] == {"Val Acc": "%", "Val Acc (TB)": "%"}
    assert run.roles.tag("val_acc") == "Val Acc"
    assert run.roles.tag("train_loss") == "Train Loss"


def test_key_value_pairs_and_non_metric_lines(tmp_path):
    (tmp_path / "out.log").write_text(
        "Namespace(lr=0.1, batch_size=64, momentum=0.9)\n"
        "train.py:35: UserWarning: volatile was removed\n"
        "timer: 0.3520 sec.\n"
        "step=100 loss=0.5 lr=0.001 grad_norm=1.25\n"
        "step=200 loss=0.25 lr=0.001 grad_norm=nan\n"
        "iter 300 || Loss: 0.2000 || timer: 0.31 sec.\n"
        "2023-05-15 22:50:17,398 INFO:Epoch 4: Train Loss=0.0717, Val Loss=0.0766\n"
        "Epoch:  5 | Batch:   10/ 100 | LR: 2.97e-04 |Loss: 4.6069 | Time: 266.5s\n"
    )
    pts = read_text(tmp_path / "out.log", "out.log")
    got = {}
    for code, step, value in zip(pts.codes, pts.steps, pts.values):
        got.setdefault(pts.tags[code], []).append((int(step), float(value)))
    assert got["loss"] == [(100, 0.5), (200, 0.25)]
    assert got["grad_norm"][0] == (100, 1.25) and got["grad_norm"][1][1] != got["grad_norm"][1][1]  # NaN kept
    assert got["Loss"][0] == (300, 0.2)
    assert got["Train Loss"] == [(300, 0.0717)]  # epoch line after step-level lines: last global step
    # batch-level line: (epoch 5 - first epoch 4) * 100 batches per epoch + batch 10
    assert got["LR"] == [(110, 2.97e-04)]
    assert got["Loss"][1] == (110, 4.6069)
    assert "timer" not in got and "momentum" not in got and "Time" not in got and "Batch" not in got


def test_non_utf8_bytes_are_tolerated(tmp_path):
    (tmp_path / "train.log").write_bytes(b"\xff\xfe garbage \x80\nEpoch 1: loss: 0.5 caf\xe9\nEpoch 2: loss: 0.25\n")
    run = read_run(tmp_path)
    assert run.series("loss").values.tolist() == [0.25]  # "0.5 caf\xe9" does not end at a separator
    assert run.series("loss").steps.tolist() == [2]


def test_text_without_metrics_is_reported(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing to see here\njust words: here\n")
    (tmp_path / "log.txt").write_text("epoch 1 loss: 0.5\n")
    run = read_run(tmp_path)
    assert run.tags == ["loss"]
    assert {"path": "notes.txt", "reason": "text: no metric values recognised in it"} in run.inputs["skipped"]


def _write_big_log(path: Path, megabytes: float, metric_every: int = 1) -> int:
    """A log of ~``megabytes`` MB: warnings, with an ``iter N || Loss: x ||`` line every
    ``metric_every`` warnings.  Returns the number of metric lines."""
    warning = ("/usr/lib/python3/site-packages/x/augmentations.py:238: VisibleDeprecationWarning: Creating an "
               "ndarray from ragged nested sequences is deprecated\n  mode = random.choice(self.sample_options)\n")
    lines = 0
    written = 0
    i = 0
    with open(path, "w") as fh:
        while written < megabytes * (1 << 20):
            parts = []
            for _ in range(1000):
                if i % metric_every == 0:
                    parts.append(f"iter {i} || Loss: {1.0 / (i + 1):.4f} ||\n")
                    lines += 1
                parts.append(warning)
                i += 1
            chunk = "".join(parts)
            fh.write(chunk)
            written += len(chunk)
    return lines


def test_large_log_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "train.log"
    n = _write_big_log(path, 1, metric_every=100)
    tracemalloc.start()
    table = read_text(path, "train.log")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(table) == n
    assert peak < (1 << 20) // 4  # a 1 MB file, never held whole: a quarter of a MB at most


@pytest.mark.slow
def test_100_mb_log(tmp_path):
    path = tmp_path / "train.log"
    n = _write_big_log(path, 100)
    run = read_run(tmp_path)
    assert run.inputs["points"] == n
    assert run.roles.tag("train_loss") == "Loss"


def test_a_phase_word_before_the_pairs_names_their_phase(tmp_path):
    # the layout of benchmarks/real-logs/mtl-163 and txt-114: the same keys on training and
    # validation lines, the phase said once before them
    log = tmp_path / "train.log"
    log.write_text(
        "2025-07-05 12:57:18 - INFO - Epoch 1 Training - Loss: 1.2084, Mod Acc: 0.8061\n"
        "2025-07-05 12:57:21 - INFO - Epoch 1 Validation - Loss: 18.4914, Mod Acc: 0.0000\n"
        "2025-07-05 12:57:22 - INFO - Epoch 2 Training - Loss: 0.1862, Mod Acc: 0.9731\n"
        "2025-07-05 12:57:23 - INFO - Epoch 2 Validation - Loss: 38.2941, Mod Acc: 0.0000\n"
        "2018-07-27 17:06:07,821:INFO: - Eval metrics: accuracy: 0.224 ; loss: 2.692\n"
    )
    t = read_text(log, log.name)
    assert {"Training Loss", "Validation Loss", "Training Mod Acc", "Validation Mod Acc", "Eval accuracy",
            "Eval loss"} <= set(t.tags)
    code = t.tags.index("Validation Loss")
    assert list(t.values[t.codes == code]) == [18.4914, 38.2941]


def test_keys_that_name_their_phase_are_left_alone(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("Epoch 1: Train Loss=0.0717, Val Loss=0.0766\nEpoch 2 validation: val_acc: 0.5\n")
    t = read_text(log, log.name)
    assert {"Train Loss", "Val Loss", "val_acc"} == set(t.tags)


def test_a_bare_iteration_counter_is_the_step(tmp_path):
    # "i: N" / "it=N" count iterations the way "step N" and "iter N" do; the counter is no metric
    log = tmp_path / "log.txt"
    log.write_text(
        "[(0,0,17)]: Epoch 1\n"
        "[TRAIN(0,0,33)]: i: 0, train_loss: 1.3863\n"
        "[TRAIN(0,0,40)]: i: 1, train_loss: 1.3862\n"
        "[TRAIN(0,0,45)]: i: 2, train_loss: 1.3855\n"
        "it=3 | loss=0.9\n"
        "iter 4 loss: 0.8\n"
        "step 5 loss: 0.7\n"
        "warmup, i= 0.5, loss: 0.6\n"  # not a whole number: no counter, the last step stands
    )
    t = read_text(log, log.name)
    assert set(t.tags) == {"train_loss", "loss"}
    got = {tag: t.steps[t.codes == i].tolist() for i, tag in enumerate(t.tags)}
    assert got["train_loss"] == [0, 1, 2]
    assert got["loss"] == [3, 4, 5, 5]


def test_a_spent_time_budget_keeps_what_was_read_with_a_note(tmp_path, monkeypatch):
    from trainfix.diagnostics.ingest import safe_read

    (tmp_path / "train.log").write_text("".join(f"step {s} loss: {1 / s:.5f}\n" for s in range(1, 200_000)))
    clock = iter(range(10**9))  # every refill of the read buffer is one "second" later
    monkeypatch.setattr(safe_read.time, "monotonic", lambda: float(next(clock)))
    monkeypatch.setenv("TRAINFIX_MAX_FILE_SECONDS", "20")
    run = read_run(tmp_path)
    assert run.inputs["skipped"] == []
    steps = run.series("loss").steps
    assert 0 < len(steps) < 199_999 and steps.tolist() == list(range(1, len(steps) + 1))  # the first part, whole lines
    (note,) = [n for n in run.inputs["notes"] if "budget" in n]
    assert note.startswith("train.log: read only the first ") and "20 s budget" in note
    assert "TRAINFIX_MAX_FILE_SECONDS" in note


def test_counters_too_long_for_a_step_read_nothing_and_raise_nothing(tmp_path):
    """A 400-digit epoch (fuzzed), a batch counter whose step would leave int64, and an epoch
    past Python's int-string limit: those lines give no step; the good lines still stand."""
    lines = [f"Epoch {e}/12: Train Loss: {1 / e:.4f} | Val Acc: {50 + e}.00%" for e in range(1, 12)]
    lines.append("Epoch " + "9" * 400 + "12/12: Train Loss: 0.0833 | Val Acc: 62.00%")
    lines.append("Epoch " + "7" * 5000 + ": loss: 0.5")
    lines.append("Epoch 999999999999 Batch 999999999999/999999999999 loss: 0.1")
    (tmp_path / "train.log").write_text("\n".join(lines) + "\n")
    table = read_text(tmp_path / "train.log", "train.log")
    steps = table.steps[[t == "Train Loss" for t in (table.tags[c] for c in table.codes)]]
    assert steps.tolist()[:11] == list(range(1, 12))
    assert int(abs(table.steps).max()) < 2**63
