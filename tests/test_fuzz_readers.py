"""Property tests: every reader and config loader on valid files mutated by hypothesis (flipped
bytes, truncation, garbage, huge lines, NUL, mixed encodings, CRLF/CR).

Properties:

* a reader returns a Table or raises what its contract allows (ValueError: "not this format",
  OSError: the file or its budget, RecursionError: nested past the interpreter's limit, each worded
  by ``safe_read.describe_failure``); anything else (IndexError, OverflowError, TypeError, ...) is a
  bug the ingest would only hide by skipping the file;
* a config loader returns a mapping or raises ValueError/OSError with a reason;
* ``trainfix diagnose DIR --format json`` prints exactly one JSON document and exits 0, 1 or 2, never
  with an internal error.

The fast suite runs a few dozen examples per reader; the slow suite ``FUZZ_EXAMPLES`` (2,000) each,
with a per-example deadline.
"""

from __future__ import annotations

import json
import struct
from datetime import timedelta
from pathlib import Path
from typing import Callable

import pytest

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _eventgen import pb_field, tfrecord, varint

FAST_EXAMPLES = 40
FUZZ_EXAMPLES = 2000
DEADLINE = timedelta(seconds=5)  # per example; a hang or a quadratic blow-up fails it


# --- valid seeds, generated --------------------------------------------------------------------


def _tb_seed() -> bytes:
    out = b""
    for step in range(1, 9):
        for tag, value in (("train/loss", 1.0 / step), ("val/acc", 0.5 + step / 40)):
            val = pb_field(1, 2, tag.encode()) + pb_field(2, 5, struct.pack("<f", value))
            if step % 3 == 0:  # a TF2-style tensor scalar too
                tensor = pb_field(1, 0, varint(1)) + pb_field(2, 2, b"") + pb_field(5, 2, struct.pack("<f", value))
                val = pb_field(1, 2, (tag + "_t").encode()) + pb_field(8, 2, tensor)
            payload = pb_field(1, 1, struct.pack("<d", 1e9 + step)) + pb_field(2, 0, varint(step)) + pb_field(5, 2, pb_field(1, 2, val))
            out += tfrecord(payload)
    return out


SEEDS: dict[str, bytes] = {
    "csv": b"epoch,step,train_loss,val_acc,name\n" + b"".join(
        f"{e},{e * 10},{1 / (e + 1):.4f},{0.5 + e / 50:.3f},run\n".encode() for e in range(12)) + b"3,,,nan,\n",
    "jsonl": b"".join(json.dumps({"step": s, "train/loss": 1 / s, "lr": 1e-3, "eval": {"acc": s / 20}}).encode() + b"\n"
                      for s in range(1, 15)) + b'{"step": 15, "tag": "val/acc", "value": 0.9}\n',
    "text": b"".join(f"Epoch {e}/12: Train Loss: {1 / e:.4f} | Val Acc: {50 + e:.2f}%\n".encode() for e in range(1, 13))
    + b"iter 130 || Loss: 0.2 ||\r\n100%|####| 10/10 [00:01<00:00] loss=0.11\r",
    "trainer_state": json.dumps({"global_step": 30, "log_history": [
        {"step": s, "loss": 1 / s, "learning_rate": 1e-4} if s % 2 else {"step": s, "eval_loss": 1 / s, "eval_accuracy": s / 40}
        for s in range(1, 31)]}).encode(),
    "mlflow": b"".join(f"{1700000000000 + s} {1 / s:.5f} {s}\n".encode() for s in range(1, 30)),
    "tensorboard": b"",  # filled lazily (needs the reader's CRC)
    "yaml_config": b"# a run config\nrun: {name: x, seed: 1}\ndata: {name: digits}\nmodel: {name: cnn, width: 16}\n"
    b"optimizer: {name: adamw, lr: 0.001, betas: [0.9, 0.999]}\ntraining:\n  epochs: 3\n  batch_size: 32\nanchors: &a {x: 1}\nuse: *a\n",
    "json_config": json.dumps({"lr": 0.001, "batch_size": 64, "model": {"name": "resnet18", "layers": [2, 2, 2, 2]},
                               "seed": 12345678901234567890, "warmup": 0.1}).encode(),
}


