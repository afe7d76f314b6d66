"""The one table of detectors.

Each entry maps a stable detector name (tools and CI parse it) to ``module:Class`` inside this
package; modules are imported only when a detector runs or is explained, so listing is cheap.
A contract test checks this table against the files and each docstring's sections.
"""

from __future__ import annotations

import importlib

from trainfix.diagnostics.detectors.base import Detector

DETECTORS: dict[str, str] = {
    # the seed stories
    "sparsity-gradient-vanishing": "sparsity_gradient_vanishing:SparsityGradientVanishing",
    "aux-loss-dead": "aux_loss_dead:AuxLossDead",
    "lr-miscaled": "lr_miscaled:LrMiscaled",
    "uncertainty-weights-similar": "uncertainty_weights_similar:UncertaintyWeightsSimilar",
    "accuracy-oscillation": "accuracy_oscillation:AccuracyOscillation",
    "accuracy-collapse": "accuracy_collapse:AccuracyCollapse",
    "batch-loss-variance": "batch_loss_variance:BatchLossVariance",
    "sparse-from-start": "sparse_from_start:SparseFromStart",
    "class-disparity": "class_disparity:ClassDisparity",
    "memory-growth": "memory_growth:MemoryGrowth",
    "checkpoint-key-mismatch": "checkpoint_key_mismatch:CheckpointKeyMismatch",
    "gradcam-blank": "gradcam_blank:GradcamBlank",
    "attention-inconsistency": "attention_inconsistency:AttentionInconsistency",
    # the basics every user expects
    "nonfinite-loss": "nonfinite_loss:NonfiniteLoss",
    "loss-divergence": "loss_divergence:LossDivergence",
    "loss-plateau": "loss_plateau:LossPlateau",
    "overfitting": "overfitting:Overfitting",
    "never-learned": "never_learned:NeverLearned",
    "validation-never-improves": "validation_never_improves:ValidationNeverImproves",
}


def load(name: str) -> type[Detector]:
    """The detector class registered under ``name`` (KeyError when unknown)."""
    module_name, cls_name = DETECTORS[name].split(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    return getattr(module, cls_name)

