"""Findings written back to TensorBoard: one text summary per finding at its step, so the diagnosis
shows in TensorBoard's Text tab beside the run's curves.

The events go into a NEW event file in the run directory (TensorBoard shows every event file of a
folder as one run), named ``events.out.tfevents.<time>.<host>.<pid>.trainfix-findings``, created
exclusively: no existing file is opened for writing, input files are never touched.  ``watch``
appends each new finding to its file as it is found.  The file holds only text-plugin summaries,
which trainfix's own reader skips, so a later ``diagnose`` reads the same scalars as before.

Written with the ``tensorboard`` package's protobufs and record framing; torch is not imported.
Tags: ``trainfix/<detector>``; step: the last step of the finding's range (the step it was
reported at when it has none); text: Markdown with severity, message, tags, the fixes and the
evidence as a table.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from trainfix.diagnostics.finding import Finding, Severity


def finding_markdown(f: Finding) -> str:
    sev = Severity(f.severity).value
    lines = [f"**{sev}** `{f.detector}`: {f.message}", ""]
    if f.tags:
        lines.append("tags: " + ", ".join(f"`{t}`" for t in f.tags))
    if f.fixes:
        lines.append("fix: " + ", ".join(f"`trainfix apply --fix {x}`" for x in f.fixes[:3]))
    if f.evidence:
        lines += ["", "| evidence | value |", "|---|---|"]
        for k, v in list(f.evidence.items())[:30]:
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            lines.append(f"| {k} | {text[:200].replace('|', '/')} |")
    return "\n".join(lines)


def _step_of(f: Finding, default: int) -> int:
    try:
        return int(float(f.steps[-1])) if f.steps else default
    except (TypeError, ValueError, IndexError, OverflowError):
        return default


class FindingsEventWriter:
    """Appends text summaries of findings to one new event file in ``run_dir``."""

    def __init__(self, run_dir: str | os.PathLike):
        from tensorboard.compat.proto import event_pb2
        from tensorboard.summary.writer.record_writer import RecordWriter

        folder = Path(run_dir)
        if not folder.is_dir():
            folder = folder.parent
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}.trainfix-findings"
        self.path = folder / name
        n = 1
        while self.path.exists():
            self.path = folder / f"{name}.{n}"
            n += 1
        self._fh = open(self.path, "xb")  # exclusive: never an existing file
        self._writer = RecordWriter(self._fh)
        self._event_pb2 = event_pb2
        head = event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")
        self._writer.write(head.SerializeToString())
        self._writer.flush()
        self.count = 0

    def add(self, f: Finding, default_step: int = 0) -> None:
        from tensorboard.plugins.text.summary_v2 import text_pb

        summary = text_pb(f"trainfix/{f.detector}", finding_markdown(f))
        event = self._event_pb2.Event(wall_time=time.time(), step=_step_of(f, default_step), summary=summary)
        self._writer.write(event.SerializeToString())
        self._writer.flush()
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> "FindingsEventWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_findings(run_dir: str | os.PathLike, findings: list[Finding]) -> Path | None:
    """Write ``findings`` to a new event file in ``run_dir``; its path, or None when there are none."""
    if not findings:
        return None
    with FindingsEventWriter(run_dir) as w:
        for f in findings:
            w.add(f)
    return w.path
