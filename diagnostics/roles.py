"""Metric roles: which of the tags a run logged means "validation accuracy", "learning rate", ...

Detectors ask for roles (``roles_vocab``); users log whatever names their tools use (``val_acc``,
``Val Acc``, ``eval_accuracy``, ``accuracy/val``, ``epoch_val_accuracy``, ``metrics/mAP50(B)``).
:func:`resolve_roles` maps one to the other, in this order, and records how:

1. ``--metric role=tag`` on the command line (``how="override --metric"``);
2. ``[tool.trainfix.metrics]`` in pyproject.toml / trainfix.toml (``how="[tool.trainfix.metrics]"``);
3. the canonical tag the trainfix trainer writes (``how="canonical name"``);
4. patterns, most specific first (``how="pattern <regex>"``);
5. what the run's training config says about tags no name settles (``how="config ..."``): with
   ``loss_weighting: uncertainty`` or ``log_vars`` in the config, a set of sibling tags
   ``<prefix>w1..wN`` or ``<prefix>weight_<task>`` are the learned task weights; a loss term the
   config weighs (``lambda_sparsity``) whose logged level is above the total loss cannot be a part
   of that total, so it is the raw term (its weight and divisor come from the config).

An override may be a glob (``--metric 'uw_weights=train/w*'``): every matching tag joins a group
role, keyed by what the wildcard matched; a single role takes the matching tag with most points.

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
import fnmatch
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
MIN_WORDS = re.compile(r"loss|error|\berr\b|perplexity|ppl|wer|cer|mae|mape|mse|rmse|nll|distance|fid\b")

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
        r"^(?:mean|avg|average)_loss$",
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
        r"^learning_?rate$",
        rf"^{_T}[/_.]?(?:lr|learning_rate)$",
        r"^lr[-_/].+$",
        r"^learning_?rate[/_].+$",
        r"^.*[/_](?:lr|learning_?rate)(?:[/_](?:pg|group|param_group)?_?\d+)?$",
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
    config: Mapping | None = None,
    levels: Mapping[str, float] | None = None,
) -> RoleMap:
    """Map the run's tags to roles (see module docstring). ``counts`` (tag -> points) is optional;
    ``config`` (the run's training config) and ``levels`` (tag -> median |value|) let the config
    settle what names alone do not.

    Raises :class:`~trainfix.errors.UsageError` for an unknown role or an override naming a tag the
    run did not log (with did-you-mean suggestions).

    The order is the precedence: what the user fixed (``[tool.trainfix.metrics]``, then
    ``--metric``), single roles by canonical name then pattern, groups, then the config.
    """
    tags = list(dict.fromkeys(tags))
    ordered = sorted(tags)
    norm = {t: normalise(t) for t in ordered}
    rm = RoleMap()
    fixed, fixed_groups = _user_fixed(tags, overrides, config_overrides, counts)
    _resolve_single_roles(rm, fixed, tags, ordered, norm, counts)
    _resolve_group_roles(rm, fixed_groups, ordered, norm)
    if config:
        _infer_from_config(rm, ordered, norm, config, levels or {}, fixed_groups)
    rm.single[rv.VAL_METRIC] = fixed.get(rv.VAL_METRIC) or _val_metric(rm)  # type: ignore[assignment]
    if rm.single[rv.VAL_METRIC] is None:
        del rm.single[rv.VAL_METRIC]
    return rm


def _user_fixed(tags: list[str], overrides: dict[str, str] | None, config_overrides: dict | None,
                counts: Mapping[str, int] | None) -> tuple[dict[str, Resolution], dict[str, dict[str, Resolution]]]:
    """(single roles, group members) the user fixed: ``[tool.trainfix.metrics]`` first, then the
    ``--metric`` flags over it; a glob picks among the tags it matches."""
    fixed: dict[str, Resolution] = {}
    fixed_groups: dict[str, dict[str, Resolution]] = {}
    for origin, mapping in (("[tool.trainfix.metrics]", config_overrides or {}), ("override --metric", overrides or {})):
        for raw_role, tag in mapping.items():
            role_part, _, key = str(raw_role).partition(".")
            role = _role_name(role_part)
            tag = str(tag)
            if _is_glob(tag):
                matched = _glob(tag, tags)
                if not matched:
                    raise UsageError(f"{origin}: {role}={tag!r} matches no tag this run logged",
                                     "run 'trainfix metrics RUN_DIR' to list the tags this run logged")
                how = f"{origin} (glob {tag})"
                if role in rv.GROUP_ROLES:
                    for k, t in matched.items():
                        fixed_groups.setdefault(role, {})[k] = Resolution(t, how, direction_of(t))
                else:
                    t = _pick(sorted(matched.values()), counts)
                    fixed[role] = Resolution(t, how, _single_direction(role, t))
                continue
            _check_tag(role, tag, tags, origin)
            if role in rv.GROUP_ROLES:
                fixed_groups.setdefault(role, {})[key or tag] = Resolution(tag, origin, direction_of(tag))
            else:
                fixed[role] = Resolution(tag, origin, _single_direction(role, tag))
    return fixed, fixed_groups


def _resolve_single_roles(rm: RoleMap, fixed: dict[str, Resolution], tags: list[str], ordered: list[str],
                          norm: dict[str, str], counts: Mapping[str, int] | None) -> None:
    """Each single role (but the validation metric, settled last): fixed, else its canonical
    name, else the best tag its patterns match that no earlier role took."""
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


def _resolve_group_roles(rm: RoleMap, fixed_groups: dict[str, dict[str, Resolution]], ordered: list[str],
                         norm: dict[str, str]) -> None:
    """Each group role's members: those fixed, then every tag its patterns match (raw terms and
    task losses first, so a tag claimed there is not also a weighted term)."""
    taken_by_single = {r.tag for r in rm.single.values()}
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


def _is_glob(tag: str) -> bool:
    return any(c in tag for c in "*?[")


def _glob(pattern: str, tags: list[str]) -> dict[str, str]:
    """Tags matching the glob ``pattern``, keyed by what its wildcards matched (``train/w*`` ->
    ``{"1": "train/w1", ...}``)."""
    rx = re.compile("^" + re.escape(pattern).replace(r"\*", "(.*?)").replace(r"\?", "(.)") + "$")
    out: dict[str, str] = {}
    for t in sorted(tags):
        if fnmatch.fnmatchcase(t, pattern):
            m = rx.match(t)
            key = "".join(g for g in m.groups() if g) if m and m.groups() else t
            out[key.strip("/_.") or t] = t
    return out


#: config keys whose value names the multi-task weighting scheme
_WEIGHTING_KEYS = re.compile(r"^(?:loss_|task_|multi_?task_|mtl_)?(?:weighting|balancing|weighting_(?:scheme|method|strategy)|"
                             r"loss_weights?_(?:type|mode|method))$")
_LOG_VAR_KEYS = re.compile(r"^log_?(?:vars?|sigmas?|variances?)(?:_init)?$")
_UW_SIBLINGS = (re.compile(r"^(?P<p>(?:.*[/_.])?)w(?P<k>\d+)$"),
                re.compile(r"^(?P<p>(?:.*[/_.])?)(?:weight|task_weight|loss_weight)_(?P<k>[a-z0-9]\w*)$"))
_LOG_VAR_SIBLINGS = (re.compile(r"^(?P<p>(?:.*[/_.])?)log_?(?:var|sigma)_(?P<k>[a-z0-9]\w*)$"),)


def _uncertainty_weighting(config: Mapping) -> str | None:
    """The config setting that says the loss is uncertainty-weighted (``loss_weighting: uncertainty``,
    a ``log_vars`` entry), as ``"key: value"``; None when it says nothing of the kind."""
    from trainfix.diagnostics import knobs

    for path, value in knobs.walk(dict(config)):
        if not path or path[0] == "applied_fixes":
            continue
        leaf = str(path[-1]).lower()
        if _WEIGHTING_KEYS.match(leaf) and isinstance(value, str) and re.search(r"uncertain|kendall", value.lower()):
            return f"{'.'.join(path)}: {value}"
        if _LOG_VAR_KEYS.match(leaf) or any(_LOG_VAR_KEYS.match(str(p).lower()) for p in path[:-1]):
            return f"{'.'.join(path[:-1] if not _LOG_VAR_KEYS.match(leaf) else path)} in the config"
    return None


def _siblings(patterns, ordered: list[str], norm: dict[str, str], taken: set[str]) -> dict[str, str]:
    """The largest set (at least 2) of tags sharing a prefix and matching one sibling pattern."""
    best: dict[str, str] = {}
    for rx in patterns:
        by_prefix: dict[str, dict[str, str]] = {}
        for t in ordered:
            m = rx.match(norm[t])
            if m and t not in taken:
                by_prefix.setdefault(m.group("p"), {})[m.group("k")] = t
        for members in by_prefix.values():
            if len(members) >= 2 and len(members) > len(best):
                best = members
    return best


def _infer_from_config(rm: RoleMap, ordered: list[str], norm: dict[str, str], config: Mapping,
                       levels: Mapping[str, float], fixed_groups: dict) -> None:
    """Roles that the training config settles (see module docstring, rule 5)."""
    from trainfix.diagnostics import knobs

    taken = {r.tag for r in rm.single.values()} | {r.tag for g in rm.groups.values() for r in g.values()}
    why = _uncertainty_weighting(config)
    if why:
        for role, patterns, what in ((rv.UW_WEIGHTS, _UW_SIBLINGS, "task weights"),
                                     (rv.UW_LOG_VARS, _LOG_VAR_SIBLINGS, "log-variances")):
            if rm.groups.get(role):
                continue
            members = _siblings(patterns, ordered, norm, taken)
            if members:
                tags = sorted(members.values())
                how = f"config {why}, and {len(tags)} sibling tags {tags[0]}..{tags[-1]} are its {what}"
                rm.groups[role] = {k: Resolution(t, how, None) for k, t in sorted(members.items())}
                taken |= set(tags)
    terms = rm.groups.get(rv.LOSS_TERMS, {})
    total = rm.single.get(rv.TRAIN_LOSS) or rm.single.get(rv.TRAIN_LOSS_STEP)
    total_level = levels.get(total.tag) if total else None
    for key in list(terms):
        res = terms[key]
        if res.how.startswith(("canonical", "override", "[tool")) or key in fixed_groups.get(rv.LOSS_TERMS, {}):
            continue
        weight, scale = knobs.term_weight_scale(dict(config), key)
        level = levels.get(res.tag)
        if weight is None or level is None or not total_level or not level > total_level:
            continue
        settings = ", ".join(f"{k}: {v}" for k, v in knobs.config_values(dict(config), *knobs.term_knobs(key)[:2]).items())
        how = (f"raw term: the config weighs it ({settings}) and its level {level:.3g} is above the total "
               f"loss {total_level:.3g}, so it cannot be the weighted part of it")
        rm.groups.setdefault(rv.LOSS_TERMS_RAW, {})[key] = Resolution(res.tag, how, res.direction)
        del terms[key]
    if rv.LOSS_TERMS in rm.groups and not rm.groups[rv.LOSS_TERMS]:
        del rm.groups[rv.LOSS_TERMS]


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
