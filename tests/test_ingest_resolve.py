"""Restarts settled while a text log is read (resolve.py) give what assembly gives from every point.

The text reader can keep every point in file order (``resolve=False``) or only those that survive
(``resolve=True``, what ``read_run`` uses).  Assembled, the two must be the same frame and the same
facts (restarts, appended runs), on logs that restart, repeat steps, append runs from scratch
(the longest kept, not only the last), and log some tags in some lines only.
"""

from __future__ import annotations

import random
import tracemalloc

import pytest

from trainfix.diagnostics.ingest import resolve
from trainfix.diagnostics.ingest.table import assemble
from trainfix.diagnostics.ingest.text import read_text


def _log(rng: random.Random) -> str:
    tags = ["loss", "acc", "lr"][: rng.randint(1, 3)]
    ragged = rng.random() < 0.3
    lines = []
    for _ in range(rng.randint(1, 5)):  # runs appended one after another
        step = rng.choice([0, 1, 1, 2, 5])
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.1:
                pass  # the same step again
            elif r < 0.2:
                step = max(0, step - rng.randint(1, 4))  # resumed from an earlier step
            else:
                step += rng.randint(1, 3)
            for tag in tags:
                if not (ragged and rng.random() < 0.3):
                    lines.append(f"step {step} {tag}: {rng.random():.4f}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("saved", [resolve.SAVED_POINTS, 3, 0])
def test_resolving_while_reading_assembles_to_what_every_point_assembles_to(tmp_path, monkeypatch, saved):
    # saved=0: no finished attempt is kept, so an earlier longest run is read a second time
    monkeypatch.setattr(resolve, "SAVED_POINTS", saved)
    rng = random.Random(saved)
    path = tmp_path / "train.log"
    seen = {"appended": 0, "earlier kept": 0, "restarts": 0}
    for _ in range(300):
        path.write_text(_log(rng))
        raw = read_text(path, "train.log")
        res = read_text(path, "train.log", resolve=True)
        assert res.raw_points == len(raw)
        frame_raw, info_raw = assemble([raw])
        frame_res, info_res = assemble([res])
        assert frame_res.equals(frame_raw) and list(frame_res.dtypes) == list(frame_raw.dtypes)
        assert info_res == info_raw
        seen["appended"] += bool(info_raw["attempts"])
        seen["earlier kept"] += any(a["kept"] < a["attempts"] for a in info_raw["attempts"])
        seen["restarts"] += bool(info_raw["restarts"])
    assert min(seen.values()) >= 20, seen  # the cases that matter were all met


def test_a_long_log_of_appended_runs_holds_the_surviving_points_not_every_point(tmp_path, monkeypatch):
    """200 runs of 500 epochs appended to one log: 200,000 points read, 1,000 survive.  Finished
    runs are kept up to a fixed number of points (SAVED_POINTS, lowered here to fit the file)."""
    monkeypatch.setattr(resolve, "SAVED_POINTS", 10_000)
    chunk = "".join(f"Epoch {e}/499: Train Loss: {1 / (e + 1):.4f} | Val Acc: {50 + e % 40:.2f}%\n" for e in range(500))
    path = tmp_path / "train.log"
    path.write_text(chunk * 200)
    tracemalloc.start()
    try:
        table = read_text(path, "train.log", resolve=True)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert table.raw_points == 200_000 and len(table) == 1_000
    assert table.resolved["attempts"] == {"source": "train.log", "attempts": 200, "kept": 200, "points": [1_000] * 200}
    # every point in arrays would be 20 bytes a point, 4 MB; the survivors, the finished runs kept
    # and the bookkeeping of 200 restarts are far below that (the read buffers are about 1 MiB)
    assert peak < 2_500_000, peak


def test_a_second_read_cut_short_skips_the_file_with_the_reason(tmp_path, monkeypatch):
    """A longest run that is not the last, its points not kept: the file is read again for it.
    Should that read stop before the first one did (its time budget), the file is skipped, said
    why, rather than diagnosed from a run read in part."""
    from trainfix.diagnostics.ingest import read_run, text

    monkeypatch.setattr(resolve, "SAVED_POINTS", 0)
    (tmp_path / "train.log").write_text("".join(f"epoch {e} loss: {1 / e:.3f}\n" for e in range(1, 30))
                                        + "".join(f"epoch {e} loss: {1 / e:.3f}\n" for e in range(1, 3)))
    _metrics = tmp_path / "metrics.jsonl"
    _metrics.write_text('{"step": 1, "acc": 0.5}\n')
    assert read_run(tmp_path).inputs["appended_runs"][0]["kept"] == 1  # read again, whole
    parse = text._parse
    calls = []

    def cut_short(path, pts, notes, max_blocks=None):
        calls.append(max_blocks)
        return parse(path, pts, notes, max_blocks) - (max_blocks is not None)

    monkeypatch.setattr(text, "_parse", cut_short)
    run = read_run(tmp_path)
    assert calls == [None, 1]
    (skip,) = run.inputs["skipped"]
    assert skip["path"] == "train.log" and "second time" in skip["reason"]
    assert run.inputs["tags"] == ["acc"]
