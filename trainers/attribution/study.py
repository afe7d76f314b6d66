"""What ``trainfix attention`` does, as functions: load a checkpoint into a model the way a user's
script would, draw its maps on validation samples, measure them, picture them, write the results.

Trust: checkpoints are read with ``torch.load(weights_only=True)`` or safetensors only
(:func:`trainfix.weights.load_checkpoint`).  A config found in a run directory or
inside a checkpoint is data: it may only name trainfix's registered components; a ``_component_``
import path there is refused (:func:`trusted_config`).  Importing the user's code is the user's
explicit choice (``--model module:factory``, or ``--model CONFIG`` naming their own config), made
in the CLI, never here.

Loading is deliberately *as saved*: the state dict goes into the model with ``strict=False`` and
no renaming, the way the scripts behind seed 004 loaded it, and what that load filled is recorded
(``load``: missing / unexpected keys, wrapper prefixes, the share of parameters filled).  Maps of
a model the checkpoint did not fill are maps of its initialisation, and the outputs say so; the
repair is ``trainfix apply CKPT --fix checkpoint-keys``.

Outputs in the output directory (each written atomically):

- ``attention.json``: the load report, the layer, per-sample metrics and their means, per model;
- ``metrics.jsonl``: the first model's ``attn/*`` means (and ``attn/loaded_fraction``) as long-form
  scalars at the checkpoint's step, so ``trainfix diagnose`` reads them when the directory lies
  inside the run directory (``gradcam-blank``, ``attention-inconsistency``);
- ``samples/sample_XXX.png`` per pictured sample and ``overview.png`` (see :mod:`.render`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from trainfix.errors import ConfigError, InputError
from trainfix.trainers.attribution.maps import compute_maps
from trainfix.trainers.attribution.summary import measure, records, summarise

CHECKPOINT_NAMES = ("best.pt", "last.pt")


@dataclass
class Subject:
    """One model whose maps are drawn."""

    label: str
    checkpoint: Path
    model: torch.nn.Module
    load: dict[str, Any]
    step: int = 0
    results: dict[str, Any] = field(default_factory=dict)


def resolve_checkpoint(target: Path) -> tuple[Path, Path | None]:
    """``(checkpoint, run_dir)`` for a checkpoint file or a run directory (best.pt, else last.pt,
    else its only checkpoint)."""
    if target.is_file():
        run = target.parent.parent if target.parent.name == "checkpoints" else target.parent
        return target, run
    if not target.is_dir():
        raise InputError(f"no such file or directory: {target}", "give a checkpoint file or a run directory")
    for name in CHECKPOINT_NAMES:
        if (target / "checkpoints" / name).is_file():
            return target / "checkpoints" / name, target
    found = sorted(p for p in target.rglob("*") if p.suffix in (".pt", ".pth", ".ckpt", ".safetensors") and p.is_file())
    if len(found) == 1:
        return found[0], target
    raise InputError(f"{target}: {'no checkpoint' if not found else f'{len(found)} checkpoints'} found",
                     "give the checkpoint file itself (e.g. RUN/checkpoints/best.pt)")


def _names_code(value: Any) -> str | None:
    """The first ``_component_`` import path anywhere in a config tree (dotted override keys too)."""
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).split(".")[-1] == "_component_":
                from trainfix.trainers.components.registry import is_registered_target

                if not is_registered_target(str(v)):
                    return str(v)
                continue
            hit = _names_code(v)
            if hit:
                return hit
    if isinstance(value, list):
        for v in value:
            hit = _names_code(v)
            if hit:
                return hit
    return None


def trusted_config(config: dict, where: str) -> dict:
    """``config`` unchanged when it names only registered components; a one-line error otherwise."""
    code = _names_code(config)
    if code:
        raise InputError(f"{where} names code to import ({code!r}); trainfix does not import code named in a run's files",
                         "if it is your own code, pass --model module:factory (or --model YOUR_CONFIG.yaml) explicitly")
    return config


def find_config(run_dir: Path | None, checkpoint_obj: Any) -> tuple[dict | None, str]:
    """The run's config: ``RUN/config.yaml``, else the ``config`` dict saved in the checkpoint."""
    from trainfix.trainers.config import read_yaml

    if run_dir is not None and (run_dir / "config.yaml").is_file():
        path = run_dir / "config.yaml"
        return trusted_config(read_yaml(path), str(path)), str(path)
    if isinstance(checkpoint_obj, dict) and isinstance(checkpoint_obj.get("config"), dict):
        return trusted_config(checkpoint_obj["config"], "the checkpoint's config"), "checkpoint"
    return None, ""


def build_from_config(config: dict, imports: bool = False) -> tuple[torch.nn.Module, Any]:
    """``(freshly initialised model, data bundle)`` of a trainfix config dict (seeded as in training).
    ``imports``: the config is the user's own, named on the command line; its ``_component_``
    paths may be imported (as ``trainfix train`` does)."""
    from trainfix.trainers.build import build_data, build_model
    from trainfix.trainers.config import from_dict

    cfg = from_dict(config, imports=imports)
    bundle = build_data(cfg, imports=imports)
    return build_model(cfg, bundle, imports=imports), bundle


