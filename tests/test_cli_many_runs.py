"""Many runs: worker processes give the report one process gives; shards merge back into it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app


def _sweep(root, n=7):
    for i in range(n):
        run = root / f"lr-{i:02d}"
        run.mkdir(parents=True)
        lines = []
        for step in range(60):
            loss = 2.0 / (1 + step) if i % 3 else 0.5 + 0.05 * step * (1 if step > 20 else 0)  # every third diverges
            acc = min(0.99, 0.3 + step / 100)
            lines.append(json.dumps({"step": step, "epoch": step // 6, "train/loss": loss, "val/acc": acc}))
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _json(args):
    res = CliRunner().invoke(app, args)
    assert res.exit_code in (0, 1), res.output
    return json.loads(res.stdout)


def test_worker_processes_give_the_one_process_report(tmp_path):
    root = _sweep(tmp_path / "sweep")
    one = _json(["diagnose", str(root), "--format", "json", "--jobs", "1"])
    many = _json(["diagnose", str(root), "--format", "json", "--jobs", "3"])
    assert len(one["runs"]) == 7 and one == many
    assert any(r["findings"] for r in one["runs"])  # the diverging runs are found in both


def test_shards_merge_back_into_the_whole_sweep(tmp_path):
    root = _sweep(tmp_path / "sweep")
    whole = _json(["check", str(root), "--format", "json", "--exit-zero"])
    parts = []
    for k in (1, 2, 3):
        out = tmp_path / f"shard-{k}.json"
        res = CliRunner().invoke(app, ["check", str(root), "--format", "json", "--exit-zero", "--shard", f"{k}/3",
                                       "-o", str(out)])
        assert res.exit_code == 0, res.output
        parts.append(out)
    sizes = [len(json.loads(p.read_text())["runs"]) for p in parts]
    assert sizes == [3, 2, 2]
    merged = _json(["merge", *map(str, parts)])
    assert sorted(merged["runs"], key=lambda r: r["path"]) == sorted(whole["runs"], key=lambda r: r["path"])
    gate = CliRunner().invoke(app, ["merge", *map(str, parts), "--fail-on", "warning", "-o", str(tmp_path / "all.json")])
    worst = {f["severity"] for r in whole["runs"] for f in r["findings"]}
    assert gate.exit_code == (1 if worst & {"warning", "error"} else 0)


@pytest.mark.parametrize("shard", ["0/3", "4/3", "a/b", "3"])
def test_a_bad_shard_is_refused_before_any_work(tmp_path, shard):
    res = CliRunner().invoke(app, ["diagnose", str(tmp_path / "does-not-exist"), "--shard", shard])
    assert res.exit_code == 2 and "--shard" in res.output


def test_merge_refuses_what_is_not_a_report(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"runs": 3}')
    res = CliRunner().invoke(app, ["merge", str(bad)])
    assert res.exit_code == 2 and "not a trainfix JSON report" in res.output
    res = CliRunner().invoke(app, ["merge", str(bad), "-o", str(bad)])
    assert res.exit_code == 2 and "not overwritten" in res.output
