"""Which training samples each process sees in each epoch, in which order.

The order is a pure function of ``(seed, epoch)`` and the process's rank (never of the global RNG),
so a checkpoint only has to remember how many batches of the epoch were done for a resumed run to
see exactly the samples the uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trainfix.errors import UsageError
from trainfix.trainers import distributed


def balanced_weights(bundle: Any) -> torch.Tensor:
    """Per-sample weights 1/count(class): a WeightedRandomSampler's class-balanced draw."""
    if not bundle.train_targets:
        raise UsageError("data.sampler 'balanced' needs the dataset's training targets", "use sampler: uniform")
    targets = torch.tensor(bundle.train_targets)
    counts = torch.bincount(targets).double()
    return (1.0 / counts)[targets]


def epoch_order(n: int, epoch: int, seed: int, weights: torch.Tensor | None, info: distributed.DistInfo) -> list[int]:
    """This process's sample indices for ``epoch``: a shuffle (or a weighted draw with replacement,
    as ``WeightedRandomSampler`` does) from a generator seeded by ``(seed, epoch)``, sharded across
    processes as ``DistributedSampler`` does (padded by wrapping so every rank gets the same count)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n, generator=g) if weights is None else torch.multinomial(weights, n, True, generator=g)
    if info.enabled:
        total = math.ceil(n / info.world_size) * info.world_size
        order = torch.cat([order, order[: total - n]])[info.rank: total: info.world_size]
    return order.tolist()
