"""The trainfix run config: typed sections, validated before anything runs.

A config is a YAML document (read with ``yaml.safe_load``) with the sections ``run, data, model,
loss, optimizer, schedule, training, sparse, stages, logging, checkpoint, applied_fixes``.  Fixed
sections are dataclasses below; their field types and defaults ARE the schema.  The component
sections ``data``, ``model`` and ``loss`` are ``name`` (or ``_component_: pkg.mod.Class``) plus the
keyword arguments of that component's factory, checked by binding them to the factory's signature.

:func:`validate` reports EVERY problem at once, each with its dotted path and, for unknown names, a
did-you-mean; :func:`load_config` applies ``a.b.c=value`` overrides (values parsed as YAML scalars)
and raises :class:`~trainfix.errors.ConfigError` with all of them.

Three values are *recorded* by the trainer, not set by users (any value given is replaced):
``run.world_size``, ``training.global_batch`` and ``optimizer.scaled_lr``.  They make a run directory's
``config.yaml`` say what actually ran, which the lr-scaling detector and fixes read back.

This module imports no torch: fix recipes use it for the schema.  Checking a component section
imports its factory module (and so torch) lazily: trainfix's own registered factories always, a
``_component_`` path outside the registries only with ``imports=True`` (``trainfix train`` on the
user's own config).  Read as data (diagnose, apply, compare), a config never imports anything it names.

The package is split by job: :mod:`.schema` (the sections and their defaults), :mod:`.validate`
(every error at once), :mod:`.overrides` (``a.b.c=value``), :mod:`.convert` (dict <-> typed config,
stage configs, the config hash) and :mod:`.files` (reading and writing YAML).  Import from
``trainfix.trainers.config``: the names below are the public surface.
"""

from __future__ import annotations

from trainfix.trainers.config.convert import config_hash, from_dict, stage_config, to_dict
from trainfix.trainers.config.files import atomic_write_text, dump_yaml, load_config, read_yaml, write_resolved
from trainfix.trainers.config.overrides import apply_overrides, parse_override, set_dotted
from trainfix.trainers.config.schema import (
    ALL_SECTIONS,
    COMPONENT_SECTIONS,
    RECORDED,
    REQUIRED_SECTIONS,
    SECTIONS,
    AtconConfig,
    CheckpointConfig,
    Component,
    LoggingConfig,
    OptimizerConfig,
    RunConfig,
    RunSection,
    ScheduleConfig,
    SparseConfig,
    StageConfig,
    TrainingConfig,
)
from trainfix.trainers.config.validate import check_value, component_accepts, did_you_mean, validate

__all__ = [
    "ALL_SECTIONS", "COMPONENT_SECTIONS", "RECORDED", "REQUIRED_SECTIONS", "SECTIONS",
    "AtconConfig", "CheckpointConfig", "Component", "LoggingConfig", "OptimizerConfig", "RunConfig",
    "RunSection", "ScheduleConfig", "SparseConfig", "StageConfig", "TrainingConfig",
    "apply_overrides", "atomic_write_text", "check_value", "component_accepts", "config_hash",
    "did_you_mean", "dump_yaml", "from_dict", "load_config", "parse_override", "read_yaml",
    "set_dotted", "stage_config", "to_dict", "validate", "write_resolved",
]
