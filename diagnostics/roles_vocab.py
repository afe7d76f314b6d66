"""The closed vocabulary of metric roles detectors ask for.

A *role* is what a metric means to a detector ("the validation accuracy"), independent of what the
user called it ("Val Acc", "eval_accuracy", "metrics/mAP50(B)").  ``roles.py`` resolves roles to
tags; this module only names them, so detectors, readers and the trainer agree on one spelling.

Single roles map to one tag; group roles map a key (loss-term name, task, class) to one tag each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# --- single roles -------------------------------------------------------------------------------
TRAIN_LOSS = "train_loss"  # the main (total) training loss, per epoch or smoothed
TRAIN_LOSS_STEP = "train_loss_step"  # per-batch / per-step training loss
VAL_LOSS = "val_loss"
VAL_ACC = "val_acc"  # a validation accuracy (fraction in [0, 1])
VAL_METRIC = "val_metric"  # primary validation metric (val_acc if any, else AUC/F1/mAP/...), with direction
TRAIN_ACC = "train_acc"
LR = "lr"
GRAD_NORM = "grad_norm"
MEMORY = "memory"  # MB: CUDA allocated or process RSS
SPARSITY_ACTIVE_FRACTION = "sparsity_active_fraction"
MIL_TEMPERATURE = "mil_temperature"

SINGLE_ROLES = (
    TRAIN_LOSS,
    TRAIN_LOSS_STEP,
    VAL_LOSS,
    VAL_ACC,
    VAL_METRIC,
    TRAIN_ACC,
    LR,
    GRAD_NORM,
    MEMORY,
    SPARSITY_ACTIVE_FRACTION,
    MIL_TEMPERATURE,
)

# --- group roles (key -> tag) -------------------------------------------------------------------
LOSS_TERMS = "loss_terms"  # term name -> weighted term tag (`loss/<term>`)
LOSS_TERMS_RAW = "loss_terms_raw"  # term name -> raw (unweighted) term tag (`loss/<term>/raw`)
UW_WEIGHTS = "uw_weights"  # task -> learned weight tag (`uw/weight/<task>`), e.g. exp(-s)
UW_LOG_VARS = "uw_log_vars"  # task -> log-variance tag (`uw/log_var/<task>`)
CLASS_METRICS = "class_metrics"  # class -> per-class validation accuracy/recall tag
VAL_METRICS = "val_metrics"  # every validation metric name -> tag (with direction)
ATTN_METRICS = "attn_metrics"  # attention statistics (`attn/<metric>`)
TASK_LOSSES = "task_losses"  # task -> per-task loss tag in multi-task training

GROUP_ROLES = (
    LOSS_TERMS,
    LOSS_TERMS_RAW,
    UW_WEIGHTS,
    UW_LOG_VARS,
    CLASS_METRICS,
    VAL_METRICS,
    ATTN_METRICS,
    TASK_LOSSES,
)

ALL_ROLES = SINGLE_ROLES + GROUP_ROLES

MAXIMIZE = "max"
MINIMIZE = "min"


@dataclass(frozen=True)
class Resolution:
    """How one role (or one member of a group role) was resolved to a tag.

    ``how`` is shown to users: "override --metric", "[tool.trainfix.metrics]", "canonical name",
    "pattern <regex>".  ``direction`` is ``"max"`` or ``"min"`` for metrics with one, else None.
    """

    tag: str
    how: str
    direction: str | None = None


#: names of the main (task) term; every other logged loss term is auxiliary
MAIN_TERM_NAMES = frozenset({
    "cls", "ce", "task", "main", "classification", "class", "bce", "nll", "xent", "cross_entropy",
    "crossentropy", "cross-entropy", "bag", "supervised", "sup", "total", "loss", "cls_loss", "ce_loss",
    "classification_loss", "task_loss", "train", "mil", "bag_loss", "data",
})

#: the components of a detection or segmentation task loss (detectron2's rpn_loc/box_reg/mask, DETR's
#: ce/bbox/giou, YOLO's box/obj/cls/dfl): parts of the task itself, not auxiliary regularisers
DETECTION_TERMS = re.compile(r"(?:^|_)(?:rpn|box|bbox|box_reg|giou|iou|obj|objectness|mask|dfl|cls|ce|"
                             r"keypoint|kpt|loc|seg|centerness|class)(?:_|$)")


def is_main_term(key: str) -> bool:
    """True for the main (classification/task) term of a loss, or a component of a detection or
    segmentation task loss, by its logged name."""
    k = key.strip().lower().replace(" ", "_")
    return (k in MAIN_TERM_NAMES or k.startswith("task/") or k.startswith("task_")
            or bool(DETECTION_TERMS.search(k)))


@dataclass
class RoleMap:
    """Role -> tag mapping of one run, with how each was resolved."""

    single: dict[str, Resolution] = field(default_factory=dict)
    groups: dict[str, dict[str, Resolution]] = field(default_factory=dict)

    def tag(self, role: str) -> str | None:
        """The tag resolved for a single role, or None."""
        res = self.single.get(role)
        return res.tag if res else None

    def group(self, role: str) -> dict[str, str]:
        """Key -> tag for a group role (empty when none resolved)."""
        return {k: r.tag for k, r in self.groups.get(role, {}).items()}

    def direction(self, role: str) -> str | None:
        res = self.single.get(role)
        return res.direction if res else None

    def has(self, role: str) -> bool:
        return role in self.single or bool(self.groups.get(role))

    def to_dict(self) -> dict:
        out: dict = {r: {"tag": v.tag, "how": v.how, "direction": v.direction} for r, v in self.single.items()}
        for r, members in self.groups.items():
            out[r] = {k: {"tag": v.tag, "how": v.how, "direction": v.direction} for k, v in members.items()}
        return out
