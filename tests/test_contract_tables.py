"""The contract between the two tables and their files.

Every ``DETECTORS`` entry has its file and class, ``class.name`` equals the key, the docstring has
a summary line and the six sections in order (each heading underlined with dashes of its length),
``Params`` is a dataclass whose fields all have defaults, every fix it names exists, and the roles
the table lists for it are the class's own ``requires`` and ``requires_any`` (the engine skips a
detector from the table's roles without importing it).  Every
``RECIPES`` entry has its file and class, ``id`` equals the key, the docstring has the four sections,
and every detector it resolves exists.  No module in either folder is missing from its table
(helper modules start with ``_``; ``base.py`` is the contract itself).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from pathlib import Path

import pytest

from trainfix.diagnostics import detectors as det_pkg
from trainfix.diagnostics.detectors import DETECTORS, TABLE, Entry, requirements
from trainfix.diagnostics.detectors.base import DOC_SECTIONS, Detector
from trainfix.diagnostics.finding import Severity
from trainfix.diagnostics.roles_vocab import ALL_ROLES
from trainfix.fixes import recipes as rec_pkg
from trainfix.fixes.recipes import RECIPES

RECIPE_SECTIONS = ("What it changes", "When to use", "Why", "Example diff")
DET_DIR = Path(det_pkg.__file__).parent
REC_DIR = Path(rec_pkg.__file__).parent
NOT_ENTRIES = {"__init__.py", "base.py"}
KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


def sections(doc: str | None) -> list[str]:
    """Headings of a numpy-style docstring: a line followed by dashes of the same length."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out = []
    for line, under in zip(lines, lines[1:]):
        if line.strip() and re.fullmatch(r"-{3,}", under.strip()):
            assert len(under.strip()) == len(line.strip()), f"underline of {line.strip()!r} has the wrong length"
            out.append(line.strip())
    return out


def section_bodies(doc: str) -> dict[str, str]:
    lines = inspect.cleandoc(doc).splitlines()
    bodies: dict[str, list[str]] = {}
    current = None
    i = 0
    while i < len(lines):
        if i + 1 < len(lines) and lines[i].strip() and re.fullmatch(r"-{3,}", lines[i + 1].strip()):
            current = lines[i].strip()
            bodies[current] = []
            i += 2
            continue
        if current:
            bodies[current].append(lines[i])
        i += 1
    return {k: "\n".join(v).strip() for k, v in bodies.items()}


def load_class(package: str, target: str, folder: Path):
    module_name, cls_name = target.split(":")
    assert (folder / f"{module_name}.py").is_file(), f"{folder / module_name}.py does not exist"
    module = importlib.import_module(f"{package}.{module_name}")
    assert hasattr(module, cls_name), f"{module.__name__} has no class {cls_name}"
    return getattr(module, cls_name)


