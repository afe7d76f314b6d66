"""Every command's ``--help`` names values the way a user types them: ``PATH``, ``FILE``, ``TEXT``,
``INTEGER``, choices, or nothing for a flag; never a Python type such as ``<bool>`` or
``<list[Path]>``."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from trainfix.cli.app import COMMANDS, app

PYTHON_TYPE = re.compile(r"<(?:bool|str|int|float|path|file|dir|Path|list\[[^\]]*\]|[a-z_]+\|[a-z_|]+)>")


def help_text(*args: str) -> str:
    res = CliRunner().invoke(app, [*args, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("name", [None, *COMMANDS])
def test_help_shows_no_python_types(name):
    text = help_text(*([name] if name else []))
    assert PYTHON_TYPE.findall(text) == []
    assert "Show this message and exit." in text


def test_a_flag_shows_no_value_and_an_option_names_its_value():
    rows = {line.split()[1]: line for line in help_text("apply").splitlines() if line.startswith("│ --")}
    assert rows["--force"].split()[2] == "Replace"  # the help text follows the flag directly
    assert rows["--fix"].split()[2] == "TEXT"
    assert rows["--resume-from"].split()[2] == "PATH"


def test_an_argument_is_named_in_capitals_in_the_usage_line():
    assert "Usage: trainfix apply [OPTIONS] [PATH]" in help_text("apply")
