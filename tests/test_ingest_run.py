"""read_run as a whole: bad paths, configs, checkpoints, duplicates across formats, MLflow, run
splitting, and that inputs are never modified."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from trainfix.diagnostics.ingest import find_runs, read_run
from trainfix.errors import InputError, UsageError


def _snapshot(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[p] = (hashlib.sha256(fh.read()).hexdigest(), os.stat(p).st_mtime_ns)
    return out


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        read_run(tmp_path / "nope")


def test_empty_directory(tmp_path):
    with pytest.raises(InputError, match="empty directory"):
        read_run(tmp_path)


def test_directory_without_logs_says_what_was_looked_for(tmp_path):
    (tmp_path / "README.md").write_text("hello")
    (tmp_path / "model.pt").write_bytes(b"not really")
    with pytest.raises(InputError) as info:
        read_run(tmp_path)
    err = info.value
    assert "no training logs" in err.message
    for what in ("tfevents", "csv", "jsonl", "trainer_state.json", "stdout", "mlruns"):
        assert what in err.hint
    assert any("trainfix inspect" in d for d in err.details)


def test_single_file_path(tmp_path):
    f = tmp_path / "metrics.jsonl"
    f.write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/loss": 0.5}\n')
    run = read_run(f)
    assert run.tags == ["train/loss"]
    assert run.inputs["files"] == [{"path": "metrics.jsonl", "format": "jsonl", "points": 2, "tags": 1}]


TRAINFIX_CONFIG = """# healthy digits run
run: {name: demo, seed: 0}
data: {name: digits}
model: {name: cnn}
loss: {name: cross-entropy}
optimizer: {name: sgd, lr: 0.1, scaled_lr: 0.05}
training: {epochs: 3, batch_size: 32}
"""


def test_configs_merge_and_trainfix_config_wins(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    (tmp_path / "config.yaml").write_text(TRAINFIX_CONFIG)
    (tmp_path / "args.json").write_text(json.dumps({"lr": 0.5, "optimizer": {"lr": 0.9, "momentum": 0.8}, "seed": 7}))
    (tmp_path / "hparams.yaml").write_text("batch_size: 64\nwarmup_epochs: 2\n")
    (tmp_path / "bad.yaml").write_text("a: !!python/object/apply:os.system ['echo hi']\n")
    (tmp_path / "list.json").write_text("[1, 2, 3]")
    (tmp_path / "tokenizer_config.json").write_text('{"model_max_length": 512}')
    run = read_run(tmp_path)
    assert run.config["optimizer"] == {"name": "sgd", "lr": 0.1, "scaled_lr": 0.05, "momentum": 0.8}
    assert run.config["lr"] == 0.5 and run.config["warmup_epochs"] == 2 and run.config["seed"] == 7
    assert "model_max_length" not in run.config
    assert [p.name for p in run.config_files] == ["args.json", "hparams.yaml", "config.yaml"]
    reasons = {s["path"]: s["reason"] for s in run.inputs["skipped"]}
    assert "safe loader" in reasons["bad.yaml"]
    assert "not a mapping" in reasons["list.json"]


def test_checkpoints_are_listed_not_loaded(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    ck = tmp_path / "checkpoints"
    ck.mkdir()
    for name in ("last.pt", "best.pt", "epoch_001.pt", "model.safetensors", "w.pth", "a.ckpt", "pytorch_model.bin"):
        (ck / name).write_bytes(b"\x80\x02 certainly not a checkpoint")
    (ck / "last.pt.json").write_text('{"epoch": 1}')  # checkpoint metadata: not a config
    run = read_run(tmp_path)
    assert sorted(c.path.name for c in run.checkpoints) == sorted(
        ["last.pt", "best.pt", "epoch_001.pt", "model.safetensors", "w.pth", "a.ckpt", "pytorch_model.bin"])
    assert all(c.size > 0 and "summary" not in c.__dict__ for c in run.checkpoints)  # nothing read yet
    assert run.config_files == []


def test_same_tags_in_tensorboard_and_jsonl_are_kept_once(tmp_path, write_tb):
    write_tb(tmp_path, {"train/loss": [(s, 1.0 / (s + 1)) for s in range(10)]})
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps({"step": s, "train/loss": 1.0 / (s + 1), "lr": 0.1}) + "\n" for s in range(10)))
    run = read_run(tmp_path)
    assert run.inputs["formats"] == {"jsonl": 1, "tensorboard": 1}
    assert len(run.scalars) == 20  # 10 train/loss + 10 lr, not 30
    assert run.scalars[run.scalars["tag"] == "train/loss"]["source"].astype(str).unique().tolist() == ["metrics.jsonl"]
    (dup,) = run.inputs["duplicates"]
    assert dup["tag"] == "train/loss" and dup["kept"] == "metrics.jsonl"


def test_mlflow_file_store(tmp_path):
    run_dir = tmp_path / "mlruns" / "0" / "4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a"
    (run_dir / "metrics" / "val").mkdir(parents=True)
    (run_dir / "params").mkdir()
    (tmp_path / "mlruns" / "0" / "meta.yaml").write_text("experiment_id: '0'\nname: Default\n")
    (run_dir / "meta.yaml").write_text("run_id: 4f1c2b3a4f1c2b3a4f1c2b3a4f1c2b3a\nstatus: 3\n")
    (run_dir / "metrics" / "train_loss").write_text("1700000000000 1.0 0\n1700000001000 0.5 1\n1700000002000 nan 2\n")
    (run_dir / "metrics" / "val" / "acc").write_text("1700000000000 0.5 0\n1700000002000 0.75 2\n")
    (run_dir / "params" / "learning_rate").write_text("0.01")
    (run_dir / "params" / "optimizer").write_text("adam")
    other = tmp_path / "mlruns" / "0" / "0a1b2c3d0a1b2c3d0a1b2c3d0a1b2c3d"
    (other / "metrics").mkdir(parents=True)
    (other / "meta.yaml").write_text("run_id: 0a1b\n")
    (other / "metrics" / "train_loss").write_text("1700000000000 2.0 0\n")
    assert find_runs(tmp_path / "mlruns") == sorted([run_dir, other])
    run = read_run(run_dir)
    assert run.inputs["formats"] == {"mlflow": 2}
    assert run.series("val/acc").steps.tolist() == [0, 2]
    assert run.roles.tag("val_acc") == "val/acc"
    assert run.roles.tag("train_loss") == "train_loss"
    assert run.scalars["wall_time"].min() == 1700000000.0
    assert run.config["params"] == {"learning_rate": 0.01, "optimizer": "adam"}


def test_metric_overrides_and_errors(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "Metrics/Val Accuracy": 0.5, "score": 1.0}\n')
    run = read_run(tmp_path, metric_overrides={"val_acc": "Metrics/Val Accuracy"})
    assert run.roles.single["val_acc"].how == "override --metric"
    with pytest.raises(UsageError, match="did not log"):
        read_run(tmp_path, metric_overrides={"val_acc": "Metrics/Val Acc"})
    with pytest.raises(UsageError, match="unknown metric role"):
        read_run(tmp_path, metric_overrides={"valacc": "score"})


def test_settings_metrics_from_pyproject(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.trainfix.metrics]\nval_acc = "score"\n')
    run_dir = tmp_path / "runs" / "a"
    run_dir.mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text('{"step": 1, "score": 0.5}\n')
    run = read_run(run_dir)
    assert run.roles.single["val_acc"].how == "[tool.trainfix.metrics]"
    assert read_run(run_dir, metric_overrides={"val_acc": "score"}).roles.single["val_acc"].how == "override --metric"


@pytest.mark.parametrize(
    "layout,expected",
    [
        ({"a/metrics.jsonl", "b/metrics.jsonl"}, ["a", "b"]),
        ({"lightning_logs/version_0/metrics.csv", "lightning_logs/version_1/metrics.csv"},
         ["lightning_logs/version_0", "lightning_logs/version_1"]),
        ({"tb/events.out.tfevents.1", "logs/train.log"}, ["."]),
        ({"train/events.out.tfevents.1", "validation/events.out.tfevents.1"}, ["."]),
        ({"checkpoint-500/trainer_state.json", "checkpoint-1000/trainer_state.json"}, ["."]),
        ({"metrics.jsonl", "tb/events.out.tfevents.1", "seed1/metrics.jsonl"}, ["."]),
        ({"exp/run1/metrics.jsonl"}, ["."]),
        ({"exp/run1/metrics.jsonl", "exp/run2/metrics.jsonl"}, ["exp/run1", "exp/run2"]),
    ],
)
def test_find_runs_rule(tmp_path, layout, expected):
    for rel in layout:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("trainer_state.json"):
            p.write_text('{"log_history": []}')
        elif "tfevents" in rel:
            p.write_bytes(b"")
        elif rel.endswith(".csv"):
            p.write_text("step,loss\n1,1.0\n")
        else:
            p.write_text('{"step": 1, "loss": 1.0}\n')
    assert find_runs(tmp_path) == [tmp_path / e if e != "." else tmp_path for e in expected]


def test_several_runs_read_together_are_noted(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    run = read_run(tmp_path)
    assert run.inputs["runs_found"] == 2
    assert any("2 separate runs" in n for n in run.inputs["notes"])


def test_inputs_are_never_modified(tmp_path, write_tb):
    write_tb(tmp_path / "tb", {"loss": [(s, 1.0) for s in range(20)]})
    (tmp_path / "metrics.csv").write_text("step,val_acc\n1,0.5\n")
    (tmp_path / "config.yaml").write_text(TRAINFIX_CONFIG)
    (tmp_path / "train.log").write_bytes(b"Epoch 1: loss: 0.5\n\xff\xfe\n")
    (tmp_path / "model.pt").write_bytes(b"junk")
    before = _snapshot(tmp_path)
    run = read_run(tmp_path)
    run.series("loss")
    assert _snapshot(tmp_path) == before
    assert sorted(os.listdir(tmp_path)) == sorted(["tb", "metrics.csv", "config.yaml", "train.log", "model.pt"])


def test_unparseable_file_is_skipped_with_reason(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    (tmp_path / "trainer_state.json").write_text("{not json")
    run = read_run(tmp_path)
    (skip,) = run.inputs["skipped"]
    assert skip["path"] == "trainer_state.json" and "not read" in skip["reason"]


def test_event_file_that_cannot_be_opened_is_skipped(tmp_path, write_tb, monkeypatch):
    import time

    from trainfix.diagnostics.ingest import tensorboard

    write_tb(tmp_path, {"loss": [(0, 1.0), (1, 0.5)]})
    time.sleep(1.1)
    locked = write_tb(tmp_path, {"acc": [(0, 0.5)]})
    real = tensorboard.read_events

    def fake(path, **kw):  # stands in for a file the user may not read (tests run as root)
        if path.name == locked.name:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, **kw)

    monkeypatch.setattr(tensorboard, "read_events", fake)
    run = read_run(tmp_path)
    assert run.tags == ["loss"]
    assert run.inputs["skipped"] == [{"path": locked.name, "reason": "tensorboard not read: Permission denied"}]


def test_explicit_file_with_an_unknown_name_is_sniffed(tmp_path):
    f = tmp_path / "job.12345.stdout"
    f.write_text("Epoch 1/2: Train Loss: 0.5 | Val Acc: 50%\nEpoch 2/2: Train Loss: 0.4 | Val Acc: 60%\n")
    run = read_run(f)
    assert run.inputs["formats"] == {"text": 1}
    assert run.series("Val Acc").values.tolist() == [0.5, 0.6]
    binary = tmp_path / "blob.dat"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(InputError):
        read_run(binary)


def test_trainfix_dataset_summary_goes_into_inputs_not_config(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    summary = {"run": {"task": "multiclass", "train_class_counts": [130, 13]}}
    (tmp_path / "dataset.json").write_text(json.dumps(summary))
    run = read_run(tmp_path)
    assert run.inputs["dataset"] == summary
    assert "train_class_counts" not in json.dumps(run.config)
    (tmp_path / "dataset.json").write_text("{not json")
    assert "dataset" not in read_run(tmp_path).inputs


def test_more_files_than_a_16_bit_code_holds_are_assembled():
    # 50,000 tiny log files in one run once overflowed the int16 file codes
    import numpy as np

    from trainfix.diagnostics.ingest.table import Table, assemble

    n = 33_000
    tables = [Table(source=f"f{i}.csv", fmt="csv", stream=f"f{i}.csv", tags=[f"t{i}"],
                    codes=np.zeros(1, dtype=np.int16), steps=np.array([i]), values=np.array([float(i)]),
                    wall_times=np.array([0.0])) for i in range(n)]
    frame, _ = assemble(tables)
    assert len(frame) == n
    assert frame["source"].nunique() == n
    assert sorted(frame["step"].tolist()) == list(range(n))
