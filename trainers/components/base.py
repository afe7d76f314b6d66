"""The contracts between the training loop and its components.

Every dataset factory returns a :class:`DataBundle`; every model returns a tensor of logits or a
:class:`ModelOutput`; every loss is an ``nn.Module`` called as ``loss(output, batch)`` that returns a
:class:`LossOutput`.  Optional hooks let a component take part in the loop without the loop knowing
what it is (temperature annealing, per-sample attention memory, pruning masks):

- ``on_epoch_start(epoch, num_epochs) -> dict[str, float]``: on models, losses and callbacks; the
  returned scalars are logged under their tag names (``mil/temperature``).
- ``param_groups(base_lr) -> list[dict]`` on losses with learnable parameters (uncertainty
  log-variances): extra optimizer groups; the loop adds them unless the loss says otherwise.
- ``scalars() -> dict[str, float]`` on losses and models: values to log at logging steps
  (``uw/weight/<task>``, ``uw/log_var/<task>``, ``attn/<metric>``).
- ``on_epoch_end(epoch) -> dict[str, float]`` on callbacks (sparsity masks re-applied each epoch).

Canonical tags are listed in ``trainfix.trainers.logging``; components use them verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch


@dataclass
class Batch:
    """One batch on its device.

    ``index`` holds each sample's dataset index (for per-sample state such as the attention memory
    of the self-corrective loss); ``extra`` holds anything else a dataset yields (bag masks, ...).
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    index: torch.Tensor
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelOutput:
    """Model output with auxiliary tensors (``attention``, ``selection_weights``, ``task_logits``)."""

    logits: torch.Tensor
    aux: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossOutput:
    """The total loss to backpropagate and its parts.

    ``raw`` maps term name -> unweighted value, ``weighted`` term name -> value as it enters the
    total (both detached scalars for logging, or tensors the loop detaches).  The main term is
    called ``cls`` (classification) by convention; ``task`` losses of multi-task training are
    logged as ``loss/task/<name>``.
    """

    total: torch.Tensor
    raw: dict[str, torch.Tensor] = field(default_factory=dict)
    weighted: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class DataBundle:
    """What a dataset factory returns.

    ``task`` tells the loop how to evaluate: ``multiclass`` (accuracy and per-class accuracy from
    argmax logits), ``multilabel`` (sigmoid > 0.5, per-label accuracy), ``multitask`` (targets
    shaped ``[B, T]``, logits in ``ModelOutput.aux['task_logits']`` as a dict task -> logits; the
    first task is the primary metric), ``binary-bag`` (MIL bags: one logit pair per bag).
    ``collate_fn`` is used by the DataLoader when not None (variable-length bags).
    ``input_shape`` and ``num_classes`` let models size themselves.
    """

    train: torch.utils.data.Dataset
    val: torch.utils.data.Dataset
    num_classes: int
    class_names: list[str]
    task: str = "multiclass"
    input_shape: tuple[int, ...] = ()
    collate_fn: Callable | None = None
    task_names: list[str] = field(default_factory=list)
    train_targets: list[int] | None = None  # class of each training sample (class weights, samplers)
    info: dict[str, Any] = field(default_factory=dict)  # class counts etc., logged into the run dir
    # where the object is, when the dataset knows it: split name ("train", "val") -> LongTensor [N, 4]
    # of (y0, x0, y1, x1) in input pixels, end exclusive (digits-canvas); localisation metrics use it
    boxes: dict[str, torch.Tensor] = field(default_factory=dict)
    # inputs without labels for semi-supervised training (ATCON's unlabelled pool), when the dataset
    # was asked to keep only a few labels; yields (input, target, index) like ``train``
    unlabelled: torch.utils.data.Dataset | None = None
