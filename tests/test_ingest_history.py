"""Per-epoch JSON histories (Keras ``History.history`` dumped with json), read from a real file
(benchmarks/real-logs/json-084, provenance in corpus.csv); JSON configs stay configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainfix.diagnostics.ingest import read_run
from trainfix.diagnostics.ingest.discover import classify
from trainfix.diagnostics.ingest.history import read_history
from trainfix.diagnostics.settings import Settings

REAL = Path(__file__).resolve().parents[1] / "benchmarks" / "real-logs" / "json-084" / "history_metrics.json"


def test_steps_from_an_epoch_list_and_nulls_skipped(tmp_path):
    path = tmp_path / "training_history.json"
    path.write_text(json.dumps({"history": {"epoch": [1, 2, 3], "loss": [0.9, 0.5, 0.4],
                                            "val_acc": [None, 0.7, 0.8], "model": "resnet"}}))
    assert classify(path) == "history"
    t = read_history(path, path.name)
    assert set(t.tags) == {"loss", "val_acc"}
    code = t.tags.index("val_acc")
    assert list(t.steps[t.codes == code]) == [2, 3]


@pytest.mark.parametrize("doc", [{"lr": 0.1, "layers": [64, 128]}, {"history_len": 3, "name": "x"}])
def test_configs_named_history_stay_configs(tmp_path, doc):
    path = tmp_path / "history_config.json"
    path.write_text(json.dumps(doc))
    assert classify(path) == "config"
