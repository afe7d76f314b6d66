"""`trainfix inspect CKPT`: what a checkpoint holds, whether it fits a model, how far weights moved.

Reads the file safely (``weights_only`` / safetensors; a file that needs arbitrary unpickling is
refused, never executed) and shows the container layout, wrapper prefixes and their key counts,
parameter count, dtypes, non-finite tensors, per-layer norms and optimizer-state coverage.
``--model`` (a trainfix config, or ``module:factory``) adds missing / unexpected / shape-mismatched
keys and the share of parameters a ``strict=False`` load would fill; ``--against CKPT2`` adds the
per-layer update-to-weight ratio between the two saves.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix.cli.common import command, out
from trainfix.errors import InputError, UsageError

_LIST = 10


def load_model_ref(ref: str) -> Any:
    """An ``nn.Module`` from ``--model``: a trainfix config path (or a run dir holding config.yaml),
    or ``module:factory`` (a callable returning an ``nn.Module``, imported from the current directory)."""
    path = Path(ref)
    if path.is_dir() and (path / "config.yaml").is_file():  # a trainfix run dir: its resolved config
        path = path / "config.yaml"
    if path.exists():
        if path.suffix.lower() not in (".yaml", ".yml", ".json"):
            raise UsageError(f"--model {ref}: expected a trainfix config (.yaml) or module:factory",
                             "e.g. --model run/config.yaml or --model mypkg.models:build")
        from trainfix.trainers.build import model_from_config

        return model_from_config(path)
    if ":" not in ref:
        raise InputError(f"--model {ref}: no such config file, and not of the form module:factory",
                         "give a trainfix config path or module:factory (a callable returning an nn.Module)")
    mod_name, _, attr = ref.partition(":")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        factory = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"--model {ref}: cannot import it ({exc})",
                         "check the module is importable from the current directory") from None
    model = factory() if callable(factory) else factory
    if not (hasattr(model, "state_dict") and hasattr(model, "named_parameters")):
        raise InputError(f"--model {ref} returned a {type(model).__name__}, not an nn.Module",
                         "the factory must return an nn.Module")
    return model


def inspect_data(ckpt: Path, model_ref: str | None = None, against: Path | None = None) -> dict[str, Any]:
    """Everything the command shows, as a JSON-ready dict (schema 1)."""
    from trainfix.diagnostics import checkpoints as ck

    summary = ck.summarize(ckpt)
    data: dict[str, Any] = {"schema": 1, "checkpoint": summary.to_dict()}
    if model_ref:
        model = load_model_ref(model_ref)
        shapes = {k: tuple(v) for k, v in summary.shapes.items()}
        as_saved = ck.compare_to_model(shapes, model)
        repaired = ck.compare_to_model(ck.strip_prefixes(shapes, list(model.state_dict())), model)
        data["model"] = {"ref": model_ref, "as_saved": as_saved.to_dict(), "after_strip": repaired.to_dict()}
    if against:
        ratios = ck.update_ratios(ckpt, against)
        d = ratios.to_dict()
        layers = sorted(d.pop("per_layer").items(), key=lambda kv: -kv[1])
        d["per_layer"] = [[k, v] for k, v in layers]
        d["band_per_step"] = list(ck.UPDATE_RATIO_BAND)
        data["update"] = d
    return data


def _json_safe(value: Any) -> Any:
    """NaN/Inf as strings, tuples as lists: stdout must hold one valid JSON document."""
    import math

    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _fmt_n(n: int) -> str:
    return f"{n:,}"


def _render(data: dict[str, Any]) -> None:
    """The report on the console: the checkpoint, then the model fit and the update ratio when asked."""
    con = out()
    s = data["checkpoint"]
    _render_layout(con, s)
    _render_optimizer(con, s["optimizer"] or {})
    _render_norms(con, s)
    if "model" in data:
        _render_model(con, data["model"])
    if "update" in data:
        _render_update(con, data["update"])


def _render_layout(con: Any, s: dict[str, Any]) -> None:
    """Where the weights are, what they count, their counters, prefixes and non-finite tensors."""
    con.print(f"[bold]{s['path']}[/bold]  ({s['format']}, {s['kind']})")
    where = s["state_dict_at"] or "top level"
    con.print(f"weights at: {where}" + (f"   container keys: {', '.join(s['top_level_keys'])}" if s["top_level_keys"] else ""))
    if s["other_state_dicts"]:
        con.print("other state dicts: " + ", ".join(f"{k} ({v} tensors)" for k, v in s["other_state_dicts"].items()))
    con.print(f"tensors: {s['n_tensors']}   parameters: {_fmt_n(s['n_params'])} "
              f"({_fmt_n(s['n_elements'])} elements with buffers)   dtypes: "
              + ", ".join(f"{k} x{v}" for k, v in s["dtypes"].items()))
    counters = [f"{k}: {s[k]}" for k in ("epoch", "step") if s[k] is not None]
    if counters:
        con.print("   ".join(counters))
    if s["prefixes"]:
        for chain, count in s["prefixes"].items():
            con.print(f"[yellow]prefix '{chain}' on {count} of {s['n_keys']} keys[/yellow]")
    else:
        con.print("prefixes: none (clean keys)")
    if s["nonfinite"]:
        for nf in s["nonfinite"][:_LIST]:
            con.print(f"[red]non-finite: {nf['key']}: {nf['nan']} NaN, {nf['inf']} Inf of {nf['numel']}[/red]")
    else:
        con.print("non-finite tensors: none")


def _render_optimizer(con: Any, opt: dict[str, Any]) -> None:
    """Optimizer-state coverage: which parameter tensors have state."""
    if not opt.get("present"):
        con.print("optimizer state: none")
        return
    line = (f"optimizer state: {opt['n_params_in_optimizer']} parameters in {opt['n_param_groups']} group(s), "
            f"{opt['n_params_with_state']} with state; {opt['n_param_tensors']} parameter tensors in the weights")
    con.print(line)
    if opt.get("params_without_state_count"):
        missing = opt.get("params_without_state") or []
        con.print(f"[yellow]{opt['params_without_state_count']} parameter tensor(s) not in the optimizer"
                  + (f": {', '.join(missing[:_LIST])}" if missing else "") + "[/yellow]")


def _render_norms(con: Any, s: dict[str, Any]) -> None:
    """The per-layer L2 norms, largest then smallest, as a table."""
    if not s["layer_norms_top"]:
        return
    from rich.table import Table

    t = Table(title="per-layer L2 norms (largest, then smallest)", show_header=True)
    t.add_column("tensor")
    t.add_column("norm", justify="right")
    for k, v in s["layer_norms_top"]:
        t.add_row(k, f"{v:.4g}")
    if s["layer_norms_bottom"]:
        t.add_row("...", "")
        for k, v in s["layer_norms_bottom"]:
            t.add_row(k, f"{v:.4g}")
    con.print(t)


def _render_model(con: Any, m: dict[str, Any]) -> None:
    """``--model``: what a load would miss as saved, and after stripping wrapper prefixes."""
    a, b = m["as_saved"], m["after_strip"]
    con.print(f"[bold]against model {m['ref']}[/bold]: {a['n_model_keys']} model keys, "
              f"{a['n_checkpoint_keys']} checkpoint keys")
    color = "green" if a["loads_strict"] else "red"
    con.print(f"[{color}]as saved: {len(a['missing'])} missing, {len(a['unexpected'])} unexpected, "
              f"{len(a['shape_mismatched'])} shape-mismatched; strict=False fills "
              f"{a['fill_share']:.1%} of the parameters[/{color}]")
    for label, keys in (("missing", a["missing"]), ("unexpected", a["unexpected"])):
        for k in keys[:_LIST]:
            con.print(f"  {label}: {k}")
        if len(keys) > _LIST:
            con.print(f"  {label}: ... and {len(keys) - _LIST} more")
    for k, sa, sb in a["shape_mismatched"][:_LIST]:
        con.print(f"  shape: {k} checkpoint {sa} vs model {sb}")
    if not a["loads_strict"]:
        state = "loads strictly" if b["loads_strict"] else (
            f"{len(b['missing'])} missing, {len(b['unexpected'])} unexpected, fills {b['fill_share']:.1%}")
        con.print(f"after stripping wrappers: {state}"
                  + ("  (repair: trainfix apply CKPT --fix checkpoint-keys)" if b["loads_strict"] else ""))


def _render_update(con: Any, u: dict[str, Any]) -> None:
    """``--against``: the update-to-weight ratio between the two saves, per step when known."""
    con.print(f"[bold]update ratio |W_b - W_a| / |W_a|[/bold] over {len(u['per_layer'])} layers: "
              f"median {u['median']:.3g} (IQR {u['q25']:.3g}..{u['q75']:.3g}, spread {u['spread_decades']:.2f} decades)")
    if u["steps"] == 0:
        con.print("both saved at the same step: no per-step ratio")
    elif u["median_per_step"] is not None:
        lo, hi = u["band_per_step"]
        con.print(f"per optimizer step ({u['steps']} steps apart): {u['median_per_step']:.3g} "
                  f"(healthy band {lo:g}..{hi:g}, typical ~1e-3)")
    else:
        con.print("steps between the saves unknown: no per-step ratio")
    for k, v in u["per_layer"][:5]:
        con.print(f"  {k}: {v:.3g}")


@command
def inspect_command(
    ckpt: Annotated[Path, typer.Argument(help="Checkpoint file (.pt .pth .ckpt .bin .safetensors).")],
    model: Annotated[Optional[str], typer.Option("--model", "-m", help="A trainfix config, or module:factory returning an nn.Module.")] = None,
    against: Annotated[Optional[Path], typer.Option("--against", help="A later checkpoint: per-layer update-to-weight ratio.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="rich | json")] = "rich",
) -> None:
    """Show what a checkpoint holds (read safely), whether it fits a model, and how far weights moved."""
    if format not in ("rich", "json"):
        raise UsageError(f"unknown --format {format!r}", "use rich or json")
    for p in [ckpt] + ([against] if against else []):
        if not p.exists():
            raise InputError(f"no such file: {p}", "give the path of a checkpoint file")
        if p.is_dir():
            raise InputError(f"{p} is a directory", "give one checkpoint file (e.g. run/checkpoints/best.pt)")
    data = inspect_data(ckpt, model, against)
    if format == "json":
        sys.stdout.write(json.dumps(_json_safe(data), default=str, allow_nan=False) + "\n")
    else:
        _render(data)