def load_as_saved(model: torch.nn.Module, checkpoint_obj: Any) -> dict[str, Any]:
    """Load the checkpoint's weights with ``strict=False`` and no renaming; what it filled."""
    from trainfix.weights import compare_to_model, locate_state_dict

    state = locate_state_dict(checkpoint_obj).state_dict
    report = compare_to_model(state, model)
    own = model.state_dict()
    fits = {k: v for k, v in state.items() if k in own and torch.is_tensor(v) and tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(fits, strict=False)
    d = report.to_dict()
    return {"fill_share": d["fill_share"], "loads_strict": d["loads_strict"], "prefixes": d["prefixes"],
            "n_missing": len(d["missing"]), "n_unexpected": len(d["unexpected"]),
            "missing": d["missing"][:10], "unexpected": d["unexpected"][:10],
            "n_shape_mismatched": len(d["shape_mismatched"])}


def checkpoint_step(checkpoint_obj: Any) -> int:
    if isinstance(checkpoint_obj, dict):
        progress = checkpoint_obj.get("progress")
        if isinstance(progress, dict) and isinstance(progress.get("step"), int):
            return progress["step"]
        for key in ("global_step", "step"):  # an epoch is not a step: without one, step 0
            if isinstance(checkpoint_obj.get(key), int):
                return checkpoint_obj[key]
    return 0


def draw(subject: Subject, bundle: Any, n_measure: int, layer: str | None, ig_steps: int) -> dict[str, Any]:
    """Maps, per-sample metrics and means of ``subject`` on the first validation samples."""
    from trainfix.trainers.attribution.evaluation import val_inputs

    inputs, boxes = val_inputs(bundle, n_measure)
    maps = compute_maps(subject.model, inputs, layer=layer, ig_steps=ig_steps)
    per_sample = measure(maps, boxes)
    targets = [int(bundle.val[i][1]) for i in range(len(inputs))]
    names = list(bundle.class_names) or [str(i) for i in range(bundle.num_classes)]
    predicted = maps.target.cpu().tolist()
    rows = records(per_sample, {"index": list(range(len(inputs))), "true": [names[t] for t in targets],
                                "predicted": [names[p] for p in predicted]})
    summary = summarise(per_sample)
    summary["attn/accuracy"] = sum(int(p == t) for p, t in zip(predicted, targets)) / max(1, len(targets))
    summary["attn/loaded_fraction"] = subject.load["fill_share"]
    subject.results = {"maps": maps, "boxes": boxes, "records": rows, "summary": summary}
    return subject.results


def picture(subjects: list[Subject], out_dir: Path, n_pictures: int) -> list[str]:
    """Per-sample PNGs (one row per subject) and the overview; returns the written paths."""
    from trainfix.trainers.attribution import render

    written = []
    first = subjects[0].results
    n = min(n_pictures, len(first["records"]))

    def row(s: Subject, i: int) -> dict:
        m = s.results["maps"]
        rec = s.results["records"][i]
        return {"label": s.label, "input": m.inputs[i, 0].cpu().numpy() if m.inputs.shape[1] == 1
                else m.inputs[i].permute(1, 2, 0).cpu().numpy().clip(0, 1),
                "gradcam": m.gradcam[i].cpu().numpy(), "guided": m.guided[i].cpu().numpy(),
                "ig": m.ig[i].cpu().numpy() if m.ig is not None else None, "record": rec,
                "class": rec["predicted"], "true": rec["true"]}

    for i in range(n):
        box = first["boxes"][i].tolist() if first["boxes"] is not None else None
        path = out_dir / "samples" / f"sample_{i:03d}.png"
        render.sample_figure(path, [row(s, i) for s in subjects], box)
        written.append(str(path))
    columns = [{"label": s.label, "inputs": s.results["maps"].inputs[:n, 0].cpu().numpy(),
                "gradcam": s.results["maps"].gradcam[:n].cpu().numpy(), "records": s.results["records"][:n],
                "boxes": first["boxes"][:n].tolist() if first["boxes"] is not None else None} for s in subjects]
    render.overview_figure(out_dir / "overview.png", columns)
    written.append(str(out_dir / "overview.png"))
    return written


def write_outputs(subjects: list[Subject], out_dir: Path, layer: str, pictures: list[str]) -> dict[str, Any]:
    """``attention.json`` and ``metrics.jsonl`` (see the module docstring); returns the JSON document."""
    from trainfix.trainers.config import atomic_write_text

    doc = {"schema": 1, "layer": layer, "pictures": pictures, "models": []}
    for s in subjects:
        doc["models"].append({"label": s.label, "checkpoint": str(s.checkpoint), "step": s.step, "load": s.load,
                              "summary": s.results["summary"], "samples": s.results["records"]})
    atomic_write_text(out_dir / "attention.json", json.dumps(_finite(doc), indent=2) + "\n")
    first = subjects[0]
    lines = [json.dumps({"tag": tag, "step": first.step, "value": value})
             for tag, value in sorted(first.results["summary"].items()) if value is not None and math.isfinite(value)]
    atomic_write_text(out_dir / "metrics.jsonl", "\n".join(lines) + "\n")
    return doc


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def check_output_dir(out_dir: Path, inputs: list[Path]) -> None:
    """Refuse an output directory that is, or would overwrite, one of the inputs."""
    out = out_dir.resolve()
    for p in inputs:
        rp = p.resolve()
        if rp == out or (out / "attention.json") == rp or (out / "metrics.jsonl") == rp or rp.parent == out and rp.name in ("metrics.jsonl", "attention.json", "overview.png"):
            raise InputError(f"-o {out_dir} would write over the input {p}", "choose a new output directory")
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"-o {out_dir} exists and is not a directory", "choose a new output directory")
    if (out_dir / "metrics.jsonl").is_file() and not (out_dir / "attention.json").is_file():
        raise InputError(f"-o {out_dir} already holds a metrics.jsonl that trainfix attention did not write",
                         "choose a new output directory (e.g. RUN/attention)")


__all__ = ["Subject", "resolve_checkpoint", "trusted_config", "find_config", "build_from_config", "load_as_saved",
           "checkpoint_step", "draw", "picture", "write_outputs", "check_output_dir", "ConfigError"]