@pytest.mark.parametrize("name", list(DETECTORS))
def test_detector_entry(name):
    cls = load_class("trainfix.diagnostics.detectors", DETECTORS[name], DET_DIR)
    assert issubclass(cls, Detector)
    assert cls.name == name, f"class {cls.__name__}.name is {cls.name!r}, table key {name!r}"
    assert KEBAB.match(name)
    assert isinstance(cls.severity, Severity)
    for role in tuple(cls.requires) + tuple(cls.requires_any):
        assert role in ALL_ROLES, f"{name} requires unknown role {role!r}"
    doc = cls.__doc__ or ""
    summary = inspect.cleandoc(doc).splitlines()[0].strip() if doc.strip() else ""
    assert summary and summary not in DOC_SECTIONS, f"{name}: docstring must open with a one-line summary"
    found = sections(doc)
    assert found == list(DOC_SECTIONS), f"{name}: sections {found}, expected {list(DOC_SECTIONS)} in order"
    empty = [s for s, body in section_bodies(doc).items() if not body]
    assert not empty, f"{name}: empty sections {empty}"
    assert dataclasses.is_dataclass(cls.Params), f"{name}: Params must be a dataclass"
    no_default = [f.name for f in dataclasses.fields(cls.Params)
                  if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    assert not no_default, f"{name}: Params fields without defaults: {no_default}"
    cls.Params()
    unknown = [fx for fx in cls.fixes if fx not in RECIPES]
    assert not unknown, f"{name} names fixes that are not in RECIPES: {unknown}"


@pytest.mark.parametrize("name", list(DETECTORS))
def test_the_table_lists_the_roles_each_detector_class_requires(name):
    cls = load_class("trainfix.diagnostics.detectors", DETECTORS[name], DET_DIR)
    assert TABLE[name].requires == tuple(cls.requires), f"{name}: table requires {TABLE[name].requires}, class {cls.requires}"
    assert TABLE[name].requires_any == tuple(cls.requires_any), (
        f"{name}: table requires_any {TABLE[name].requires_any}, class {cls.requires_any}")
    assert requirements(name) == (tuple(cls.requires), tuple(cls.requires_any))


def test_a_detector_skipped_for_missing_roles_is_never_imported(monkeypatch):
    """The skip comes from the table: a module that cannot even be imported is skipped when the run
    lacks its roles, and is an internal error (it was imported) when the run has them."""
    import pandas as pd

    from trainfix.diagnostics.engine import diagnose
    from trainfix.diagnostics.roles_vocab import MEMORY, TRAIN_LOSS, Resolution, RoleMap
    from trainfix.diagnostics.run import Run

    monkeypatch.setitem(TABLE, "memory-growth", Entry("no_such_module:Ghost", requires=(MEMORY,)))
    monkeypatch.setitem(DETECTORS, "memory-growth", "no_such_module:Ghost")

    def run(roles):
        df = pd.DataFrame({"tag": [t for t in roles.values() for _ in range(3)], "step": [1.0, 2.0, 3.0] * len(roles),
                           "value": [3.0, 2.0, 1.0] * len(roles), "wall_time": 0.0, "source": "metrics.jsonl"})
        rm = RoleMap(single={r: Resolution(t, "canonical name") for r, t in roles.items()})
        return Run(Path("runs/a"), df, roles=rm, inputs={})

    without = diagnose(run({TRAIN_LOSS: "train/loss"}), select=["memory-growth"])
    assert [s.detector for s in without.skipped] == ["memory-growth"] and not without.errors
    assert "missing role: memory" in without.skipped[0].reason
    with_memory = diagnose(run({TRAIN_LOSS: "train/loss", MEMORY: "mem/allocated_mb"}), select=["memory-growth"])
    assert [e.detector for e in with_memory.errors] == ["memory-growth"]
    assert "cannot load detector: ModuleNotFoundError" in with_memory.errors[0].message


def test_a_replaced_table_entry_falls_back_to_the_class_roles(monkeypatch):
    monkeypatch.setitem(DETECTORS, "memory-growth", "no_such_module:Ghost")
    assert requirements("memory-growth") is None
    assert requirements("no-such-detector") is None


@pytest.mark.parametrize("recipe_id", list(RECIPES))
def test_recipe_entry(recipe_id):
    cls = load_class("trainfix.fixes.recipes", RECIPES[recipe_id], REC_DIR)
    assert cls.id == recipe_id, f"class {cls.__name__}.id is {cls.id!r}, table key {recipe_id!r}"
    assert KEBAB.match(recipe_id)
    found = sections(cls.__doc__)
    assert found == list(RECIPE_SECTIONS), f"{recipe_id}: sections {found}, expected {list(RECIPE_SECTIONS)}"
    unknown = [d for d in getattr(cls, "resolves", ()) if d not in DETECTORS]
    assert not unknown, f"{recipe_id} resolves detectors that are not in DETECTORS: {unknown}"


@pytest.mark.parametrize("folder, table", [(DET_DIR, DETECTORS), (REC_DIR, RECIPES)], ids=["detectors", "recipes"])
def test_every_module_is_in_its_table(folder, table):
    listed = {target.split(":")[0] + ".py" for target in table.values()}
    files = {p.name for p in folder.glob("*.py") if p.name not in NOT_ENTRIES and not p.name.startswith("_")}
    missing = sorted(files - listed)
    assert not missing, f"modules in {folder.name}/ missing from the table (prefix helpers with _): {missing}"


def test_sections_helper_rejects_a_misordered_docstring():
    doc = "Summary.\n\nWhy it matters\n--------------\nx\n\nWhat it detects\n---------------\ny\n"
    assert sections(doc) == ["Why it matters", "What it detects"]
    with pytest.raises(AssertionError, match="wrong length"):
        sections("Summary.\n\nEvidence\n---\nx\n")


def sibling_imports(folder: Path, package: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """``file: module`` for every import of a sibling module of ``package`` (absolute or relative,
    lazy ones inside functions too), but those named in ``allowed`` and a module's own name."""
    import ast

    offenders = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.level:  # from .x import y, from . import x
                base = ".".join([package, node.module] if node.module else [package])
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            depth = package.count(".") + 1
            for name in names:
                if name.startswith(package + ".") and name.split(".")[depth] not in (*allowed, path.stem):
                    offenders.append(f"{path.name}: {name}")
    return sorted(set(offenders))


def test_no_detector_imports_another_detector():
    """Detectors never import each other: what two of them share lives in ``diagnostics.signals``
    (numerics, run-level series) or ``diagnostics.knobs`` (config facts)."""
    offenders = sibling_imports(DET_DIR, "trainfix.diagnostics.detectors", allowed=("base",))
    assert not offenders, f"sibling imports: {offenders}"


def test_no_recipe_imports_another_recipe():
    """Recipes never import each other: what two of them plan lives in ``fixes.base`` or
    ``fixes.schedule_edits``."""
    offenders = sibling_imports(REC_DIR, "trainfix.fixes.recipes")
    assert not offenders, f"sibling imports: {offenders}"


def test_sibling_imports_sees_absolute_relative_and_lazy_imports(tmp_path):
    (tmp_path / "a.py").write_text("from trainfix.pkg.b import x\nfrom trainfix.pkg import base\n")
    (tmp_path / "c.py").write_text("def f():\n    from .d import y\n    from . import e\n    import trainfix.pkg.f\n")
    assert sibling_imports(tmp_path, "trainfix.pkg", allowed=("base",)) == [
        "a.py: trainfix.pkg.b", "a.py: trainfix.pkg.b.x", "c.py: trainfix.pkg.d", "c.py: trainfix.pkg.d.y",
        "c.py: trainfix.pkg.e", "c.py: trainfix.pkg.f"]


@pytest.mark.parametrize("name", list(DETECTORS))
def test_check_is_typed_with_the_run_and_the_detectors_own_params(name):
    cls = load_class("trainfix.diagnostics.detectors", DETECTORS[name], DET_DIR)
    params = inspect.signature(cls.check).parameters
    assert str(params["run"].annotation) in ("Run", "'Run'"), f"{name}.check(run: ...) is not typed Run"
    assert str(params["params"].annotation) in ("Params", "'Params'"), f"{name}.check(params: ...) is not typed Params"
