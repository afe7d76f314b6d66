"""`trainfix demo`: the README's first command runs the whole loop and keeps both runs."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from trainfix.cli.app import app
from trainfix.stories import DEFAULT_SCENARIO, STORIES, example_path, examples_dir


def test_every_story_has_its_example_configs():
    for story in STORIES.values():
        assert example_path(story).is_file()
        assert (examples_dir() / story.buggy.replace("-buggy", "-fixed")).is_file()
    assert DEFAULT_SCENARIO in STORIES


def test_unknown_scenario_suggests_the_closest(tmp_path):
    res = CliRunner().invoke(app, ["demo", "--scenario", "lr-scale", "--out", str(tmp_path / "d")])
    assert res.exit_code == 2 and "did you mean 'lr-scaling'" in res.stderr
    assert not (tmp_path / "d").exists()


def test_demo_refuses_to_reuse_a_run_dir(tmp_path):
    (tmp_path / "buggy").mkdir()
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "already exists" in res.stderr


@pytest.mark.slow
def test_demo_default_scenario_repairs_the_run(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert (out / "buggy" / "metrics.jsonl").exists() and (out / "fixed" / "metrics.jsonl").exists()
    assert (out / "fixed.yaml").exists()
    assert "lr-sqrt-scaling" in res.stdout and "+  lr_scaling: sqrt" in res.stdout
    assert "resolved" in res.stdout and "repaired:" in res.stdout and "not repaired" not in res.stdout
