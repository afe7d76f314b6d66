"""Every real log in tests/data/real-logs (see its PROVENANCE.md) reads, with the expected format,
point count and roles; real event files agree value for value with TensorBoard's reader."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.tensorboard import read_events

DATA = Path(__file__).parent / "data" / "real-logs"

# folder, format, points after resolving restarts/duplicates, roles that must resolve to these tags
EXPECTED = [
    ("csv-00", "csv", 56, {"train_loss": "train_loss", "val_loss": "val_loss", "lr": "lr"}),
    ("csv-01", "csv", 40, {"train_loss": "train_loss", "val_loss": "val_loss", "lr": "lr"}),
    ("hf-02", "trainer_state", 215, {"train_loss": "loss", "val_loss": "eval_loss", "val_metric": "eval_rouge-1",
                                     "lr": "learning_rate", "grad_norm": "grad_norm"}),
    ("hf-03", "trainer_state", 165, {"train_loss": "loss", "val_acc": "eval_accuracy", "val_metric": "eval_accuracy"}),
    ("hf-04", "trainer_state", 400, {"train_loss": "loss", "lr": "learning_rate", "grad_norm": "grad_norm"}),
    ("hf-05", "trainer_state", 1051, {"train_loss": "loss", "val_acc": "eval_overall_accuracy"}),
    ("hf-06", "trainer_state", 2828, {"train_loss": "loss", "val_loss": "eval_loss", "val_metric": "eval_loss"}),
    ("hf-07", "trainer_state", 530, {"train_loss": "loss", "val_metric": "eval_wer"}),
    ("hf-08", "trainer_state", 275, {"train_loss": "loss", "val_metric": "eval_wer", "grad_norm": "grad_norm"}),
    ("jsonl-09", "jsonl", 150, {"train_loss": "train_loss", "lr": "train_lr"}),
    ("jsonl-10", "jsonl", 5250, {"train_loss": "train_loss", "val_loss": "test_loss", "lr": "train_lr"}),
    ("jsonl-11", "jsonl", 3400, {"train_loss": "total_loss", "lr": "lr"}),
    ("jsonl-12", "jsonl", 5355, {"train_loss": "train_loss", "val_loss": "test_loss"}),
    ("jsonl-13", "jsonl", 420, {"train_loss": "train_loss", "val_loss": "test_loss"}),
    ("keras-14", "csv", 525, {"train_loss": "loss", "val_acc": "val_accuracy", "lr": "learning_rate"}),
    ("keras-15", "csv", 400, {"train_loss": "loss", "val_loss": "val_loss", "val_acc": "val_accuracy"}),
    ("keras-16", "csv", 68, {"val_acc": "val_accuracy", "train_acc": "accuracy"}),
    ("keras-17", "csv", 200, {"val_acc": "val_acc", "train_acc": "acc"}),
    ("pl-18", "csv", 960, {"train_loss": "train_disc_loss"}),
    ("pl-19", "csv", 960, {"train_loss": "train_disc_loss"}),
    ("pl-20", "csv", 340, {"train_loss": "train/nll_loss", "lr": "lr-Adam"}),
    ("pl-21", "csv", 84, {"train_loss": "train_loss", "train_acc": "train_acc"}),
    ("tfev-22", "tensorboard", 1224, {"train_loss": "total_loss", "val_metric": "bbox/AP", "lr": "lr"}),
    ("tfev-23", "tensorboard", 1726, {"train_loss": "train/loss", "lr": "train/learning_rate"}),
    ("tfev-24", "tensorboard", 7850, {"train_loss": "train_loss", "val_loss": "val_loss"}),
    ("tfev-25", "tensorboard", 1950, {"val_metric": "metrics/mAP_0.5", "lr": "x/lr0"}),
    ("txt-26", "text", 1000, {"train_loss": "Train Loss", "val_loss": "Val Loss"}),
    ("txt-27", "text", 26, {"train_loss": "loss", "val_acc": "val_acc"}),
    ("txt-28", "text", 200, {"train_loss": "Loss"}),
    ("txt-29", "text", 3836, {"train_loss": "Loss", "val_loss": "验证损失", "lr": "LR"}),
]


def test_every_real_log_folder_is_covered():
    folders = sorted(p.name for p in DATA.iterdir() if p.is_dir())
    assert folders == sorted(e[0] for e in EXPECTED)
    assert len(folders) == 30


def _digest(folder: Path) -> dict:
    return {p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for p in folder.iterdir()}


@pytest.mark.parametrize("folder,fmt,points,roles", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_real_log(folder, fmt, points, roles):
    path = DATA / folder
    before = _digest(path)
    run = read_run(path)
    assert run.inputs["formats"] == {fmt: 1}
    assert run.inputs["points"] == points
    for role, tag in roles.items():
        assert run.roles.tag(role) == tag, role
    assert run.inputs["skipped"] == []
    assert _digest(path) == before  # never modified


def test_real_log_nan_values_are_kept():
    run = read_run(DATA / "pl-19")
    values = run.series("train_gen_loss").values
    assert np.isnan(values).sum() > 0.9 * len(values)
    assert run.series("train_disc_loss").values[0] == pytest.approx(1.6226933508321501e24)


def _event_accumulator(path: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: ([e.step for e in acc.Scalars(t)], [e.value for e in acc.Scalars(t)]) for t in acc.Tags()["scalars"]}


@pytest.mark.parametrize("folder", ["tfev-22", "tfev-23", "tfev-24", "tfev-25"])
def test_real_event_files_match_event_accumulator(folder):
    (f,) = (DATA / folder).glob("events.out.tfevents.*")
    res = read_events(f)
    ref = _event_accumulator(f)
    assert sorted(res.tags) == sorted(ref)
    for i, tag in enumerate(res.tags):
        sel = res.codes == i
        assert res.steps[sel].tolist() == ref[tag][0]
        np.testing.assert_array_equal(res.values[sel].astype(np.float32), np.asarray(ref[tag][1], dtype=np.float32))


def test_real_event_file_cut_mid_record(tmp_path):
    (src,) = (DATA / "tfev-25").glob("events.out.tfevents.*")
    data = src.read_bytes()
    cut = tmp_path / src.name
    cut.write_bytes(data[: len(data) - 1000])
    full = read_events(src)
    part = read_events(cut)
    assert part.truncated and not full.truncated
    assert 0 < len(part) <= len(full)
    np.testing.assert_array_equal(part.steps, full.steps[: len(part)])


def test_real_logs_copied_into_one_tree_split_into_runs(tmp_path):
    from trainfix.diagnostics.ingest import find_runs

    for name in ("keras-15", "keras-16", "hf-03"):
        shutil.copytree(DATA / name, tmp_path / name)
    assert find_runs(tmp_path) == [tmp_path / "hf-03", tmp_path / "keras-15", tmp_path / "keras-16"]
