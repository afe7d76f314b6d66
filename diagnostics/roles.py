"""Metric roles: which of the tags a run logged means "validation accuracy", "learning rate", ...

Detectors ask for roles (``roles_vocab``); users log whatever names their tools use (``val_acc``,
``Val Acc``, ``eval_accuracy``, ``accuracy/val``, ``epoch_val_accuracy``, ``metrics/mAP50(B)``).
:func:`resolve_roles` maps one to the other, in this order, and records how:

1. ``--metric role=tag`` on the command line (``how="override --metric"``);
2. ``[tool.trainfix.metrics]`` in pyproject.toml / trainfix.toml (``how="[tool.trainfix.metrics]"``);
3. the canonical tag the trainfix trainer writes (``how="canonical name"``);
4. patterns, most specific first (``how="pattern <regex>"``).

Tags are matched in a normalised form: lower case, runs of spaces and dashes turned into ``_``
(``Val Acc (TB)`` -> ``val_acc_(tb)``).  When several tags match a role at the same rank, a tag with
more than one point beats a one-point summary (Hugging Face's final ``train_loss``), then the
alphabetically first wins.  ``VAL_METRIC`` is the validation accuracy when there is one, else the
best other validation metric by kind (AUC, F1, mAP, IoU/Dice, precision/recall, other
higher-is-better, then error rates, then the validation loss), with its direction.
Group roles (loss terms, per-class metrics, uncertainty weights, ...) collect every matching tag
under a key (term, class, task).
"""

from __future__ import annotations

import difflib
import re
from typing import Mapping

from trainfix.diagnostics import roles_vocab as rv
from trainfix.diagnostics.roles_vocab import MAXIMIZE, MINIMIZE, Resolution, RoleMap
from trainfix.errors import UsageError

_V = r"(?:val|valid|validation|eval|evaluation|dev)"
_T = r"(?:train|training)"
_SFX = r"(?:_epoch)?(?:_\(.*\))?"  # Lightning's _epoch suffix; "(TB)"-style annotations

MAX_WORDS = re.compile(r"acc|accuracy|auc|f1|map|\bap|precision|recall|iou|dice|bleu|rouge|score|top\d|acc\d|"
                       r"fg_cls|r2\b|psnr|ssim|sensitivity|specificity|correlation|kappa|mcc")
MIN_WORDS = re.compile(r"loss|error|\berr\b|perplexity|ppl|wer|cer|mae|mse|rmse|nll|distance|fid\b")

CANONICAL = {
    rv.TRAIN_LOSS: "train/loss",
    rv.TRAIN_LOSS_STEP: "train/loss_step",
    rv.VAL_LOSS: "val/loss",
    rv.VAL_ACC: "val/acc",
    rv.TRAIN_ACC: "train/acc",
    rv.LR: "lr",
    rv.GRAD_NORM: "grad_norm",
    rv.MEMORY: "mem/allocated_mb",
    rv.SPARSITY_ACTIVE_FRACTION: "sparsity/active_fraction",
    rv.MIL_TEMPERATURE: "mil/temperature",
}

