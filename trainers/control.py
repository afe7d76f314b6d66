"""The files through which a running trainfix training talks to ``trainfix watch``.

- ``trainfix-stop.json`` (written by ``watch --stop-on``, or by hand: any content): a stop
  request.  The loop checks for it every ``logging.every_n_steps`` steps; when it is there the
  loop saves a mid-epoch checkpoint, stops cleanly and prints the resume command.  The file is
  removed when a run (or its resume) starts, so a handled request never stops the next run.
- ``trainfix-end.json`` (written by the trainer when ``train`` returns or fails): ``{"status":
  "finished" | "stopped" | "interrupted" | "failed", "step", "epoch", "resume", "reason"}``.
  ``watch`` ends when it appears; a stale one is removed when a run starts.

Plain file checks only: nothing here imports torch, so ``watch`` can use it.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

END_MARKER = "trainfix-end.json"
STOP_REQUEST = "trainfix-stop.json"


class StopRequested(Exception):
    """Raised inside the loop after the checkpoint is saved; ``train`` turns it into a clean end."""

    def __init__(self, reason: str, step: int, epoch: int):
        super().__init__(reason)
        self.reason, self.step, self.epoch = reason, step, epoch


def resume_command(run_dir: Path) -> str:
    return f"trainfix train --resume --out {shlex.quote(str(run_dir))}"


def clear(run_dir: Path) -> None:
    """Remove a stale end marker and stop request (a new run or a resume is starting)."""
    for name in (END_MARKER, STOP_REQUEST):
        try:
            os.unlink(run_dir / name)
        except FileNotFoundError:
            pass


def stop_requested(run_dir: Path) -> str | None:
    """The reason of a pending stop request (its detector and message when ``watch`` wrote it), or None."""
    path = run_dir / STOP_REQUEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8")[:100_000])
    except (OSError, ValueError):
        return "a stop request"
    if isinstance(data, dict) and data.get("detector"):
        return f"{data.get('severity', 'a')} {data['detector']} finding"
    return "a stop request"


def write_end(run_dir: Path, status: str, *, step: int | None = None, epoch: int | None = None,
              reason: str | None = None, resumable: bool = False) -> None:
    """Write the end marker atomically (a temp file and a rename)."""
    body: dict[str, Any] = {"status": status, "time": time.time()}
    if step is not None:
        body["step"] = int(step)
    if epoch is not None:
        body["epoch"] = int(epoch)
    if reason:
        body["reason"] = reason
    if resumable:
        body["resume"] = resume_command(run_dir)
    tmp = run_dir / f".{END_MARKER}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / END_MARKER)
