"""Hostile run directories: nothing named in them runs, nothing hangs, one bad file never sinks a
run, outputs never overwrite inputs.  One small instance of each class (the GB-size ones are in
benchmarks/hostile_inputs.py)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from _eventgen import pb_field, scalar_event, tfrecord, varint
from typer.testing import CliRunner

from trainfix.cli.app import app

# --- nothing named in an input is imported or called -------------------------------------------

TRAP = textwrap.dedent("""
    # Imported or called only if trainfix executes what a config names.
    import pathlib
    HERE = pathlib.Path(__file__).with_name("trap-fired")
    HERE.with_suffix(".imported").touch()

    def evil(*args, **kwargs):
        HERE.with_suffix(".called").touch()
        raise SystemExit("trap called")
""")


def _metrics(run: Path, n: int = 30) -> None:
    lines = []
    for s in range(1, n + 1):
        lines.append(json.dumps({"step": s, "tag": "train/loss", "value": 2.0 / s}))
        lines.append(json.dumps({"step": s, "tag": "val/acc", "value": 0.5 + s / 100}))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def hostile_run(tmp_path, monkeypatch):
    """A run dir whose trainfix-style config.yaml names a trap module for data, model and loss,
    with a checkpoint beside it (what makes the key check want the model)."""
    import torch
    trap_dir = tmp_path / "site"
    trap_dir.mkdir()
    (trap_dir / "tf_trap.py").write_text(TRAP)
    monkeypatch.syspath_prepend(str(trap_dir))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    _metrics(run)
    (run / "config.yaml").write_text(textwrap.dedent("""
        run: {name: hostile, seed: 0}
        data: {_component_: "tf_trap:evil", n: 1}
        model: {name: mlp}
        loss: {_component_: "tf_trap:evil"}
        optimizer: {name: adamw, lr: 0.001}
        training: {epochs: 1, batch_size: 8}
    """))
    net = torch.nn.Linear(4, 2)
    torch.save({"model": torch.nn.DataParallel(net).state_dict(), "step": 30}, run / "checkpoints" / "last.pt")
    yield run, trap_dir
    sys.modules.pop("tf_trap", None)


def _fired(trap_dir: Path) -> list[str]:
    return sorted(p.suffix for p in trap_dir.glob("trap-fired.*"))


@pytest.mark.parametrize("argv", [
    ["diagnose", "{run}", "--format", "json"],
    ["check", "{run}", "--format", "json"],
    ["compare", "{run}", "{run}", "--format", "json"],
    ["metrics", "{run}"],
    ["apply", "{run}", "--dry-run"],
    ["apply", "{run}", "--fix", "lower-lr", "--dry-run"],
    ["inspect", "{run}/checkpoints/last.pt", "--model", "{run}/config.yaml", "--format", "json"],
    ["apply", "{run}/checkpoints/last.pt", "--fix", "checkpoint-keys", "--model", "{run}", "-o", "{run}/../fixed.pt"],
    ["train", "--config", "{run}/config.yaml", "--validate"],
])
def test_no_command_reading_a_run_dir_imports_or_calls_what_its_config_names(hostile_run, argv):
    run, trap_dir = hostile_run
    args = [a.replace("{run}", str(run)) for a in argv]
    result = CliRunner().invoke(app, args)
    assert "trap called" not in result.output
    assert _fired(trap_dir) == [], (args, result.output)
    assert result.exit_code in (0, 1, 2), result.output
    assert "internal error" not in result.output


def test_diagnose_still_reports_the_prefix_and_says_why_the_model_was_not_built(hostile_run):
    run, trap_dir = hostile_run
    result = CliRunner().invoke(app, ["diagnose", str(run), "--format", "json"])
    doc = json.loads(result.stdout)
    (f,) = [f for r in doc["runs"] for f in r["findings"] if f["detector"] == "checkpoint-key-mismatch"]
    assert "keys start with 'module.'" in f["message"]
    assert "not one of trainfix's registered" in f["evidence"]["model_comparison"]
    assert _fired(trap_dir) == []


def test_train_validate_imports_components_only_when_asked(hostile_run):
    run, trap_dir = hostile_run
    plain = CliRunner().invoke(app, ["train", "--config", str(run / "config.yaml"), "--validate"])
    assert plain.exit_code == 0, plain.output
    assert "not imported" in plain.output and _fired(trap_dir) == []
    asked = CliRunner().invoke(app, ["train", "--config", str(run / "config.yaml"), "--validate", "--import-components"])
    assert _fired(trap_dir) == [".imported"]  # imported to bind the arguments, never called
    assert asked.exit_code in (0, 2)


def test_train_validate_reports_a_component_module_that_cannot_be_found(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {name: digits}\nmodel: {_component_: no_such_pkg_tf.models.Net}\n")
    result = CliRunner().invoke(app, ["train", "--config", str(cfg), "--validate"])
    assert result.exit_code == 2
    assert "no module named 'no_such_pkg_tf'" in result.output


def test_registered_targets_named_as_component_paths_still_build():
    import torch  # noqa: F401 - a declared dependency; its absence must fail, not skip
    from trainfix.trainers.build import expected_model

    cfg = {"data": {"name": "synthetic"}, "model": {"_component_": "trainfix.trainers.components.models:mlp"}}
    layout = expected_model(cfg)
    assert layout.shapes and layout.params <= set(layout.shapes)


def test_fix_planning_never_imports_a_component(hostile_run):
    run, trap_dir = hostile_run
    import yaml

    from trainfix.fixes.patch import validate_trainfix
    from trainfix.trainers.config import component_accepts

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert component_accepts(cfg, "data", "n") is None  # unknown without importing: no guess
    validate_trainfix(cfg, "lower-lr")  # the schema check of a patched config imports nothing
    assert _fired(trap_dir) == []


# --- only regular files are read; nothing hangs --------------------------------------------------


def test_fifos_and_device_links_are_skipped_with_the_reason_and_nothing_hangs(tmp_path):
    import os
    import subprocess

    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True)
    (run / "logs").mkdir()
    _metrics(run)  # the one real log
    for name in ("train.log", "config.yaml", "tb/events.out.tfevents.1.host", "last.pt", "trainfix.toml", "history.json",
                 "results.txt"):
        os.mkfifo(run / name)
    for name in ("logs/metrics.jsonl", "logs/stdout.txt", "hparams.yaml", "dataset.json", "best.pt"):
        (run / name).symlink_to("/dev/zero")
    for args in (["diagnose", str(run), "--format", "json"], ["metrics", str(run), "--format", "json"],
                 ["inspect", str(run / "last.pt"), "--format", "json"], ["apply", str(run / "hparams.yaml"), "--fix", "lower-lr"]):
        proc = subprocess.run([sys.executable, "-m", "trainfix", *args], capture_output=True, text=True, timeout=120,
                              env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")})
        assert proc.returncode in (0, 1, 2), proc.stderr
        assert "internal error" not in proc.stdout + proc.stderr
        if args[0] in ("inspect", "apply"):
            assert proc.returncode == 2 and len((proc.stdout + proc.stderr).strip().splitlines()) <= 3, proc.stderr
            continue
        doc = json.loads(proc.stdout)
        inputs = doc["runs"][0]["inputs"] if "runs" in doc else doc["inputs"] if "inputs" in doc else doc[0]["inputs"]
        reasons = {s["path"]: s["reason"] for s in inputs["skipped"]}
        assert any("FIFO" in r for p, r in reasons.items() if p.endswith("train.log")), reasons
        assert any("character device" in r and "/dev/zero" in r for p, r in reasons.items() if p.endswith("metrics.jsonl"))
        assert "train/loss" in inputs["tags"]


def test_a_file_over_the_size_budget_is_skipped_and_the_rest_is_read(tmp_path, monkeypatch):
    from trainfix.diagnostics.ingest import read_run

    _metrics(tmp_path)
    (tmp_path / "train.log").write_text("".join(f"epoch {e} loss: {1 / e:.3f}\n" for e in range(1, 20000)))
    monkeypatch.setenv("TRAINFIX_MAX_FILE_MB", "0.1")  # metrics.jsonl is ~4 KB, train.log ~300 KB
    run = read_run(tmp_path)
    (skip,) = run.inputs["skipped"]
    assert skip["path"] == "train.log" and "per-file budget" in skip["reason"] and "TRAINFIX_MAX_FILE_MB" in skip["reason"]
    assert "train/loss" in run.tags


def test_the_size_and_time_budgets_come_from_the_settings(tmp_path):
    from trainfix.diagnostics.ingest import ingest_budget
    from trainfix.diagnostics.settings import load_settings

    (tmp_path / "trainfix.toml").write_text("[ingest]\nmax_file_mb = 3\nmax_file_seconds = 7.5\n")
    b = ingest_budget(load_settings(tmp_path))
    assert (b.max_bytes, b.max_seconds) == (3 << 20, 7.5)


def test_a_spent_time_budget_stops_the_read_with_the_reason(tmp_path):
    from trainfix.diagnostics.ingest import safe_read

    p = tmp_path / "train.log"
    p.write_bytes(b"loss: 1\n" * 50_000)
    with safe_read.budget(safe_read.Budget(max_seconds=0.0)), safe_read.deadline():
        with pytest.raises(safe_read.BudgetExceeded, match="s budget"):
            with safe_read.open_input(p) as fh:
                for _ in fh:
                    pass


def test_a_progress_bar_log_with_only_carriage_returns_streams_in_bounded_memory(tmp_path):
    import tracemalloc

    from trainfix.diagnostics.ingest.text import read_text

    p = tmp_path / "train.log"
    bar = "Epoch 1/1:  45%|#########           | 450/1000 [00:10<00:12, 44.2it/s]"
    p.write_text("".join(f"{bar} step {i} loss: {1 / (i + 1):.4f}\r" if i % 100 == 0 else bar + "\r"
                         for i in range(25_000)))  # ~1.9 MB, not one \n; 250 redraws carry a loss
    tracemalloc.start()
    table = read_text(p, "train.log")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(table) == 250
    assert peak < 1 << 20  # the 1.9 MB "line" is never held whole, nor decoded whole


def test_a_sparse_and_a_garbage_events_file_beside_a_valid_log_cost_one_skip_each(tmp_path):
    """A sparse file of zeros (the 2 GB case, at 16 MiB) and random bytes named as event files:
    each is read to its end without a scalar, said so, and the run is the JSON log's."""
    import os
    import random

    from trainfix.diagnostics.ingest import read_run

    _metrics(tmp_path)
    with open(tmp_path / "events.out.tfevents.1.zeros", "wb") as fh:
        fh.truncate(16 << 20)
    (tmp_path / "events.out.tfevents.2.garbage").write_bytes(random.Random(11).randbytes(4 << 20))
    run = read_run(tmp_path)
    skipped = {os.path.basename(s["path"]): s["reason"] for s in run.inputs["skipped"]}
    assert set(skipped) == {"events.out.tfevents.1.zeros", "events.out.tfevents.2.garbage"}
    assert all(r.startswith("tensorboard") for r in skipped.values())
    assert run.inputs["tags"] == ["train/loss", "val/acc"] and run.inputs["points"] == 60