def _seed(kind: str) -> bytes:
    if kind == "tensorboard" and not SEEDS["tensorboard"]:
        SEEDS["tensorboard"] = _tb_seed()
    return SEEDS[kind]


# --- mutations ------------------------------------------------------------------------------------

GARBAGE = [b"\x00", b"\xff\xfe", b"\xe9t\xe9", "é中文".encode("utf-16"), b"\r", b"\r\n", b"\n", b"{", b"[",
           b"\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", b"9" * 400, b"nan", b"-inf", b"1e999", b"\x1b[2K"]


@st.composite
def mutated(draw, kind: str) -> bytes:
    data = bytearray(_seed(kind))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "garbage", "huge_line", "nul", "crlf", "cr",
                                   "latin1", "repeat", "delete"]))
        n = len(data)
        at = draw(st.integers(0, max(0, n)))
        if op == "flip" and n:
            i = min(at, n - 1)
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif op == "garbage":
            data[at:at] = draw(st.sampled_from(GARBAGE))
        elif op == "huge_line":  # a wide CSV header is the benchmark's case (per-column cost), not the fuzz's
            unit = draw(st.sampled_from([b"a", b"1.5", b'{"a":', b"\r", b"["] + ([] if kind == "csv" else [b"1,"])))
            data[at:at] = unit * draw(st.integers(1000, 100_000))
        elif op == "nul":
            data[at:at] = b"\x00" * draw(st.integers(1, 500))
        elif op == "crlf":
            data = bytearray(bytes(data).replace(b"\n", b"\r\n"))
        elif op == "cr":
            data = bytearray(bytes(data).replace(b"\n", b"\r"))
        elif op == "latin1":
            data[at:at] = draw(st.text(max_size=20)).encode("latin-1", "replace")
        elif op == "repeat" and n:
            j = draw(st.integers(at, n))
            data[at:at] = bytes(data[at:j]) * draw(st.integers(1, 10))
        elif op == "delete" and n:
            del data[at:at + draw(st.integers(1, 64))]
    return bytes(data)


# --- readers --------------------------------------------------------------------------------------


def _readers() -> dict[str, tuple[str, Callable[[Path], object]]]:
    from trainfix.diagnostics.ingest.csvlog import read_csv
    from trainfix.diagnostics.ingest.jsonlog import read_jsonl, read_trainer_state
    from trainfix.diagnostics.ingest.tensorboard import read_events
    from trainfix.diagnostics.ingest.text import read_text

    def mlflow(path: Path):
        from trainfix.diagnostics.ingest.mlflow import read_metric

        return read_metric(path, "metrics/loss")

    def text(path: Path):  # every point, and the points settled as they are read (what read_run uses)
        raw, settled = read_text(path, path.name), read_text(path, path.name, resolve=True)
        assert settled.raw_points == len(raw)
        return settled

    return {
        "csv": ("metrics.csv", lambda p: read_csv(p, p.name)),
        "jsonl": ("metrics.jsonl", lambda p: read_jsonl(p, p.name)),
        "text": ("train.log", text),
        "trainer_state": ("trainer_state.json", lambda p: read_trainer_state(p, p.name)),
        "mlflow": ("loss", mlflow),
        "tensorboard": ("events.out.tfevents.1.host", lambda p: read_events(p)),
    }


READERS = ["csv", "jsonl", "text", "trainer_state", "mlflow", "tensorboard"]
LOADERS = ["yaml_config", "json_config"]


def _check_table(table: object) -> None:
    import numpy as np

    from trainfix.diagnostics.ingest.table import Table

    if isinstance(table, tuple):  # trainer_state: (table, config)
        table = table[0]
    if hasattr(table, "steps") and not isinstance(table, Table):  # tensorboard's EventScalars
        assert len(table.codes) == len(table.steps) == len(table.values)
        return
    assert isinstance(table, Table)
    n = len(table)
    assert table.codes.shape == table.steps.shape == table.values.shape == (n,)
    assert table.steps.dtype == np.int64
    if n:
        assert 0 <= int(table.codes.min()) and int(table.codes.max()) < len(table.tags)


