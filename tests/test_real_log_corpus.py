"""The labelled real-log corpus (benchmarks/real-logs): its provenance table is true to the bytes,
its split is the one the ids fix, and every run in it is read.

The corpus is what detector thresholds are judged on (benchmarks/real_logs.py), so a file that
silently stops being read, or a copy that no longer matches the blob its row names, would make
the figures lie.  Reading every run (no detectors) takes a few seconds.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "benchmarks" / "real-logs"
TABLE = CORPUS / "corpus.csv"


def _bench():
    spec = importlib.util.spec_from_file_location("real_logs_benchmark", ROOT / "benchmarks" / "real_logs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _rows() -> list[dict[str, str]]:
    with open(TABLE, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# The repository keeps the labelled table for every run, and the bytes of the runs that reached us
# through the shared real-log set; the other runs' bytes are fetched by whoever runs the benchmark
# (benchmarks/real-logs/README.md) into the same folders, which git ignores.
SHARED_IDS = {"csv-00", "csv-01", *(f"hf-0{i}" for i in range(2, 9)), *(f"jsonl-{i:02d}" for i in range(9, 14)),
              *(f"keras-{i}" for i in range(14, 18)), *(f"pl-{i}" for i in range(18, 22)),
              *(f"tfev-{i}" for i in range(22, 26)), *(f"txt-{i}" for i in range(26, 30))}


def _present(row: dict[str, str]) -> bool:
    return (CORPUS / row["id"] / row["file"]).is_file()


def test_every_present_file_matches_its_row_and_the_shared_runs_are_present():
    rows = _rows()
    assert {r["id"] for r in rows if _present(r)} >= SHARED_IDS
    for row in rows:
        assert len(row["commit"]) == 40 and len(row["blob"]) == 40, row["id"]
        assert row["repo"].count("/") == 1 and row["path"] and row["reason"], row["id"]
        if not _present(row):
            continue
        data = (CORPUS / row["id"] / row["file"]).read_bytes()
        if row["cut_to"]:
            assert len(data) == int(row["cut_to"]) < int(row["bytes"]), row["id"]
        else:
            assert len(data) == int(row["bytes"]), row["id"]
            assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == row["blob"], row["id"]


def test_every_folder_present_is_a_row_with_exactly_its_files():
    ids = {r["id"] for r in _rows()}
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders <= ids
    for rid in folders:
        listed = {r["file"] for r in _rows() if r["id"] == rid}
        present = {p.relative_to(CORPUS / rid).as_posix() for p in (CORPUS / rid).rglob("*") if p.is_file()}
        assert present <= listed, rid


def test_split_and_labels_are_checked_by_the_benchmark():
    bench = _bench()
    runs = bench.load_corpus()  # raises on a split or label that does not fit
    assert {"heldout", "calibration"} <= {r["split"] for r in runs} <= {"heldout", "calibration", "fresh"}
    assert all((r["split"] == "fresh") == r["id"].startswith("fresh-") for r in runs)
    healthy = sum(r["labels"] == ["healthy"] for r in runs)
    assert healthy >= len(runs) / 3


def test_every_run_is_read():
    from trainfix.diagnostics.pipeline import _find_runs
    from trainfix.diagnostics.ingest import read_run
    from trainfix.diagnostics.settings import Settings

    unread = {}
    for folder in sorted(p for p in CORPUS.iterdir() if p.is_dir()):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                points = sum(read_run(r, settings=Settings()).inputs["points"] for r in _find_runs(folder))
        except Exception as exc:  # the assertion below names every run that failed
            unread[folder.name] = f"{type(exc).__name__}: {exc}"
            continue
        if not points:
            unread[folder.name] = "no scalars"
    assert not unread, unread


def test_benchmark_scores_a_few_runs(tmp_path):
    import json

    bench = _bench()
    out = tmp_path / "scores.json"
    bench.main(["--runs", "pl-19", "keras-17", "txt-26", "--json", str(out), "-q"])
    doc = json.loads(out.read_text())
    by_id = {r["id"]: r for r in doc["runs"]}
    assert set(by_id) == {"pl-19", "keras-17", "txt-26"}
    assert by_id["pl-19"]["caught"] == {"nonfinite": True}
    assert "nonfinite-loss" in by_id["pl-19"]["fired"]
    assert by_id["keras-17"]["label"] == "ambiguous"
    assert doc["scores"]["all"]["runs"] == 3
    assert doc["scores"]["all"]["unread"] == 0


@pytest.mark.parametrize(("column", "value", "refusal"), [("label", "nonsense", "unknown label"),
                                                          ("split", "moved", "its id puts it in")])
def test_a_bad_row_is_refused(tmp_path, column, value, refusal):
    bench = _bench()
    table = tmp_path / "corpus.csv"
    rows = _rows()[:1]
    rows[0][column] = value
    with open(table, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(SystemExit, match=refusal):
        bench.load_corpus(table)
