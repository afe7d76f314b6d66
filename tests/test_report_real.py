"""Golden outcome of the real detector table on synthetic seed failures.

The golden file records, per run, which detectors fire with which severity, tags and fixes, and
which are skipped: the decisions, not the wording (messages and numbers are tuned often; the
renderers' wording has its own golden files).  Regenerate after an intended change with
``TRAINFIX_UPDATE_GOLDEN=1 python -m pytest tests/test_report_real.py`` and review the diff.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from trainfix.diagnostics import engine
from trainfix.diagnostics.report import Report, render, to_json

from test_report import check_golden

import synthetic_runs as synthetic

CASES = [
    ("sparsity-gradient-vanishing", "seed"),
    ("uncertainty-weights-similar", "seed"),
    ("sparse-from-start", "seed"),
    ("class-disparity", "seed"),
    ("healthy", "multitask-uw"),
]


@pytest.fixture(scope="module")
def report() -> Report:
    runs = []
    for name, kind in CASES:
        run = synthetic.healthy(kind, seed=0) if name == "healthy" else synthetic.pathology(name, kind, seed=0)
        runs.append(engine.diagnose(run))
    return Report(runs)


def test_decisions_match_golden(report):
    doc = json.loads(to_json(report))
    outcome = {}
    for (name, kind), run in zip(CASES, doc["runs"]):
        outcome[f"{name}/{kind}"] = {
            "findings": [{k: f[k] for k in ("detector", "severity", "tags", "fixes")} for f in run["findings"]],
            "skipped": sorted(s["detector"] for s in run["skipped"]),
        }
    check_golden("real_decisions.json", json.dumps(outcome, indent=2) + "\n")


def test_each_seed_failure_is_found_and_the_healthy_run_is_quiet(report):
    for (name, _), rr in zip(CASES, report.runs):
        fired = {f.detector for f in rr.all_findings}
        assert not rr.errors, [e.message for e in rr.errors]
        if name == "healthy":
            assert fired == set()
        else:
            assert name in fired


def test_real_findings_render_in_every_format(report):
    for fmt in ("rich", "md", "github"):
        text = render(report, fmt)
        assert "sparsity-gradient-vanishing" in text
    root = ET.fromstring(render(report, "junit"))
    assert int(root.get("failures")) >= len(CASES) - 1
    doc = json.loads(render(report, "json"))
    for run in doc["runs"]:
        for f in run["findings"]:
            assert f["message"] and isinstance(f["evidence"], dict)
