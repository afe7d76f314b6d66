"""A Keras CSVLogger file written in text mode on Windows ends its rows with \\r\\r\\n (a real one:
benchmarks/real-logs/keras-169, provenance in corpus.csv); it is still a CSV log."""

from __future__ import annotations

from pathlib import Path

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify
from trainfix.diagnostics.settings import Settings

REAL = Path(__file__).resolve().parents[1] / "benchmarks" / "real-logs" / "keras-169" / "training.log"


def test_crcrlf_csv_is_read_as_csv():
    assert b"\r\r\n" in REAL.read_bytes()
    assert classify(REAL) == "csv"
    run = read_run(REAL.parent, settings=Settings())
    loss = run.scalars[run.scalars.tag == "val_loss"]
    assert loss.step.tolist() == [0, 1, 2, 3]
    assert abs(loss.value.iloc[0] - 1.001305103302002) < 1e-12
    assert run.roles.tag("val_loss") == "val_loss"
