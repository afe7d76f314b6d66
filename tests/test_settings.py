"""[tool.trainfix] settings: where they are found and what is rejected."""

from __future__ import annotations

import pytest

from trainfix.diagnostics.settings import Settings, load_settings
from trainfix.errors import UsageError

FULL = """
[project]
name = "x"

[tool.trainfix]
select = ["accuracy-oscillation", "loss-plateau"]
ignore = ["memory-growth"]
fail_on = "Warning"

[tool.trainfix.metrics]
val_acc = "Metrics/Val Accuracy"

[tool.trainfix.detectors.loss-plateau]
patience = 20
"""


def test_nearest_pyproject_walking_up(tmp_path):
    (tmp_path / "pyproject.toml").write_text(FULL)
    run = tmp_path / "runs" / "exp1"
    run.mkdir(parents=True)
    s = load_settings(run)
    assert s.metrics == {"val_acc": "Metrics/Val Accuracy"}
    assert s.detectors == {"loss-plateau": {"patience": 20}}
    assert s.select == ["accuracy-oscillation", "loss-plateau"]
    assert s.ignore == ["memory-growth"]
    assert s.fail_on == "warning"
    assert s.source == tmp_path / "pyproject.toml"


def test_trainfix_toml_plain_or_with_tool_table(tmp_path):
    (tmp_path / "trainfix.toml").write_text('fail_on = "error"\n[metrics]\nlr = "lr-Adam"\n')
    assert load_settings(tmp_path).metrics == {"lr": "lr-Adam"}
    (tmp_path / "trainfix.toml").write_text('[tool.trainfix]\nignore = ["aux-loss-dead"]\n')
    assert load_settings(tmp_path).ignore == ["aux-loss-dead"]


def test_pyproject_without_table_is_passed_over(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.trainfix]\nfail_on = "error"\n')
    sub = tmp_path / "pkg"
    sub.mkdir()
    (sub / "pyproject.toml").write_text('[project]\nname = "inner"\n')
    assert load_settings(sub).fail_on == "error"


def test_walk_stops_at_repository_root(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.trainfix]\nfail_on = "error"\n')
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "runs").mkdir()
    assert load_settings(repo / "runs") == Settings()


def test_start_may_be_a_file(tmp_path):
    (tmp_path / "trainfix.toml").write_text('select = ["nonfinite-loss"]\n')
    f = tmp_path / "metrics.jsonl"
    f.write_text("")
    assert load_settings(f).select == ["nonfinite-loss"]


def test_unknown_key_did_you_mean(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.trainfix]\nfail-on = "error"\n')
    with pytest.raises(UsageError) as info:
        load_settings(tmp_path)
    assert "fail-on" in info.value.message
    assert info.value.hint == "did you mean 'fail_on'?"


@pytest.mark.parametrize("body", ['select = "x"\nignore = [1]', 'fail_on = "sometimes"', '[metrics]\nval_acc = 3',
                                  'detectors = 3', "not toml ["])
def test_bad_values(tmp_path, body):
    (tmp_path / "trainfix.toml").write_text(body)
    with pytest.raises(UsageError):
        load_settings(tmp_path)


def test_defaults_when_nothing_found(tmp_path):
    (tmp_path / ".git").mkdir()
    assert load_settings(tmp_path) == Settings()


def test_load_settings_file_exactly(tmp_path):
    from trainfix.diagnostics.settings import load_settings_file
    from trainfix.errors import InputError

    f = tmp_path / "ci.toml"
    f.write_text('fail_on = "error"\n')
    assert load_settings_file(f).fail_on == "error"
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    with pytest.raises(UsageError, match="no \\[tool.trainfix\\]"):
        load_settings_file(tmp_path / "pyproject.toml")
    with pytest.raises(InputError):
        load_settings_file(tmp_path / "missing.toml")
