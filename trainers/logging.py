"""What the trainer writes, under the tag names the detectors look for first.

Two sinks get the same records: TensorBoard events (``SummaryWriter``) and ``metrics.jsonl``, one
JSON object per line: ``{"step", "epoch", "wall_time", "<tag>": value, ...}``.  Steps are global
optimizer steps; per-epoch tags are logged at the step that ended the epoch.

Canonical tags (see the constants below): ``train/loss_step`` and ``lr``, ``grad_norm``,
``mem/allocated_mb``, ``loss/<term>`` and ``loss/<term>/raw`` every ``logging.every_n_steps``
steps; ``train/loss`` (mean of the epoch's step losses), ``train/acc``, ``val/*`` and ``epoch`` at
each epoch end; component scalars (``uw/...``, ``attn/...``, ``mil/temperature``,
``sparsity/...``) under the names the components give them.

Resuming: the checkpoint records how many jsonl lines were written when it was saved; reopening
cuts the file back to that many lines, and TensorBoard gets ``purge_step`` so events logged after
the checkpoint by the killed process are dropped by readers.  Resumed logs thus read exactly like
an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

TRAIN_LOSS = "train/loss"
TRAIN_LOSS_STEP = "train/loss_step"
TRAIN_ACC = "train/acc"
VAL_LOSS = "val/loss"
VAL_ACC = "val/acc"
LR = "lr"
GRAD_NORM = "grad_norm"
MEMORY = "mem/allocated_mb"
EPOCH = "epoch"
STAGE = "stage"
NONFINITE_SKIPS = "train/nonfinite_skips"


def loss_term_tags(term: str) -> tuple[str, str]:
    """(weighted tag, raw tag) of a loss term: ``loss/<term>``, ``loss/<term>/raw``."""
    return f"loss/{term}", f"loss/{term}/raw"


def memory_mb(device: Any = None) -> float:
    """CUDA memory allocated on ``device`` when it is a CUDA device, else this process's RSS."""
    import torch

    if device is not None and getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _this_process().memory_info().rss / 2**20


def _this_process() -> Any:
    """This process as a ``psutil.Process``, made once per process (making one reads /proc each time)."""
    global _PROCESS
    import psutil

    if _PROCESS is None or _PROCESS.pid != os.getpid():  # a forked child measures itself
        _PROCESS = psutil.Process()
    return _PROCESS


_PROCESS: Any = None


def device_total_mb(device: Any = None) -> float:
    """Total memory of ``device`` when it is a CUDA device, else the machine's RAM, in MB.

    Recorded in the resolved config as ``run.device_total_mb`` so that ``memory-growth`` can say
    when a growing ``mem/allocated_mb`` would run out of memory.
    """
    import torch

    if device is not None and getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.get_device_properties(device).total_memory / 2**20
    import psutil

    return psutil.virtual_memory().total / 2**20


def _truncate_lines(path: Path, keep: int) -> None:
    """Keep the first ``keep`` lines of ``path`` (atomically)."""
    if not path.exists():
        return
    with path.open("rb") as f:
        lines = f.readlines()
    if len(lines) <= keep:
        return
    from trainfix.outputs import write_bytes

    write_bytes(path, b"".join(lines[:keep]))


class MetricLogger:
    """Writes scalar records to metrics.jsonl and TensorBoard (rank 0 only; elsewhere a no-op)."""

    def __init__(self, run_dir: str | os.PathLike, cfg: Any, *, enabled: bool = True, resume_lines: int | None = None,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.lines = 0
        self._jsonl = None
        self._tb = None
        if not enabled:
            return
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if cfg.jsonl:
            path = run_dir / "metrics.jsonl"
            if resume_lines is not None:
                _truncate_lines(path, resume_lines)
                self.lines = resume_lines
            elif path.exists():
                path.unlink()
            self._jsonl = path.open("a", encoding="utf-8")
        if cfg.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._tb = SummaryWriter(log_dir=str(run_dir), purge_step=purge)

    def log(self, step: int, epoch: int, scalars: dict[str, Any]) -> None:
        if not self.enabled or not scalars:
            return
        now = time.time()
        clean = {k: _number(v) for k, v in scalars.items()}
        if self._jsonl is not None:
            record = {"step": int(step), "epoch": int(epoch), "wall_time": round(now, 3)}
            record.update((k, v) for k, v in clean.items() if k not in record)
            self._jsonl.write(json.dumps(record, allow_nan=True) + "\n")
            self._jsonl.flush()
            self.lines += 1
        if self._tb is not None:
            for tag, value in clean.items():
                self._tb.add_scalar(tag, value, global_step=int(step), walltime=now)

    def flush(self) -> None:
        if self._jsonl is not None:
            self._jsonl.flush()  # in the OS's hands: survives the process being killed
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def _number(value: Any) -> float:
    """A Python float (NaN/Inf kept as they are: they are the evidence the detectors need)."""
    return float(value.item() if hasattr(value, "item") else value)


class EpochProgress:
    """A rich progress bar for one epoch on stderr (``setting`` auto: when stderr is a terminal),
    and one summary line per epoch always (on the main process), with the epoch's wall time: piped
    or redirected output (CI, cluster logs) shows progress instead of looking hung."""

    def __init__(self, setting: Any, enabled: bool = True):
        on = sys.stderr.isatty() if setting == "auto" else bool(setting)
        self.on = on and enabled
        self.enabled = enabled
        self._progress = None
        self._t0: float | None = None

    def start(self, description: str, total: int, completed: int = 0) -> None:
        self._t0 = time.monotonic()
        if not self.on:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"), console=Console(file=sys.stderr), transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task(description, total=total, completed=completed, info="")

    def advance(self, info: str | None = None) -> None:
        if self._progress is not None:
            if info is None:
                self._progress.advance(self._task)
            else:
                self._progress.update(self._task, advance=1, info=info)

    def stop(self, summary: str | None = None) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if summary and self.enabled:
            took = f"  ({time.monotonic() - self._t0:.1f} s)" if self._t0 is not None else ""
            sys.stderr.write(summary + took + "\n")
            sys.stderr.flush()
