"""Ultralytics YOLO11 console output saved to a file (benchmarks/real-logs/txt-075, provenance in
corpus.csv): progress rows and validation rows become per-epoch series; the argument dump and the
hyperparameters printed before training are not metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify
from trainfix.diagnostics.ingest.ultralytics import looks_like_ultralytics
from trainfix.diagnostics.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "real-logs"
REAL = CORPUS / "txt-075" / "training.log"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _last_row_of_epoch(epoch: int) -> list[str]:
    rows = []
    for part in REAL.read_bytes().decode("utf-8", "replace").replace("\r", "\n").splitlines():
        fields = ANSI.sub("", part).split()
        if fields and fields[0] == f"{epoch}/500":
            rows.append(fields)
    return rows[-1]


@pytest.mark.parametrize("name", ["txt-26", "txt-29", "txt-28", "keras-14"])
def test_other_text_logs_are_not_taken_for_it(name):
    (path,) = [p for p in (CORPUS / name).iterdir() if p.is_file()]
    assert not looks_like_ultralytics(path)
