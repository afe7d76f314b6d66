"""Config patches: applied to a copy, validated, diffed, recorded, and idempotent."""

from __future__ import annotations

import copy

import pytest

from trainfix.errors import FixError
from trainfix.fixes.foreign import load_document
from trainfix.fixes.patch import (
    MISSING,
    Edit,
    Patch,
    apply_patch,
    get_path,
    patch_document,
    provenance_entry,
    same_value,
    set_path,
    unified_diff,
)

BASE = {
    "run": {"name": "t", "seed": 0, "device": "cpu"},
    "data": {"name": "digits", "image_size": 8},
    "model": {"name": "mlp"},
    "loss": {"name": "cross-entropy"},
    "optimizer": {"name": "adam", "lr": 0.001},
    "training": {"epochs": 3, "batch_size": 32},
}


def test_apply_never_mutates_the_input():
    before = copy.deepcopy(BASE)
    patch = Patch("grad-clip", [Edit(("training", "grad_clip"), MISSING, 1.0, "clip")])
    result = apply_patch(BASE, patch, trainfix=True)
    assert BASE == before
    assert result.tree["training"]["grad_clip"] == 1.0
    assert [e.dotted for e in result.changed] == ["training.grad_clip"]


def test_same_edit_twice_changes_nothing_the_second_time():
    patch = Patch("grad-clip", [Edit(("training", "grad_clip"), MISSING, 1.0, "clip")])
    first = apply_patch(BASE, patch, trainfix=True)
    second = apply_patch(first.tree, patch, trainfix=True)
    assert second.is_noop and len(second.unchanged) == 1
    assert second.tree == first.tree


def test_relative_patch_is_not_applied_again_once_recorded():
    patch = Patch("lower-lr", [Edit(("optimizer", "lr"), 0.001, 0.0003, "x0.3")], relative=True)
    first = apply_patch(BASE, patch, trainfix=True)
    assert first.tree["optimizer"]["lr"] == pytest.approx(0.0003)
    again = apply_patch(first.tree, patch, trainfix=True, provenance=[provenance_entry("lower-lr", None)])
    assert again.already_applied and again.is_noop
    assert again.tree["optimizer"]["lr"] == pytest.approx(0.0003)


def test_invalid_result_is_refused_with_every_reason():
    patch = Patch("bad", [Edit(("optimizer", "name"), "adam", "adamx", "typo"),
                          Edit(("training", "epochs"), 3, "many", "wrong type")])
    with pytest.raises(FixError) as info:
        apply_patch(BASE, patch, trainfix=True)
    assert "invalid" in info.value.message
    text = " ".join(info.value.details)
    assert "optimizer.name" in text and "training.epochs" in text


def test_foreign_trees_are_not_validated_against_the_schema():
    patch = Patch("lower-lr", [Edit(("lr",), 0.1, 0.03, "x0.3")])
    result = apply_patch({"lr": 0.1, "whatever": 1}, patch, trainfix=False)
    assert result.tree == {"lr": 0.03, "whatever": 1}


def test_paths_create_mappings_and_index_lists():
    tree = {"a": [{"b": 1}, {"b": 2}]}
    set_path(tree, ("a", "1", "b"), 5)
    set_path(tree, ("x", "y"), 1)
    assert tree == {"a": [{"b": 1}, {"b": 5}], "x": {"y": 1}}
    assert get_path(tree, ("a", "0", "b")) == 1
    assert get_path(tree, ("a", "9", "b")) is MISSING
    assert get_path(tree, ("nope",)) is MISSING


def test_same_value_tolerates_float_noise_but_not_type_confusion():
    assert same_value(0.1, 0.1 + 1e-12)
    assert same_value(1, 1.0)
    assert not same_value(True, 1)
    assert not same_value(None, 0)
    assert same_value([-2, 2], [-2.0, 2.0])
    assert not same_value(0.1, 0.2)


def test_unified_diff_names_both_files():
    diff = unified_diff("a: 1\nb: 2\n", "a: 1\nb: 3\n", "in.yaml", "out.yaml")
    assert diff.startswith("--- in.yaml\n+++ out.yaml\n")
    assert "-b: 2\n" in diff and "+b: 3\n" in diff
    assert unified_diff("x\n", "x\n", "a", "b") == ""


def test_patch_document_records_provenance_and_keeps_untouched_text(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "# header comment\n"
        "run: {name: t, seed: 0, device: cpu}\n"
        "data: {name: digits, image_size: 8}\n"
        "model: {name: mlp}   # tiny\n"
        "optimizer:\n  name: adam\n  lr: 0.001   # tuned\n"
        "training: {epochs: 3, batch_size: 32}\n"
    )
    doc = load_document(path)
    patch = Patch("lower-lr", [Edit(("optimizer", "lr"), 0.001, 0.0003, "x0.3")], finding="loss-divergence", relative=True)
    result = patch_document(doc, [patch], "c.fixed.yaml")
    assert result.changed
    assert "# header comment\n" in result.text and "model: {name: mlp}   # tiny\n" in result.text
    lr_line = [ln for ln in result.text.splitlines() if "lr:" in ln][0]
    assert "0.0003" in lr_line and lr_line.rstrip().endswith("# was 0.001: tuned")  # the comment stays true
    assert result.provenance[-1]["id"] == "lower-lr" and result.provenance[-1]["finding"] == "loss-divergence"
    assert "+  - id: lower-lr" in result.diff
    changed_lines = [ln for ln in result.diff.splitlines() if ln[:1] in "+-" and ln[:3] not in ("+++", "---")]
    assert not any("run:" in ln or "data:" in ln or "model:" in ln for ln in changed_lines)
    assert path.read_text().count("0.001") == 1  # the input is untouched
