"""A Keras CSVLogger file written in text mode on Windows ends its rows with \\r\\r\\n (a real one:
benchmarks/real-logs/keras-169, provenance in corpus.csv); it is still a CSV log."""

from __future__ import annotations

from pathlib import Path

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify
from trainfix.diagnostics.settings import Settings

REAL = Path(__file__).resolve().parents[1] / "benchmarks" / "real-logs" / "keras-169" / "training.log"