def _reader_property(kind: str, tmp: Path, data: bytes) -> None:
    name, read = _readers()[kind]
    folder = tmp / ("mlruns/0/r/metrics" if kind == "mlflow" else "d")
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "mlflow":
        (folder.parent / "meta.yaml").write_text("name: r\n")
    path = folder / name
    path.write_bytes(data)
    try:
        _check_table(read(path))
    except (ValueError, OSError, RecursionError):  # the contract: "not this format", "cannot read it", too deep
        pass


def _loader_property(kind: str, tmp: Path, data: bytes) -> None:
    from trainfix.diagnostics.ingest.configs import load_config_file

    path = tmp / ("hparams.yaml" if kind == "yaml_config" else "config.json")
    path.write_bytes(data)
    try:
        got = load_config_file(path)
    except (ValueError, OSError):
        return
    assert isinstance(got, dict)


def _fuzz(kind: str, examples: int):
    prop = _loader_property if kind in LOADERS else _reader_property

    @settings(max_examples=examples, deadline=DEADLINE, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
    @given(data=mutated(kind))
    def run(tmp_path_factory, data):
        prop(kind, tmp_path_factory.mktemp(kind), data)

    return run


@pytest.mark.parametrize("kind", READERS + LOADERS)
def test_reader_survives_mutated_files(kind, tmp_path_factory):
    _fuzz(kind, FAST_EXAMPLES)(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("kind", READERS + LOADERS)
def test_reader_survives_2000_mutated_files(kind, tmp_path_factory):
    _fuzz(kind, FUZZ_EXAMPLES)(tmp_path_factory)


# --- the whole command: one JSON document, whatever the run dir holds -----------------------------


def _cli_property(tmp: Path, files: dict[str, bytes]) -> None:
    from typer.testing import CliRunner

    from trainfix.cli.app import app

    run = tmp / "run"
    (run / "tb").mkdir(parents=True)
    for rel, data in files.items():
        (run / rel).write_bytes(data)
    result = CliRunner().invoke(app, ["diagnose", str(run), "--format", "json"])
    assert result.exit_code in (0, 1, 2), result.output
    doc = json.loads(result.stdout)  # exactly one JSON document, errors included
    assert isinstance(doc, dict) and doc.get("schema") == 1
    if "error" in doc:
        assert doc["error"]["code"] != "internal", doc
    else:
        assert all("internal error" not in f["message"] for r in doc["runs"] for f in r["findings"])


def _cli(examples: int):
    names = {"csv": "metrics.csv", "jsonl": "metrics.jsonl", "text": "train.log", "tensorboard": "tb/events.out.tfevents.1.h",
             "yaml_config": "hparams.yaml", "json_config": "config.json", "trainer_state": "trainer_state.json"}

    @settings(max_examples=examples, deadline=DEADLINE * 4, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
    @given(st.fixed_dictionaries({}, optional={names[k]: mutated(k) for k in names}))
    def run(tmp_path_factory, files):
        _cli_property(tmp_path_factory.mktemp("cli"), files)

    return run


def test_diagnose_json_is_one_document_for_mutated_run_dirs(tmp_path_factory):
    _cli(15)(tmp_path_factory)


@pytest.mark.slow
def test_diagnose_json_is_one_document_for_300_mutated_run_dirs(tmp_path_factory):
    _cli(300)(tmp_path_factory)


def test_the_seeds_are_valid_files(tmp_path):
    """The mutations start from files each reader reads in full (else the fuzz proves little)."""
    for kind in READERS:
        name, read = _readers()[kind]
        folder = tmp_path / kind / ("mlruns/0/r/metrics" if kind == "mlflow" else "d")
        folder.mkdir(parents=True)
        if kind == "mlflow":
            (folder.parent / "meta.yaml").write_text("name: r\n")
        (folder / name).write_bytes(_seed(kind))
        got = read(folder / name)
        table = got[0] if isinstance(got, tuple) else got
        assert len(table.steps) >= 10, kind
    for kind in LOADERS:
        from trainfix.diagnostics.ingest.configs import load_config_file

        path = tmp_path / ("hparams.yaml" if kind == "yaml_config" else "config.json")
        path.write_bytes(_seed(kind))
        assert len(load_config_file(path)) >= 4, kind
