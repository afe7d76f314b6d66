"""Multi-task learning with homoscedastic-uncertainty weighting (the "lr shrunk by batch/512" story).

Tasks are real ones on the digits images (:func:`digits_multitask`): the digit itself (10 classes),
its parity (2) and whether it is >= 5 (2).  A shared CNN trunk feeds one head per task
(:func:`multitask_cnn`).  The loss (:func:`uncertainty_multitask`) is Kendall, Gal & Cipolla (CVPR
2018) in its common classification form::

    total = sum_i exp(-s_i) * L_i + s_i          s_i = log sigma_i^2, learned

whose optimum for fixed ``L_i`` is ``s_i = log L_i``: a task with a higher loss gets a lower weight
``exp(-s_i)``.  The log-variances live in the loss and get their own optimizer group
(``param_groups(base_lr)``), with their own lr (``log_var_lr``, default: the optimizer's lr).

How the original story failed, and what this module lets you reproduce:

- the paper's base lr 5e-4 (tuned for batch 512) scaled *linearly* to the effective batch of 16
  gives 1.5625e-5.  With Adam each parameter moves at most about ``lr`` per step, so in a few hundred
  steps every ``s_i`` moves by < 0.01: the weights stay within 0.01 of each other (``log_var_init:
  zeros`` starts them exactly equal) and the network itself barely learns.  Set
  ``optimizer.lr_scaling: linear, reference_batch: 512`` with ``training.batch_size: 16``.
- ``log_var_in_optimizer: false`` reproduces the other classic bug: the log-variances never reach
  the optimizer, so the weights never move at all.

Notes on the original story's own corrections, judged:

- narrowing the clamp from [-2, 2] to [-1, 1] does *not* help the weights differentiate, it confines
  ``exp(-s)`` to [0.37, 2.72]; we keep [-2, 2] (``log_var_bounds``).  The clamp is applied in the
  forward pass, so a log-variance sitting on a bound gets no gradient until the loss moves it back.
- random small init (``log_var_init: random``, std 0.1) breaks the exact tie but by itself only
  makes the weights differ by the noise; what makes them learn is an lr at which ``s_i`` can travel
  (our fixed example gives them their own lr, ``log_var_lr``).
- ``5e-4 * sqrt(16 / 16) = 5e-4``: the "sqrt scaling" of the story is the unscaled base lr.  The
  principled square-root rule for Adam from the 512 reference would give 8.8e-5; either trains here,
  the fixed example follows the story (``reference_batch: 16``) and adds warm-up.

Logged: ``uw/weight/<task>`` (= exp(-s)), ``uw/log_var/<task>`` (clamped, as used) and
``loss/task/<task>`` (the unweighted task loss of the last training batch) through ``scalars()``;
through :class:`LossOutput` each task's term as it enters the total, ``loss/<task>`` =
``exp(-s) L + s`` (the terms sum to the total), and its unweighted loss ``loss/<task>/raw`` = ``L``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from trainfix.errors import ConfigError

from .base import Batch, DataBundle, LossOutput, ModelOutput
from .datasets import IndexedTensors, digits

# task name -> (number of classes, digit -> label)
TASKS: dict[str, tuple[int, Any]] = {
    "digit": (10, lambda d: d),
    "parity": (2, lambda d: d % 2),
    "ge5": (2, lambda d: (d >= 5).long()),
    "mod3": (3, lambda d: d % 3),
}
DEFAULT_TASKS = ("digit", "parity", "ge5")


def digits_multitask(
    seed: int,
    tasks: list[str] = list(DEFAULT_TASKS),
    image_size: int = 16,
    val_fraction: float = 0.25,
    noise: float = 0.0,
) -> DataBundle:
    """The digits images with one label per task: targets shaped ``[N, T]`` (``task: multitask``).

    Tasks: ``digit`` (10), ``parity`` (2), ``ge5`` (digit >= 5, 2), ``mod3`` (3).  The first task is
    the primary metric (``val/acc``).  Images, split and normalisation are those of ``digits``.
    """
    tasks = list(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise ConfigError(f"data.tasks: unknown task(s) {unknown}", f"known: {', '.join(TASKS)}")
    base = digits(seed, image_size=image_size, val_fraction=val_fraction, noise=noise)

    def labels(d: torch.Tensor) -> torch.Tensor:
        return torch.stack([TASKS[t][1](d) for t in tasks], dim=1).long()

    xtr, ytr = base.train.inputs, base.train.targets
    xva, yva = base.val.inputs, base.val.targets
    first = TASKS[tasks[0]]
    return DataBundle(
        train=IndexedTensors(xtr, labels(ytr)),
        val=IndexedTensors(xva, labels(yva)),
        num_classes=first[0],
        class_names=[str(c) for c in range(first[0])],
        task="multitask",
        input_shape=base.input_shape,
        task_names=tasks,
        train_targets=labels(ytr)[:, 0].tolist(),
        info={**base.info, "dataset": "digits-multitask", "tasks": {t: TASKS[t][0] for t in tasks}},
    )


class MultiTaskCNN(nn.Module):
    """Shared conv trunk, one linear head per task; ``logits`` is the first task's."""

    def __init__(self, in_channels: int, task_classes: dict[str, int], channels: int = 32, dropout: float = 0.0,
                 batch_norm: bool = True):
        super().__init__()
        c = channels

        def block(cin: int, cout: int) -> list[nn.Module]:
            conv = nn.Conv2d(cin, cout, 3, padding=1, bias=not batch_norm)
            return [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]

        self.trunk = nn.Sequential(
            *block(in_channels, c), nn.MaxPool2d(2), *block(c, 2 * c), nn.AdaptiveAvgPool2d(2),
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(8 * c, 4 * c), nn.ReLU(inplace=True),
        )
        self.heads = nn.ModuleDict({t: nn.Linear(4 * c, k) for t, k in task_classes.items()})

    def forward(self, x: torch.Tensor) -> ModelOutput:
        h = self.trunk(x)
        task_logits = {t: head(h) for t, head in self.heads.items()}
        return ModelOutput(logits=next(iter(task_logits.values())), aux={"task_logits": task_logits})


