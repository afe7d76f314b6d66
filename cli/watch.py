"""`trainfix watch RUN_DIR`: diagnose a run while it trains and print each new finding once.

``trainfix watch RUN_DIR [--interval S] [--stop-on SEVERITY] [--format rich|json] [--idle-timeout S]
[--tensorboard] [--fail-on SEVERITY] [--select/--ignore/--param/--metric as diagnose]``

Each poll checks whether the run's files grew (size and mtime of every file under the run dir);
when they did, the run is read again (a partial last record of a file still being written is
tolerated by the readers) and the detectors run on it (:class:`~trainfix.diagnostics.live
.LiveDiagnosis`); findings at warning or above not seen before are printed, one line each (or one
JSON object per line with ``--format json``).  A poll that costs more than a twentieth of the
interval stretches the wait, so watching never takes more than about 5% of one core.

The run has ended when:

- trainfix's trainer wrote its end marker (``trainfix-end.json``: status, step, epoch, the resume
  command when it stopped early; the trainer removes a stale one when it starts), or
- nothing grew for ``--idle-timeout`` seconds (default 600; any trainer, e.g. a foreign script).

Then (or on Ctrl-C) it prints a summary: polls, findings per severity, the mean cost of a poll.

``--stop-on error`` asks the training to stop when a finding at that severity appears: it writes
``trainfix-stop.json`` (the finding that triggered it) into the run dir; trainfix's trainer checks
for that file every step, saves a checkpoint, writes its end marker and exits cleanly, printing
the ``trainfix train --resume`` command.  Other trainers do not read the file: the callbacks in
``trainfix.trainers.integrations`` stop Lightning and Hugging Face runs themselves.

``--tensorboard`` writes each new finding as a text summary into a new event file in the run dir
(:mod:`trainfix.diagnostics.tb_findings`).

Exit codes: 0 when nothing at or above ``--fail-on`` (default error) was found, 1 when something
was, 2 for usage or input errors, 130 on Ctrl-C (after the summary).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from trainfix.cli import common
from trainfix.cli.common import command
from trainfix.cli.diagnose import (
    SEVERITIES,
    ConfigOpt,
    IgnoreOpt,
    MetricOpt,
    ParamOpt,
    SelectOpt,
    choice,
    load_settings,
    parse_metrics,
    parse_params,
)
from trainfix.errors import InputError
from trainfix.trainers.control import END_MARKER, STOP_REQUEST
MAX_SHARE = 0.05  # of wall time spent polling
MAX_FILES = 5000


@command
def watch_command(
    run_dir: Annotated[Path, typer.Argument(help="The run directory being written.", show_default=False)],
    interval: Annotated[float, typer.Option("--interval", min=0.05, help="Seconds between polls.")] = 10.0,
    stop_on: Annotated[Optional[str], typer.Option("--stop-on", help="Ask the training to stop on a finding at or above: error | warning.",
                                                   show_default=False, metavar="SEVERITY")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="rich (one line per finding) | json (one object per line).",
                                     metavar="FORMAT")] = "rich",
    idle_timeout: Annotated[float, typer.Option("--idle-timeout", min=0.1, help="End when no file grew for this many seconds.")] = 600.0,
    tensorboard: Annotated[bool, typer.Option("--tensorboard", help="Also write each finding as a TensorBoard text summary (a new event file).")] = False,
    fail_on: Annotated[Optional[str], typer.Option("--fail-on", help="Exit 1 when a finding is at or above: error | warning | info.",
                                                   show_default=False, metavar="SEVERITY")] = None,
    select: SelectOpt = None,
    ignore: IgnoreOpt = None,
    param: ParamOpt = None,
    metric: MetricOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Follow a run as it trains: print each new finding once; optionally stop the training."""
    from trainfix.diagnostics.pipeline import diagnose_paths
    from trainfix.diagnostics.finding import Severity
    from trainfix.diagnostics.live import LiveDiagnosis

    fmt = choice(fmt, ("rich", "json"), "--format")
    stop_on = choice(stop_on, SEVERITIES, "--stop-on") if stop_on else None
    fail_on = choice(fail_on, SEVERITIES, "--fail-on") if fail_on else "error"
    if not run_dir.is_dir():
        raise InputError(f"no such run directory: {run_dir}", "give the directory the training writes into")
    settings = load_settings([run_dir], config)
    params = parse_params(param or [])
    metrics = parse_metrics(metric or [])
    diagnose_paths([], settings=settings, select=select, ignore=ignore, params=params)  # validate options now
    live = LiveDiagnosis(select=select, ignore=ignore, params=params,
                         min_severity="info" if fail_on == "info" else "warning")
    session = WatchSession(run_dir, live, fmt=fmt, stop_on=stop_on, tensorboard=tensorboard,
                           metrics=metrics, settings=settings)
    try:
        session.loop(interval, idle_timeout)
    except KeyboardInterrupt:
        session.summary("interrupted")
        raise typer.Exit(130) from None
    worst = live.worst()
    raise typer.Exit(1 if worst is not None and worst.rank >= Severity(fail_on).rank else 0)


