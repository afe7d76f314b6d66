"""Read one run directory (or one log file) into a :class:`~trainfix.diagnostics.run.Run`.

:func:`read_run` is the whole of ingest seen from outside: scan for inputs (``discover``), read
each log with its format's reader, each one isolated (:func:`read_isolated`), tally what was read
and skipped, assemble one long table (``table``), merge the configs (``configs``), resolve the
metric roles (``roles``), and list checkpoints without loading them.  The steps are one function
each below, called in that order by :func:`_read_run`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainfix.diagnostics.ingest import safe_read
from trainfix.diagnostics.ingest.discover import PATTERNS_LOOKED_FOR, Inputs, find_runs, scan
from trainfix.diagnostics.run import CheckpointRef, Run
from trainfix.errors import InputError

if TYPE_CHECKING:
    from trainfix.diagnostics.settings import Settings

__all__ = ["ingest_budget", "read_isolated", "read_run"]


def read_run(
    path: str | Path, *, metric_overrides: dict[str, str] | None = None, settings: Settings | None = None,
    train_config: str | Path | None = None,
) -> Run:
    """Read everything a run directory (or a single log file) holds into a :class:`Run`.

    ``settings`` defaults to :func:`~trainfix.diagnostics.settings.load_settings` from the run's
    folder; its ``metrics`` map roles to tags, below ``metric_overrides`` (the ``--metric`` flags).
    ``train_config`` is the user's own training config when it lives outside the run dir
    (``--train-config``): it is read as data like any config and wins over what the run dir holds.

    Raises :class:`~trainfix.errors.InputError` for a missing path, an empty directory, or one
    with no logs (the message lists what was looked for), and
    :class:`~trainfix.errors.UsageError` for a ``metric_overrides`` entry naming an unknown role or
    tag.  Unreadable or empty files do not stop the read: they are listed in ``inputs["skipped"]``.
    """
    from trainfix.diagnostics.settings import load_settings

    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"{p} does not exist", "pass a run directory or one log file")
    if settings is None:
        settings = load_settings(p if p.is_dir() else p.parent)
    extra = None
    if train_config is not None:
        from trainfix.diagnostics.ingest.configs import load_config_file

        extra = Path(train_config).expanduser()
        if not extra.is_file():
            raise InputError(f"--train-config {extra}: no such file", "pass the YAML/JSON config your training script reads")
    with safe_read.budget(ingest_budget(settings)):
        if extra is not None:
            try:
                user_config = load_config_file(extra)
            except (OSError, ValueError) as exc:
                raise InputError(f"--train-config {extra}: {exc}", "pass a YAML or JSON mapping") from None
            return _read_run(p, metric_overrides, settings, (extra, user_config))
        return _read_run(p, metric_overrides, settings)


def ingest_budget(settings: Any) -> safe_read.Budget:
    """The per-file budget: defaults, then ``[tool.trainfix.ingest]``, then the environment."""
    base = safe_read.Budget()
    ingest = getattr(settings, "ingest", None) or {}
    if ingest.get("max_file_mb") is not None:
        base = safe_read.replace(base, max_bytes=int(float(ingest["max_file_mb"]) * safe_read.MIB))
    if ingest.get("max_file_seconds") is not None:
        base = safe_read.replace(base, max_seconds=float(ingest["max_file_seconds"]))
    return safe_read.Budget.from_env(base)


def _rel(path: Path, root: Path) -> str:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.as_posix()
    return rel or path.name


def _read_dataset_summary(root: Path) -> dict | None:
    """trainfix's ``dataset.json`` (sizes and per-class training counts, per stage), when the run
    dir holds one: detectors such as ``class-disparity`` weigh a gap against the class counts.
    Not a config, so it goes into ``inputs["dataset"]``; an unreadable file is simply absent."""
    import json

    path = root / "dataset.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(safe_read.read_bytes(path, 1_000_000).decode("utf-8", "replace"))
    except Exception:  # too large, not JSON, too deep, huge numbers: simply absent
        return None
    return data if isinstance(data, dict) else None


def read_isolated(fmt: str, path: Path, root: Path, read: Any) -> tuple[Any, dict | None]:
    """``read()`` for one file under its time budget: (what it returned, None), or (None, the
    skipped entry ``{path, reason}``) when it raised anything at all (one bad file never sinks a run)."""
    with safe_read.deadline():
        try:
            return read(), None
        except Exception as exc:  # RecursionError, OverflowError, MemoryError, a reader's own bug ...
            return None, {"path": _rel(path, root), "reason": f"{fmt} not read: {safe_read.describe_failure(exc)}"}


def _read_tensorboard(files: list[Path], root: Path, verify_payload_crc: bool = False):
    from trainfix.diagnostics.ingest.table import Table
    from trainfix.diagnostics.ingest.tensorboard import read_events

    tables = []
    skipped = []
    for path in sorted(files, key=lambda p: (p.parent.as_posix(), p.name)):
        ev, skip = read_isolated("tensorboard", path, root,
                                 lambda: read_events(path, verify_payload_crc=verify_payload_crc))
        if skip is not None:
            skipped.append(skip)
            continue
        stream = _rel(path.parent, root) if path.parent != root else "."
        tables.append(
            Table(_rel(path, root), "tensorboard", f"tensorboard:{stream}", ev.tags, ev.codes, ev.steps, ev.values,
                  ev.wall_times, corrupt_records=ev.corrupt_records, truncated=ev.truncated, notes=list(ev.notes))
        )
    # Qualify tags that several event folders share.
    folders: dict[str, set[str]] = {}
    for t in tables:
        if len(t):
            for tag in t.tags:
                folders.setdefault(tag, set()).add(t.stream)
    shared = {tag for tag, dirs in folders.items() if len(dirs) > 1}
    if shared:
        for t in tables:
            folder = t.stream.split(":", 1)[1]
            if folder != ".":
                t.tags = [f"{folder}/{tag}" if tag in shared else tag for tag in t.tags]
    return tables, skipped


def _read_one(path: Path, fmt: str, root: Path) -> tuple[list, dict]:
    """Read one non-TensorBoard log; return (tables, config found in it)."""
    source = _rel(path, root)
    if fmt == "csv":
        from trainfix.diagnostics.ingest.csvlog import read_csv

        return [read_csv(path, source)], {}
    if fmt == "jsonl":
        from trainfix.diagnostics.ingest.jsonlog import read_jsonl

        return [read_jsonl(path, source)], {}
    if fmt == "trainer_state":
        from trainfix.diagnostics.ingest.jsonlog import read_trainer_state

        table, cfg = read_trainer_state(path, source)
        return [table], cfg
    if fmt == "text":
        from trainfix.diagnostics.ingest.text import read_text

        return [read_text(path, source, resolve=True)], {}
    if fmt == "ultralytics":
        from trainfix.diagnostics.ingest.ultralytics import read_ultralytics

        return [read_ultralytics(path, source)], {}
    if fmt == "history":
        from trainfix.diagnostics.ingest.history import read_history

        return [read_history(path, source)], {}
    if fmt == "table":
        from trainfix.diagnostics.ingest.whitespace import read_table

        return [read_table(path, source)], {}
    if fmt == "mlflow":
        from trainfix.diagnostics.ingest.mlflow import read_metric

        return [read_metric(path, source)], {}
    raise ValueError(f"unknown format {fmt}")




# --- the steps of one read, in order ----------------------------------------------------------------


@dataclass
class _Tally:
    """The points of the non-empty tables (gathered as each is read: a table is let go once
    counted), and what ``Run.inputs`` says about the files they came from."""

    kept: Any = None  # a table.Collected
    files: list[dict] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    corrupt: int = 0
    truncated: list[str] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    empty: list[dict] = field(default_factory=list)  # skipped entries of the tables with no points

    def add(self, t: Any) -> None:
        """Count what table ``t`` holds and take its points; an empty one becomes a skipped input
        with its reason."""
        self.corrupt += t.corrupt_records
        if t.truncated:
            self.truncated.append(t.source)
        for note in t.notes:
            self.notes.append(f"{t.source}: {note}")
        if not len(t):
            why = "no scalar values in it" if t.fmt == "tensorboard" else "no metric values recognised in it"
            self.empty.append({"path": t.source, "reason": f"{t.fmt}: {why}"})
            return
        self.formats[t.fmt] += 1
        points = len(t) if t.raw_points is None else t.raw_points
        self.files.append({"path": t.source, "format": t.fmt, "points": points, "tags": len(set(t.tags))})
        for tag, unit in t.units.items():
            self.units[tag] = unit
        self.kept.add(t)


@dataclass
class _Logs:
    """What the log readers returned, before the table is assembled."""

    tally: _Tally
    skipped: list[dict] = field(default_factory=list)
    config: dict = field(default_factory=dict)  # configs found inside logs (trainer_state.json)
    mlflow_runs: set[Path] = field(default_factory=set)


def _scan_for_logs(p: Path) -> Inputs:
    """The inputs ``p`` holds; InputError for an empty directory or one without logs."""
    if p.is_dir() and not any(p.iterdir()):
        raise InputError(f"{p} is an empty directory", "point trainfix at the directory your training run wrote")
    found = scan(p)
    if not found.logs:
        extra = []
        if found.checkpoints:
            extra.append(f"found {len(found.checkpoints)} checkpoint(s) but no logs: use 'trainfix inspect' for them")
        raise InputError(
            f"no training logs found in {p}",
            "looked for: " + "; ".join(PATTERNS_LOOKED_FOR),
            details=extra + [s["path"] + ": " + s["reason"] for s in found.skipped],
        )
    return found


def _read_logs(found: Inputs, root: Path) -> _Logs:
    """Every log read by its format's reader (TensorBoard files together, for their tag prefixes),
    each table tallied as soon as it is read (a run of 50,000 small logs keeps no table objects)."""
    from trainfix.diagnostics.ingest.collected import Collected
    from trainfix.diagnostics.ingest.configs import deep_merge

    logs = _Logs(_Tally(Collected()), skipped=list(found.skipped))
    tb_files = [Path(f) for f, fmt in found.logs if fmt == "tensorboard"]
    if tb_files:
        tb_tables, tb_skipped = _read_tensorboard(tb_files, root)
        for t in tb_tables:
            logs.tally.add(t)
        logs.skipped.extend(tb_skipped)
    for name, fmt in found.logs:
        if fmt == "tensorboard":
            continue
        f = Path(name)
        result, skip = read_isolated(fmt, f, root, lambda: _read_one(f, fmt, root))
        if skip is not None:  # one bad file must not stop the others; say why it was skipped
            logs.skipped.append(skip)
            continue
        got, cfg = result
        for t in got:
            logs.tally.add(t)
        logs.config = deep_merge(logs.config, cfg)
        if fmt == "mlflow":
            from trainfix.diagnostics.ingest.mlflow import metrics_dir

            logs.mlflow_runs.add(metrics_dir(f).parent)
    logs.skipped.extend(logs.tally.empty)  # after the files that could not be read, as listed before
    return logs


def _run_config(root: Path, found: Inputs, logs: _Logs,
                user_config: tuple[Path, dict] | None) -> tuple[dict, list[Path], dict | None]:
    """(config, the files it came from, trainfix's own config or None): the run dir's configs,
    under what the logs held, under ``--train-config``; MLflow params below everything."""
    from trainfix.diagnostics.ingest.configs import deep_merge, merge_configs
    from trainfix.values import is_trainfix_config

    config, config_files, cfg_skipped, own_config = merge_configs(root, found.configs)
    logs.skipped.extend({"path": _rel(Path(s["path"]), root), "reason": s["reason"]} for s in cfg_skipped)
    if logs.config:
        config = deep_merge(logs.config, config)
    if user_config is not None:
        config = deep_merge(config, user_config[1])
        config_files = list(config_files) + [user_config[0]]
        if own_config is None and is_trainfix_config(user_config[1]):
            own_config = user_config[1]
    if logs.mlflow_runs:
        from trainfix.diagnostics.ingest.mlflow import read_params

        for run_dir in sorted(logs.mlflow_runs):
            params = read_params(run_dir)
            if params:
                config = deep_merge({"params": params}, config)
    return config, config_files, own_config


def _roles(scalars: Any, config: dict, metric_overrides: dict[str, str] | None, settings: Any):
    """(points per tag, sorted tags, roles) of the assembled table."""
    from trainfix.diagnostics.roles import resolve_roles

    counts = {str(k): int(v) for k, v in scalars["tag"].value_counts(sort=False).items()}
    tags = sorted(counts)
    levels = None
    if config:  # the config may settle roles by the terms' levels (a raw term above the total loss)
        levels = {str(k): float(v) for k, v in scalars["value"].abs().groupby(scalars["tag"]).median().items()}
    roles = resolve_roles(tags, metric_overrides, getattr(settings, "metrics", None), counts=counts,
                          config=config, levels=levels)
    return counts, tags, roles


def _checkpoint_refs(found: Inputs) -> list[CheckpointRef]:
    """The checkpoints found, with their sizes (-1 when unreadable); none is opened."""
    for listed in found.checkpoints + found.configs:  # inputs of the run even where nothing opens them
        safe_read.note_read(listed)
    refs = []
    for c in found.checkpoints:
        try:
            size = c.stat().st_size
        except OSError:
            size = -1
        refs.append(CheckpointRef(c, size))
    return refs


def _read_run(p: Path, metric_overrides: dict[str, str] | None, settings: Any,
              user_config: tuple[Path, dict] | None = None) -> Run:
    from trainfix.diagnostics.ingest.attempts import describe as describe_attempts
    from trainfix.diagnostics.ingest.table import assemble

    root = p if p.is_dir() else p.parent
    found = _scan_for_logs(p)
    logs = _read_logs(found, root)
    tally = logs.tally
    if not len(tally.kept):
        raise InputError(
            f"found {len(found.logs)} log file(s) in {p} but no metric values in them",
            "is the run still starting? trainfix reads scalars (TensorBoard scalars, CSV/JSON numbers, metric lines)",
            details=[s["path"] + ": " + s["reason"] for s in logs.skipped],
        )
    scalars, facts = assemble(tally.kept)
    tally.kept = None  # assemble took the points

    config, config_files, own_config = _run_config(root, found, logs, user_config)
    counts, tags, roles = _roles(scalars, config, metric_overrides, settings)
    notes = tally.notes + [describe_attempts(a) for a in facts["attempts"]]
    runs_here = find_runs(p) if p.is_dir() else [p]
    if len(runs_here) > 1:
        notes.append(f"{p} holds {len(runs_here)} separate runs; they were read together "
                     f"(read each: {', '.join(_rel(r, root) for r in runs_here[:5])}{'...' if len(runs_here) > 5 else ''})")
    inputs: dict[str, Any] = {
        "formats": dict(sorted(tally.formats.items())),
        "files": tally.files,
        "tags": tags,
        "points": int(len(scalars)),
        "points_per_tag": counts,
        "checkpoints": [_rel(c, root) for c in found.checkpoints],
        "configs": [_rel(c, root) for c in config_files],
        "restarts": facts["restarts"],
        "duplicates": facts["duplicates"],
        "appended_runs": facts["attempts"],
        "skipped": logs.skipped,
        "corrupt_records": tally.corrupt,
        "truncated": tally.truncated,
        "units": tally.units,
        "notes": notes,
        "runs_found": len(runs_here),
    }
    dataset = _read_dataset_summary(root)
    if dataset is not None:
        inputs["dataset"] = dataset
    return Run(path=p, scalars=scalars, config=config, config_files=config_files, checkpoints=_checkpoint_refs(found),
               roles=roles, inputs=inputs, own_config=own_config)
