"""`trainfix watch` on a run being written (a thread appends records, partial lines included),
the live diagnosis it shares with the callbacks, and findings written back to TensorBoard."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app
from trainfix.cli.watch import END_MARKER, STOP_REQUEST
import synthetic_runs as synthetic
from trainfix.diagnostics.live import LiveDiagnosis, run_from_records


def feed(folder: Path, records: list[dict], *, chunk: int = 60, pause: float = 0.15, end: bool = True) -> None:
    """Append ``records`` to metrics.jsonl in chunks, each chunk ending mid-line for a moment (a
    trainer caught mid-write), then write the end marker."""
    with open(folder / "metrics.jsonl", "a", encoding="utf-8") as fh:
        for i in range(0, len(records), chunk):
            lines = "".join(json.dumps(r) + "\n" for r in records[i:i + chunk])
            cut = len(lines) - 7
            fh.write(lines[:cut])
            fh.flush()
            time.sleep(pause)
            fh.write(lines[cut:])
            fh.flush()
    if end:
        (folder / END_MARKER).write_text(json.dumps({"status": "finished", "step": records[-1]["step"]}))


def _watch(folder: Path, records: list[dict], *args: str, end: bool = True):
    t = threading.Thread(target=feed, args=(folder, records), kwargs={"end": end})
    t.start()
    try:
        res = CliRunner().invoke(app, ["watch", str(folder), "--interval", "0.1", *args])
    finally:
        t.join()
    return res


def test_watch_prints_each_finding_once_and_asks_for_a_stop(tmp_path):
    records = synthetic.as_records(synthetic.pathology("nonfinite-loss", "quarter"))
    res = _watch(tmp_path, records, "--stop-on", "error", "--format", "json")
    assert res.exit_code == 1, res.output
    events = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")]
    findings = [e for e in events if e["event"] == "finding"]
    names = [e["detector"] for e in findings]
    assert "nonfinite-loss" in names
    assert len(names) == len(set(names)), names  # each finding once
    assert any(e["event"] == "stop-requested" for e in events)
    stop = json.loads((tmp_path / STOP_REQUEST).read_text())
    assert stop["severity"] == "error" and stop["detector"] in names
    summary = events[-1]
    assert summary["event"] == "summary" and summary["why"].startswith("finished")
    assert summary["polls"] >= 1 and summary["counts"]["error"] >= 1


def test_watch_leaves_inputs_alone_and_writes_tensorboard_text(tmp_path):
    import yaml

    run = synthetic.pathology("lr-miscaled", "seed")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(run.config))
    records = synthetic.as_records(run)
    res = _watch(tmp_path, records, "--tensorboard")
    assert res.exit_code == 1, res.output
    assert "lr-miscaled" in res.stdout
    expected = "".join(json.dumps(r) + "\n" for r in records).encode()
    assert hashlib.sha256((tmp_path / "metrics.jsonl").read_bytes()).digest() == hashlib.sha256(expected).digest()
    events = sorted(tmp_path.glob("events.out.tfevents.*trainfix-findings*"))
    assert len(events) == 1
    from tbparse import SummaryReader

    text = SummaryReader(str(events[0])).text
    assert any("lr-miscaled" in t for t in text["tag"]) and any("effective lr" in v for v in text["value"])
    assert "ms per poll" in res.stderr


def test_watch_ends_after_idle_timeout_without_end_marker(tmp_path):
    records = synthetic.as_records(synthetic.healthy("fast"))[:200]
    res = _watch(tmp_path, records, "--idle-timeout", "1", end=False)
    assert res.exit_code == 0, res.output
    assert "no file grew for 1 s" in res.stderr


def test_watch_refuses_a_missing_dir_and_bad_options(tmp_path):
    res = CliRunner().invoke(app, ["watch", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "no such run directory" in res.output
    res = CliRunner().invoke(app, ["watch", str(tmp_path), "--stop-on", "eror"])
    assert res.exit_code == 2 and "did you mean 'error'" in res.output


def test_live_diagnosis_reports_new_findings_once():
    run = synthetic.pathology("loss-divergence", "strong")
    records = synthetic.as_records(run)
    live = LiveDiagnosis()
    seen = []
    for frac in (0.3, 0.6, 0.8, 1.0):
        part = run_from_records(records[: int(len(records) * frac)])
        seen += [f.detector for f in live.update(part)]
    assert "loss-divergence" in seen
    assert len(seen) == len(set(seen))
    assert live.polls == 4


def test_diagnose_tensorboard_writes_a_new_event_file(tmp_path):
    import yaml

    run = synthetic.pathology("lr-miscaled", "seed")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(run.config))
    records = synthetic.as_records(run)
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    before = sorted(p.name for p in tmp_path.iterdir())
    res = CliRunner().invoke(app, ["diagnose", str(tmp_path), "--tensorboard", "--format", "json"])
    assert res.exit_code == 1, res.output
    assert json.loads(res.stdout)["runs"][0]["findings"]
    new = sorted(set(p.name for p in tmp_path.iterdir()) - set(before))
    assert len(new) == 1 and new[0].endswith("trainfix-findings")
    from tbparse import SummaryReader

    assert len(SummaryReader(str(tmp_path / new[0])).text) >= 1
    # the next diagnosis reads the same scalars: the findings file holds no scalar values
    again = CliRunner().invoke(app, ["diagnose", str(tmp_path), "--format", "json"])
    assert json.loads(again.stdout)["runs"][0]["inputs"]["points"] == json.loads(res.stdout)["runs"][0]["inputs"]["points"]
