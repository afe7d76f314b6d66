"""Validation metrics per :attr:`DataBundle.task`, under the canonical ``val/*`` tags.

- ``multiclass``: ``val/loss``, ``val/acc`` (argmax), ``val/acc/<class>`` (per-class accuracy, i.e. recall).
- ``multilabel``: ``val/acc`` (mean per-label accuracy at sigmoid > 0.5), ``val/acc/<label>``,
  ``val/auc`` (mean per-label rank AUC over labels with both outcomes present).
- ``multitask``: ``val/acc_<task>`` for each task from ``ModelOutput.aux['task_logits']``; ``val/acc``
  is the first task's.
- ``binary-bag``: ``val/acc`` and ``val/auc`` (rank AUC of the positive-class score).

``val/loss`` is the loss module's total (in eval mode) averaged over samples, except in multi-task
runs, where it is the sum of the unweighted task losses (``LossOutput.raw``): a learned weighting such
as Kendall's ``exp(-s) L + s`` moves with its own parameters and can go negative, so its total says
nothing about generalisation.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from trainfix.trainers.components.base import Batch, DataBundle, ModelOutput


def to_batch(raw: Any, device: torch.device) -> Batch:
    """A DataLoader item (``Batch`` from a collate_fn, or ``[inputs, targets, index]``) on ``device``."""
    if isinstance(raw, Batch):
        b = raw
    else:
        inputs, targets, index = raw[0], raw[1], raw[2]
        b = Batch(inputs=inputs, targets=targets, index=index)
    if device.type == "cpu":
        return b  # DataLoader tensors are already on the CPU
    nb = device.type == "cuda"
    return Batch(
        inputs=b.inputs.to(device, non_blocking=nb),
        targets=b.targets.to(device, non_blocking=nb),
        index=b.index.to(device, non_blocking=nb) if torch.is_tensor(b.index) else b.index,
        extra={k: v.to(device, non_blocking=nb) if torch.is_tensor(v) else v for k, v in b.extra.items()},
    )


def logits_of(output: Any) -> torch.Tensor:
    return output.logits if isinstance(output, ModelOutput) else output


def primary_logits(output: Any, bundle: DataBundle) -> torch.Tensor:
    """The logits the primary accuracy is computed from (first task's for multi-task)."""
    if bundle.task == "multitask" and isinstance(output, ModelOutput) and "task_logits" in output.aux:
        task_logits = output.aux["task_logits"]
        first = bundle.task_names[0] if bundle.task_names else next(iter(task_logits))
        return task_logits[first]
    return logits_of(output)


def primary_targets(batch: Batch, bundle: DataBundle) -> torch.Tensor:
    t = batch.targets
    return t[:, 0] if bundle.task == "multitask" and t.dim() > 1 else t


def correct_count(output: Any, batch: Batch, bundle: DataBundle) -> tuple[torch.Tensor, int]:
    """(number correct as a device tensor, number of predictions) for ``train/acc``; no host sync."""
    if bundle.task == "multiclass" and not isinstance(output, ModelOutput) and output.dim() == 2 and output.shape[1] > 1:
        return (output.argmax(dim=1) == batch.targets).sum(), batch.targets.shape[0]  # the common case, 3 kernels
    logits = primary_logits(output, bundle).detach()
    targets = primary_targets(batch, bundle)
    if bundle.task == "multilabel":
        pred = (logits > 0).to(targets.dtype)
        return (pred == targets).float().mean(dim=1).sum(), targets.shape[0]
    if logits.dim() == 1 or logits.shape[-1] == 1:
        pred = (logits.view(-1) > 0).long()
    else:
        pred = logits.argmax(dim=-1)
    return (pred == targets.view(-1)).sum(), targets.shape[0]


def rank_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged. NaN if one class."""
    from scipy.stats import rankdata

    labels = labels.astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _positive_score(logits: torch.Tensor) -> torch.Tensor:
    if logits.dim() == 1 or logits.shape[-1] == 1:
        return torch.sigmoid(logits.view(-1))
    return torch.softmax(logits, dim=-1)[:, 1]


@torch.no_grad()
def evaluate(model: Callable, loss_fn: torch.nn.Module, loader: Any, bundle: DataBundle, device: torch.device,
             autocast: Callable[[], Any]) -> dict[str, float]:
    """Run the validation set once and return ``val/*`` scalars."""
    was_training = getattr(model, "training", False), loss_fn.training
    if hasattr(model, "eval"):
        model.eval()
    loss_fn.eval()
    total_loss, n = 0.0, 0
    logits_all: list[torch.Tensor] = []
    targets_all: list[torch.Tensor] = []
    task_logits_all: dict[str, list[torch.Tensor]] = {}
    for raw in loader:
        batch = to_batch(raw, device)
        with autocast():
            output = model(batch.inputs)
            out = loss_fn(output, batch)
        bs = batch.targets.shape[0]
        judged = out.total
        if bundle.task == "multitask" and out.raw:
            judged = sum(v.float() for v in out.raw.values())
        total_loss += float(judged.float()) * bs
        n += bs
        logits_all.append(primary_logits(output, bundle).float().cpu())
        targets_all.append(batch.targets.cpu())
        if bundle.task == "multitask" and isinstance(output, ModelOutput):
            for task, lg in output.aux.get("task_logits", {}).items():
                task_logits_all.setdefault(task, []).append(lg.float().cpu())
    if hasattr(model, "train"):
        model.train(was_training[0])
    loss_fn.train(was_training[1])

    metrics: dict[str, float] = {"val/loss": total_loss / max(n, 1)}
    logits = torch.cat(logits_all) if logits_all else torch.empty(0)
    targets = torch.cat(targets_all) if targets_all else torch.empty(0)
    names = bundle.class_names or [str(i) for i in range(bundle.num_classes)]
    if bundle.task == "multiclass":
        pred = logits.argmax(dim=-1)
        metrics["val/acc"] = float((pred == targets).float().mean())
        for c, name in enumerate(names):
            mask = targets == c
            if mask.any():
                metrics[f"val/acc/{name}"] = float((pred[mask] == c).float().mean())
    elif bundle.task == "multilabel":
        t = targets.float()
        pred = (logits > 0).float()
        per_label = (pred == t).float().mean(dim=0)
        metrics["val/acc"] = float(per_label.mean())
        aucs = []
        for c, name in enumerate(names[: t.shape[1]]):
            metrics[f"val/acc/{name}"] = float(per_label[c])
            auc = rank_auc(logits[:, c].numpy(), t[:, c].numpy())
            if auc == auc:
                aucs.append(auc)
        if aucs:
            metrics["val/auc"] = float(np.mean(aucs))
    elif bundle.task == "multitask":
        tasks = bundle.task_names or list(task_logits_all)
        for i, task in enumerate(tasks):
            if task not in task_logits_all:
                continue
            lg = torch.cat(task_logits_all[task])
            tt = targets[:, i] if targets.dim() > 1 else targets
            acc = float((lg.argmax(dim=-1) == tt).float().mean())
            metrics[f"val/acc_{task}"] = acc
            if i == 0:
                metrics["val/acc"] = acc
    elif bundle.task == "binary-bag":
        t = targets.view(-1).long()
        score = _positive_score(logits)
        metrics["val/acc"] = float(((score > 0.5).long() == t).float().mean())
        auc = rank_auc(score.numpy(), t.numpy())
        if auc == auc:
            metrics["val/auc"] = auc
    else:
        raise ValueError(f"unknown DataBundle.task {bundle.task!r}")
    return metrics
