"""Loss factories: cross-entropy and BCE with label smoothing and class weights.

Each is ``(bundle, **args) -> nn.Module`` called ``loss(output, batch) -> LossOutput``; the single
term is named ``cls`` (logged as ``loss/cls`` and ``loss/cls/raw``).  ``class_weights`` is ``null``,
``balanced`` (n_samples / (n_classes * count_c), from the training targets) or a list of floats.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainfix.errors import ConfigError
from trainfix.trainers.components.base import Batch, DataBundle, LossOutput, ModelOutput


def resolve_class_weights(bundle: DataBundle, class_weights) -> torch.Tensor | None:
    """``null`` -> None, ``balanced`` -> inverse class frequency, list -> that list (one per class)."""
    if class_weights is None:
        return None
    if class_weights == "balanced":
        if not bundle.train_targets:
            raise ConfigError("loss.class_weights: 'balanced' needs the dataset's training targets", "give a list of weights")
        counts = torch.bincount(torch.tensor(bundle.train_targets), minlength=bundle.num_classes).float()
        return counts.sum() / (bundle.num_classes * counts.clamp(min=1))
    if isinstance(class_weights, (list, tuple)):
        if len(class_weights) != bundle.num_classes:
            raise ConfigError(
                f"loss.class_weights: {len(class_weights)} weights for {bundle.num_classes} classes",
                "give one weight per class, or 'balanced'",
            )
        return torch.tensor([float(w) for w in class_weights])
    raise ConfigError(f"loss.class_weights: {class_weights!r} is not null|balanced|[floats]", "use null, balanced or a list")


def logits_of(output) -> torch.Tensor:
    return output.logits if isinstance(output, ModelOutput) else output


class CrossEntropy(nn.Module):
    def __init__(self, weight: torch.Tensor | None, label_smoothing: float):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.label_smoothing = label_smoothing

    def forward(self, output, batch: Batch) -> LossOutput:
        loss = F.cross_entropy(logits_of(output).float(), batch.targets, weight=self.weight, label_smoothing=self.label_smoothing)
        return LossOutput(total=loss, raw={"cls": loss.detach()}, weighted={"cls": loss.detach()})


class BinaryCrossEntropy(nn.Module):
    """Sigmoid BCE per class; integer targets are one-hot encoded, float targets used as given."""

    def __init__(self, weight: torch.Tensor | None, label_smoothing: float, num_classes: int):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)
        self.label_smoothing = label_smoothing
        self.num_classes = num_classes

    def forward(self, output, batch: Batch) -> LossOutput:
        logits = logits_of(output).float()
        t = batch.targets
        if not torch.is_floating_point(t):
            t = F.one_hot(t, logits.shape[-1]).float() if logits.dim() > 1 and logits.shape[-1] > 1 else t.float().view_as(logits)
        if self.label_smoothing:
            t = t * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        loss = F.binary_cross_entropy_with_logits(logits, t, pos_weight=None, weight=self.weight)
        return LossOutput(total=loss, raw={"cls": loss.detach()}, weighted={"cls": loss.detach()})


def cross_entropy(bundle: DataBundle, label_smoothing: float = 0.0, class_weights=None) -> nn.Module:
    """Softmax cross-entropy for multiclass targets."""
    return CrossEntropy(resolve_class_weights(bundle, class_weights), float(label_smoothing))


def bce(bundle: DataBundle, label_smoothing: float = 0.0, class_weights=None) -> nn.Module:
    """Sigmoid binary cross-entropy per class (multilabel, or one-vs-rest on class indices)."""
    return BinaryCrossEntropy(resolve_class_weights(bundle, class_weights), float(label_smoothing), bundle.num_classes)
