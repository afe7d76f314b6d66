"""`trainfix metrics`: what was read, shown for people (rich) and for tools (json)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from trainfix.cli.app import app

runner = CliRunner()


def _run_dir(tmp_path):
    rows = [{"step": s, "train/loss": 1.0 / (s + 1), "Val Acc": 0.5 + s / 100} for s in range(10)]
    rows += [{"step": 5, "train/loss": 0.1, "Val Acc": 0.9}]  # a restart at step 5
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "notes.txt").write_text("nothing here\n")
    (tmp_path / "last.pt").write_bytes(b"junk")
    return tmp_path


def test_rich_output_lists_everything(tmp_path):
    res = runner.invoke(app, ["metrics", str(_run_dir(tmp_path))])
    assert res.exit_code == 0, res.output
    out = res.output
    for needle in ("jsonl (1 file)", "metrics.jsonl", "train/loss", "Val Acc", "val_acc -> Val Acc (max)",
                   "restarts", "step 9 -> 5", "skipped", "notes.txt", "last.pt", "[/_.]"):
        assert needle in out, needle


def test_json_output(tmp_path):
    res = runner.invoke(app, ["metrics", str(_run_dir(tmp_path)), "--format", "json", "--metric", "val_acc=Val Acc"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == 1
    (run,) = doc["runs"]
    assert run["inputs"]["formats"] == {"jsonl": 1}
    assert run["roles"]["val_acc"] == {"tag": "Val Acc", "how": "override --metric", "direction": "max"}
    assert run["inputs"]["restarts"][0]["step"] == 5
    tags = {t["tag"]: t for t in run["tags"]}
    assert tags["train/loss"]["points"] == 6 and tags["train/loss"]["last_value"] == 0.1


def test_several_runs_are_shown_one_by_one(tmp_path):
    for v in range(2):
        d = tmp_path / "lightning_logs" / f"version_{v}"
        d.mkdir(parents=True)
        (d / "metrics.csv").write_text("step,train_loss\n1,1.0\n2,0.5\n")
    res = runner.invoke(app, ["metrics", str(tmp_path / "lightning_logs"), "--format", "json"])
    assert res.exit_code == 0, res.output
    assert [r["path"].rsplit("/", 1)[1] for r in json.loads(res.stdout)["runs"]] == ["version_0", "version_1"]


def test_errors_are_one_line_and_exit_2(tmp_path):
    res = runner.invoke(app, ["metrics", str(tmp_path / "missing")])
    assert res.exit_code == 2
    assert "error:" in res.output and "Traceback" not in res.output
    (tmp_path / "empty").mkdir()
    res = runner.invoke(app, ["metrics", str(tmp_path / "empty"), "--format", "json"])
    assert res.exit_code == 2
    assert json.loads(res.stdout)["error"]["code"] == "input"
    (tmp_path / "r").mkdir()
    d = _run_dir(tmp_path / "r")
    for bad in (["--metric", "val_acc"], ["--metric", "nope=train/loss"], ["--metric", "val_acc=Val Ac"],
                ["--format", "xml"]):
        res = runner.invoke(app, ["metrics", str(d), *bad])
        assert res.exit_code == 2, bad
        assert "error:" in res.output


def test_help():
    res = runner.invoke(app, ["metrics", "--help"])
    assert res.exit_code == 0 and "--metric" in res.output
