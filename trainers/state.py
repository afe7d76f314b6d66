"""Where a training stage stands: the counters a checkpoint's ``progress`` entry saves and a resumed
run starts from (:class:`TrainState`), and the running sums of the epoch means (:class:`EpochSums`).

A resumed run must log exactly what an uninterrupted one logs, so everything the loop carries from
one optimizer step to the next, except the components' own state dicts, is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from trainfix.trainers import distributed
from trainfix.trainers import logging as tags


class EpochSums:
    """Running sums for the epoch means, kept on the device (no host sync per step)."""

    def __init__(self):
        self.loss = 0.0
        self.steps = 0
        self.correct: Any = 0.0
        self.count = 0

    def add_step(self, loss: torch.Tensor) -> None:
        self.loss = self.loss + loss
        self.steps += 1

    def add_correct(self, correct: torch.Tensor, count: int) -> None:
        self.correct = self.correct + correct
        self.count += count

    def epoch_scalars(self, info: distributed.DistInfo, device: torch.device) -> dict[str, float]:
        loss, steps, correct, count = float(self.loss), self.steps, float(self.correct), self.count
        if info.enabled:  # one all-reduce per epoch: the means cover every process's samples
            t = torch.tensor([loss, steps, correct, count], dtype=torch.float64, device=device)
            torch.distributed.all_reduce(t)
            loss, steps, correct, count = t.tolist()
        out = {}
        if steps:
            out[tags.TRAIN_LOSS] = loss / steps
        if count:
            out[tags.TRAIN_ACC] = correct / count
        return out

    def to_dict(self) -> dict:
        return {"loss": float(self.loss), "steps": self.steps, "correct": float(self.correct), "count": self.count}

    @classmethod
    def from_dict(cls, d: dict, device: torch.device) -> "EpochSums":
        s = cls()
        s.loss = torch.tensor(d["loss"], device=device) if d["steps"] else 0.0
        s.steps = d["steps"]
        s.correct = torch.tensor(d["correct"], device=device) if d["count"] else 0.0
        s.count = d["count"]
        return s


@dataclass
class TrainState:
    """The loop's counters: ``step`` is global (it counts on across stages), ``epoch`` is the
    stage's epoch in progress and ``batch`` the batches of it already trained on (always a whole
    number of optimizer steps, since checkpoints are written between steps)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    skips: int = 0  # non-finite steps skipped so far (training.nonfinite_policy: skip)
    sums: EpochSums = field(default_factory=EpochSums)
    metrics: dict[str, float] = field(default_factory=dict)  # the last finished epoch's record

    def progress(self) -> dict:
        """These counters as a checkpoint's ``progress`` entry holds them (beside the run's own
        bookkeeping: stage, best metric, log lines written, config hash)."""
        return {"step": self.step, "epoch": self.epoch, "batch": self.batch, "skips": self.skips,
                "sums": self.sums.to_dict(), "metrics": self.metrics}

    @classmethod
    def from_progress(cls, p: dict, device: torch.device) -> "TrainState":
        """The state a checkpoint's ``progress`` entry continues from."""
        return cls(step=p["step"], epoch=p["epoch"], batch=p["batch"], skips=p["skips"],
                   sums=EpochSums.from_dict(p["sums"], device), metrics=dict(p.get("metrics", {})))
