"""`trainfix train`: train from a YAML run config (one process, or N through torchrun)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from trainfix.cli.common import command, out
from trainfix.errors import UsageError


@command
def train_command(
    overrides: Annotated[
        Optional[list[str]],
        typer.Argument(help="Config overrides a.b.c=value (YAML values), e.g. optimizer.lr=0.01 training.epochs=3.", show_default=False),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option("--config", "-c", help="YAML run config (see examples/). Optional with --resume: the run dir's config.yaml.")
    ] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Run directory to write (default: run.out_dir, else runs/<run.name>).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its checkpoints/last.pt.")] = False,
    init_from: Annotated[
        Optional[Path], typer.Option("--init-from", help="Warm start: a new run whose model starts from this checkpoint's weights.")
    ] = None,
    nproc: Annotated[int, typer.Option("--nproc", min=1, help="Data-parallel processes, launched through torchrun.")] = 1,
    device: Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda (overrides run.device).")] = None,
    validate_only: Annotated[bool, typer.Option("--validate", help="Only validate the config (every problem at once) and exit.")] = False,
    import_components: Annotated[
        bool, typer.Option("--import-components", help="With --validate: import each _component_ the config names and bind its arguments (runs that code).")
    ] = False,
) -> None:
    """Train a model from a run config; writes metrics.jsonl, TensorBoard events and checkpoints.

    Training imports the ``_component_`` paths the config names: train only configs you trust.
    ``--validate`` checks them without importing anything (the module must be findable on the import
    path); add ``--import-components`` to import them and bind their arguments too.
    """
    from trainfix.trainers.config import load_config

    ovr = list(overrides or [])
    if device is not None:
        if device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--device {device!r} is not auto|cpu|cuda", "use --device cpu, cuda or auto")
        ovr.append(f"run.device={device}")
    if config is None:
        if not (resume and out_dir is not None):
            raise UsageError("--config is required", "trainfix train --config examples/digits-quick.yaml --out runs/x")
        config = out_dir / "config.yaml"
    if validate_only:
        cfg = load_config(config, ovr, imports=import_components)
        unbound = [] if import_components else _locate_components(cfg)
        note = f" ({', '.join(unbound)} found, not imported: --import-components binds their arguments)" if unbound else ""
        out().print(f"{config}: valid{note}")
        return
    if import_components:
        raise UsageError("--import-components goes with --validate", "training imports the components anyway")
    cfg = load_config(config, ovr, imports=True)  # validate before anything starts (also before launching N processes)
    if init_from is not None and resume:
        raise UsageError("--init-from and --resume exclude each other", "--resume continues a run; --init-from starts a new one from weights")
    if nproc > 1:
        from trainfix.trainers import distributed
        from trainfix.trainers.loop import resolve_out_dir

        run_dir = resolve_out_dir(cfg, out_dir, resume)
        distributed.launch(str(config), nproc, str(run_dir), resume, None, ovr, init_from)
        out().print(f"run dir: {run_dir}")
        return
    from trainfix.trainers.loop import train

    result = train(config, out_dir=out_dir, resume=resume, overrides=ovr, init_from=init_from)
    summary = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if k in ("train/loss", "val/loss", "val/acc", "val/auc"))
    out().print(f"run dir: {result.out_dir}\n{summary}")


def _locate_components(cfg) -> list[str]:
    """Check that each ``_component_`` outside the registries can be found, without importing it
    (ConfigError otherwise); return their dotted section names (``model._component_``)."""
    from trainfix.errors import ConfigError
    from trainfix.trainers.components import registry

    problems, found = [], []
    for kind in ("data", "model", "loss"):
        target = getattr(cfg, kind).component
        if target and not registry.is_registered_target(target):
            why = registry.locate_target(target)
            if why:
                problems.append(f"{kind}._component_ {target!r}: {why}")
            else:
                found.append(f"{kind}._component_")
    if problems:
        raise ConfigError(f"invalid config: {len(problems)} problem{'s' if len(problems) != 1 else ''}",
                          "check the module is installed and on PYTHONPATH", details=problems)
    return found
