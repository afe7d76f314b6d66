"""Config files next to the logs -> one ``Run.config`` dict.

YAML is read with ``yaml.safe_load`` (never arbitrary tags), JSON with ``json``; files that do not
hold a mapping, or do not parse, are listed as skipped with the reason.  Tokenizer, generation and
preprocessor files are not training configs and are ignored.

Merge rule (later wins, dicts merged key by key, everything else replaced):
  1. foreign JSON configs (``args.json``, ``config.json``, ...), deepest folder first;
  2. foreign YAML configs (``hparams.yaml``, ``opt.yaml``, ...), deepest folder first;
  3. trainfix's own ``config.yaml`` (recognised by its sections) -- so it always wins.
``Run.config_files`` lists the files in that order.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from trainfix import values

MAX_CONFIG_BYTES = 5 << 20
NOT_TRAINING = re.compile(r"(tokenizer|generation_config|preprocessor_config|special_tokens|vocab|"
                          r"adapter_config|added_tokens|model\.safetensors\.index|pytorch_model\.bin\.index)", re.I)


#: which config file is *the* training config when a run holds several (``trainfix apply RUN_DIR``
#: edits it; ``diagnose`` names it in the fix command): trainfix's own first, then the names
#: Lightning (``hparams.yaml``), Hugging Face (``training_args.json``) and common scripts write.
TRAINING_CONFIG_NAMES = ("config.yaml", "config.yml", "hparams.yaml", "training_args.json", "args.yaml",
                         "args.json", "opt.yaml", "config.json", "train.yaml", "params.yaml")


def training_config_candidates(paths: list[Path]) -> list[Path]:
    """The config files among ``paths`` that can be training configs (not tokenizer files and the like)."""
    return [p for p in paths if not NOT_TRAINING.search(p.name)]


def pick_training_config(root: Path, paths: list[Path]) -> Path | None:
    """The training config of a run among the config files discovery found in it, or None when
    there is none or the choice is ambiguous (two ``version_N/hparams.yaml``, two unknown YAMLs).

    A known name wins (in :data:`TRAINING_CONFIG_NAMES` order), the shallowest copy of it when it
    is unique at that depth; otherwise the only candidate."""
    cands = training_config_candidates(paths)

    def depth(p: Path) -> int:
        try:
            return len(p.relative_to(root).parts)
        except ValueError:
            return len(p.parts)

    for name in TRAINING_CONFIG_NAMES:
        named = [p for p in cands if p.name.lower() == name]
        if named:
            shallow = min(depth(p) for p in named)
            top = [p for p in named if depth(p) == shallow]
            return top[0] if len(top) == 1 else None
    return cands[0] if len(cands) == 1 else None


def _yaml_load(text: str) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader


def load_config_file(path: Path) -> dict:
    """One config file as a dict; raises ValueError (or OSError) with a reason otherwise.

    Regular files of at most ``MAX_CONFIG_BYTES`` only; the parsed tree is bounded in size and depth
    (a YAML alias bomb is small on disk and enormous once walked)."""
    from trainfix.diagnostics.ingest.safe_read import check_tree, read_bytes

    text = read_bytes(path, MAX_CONFIG_BYTES).decode("utf-8", "replace")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except RecursionError:
            raise ValueError("nested too deeply to read (recursion limit)") from None
    else:
        try:
            data = _yaml_load(text)
        except Exception as exc:  # yaml.YAMLError and constructor errors for unsafe tags
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"YAML that a safe loader cannot read: {first}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"holds a {type(data).__name__}, not a mapping")
    check_tree(data)
    return data


def is_trainfix_config(path: Path, data: dict) -> bool:
    """A ``config.yaml`` holding trainfix's own run config (:func:`trainfix.values.is_trainfix_config`)."""
    return path.name in ("config.yaml", "config.yml") and values.is_trainfix_config(data)


def deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def merge_configs(root: Path, paths: list[Path]) -> tuple[dict, list[Path], list[dict], dict | None]:
    """Read and merge config files; return (config, files in merge order, skipped, trainfix's own
    config as read or None)."""
    loaded: list[tuple[tuple, Path, dict]] = []
    skipped: list[dict] = []
    for p in paths:
        if NOT_TRAINING.search(p.name):
            continue
        try:
            data = load_config_file(p)
        except Exception as exc:  # too large, not a mapping, too deep, huge numbers, a loader's bug
            from trainfix.diagnostics.ingest.safe_read import describe_failure

            skipped.append({"path": str(p), "reason": f"config not read: {describe_failure(exc)}"})
            continue
        try:
            depth = len(p.relative_to(root).parts)
        except ValueError:
            depth = 0
        own = is_trainfix_config(p, data)
        rank = (2 if own else (1 if p.suffix.lower() in (".yaml", ".yml") else 0), -depth, p.name)
        loaded.append((rank, p, data))
    loaded.sort(key=lambda item: item[0])
    config: dict = {}
    own: dict | None = None
    for rank, _, data in loaded:
        config = deep_merge(config, data)
        if rank[0] == 2:
            own = data  # the shallowest trainfix config.yaml sorts last: it wins
    return config, [p for _, p, _ in loaded], skipped, own
