"""`trainfix diagnose` through typer's CliRunner: exit codes 0/1/2, every format parses, errors are
one line plus a hint on stderr (or one JSON document with --format json), never a traceback.

The detector table is replaced by the small detectors below so the outcomes are exact; run
directories are real folders holding a ``metrics.jsonl`` read by trainfix's reader.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app
from trainfix.diagnostics import detectors as det_pkg
from trainfix.diagnostics import engine
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Severity
from trainfix.diagnostics.roles_vocab import TRAIN_LOSS, VAL_ACC

runner = CliRunner()


class FinalLossHigh(Detector):
    """Final training loss above a threshold."""

    name = "final-loss-high"
    severity = Severity.WARNING
    requires = (TRAIN_LOSS,)
    fixes = ("lower-lr",)

    @dataclass
    class Params:
        threshold: float = 1.0

    def check(self, run, params):
        s = run.role(TRAIN_LOSS).finite()
        if s.values[-1] > params.threshold:
            yield self.finding(f"final training loss {s.values[-1]:.3g} is above {params.threshold:g}",
                               evidence={"final": s.values[-1]}, steps=(s.steps[0], s.steps[-1]), tags=[s.tag])


class LossNan(Detector):
    """A NaN training loss."""

    name = "loss-nan"
    severity = Severity.ERROR
    requires = (TRAIN_LOSS,)
    fixes = ("nan-guard",)

    def check(self, run, params):
        s = run.role(TRAIN_LOSS)
        bad = np.nonzero(~np.isfinite(s.values))[0]
        if len(bad):
            step = s.steps[bad[0]]
            yield self.finding(f"training loss is NaN from step {step:.0f}", evidence={"first_bad_step": step},
                               steps=(step, s.steps[-1]), tags=[s.tag])


class ValOnly(Detector):
    """Needs validation accuracy."""

    name = "val-only"
    requires = (VAL_ACC,)

    def check(self, run, params):
        return []


CLASSES = {c.name: c for c in (FinalLossHigh, LossNan, ValOnly)}


@pytest.fixture
def detectors(monkeypatch):
    """Replace the detector table with the detectors of this file."""
    monkeypatch.setattr(det_pkg, "DETECTORS", {n: f"test:{c.__name__}" for n, c in CLASSES.items()})
    monkeypatch.setattr(det_pkg, "load", lambda name: CLASSES[name])
    return CLASSES


def write_run(path: Path, losses: list[float]) -> Path:
    """A run directory with the trainer's metrics.jsonl (one object of tags per line)."""
    path.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, v in enumerate(losses):
        value = "NaN" if not np.isfinite(v) else repr(float(v))
        lines.append(f'{{"step": {10 * (i + 1)}, "epoch": {i}, "wall_time": {1000.0 + i}, "train/loss": {value}}}')
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def runs(tmp_path, detectors):
    healthy = write_run(tmp_path / "healthy", [2.0 * 0.9 ** i + 0.1 for i in range(30)])
    high = write_run(tmp_path / "high", [3.0 - 0.01 * i for i in range(30)])
    nan = write_run(tmp_path / "nan", [2.0, 1.5, 0.9, float("nan"), float("nan")])
    return {"healthy": healthy, "high": high, "nan": nan}


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert err[0].startswith("error: ")
    assert err[-1].startswith("hint: ")
    for frag in fragments:
        assert frag in result.stderr


def test_healthy_run_exits_0(runs):
    r = invoke("diagnose", runs["healthy"])
    assert r.exit_code == 0, r.output
    assert "no findings" in r.stdout


def test_warning_exits_0_by_default_and_1_with_fail_on_warning(runs):
    r = invoke("diagnose", runs["high"])
    assert r.exit_code == 0, r.output
    assert "final-loss-high" in r.stdout and "trainfix apply" in r.stdout
    assert invoke("diagnose", runs["high"], "--fail-on", "warning").exit_code == 1
    assert invoke("diagnose", runs["high"], "--fail-on", "info").exit_code == 1


def test_error_finding_exits_1(runs):
    r = invoke("diagnose", runs["nan"])
    assert r.exit_code == 1, r.output
    assert "training loss is NaN from step 40" in r.stdout


