"""`trainfix attention CKPT|RUN_DIR [--against CKPT_B] [--model CONFIG|module:factory] [--layer NAME] -o DIR`.

Draws Grad-CAM, Guided Backprop and Integrated Gradients maps of a checkpoint on validation samples,
measures them (entropy, Hoyer sparsity, blank maps, Grad-CAM/Guided-Backprop agreement, and on
datasets with known object positions pointing game and energy-in-box), and writes PNG grids,
``attention.json`` and ``metrics.jsonl`` (see :mod:`trainfix.trainers.attribution.study`).

The model comes from the run's own config (``RUN/config.yaml`` or the config saved in the
checkpoint; only trainfix's registered components are built from those, nothing named there is
imported), or from ``--model``: a config of yours, or ``module:factory``, which imports YOUR code
from the current directory: your explicit choice on your own machine.  The data (the validation
samples) always comes from a config: the run's, or the one given with ``--model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix.cli.common import command, out
from trainfix.errors import InputError, UsageError


def _subject(target: Path, model_ref: Optional[str], label: str) -> tuple[Any, Any]:
    from trainfix.weights import load_checkpoint
    from trainfix.trainers.attribution import study
    from trainfix.trainers.config import read_yaml

    ckpt, run_dir = study.resolve_checkpoint(target)
    obj = load_checkpoint(ckpt).obj
    run_config, _ = study.find_config(run_dir, obj)
    if model_ref and Path(model_ref).exists():
        path = Path(model_ref)
        path = path / "config.yaml" if path.is_dir() else path
        model, bundle = study.build_from_config(read_yaml(path), imports=True)  # the user's own config, named explicitly
    else:
        if run_config is None:
            raise InputError(f"{target}: no config.yaml beside it and none saved in the checkpoint",
                             "pass --model CONFIG (a trainfix config) so the model and its data can be built")
        model, bundle = study.build_from_config(run_config)
        if model_ref:  # module:factory: the user's own model class, data from the run's config
            from trainfix.cli.inspect import load_model_ref

            model = load_model_ref(model_ref)
    subject = study.Subject(label=label, checkpoint=ckpt, model=model, load=study.load_as_saved(model, obj),
                            step=study.checkpoint_step(obj))
    return subject, bundle


def _label(target: Path) -> str:
    if target.is_dir():
        return target.name
    return target.parent.parent.name + "/" + target.name if target.parent.name == "checkpoints" else target.name


@command
def attention_command(
    target: Annotated[Path, typer.Argument(help="A checkpoint file, or a run directory (its best.pt / last.pt).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for the PNGs, attention.json and metrics.jsonl.")],
    against: Annotated[Optional[Path], typer.Option("--against", help="A second checkpoint or run dir: pictured side by side.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="A trainfix config, or module:factory (imports your code).")] = None,
    layer: Annotated[Optional[str], typer.Option("--layer", help="Grad-CAM layer name (default: the model's own, else its last Conv2d).")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Validation samples pictured.")] = 8,
    measured: Annotated[int, typer.Option("--measure", help="Validation samples measured.")] = 128,
    ig_steps: Annotated[int, typer.Option("--ig-steps", help="Integrated Gradients steps (0 skips IG).")] = 32,
    format: Annotated[str, typer.Option("--format", "-f", help="rich | json")] = "rich",
) -> None:
    """Picture and measure a model's attribution maps; compare two models with --against."""
    if format not in ("rich", "json"):
        raise UsageError(f"unknown --format {format!r}", "use rich or json")
    if samples < 1 or measured < 1 or ig_steps < 0:
        raise UsageError("--samples and --measure must be >= 1, --ig-steps >= 0", "e.g. --samples 8 --measure 128")
    from trainfix.trainers.attribution import study

    subjects = []
    for t, label in ((target, _label(target)), *(((against, _label(against)),) if against else ())):
        if not t.exists():
            raise InputError(f"no such file or directory: {t}", "give a checkpoint file or a run directory")
        subject, bundle = _subject(t, model, label)
        subjects.append((subject, bundle))
    study.check_output_dir(output, [s.checkpoint for s, _ in subjects])
    if len(subjects) == 2 and subjects[0][0].label == subjects[1][0].label:
        subjects[0][0].label, subjects[1][0].label = "A: " + subjects[0][0].label, "B: " + subjects[1][0].label
    chosen = layer
    for s, bundle in subjects:
        study.draw(s, bundle, max(measured, samples), layer, ig_steps)
        chosen = chosen or s.results["maps"].layer
    pictures = study.picture([s for s, _ in subjects], output, samples)
    doc = study.write_outputs([s for s, _ in subjects], output, chosen or "", pictures)
    if format == "json":
        import json

        typer.echo(json.dumps({k: v for k, v in doc.items()} | {"models": [
            {k: v for k, v in m.items() if k != "samples"} for m in doc["models"]]}))
        return
    con = out()
    keys = ("attn/gradcam_entropy", "attn/gradcam_hoyer", "attn/gradcam_blank_share", "attn/gradcam_guided_agreement",
            "attn/pointing_game", "attn/energy_in_box", "attn/ig_pointing_game", "attn/accuracy", "attn/loaded_fraction")
    for m in doc["models"]:
        load = m["load"]
        con.print(f"[bold]{m['label']}[/bold]  ({m['checkpoint']}, step {m['step']}, layer {doc['layer']})")
        if not load["loads_strict"]:
            con.print(f"[red]the checkpoint fills {load['fill_share']:.0%} of the model's parameters as saved "
                      f"({load['n_missing']} missing, {load['n_unexpected']} unexpected keys"
                      + (f"; prefixes {', '.join(load['prefixes'])}" if load["prefixes"] else "")
                      + "): these are maps of the untrained network. Repair: trainfix apply "
                      f"{m['checkpoint']} --fix checkpoint-keys[/red]")
        con.print("  " + "  ".join(f"{k.split('/', 1)[1]} {m['summary'][k]:.3f}" for k in keys
                                   if m["summary"].get(k) is not None))
    con.print(f"wrote {output / 'attention.json'}, {output / 'metrics.jsonl'} and {len(pictures)} PNGs under {output}")
