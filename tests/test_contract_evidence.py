"""The contract between findings and fix recipes: evidence keys.

A recipe reads numbers out of the finding it answers (``evidence_number(finding, "expected_lr")``).
Those keys are a string contract between two packages, so it is checked here: every key a recipe's
source reads is declared in its ``evidence``, and every declared key is really emitted (present
in a finding's evidence) by a detector the recipe answers: one it ``resolves`` or one whose
findings name it as a fix.  Emission is observed, not declared: each detector is run on the
synthetic runs that must make it fire.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from functools import lru_cache

import pytest

import synthetic_runs as synthetic
from trainfix.diagnostics.detectors import DETECTORS, load
from trainfix.diagnostics.engine import diagnose
from trainfix.fixes.recipes import RECIPES


def recipe_class(recipe_id: str):
    module_name, cls_name = RECIPES[recipe_id].split(":")
    return getattr(importlib.import_module(f"trainfix.fixes.recipes.{module_name}"), cls_name)


def keys_read_in_source(cls) -> set[str]:
    """The evidence keys the module of recipe ``cls`` reads (:func:`keys_read`)."""
    return keys_read(inspect.getsource(inspect.getmodule(cls)))


def keys_read(source: str) -> set[str]:
    """String keys read from a finding's evidence in ``source``: passed to ``evidence_number(finding,
    ...)``, to ``.get(...)`` on an ``evidence``, as ``evidence["key"]``, or tested as ``"key" in evidence``."""
    keys: set[str] = set()

    def on_evidence(node: ast.AST) -> bool:
        return "evidence" in ast.unparse(node)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            fn = node.func
            if isinstance(fn, ast.Name) and fn.id == "evidence_number":
                keys |= {a.value for a in node.args[1:] if isinstance(a, ast.Constant) and isinstance(a.value, str)}
            elif isinstance(fn, ast.Attribute) and fn.attr == "get" and on_evidence(fn.value):
                if node.args and isinstance(node.args[0], ast.Constant):
                    keys.add(node.args[0].value)
        elif isinstance(node, ast.Subscript) and on_evidence(node.value):
            if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                keys.add(node.slice.value)
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str):
            if any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and any(on_evidence(c) for c in node.comparators):
                keys.add(node.left.value)
    return keys


def answered_by(recipe_id: str) -> set[str]:
    """Detectors whose findings this recipe may answer."""
    cls = recipe_class(recipe_id)
    named = {name for name in DETECTORS if recipe_id in load(name).fixes}
    return set(cls.resolves) | named


def class_disparity_with_recorded_counts():
    """The class-disparity run as the trainer writes it: with the per-class training counts."""
    run = synthetic.pathology("class-disparity", None, 0)
    classes = sorted({t.rsplit("/", 1)[-1] for t in run.tags if t.startswith("val/acc/")})
    run.config = dict(run.config or {}, class_counts={c: (900 if i == 0 else 90) for i, c in enumerate(classes)})
    return run


#: runs beyond the synthetic pathologies, for evidence only some runs carry
EXTRA_RUNS = {"class-disparity": [class_disparity_with_recorded_counts]}


@lru_cache(maxsize=None)
def emitted(detector: str) -> frozenset[str]:
    """Evidence keys of ``detector``'s findings on every synthetic run that must make it fire."""
    keys: set[str] = set()
    runs = [lambda n=name, s=strength: synthetic.pathology(n, s, 0)
            for name, spec in synthetic.PATHOLOGIES.items() if detector in spec.expected
            for strength in spec.strengths]
    for make in runs + EXTRA_RUNS.get(detector, []):
        report = diagnose(make(), select=[detector])
        keys |= {k for f in report.findings if f.detector == detector for k in (f.evidence or {})}
    return frozenset(keys)


@pytest.mark.parametrize("recipe_id", list(RECIPES))
def test_recipe_declares_every_evidence_key_it_reads(recipe_id):
    cls = recipe_class(recipe_id)
    undeclared = keys_read_in_source(cls) - set(cls.evidence)
    assert not undeclared, f"{recipe_id} reads evidence keys it does not declare: {sorted(undeclared)}"


@pytest.mark.parametrize("recipe_id", [r for r in RECIPES if recipe_class(r).evidence])
def test_every_declared_evidence_key_is_emitted_by_a_detector_the_recipe_answers(recipe_id):
    cls = recipe_class(recipe_id)
    detectors = sorted(answered_by(recipe_id))
    for key in cls.evidence:
        emitters = [d for d in detectors if key in emitted(d)]
        assert emitters, (f"{recipe_id} reads evidence[{key!r}] but none of the detectors it answers "
                          f"({', '.join(detectors)}) emits it")


def test_the_source_scan_sees_evidence_reads():
    # the scanner itself: lower-lr reads four keys, two through evidence_number and one through .get
    assert {"expected_lr", "effective_lr", "lr", "typical_range"} <= keys_read_in_source(recipe_class("lower-lr"))
    source = ("def plan(self, config, finding):\n"
              "    a = evidence_number(finding, 'a', 'b')\n"
              "    c = (finding.evidence or {}).get('c')\n"
              "    d = finding.evidence['d']\n"
              "    if 'e' in finding.evidence and 'f' not in (finding.evidence or {}):\n"
              "        return config.get('not_evidence'), {'x': 1}['not_either']\n")
    assert keys_read(source) == {"a", "b", "c", "d", "e", "f"}


@pytest.mark.parametrize("recipe_id", list(RECIPES))
def test_every_recipe_answers_a_detector_whose_evidence_can_be_checked(recipe_id):
    assert isinstance(recipe_class(recipe_id).evidence, tuple), f"{recipe_id}.evidence must be a tuple of keys"
    assert answered_by(recipe_id), f"{recipe_id} answers no detector: no evidence it reads can be emitted"
