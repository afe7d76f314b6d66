"""Plain options are coerced without pydantic and exactly as typer coerces them; the rest still
goes through typer's own adapters (its checks and its error messages)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.testing import CliRunner

from trainfix.cli import coercion

runner = CliRunner()


def _app(seen: dict) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def cmd(paths: Annotated[list[Path], typer.Argument()],
            name: Annotated[Optional[str], typer.Option("--name")] = None,
            out: Annotated[Optional[Path], typer.Option("--out", dir_okay=False)] = None,
            must: Annotated[Optional[Path], typer.Option("--must", exists=True)] = None,
            jobs: Annotated[Optional[int], typer.Option("--jobs")] = None,
            tags: Annotated[Optional[list[str]], typer.Option("--tag")] = None) -> None:
        seen.update(paths=paths, name=name, out=out, must=must, jobs=jobs, tags=tags)

    return app


def test_plain_values_come_out_as_typer_makes_them(tmp_path):
    assert coercion.install()
    seen: dict = {}
    res = runner.invoke(_app(seen), [str(tmp_path), "a//b/", "--name", " x ", "--out", "o.json",
                                     "--must", str(tmp_path), "--jobs", "3", "--tag", "t1", "--tag", "t2"])
    assert res.exit_code == 0, res.output
    assert seen == {"paths": [tmp_path, Path("a/b")], "name": " x ", "out": Path("o.json"), "must": tmp_path,
                    "jobs": 3, "tags": ["t1", "t2"]}
    assert all(type(p) is type(Path()) for p in seen["paths"])


CASES = [
    ["{d}", "a//b/", "--name", " x ", "--out", "o.json", "--must", "{d}", "--tag", "t1", "--tag", "t2"],
    ["{d}", "--must", "{d}/nope"],  # typer's exists check
    ["{d}", "--out", "{d}"],  # typer's dir_okay check
    ["{d}", "--jobs", "many"],  # not plain: typer's own adapter and message
    ["{d}", "--jobs", " 7 "],
    ["", "-"],
]


def _outcomes(tmp_path) -> list:
    got = []
    for case in CASES:
        seen: dict = {}
        res = runner.invoke(_app(seen), [a.format(d=tmp_path) for a in case], env={"COLUMNS": "200"})
        got.append((res.exit_code, res.output, seen))
    return got


def test_same_values_checks_and_messages_as_typer_alone(tmp_path, monkeypatch):
    from typer import core

    assert coercion.install()
    ours = _outcomes(tmp_path)
    monkeypatch.setattr(core, "build_runtime_param", core.build_runtime_param.typer_original)
    theirs = _outcomes(tmp_path)
    assert ours == theirs
    assert [code for code, _, _ in ours] == [0, 2, 2, 2, 0, 0]
    assert "does not exist" in ours[1][1] and "is a directory" in ours[2][1]


def test_install_is_idempotent():
    assert coercion.install() and coercion.install()


def test_small_diagnose_imports_no_pydantic(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(f'{{"step": {i}, "train/loss": {1.0 / (i + 1)}}}\n'
                                                    for i in range(50)))
    code = textwrap.dedent(f"""
        import sys
        from trainfix.cli.app import main
        sys.argv = ["trainfix", "diagnose", {str(tmp_path)!r}, "--format", "json", "-o", {str(tmp_path / "r.json")!r}]
        try:
            main()
        except SystemExit as exc:
            print(exc.code, "pydantic" in sys.modules, "scipy" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-3:] == ["0", "False", "False"], out.stderr
