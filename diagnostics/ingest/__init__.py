"""Ingest: a run directory (or one log file) -> :class:`~trainfix.diagnostics.run.Run`.

:func:`read_run` (in :mod:`~trainfix.diagnostics.ingest.run_reader`) walks the directory (``discover``), reads every log with its format's reader
(``tensorboard``, ``csvlog``, ``jsonlog``, ``text``, ``mlflow``), assembles one long table
(``table``: resumed runs resolved, duplicates across formats removed), merges the configs
(``configs``), lists checkpoints without loading them, and resolves metric roles (``roles``).
Inputs are never modified.  Nothing here imports torch.

Hostile inputs: every file is opened through :mod:`~trainfix.diagnostics.ingest.safe_read` (regular
files only, a size and time budget each, bounded lines), and every reader and config loader runs
isolated (:func:`read_isolated`): whatever it raises skips that one file with its reason in
``inputs["skipped"]``, and the run is read from the rest.

TensorBoard tags: event files in different folders of one run that log the *same* tag (Keras
writes ``train/`` and ``validation/`` folders, both with ``epoch_loss``) get the folder as a prefix
(``validation/epoch_loss``); other tags keep their names.
"""

from __future__ import annotations

from trainfix.diagnostics.ingest.discover import find_runs
from trainfix.diagnostics.ingest.run_reader import ingest_budget, read_isolated, read_run

__all__ = ["read_run", "find_runs", "ingest_budget", "read_isolated"]