def signature(run_dir: Path) -> tuple:
    """Size and mtime of every regular file under ``run_dir`` (what "the run grew" means)."""
    out = []
    for root, dirs, files in os.walk(run_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(STOP_REQUEST) or ".trainfix-findings" in name:
                continue
            try:
                st = os.stat(os.path.join(root, name), follow_symlinks=False)
            except OSError:
                continue
            out.append((root, name, st.st_size, st.st_mtime_ns))
            if len(out) >= MAX_FILES:
                return tuple(out)
    return tuple(out)


class WatchSession:
    """One ``watch``: polls, prints, asks for a stop, writes TensorBoard text (see module docstring)."""

    def __init__(self, run_dir: Path, live: Any, *, fmt: str, stop_on: str | None, tensorboard: bool,
                 metrics: dict, settings: Any):
        self.run_dir = run_dir
        self.live = live
        self.fmt = fmt
        self.stop_on = stop_on
        self.metrics = metrics
        self.settings = settings
        self.tb = None
        self.want_tb = tensorboard
        self.stop_requested = False
        self.read_seconds = 0.0
        self.changed_polls = 0
        self.last_step: float | None = None
        self.costs: list[float] = []  # seconds of each poll that read new data

    def steady_cost(self) -> float:
        """Median cost of the last five polls after the first (the first also pays for imports)."""
        recent = self.costs[1:][-5:]
        return sorted(recent)[len(recent) // 2] if recent else 0.0

    # --- output ---
    def emit(self, record: dict[str, Any], line: str) -> None:
        if self.fmt == "json":
            sys.stdout.write(json.dumps(record, default=str, allow_nan=False) + "\n")
        else:
            sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        common.err().print(f"trainfix watch: {text}", markup=False)

    # --- one poll ---
    def poll(self) -> list:
        """Read and diagnose the run once; the new findings (printed and acted on)."""
        from trainfix.diagnostics.ingest import read_run
        from trainfix.diagnostics.live import finding_line
        from trainfix.diagnostics.report import finding_dict
        from trainfix.errors import TrainfixError

        t0 = time.perf_counter()
        try:
            run = read_run(self.run_dir, metric_overrides=self.metrics or None, settings=self.settings)
        except TrainfixError:
            return []  # nothing readable yet (the run is starting)
        self.read_seconds += time.perf_counter() - t0
        self.changed_polls += 1
        steps = run.scalars["step"] if len(run.scalars) else None
        self.last_step = float(steps.max()) if steps is not None else None
        new = self.live.update(run)
        for f in new:
            self.emit({"event": "finding", "step": self.last_step, **finding_dict(f)},
                      finding_line(f, step=self.last_step))
            if self.want_tb:
                from trainfix.diagnostics.tb_findings import FindingsEventWriter

                if self.tb is None:
                    self.tb = FindingsEventWriter(self.run_dir)
                self.tb.add(f, int(self.last_step or 0))
        if self.stop_on and not self.stop_requested:
            from trainfix.diagnostics.live import at_or_above

            hit = at_or_above(new, self.stop_on)
            if hit:
                request_stop(self.run_dir, hit[0])
                self.stop_requested = True
                self.emit({"event": "stop-requested", "detector": hit[0].detector, "file": str(self.run_dir / STOP_REQUEST)},
                          f"trainfix: asked the training to stop ({hit[0].detector}, {hit[0].severity.value}): "
                          f"wrote {self.run_dir / STOP_REQUEST}")
        return new

    def loop(self, interval: float, idle_timeout: float) -> None:
        last_sig: tuple | None = None
        last_growth = time.monotonic()
        while True:
            ended = (self.run_dir / END_MARKER).is_file()
            sig = signature(self.run_dir)
            if sig != last_sig:
                last_sig = sig
                last_growth = time.monotonic()
                t0 = time.perf_counter()
                before = self.changed_polls
                self.poll()
                if self.changed_polls > before:
                    self.costs.append(time.perf_counter() - t0)
            if ended:
                self.summary(end_status(self.run_dir))
                return
            if time.monotonic() - last_growth >= idle_timeout:
                self.summary(f"no file grew for {idle_timeout:g} s")
                return
            time.sleep(max(interval, self.steady_cost() / MAX_SHARE))

    def summary(self, why: str) -> None:
        if self.tb is not None:
            self.tb.close()
        live = self.live
        counts = {s: 0 for s in ("error", "warning", "info")}
        for f in live.findings:
            counts[f.severity.value] += 1
        first = self.costs[0] if self.costs else 0.0
        steady = self.steady_cost() if len(self.costs) > 1 else first
        text = (f"run ended ({why})" if not why.startswith("interrupted") else "interrupted") + \
               f": {self.changed_polls} polls with new data, {counts['error']} errors, {counts['warning']} warnings, " \
               f"{counts['info']} info; {steady * 1000:.0f} ms per poll (first poll {first * 1000:.0f} ms with imports)"
        if self.tb is not None:
            text += f"; TensorBoard text in {self.tb.path.name}"
        if self.fmt == "json":
            self.emit({"event": "summary", "why": why, "polls": self.changed_polls, "counts": counts,
                       "seconds_per_poll": round(steady, 4), "first_poll_seconds": round(first, 4)}, "")
        self.note(text)


def request_stop(run_dir: Path, finding: Any) -> Path:
    """Write the stop request trainfix's trainer polls for (atomically; a new file in the run dir)."""
    from trainfix.cli.diagnose import write_atomic

    path = run_dir / STOP_REQUEST
    body = {"requested_by": "trainfix watch", "time": time.time(), "detector": finding.detector,
            "severity": finding.severity.value, "message": finding.message}
    write_atomic(path, json.dumps(body, indent=2) + "\n")
    return path


def end_status(run_dir: Path) -> str:
    """What the trainer's end marker says, in a few words."""
    try:
        data = json.loads((run_dir / END_MARKER).read_text(encoding="utf-8")[:100_000])
    except (OSError, ValueError):
        return "end marker found"
    if not isinstance(data, dict):
        return "end marker found"
    status = str(data.get("status", "ended"))
    where = f" at step {data['step']}" if "step" in data else ""
    resume = f"; resume: {data['resume']}" if data.get("resume") else ""
    return f"{status}{where}{resume}"
