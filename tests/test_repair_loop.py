"""The repair loop's judges (fast) and one story end to end through the benchmark script (slow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from trainfix.stories import STORIES, judge_accuracy, judge_classes, judge_sparsity, judge_stability, judge_swings

ROOT = Path(__file__).resolve().parent.parent


def test_judges_apply_the_story_margins():
    assert judge_sparsity({"loss term sparsity change": -0.003}, {"loss term sparsity change": -0.45})[0]
    assert not judge_sparsity({"loss term sparsity change": -0.003}, {"loss term sparsity change": -0.2})[0]
    assert not judge_sparsity({}, {"loss term sparsity change": -0.5})[0]
    acc = judge_accuracy(0.10)
    assert acc({"final val/acc": 0.10}, {"final val/acc": 0.83})[0]
    assert not acc({"final val/acc": 0.80}, {"final val/acc": 0.85})[0]
    a = {"step loss max/min": 500.0, "val std": 0.3}
    assert judge_stability(a, {"step loss max/min": 10.0, "val std": 0.05})[0]
    assert not judge_stability(a, {"step loss max/min": 10.0, "val std": 0.2})[0]
    assert not judge_stability(a, {"step loss max/min": 300.0, "val std": 0.01})[0]
    assert judge_stability({"step loss max/min": 500.0, "val std": 0.01},
                           {"step loss max/min": 6.0, "val std": 0.02})[0]  # std at noise level
    a = {"largest val drop": 0.7, "final val/acc": 0.8}
    assert judge_swings(a, {"largest val drop": 0.1, "final val/acc": 0.85})[0]
    assert not judge_swings(a, {"largest val drop": 0.5, "final val/acc": 0.85})[0]
    assert not judge_swings(a, {"largest val drop": 0.1, "final val/acc": 0.7})[0]
    assert judge_swings({"largest val drop": 0.02, "final val/acc": 0.9},
                        {"largest val drop": 0.025, "final val/acc": 0.95})[0]  # both below noise
    assert judge_classes({"per-class acc spread": 0.6}, {"per-class acc spread": 0.2})[0]
    assert not judge_classes({"per-class acc spread": 0.6}, {"per-class acc spread": 0.4})[0]


def test_every_story_names_a_detector_of_the_table():
    from trainfix.diagnostics.detectors import DETECTORS

    for story in STORIES.values():
        assert story.expected and all(d in DETECTORS for d in story.expected)


def _benchmark():
    spec = importlib.util.spec_from_file_location("repair_loop", ROOT / "benchmarks" / "repair_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_benchmark_repairs_the_sparsity_story(tmp_path, capsys):
    code = _benchmark().main(["--stories", "sparsity", "--seeds", "1", "--out", str(tmp_path), "--json",
                              str(tmp_path / "r.json")])
    printed = capsys.readouterr().out
    assert "repair rate: 1/1 = 100.0%" in printed, printed
    assert code == 0
    import json

    case = json.loads((tmp_path / "r.json").read_text())["cases"][0]
    assert case["fixes"][0] == "sparsity-l1" and case["resolved"] and not case["new_findings"]
