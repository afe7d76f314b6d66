"""`trainfix check`: the CI gate. Defaults (fail on warning, github format under GitHub Actions),
--exit-zero, --junit, the job summary, single log files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from test_cli_diagnose import assert_one_line_error, detectors, invoke, runs  # noqa: F401 (fixtures)


@pytest.fixture(autouse=True)
def not_in_github(monkeypatch):
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_fails_on_warning_by_default(runs):
    assert invoke("check", runs["healthy"]).exit_code == 0
    r = invoke("check", runs["high"])
    assert r.exit_code == 1, r.output
    assert "final-loss-high" in r.stdout  # rich outside GitHub Actions
    assert invoke("check", runs["high"], "--fail-on", "error").exit_code == 0
    assert invoke("check", runs["nan"], "--fail-on", "error").exit_code == 1


def test_exit_zero_reports_without_failing(runs):
    r = invoke("check", runs["nan"], runs["high"], "--exit-zero")
    assert r.exit_code == 0
    assert "1 error, 1 warning, 0 info in 2 runs" in r.stdout


def test_exit_zero_still_exits_2_on_usage_and_input_errors(runs, tmp_path):
    assert_one_line_error(invoke("check", runs["nan"], "--exit-zero", "--fail-on", "bad"), "--fail-on 'bad'")
    assert_one_line_error(invoke("check", tmp_path / "missing", "--exit-zero"), "no such file or directory")


def test_github_format_is_the_default_under_github_actions(runs, monkeypatch, tmp_path):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    r = invoke("check", runs["nan"], runs["high"])
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::warning"]
    assert "title=trainfix loss-nan::" in lines[0]
    assert r.stderr.strip() == "trainfix: 1 error, 1 warning, 0 info in 2 runs (fail on warning)"
    text = summary.read_text()
    assert text.startswith("earlier step\n## trainfix: 1 error, 1 warning")  # appended, not replaced


def test_explicit_format_wins_under_github_actions(runs, monkeypatch):
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    r = invoke("check", runs["nan"], "--format", "json")
    assert json.loads(r.stdout)["runs"][0]["findings"][0]["detector"] == "loss-nan"


def test_junit_file_is_written_besides_the_main_format(runs, tmp_path):
    junit = tmp_path / "trainfix.xml"
    r = invoke("check", runs["nan"], runs["healthy"], "--junit", junit)
    assert r.exit_code == 1
    assert "loss-nan" in r.stdout
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "6" and root.get("failures") == "1" and root.get("skipped") == "2"
    case = root.find("testsuite/testcase[@name='loss-nan']")
    assert case.find("failure").get("type") == "error"


def test_a_single_log_file_can_be_checked(runs):
    r = invoke("check", runs["nan"] / "metrics.jsonl", "--format", "json")
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["runs"][0]["findings"][0]["detector"] == "loss-nan"


def test_fail_on_from_settings(runs, tmp_path):
    cfg = tmp_path / "trainfix.toml"
    cfg.write_text('fail_on = "error"\n')
    assert invoke("check", runs["high"], "--settings", cfg).exit_code == 0
    assert invoke("check", runs["high"], "--settings", cfg, "--fail-on", "warning").exit_code == 1


def test_config_file_with_any_name_is_read(runs, tmp_path):
    cfg = tmp_path / "ci-settings.toml"
    cfg.write_text('[tool.trainfix]\nfail_on = "error"\nignore = ["loss-nan"]\n'
                   '[tool.trainfix.detectors.final-loss-high]\nthreshold = 10.0\n')
    r = invoke("check", runs["nan"], runs["high"], "--settings", cfg, "--format", "json")
    assert r.exit_code == 0, r.output
    assert all(not run["findings"] for run in __import__("json").loads(r.stdout)["runs"])


def test_bad_settings_are_a_usage_error(runs, tmp_path):
    cfg = tmp_path / "trainfix.toml"
    cfg.write_text('[detectors.final-loss-high]\ntreshold = 10.0\n')
    assert_one_line_error(invoke("check", runs["high"], "--settings", cfg), "unknown parameter 'treshold'")
    assert_one_line_error(invoke("check", runs["high"], "--settings", tmp_path / "none.toml"), "settings file not found")