# Single roles: patterns on the normalised tag, most specific first.
SINGLE_PATTERNS: dict[str, list[str]] = {
    rv.VAL_ACC: [
        rf"^{_V}[/_.]?(?:epoch_)?(?:acc|accuracy|top1|top_1|acc1|acc@1|top1_acc){_SFX}$",
        rf"^(?:epoch_)?(?:acc|accuracy)[/_.]{_V}{_SFX}$",
        rf"^epoch_{_V}_(?:acc|accuracy)$",
        rf"^(?:metrics?/)?{_V}[/_](?:\w+_)?(?:acc|accuracy)(?:_\w+)?{_SFX}$",
        rf"^test[/_.]?(?:\w+_)?(?:acc|accuracy|acc1|top1){_SFX}$",
        r"^(?:验证|驗證)(?:准确率|精度|准确度)$",
    ],
    rv.VAL_LOSS: [
        rf"^{_V}[/_.]?(?:epoch_)?loss{_SFX}$",
        rf"^(?:epoch_)?loss[/_.]{_V}{_SFX}$",
        rf"^{_V}[/_.]?total_loss{_SFX}$",
        rf"^test[/_.]?loss{_SFX}$",
        r"^(?:验证|驗證)损失$",
    ],
    rv.TRAIN_LOSS: [
        rf"^{_T}[/_.]?(?:epoch_)?loss{_SFX}$",
        rf"^(?:epoch_)?loss[/_.]{_T}{_SFX}$",
        rf"^{_T}[/_.]?total_loss$",
        r"^loss/total$",
        r"^total_loss$",
        r"^(?:epoch_)?loss$",
        r"^loss_epoch$",
        rf"^{_T}[/_.]\w*_loss$",
        r"^训练损失$",
    ],
    rv.TRAIN_LOSS_STEP: [
        rf"^{_T}[/_.]?loss_step$",
        r"^loss_step$",
        rf"^(?:{_T}[/_.])?(?:batch|step|iter)_loss$",
    ],
    rv.TRAIN_ACC: [
        rf"^{_T}[/_.]?(?:epoch_)?(?:acc|accuracy|top1|acc1){_SFX}$",
        rf"^(?:acc|accuracy)[/_.]{_T}{_SFX}$",
        r"^(?:epoch_)?(?:acc|accuracy)$",
    ],
    rv.LR: [
        r"^lr$",
        r"^learning_rate$",
        rf"^{_T}[/_.]?(?:lr|learning_rate)$",
        r"^lr[-_/].+$",
        r"^learning_rate[/_].+$",
        r"^optim(?:izer)?[/_].*(?:lr|learning_rate).*$",
        r"^.*[/_]lr\d*$",
    ],
    rv.GRAD_NORM: [
        r"^grad_norm$",
        rf"^(?:{_T}[/_.])?grad(?:ient)?_?norm$",
        r"^grad(?:ient)?_?norm[/_].*total.*$",
        r"^grad_[\d.]+_norm_total$",
        r"^(?:train[/_])?grad(?:ient)?s?[/_]norm.*$",
    ],
    rv.MEMORY: [
        r"^mem/allocated_mb$",
        r"^mem(?:ory)?(?:[/_].*)?$",
        r"^(?:gpu|cuda|max)_?mem(?:ory)?.*$",
        r"^.*memory_(?:allocated|reserved|mb).*$",
    ],
    rv.SPARSITY_ACTIVE_FRACTION: [
        r"^(?:sparsity|ast|sparse)[/_.]active_fraction$",
        r"^(?:.*[/_])?(?:active_fraction|activation_rate|density)$",
    ],
    rv.MIL_TEMPERATURE: [
        r"^mil[/_.]temp(?:erature)?$",
        r"^(?:.*[/_])?(?:temperature|temp|tau)$",
    ],
}

# Group roles: patterns with a (?P<k>...) key, most specific first.
GROUP_PATTERNS: dict[str, list[str]] = {
    rv.LOSS_TERMS_RAW: [
        r"^loss/(?!task/)(?P<k>[^/]+)/raw$",
        rf"^(?:{_T}[/_])?loss_(?P<k>[a-z]\w*?)_unscaled$",
    ],
    rv.TASK_LOSSES: [
        r"^loss/task/(?P<k>.+)$",
        r"^task_loss[/_](?P<k>.+)$",
        r"^(?P<k>\w+)_task_loss$",
    ],
    rv.LOSS_TERMS: [
        r"^loss/(?!task$)(?P<k>[^/]+)$",
        rf"^(?:{_T}[/_])?loss_(?P<k>(?!step$|epoch$)[a-z][a-z_]*?)(?<!_unscaled)$",
        rf"^(?:{_T}[/_])?(?P<k>(?!(?:{_T}|{_V}|total|test|predict|epoch|batch|step|iter|avg|mean)_loss$)[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)?)_loss$",
    ],
    rv.UW_WEIGHTS: [
        r"^uw/weight/(?P<k>.+)$",
        r"^(?:uncertainty|loss_weights?|task_weights?)[/_](?P<k>.+)$",
        r"^w(?P<k>\d+)$",
        r"^weight_?(?P<k>\d+)$",
        r"^sigma[/_]?(?P<k>\w*)$",
    ],
    rv.UW_LOG_VARS: [
        r"^uw/log_var/(?P<k>.+)$",
        r"^log_?vars?[/_]?(?P<k>.*)$",
        r"^(?:uncertainty|uw)[/_]log_?(?:var|sigma)[/_]?(?P<k>.*)$",
    ],
    rv.CLASS_METRICS: [
        rf"^{_V}[/_.](?:acc|accuracy|recall)[/_.](?P<k>.+)$",
        rf"^{_V}[/_.](?:per_class|class)[/_.](?P<k>.+)$",
        rf"^(?:{_V}[/_.])?(?:acc|accuracy)[/_]class[/_]?(?P<k>.+)$",
        rf"^class[/_]?(?P<k>[^/]+)[/_](?:{_V}[/_])?(?:acc|accuracy|recall)$",
    ],
    rv.ATTN_METRICS: [
        r"^attn/(?P<k>.+)$",
        r"^attention[/_](?P<k>.+)$",
    ],
    rv.VAL_METRICS: [
        rf"^{_V}[/_.](?!(?:acc|accuracy|recall)[/_.]|per_class)(?P<k>.+)$",
        rf"^(?P<k>[^/]+)[/_.]{_V}$",
        rf"^epoch_{_V}_(?P<k>.+)$",
        r"^metrics/(?P<k>.+)$",
        r"^(?P<k>(?:bbox|segm|keypoints)/ap.*)$",
        r"^test[/_.](?P<k>.+)$",
    ],
}


