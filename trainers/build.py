"""Turn a run config into its components: ``build(cfg) -> (bundle, model, loss)``.

The dataset is built from ``run.seed``; the model's initial weights come from ``torch.manual_seed(
run.seed)`` right before it is built, so the same config gives the same starting point on every
process and every rerun.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from trainfix.trainers.components import registry
from trainfix.trainers.components.base import DataBundle
from trainfix.trainers.config import RunConfig, from_dict, load_config


def build_data(cfg: RunConfig) -> DataBundle:
    bundle = registry.build("data", cfg.data.to_dict(), cfg.run.seed)
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"data factory returned {type(bundle).__name__}, expected DataBundle")
    return bundle


def build_model(cfg: RunConfig, bundle: DataBundle) -> torch.nn.Module:
    torch.manual_seed(cfg.run.seed)
    return registry.build("model", cfg.model.to_dict(), bundle)


def build_loss(cfg: RunConfig, bundle: DataBundle) -> torch.nn.Module:
    return registry.build("loss", cfg.loss.to_dict(), bundle)


def build(cfg: RunConfig) -> tuple[DataBundle, torch.nn.Module, torch.nn.Module]:
    """The data bundle, the model (seeded init) and the loss module of ``cfg``."""
    bundle = build_data(cfg)
    return bundle, build_model(cfg, bundle), build_loss(cfg, bundle)


def as_config(config: Any, overrides: tuple[str, ...] | list[str] = ()) -> RunConfig:
    """A RunConfig from a RunConfig, a dict, a YAML path or a run dir (its config.yaml)."""
    from trainfix.trainers.config import apply_overrides, to_dict

    if isinstance(config, RunConfig):
        return from_dict(apply_overrides(to_dict(config), overrides)) if overrides else config
    if isinstance(config, dict):
        return from_dict(apply_overrides(config, overrides))
    path = Path(os.fspath(config))
    if path.is_dir():
        path = path / "config.yaml"
    return load_config(path, overrides)


def model_from_config(path_or_cfg: Any) -> torch.nn.Module:
    """A freshly initialised model of a config (YAML path, run dir, dict or RunConfig).

    Used to compare a checkpoint's keys with what the config builds.  Building needs the data bundle
    (the model sizes itself from it); for the bundled datasets that takes well under a second.
    """
    cfg = as_config(path_or_cfg)
    return build_model(cfg, build_data(cfg))
