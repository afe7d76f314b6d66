"""Reports: the JSON schema, every renderer against golden files, escaping, sparklines.

Golden files live in tests/golden/; regenerate them after an intended change with
``TRAINFIX_UPDATE_GOLDEN=1 python -m pytest tests/test_report.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from trainfix.diagnostics import engine
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity
from trainfix.diagnostics.render_ci import escape_data, escape_property, to_github, to_junit
from trainfix.diagnostics.report import Report, RunReport, render, to_json
from trainfix.diagnostics.roles_vocab import TRAIN_LOSS, VAL_ACC
from trainfix.diagnostics.sparkline import sparkline

from test_engine import make_run

GOLDEN = Path(__file__).parent / "golden"


class Spiky(Detector):
    """Flags the largest spike of the training loss."""

    name = "loss-spike"
    severity = Severity.ERROR
    requires = (TRAIN_LOSS,)
    fixes = ("grad-clip", "lower-lr")

    @dataclass
    class Params:
        factor: float = 3.0

    def check(self, run, params):
        s = run.role(TRAIN_LOSS)
        i = int(np.argmax(s.values))
        med = float(np.median(s.values))
        if s.values[i] > params.factor * med:
            yield self.finding(
                f"training loss jumps to {s.values[i]:.3g} at step {s.steps[i]:.0f}, "
                f"{s.values[i] / med:.1f}x its median",
                evidence={"peak": s.values[i], "median": med, "ratio": s.values[i] / med, "nan": float("nan")},
                steps=(s.steps[max(i - 2, 0)], s.steps[min(i + 2, len(s) - 1)]), tags=[s.tag])


class AccNote(Detector):
    """Notes the final validation accuracy."""

    name = "acc-note"
    severity = Severity.INFO
    requires = (VAL_ACC,)

    def check(self, run, params):
        s = run.role(VAL_ACC)
        yield self.finding(f"validation accuracy ends at {s.values[-1]:.1%} | best {s.values.max():.1%}",
                           evidence={"final": s.values[-1], "best": s.values.max(), "per_class": [0.9, 0.8, 0.1]},
                           steps=(s.steps[0], s.steps[-1]), tags=[s.tag], confidence=0.8)


class Plateau(Detector):
    """Warns about a long flat stretch."""

    name = "flat-stretch"
    requires = (TRAIN_LOSS,)
    fixes = ("lr-warmup",)

    def check(self, run, params):
        s = run.role(TRAIN_LOSS)
        yield self.finding("training loss is flat for 12 points: 1.2e-05 per step, within noise",
                           evidence={"slope": 1.2e-5, "ci": (-1e-5, 3e-5), "points": 12},
                           steps=(s.steps[20], s.steps[31]), tags=[s.tag])


class NeedsLr(Detector):
    """Needs the learning rate."""

    name = "needs-lr"
    requires = ("lr",)

    def check(self, run, params):
        return []


TABLE = {c.name: c for c in (Spiky, AccNote, Plateau, NeedsLr)}


def golden_report() -> Report:
    loss = [2.0 * 0.95 ** i + 0.3 for i in range(40)]
    loss[15] = 9.0
    acc = [min(0.95, 0.2 + 0.03 * i) for i in range(40)]
    run = make_run({"train/loss": loss, "val/acc": acc},
                   {TRAIN_LOSS: "train/loss", VAL_ACC: "val/acc"}, path="runs/exp1")
    rr = engine.diagnose(run, detectors=TABLE)
    rr.errors.append(Finding("broken-detector", Severity.ERROR, "internal error: KeyError: 'val/acc'",
                             evidence={"exception": "KeyError", "where": "broken.py:12"}))
    rr.checked.append("broken-detector")
    clean = make_run({"train/loss": [1.0, 0.8, 0.6]}, {TRAIN_LOSS: "train/loss"}, path="runs/clean")
    return Report([rr, engine.diagnose(clean, detectors={"needs-lr": NeedsLr})])


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TRAINFIX_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden file {path}; run with TRAINFIX_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("fmt, name", [("rich", "report.txt"), ("md", "report.md"), ("github", "report.github"),
                                       ("junit", "report.xml")])
def test_renderers_match_golden_files(fmt, name):
    text = render(golden_report(), fmt, show_skipped=True)
    check_golden(name, text)


def test_json_matches_golden_without_the_version():
    doc = json.loads(to_json(golden_report()))
    doc["trainfix_version"] = "<version>"
    check_golden("report.json", json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


def test_json_is_schema_1_exactly():
    doc = json.loads(to_json(golden_report()))  # valid JSON: the NaN evidence became a string
    assert set(doc) == {"schema", "trainfix_version", "runs"} and doc["schema"] == 1
    run = doc["runs"][0]
    assert set(run) == {"path", "inputs", "findings", "skipped"}
    assert set(run["inputs"]) == {"formats", "tags", "points", "checkpoints"}
    assert run["inputs"]["points"] == 80 and run["inputs"]["tags"] == ["train/loss", "val/acc"]
    for f in run["findings"]:
        assert set(f) == {"detector", "severity", "message", "evidence", "steps", "tags", "fixes", "confidence"}
    assert [f["severity"] for f in run["findings"]] == ["error", "error", "warning", "info"]
    internal = [f for f in run["findings"] if f["message"].startswith("internal error:")]
    assert internal and internal[0]["detector"] == "broken-detector" and internal[0]["severity"] == "error"
    spike = next(f for f in run["findings"] if f["detector"] == "loss-spike")
    assert spike["evidence"]["nan"] == "nan"
    assert spike["steps"] == [140, 180]
    assert run["skipped"] == [{"detector": "needs-lr", "reason": "missing role: lr (learning rate)"}]


def test_junit_has_a_testcase_per_detector_per_run():
    root = ET.fromstring(to_junit(golden_report()))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["runs/exp1", "runs/clean"]
    cases = {c.get("name"): c for c in suites[0].findall("testcase")}
    assert set(cases) == {"loss-spike", "acc-note", "flat-stretch", "needs-lr", "broken-detector"}
    assert cases["loss-spike"].find("failure").get("type") == "error"
    assert cases["flat-stretch"].find("failure").get("type") == "warning"
    assert cases["acc-note"].find("failure") is None  # info passes
    assert "validation accuracy ends" in cases["acc-note"].find("system-out").text
    assert cases["needs-lr"].find("skipped").get("message") == "missing role: lr (learning rate)"
    assert cases["broken-detector"].find("error") is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("6", "2", "1", "2")


def test_github_one_annotation_per_finding():
    lines = to_github(golden_report()).splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("::error file=runs/exp1/metrics.jsonl,title=trainfix loss-spike::runs/exp1: ")
    assert lines[-1].startswith("::notice ")
    assert sum(line.startswith("::warning ") for line in lines) == 1


def test_github_escaping_follows_the_workflow_command_rules():
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    rr = RunReport("runs/we,ird:dir", findings=[Finding("x-y", Severity.WARNING, "loss 100%\nthen: 5, 6")])
    line = to_github(Report([rr]))
    assert line == "::warning file=runs/we%2Cird%3Adir,title=trainfix x-y::loss 100%25%0Athen: 5, 6\n"


def test_markdown_escapes_table_cells():
    rr = RunReport("r", findings=[Finding("d", Severity.WARNING, "a | b <script>\nc")])
    md = render(Report([rr]), "md")
    assert "a \\| b &lt;script&gt;<br>c" in md


def test_rich_view_of_a_clean_run_says_so_and_counts_skips():
    rr = engine.diagnose(make_run({"train/loss": [1.0, 0.5]}, {TRAIN_LOSS: "train/loss"}), detectors=TABLE,
                         select=["needs-lr", "acc-note"])
    text = render(Report([rr]), "rich")
    assert "✔ no findings (0 detectors ran)" in text
    assert "2 detectors skipped for missing data (--show-skipped lists them)" in text
    assert "0 errors, 0 warnings, 0 info in 1 run" in text


def test_rich_text_escapes_markup_in_messages():
    rr = RunReport("r", findings=[Finding("d", Severity.ERROR, "value [bold]x[/bold] [red]")])
    assert "value [bold]x[/bold] [red]" in render(Report([rr]), "rich")


def test_report_without_a_run_still_renders_every_format():
    rr = RunReport("r", inputs={"formats": {"csv": 1}, "tags": 3, "points": 10, "checkpoints": 0},
                   findings=[Finding("d", Severity.WARNING, "m", steps=(1, 2), tags=["t"], fixes=["f"])])
    for fmt in ("rich", "md", "github", "junit", "json"):
        assert render(Report([rr]), fmt)
    assert json.loads(render(Report([rr]), "json"))["runs"][0]["inputs"]["tags"] == 3


def test_sparkline_draws_shape_spikes_and_nonfinite_values():
    assert sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert sparkline([]) == ""
    assert sparkline([2.0, 2.0, 2.0]) == "▅▅▅"
    assert sparkline([1.0, float("nan"), 3.0]) == "▁×█"
    values = [1.0] * 1000
    values[500] = 50.0
    line = sparkline(values, width=20)
    assert len(line) == 20 and line.count("█") == 1  # the spike survives downsampling
    assert sparkline([float("inf")] * 3) == "×××"


def test_json_survives_evidence_of_unusual_types():
    rr = RunReport("r", findings=[Finding("d", Severity.WARNING, "m",
                                          evidence={"tags": {"b", "a"}, "path": Path("x/y"), "obj": object})])
    ev = json.loads(to_json(Report([rr])))["runs"][0]["findings"][0]["evidence"]
    assert ev["tags"] == ["a", "b"] and ev["path"] == "x/y" and ev["obj"].startswith("<class")


def test_markdown_stays_under_the_comment_limit():
    from trainfix.diagnostics.render_text import to_markdown

    big = Report([RunReport(f"run{i}", findings=[Finding("d", Severity.WARNING, "m" * 300,
                                                         evidence={"x": "y" * 300})]) for i in range(300)])
    text = to_markdown(big, limit=20_000)
    assert len(text) <= 20_000
    assert "<details>" not in text and text.endswith("the full report: --format json)_\n")
    small = to_markdown(Report(big.runs[:2]), limit=20_000)
    assert "<details>" in small
