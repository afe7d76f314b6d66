"""The run config's sections: their field types and defaults ARE the schema.

Fixed sections are dataclasses; ``data``, ``model`` and ``loss`` are :class:`Component` (a
registered ``name`` or a ``_component_`` path, plus its factory's keyword arguments).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal, Optional, Union

from trainfix import values

# --- sections ------------------------------------------------------------------------------------
@dataclass
class RunSection:
    name: str = "run"
    out_dir: Optional[str] = None  # where run dirs go (default: runs/<name>)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when present
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype (fp16 adds a GradScaler)
    compile: bool = False  # torch.compile the model (checkpoints still hold the plain module)
    world_size: Optional[int] = None  # recorded: data-parallel processes
    dist_backend: Optional[str] = None  # recorded: the process group's backend under torchrun (nccl | gloo)
    device_total_mb: Optional[float] = None  # recorded: the device's total memory (CUDA) or the machine's (CPU)


@dataclass
class Component:
    """A ``data``/``model``/``loss`` section: which factory, and its keyword arguments."""

    name: Optional[str] = None
    component: Optional[str] = None  # the `_component_` import path, when given
    args: dict = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.args.get(key, default)

    def to_dict(self) -> dict:
        head = {"_component_": self.component} if self.component else {"name": self.name}
        return {**head, **copy.deepcopy(self.args)}


@dataclass
class OptimizerConfig:
    name: Literal["sgd", "adam", "adamw"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9  # sgd only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam/adamw
    lr_scaling: Literal["none", "linear", "sqrt"] = "none"  # rule applied on the GLOBAL batch
    reference_batch: int = 256  # the global batch `lr` was tuned for
    scaled_lr: Optional[float] = None  # recorded: the lr actually used


@dataclass
class ScheduleConfig:
    name: Literal["constant", "step", "cosine", "one-cycle"] = "constant"
    warmup_epochs: float = 0.0
    warmup_steps: Optional[int] = None  # overrides warmup_epochs when set
    warmup_ratio: Optional[float] = None  # fraction of all steps; overrides warmup_epochs when set
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of the lr
    step_epochs: int = 30  # step: decay every this many epochs
    gamma: float = 0.1  # step: decay factor
    pct_start: float = 0.3  # one-cycle: fraction of training spent rising


@dataclass
class TrainingConfig:
    epochs: int = 10
    batch_size: int = 64  # per process
    grad_accum: int = 1
    grad_clip: Optional[float] = None  # max global grad norm (pre-clip norm is logged either way)
    ema_decay: Optional[float] = None  # e.g. 0.999; evaluation then uses the EMA weights
    nonfinite_policy: Literal["stop", "skip"] = "stop"
    max_nonfinite_skips: int = 3
    eval_every_epochs: int = 1
    global_batch: Optional[int] = None  # recorded: batch_size * grad_accum * world_size
    mode: Literal["supervised", "atcon"] = "supervised"  # atcon: supervised steps alternate with ATCON's unlabelled ones
    # attn/* map metrics at eval (auto: models with a gradcam_layer). YAML reads a bare on/off as
    # true/false, so both spellings are accepted.
    attention_eval: Union[bool, Literal["auto", "on", "off"]] = "auto"
    attention_samples: int = 128  # validation samples whose maps are measured


@dataclass
class SparseConfig:
    enabled: bool = False
    active_fraction: float = 0.25  # fraction of weights kept
    start_epoch: int = 0
    remask_every_epochs: int = 1
    scope: Literal["global", "layer"] = "global"  # one magnitude threshold for all layers, or per layer


@dataclass
class AtconConfig:
    """ATCON's unlabelled steps (``training.mode: atcon``; see trainfix.trainers.atcon)."""

    alpha: float = 8.0  # supervised step probability alpha*n_sup / (alpha*n_sup + n_unsup)
    mask_intensity: float = 8.0  # w in sigmoid(w (g - (mean + std/2)) / std)
    mask_scale: Literal["standardised", "raw"] = "standardised"  # raw: the paper code's unscaled map
    pairing: Literal["gb-mask", "gradcam-mask"] = "gb-mask"  # mask from Guided Backprop, Grad-CAMs compared (or the other way)
    unlabelled: Literal["unlabelled", "train", "val"] = "unlabelled"  # the unlabelled pool
    batch_size: Optional[int] = None  # unlabelled batch size (default: training.batch_size)
    weight: float = 1.0  # multiplies the consistency loss
    lr_scale: float = 1.0  # the unlabelled steps' lr as a fraction of the supervised lr (Adam ignores `weight`'s scale)
    layer: Optional[str] = None  # Grad-CAM layer (default: the model's own / its last Conv2d)


@dataclass
class StageConfig:
    name: str = "stage"
    epochs: int = 1
    init_from: Optional[Literal["best", "last"]] = None  # previous stage's checkpoint to start from
    overrides: dict = field(default_factory=dict)  # {dotted.key: value} on top of the base config


@dataclass
class LoggingConfig:
    every_n_steps: int = 10  # step scalars (and their one host sync) every N optimizer steps
    tensorboard: bool = True
    jsonl: bool = True
    progress: Union[bool, Literal["auto"]] = "auto"  # rich progress bar; auto = only on a TTY


@dataclass
class CheckpointConfig:
    every_n_epochs: int = 1
    every_n_steps: Optional[int] = None  # also refresh last.pt mid-epoch every N optimizer steps
    keep_last: int = 2  # epoch_XXX.pt files kept
    best_metric: str = "val/acc"
    best_mode: Literal["max", "min"] = "max"


@dataclass
class RunConfig:
    data: Component
    model: Component
    loss: Component = field(default_factory=lambda: Component(name="cross-entropy"))
    run: RunSection = field(default_factory=RunSection)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    sparse: SparseConfig = field(default_factory=SparseConfig)
    atcon: AtconConfig = field(default_factory=AtconConfig)
    stages: list[StageConfig] = field(default_factory=list)  # when given, their epochs replace training.epochs
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    applied_fixes: list[dict] = field(default_factory=list)


SECTIONS: dict[str, type] = {
    "run": RunSection,
    "optimizer": OptimizerConfig,
    "schedule": ScheduleConfig,
    "training": TrainingConfig,
    "sparse": SparseConfig,
    "atcon": AtconConfig,
    "logging": LoggingConfig,
    "checkpoint": CheckpointConfig,
}
COMPONENT_SECTIONS = ("data", "model", "loss")
ALL_SECTIONS = values.TRAINFIX_SECTIONS
REQUIRED_SECTIONS = values.REQUIRED_SECTIONS
RECORDED = (("run", "world_size"), ("run", "dist_backend"), ("run", "device_total_mb"), ("training", "global_batch"),
            ("optimizer", "scaled_lr"))
