"""One parser for switches, one coercer, one "is this trainfix's config", one lr range."""

from __future__ import annotations

from typing import Literal, Optional

import pytest

from trainfix import values
from trainfix.diagnostics import knobs


@pytest.mark.parametrize("raw, expected", [(True, True), ("Yes", True), ("on", True), (1, True), (0.0, False),
                                           ("off", False), ("null", False), ("auto", None), (None, None)])
def test_truthy_reads_switches_as_people_write_them(raw, expected):
    assert values.truthy(raw) is expected


def test_text_coercion_parses_command_line_values():
    assert values.coerce("0.01", float) == 0.01
    assert values.coerce("true", bool) is True
    assert values.coerce("1e-4, 3e-3", tuple[float, float]) == (1e-4, 3e-3)
    assert values.coerce("none", Optional[int]) is None
    assert values.coerce("2", Literal[1, 2]) == 2
    with pytest.raises(values.BadValue, match="true or false"):
        values.coerce("maybe", bool)


def test_strict_coercion_keeps_a_yaml_document_typed():
    assert values.coerce("1e-3", float, strict=True) == 1e-3  # YAML 1.1 reads 1e-3 as text
    assert values.coerce(3, float, strict=True) == 3.0
    assert values.coerce([1, 2], tuple[int, ...], strict=True) == [1, 2]
    for bad, hint in (("true", bool), (1, bool), (2.0, int), ("1,2", list[int]), (True, Literal[1])):
        with pytest.raises(values.BadValue):
            values.coerce(bad, hint, strict=True)


def test_trainfix_config_needs_only_its_sections_and_data_and_model():
    assert values.is_trainfix_config({"data": {}, "model": {}, "optimizer": {}})
    assert not values.is_trainfix_config({"data": {}, "model": {}, "learning_rate": 1e-3})
    assert not values.is_trainfix_config({"optimizer": {}, "training": {}})


def test_the_trainer_validates_against_the_same_section_list():
    from trainfix.trainers import config

    assert config.ALL_SECTIONS == values.TRAINFIX_SECTIONS


def test_lr_range_depends_on_the_optimizer_and_the_regime():
    assert knobs.lr_range("adam") == (1e-4, 3e-3)
    assert knobs.lr_range("adam", "finetune")[1] < knobs.lr_range("adam")[1]
    assert knobs.judge_lr(3e-3, "adam") == "moderate"
    assert knobs.judge_lr(3e-3, "adam", "finetune") == "large"
    assert knobs.judge_lr(2e-5, "adam", "finetune") == "moderate"
    assert knobs.judge_lr(2e-5, "adam") == "tiny"
    assert knobs.judge_lr(None, "sgd") == "unknown"


@pytest.mark.parametrize("config, regime", [
    ({"model_name_or_path": "openai/whisper-small"}, "finetune"),
    ({"model": {"pretrained": True}}, "finetune"),
    ({"init_from": "scratch"}, "scratch"),
    ({"per_device_train_batch_size": 8, "output_dir": "out", "learning_rate": 3e-3}, "finetune"),
    ({"optimizer": {"lr": 1e-3}}, "scratch"),
])
def test_training_regime_from_the_config(config, regime):
    assert knobs.training_regime(config)[0] == regime


def test_one_warmup_test_reads_config_and_a_logged_ramp():
    assert knobs.has_warmup({"warmup_steps": 500})
    assert knobs.has_warmup({"lr_scheduler": "OneCycleLR"})
    assert knobs.has_warmup({}, [1e-5, 5e-4, 1e-3, 1e-3])
    assert not knobs.has_warmup({"warmup_ratio": 0}, [1e-3, 1e-3, 5e-4])