def _task_classes(bundle: DataBundle) -> dict[str, int]:
    names = bundle.task_names or ["main"]
    return {t: (TASKS[t][0] if t in TASKS else bundle.num_classes) for t in names}


def multitask_cnn(bundle: DataBundle, channels: int = 32, dropout: float = 0.0, batch_norm: bool = True) -> MultiTaskCNN:
    """Model factory (``model.name: multitask-cnn``): one head per ``bundle.task_names``."""
    in_channels = bundle.input_shape[0] if bundle.input_shape else 1
    return MultiTaskCNN(in_channels, _task_classes(bundle), channels=channels, dropout=dropout, batch_norm=batch_norm)


class UncertaintyWeightedLoss(nn.Module):
    """``sum_i exp(-s_i) L_i + s_i`` over tasks, ``s`` clamped to ``bounds`` (see module doc)."""

    def __init__(
        self,
        tasks: Sequence[str],
        log_var_init: str = "zeros",
        log_var_init_std: float = 0.1,
        log_var_bounds: Sequence[float] = (-2.0, 2.0),
        log_var_lr: float | None = None,
        log_var_in_optimizer: bool = True,
        label_smoothing: float = 0.0,
        seed: int = 0,
    ):
        super().__init__()
        if log_var_init not in ("zeros", "random"):
            raise ConfigError(f"loss.log_var_init: {log_var_init!r} is not zeros|random", "use 'random' (small, std log_var_init_std)")
        lo, hi = (float(b) for b in log_var_bounds)
        if not lo < hi:
            raise ConfigError(f"loss.log_var_bounds: {list(log_var_bounds)} is not [low, high] with low < high", "e.g. [-2, 2]")
        self.tasks = list(tasks)
        init = torch.zeros(len(self.tasks))
        if log_var_init == "random":
            gen = torch.Generator().manual_seed(seed)
            init = float(log_var_init_std) * torch.randn(len(self.tasks), generator=gen)
        self.log_vars = nn.Parameter(init.clamp(lo, hi), requires_grad=bool(log_var_in_optimizer))
        self.bounds = (lo, hi)
        self.log_var_lr = None if log_var_lr is None else float(log_var_lr)
        # The trainer adds param_groups() to the optimizer unless this is False.
        self.in_optimizer = bool(log_var_in_optimizer)
        self.label_smoothing = float(label_smoothing)
        self._task_losses: dict[str, torch.Tensor] = {}

    def clamped(self) -> torch.Tensor:
        return self.log_vars.clamp(*self.bounds)

    def forward(self, output: ModelOutput, batch: Batch) -> LossOutput:
        if not isinstance(output, ModelOutput) or "task_logits" not in output.aux:
            raise TypeError("uncertainty-multitask needs aux['task_logits'] (model.name: multitask-cnn)")
        task_logits = output.aux["task_logits"]
        s = self.clamped()
        total = s.new_zeros(())
        raw: dict[str, torch.Tensor] = {}
        weighted: dict[str, torch.Tensor] = {}
        for i, task in enumerate(self.tasks):
            loss_i = F.cross_entropy(task_logits[task].float(), batch.targets[:, i].long(),
                                     label_smoothing=self.label_smoothing)
            term = torch.exp(-s[i]) * loss_i + s[i]
            total = total + term
            raw[task] = loss_i.detach()
            weighted[task] = term.detach()
        if self.training and total.requires_grad:
            self._task_losses = raw
        return LossOutput(total=total, raw=raw, weighted=weighted)

    def param_groups(self, base_lr: float) -> list[dict]:
        """One group for the log-variances (no weight decay: it would pull every s_i to 0)."""
        if not self.in_optimizer:
            return []
        lr = base_lr if self.log_var_lr is None else self.log_var_lr
        return [{"params": [self.log_vars], "lr": lr, "weight_decay": 0.0, "name": "log_vars"}]

    def scalars(self) -> dict[str, float]:
        s = self.clamped().detach().cpu()
        out = {}
        for i, task in enumerate(self.tasks):
            out[f"uw/weight/{task}"] = float(torch.exp(-s[i]))
            out[f"uw/log_var/{task}"] = float(s[i])
            if task in self._task_losses:
                out[f"loss/task/{task}"] = float(self._task_losses[task])
        return out


