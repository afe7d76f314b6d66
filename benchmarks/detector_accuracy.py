"""Detector accuracy on a labelled synthetic corpus: recall, precision, healthy-run quietness and how
early each detector fires.

Run:  python benchmarks/detector_accuracy.py [--seeds 3] [--healthy-seeds 4] [--formats] [--json FILE]

The corpus (``benchmarks/synthetic_runs.py``, :func:`corpus`) holds every pathology at two to four strengths
for each seed, and healthy runs of 25 shapes (fast and slow convergence, noisy small-batch curves,
step/cosine/one-cycle schedules, warmup, warm restarts, fine-tunes near their optimum, noisy LM
fine-tunes without a metric, percentage accuracies over 100 classes, per-step-only logs, near-zero
losses, isolated loss spikes, a wild early validation loss, early-training dips in detection
metrics, tiny validation sets, multi-task, attention, two-stage sparse, MIL with soft selection).
Each run is diagnosed by ``trainfix.diagnostics.engine.diagnose``
(all detectors, default thresholds).  A finding counts when its severity is warning or error.

Printed figures:

* per detector: recall over the runs that must trigger it (all strengths, and at the strengths the
  seed stories describe), precision (a firing on a run that neither expects nor allows it is a false
  positive), and the recall on the first 30% of each run (``run.truncated(0.3)``);
* the share of healthy runs with any warning or error, on whole runs and on their first 30%;
* with ``--formats``: a few corpus runs written as CSV, JSONL and TensorBoard event files and read
  back through ``trainfix.diagnostics.ingest.read_run``, with the findings compared to in-memory.

Goals (issue 3): recall >= 0.95 at seed strengths, precision >= 0.95, healthy flagged <= 2%.
Exit status is 0 when the goals are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import synthetic_runs as synthetic
from trainfix.diagnostics.finding import Severity

GOAL_RECALL = 0.95
GOAL_PRECISION = 0.95
GOAL_HEALTHY = 0.02


def fired(run: Any) -> tuple[set[str], list[str]]:
    """Detector names with a warning/error finding on ``run``, and internal errors."""
    from trainfix.diagnostics.engine import diagnose

    report = diagnose(run)
    names = {f.detector for f in report.findings if Severity(f.severity) >= Severity.WARNING}
    errors = [f"{e.detector}: {e.message}" for e in report.errors]
    return names, errors


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def fmt(x: float | None) -> str:
    return "   -" if x is None else f"{x:4.2f}"


def evaluate(corpus: list[synthetic.LabelledRun], early_fraction: float = 0.3) -> dict[str, Any]:
    det = defaultdict(lambda: {"tp": 0, "fn": 0, "fp": 0, "tp_seed": 0, "fn_seed": 0,
                               "early_tp": 0, "early_n": 0, "early_should": False})
    healthy_flagged = healthy_early_flagged = healthy_n = 0
    misses: list[str] = []
    false_pos: list[str] = []
    internal: list[str] = []
    healthy_hits: list[str] = []
    healthy_early_hits: list[str] = []
    for item in corpus:
        names, errors = fired(item.run)
        early_names, early_errors = fired(item.run.truncated(early_fraction))
        internal += [f"{item.name}: {e}" for e in errors + early_errors]
        if item.label == "healthy":
            healthy_n += 1
            if names:
                healthy_flagged += 1
                healthy_hits.append(f"{item.name}: {sorted(names)}")
            if early_names:
                healthy_early_flagged += 1
                healthy_early_hits.append(f"{item.name} (first {early_fraction:.0%}): {sorted(early_names)}")
        for name in item.expected:
            d = det[name]
            hit = name in names
            d["tp" if hit else "fn"] += 1
            if not item.below_seed:
                d["tp_seed" if hit else "fn_seed"] += 1
            if not hit:
                misses.append(f"{item.name}: {name}")
            d["early_n"] += 1
            d["early_tp"] += name in early_names
            d["early_should"] |= name in item.early
        for name in names - item.expected - item.allowed:
            det[name]["fp"] += 1
            false_pos.append(f"{item.name}: {name}")
    return {
        "detectors": {k: dict(v) for k, v in det.items()},
        "healthy_runs": healthy_n,
        "healthy_flagged": healthy_flagged,
        "healthy_early_flagged": healthy_early_flagged,
        "misses": misses,
        "false_positives": false_pos,
        "healthy_hits": healthy_hits,
        "healthy_early_hits": healthy_early_hits,
        "internal_errors": internal,
    }


def check_formats(corpus: list[synthetic.LabelledRun], limit: int = 6) -> list[str]:
    """Write some runs as CSV/JSONL/TensorBoard, read them back, compare the detectors that fire."""
    from trainfix.diagnostics.ingest import read_run

    lines = []
    picks = [c for c in corpus if c.label != "healthy"][::max(1, len(corpus) // (limit * 3))][:limit]
    with tempfile.TemporaryDirectory() as tmp:
        for i, item in enumerate(picks):
            fmt_name = ("csv", "jsonl", "tb")[i % 3]
            d = Path(tmp) / f"{i:02d}-{fmt_name}"
            d.mkdir()
            _write(item.run, d, fmt_name)
            try:
                back = read_run(d)
            except Exception as exc:  # report, do not stop the benchmark
                lines.append(f"{item.name} as {fmt_name}: read failed: {type(exc).__name__}: {exc}")
                continue
            a, _ = fired(item.run)
            b, _ = fired(back)
            same = "same findings" if a == b else f"DIFFERENT: memory {sorted(a)} vs file {sorted(b)}"
            lines.append(f"{item.name} as {fmt_name}: {same}")
    return lines


def _write(run: Any, directory: Path, fmt_name: str) -> None:
    import yaml

    df = run.scalars
    (directory / "config.yaml").write_text(yaml.safe_dump(run.config, sort_keys=False))
    if fmt_name == "csv":  # wide table, one row per step (the Lightning shape): empty = not logged,
        # "nan"/"inf" = logged non-finite
        text = df.assign(text=[repr(float(v)) for v in df["value"]])
        wide = text.pivot(index="step", columns="tag", values="text").fillna("")
        wide.index = wide.index.astype(int)
        wide.reset_index().to_csv(directory / "metrics.csv", index=False)
    elif fmt_name == "jsonl":  # trainfix's own metrics.jsonl: one record per step, NaN/Infinity kept
        with open(directory / "metrics.jsonl", "w") as fh:
            for step, rows in df.groupby("step", sort=True):
                rec = {"step": int(step)}
                rec.update({t: float(v) for t, v in zip(rows["tag"], rows["value"])})
                fh.write(json.dumps(rec, allow_nan=True) + "\n")
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        from torch.utils.tensorboard import SummaryWriter

        w = SummaryWriter(str(directory))
        for tag, step, value in zip(df["tag"], df["step"], df["value"]):
            w.add_scalar(tag, float(value), int(step))
        w.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="seeds per pathology and strength (3)")
    ap.add_argument("--healthy-seeds", type=int, default=4, help="seeds per healthy shape (4)")
    ap.add_argument("--formats", action="store_true", help="also round-trip a few runs through files")
    ap.add_argument("--json", type=Path, help="write the raw figures as JSON here")
    ap.add_argument("--verbose", "-v", action="store_true", help="list misses and false positives")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    corpus = synthetic.corpus(tuple(range(args.seeds)), tuple(range(args.healthy_seeds)))
    n_path = sum(c.label != "healthy" for c in corpus)
    print(f"corpus: {len(corpus)} runs ({n_path} pathological over {len(synthetic.PATHOLOGIES)} "
          f"pathologies, {len(corpus) - n_path} healthy over {len(synthetic.HEALTHY)} shapes)")
    res = evaluate(corpus)
    dt = time.perf_counter() - t0

    print(f"\n{'detector':30s} {'recall':>6s} {'@seed':>6s} {'prec':>6s} {'first30%':>8s}  tp/fn/fp")
    ok = True
    for name in sorted(res["detectors"]):
        d = res["detectors"][name]
        rec = ratio(d["tp"], d["tp"] + d["fn"])
        rec_seed = ratio(d["tp_seed"], d["tp_seed"] + d["fn_seed"])
        prec = ratio(d["tp"], d["tp"] + d["fp"])
        early = ratio(d["early_tp"], d["early_n"])
        mark = " (should fire early)" if d["early_should"] else ""
        print(f"{name:30s} {fmt(rec):>6s} {fmt(rec_seed):>6s} {fmt(prec):>6s} {fmt(early):>8s}  "
              f"{d['tp']}/{d['fn']}/{d['fp']}{mark}")
        if rec_seed is not None and rec_seed < GOAL_RECALL:
            ok = False
        if prec is not None and prec < GOAL_PRECISION:
            ok = False
        if d["early_should"] and (early or 0.0) < GOAL_RECALL:
            ok = False
    hn = res["healthy_runs"]
    share = res["healthy_flagged"] / hn if hn else 0.0
    share_early = res["healthy_early_flagged"] / hn if hn else 0.0
    print(f"\nhealthy runs flagged (warning or error): {res['healthy_flagged']}/{hn} = {share:.1%} "
          f"(goal <= {GOAL_HEALTHY:.0%}); on their first 30%: {res['healthy_early_flagged']}/{hn} = "
          f"{share_early:.1%}")
    if share > GOAL_HEALTHY:
        ok = False
    if res["internal_errors"]:
        ok = False
        print(f"internal errors: {len(res['internal_errors'])}")
        for line in res["internal_errors"][:10]:
            print("  " + line)
    if args.verbose or not ok:
        for title, key in (("misses", "misses"), ("false positives", "false_positives"),
                           ("healthy runs flagged", "healthy_hits"),
                           ("healthy runs flagged on their first 30%", "healthy_early_hits")):
            if res[key]:
                print(f"\n{title}:")
                for line in res[key]:
                    print("  " + line)
    if args.formats:
        print("\nfile round-trip:")
        for line in check_formats(corpus):
            print("  " + line)
    print(f"\n{len(corpus)} runs x 2 (whole and first 30%) diagnosed in {dt:.1f} s; goals "
          f"{'met' if ok else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
