"""Reading logs must stay light: no torch import (checked in a fresh interpreter)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip().splitlines()[-1]


def test_import_diagnostics_does_not_import_torch():
    out = _run("""
        import sys
        import trainfix.diagnostics, trainfix.diagnostics.ingest, trainfix.diagnostics.roles
        import trainfix.diagnostics.settings, trainfix.diagnostics.run
        print('torch' in sys.modules)
    """)
    assert out == "False"


def test_reading_a_run_does_not_import_torch(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    (tmp_path / "last.pt").write_bytes(b"junk")
    out = _run(f"""
        import sys
        from trainfix.diagnostics.ingest import read_run
        run = read_run({str(tmp_path)!r})
        assert run.tags == ['train/loss'] and len(run.checkpoints) == 1
        print('torch' in sys.modules)
    """)
    assert out == "False"


def test_trainfix_metrics_does_not_import_torch(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    out = _run(f"""
        import sys, json
        from typer.testing import CliRunner
        from trainfix.cli.app import app
        res = CliRunner().invoke(app, ["metrics", {str(tmp_path)!r}, "--format", "json"])
        assert res.exit_code == 0, res.output
        print(json.dumps(['torch' in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:5]]))
    """)
    loaded, names = json.loads(out)
    assert not loaded, f"torch imported by the CLI: {names}"


def _console(args: list[str]) -> dict:
    """Run the console script's entry point on ``args`` in a fresh interpreter; return its exit
    code and which of the modules that matter it imported."""
    out = _run(f"""
        import sys, json
        from trainfix.cli.app import main
        sys.argv = ["trainfix", *{args!r}]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code
        mods = sorted(m for m in sys.modules if m.startswith(("torch", "trainfix.cli.", "trainfix.diagnostics.ingest")))
        print(json.dumps({{"code": code, "modules": mods}}))
    """)
    return json.loads(out)


def test_apply_on_a_config_never_imports_torch(tmp_path):
    cfg = tmp_path / "config.yaml"
    cfg.write_text("optimizer:\n  name: adamw\n  lr: 0.1\n")
    got = _console(["apply", "--fix", "lower-lr", str(cfg), "-o", str(tmp_path / "out.yaml")])
    assert got["code"] == 0 and (tmp_path / "out.yaml").is_file()
    assert not [m for m in got["modules"] if m.startswith("torch")], got["modules"]


def test_a_misspelled_fix_is_rejected_before_the_run_is_read(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
    (tmp_path / "config.yaml").write_text("optimizer:\n  lr: 0.1\n")
    got = _console(["apply", "--fix", "lower-lrr", str(tmp_path)])
    assert got["code"] == 2
    assert not [m for m in got["modules"] if m.startswith("trainfix.diagnostics.ingest")], got["modules"]


def test_the_console_script_imports_only_the_command_it_runs(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n{"step": 2, "train/loss": 0.9}\n')
    got = _console(["diagnose", str(tmp_path)])
    assert got["code"] == 0
    commands = [m for m in got["modules"] if m.startswith("trainfix.cli.") and m not in ("trainfix.cli.app", "trainfix.cli.common", "trainfix.cli.coercion")]
    assert commands == ["trainfix.cli.diagnose"], commands
    assert not [m for m in got["modules"] if m.startswith("torch")]