def test_params_change_the_outcome(runs):
    r = invoke("diagnose", runs["high"], "--fail-on", "warning", "--param", "final-loss-high.threshold=5")
    assert r.exit_code == 0, r.output


def test_select_and_ignore(runs):
    assert invoke("diagnose", runs["nan"], "--ignore", "loss-nan").exit_code == 0
    assert invoke("diagnose", runs["nan"], "--select", "final-loss-high,val-only").exit_code == 0
    assert invoke("diagnose", runs["nan"], "--select", "loss").exit_code == 1  # prefix


def test_json_is_one_document_with_every_run(runs):
    r = invoke("diagnose", runs["healthy"], runs["nan"], "--format", "json")
    assert r.exit_code == 1
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1
    assert [Path(x["path"]).name for x in doc["runs"]] == ["healthy", "nan"]
    nan_findings = doc["runs"][1]["findings"]
    assert nan_findings[0]["detector"] == "loss-nan" and nan_findings[0]["steps"] == [40, 50]
    assert doc["runs"][0]["skipped"] == [{"detector": "val-only",
                                          "reason": "missing role: val_acc (validation accuracy)"}]


@pytest.mark.parametrize("fmt", ["md", "github", "junit", "rich"])
def test_every_format_renders(runs, fmt):
    r = invoke("diagnose", runs["nan"], runs["high"], "--format", fmt)
    assert r.exit_code == 1, r.output
    if fmt == "junit":
        root = ET.fromstring(r.stdout)
        assert root.get("failures") == "2" and root.get("tests") == "6"
    elif fmt == "github":
        lines = r.stdout.splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("::error file=") and "metrics.jsonl" in lines[0]
        assert lines[1].startswith("::warning ")
    elif fmt == "md":
        assert r.stdout.startswith("## trainfix: 1 error, 1 warning, 0 info in 2 runs")
    else:
        assert "1 error, 1 warning, 0 info in 2 runs" in r.stdout


def test_output_writes_the_report_to_a_file(runs, tmp_path):
    out = tmp_path / "report.json"
    r = invoke("diagnose", runs["nan"], "--format", "json", "--output", out)
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "wrote json report to" in r.stderr
    assert json.loads(out.read_text())["runs"][0]["findings"][0]["detector"] == "loss-nan"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report.json")] == []  # no temp left
    out_rich = tmp_path / "report.txt"
    assert invoke("diagnose", runs["nan"], "-o", out_rich).exit_code == 1
    assert "loss-nan" in out_rich.read_text()


def test_inputs_are_not_modified(runs):
    before = {p: p.read_bytes() for p in runs["nan"].iterdir()}
    invoke("diagnose", runs["nan"], "--format", "json")
    assert {p: p.read_bytes() for p in runs["nan"].iterdir()} == before


def test_show_skipped_lists_the_reason(runs):
    r = invoke("diagnose", runs["healthy"], "--show-skipped")
    assert "val-only" in r.stdout and "missing role: val_acc" in r.stdout
    r = invoke("diagnose", runs["healthy"])
    assert "1 detector skipped for missing data (--show-skipped lists them)" in r.stdout


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--param", "final-loss-high.treshold=3"],
         ["unknown parameter 'treshold'", "did you mean 'final-loss-high.threshold'"]),
        (["--param", "final-loss-high.threshold=abc"], ["is not a number"]),
        (["--param", "threshold=3"], ["bad --param 'threshold=3': expected NAME.KEY=VALUE"]),
        (["--param", "final-loss-hihg.threshold=3"], ["unknown detector 'final-loss-hihg'", "final-loss-high"]),
        (["--select", "loss-nen"], ["--select 'loss-nen' matches no detector", "did you mean 'loss-nan'"]),
        (["--format", "jsn"], ["--format 'jsn'", "did you mean 'json'"]),
        (["--fail-on", "warn"], ["--fail-on 'warn'", "did you mean 'warning'"]),
        (["--metric", "val_accc=Val Acc"], ["unknown role 'val_accc'", "did you mean 'val_acc'"]),
        (["--metric", "val_acc"], ["expected ROLE=TAG"]),
    ],
)
def test_usage_errors_are_one_line_with_a_hint(runs, args, fragments):
    assert_one_line_error(invoke("diagnose", runs["healthy"], *args), *fragments)