_NOT_A_METRIC = re.compile(r"runtime|per_second|samples|gen_len|^epoch$|^step$|flos|n_parameters|^time$|data_time")


def normalise(tag: str) -> str:
    return re.sub(r"[\s\-]+", "_", tag.strip().lower())


def direction_of(tag: str) -> str | None:
    """``max`` for accuracy-like metrics, ``min`` for loss/error-like ones, else None."""
    n = normalise(tag)
    if MIN_WORDS.search(n):
        return MINIMIZE
    if MAX_WORDS.search(n):
        return MAXIMIZE
    return None


def _role_name(name: str) -> str:
    norm = name.strip().lower().replace("-", "_")
    if norm in rv.ALL_ROLES:
        return norm
    close = difflib.get_close_matches(norm, rv.ALL_ROLES, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"roles: {', '.join(rv.ALL_ROLES)}"
    raise UsageError(f"unknown metric role '{name}'", hint)


def _check_tag(role: str, tag: str, tags: list[str], origin: str) -> None:
    if tag in tags:
        return
    close = difflib.get_close_matches(tag, tags, n=3)
    hint = ("did you mean " + " or ".join(f"'{c}'" for c in close) + "?") if close else \
        "run 'trainfix metrics RUN_DIR' to list the tags this run logged"
    raise UsageError(f"{origin}: {role}={tag!r} names a tag this run did not log", hint)


def _pick(cands: list[str], counts: Mapping[str, int] | None) -> str:
    if counts:
        multi = [c for c in cands if counts.get(c, 0) > 1]
        if multi:
            return multi[0]
    return cands[0]


def resolve_roles(
    tags: list[str],
    overrides: dict[str, str] | None = None,
    config_overrides: dict | None = None,
    *,
    counts: Mapping[str, int] | None = None,
) -> RoleMap:
    """Map the run's tags to roles (see module docstring). ``counts`` (tag -> points) is optional.

    Raises :class:`~trainfix.errors.UsageError` for an unknown role or an override naming a tag the
    run did not log (with did-you-mean suggestions).
    """
    tags = list(dict.fromkeys(tags))
    ordered = sorted(tags)
    norm = {t: normalise(t) for t in ordered}
    rm = RoleMap()
    fixed: dict[str, Resolution] = {}
    fixed_groups: dict[str, dict[str, Resolution]] = {}
    for origin, mapping in (("[tool.trainfix.metrics]", config_overrides or {}), ("override --metric", overrides or {})):
        for raw_role, tag in mapping.items():
            role_part, _, key = str(raw_role).partition(".")
            role = _role_name(role_part)
            tag = str(tag)
            _check_tag(role, tag, tags, origin)
            if role in rv.GROUP_ROLES:
                fixed_groups.setdefault(role, {})[key or tag] = Resolution(tag, origin, direction_of(tag))
            else:
                fixed[role] = Resolution(tag, origin, _single_direction(role, tag))

    used: set[str] = {r.tag for r in fixed.values()}
    for role in rv.SINGLE_ROLES:
        if role == rv.VAL_METRIC:
            continue
        if role in fixed:
            rm.single[role] = fixed[role]
            continue
        canon = CANONICAL.get(role)
        if canon and canon in tags:
            rm.single[role] = Resolution(canon, "canonical name", _single_direction(role, canon))
            used.add(canon)
            continue
        cands: list[tuple[str, str]] = []  # (tag, pattern), best rank first
        for pat in SINGLE_PATTERNS.get(role, []):
            rx = re.compile(pat)
            cands += [(t, pat) for t in ordered if rx.search(norm[t]) and t not in used and t not in dict(cands)]
        if cands:
            tag = _pick([t for t, _ in cands], counts)
            pat = dict(cands)[tag]
            rm.single[role] = Resolution(tag, f"pattern {pat}", _single_direction(role, tag))
            used.add(tag)

    taken_by_single = {r.tag for r in rm.single.values()}
    # Raw terms and task losses first, so a tag claimed there is not also a weighted term.
    group_order = (rv.LOSS_TERMS_RAW, rv.TASK_LOSSES) + tuple(
        r for r in rv.GROUP_ROLES if r not in (rv.LOSS_TERMS_RAW, rv.TASK_LOSSES))
    for role in group_order:
        members: dict[str, Resolution] = dict(fixed_groups.get(role, {}))
        claimed = {r.tag for r in members.values()}
        for pat in GROUP_PATTERNS.get(role, []):
            rx = re.compile(pat)
            for t in ordered:
                if t in claimed:
                    continue
                m = rx.search(norm[t])
                if not m:
                    continue
                if role == rv.LOSS_TERMS and (t in taken_by_single or _claimed_elsewhere(t, rm)):
                    continue
                key = (m.groupdict().get("k") or t).strip("/_") or t
                if role == rv.VAL_METRICS and _NOT_A_METRIC.search(key):
                    continue
                if key in members:
                    continue
                members[key] = Resolution(t, "canonical name" if pat.startswith(("^loss/", "^uw/", "^attn/")) and
                                          role != rv.VAL_METRICS else f"pattern {pat}", direction_of(t))
                claimed.add(t)
        if role == rv.VAL_METRICS:
            for r in (rv.VAL_ACC, rv.VAL_LOSS):
                res = rm.single.get(r)
                if res and res.tag not in claimed:
                    members[r.split("_", 1)[1]] = Resolution(res.tag, res.how, res.direction)
        if members:
            rm.groups[role] = members

    rm.single[rv.VAL_METRIC] = fixed.get(rv.VAL_METRIC) or _val_metric(rm)  # type: ignore[assignment]
    if rm.single[rv.VAL_METRIC] is None:
        del rm.single[rv.VAL_METRIC]
    return rm


def _claimed_elsewhere(tag: str, rm: RoleMap) -> bool:
    for role in (rv.LOSS_TERMS_RAW, rv.TASK_LOSSES):
        if tag in {r.tag for r in rm.groups.get(role, {}).values()}:
            return True
    n = normalise(tag)
    return bool(re.match(rf"^{_V}|^test[/_]|^metrics/", n))


def _single_direction(role: str, tag: str) -> str | None:
    if role in (rv.VAL_ACC, rv.TRAIN_ACC):
        return MAXIMIZE
    if role in (rv.VAL_LOSS, rv.TRAIN_LOSS, rv.TRAIN_LOSS_STEP):
        return MINIMIZE
    if role == rv.VAL_METRIC:
        return direction_of(tag)
    return None


_VAL_PREFERENCE = [
    (re.compile(r"auc|auroc|roc"), "AUC"),
    (re.compile(r"f1|fscore|f_score"), "F1"),
    (re.compile(r"map|\bap\b|ap50|ap_50|bbox/ap|segm/ap"), "mAP"),
    (re.compile(r"iou|dice|jaccard"), "IoU/Dice"),
    (re.compile(r"precision|recall"), "precision/recall"),
]


def _val_metric(rm: RoleMap) -> Resolution | None:
    acc = rm.single.get(rv.VAL_ACC)
    if acc:
        return Resolution(acc.tag, f"val_acc ({acc.how})", MAXIMIZE)
    members = rm.groups.get(rv.VAL_METRICS, {})
    cands = sorted((r.tag for r in members.values()), key=lambda t: (len(t), t))
    for rx, kind in _VAL_PREFERENCE:
        for t in cands:
            if rx.search(normalise(t)) and direction_of(t) == MAXIMIZE:
                return Resolution(t, f"best validation metric ({kind})", MAXIMIZE)
    for t in cands:
        if direction_of(t) == MAXIMIZE:
            return Resolution(t, "best validation metric (higher is better)", MAXIMIZE)
    for t in cands:
        n = normalise(t)
        if direction_of(t) == MINIMIZE and not re.search(r"loss", n):
            return Resolution(t, "best validation metric (error rate)", MINIMIZE)
    vl = rm.single.get(rv.VAL_LOSS)
    if vl:
        return Resolution(vl.tag, "validation loss (no other validation metric)", MINIMIZE)
    return None
