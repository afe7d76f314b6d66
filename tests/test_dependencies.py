"""Dependencies point one way (DESIGN.md): ``cli`` and :mod:`trainfix.stories` compose the packages;
``diagnostics`` imports nothing of ours outside itself; ``fixes`` reaches into the trainer only for
its config schema; the trainer imports neither the diagnostics (but for the online checks in
``trainers/integrations``) nor the fixes; benchmarks never go through the command line modules.  The root modules that import nothing else of ours
(``errors``, ``values``, ``weights``) may be imported by every package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = {"trainfix", "trainfix.errors", "trainfix.values", "trainfix.weights", "trainfix.outputs"}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``trainfix...`` import in ``path``, lazy ones inside functions too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "trainfix":
            for alias in node.names:  # `from trainfix.x import y`: module x, or x.y when y is a module
                sub = ROOT.joinpath(*node.module.split(".")[1:], alias.name)
                is_module = sub.with_suffix(".py").is_file() or (sub / "__init__.py").is_file()
                out.append((node.lineno, f"{node.module}.{alias.name}" if is_module else node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "trainfix")
    return out


def violations(folder: str, allowed) -> list[str]:
    found = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for line, mod in imports_of(path):
            if not allowed(mod):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {mod}")
    return found


def test_shared_root_modules_import_nothing_else_of_ours():
    # safe_read (standard library only) opens untrusted files for readers and checkpoints alike
    ok = SHARED | {"trainfix.diagnostics.ingest.safe_read"}
    for name in ("errors", "values", "weights", "outputs"):
        bad = [f"{name}.py:{line} imports {mod}" for line, mod in imports_of(ROOT / f"{name}.py") if mod not in ok]
        assert bad == []


def test_diagnostics_import_nothing_of_ours_outside_diagnostics():
    assert violations("diagnostics", lambda m: m in SHARED or m.startswith("trainfix.diagnostics")) == []


def test_fixes_use_the_trainer_only_for_its_config_schema():
    ok = ("trainfix.fixes", "trainfix.diagnostics", "trainfix.trainers.config")
    assert violations("fixes", lambda m: m in SHARED or m.startswith(ok)) == []


def test_the_trainer_imports_neither_diagnostics_nor_fixes_nor_the_cli():
    # the online checks (Lightning / Hugging Face callbacks) run the detectors: only they may
    online = "trainers/integrations/"
    bad = [v for v in violations("trainers", lambda m: m in SHARED or m.startswith("trainfix.trainers"))
           if not (v.startswith(online) and " imports trainfix.diagnostics" in v)]
    assert bad == []


@pytest.mark.parametrize("folder", ["benchmarks", "tests"])
def test_benchmarks_and_tests_reach_the_stories_without_the_cli_modules(folder):
    bad = violations(folder, lambda m: not m.startswith("trainfix.cli.demo"))
    assert bad == []