def test_a_csv_with_100_000_header_columns_reads_in_one_pass(tmp_path):
    from trainfix.diagnostics.ingest import read_run

    header = "step," + ",".join(f"m{i}" for i in range(100_000))  # 1.3 MB of header
    rows = [f"{s}," + ",".join("1" if (i + s) % 7 else "" for i in range(100_000)) for s in (1, 2)]
    (tmp_path / "wide.csv").write_text(header + "\n" + "\n".join(rows) + "\n")
    run = read_run(tmp_path)
    assert run.inputs["skipped"] == [] and len(run.inputs["tags"]) == 100_000
    assert run.inputs["points"] == sum(1 for s in (1, 2) for i in range(100_000) if (i + s) % 7)


def test_a_run_of_thousands_of_tiny_logs_keeps_no_table_per_file(tmp_path):
    """3,000 one-line logs (the 50,000-file case, smaller): each file's points are gathered as it is
    read, so what stays per file is its entry in the file list, not a table of arrays (~1 KB)."""
    import tracemalloc

    from trainfix.diagnostics.ingest import read_run

    for i in range(3_000):
        sub = tmp_path / f"d{i // 500}"
        sub.mkdir(exist_ok=True)
        (sub / f"log{i}.jsonl").write_text(f'{{"step": 1, "loss{i % 50}": 0.5}}\n')
    read_run(tmp_path / "d0")  # the imports, outside the measurement
    tracemalloc.start()
    try:
        run = read_run(tmp_path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(run.inputs["files"]) == 3_000 and run.inputs["points"] == 50
    assert len(run.inputs["duplicates"]) == 50 and run.inputs["skipped"] == []
    assert peak < 3_000 * 1_500, peak  # a Table per file held until assembly was about 2.4 KB a file


def test_a_restarted_text_log_is_settled_while_it_is_read(tmp_path):
    """The 500 MB case, smaller: 100 runs appended to one log; read_run keeps the last (all are as
    long), reports the restarts (99, all back to epoch 0: one entry), and counts every point read
    in the file list."""
    from trainfix.diagnostics.ingest import read_run

    chunk = "".join(f"Epoch {e}/99: Train Loss: {1 / (e + 1):.4f} | Val Acc: {50 + e % 40:.2f}%\n"
                    f"[W] some warning about data loader worker {e}\n" for e in range(100))
    (tmp_path / "train.log").write_text(chunk * 100)
    run = read_run(tmp_path)
    assert run.inputs["points"] == 200 and run.inputs["files"][0]["points"] == 20_000
    assert run.inputs["restarts"] == [{"source": "train.log", "step": 0, "from_step": 99, "tags": ["Train Loss", "Val Acc"]}]
    assert run.inputs["appended_runs"] == [{"source": "train.log", "attempts": 100, "kept": 100, "points": [200] * 100}]
    assert run.series("Train Loss").steps.tolist() == list(range(100))


# --- one bad file never sinks a run --------------------------------------------------------------


def _event_file(path: Path, records: list[bytes]) -> None:
    path.write_bytes(b"".join(tfrecord(p) for p in records))


def test_a_tensorboard_step_above_2_63_is_read_as_protobuf_reads_it(tmp_path):
    from trainfix.diagnostics.ingest import read_run

    _metrics(tmp_path)
    _event_file(tmp_path / "events.out.tfevents.1.host",
                [scalar_event(varint(s), "tb/loss", 1.0 / s) for s in range(1, 6)]
                + [scalar_event(varint(2**69 + 7), "tb/loss", 9.0)])  # a 10-byte varint past 2**64
    run = read_run(tmp_path)
    assert run.inputs["skipped"] == []
    assert sorted(run.series("tb/loss").steps.tolist()) == [1, 2, 3, 4, 5, 7]  # truncated to 64 bits


def test_a_tensor_shape_with_many_huge_dims_is_read_in_linear_time(tmp_path):
    import struct

    from trainfix.diagnostics.ingest.tensorboard import read_events

    dims = b"".join(pb_field(1, 2, pb_field(1, 0, varint(2**62 + 1))) for _ in range(100_000))  # 1.2 MB
    tensor = pb_field(1, 0, varint(1)) + pb_field(2, 2, dims) + pb_field(5, 2, struct.pack("<f", 1.0))
    val = pb_field(1, 2, b"big") + pb_field(8, 2, tensor)
    huge = pb_field(1, 1, struct.pack("<d", 1.0)) + pb_field(2, 0, varint(3)) + pb_field(5, 2, pb_field(1, 2, val))
    path = tmp_path / "events.out.tfevents.2.host"
    _event_file(path, [scalar_event(varint(1), "loss", 0.5), huge])
    ev = read_events(path)  # a product of the dims took minutes; any dim != 1 now decides at once
    assert ev.tags == ["loss"] and len(ev.steps) == 1


@pytest.mark.parametrize("name,content,reason", [
    ("config.json", "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ("args.json", '{"seed": ' + "7" * 5000 + "}", "too many digits"),
    ("hparams.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")), "alias bomb"),
    ("opt.yaml", "- a\n- b\n", "not a mapping"),
])
def test_a_config_that_cannot_be_read_is_skipped_with_a_clear_reason(tmp_path, name, content, reason):
    from trainfix.diagnostics.ingest import read_run

    _metrics(tmp_path)
    (tmp_path / name).write_text(content)
    run = read_run(tmp_path)
    (skip,) = run.inputs["skipped"]
    assert skip["path"] == name and reason in skip["reason"], skip
    assert "train/loss" in run.tags


