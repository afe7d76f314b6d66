"""From paths to a :class:`~trainfix.diagnostics.report.Report`: find the runs under each path, read
each (:func:`trainfix.diagnostics.ingest.read_run`), diagnose each (:func:`trainfix.diagnostics.engine.diagnose`).

The engine itself only judges a :class:`~trainfix.diagnostics.run.Run` it is given; this module is
what the commands call with what the user typed (paths, ``[tool.trainfix]`` settings, ``--select``,
``--param``, ``--metric``, ``--train-config``).
"""

from __future__ import annotations

import dataclasses

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from trainfix.diagnostics import engine
from trainfix.diagnostics.report import Report
from trainfix.errors import InputError

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


def diagnose_paths(
    paths: Iterable[str | Path],
    *,
    metric_overrides: Mapping[str, str] | None = None,
    settings: Any = None,
    select: Iterable[str] | None = None,
    ignore: Iterable[str] | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    detectors: Mapping[str, type] | None = None,
    model_builder: Any = None,
    train_config: str | Path | None = None,
    jobs: int = 1,
    shard: tuple[int, int] | None = None,
    progress: Any = None,
) -> Report:
    """Read every run under ``paths`` (a directory may hold several runs) and diagnose each.

    ``jobs`` worker processes diagnose the runs (:mod:`~trainfix.diagnostics.parallel`; the
    report keeps the order the runs were found in); ``shard=(K, N)`` keeps only the K-th of N
    interleaved shares of them; ``progress(done, total)`` is called as runs finish.

    ``train_config`` is the user's training config outside the run dirs (``--train-config``),
    read with every run.

    ``model_builder`` (config dict -> :class:`~trainfix.diagnostics.run.ExpectedModel`) lets
    checkpoint detectors compare checkpoints with the model a run's trainfix config builds; the
    commands pass :func:`trainfix.trainers.build.expected_model` (registered components only).
    Without it that comparison is skipped: diagnostics never builds models on its own.

    Settings (``[tool.trainfix]``) supply role overrides, parameter overrides and select/ignore;
    explicit arguments win: ``metric_overrides`` and ``params`` are merged over the settings',
    ``select`` replaces the settings' select, ``ignore`` adds to the settings' ignore.
    """
    s_metrics = dict(getattr(settings, "metrics", None) or {})
    s_params = {k: dict(v) for k, v in (getattr(settings, "detectors", None) or {}).items()}
    merged_params = s_params
    for name, kv in (params or {}).items():
        merged_params.setdefault(name, {}).update(kv)
    sel = list(select or []) or list(getattr(settings, "select", None) or [])
    ign = list(getattr(settings, "ignore", None) or []) + list(ignore or [])
    metrics = {**s_metrics, **dict(metric_overrides or {})}

    engine.check_options(detectors, sel, ign, merged_params)  # a typo fails before any reading

    from trainfix.diagnostics.parallel import map_ordered, take_shard

    run_paths = take_shard([r for path in paths for r in _find_runs(Path(path))], shard)
    job = _RunJob(metrics or None, settings, train_config, model_builder, sel, ign, merged_params, detectors)
    return Report(map_ordered(job, run_paths, jobs=jobs, progress=progress))


@dataclasses.dataclass
class _RunJob:
    """Read and diagnose one run (a picklable callable, so worker processes can run it)."""

    metric_overrides: Mapping[str, str] | None
    settings: Any
    train_config: str | Path | None
    model_builder: Any
    select: list[str]
    ignore: list[str]
    params: Mapping[str, Mapping[str, Any]]
    detectors: Mapping[str, type] | None

    def __call__(self, run_path: Path):
        run = _read_run(run_path, metric_overrides=self.metric_overrides, settings=self.settings,
                        train_config=self.train_config)
        run.model_builder = self.model_builder
        return engine.diagnose(run, select=self.select, ignore=self.ignore, params=self.params,
                               detectors=self.detectors)


def _find_runs(path: Path) -> list[Path]:
    if not path.exists():
        raise InputError(f"no such file or directory: {path}", "pass a run directory or a log file")
    if path.is_file():
        return [path]
    from trainfix.diagnostics.ingest import find_runs

    runs = list(find_runs(path))
    return runs or [path]


def _read_run(path: Path, *, metric_overrides: Mapping[str, str] | None, settings: Any,
              train_config: str | Path | None = None) -> "Run":
    from trainfix.diagnostics.ingest import read_run

    return read_run(path, metric_overrides=dict(metric_overrides) if metric_overrides else None,
                    settings=settings, train_config=train_config)
