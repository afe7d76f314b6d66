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
