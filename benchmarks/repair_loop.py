"""The repair rate: every seed story end to end, on several seeds, on real data (digits, CPU).

For each story and seed: train the buggy example config -> diagnose (the story's detector must
fire) -> apply the fixes the diagnosis recommends (best fix per finding at warning or above) ->
retrain the patched config -> diagnose again (the story's finding must be gone and no new finding
at warning or above may appear) -> the story's target metric must improve by its stated margin
(see ``trainfix.stories.STORIES``).  A case counts as repaired only when all four hold.

Prints one row per case, a per-story summary and the repair rate; ``--json FILE`` also writes
every case with its metrics.  Runs go to ``--out`` (default: a temporary directory, removed at the
end unless ``--keep``).

    python benchmarks/repair_loop.py                      # every story, seeds 0 1 2
    python benchmarks/repair_loop.py --stories mil sparse --seeds 0 1 2 3 --keep --out /tmp/rl
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    from trainfix.stories import STORIES, example_path, repair_loop

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stories", nargs="*", default=list(STORIES), help=f"subset of: {', '.join(STORIES)}")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary directory)")
    ap.add_argument("--keep", action="store_true", help="keep the runs")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON")
    args = ap.parse_args(argv)

    unknown = [s for s in args.stories if s not in STORIES]
    if unknown:
        ap.error(f"unknown stories {unknown}; known: {', '.join(STORIES)}")
    root = args.out or Path(tempfile.mkdtemp(prefix="trainfix-repair-"))
    root.mkdir(parents=True, exist_ok=True)
    cases = []
    t_start = time.monotonic()
    print(f"runs in {root}", flush=True)
    header = f"{'story':<11} {'seed':>4}  {'fired':<5} {'fixes':<42} {'gone':<5} {'new':<5} {'target':<6} {'s':>5}  detail"
    print(header)
    print("-" * len(header))
    for name in args.stories:
        story = STORIES[name]
        try:
            example_path(story)
        except Exception as exc:  # example missing: every seed of the story fails, visibly
            for seed in args.seeds:
                cases.append({"story": name, "seed": seed, "repaired": False, "error": str(exc)})
                print(f"{name:<11} {seed:>4}  error: {exc}", flush=True)
            continue
        for seed in args.seeds:
            out_dir = root / f"{name}-seed{seed}"
            if out_dir.exists():
                shutil.rmtree(out_dir)
            try:
                res = repair_loop(story, out_dir, seed)
            except Exception as exc:
                cases.append({"story": name, "seed": seed, "repaired": False,
                              "error": f"{type(exc).__name__}: {exc}"})
                print(f"{name:<11} {seed:>4}  error: {type(exc).__name__}: {exc}", flush=True)
                if os.environ.get("TRAINFIX_DEBUG"):
                    traceback.print_exc()
                continue
            case = {
                "story": name, "seed": seed, "repaired": res.repaired, "fired": res.fired,
                "expected_fired": res.expected_fired, "fixes": res.fixes, "resolved": res.resolved,
                "new_findings": res.new_findings, "target_ok": res.target_ok, "target": res.target_text,
                "seconds": round(res.seconds, 1), "error": res.error,
                "metrics_before": res.metrics_before, "metrics_after": res.metrics_after,
            }
            cases.append(case)
            yn = lambda b: "yes" if b else "NO"  # noqa: E731
            print(f"{name:<11} {seed:>4}  {yn(res.expected_fired):<5} {','.join(res.fixes)[:42]:<42} "
                  f"{yn(res.resolved):<5} {(','.join(res.new_findings) or 'none')[:5]:<5} {yn(res.target_ok):<6} "
                  f"{res.seconds:>5.0f}  {res.target_text}" + (f" [new: {', '.join(res.new_findings)}]" if res.new_findings else "")
                  + (f" [error: {res.error}]" if res.error else ""), flush=True)

    print()
    print("per story:")
    for name in args.stories:
        mine = [c for c in cases if c["story"] == name]
        ok = sum(c["repaired"] for c in mine)
        print(f"  {name:<11} {ok}/{len(mine)} repaired")
    total = len(cases)
    repaired = sum(c["repaired"] for c in cases)
    stories_ok = sum(all(c["repaired"] for c in cases if c["story"] == n) for n in args.stories)
    rate = repaired / total if total else 0.0
    print(f"repair rate: {repaired}/{total} = {rate:.1%} of cases; {stories_ok}/{len(args.stories)} stories "
          f"repaired on every seed ({time.monotonic() - t_start:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"cases": cases, "repair_rate": rate}, indent=2, default=str) + "\n")
    if not args.keep and args.out is None:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if repaired == total else 1


if __name__ == "__main__":
    sys.exit(main())
