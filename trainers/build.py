"""Turn a run config into its components: ``build(cfg) -> (bundle, model, loss)``.

The dataset is built from ``run.seed``; the model's initial weights come from ``torch.manual_seed(
run.seed)`` right before it is built, so the same config gives the same starting point on every
process and every rerun.

``imports`` (default False): whether a ``_component_`` outside trainfix's registries may be imported
and called.  Only training the user's own config passes True; building a model to compare with a
checkpoint (:func:`model_from_config`, :func:`expected_model`) never does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from trainfix.trainers.components import registry
from trainfix.trainers.components.base import DataBundle
from trainfix.trainers.config import RunConfig, from_dict, load_config


def build_data(cfg: RunConfig, *, imports: bool = False) -> DataBundle:
    bundle = registry.build("data", cfg.data.to_dict(), cfg.run.seed, imports=imports)
    if not isinstance(bundle, DataBundle):
        raise TypeError(f"data factory returned {type(bundle).__name__}, expected DataBundle")
    return bundle


def build_model(cfg: RunConfig, bundle: DataBundle, *, imports: bool = False) -> torch.nn.Module:
    torch.manual_seed(cfg.run.seed)
    return registry.build("model", cfg.model.to_dict(), bundle, imports=imports)


def build_loss(cfg: RunConfig, bundle: DataBundle, *, imports: bool = False) -> torch.nn.Module:
    return registry.build("loss", cfg.loss.to_dict(), bundle, imports=imports)


def build(cfg: RunConfig, *, imports: bool = False) -> tuple[DataBundle, torch.nn.Module, torch.nn.Module]:
    """The data bundle, the model (seeded init) and the loss module of ``cfg``."""
    bundle = build_data(cfg, imports=imports)
    return bundle, build_model(cfg, bundle, imports=imports), build_loss(cfg, bundle, imports=imports)


def as_config(config: Any, overrides: tuple[str, ...] | list[str] = (), *, imports: bool = False) -> RunConfig:
    """A RunConfig from a RunConfig, a dict, a YAML path or a run dir (its config.yaml)."""
    from trainfix.trainers.config import apply_overrides, to_dict

    if isinstance(config, RunConfig):
        return from_dict(apply_overrides(to_dict(config), overrides), imports=imports) if overrides else config
    if isinstance(config, dict):
        return from_dict(apply_overrides(config, overrides), imports=imports)
    path = Path(os.fspath(config))
    if path.is_dir():
        path = path / "config.yaml"
    return load_config(path, overrides, imports=imports)


def model_from_config(path_or_cfg: Any) -> torch.nn.Module:
    """A freshly initialised model of a config (YAML path, run dir, dict or RunConfig), built from
    trainfix's registered components only (a ``_component_`` elsewhere raises ConfigError).

    Used to compare a checkpoint's keys with what the config builds.  Building needs the data bundle
    (the model sizes itself from it); for the bundled datasets that takes well under a second.
    """
    cfg = as_config(path_or_cfg)
    return build_model(cfg, build_data(cfg))


def expected_model(config: dict) -> Any:
    """The state-dict layout (:class:`~trainfix.weights.ExpectedModel`) of the model a run's
    trainfix config builds, from registered components only.

    This is the model builder the commands hand to the diagnosis (``diagnose_paths(model_builder=...)``)
    so that ``checkpoint-key-mismatch`` can compare checkpoints with the model without building
    anything itself.  Raises ConfigError for a config that is invalid or names a ``_component_``.
    """
    from trainfix.weights import ExpectedModel

    model = model_from_config(config)
    return ExpectedModel(shapes={k: tuple(v.shape) for k, v in model.state_dict().items()},
                         params={k for k, _ in model.named_parameters()})
