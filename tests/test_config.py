"""The run config: every error at once with its path, did-you-mean, overrides, round trips."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from trainfix.errors import ConfigError, InputError
from trainfix.trainers.config import (
    RunConfig,
    apply_overrides,
    config_hash,
    from_dict,
    load_config,
    parse_override,
    stage_config,
    to_dict,
    validate,
    write_resolved,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits-quick.yaml"
MINIMAL = {"data": {"name": "synthetic"}, "model": {"name": "mlp"}}


def test_example_config_is_valid_and_typed():
    cfg = load_config(EXAMPLE)
    assert isinstance(cfg, RunConfig)
    assert cfg.data.name == "digits" and cfg.data.get("image_size") == 16
    assert cfg.optimizer.name == "adamw" and isinstance(cfg.optimizer.lr, float)
    assert cfg.training.grad_clip is None


def test_defaults_fill_missing_sections():
    cfg = from_dict(MINIMAL)
    assert cfg.loss.name == "cross-entropy"
    assert cfg.logging.every_n_steps == 10 and cfg.checkpoint.best_metric == "val/acc"
    assert cfg.optimizer.lr_scaling == "none" and cfg.optimizer.reference_batch == 256


def test_every_error_is_reported_at_once_with_path_and_suggestion():
    bad = {
        "run": {"devce": "cpu", "precision": "fp8"},
        "data": {"name": "digitz"},
        "model": {"name": "cnn", "widht": 8},
        "optimizer": {"lr": "fast", "lr_scaling": "linaer"},
        "training": {"epochs": 0, "batch_size": 2.5},
        "loggin": {},
    }
    errors = validate(bad)
    text = "\n".join(errors)
    assert "run.devce: unknown key (did you mean 'device'?)" in text
    assert "run.precision: 'fp8' is not fp32|bf16|fp16" in text
    assert "data.name: unknown data 'digitz' (did you mean 'digits'?)" in text
    assert "model.widht: not an argument of model 'cnn' (did you mean 'width'?)" in text
    assert "optimizer.lr: 'fast' is not float" in text
    assert "optimizer.lr_scaling" in text
    assert "training.epochs: must be > 0" in text
    assert "training.batch_size: 2.5 is not int" in text
    assert "loggin: unknown section (did you mean 'logging'?)" in text
    assert len(errors) == 9


def test_missing_required_sections_and_arguments():
    errors = validate({"data": {"name": "image-folder"}})
    assert "model: required section missing" in errors
    assert any(e.startswith("data.root: required") for e in errors)


def test_component_argument_types_are_checked_against_the_factory():
    errors = validate({**MINIMAL, "data": {"name": "digits", "image_size": "large"}})
    assert errors == ["data.image_size: 'large' is not int"]


def test_load_config_raises_config_error_with_details(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data: {name: digits}\nmodel: {name: cnm}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert exc.value.details == ["model.name: unknown model 'cnm' (did you mean 'cnn'?); known: "
                                 "attention-cnn, cnn, mil-dual-stream, mlp, multitask-cnn"]


def test_unreadable_inputs(tmp_path):
    with pytest.raises(InputError):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "evil.yaml").write_text("data: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "evil.yaml")


@pytest.mark.parametrize(
    "text, key, value",
    [
        ("optimizer.lr=1e-3", "optimizer.lr", "1e-3"),  # YAML 1.1 reads this as a string; the float field accepts it
        ("optimizer.lr=0.01", "optimizer.lr", 0.01),
        ("training.grad_clip=null", "training.grad_clip", None),
        ("run.compile=true", "run.compile", True),
        ("optimizer.betas=[0.8, 0.9]", "optimizer.betas", [0.8, 0.9]),
        ("run.name=my run", "run.name", "my run"),
    ],
)
def test_overrides_parse_yaml_values(text, key, value):
    assert parse_override(text) == (key, value)


def test_overrides_apply_nested_and_create_sections():
    cfg = apply_overrides(MINIMAL, ["optimizer.lr=1e-3", "training.epochs=3", "data.num_classes=3"])
    built = from_dict(cfg)
    assert built.optimizer.lr == pytest.approx(1e-3) and built.training.epochs == 3
    assert built.data.get("num_classes") == 3
    assert MINIMAL == {"data": {"name": "synthetic"}, "model": {"name": "mlp"}}  # input untouched


def test_bad_override_is_a_config_error():
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(MINIMAL, ["optimizer.lr"])
    with pytest.raises(ConfigError, match="not a mapping"):
        apply_overrides(MINIMAL, ["data.name.x=1"])


def test_round_trip_through_dict_and_yaml(tmp_path):
    cfg = load_config(EXAMPLE, ["schedule.warmup_steps=5"])
    assert from_dict(to_dict(cfg)) == cfg
    write_resolved(cfg, tmp_path / "config.yaml", source="x.yaml")
    text = (tmp_path / "config.yaml").read_text()
    assert text.startswith("# Resolved trainfix run config")
    assert load_config(tmp_path / "config.yaml") == cfg


def test_recorded_values_do_not_change_the_hash():
    cfg = from_dict(MINIMAL)
    h = config_hash(cfg)
    cfg.optimizer.scaled_lr, cfg.run.world_size, cfg.training.global_batch = 0.1, 2, 128
    assert config_hash(cfg) == h
    cfg.optimizer.lr = 0.5
    assert config_hash(cfg) != h


def test_stage_overrides_are_validated_with_their_path():
    cfg = {**MINIMAL, "stages": [{"name": "dense", "epochs": 1},
                                 {"name": "sparse", "epochs": 1, "init_from": "best",
                                  "overrides": {"sparse.enabled": True, "optimizer.lrr": 0.1}}]}
    assert validate(cfg) == ["stages[1].overrides: optimizer.lrr: unknown key (did you mean 'lr'?); known: "
                             "name, lr, weight_decay, momentum, betas, lr_scaling, reference_batch, scaled_lr"]
    cfg["stages"][1]["overrides"].pop("optimizer.lrr")
    cfg["stages"][0]["init_from"] = "last"
    assert validate(cfg) == ["stages[0].init_from: the first stage has no previous checkpoint to start from"]


def test_stage_config_applies_overrides_and_epochs():
    cfg = from_dict({**MINIMAL, "stages": [{"name": "a", "epochs": 2}, {"name": "b", "epochs": 3, "overrides": {"optimizer.lr": 0.1}}]})
    b = stage_config(cfg, cfg.stages[1])
    assert b.training.epochs == 3 and b.optimizer.lr == 0.1
    assert cfg.optimizer.lr == 0.001


def test_component_escape_hatch_binds_to_the_user_class(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(textwrap.dedent("""
        import torch
        class Net(torch.nn.Module):
            def __init__(self, bundle, hidden: int = 8):
                super().__init__()
                self.lin = torch.nn.Linear(32, bundle.num_classes)
            def forward(self, x):
                return self.lin(x)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    ok = {**MINIMAL, "model": {"_component_": "user_models.Net", "hidden": 4}}
    assert validate(ok, imports=True) == []
    assert validate({**ok, "model": {"_component_": "user_models.Net", "hiden": 4}}, imports=True) == [
        "model.hiden: not an argument of model 'user_models.Net' (did you mean 'hidden'?); known: hidden"]
    assert validate({**ok, "model": {"_component_": "user_models.Nope"}}, imports=True)[0].startswith(
        "model: 'user_models' has no attribute")
    sys.modules.pop("user_models", None)