def uncertainty_multitask(
    bundle: DataBundle,
    tasks: list[str] | None = None,
    log_var_init: str = "zeros",
    log_var_init_std: float = 0.1,
    log_var_bounds: list[float] = [-2.0, 2.0],
    log_var_lr: float | None = None,
    log_var_in_optimizer: bool = True,
    label_smoothing: float = 0.0,
    class_weights: Any = None,
    init_seed: int = 0,
) -> UncertaintyWeightedLoss:
    """Loss factory (``loss.name: uncertainty-multitask``).

    ``tasks`` defaults to the dataset's; ``log_var_init`` zeros|random (std ``log_var_init_std``,
    drawn from ``init_seed``); ``log_var_bounds`` clamp; ``log_var_lr`` the log-variance group's lr
    (null = the optimizer's scaled lr); ``log_var_in_optimizer: false`` leaves them out of the
    optimizer (reproduces that bug).  ``class_weights`` is not supported for multi-task targets.
    """
    if class_weights is not None:
        raise ConfigError("loss.class_weights: not supported by uncertainty-multitask", "remove it")
    names = list(tasks) if tasks else list(bundle.task_names)
    missing = [t for t in names if bundle.task_names and t not in bundle.task_names]
    if missing:
        raise ConfigError(f"loss.tasks: {missing} are not tasks of the dataset", f"the dataset's tasks: {bundle.task_names}")
    if bundle.task_names and names != list(bundle.task_names):
        raise ConfigError("loss.tasks: must list the dataset's tasks in order", f"use {bundle.task_names} or leave it out")
    return UncertaintyWeightedLoss(
        names, log_var_init=log_var_init, log_var_init_std=log_var_init_std,
        log_var_bounds=log_var_bounds, log_var_lr=log_var_lr,
        log_var_in_optimizer=log_var_in_optimizer, label_smoothing=label_smoothing, seed=init_seed,
    )
