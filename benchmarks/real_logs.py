"""Detector recall and false alarms on real training logs from public repositories.

Run:  python benchmarks/real_logs.py [--json FILE] [--param NAME.KEY=VALUE ...] [--runs ID ...] [-q]

The corpus is ``benchmarks/real-logs/``: one folder per run holding the log files byte for byte as
their repositories have them, and ``corpus.csv`` (one row per file: repository, path, commit, blob
id, format, the run's label and a one-line reason read off its numbers).  See its README.

Each run folder is diagnosed the way ``trainfix diagnose FOLDER`` does it, in process, through
:func:`trainfix.diagnostics.pipeline.diagnose_paths` with default settings (nothing is read from a
``pyproject.toml`` above the corpus) and every detector at its default thresholds unless ``--param``
overrides them.  A finding counts when its severity is warning or error; info findings never do.

**What "caught" means.**  A run's label names a problem kind; ``CATCHES`` below lists, per kind,
the detectors whose firing counts as catching it (a run labelled ``stuck`` is caught by
``loss-plateau`` or ``lr-miscaled``, not by ``overfitting``).  A run with two kinds
(``dead-term+plateau``) is caught when one of its kinds is and counts in the recall of each.  A
``healthy`` run is *flagged* when any detector fires on it: that is a false alarm.  ``ambiguous``
runs are diagnosed and listed but enter no score.  A run is *unread* when reading it fails or
yields no scalars.  A detector that fires on a problem run without being listed for its kind
shows in the confusion table and the per-run list, but does not count as a catch.

**The split.**  Thresholds are tuned on the *calibration* half and judged on the *held-out* half;
a run's half is fixed by its id (``sha256(id)``: even first byte -> calibration, odd ->
held-out), recorded in ``corpus.csv`` and checked here, so a run cannot be moved between halves
by hand.  Figures are printed for the held-out half, the calibration half and the whole corpus.
Runs gathered after the detectors were tuned and labelled before trainfix was ever run on them
form a third, *fresh* split (ids ``fresh-...``): the held-out half has been read while detectors
were fixed, so the fresh split is the one estimate no threshold has seen.

Printed: per label the runs and the recall, the healthy runs flagged (and by what), the unread
runs, a confusion table (label x detector: runs of that label on which it fired), and every
problem run still missed with what did fire.  ``--json FILE`` writes all of it per run
(findings with their evidence and confidence, skips with their reasons) for calibration.

Goals (issue 10), on the held-out half: recall >= 0.90, healthy flagged <= 5%, unread 0.  Exit
status 0 when they are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "real-logs"
TABLE = CORPUS / "corpus.csv"

GOAL_RECALL = 0.90
GOAL_HEALTHY = 0.05

# Problem kind -> detectors whose warning/error counts as catching it.  Keep in step with the
# detector table: a new detector that catches a kind is added here.
CATCHES: dict[str, set[str]] = {
    "divergence": {"loss-divergence", "nonfinite-loss", "lr-miscaled", "accuracy-collapse",
                   "validation-never-improves"},
    "nonfinite": {"nonfinite-loss"},
    "stuck": {"loss-plateau", "lr-miscaled", "accuracy-collapse", "never-learned"},
    "plateau": {"loss-plateau", "never-learned"},
    "overfitting": {"overfitting", "validation-never-improves"},
    "oscillation": {"accuracy-oscillation", "batch-loss-variance"},
    "collapse": {"accuracy-collapse", "loss-divergence"},
    "dead-term": {"aux-loss-dead", "sparsity-gradient-vanishing"},
    "multitask": {"uncertainty-weights-similar", "aux-loss-dead"},
    "mil": {"accuracy-oscillation", "batch-loss-variance", "accuracy-collapse"},
    "sparse": {"sparse-from-start", "sparsity-gradient-vanishing"},
    "class-disparity": {"class-disparity"},
    "memory-growth": {"memory-growth"},
}
HEALTHY = "healthy"
AMBIGUOUS = "ambiguous"
SPLITS = ("heldout", "fresh", "calibration", "all")
SPLIT_TITLES = {"heldout": "held-out", "fresh": "fresh", "calibration": "calibration", "all": "all"}


def split_of(run_id: str) -> str:
    """The fixed split a run belongs to: ``fresh-`` ids are the fresh split; the rest by the first
    byte of sha256(id)."""
    if run_id.startswith("fresh-"):
        return "fresh"
    return "calibration" if hashlib.sha256(run_id.encode()).digest()[0] % 2 == 0 else "heldout"


def load_corpus(table: Path = TABLE) -> list[dict[str, Any]]:
    """One dict per run (id, split, labels, reason, files) from ``corpus.csv``; checks the splits."""
    runs: dict[str, dict[str, Any]] = {}
    with open(table, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            run = runs.setdefault(row["id"], {"id": row["id"], "split": row["split"], "label": row["label"],
                                              "reason": row["reason"], "files": []})
            run["files"].append(row["file"])
    for run in runs.values():
        if run["split"] != split_of(run["id"]):
            raise SystemExit(f"corpus.csv: {run['id']} is recorded in split {run['split']!r}, "
                             f"but its id puts it in {split_of(run['id'])!r}")
        run["labels"] = run["label"].split("+")
        unknown = [lab for lab in run["labels"] if lab not in CATCHES and lab not in (HEALTHY, AMBIGUOUS)]
        if unknown:
            raise SystemExit(f"corpus.csv: {run['id']} has unknown label(s) {unknown}")
    return sorted(runs.values(), key=lambda r: r["id"])


def diagnose_run(folder: Path, params: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Diagnose one corpus folder as ``trainfix diagnose`` does; never raises."""
    from trainfix.diagnostics import pipeline
    from trainfix.diagnostics.finding import Severity
    from trainfix.diagnostics.settings import Settings

    out: dict[str, Any] = {"unread": None, "fired": {}, "info": [], "findings": [], "skipped": [], "errors": [],
                           "points": 0, "formats": {}}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = pipeline.diagnose_paths([folder], settings=Settings(), params=params)
    except Exception as exc:  # an unread run is a result, not a crash of the benchmark
        out["unread"] = f"{type(exc).__name__}: {exc}"
        return out
    for rr in report.runs:
        out["points"] += int(rr.inputs.get("points", 0))
        for fmt, n in (rr.inputs.get("formats") or {}).items():
            out["formats"][fmt] = out["formats"].get(fmt, 0) + n
        for f in rr.findings:
            sev = Severity(f.severity)
            out["findings"].append({"detector": f.detector, "severity": sev.value, "message": f.message,
                                    "evidence": _jsonable(f.evidence), "confidence": f.confidence,
                                    "tags": list(f.tags or [])})
            if sev >= Severity.WARNING:
                prev = out["fired"].get(f.detector)
                if prev is None or Severity(prev) < sev:
                    out["fired"][f.detector] = sev.value
            elif f.detector not in out["info"]:
                out["info"].append(f.detector)
        out["skipped"].extend({"detector": s.detector, "reason": s.reason} for s in rr.skipped)
        out["errors"].extend(f"{e.detector}: {e.message}" for e in rr.errors)
    if not out["points"]:
        out["unread"] = "no scalars read"
    return out


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        if isinstance(value, dict):
            return {str(k): _jsonable(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [_jsonable(v) for v in value]
        try:
            return float(value)
        except (TypeError, ValueError):
            return str(value)


def caught(run: dict[str, Any], fired: set[str]) -> dict[str, bool]:
    """Per problem kind of the run: did a detector that counts for it fire?"""
    return {lab: bool(fired & CATCHES[lab]) for lab in run["labels"] if lab in CATCHES}


def score(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Recall per label and overall, healthy flagged, unread, for the given runs."""
    per_label: dict[str, dict[str, int]] = defaultdict(lambda: {"runs": 0, "caught": 0})
    problems = hits = healthy = flagged = unread = ambiguous = 0
    for r in runs:
        if r["result"]["unread"]:
            unread += 1
        fired = set(r["result"]["fired"])
        if r["labels"] == [AMBIGUOUS]:
            ambiguous += 1
            continue
        if r["labels"] == [HEALTHY]:
            healthy += 1
            flagged += bool(fired)
            continue
        problems += 1
        got = caught(r, fired)
        hits += any(got.values())
        for lab, ok in got.items():
            per_label[lab]["runs"] += 1
            per_label[lab]["caught"] += ok
    return {
        "runs": len(runs), "problem_runs": problems, "caught": hits,
        "recall": hits / problems if problems else None,
        "healthy_runs": healthy, "healthy_flagged": flagged,
        "healthy_flagged_rate": flagged / healthy if healthy else None,
        "ambiguous_runs": ambiguous, "unread": unread,
        "per_label": {k: {**v, "recall": v["caught"] / v["runs"] if v["runs"] else None}
                      for k, v in sorted(per_label.items())},
    }


def _fmt(x: float | None) -> str:
    return "  -  " if x is None else f"{x:.2f}"


def print_report(runs: list[dict[str, Any]], scores: dict[str, dict[str, Any]], seconds: float) -> None:
    labels = sorted({lab for r in runs for lab in r["labels"]}, key=lambda s: (s in (HEALTHY, AMBIGUOUS), s))
    counts = Counter(lab for r in runs for lab in r["labels"])
    files = sum(len(r["files"]) for r in runs)
    print(f"real-log corpus: {len(runs)} runs, {files} files; diagnosed in {seconds:.1f} s")
    print("labels: " + ", ".join(f"{lab} {counts[lab]}" for lab in labels))
    print()
    print(f"{'recall per label (runs caught / runs)':<44} " + "  ".join(f"{SPLIT_TITLES[sp]:<14}" for sp in SPLITS))
    for lab in labels:
        if lab in (HEALTHY, AMBIGUOUS):
            continue
        cells = []
        for sp in SPLITS:
            pl = scores[sp]["per_label"].get(lab)
            cells.append(f"{pl['caught']:>3}/{pl['runs']:<3} {_fmt(pl['recall'])}" if pl else "   -          ")
        print(f"  {lab:<42} " + "  ".join(f"{c:<14}" for c in cells))
    print()
    rows = [
        ("problem runs caught (recall)", lambda s: f"{s['caught']:>3}/{s['problem_runs']:<3} {_fmt(s['recall'])}"),
        ("healthy runs flagged", lambda s: f"{s['healthy_flagged']:>3}/{s['healthy_runs']:<3} "
                                           f"{_fmt(s['healthy_flagged_rate'])}"),
        ("unread runs", lambda s: f"{s['unread']:>3}/{s['runs']:<3}"),
        ("ambiguous runs (not scored)", lambda s: f"{s['ambiguous_runs']:>3}"),
    ]
    for name, cell in rows:
        print(f"  {name:<42} " + "  ".join(f"{cell(scores[sp]):<14}" for sp in SPLITS))
    held = scores["heldout"]
    print(f"\ngoals on the held-out half: recall >= {GOAL_RECALL:.2f} ({_fmt(held['recall'])}), healthy flagged "
          f"<= {GOAL_HEALTHY:.0%} ({_fmt(held['healthy_flagged_rate'])}), unread 0 ({held['unread']})")
    fresh = scores["fresh"]
    if fresh["runs"]:
        print(f"the same on the fresh split (never tuned on): recall {_fmt(fresh['recall'])}, healthy flagged "
              f"{_fmt(fresh['healthy_flagged_rate'])}, unread {fresh['unread']}")

    detectors = sorted({d for r in runs for d in r["result"]["fired"]})
    print("\nconfusion (all runs): runs of each label on which each detector fired (warning or error)")
    if detectors:
        short = [d[:14] for d in detectors]
        print(f"  {'label':<18}{'runs':>5} " + " ".join(f"{s:>14}" for s in short))
        for lab in labels:
            with_lab = [r for r in runs if lab in r["labels"]]
            cells = [sum(d in r["result"]["fired"] for r in with_lab) for d in detectors]
            print(f"  {lab:<18}{len(with_lab):>5} " + " ".join(f"{c or '.':>14}" for c in cells))
    else:
        print("  (no detector fired on any run)")

    mapped = set().union(*CATCHES.values())
    unmapped = sorted({d for r in runs for d in r["result"]["fired"]} - mapped)
    if unmapped:
        print("\ndetectors that fired but count for no label in CATCHES: " + ", ".join(unmapped))

    print("\nhealthy runs flagged:")
    bad = [r for r in runs if r["labels"] == [HEALTHY] and r["result"]["fired"]]
    for r in bad:
        print(f"  {r['id']:<12} [{r['split']}] {', '.join(sorted(r['result']['fired']))}")
    if not bad:
        print("  none")
    print("\nproblem runs missed (label: reason -> what fired instead):")
    missed = [r for r in runs if r["labels"] not in ([HEALTHY], [AMBIGUOUS])
              and not any(caught(r, set(r["result"]["fired"])).values())]
    for r in missed:
        other = ", ".join(sorted(r["result"]["fired"])) or "nothing"
        why = f" [unread: {r['result']['unread']}]" if r["result"]["unread"] else ""
        print(f"  {r['id']:<12} [{r['split']}] {r['label']}: {r['reason']} -> {other}{why}")
    if not missed:
        print("  none")
    unread = [r for r in runs if r["result"]["unread"]]
    if unread:
        print("\nunread runs:")
        for r in unread:
            print(f"  {r['id']:<12} {r['result']['unread']}")
    errors = [(r["id"], e) for r in runs for e in r["result"]["errors"]]
    if errors:
        print("\ninternal errors:")
        for rid, e in errors:
            print(f"  {rid:<12} {e}")


def parse_params(items: list[str]) -> dict[str, dict[str, str]]:
    params: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        name, dot, field = key.partition(".")
        if not sep or not dot:
            raise SystemExit(f"--param wants NAME.KEY=VALUE, got {item!r}")
        params.setdefault(name, {})[field] = value
    return params


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", type=Path, help="write per-run results and the scores to FILE")
    ap.add_argument("--param", action="append", default=[], metavar="NAME.KEY=VALUE",
                    help="detector threshold override, as trainfix diagnose --param")
    ap.add_argument("--runs", nargs="*", metavar="ID", help="only these run ids")
    ap.add_argument("-q", "--quiet", action="store_true", help="print the scores only")
    args = ap.parse_args(argv)
    params = parse_params(args.param)

    runs = load_corpus()
    if args.runs:
        want = set(args.runs)
        runs = [r for r in runs if r["id"] in want]
    absent = [r["id"] for r in runs if not (CORPUS / r["id"]).is_dir()]
    if absent:  # bytes not fetched here (see real-logs/README.md): scored runs are the present ones
        print(f"{len(absent)} of {len(runs)} runs have no bytes here and are not scored "
              f"(fetch them as benchmarks/real-logs/README.md says): {' '.join(absent[:8])}"
              f"{' ...' if len(absent) > 8 else ''}", file=sys.stderr)
        runs = [r for r in runs if r["id"] not in set(absent)]
    t0 = time.perf_counter()
    for r in runs:
        r["result"] = diagnose_run(CORPUS / r["id"], params)
    seconds = time.perf_counter() - t0
    scores = {sp: score(runs if sp == "all" else [r for r in runs if r["split"] == sp]) for sp in SPLITS}
    if args.quiet:
        for sp in SPLITS:
            s = scores[sp]
            print(f"{sp:<12} recall {_fmt(s['recall'])} ({s['caught']}/{s['problem_runs']})  healthy flagged "
                  f"{_fmt(s['healthy_flagged_rate'])} ({s['healthy_flagged']}/{s['healthy_runs']})  unread {s['unread']}")
    else:
        print_report(runs, scores, seconds)
    if args.json:
        doc = {"schema": 1, "catches": {k: sorted(v) for k, v in CATCHES.items()}, "params": params,
               "scores": scores,
               "runs": [{k: r[k] for k in ("id", "split", "label", "labels", "reason", "files")}
                        | {"caught": caught(r, set(r["result"]["fired"])), **r["result"]} for r in runs]}
        args.json.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    held = scores["heldout"]
    ok = (held["recall"] is not None and held["recall"] >= GOAL_RECALL
          and (held["healthy_flagged_rate"] or 0.0) <= GOAL_HEALTHY and held["unread"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