def test_component_paths_are_not_imported_unless_asked(tmp_path, monkeypatch):
    (tmp_path / "noisy_models.py").write_text("import pathlib\npathlib.Path(__file__).with_name('ran').touch()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = {**MINIMAL, "model": {"_component_": "noisy_models.Net", "hiden": 4}}
    assert validate(cfg) == []  # form checked only: arguments are bound when `train` imports it
    assert validate({**MINIMAL, "model": {"_component_": "not a path!"}}) == [
        "model._component_: 'not a path!' is not an import path; write it as 'package.module.Name' or 'package.module:Name'"]
    assert not (tmp_path / "ran").exists() and "noisy_models" not in sys.modules


def test_config_module_does_not_import_torch():
    import subprocess

    code = "import sys, trainfix.trainers.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_attention_eval_accepts_yaml_bare_on_and_off(tmp_path):
    # YAML 1.1 reads a bare `off` as false: the setting must still mean "off", not be an error
    from trainfix.trainers.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("data: {name: digits}\nmodel: {name: cnn}\ntraining: {attention_eval: off}\n")
    assert load_config(path).training.attention_eval is False
    path.write_text("data: {name: digits}\nmodel: {name: cnn}\ntraining: {attention_eval: on}\n")
    assert load_config(path).training.attention_eval is True
