"""Foreign and own config files: read, edit, write back with format, order and comments kept."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from trainfix.errors import InputError
from trainfix.fixes import foreign
from trainfix.fixes.foreign import default_output, find_config, load_document, write_atomic
from trainfix.fixes.patch import patch_document
from trainfix.fixes.recommend import plan_fixes

HF_ARGS = {
    "output_dir": "out",
    "learning_rate": 5e-05,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": 4,
    "num_train_epochs": 3,
    "warmup_ratio": 0.0,
    "warmup_steps": 0,
    "max_grad_norm": 1.0,
    "label_smoothing_factor": 0.0,
    "lr_scheduler_type": "linear",
}

USER_YAML = """\
# my attention model (seed 000 style)
model:
    backbone: resnet18
train:
    learning_rate: 5e-4     # from the paper
    batch_size: 4
    gradient_accumulation_steps: 4
    warmup_epochs: 0
    epochs: 30
    milestones:
    - 10
    - 20
loss:
    lambda_sparsity: 0.001  # tiny
    lambda_consistency: 0
    sparsity_divisor: 1000
"""


def _apply(path, *fix_ids):
    doc = load_document(path)
    patches, already = plan_fixes(doc.tree, fix_ids, [], doc.provenance)
    out = default_output(path)
    result = patch_document(doc, patches, str(out))
    return doc, result, out


def test_unchanged_yaml_round_trips_byte_for_byte(tmp_path):
    p = tmp_path / "my.yaml"
    p.write_text(USER_YAML)
    doc = load_document(p)
    assert doc.flavor == "yaml" and doc.yaml_indent[0] == 4
    assert foreign.dump_document(doc, doc.tree) == USER_YAML


def test_yaml_edit_keeps_comments_order_and_indent(tmp_path):
    p = tmp_path / "my.yaml"
    p.write_text(USER_YAML)
    doc, result, out = _apply(p, "sparsity-l1")
    text = result.text
    assert text.splitlines()[0] == "# my attention model (seed 000 style)"
    assert "    learning_rate: 5e-4     # from the paper" in text  # untouched line, untouched text
    assert "lambda_sparsity: 0.1    # was 0.001: tiny" in text
    assert "sparsity_divisor: 1\n" in text  # an int stays an int
    keys = [ln.split(":")[0].strip() for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert keys.index("lambda_sparsity") < keys.index("lambda_consistency") < keys.index("sparsity_divisor")
    assert yaml.safe_load(text)["loss"]["lambda_sparsity"] == 0.1
    # what cannot be mapped (how the term is computed) is advice, not a silent no-op
    assert any("normalis" in a for p_, _ in result.applied for a in p_.advice)


def test_written_floats_are_floats_for_yaml_1_1_readers(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optimizer:\n  lr: 0.0001\n")
    doc = load_document(p)
    tree = doc.tree
    import copy
    t2 = copy.deepcopy(tree)
    t2["optimizer"]["lr"] = 3e-05
    t2["optimizer"]["big"] = 1e20
    text = foreign.dump_document(doc, t2)
    loaded = yaml.safe_load(text)  # PyYAML reads "3e-05" as a string; we must write 3.0e-05
    assert loaded["optimizer"]["lr"] == pytest.approx(3e-05) and isinstance(loaded["optimizer"]["lr"], float)
    assert isinstance(loaded["optimizer"]["big"], float)


def test_hf_training_args_json_keeps_indent_and_order(tmp_path):
    p = tmp_path / "training_args.json"
    p.write_text(json.dumps(HF_ARGS, indent=4) + "\n")
    doc, result, out = _apply(p, "label-smoothing", "lr-warmup")
    assert doc.flavor == "hf-training-args"
    new = json.loads(result.text)
    assert list(new) == list(HF_ARGS)  # order kept, no new keys (TrainingArguments rejects them)
    assert new["label_smoothing_factor"] == 0.1 and new["warmup_ratio"] == 0.1 and new["warmup_steps"] == 0
    assert new["max_grad_norm"] == 1.0
    assert result.text.splitlines()[1].startswith("    \"output_dir\"")


def test_grad_clip_already_in_place_is_a_reasoned_refusal(tmp_path):
    from trainfix.errors import FixError

    p = tmp_path / "training_args.json"
    p.write_text(json.dumps(HF_ARGS, indent=2))
    with pytest.raises(FixError, match="already clipped at 1"):
        _apply(p, "grad-clip")


def test_json_provenance_goes_to_a_sidecar_and_makes_lower_lr_idempotent(tmp_path):
    p = tmp_path / "args.json"
    p.write_text(json.dumps(HF_ARGS, indent=2))
    doc, result, out = _apply(p, "lower-lr")
    foreign.write_document(doc, result.text, out, result.provenance)
    assert json.loads(out.read_text())["learning_rate"] == pytest.approx(1.5e-05)
    side = foreign.sidecar_path(out)
    assert json.loads(side.read_text())["applied_fixes"][0]["id"] == "lower-lr"
    doc2 = load_document(out)
    assert [e["id"] for e in doc2.provenance] == ["lower-lr"]
    patches, _ = plan_fixes(doc2.tree, ["lower-lr"], [], doc2.provenance)
    again = patch_document(doc2, patches)
    assert not again.changed


def test_foreign_yaml_provenance_is_a_header_comment(tmp_path):
    p = tmp_path / "my.yaml"
    p.write_text(USER_YAML)
    doc, result, out = _apply(p, "lower-lr")
    foreign.write_document(doc, result.text, out, result.provenance)
    assert "# trainfix-applied:" in out.read_text()
    assert "applied_fixes" not in yaml.safe_load(out.read_text())
    assert [e["id"] for e in load_document(out).provenance] == ["lower-lr"]


def test_lightning_hparams_by_name(tmp_path):
    p = tmp_path / "hparams.yaml"
    p.write_text("lr: 0.01\ngradient_clip_val: 0\nlabel_smoothing: 0.0\nbatch_size: 32\n")
    doc, result, _ = _apply(p, "grad-clip", "lower-lr")
    assert doc.flavor == "lightning-hparams"
    new = yaml.safe_load(result.text)
    assert new["gradient_clip_val"] == 1.0 and new["lr"] == pytest.approx(0.003)


def test_find_config_prefers_trainfix_then_known_names(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("")
    (tmp_path / "trainer_state.json").write_text("{}")
    (tmp_path / "hparams.yaml").write_text("lr: 0.1\n")
    assert find_config(tmp_path).name == "hparams.yaml"
    (tmp_path / "config.yaml").write_text("model: {name: mlp}\n")
    assert find_config(tmp_path).name == "config.yaml"


def test_find_config_is_explicit_about_ambiguity_and_absence(tmp_path):
    with pytest.raises(InputError, match="no config file"):
        find_config(tmp_path)
    (tmp_path / "a.yaml").write_text("lr: 1\n")
    (tmp_path / "b.yaml").write_text("lr: 2\n")
    with pytest.raises(InputError, match="2 config files"):
        find_config(tmp_path)


def test_default_output_never_overwrites_the_input(tmp_path):
    p = tmp_path / "config.yaml"
    assert default_output(p) == tmp_path / "config.fixed.yaml"
    again = tmp_path / "config.fixed.yaml"
    assert default_output(again) == tmp_path / "config.fixed-2.yaml"
    (tmp_path / "outdir").mkdir()
    assert default_output(p, tmp_path / "outdir") == tmp_path / "outdir" / "config.fixed.yaml"
    with pytest.raises(InputError, match="overwrite the input"):
        default_output(p, p)


def test_write_atomic_reports_unwritable_locations(tmp_path, monkeypatch):
    from trainfix.errors import OutputError

    with pytest.raises(OutputError, match="does not exist"):
        write_atomic(tmp_path / "missing" / "x.yaml", "a: 1\n")

    def deny(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", deny)
    with pytest.raises(OutputError, match="permission denied"):
        write_atomic(tmp_path / "x.yaml", "a: 1\n")
    assert not list(tmp_path.glob(".x.yaml.*"))  # no temp file left behind


def test_unparsable_and_non_mapping_files_are_input_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_document(bad)
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(InputError, match="not a mapping"):
        load_document(lst)


def test_yaml_tags_do_not_construct_python_objects(tmp_path):
    p = tmp_path / "evil.yaml"
    marker = tmp_path / "pwned"
    p.write_text(f"lr: !!python/object/apply:os.system ['touch {marker}']\n")
    try:
        load_document(p)
    except InputError:
        pass
    assert not marker.exists()


def test_flavor_detection():
    from pathlib import Path

    from trainfix.fixes.foreign import detect_flavor

    assert detect_flavor({"data": {"name": "digits"}, "model": {"name": "mlp"}}, Path("c.yaml"), "yaml") == "trainfix"
    assert detect_flavor({"data": {}, "model": {}, "trainer": {}}, Path("c.yaml"), "yaml") == "yaml"
    assert detect_flavor({"lr": 0.1}, Path("hparams.yaml"), "yaml") == "lightning-hparams"
    assert detect_flavor(HF_ARGS, Path("args.json"), "json") == "hf-training-args"
    assert detect_flavor({"lr": 0.1}, Path("c.json"), "json") == "json"
