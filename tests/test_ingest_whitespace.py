"""Whitespace tables: YOLOv5/YOLOv7 results.txt as the real repositories hold them (benchmarks/
real-logs, provenance in corpus.csv), and header tables; neither is mistaken for a stdout log."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify
from trainfix.diagnostics.ingest.whitespace import looks_like_table, read_table
from trainfix.diagnostics.settings import Settings

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "real-logs"


def _series(table, tag):
    code = table.tags.index(tag)
    keep = table.codes == code
    return table.steps[keep], table.values[keep]





def test_a_header_table_with_tabs_and_spaces(tmp_path):
    path = tmp_path / "train_log.txt"
    path.write_text("epoch\ttrain_loss\tval_loss   val_acc\n"
                    "1\t0.91\t0.95   0.61\n2\t0.62\t0.70   0.72\n3\t0.48\t0.66   0.75\n")
    assert classify(path) == "table"
    t = read_table(path, path.name)
    steps, vals = _series(t, "val_acc")
    assert list(steps) == [1, 2, 3] and list(vals) == [0.61, 0.72, 0.75]
    assert "epoch" not in t.tags


@pytest.mark.parametrize("name", ["txt-26", "txt-28", "txt-29", "keras-14"])
def test_real_logs_of_other_shapes_are_not_tables(name):
    (path,) = [p for p in (CORPUS / name).iterdir() if p.is_file()]
    assert classify(path) != "table"
    assert not looks_like_table(path.read_bytes()[:4096])


