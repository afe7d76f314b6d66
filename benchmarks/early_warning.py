"""How early the detectors warn: runs replayed as if live, diagnosed at every 5% of their length.

Run:  python benchmarks/early_warning.py [--step 0.05] [--corpus real|synthetic|both] [--seeds 1] [--json FILE]

The replay.  A run is cut at step ``first + f x (last - first)`` for f = step, 2 x step, ..., 1: every
tag keeps the points logged up to that step, so tags logged at different rates are cut at the same
moment of training, as ``trainfix watch`` or a callback would see them.  Roles are resolved again on
what the cut holds (a tag not yet logged has no role).  Each cut is diagnosed by
:class:`trainfix.diagnostics.live.LiveDiagnosis` with default thresholds; a finding counts when it is
a warning or an error.

The corpora.  *Real*: ``benchmarks/real-logs/`` (labelled, see ``benchmarks/real_logs.py``: a problem
run is caught by the detectors its label lists in ``CATCHES``), or, without it, nothing.  *Synthetic*:
``benchmarks/synthetic_runs.py``'s ``corpus`` (every pathology at each strength, caught by its expected
detectors; healthy runs of 25 shapes).

Printed figures:

* **problems**: a problem is *detectable* when it is caught on the whole run; for each detectable
  problem the fraction of the run at which it was first caught; per detector (the detector that
  caught it first), the count, the median first fraction and the share caught by 30% of the run;
  overall, the share of detectable problems caught by 30% (goal: at least half);
* **healthy runs**: those flagged at any point of the replay, split into runs that are quiet at the
  end (a transient false alarm: goal none) and runs flagged at the end too (the ordinary false
  alarms that ``real_logs.py`` and ``detector_accuracy.py`` count);
* problems caught at some point of the replay but not on the whole run (a warning that went away).

Exit status 0 when both goals are met, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

HERE = Path(__file__).resolve().parent
GOAL_EARLY_SHARE = 0.5
EARLY = 0.30


def cut_at(run: Any, fraction: float) -> Any:
    """The run as it stood when training had reached ``fraction`` of its step range."""
    from trainfix.diagnostics.roles import resolve_roles
    from trainfix.diagnostics.run import Run

    sc = run.scalars
    if not len(sc) or fraction >= 1.0:
        return run
    first, last = float(sc["step"].min()), float(sc["step"].max())
    cut = sc[sc["step"] <= first + fraction * (last - first)].reset_index(drop=True)
    counts = {str(k): int(v) for k, v in cut["tag"].value_counts(sort=False).items()}
    roles = resolve_roles(sorted(counts), counts=counts)
    inputs = dict(run.inputs)
    inputs.update(tags=sorted(counts), points=int(len(cut)), points_per_tag=counts)
    return Run(run.path, cut, run.config, run.config_files, run.checkpoints, roles, inputs)


def replay(run: Any, fractions: list[float]) -> list[set[str]]:
    """Per fraction, the detectors with a warning or error on the cut (each cut diagnosed afresh)."""
    from trainfix.diagnostics.live import LiveDiagnosis

    out = []
    for f in fractions:
        live = LiveDiagnosis()  # fresh: we want what fires at this cut, not only what is new
        live.update(cut_at(run, f))
        out.append({x.detector for x in live.findings})
    return out


def first_catch(fired: list[set[str]], fractions: list[float], catchers: Iterable[str]) -> tuple[float | None, str | None]:
    catchers = set(catchers)
    for f, names in zip(fractions, fired):
        hit = sorted(names & catchers)
        if hit:
            return f, hit[0]
    return None, None


def real_cases() -> list[dict[str, Any]]:
    """Labelled real runs: (id, labels, run) for problem and healthy runs that read."""
    if not (HERE / "real-logs" / "corpus.csv").is_file():
        return []
    sys.path.insert(0, str(HERE))
    import real_logs  # the corpus table and what catches each label

    from trainfix.diagnostics.ingest import read_run
    from trainfix.diagnostics.settings import Settings

    cases = []
    for entry in real_logs.load_corpus():
        labels = entry["labels"]
        if labels == [real_logs.AMBIGUOUS]:
            continue
        try:
            run = read_run(HERE / "real-logs" / entry["id"], settings=Settings())
        except Exception as exc:
            print(f"real {entry['id']}: not read ({type(exc).__name__}: {exc})", file=sys.stderr)
            continue
        healthy = labels == [real_logs.HEALTHY]
        catchers = set() if healthy else set().union(*(real_logs.CATCHES[lab] for lab in labels if lab in real_logs.CATCHES))
        cases.append({"corpus": "real", "id": entry["id"], "label": "+".join(labels), "healthy": healthy,
                      "catchers": catchers, "run": run})
    return cases


def synthetic_cases(seeds: int) -> list[dict[str, Any]]:
    sys.path.insert(0, str(HERE))
    import synthetic_runs as synthetic

    cases = []
    for lr in synthetic.corpus(seeds=tuple(range(seeds)), healthy_seeds=tuple(range(seeds))):
        healthy = lr.label == "healthy"
        cases.append({"corpus": "synthetic", "id": f"{lr.label}/{lr.kind}/{lr.seed}", "label": lr.label,
                      "healthy": healthy, "catchers": set(lr.expected), "run": lr.run})
    return cases


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", type=float, default=0.05, help="replay resolution (fraction of the run)")
    ap.add_argument("--corpus", choices=("real", "synthetic", "both"), default="both")
    ap.add_argument("--seeds", type=int, default=1, help="synthetic seeds (each pathology strength and healthy shape)")
    ap.add_argument("--json", type=Path, help="write every run's replay here")
    args = ap.parse_args(argv)
    n = int(round(1 / args.step))
    fractions = [round((i + 1) / n, 4) for i in range(n)]
    warnings.simplefilter("ignore")
    t0 = time.time()
    cases = []
    if args.corpus in ("real", "both"):
        cases += real_cases()
    if args.corpus in ("synthetic", "both"):
        cases += synthetic_cases(args.seeds)
    rows = []
    for c in cases:
        fired = replay(c["run"], fractions)
        row = {k: c[k] for k in ("corpus", "id", "label", "healthy")}
        row["fired"] = [sorted(s) for s in fired]
        if c["healthy"]:
            row["flagged_at"] = next((f for f, s in zip(fractions, fired) if s), None)
            row["flagged_at_end"] = bool(fired[-1])
        else:
            end_hit = bool(fired[-1] & c["catchers"])
            first, by = first_catch(fired, fractions, c["catchers"])
            row.update(detectable=end_hit, first=first if end_hit else None, by=by if end_hit else None,
                       lost=(first is not None and not end_hit))
        rows.append(row)
    seconds = time.time() - t0
    ok = report(rows, fractions, seconds)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if ok else 1


def report(rows: list[dict[str, Any]], fractions: list[float], seconds: float) -> bool:
    ok = True
    print(f"early warning: {len(rows)} runs replayed at {len(fractions)} cuts each ({seconds:.0f} s)\n")
    for corpus in ("real", "synthetic", "all"):
        sel = [r for r in rows if corpus == "all" or r["corpus"] == corpus]
        if not sel:
            continue
        probs = [r for r in sel if not r["healthy"]]
        det = [r for r in probs if r["detectable"]]
        healthy = [r for r in sel if r["healthy"]]
        print(f"== {corpus}: {len(probs)} problem runs ({len(det)} detectable on the whole run), {len(healthy)} healthy")
        by: dict[str, list[float]] = defaultdict(list)
        for r in det:
            by[r["by"]].append(r["first"])
        print(f"  {'detector (first to catch)':<30} {'caught':>6} {'median first':>12} {'by 30%':>7}")
        for name, firsts in sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            early = sum(f <= EARLY + 1e-9 for f in firsts)
            print(f"  {name:<30} {len(firsts):>6} {statistics.median(firsts):>12.2f} {early / len(firsts):>7.0%}")
        if det:
            firsts = [r["first"] for r in det]
            share = sum(f <= EARLY + 1e-9 for f in firsts) / len(firsts)
            print(f"  {'all detectable problems':<30} {len(det):>6} {statistics.median(firsts):>12.2f} {share:>7.0%}"
                  f"   (goal >= {GOAL_EARLY_SHARE:.0%} by 30%)")
            if corpus == "all":
                ok &= share >= GOAL_EARLY_SHARE
        lost = [r for r in probs if r.get("lost")]
        if lost:
            print(f"  caught during the replay but not on the whole run: {len(lost)} "
                  f"({', '.join(r['id'] for r in lost[:6])}{'...' if len(lost) > 6 else ''})")
        quiet_end = [r for r in healthy if not r["flagged_at_end"]]
        transient = [r for r in quiet_end if r["flagged_at"] is not None]
        flagged_end = [r for r in healthy if r["flagged_at_end"]]
        print(f"  healthy runs quiet at the end: {len(quiet_end)}; flagged at some point of the replay: "
              f"{len(transient)} (goal 0)")
        for r in transient[:10]:
            when = [f for f, s in zip(fractions, r["fired"]) if s]
            names = sorted(set().union(*(set(s) for s in r["fired"])))
            print(f"    {r['id']}: {', '.join(names)} at {when[0]:.2f}..{when[-1]:.2f} of the run")
        print(f"  healthy runs flagged at the end too (ordinary false alarms): {len(flagged_end)}")
        if corpus == "all":
            ok &= not transient
        print()
    return ok


if __name__ == "__main__":
    sys.exit(main())
