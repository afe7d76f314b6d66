"""Validation metrics: what ``val/loss`` means per task kind."""

from __future__ import annotations

import contextlib

import pytest
import torch

from trainfix.trainers.components.base import DataBundle, LossOutput, ModelOutput
from trainfix.trainers.evaluate import evaluate


class TwoTaskModel(torch.nn.Module):
    def forward(self, x):
        logits = {"a": torch.zeros(x.shape[0], 2), "b": torch.zeros(x.shape[0], 2)}
        return ModelOutput(logits["a"], {"task_logits": logits})


class KendallLikeLoss(torch.nn.Module):
    """Total below zero (as exp(-s) L + s becomes once s < 0); raw task losses positive."""

    def forward(self, output, batch):
        return LossOutput(total=torch.tensor(-0.4), raw={"a": torch.tensor(0.5), "b": torch.tensor(0.25)})


def _bundle(task: str) -> DataBundle:
    data = [(torch.zeros(3), torch.tensor([0, 1]), i) for i in range(4)]
    return DataBundle(train=data, val=data, num_classes=2, class_names=["0", "1"], task=task, task_names=["a", "b"])


def test_multitask_val_loss_is_the_sum_of_unweighted_task_losses():
    bundle = _bundle("multitask")
    loader = torch.utils.data.DataLoader(bundle.val, batch_size=2)
    metrics = evaluate(TwoTaskModel(), KendallLikeLoss(), loader, bundle, torch.device("cpu"), contextlib.nullcontext)
    assert metrics["val/loss"] == pytest.approx(0.75)