@pytest.mark.parametrize("exc", [RecursionError("maximum recursion depth exceeded"), OverflowError("int too big"),
                                 MemoryError(), ZeroDivisionError("a reader bug")])
def test_whatever_a_reader_raises_skips_only_that_file(tmp_path, monkeypatch, exc):
    from trainfix.diagnostics.ingest import read_run, text

    _metrics(tmp_path)
    (tmp_path / "train.log").write_text("epoch 1 loss: 0.5\n")

    def broken(path, source):
        raise exc

    monkeypatch.setattr(text, "read_text", broken)
    run = read_run(tmp_path)
    (skip,) = run.inputs["skipped"]
    assert skip["path"] == "train.log" and skip["reason"].startswith("text not read: ")
    assert "train/loss" in run.tags
    result = CliRunner().invoke(app, ["diagnose", str(tmp_path), "--format", "json"])
    assert json.loads(result.stdout)["runs"][0]["inputs"]["skipped"] == [skip]
    shown = CliRunner().invoke(app, ["metrics", str(tmp_path)])
    assert "train.log" in shown.output and "text not read" in shown.output


@pytest.mark.parametrize("name,content", [
    ("config.json", "[" * 100_000 + "]" * 100_000),
    ("config.json", '{"lr": ' + "1" * 5000 + "}"),
    ("hparams.yaml", "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))),
])
def test_apply_on_a_hostile_config_is_one_line_and_exit_2(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    result = CliRunner().invoke(app, ["apply", str(tmp_path / name), "--fix", "lower-lr", "--dry-run"])
    assert result.exit_code == 2, result.output
    assert "internal error" not in result.output and result.output.startswith("error: ")


# --- outputs never overwrite an input; one writer; write errors in one line -----------------------


def _run_with_inputs(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    _metrics(run)
    (run / "dataset.json").write_text('{"train": {"size": 10}}')
    (run / "hparams.yaml").write_text("lr: 0.001\nbatch_size: 16\n")
    return run


@pytest.mark.parametrize("argv,victim", [
    (["diagnose", "{run}", "-o", "{run}/metrics.jsonl"], "metrics.jsonl"),
    (["diagnose", "{run}", "--format", "json", "-o", "{run}/hparams.yaml"], "hparams.yaml"),
    (["check", "{run}", "--junit", "{run}/dataset.json"], "dataset.json"),
    (["check", "{run}", "--junit", "{run}/link-to-metrics"], "metrics.jsonl"),
    (["apply", "{run}/hparams.yaml", "--fix", "lower-lr", "-o", "{run}/metrics.jsonl"], "metrics.jsonl"),
    (["apply", "{run}/hparams.yaml", "--fix", "lower-lr", "-o", "{run}/hparams.yaml"], "hparams.yaml"),
])
def test_an_output_over_a_file_the_command_read_is_refused_with_exit_2(tmp_path, argv, victim):
    run = _run_with_inputs(tmp_path)
    (run / "link-to-metrics").symlink_to(run / "metrics.jsonl")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    result = CliRunner().invoke(app, [a.replace("{run}", str(run)) for a in argv])
    assert result.exit_code == 2, result.output
    assert ("error: " in result.output or '"error"' in result.output)
    assert "input" in result.output or "run's own config" in result.output
    assert "internal error" not in result.output
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before  # nothing written, nothing left


def test_a_repaired_checkpoint_is_never_written_over_the_one_it_repairs(tmp_path):
    import torch
    ck = tmp_path / "last.pt"
    torch.save(torch.nn.DataParallel(torch.nn.Linear(2, 2)).state_dict(), ck)
    before = ck.read_bytes()
    result = CliRunner().invoke(app, ["apply", str(ck), "--fix", "checkpoint-keys", "-o", str(ck)])
    assert result.exit_code == 2 and "input" in result.output
    assert ck.read_bytes() == before


def test_outputs_get_the_mode_the_umask_gives_whoever_writes_them(tmp_path):
    import os

    run = _run_with_inputs(tmp_path)
    old = os.umask(0o027)
    try:
        CliRunner().invoke(app, ["diagnose", str(run), "--format", "json", "-o", str(tmp_path / "r.json")])
        CliRunner().invoke(app, ["apply", str(run / "hparams.yaml"), "--fix", "lower-lr", "-o", str(tmp_path / "h.yaml")])
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "h.yaml").stat().st_mode & 0o777 == 0o640


def test_importing_trainfix_leaves_the_umask_alone():
    import subprocess

    code = ("import os; os.umask(0o077); import trainfix.trainers.config, trainfix.trainers.checkpoint, "
            "trainfix.outputs, trainfix.cli.app; m = os.umask(0); print(oct(m))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0o77"


@pytest.mark.parametrize("err,cause", [(28, "no space left"), (27, "file too large"), (30, "read-only file system"),
                                       (13, "permission denied")])
def test_a_write_error_is_one_line_naming_the_path_and_leaves_no_partial_file(tmp_path, monkeypatch, err, cause):
    import builtins
    import os

    run = _run_with_inputs(tmp_path)
    target = tmp_path / "out" / "report.json"
    target.parent.mkdir()
    real_open = builtins.open

    def failing_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        if "w" in mode and str(file).startswith(str(target.parent)):
            fh.close()
            raise OSError(err, os.strerror(err))
        return fh

    monkeypatch.setattr(builtins, "open", failing_open)
    result = CliRunner().invoke(app, ["diagnose", str(run), "-o", str(target)])
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == f"error: cannot write {target}: {cause}" or \
        result.stderr.startswith(f"error: cannot write {target}: {cause}"), result.stderr
    assert list(target.parent.iterdir()) == []  # no partial file, no temporary file


def test_a_real_file_size_limit_is_an_output_error_for_text_and_for_torch_save(tmp_path):
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), as a full disk would (ENOSPC)."""
    import subprocess

    code = textwrap.dedent(f"""
        import resource, signal, sys, torch
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        from trainfix.errors import OutputError
        from trainfix.outputs import write_text, write_with
        for name, call in (("a.txt", lambda p: write_text(p, "x" * 100_000)),
                           ("b.pt", lambda p: write_with(p, lambda tmp: torch.save(torch.zeros(100_000), tmp)))):
            try:
                call({str(tmp_path)!r} + "/" + name)
            except OutputError as exc:
                print(exc.message)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout + out.stderr
    assert lines[0].endswith("a.txt: file too large (over the size limit for one file)")
    assert "b.pt: " in lines[1] and ("too large" in lines[1] or "write failed" in lines[1])
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# --- a run killed before its first checkpoint restarts cleanly -----------------------------------

TINY = """
run: {name: killed, device: cpu}
data: {name: synthetic, num_classes: 3, num_samples: 120, dim: 6}
model: {name: mlp, hidden: [8]}
training: {epochs: 1, batch_size: 30}
logging: {progress: false, tensorboard: false}
"""


def test_a_run_killed_before_its_first_checkpoint_restarts_cleanly(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY)
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)  # what a run killed in its first epoch leaves
    (run / "config.yaml").write_text(TINY)
    (run / "metrics.jsonl").write_text('{"step": 1, "epoch": 0, "train/loss_step": 9.0}\n{"step": 2, "ep')
    again = CliRunner().invoke(app, ["train", "--config", str(cfg), "--out", str(run)])
    assert again.exit_code == 2 and "before its first checkpoint" in again.stderr and "--resume" in again.stderr
    res = CliRunner().invoke(app, ["train", "--out", str(run), "--resume"])
    assert res.exit_code == 0, res.output
    assert "starting the run over" in res.output
    assert (run / "checkpoints" / "last.pt").is_file()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows and all(r.get("train/loss_step") != 9.0 for r in rows)  # the killed attempt's lines are gone
