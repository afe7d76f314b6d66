"""Hostile run directories: nothing named in them runs, nothing hangs, one bad file never sinks a
run, outputs never overwrite inputs.  One small instance of each class (the GB-size ones are in
benchmarks/hostile_inputs.py)."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
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
    torch = pytest.importorskip("torch")
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
    pytest.importorskip("torch")
    from trainfix.trainers.build import expected_model

    cfg = {"data": {"name": "synthetic"}, "model": {"_component_": "trainfix.trainers.components.models:mlp"}}
    layout = expected_model(cfg)
    assert layout.shapes and layout.params <= set(layout.shapes)


def test_fix_planning_never_imports_a_component(hostile_run):
    run, trap_dir = hostile_run
    import yaml

    from trainfix.fixes.base import component_accepts
    from trainfix.fixes.patch import validate_trainfix

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert component_accepts(cfg, "data", "n") is None  # unknown without importing: no guess
    validate_trainfix(cfg, "lower-lr")  # the schema check of a patched config imports nothing
    assert _fired(trap_dir) == []
