"""`trainfix explain NAME` and `trainfix list detectors|fixes`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from trainfix.cli.explain import doc_to_markdown
from trainfix.cli.listing import entries
from trainfix.diagnostics.detectors import DETECTORS
from trainfix.fixes.recipes import RECIPES

from test_cli_diagnose import assert_one_line_error, invoke

DOC = '''A loss term that never changes.

    What it detects
    ---------------
    A term whose ``(max - min) / |median|`` is below a tolerance.

    Example diff
    ------------
    ::

         loss:
        -  kind: l1-normalised
        +  kind: l1

    Parameters
    ----------
    max_relative_spread
        Largest spread still called constant
        (1e-6).
    min_points
        Points needed (4).
    '''


def test_docstring_sections_become_markdown():
    md = doc_to_markdown(DOC)
    assert md.startswith("**A loss term that never changes.**")
    assert "## What it detects" in md and "---" not in md.replace("```", "")
    assert "`(max - min) / |median|`" in md
    assert "```diff\n loss:\n-  kind: l1-normalised\n+  kind: l1\n```" in md
    assert "- **max_relative_spread**: Largest spread still called constant (1e-6)." in md
    assert "- **min_points**: Points needed (4)." in md


def loadable(kind):
    return [e for e in entries(kind) if not e.doc.startswith("(cannot load")]


def test_explain_a_detector_shows_its_sections_and_defaults():
    dets = loadable("detectors")
    assert dets, "no detector module loads"
    e = dets[0]
    r = invoke("explain", e.name)
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert e.name in out and "detector" in out
    for section in ("What it detects", "Why it matters", "Evidence", "Fix", "False positives", "Parameters"):
        assert section in out
    assert "--param" in out or "has no parameters" in out


def test_explain_a_fix():
    fixes = loadable("fixes")
    assert fixes, "no recipe module loads"
    r = invoke("explain", fixes[0].name)
    assert r.exit_code == 0, r.output
    for section in ("What it changes", "When to use", "Why", "Example diff"):
        assert section in r.stdout


def test_explain_unknown_name_suggests_the_closest():
    name = next(iter(DETECTORS))
    assert_one_line_error(invoke("explain", name[:-1] + "x"), f"no detector or fix named", f"did you mean '{name}'")
    assert_one_line_error(invoke("explain", "zzzzzz"), "trainfix list detectors")


@pytest.mark.parametrize("what, table", [("detectors", DETECTORS), ("fixes", RECIPES)])
def test_list_shows_every_entry(what, table):
    r = invoke("list", what)
    assert r.exit_code == 0, r.output
    for name in table:
        assert name in r.stdout
    assert f"{len(table)} {what}" in r.stdout


def test_list_reads_severity_and_fixes_without_importing():
    for e in loadable("detectors"):
        assert e.attrs["severity"] in ("info", "warning", "error")
        assert isinstance(e.attrs["fixes"], tuple)
    for e in loadable("fixes"):
        assert e.attrs["id"] == e.name


def test_list_unknown_kind_is_a_usage_error():
    assert_one_line_error(invoke("list", "fixs"), "cannot list 'fixs'", "did you mean 'fixes'")


def test_listing_does_not_import_torch():
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from trainfix.cli.listing import entries\n"
            "from trainfix.cli import listing\n"
            "import typer\n"
            "app = typer.Typer(); app.command()(listing.list_command)\n"
            "for kind in ('detectors', 'fixes'):\n"
            "    r = CliRunner().invoke(app, [kind]); assert r.exit_code == 0, r.output\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
