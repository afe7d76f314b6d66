"""The one table of detectors.

Each row maps a stable detector name (tools and CI parse it) to ``module:Class`` inside this
package and to the roles the detector needs: ``requires`` (every one of them) and ``requires_any``
(at least one).  Modules are imported only when a detector runs or is explained, so listing is
cheap, and the engine skips a detector whose roles a run lacks without importing it at all (on a
small run most detectors are skipped: importing them would be most of the work).  A contract test
checks this table against the files, each docstring's sections and each class's own ``requires``
and ``requires_any``.
"""

from __future__ import annotations

import importlib
from typing import NamedTuple

from trainfix.diagnostics import roles_vocab as roles
from trainfix.diagnostics.detectors.base import Detector


class Entry(NamedTuple):
    """One row: where the class is, and the roles it needs before it can run."""

    target: str  # module:Class inside this package
    requires: tuple[str, ...] = ()
    requires_any: tuple[str, ...] = ()


_TRAIN_LOSSES = (roles.TRAIN_LOSS, roles.TRAIN_LOSS_STEP)
_TERMS = (roles.LOSS_TERMS, roles.LOSS_TERMS_RAW)

TABLE: dict[str, Entry] = {
    # the seed stories
    "sparsity-gradient-vanishing": Entry("sparsity_gradient_vanishing:SparsityGradientVanishing", requires_any=_TERMS),
    "aux-loss-dead": Entry("aux_loss_dead:AuxLossDead", requires_any=_TERMS),
    "lr-miscaled": Entry("lr_miscaled:LrMiscaled"),
    "uncertainty-weights-similar": Entry("uncertainty_weights_similar:UncertaintyWeightsSimilar",
                                         requires_any=(roles.UW_WEIGHTS, roles.UW_LOG_VARS)),
    "accuracy-oscillation": Entry("accuracy_oscillation:AccuracyOscillation",
                                  requires_any=(roles.VAL_METRIC, roles.VAL_METRICS)),
    "accuracy-collapse": Entry("accuracy_collapse:AccuracyCollapse", requires=(roles.VAL_METRIC,)),
    "batch-loss-variance": Entry("batch_loss_variance:BatchLossVariance", requires=(roles.TRAIN_LOSS_STEP,)),
    "sparse-from-start": Entry("sparse_from_start:SparseFromStart"),
    "class-disparity": Entry("class_disparity:ClassDisparity", requires=(roles.CLASS_METRICS,)),
    "memory-growth": Entry("memory_growth:MemoryGrowth", requires=(roles.MEMORY,)),
    "checkpoint-key-mismatch": Entry("checkpoint_key_mismatch:CheckpointKeyMismatch"),
    "gradcam-blank": Entry("gradcam_blank:GradcamBlank", requires=(roles.ATTN_METRICS,)),
    "attention-inconsistency": Entry("attention_inconsistency:AttentionInconsistency", requires=(roles.ATTN_METRICS,)),
    # the basics every user expects
    "nonfinite-loss": Entry("nonfinite_loss:NonfiniteLoss",
                            requires_any=(*_TRAIN_LOSSES, roles.VAL_LOSS, *_TERMS, roles.TASK_LOSSES)),
    "loss-divergence": Entry("loss_divergence:LossDivergence", requires_any=_TRAIN_LOSSES),
    "loss-plateau": Entry("loss_plateau:LossPlateau", requires_any=_TRAIN_LOSSES),
    "overfitting": Entry("overfitting:Overfitting", requires_any=(roles.VAL_LOSS, roles.VAL_METRIC)),
    "never-learned": Entry("never_learned:NeverLearned", requires_any=(
        *_TRAIN_LOSSES, roles.VAL_LOSS, roles.VAL_METRIC, roles.VAL_ACC, roles.TRAIN_ACC)),
    "validation-never-improves": Entry("validation_never_improves:ValidationNeverImproves",
                                       requires_any=(roles.VAL_METRIC, roles.VAL_LOSS)),
}

#: name -> ``module:Class``: the table as the listing, ``explain`` and the loaders read it
DETECTORS: dict[str, str] = {name: entry.target for name, entry in TABLE.items()}


def load(name: str) -> type[Detector]:
    """The detector class registered under ``name`` (KeyError when unknown)."""
    module_name, cls_name = DETECTORS[name].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, cls_name)


def requirements(name: str) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """``(requires, requires_any)`` of the detector under ``name``, known without importing it;
    None when ``DETECTORS`` no longer names the row's class (a table replaced by a test or an
    embedding): then only the class itself can say."""
    entry = TABLE.get(name)
    if entry is None or DETECTORS.get(name) != entry.target:
        return None
    return entry.requires, entry.requires_any