def test_missing_path_is_an_input_error(runs, tmp_path):
    assert_one_line_error(invoke("diagnose", tmp_path / "nope"), "no such file or directory")


def test_usage_error_in_json_mode_is_one_json_document_on_stdout(runs):
    r = invoke("diagnose", runs["healthy"], "--format", "json", "--select", "nope")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1 and doc["error"]["code"] == "usage"
    assert "matches no detector" in doc["error"]["message"]
    assert "Traceback" not in r.output


def test_an_unexpected_exception_is_an_internal_error_exit_2(runs, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("reader exploded")

    monkeypatch.setattr(engine, "diagnose", boom)
    r = invoke("diagnose", runs["healthy"])
    assert r.exit_code == 2
    assert r.stderr.startswith("error: internal error: RuntimeError: reader exploded")
    assert "Traceback" not in r.output


def test_a_crashing_detector_does_not_stop_the_others(runs, monkeypatch):
    def broken(self, run, params):
        raise KeyError("val/acc")

    monkeypatch.setattr(FinalLossHigh, "check", broken)
    r = invoke("diagnose", runs["nan"], "--format", "json")
    assert r.exit_code == 1
    found = {f["detector"]: f for f in json.loads(r.stdout)["runs"][0]["findings"]}
    assert found["final-loss-high"]["message"] == "internal error: KeyError: 'val/acc'"
    assert found["loss-nan"]["severity"] == "error"


# --- the real detector table, end to end over files --------------------------------------------


def write_synthetic(run, folder: Path) -> Path:
    """Write a synthetic Run as the trainer would: metrics.jsonl (tags per step) and config.yaml."""
    import yaml

    folder.mkdir(parents=True)
    by_step: dict[float, dict] = {}
    for tag, step, value in run.scalars[["tag", "step", "value"]].itertuples(index=False):
        by_step.setdefault(float(step), {})[str(tag)] = float(value)
    with open(folder / "metrics.jsonl", "w") as fh:
        for step in sorted(by_step):
            rec = {"step": int(step), "wall_time": 1000.0 + step}
            rec.update(by_step[step])
            fh.write(json.dumps(rec) + "\n")  # NaN is written as NaN, as Python's json does
    (folder / "config.yaml").write_text(yaml.safe_dump(run.config))
    return folder


def test_real_detectors_find_the_seed_failures_and_stay_quiet_on_a_healthy_run(tmp_path):
    import synthetic_runs as synthetic
    bad = write_synthetic(synthetic.pathology("nonfinite-loss", "early", seed=0), tmp_path / "nan-run")
    lr = write_synthetic(synthetic.pathology("lr-miscaled", "seed", seed=0), tmp_path / "lr-run")
    good = write_synthetic(synthetic.healthy("fast", seed=0), tmp_path / "healthy-run")

    r = invoke("diagnose", bad, lr, good, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    fired = {Path(x["path"]).name: {f["detector"] for f in x["findings"]} for x in doc["runs"]}
    assert "nonfinite-loss" in fired["nan-run"]
    assert "lr-miscaled" in fired["lr-run"]
    assert fired["healthy-run"] == set()
    assert not any(f["message"].startswith("internal error") for x in doc["runs"] for f in x["findings"])
    assert invoke("check", good).exit_code == 0
    for fmt in ("md", "junit"):  # the other formats are covered above; these two over real evidence
        out = invoke("diagnose", bad, "--format", fmt, "--select", "nonfinite-loss")
        assert out.exit_code == 1 and "nonfinite-loss" in out.stdout, out.output


def test_a_folder_of_runs_is_diagnosed_run_by_run(runs):
    r = invoke("diagnose", runs["healthy"].parent, "--format", "json")
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert sorted(Path(x["path"]).name for x in doc["runs"]) == ["healthy", "high", "nan"]
