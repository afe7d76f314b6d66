"""The seed stories and the repair loop, for ``trainfix demo``, ``benchmarks/`` and the tests.

:data:`STORIES` is the one table of seed stories: the example configs (``examples/<name>-buggy.yaml``
and ``-fixed.yaml``), the detectors one of which must fire on the buggy run, and the story's target
(the metric the fix must improve, and by how much, judged on the figures of
:func:`trainfix.diagnostics.compare.run_metrics`).  :func:`repair_loop` runs one story end to end:
train the buggy config, diagnose, apply the recommended fixes (a patched copy of the config), retrain,
diagnose again, compare and judge.  ``trainfix demo`` runs one story; ``benchmarks/repair_loop.py``
runs every story on several seeds to measure the repair rate.

This module composes the trainer, the diagnosis and the fixes; the packages themselves never import
each other for it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from trainfix.errors import InputError, UsageError


# --------------------------------------------------------------------------- the stories


SWING_FLOOR = 0.03  # 3 points: validation swings or std below this are noise at digits' sizes


def _get(m: dict, name: str) -> float | None:
    return m.get(name)


def _val_final(m: dict) -> float | None:
    for k, v in m.items():
        if k.startswith("final val/"):
            return v
    return None


def _term_change(m: dict, term: str) -> float | None:
    return m.get(f"loss term {term} change")


def judge_sparsity(a: dict, b: dict) -> tuple[bool, str]:
    """The sparsity term moves < 1% in the buggy run and falls > 30% in the fixed one."""
    ca, cb = _term_change(a, "sparsity"), _term_change(b, "sparsity")
    if ca is None or cb is None:
        return False, "loss/sparsity not logged in both runs"
    return cb <= -0.30 and abs(ca) < abs(cb), f"loss/sparsity change {ca:+.1%} -> {cb:+.1%} (target: falls > 30%)"


def judge_accuracy(margin: float) -> Callable[[dict, dict], tuple[bool, str]]:
    def judge(a: dict, b: dict) -> tuple[bool, str]:
        va, vb = _val_final(a), _val_final(b)
        if va is None or vb is None:
            return False, "no validation metric in both runs"
        return vb - va >= margin, f"final validation metric {va:.3f} -> {vb:.3f} (target: +{margin:.2f})"
    judge.__doc__ = f"The final validation metric rises by at least {margin:.2f}."
    return judge


def judge_stability(a: dict, b: dict) -> tuple[bool, str]:
    """The within-epoch batch-loss max/min ratio is at most half of the buggy run's, and the
    validation std around its trend (second half of the run) is halved too, or at noise level
    (below 3 points)."""
    ra, rb = _get(a, "step loss max/min"), _get(b, "step loss max/min")
    sa, sb = _get(a, "val std"), _get(b, "val std")
    if None in (ra, rb, sa, sb):
        return False, "per-step loss or validation metric missing"
    ok = rb <= 0.5 * ra and sb <= max(0.5 * sa, SWING_FLOOR)
    return ok, (f"batch-loss max/min {ra:.3g} -> {rb:.3g}, val std {sa:.3f} -> {sb:.3f} "
                f"(target: ratio halved, std halved or < {SWING_FLOOR:.2f})")


def judge_swings(a: dict, b: dict) -> tuple[bool, str]:
    """The largest epoch-to-epoch validation drop (second half of the run) is halved, or below
    3 points, and the final validation metric is not more than 1 point worse."""
    wa, wb = _get(a, "largest val drop"), _get(b, "largest val drop")
    va, vb = _val_final(a), _val_final(b)
    if None in (wa, wb, va, vb):
        return False, "validation metric missing"
    ok = wb <= max(0.5 * wa, SWING_FLOOR) and vb >= va - 0.01
    return ok, (f"largest validation drop {wa:.3f} -> {wb:.3f}, final {va:.3f} -> {vb:.3f} "
                f"(target: drop halved or < {SWING_FLOOR:.2f}, final not worse)")


def judge_classes(a: dict, b: dict) -> tuple[bool, str]:
    """The spread of per-class accuracy is at most half of the buggy run's."""
    sa, sb = _get(a, "per-class acc spread"), _get(b, "per-class acc spread")
    if sa is None or sb is None:
        return False, "per-class accuracy missing"
    return sb <= 0.5 * sa, f"per-class accuracy spread {sa:.3f} -> {sb:.3f} (target: halved)"


@dataclass(frozen=True)
class Story:
    """One seed story: its example configs, the detector that must fire, and its target."""

    name: str
    seed_story: str
    title: str
    expected: tuple[str, ...]  # at least one of these detectors must fire on the buggy run
    judge: Callable[[dict, dict], tuple[bool, str]]

    @property
    def buggy(self) -> str:
        return f"{self.name}-buggy.yaml"


STORIES: dict[str, Story] = {
    s.name: s
    for s in (
        Story("sparsity", "000", "sparsity term that never converges", ("sparsity-gradient-vanishing",), judge_sparsity),
        Story("lr-scaling", "003", "lr shrunk by the batch/512 rule, uncertainty weights stuck",
              ("lr-miscaled",), judge_accuracy(0.10)),
        Story("mil", "002", "MIL with hard selection and erratic batch losses", ("batch-loss-variance",), judge_stability),
        Story("sparse", "004", "sparse training from epoch 1, validation accuracy swinging",
              ("accuracy-oscillation", "sparse-from-start"), judge_swings),
        Story("imbalance", "004", "class imbalance with poor per-class accuracy", ("class-disparity",), judge_classes),
    )
}
DEFAULT_SCENARIO = "lr-scaling"


def examples_dir() -> Path:
    """Where the example configs are: the installed package data, else the repository's examples/."""
    try:
        from importlib.resources import files

        pkg = Path(str(files("trainfix") / "examples"))
        if pkg.is_dir():
            return pkg
    except (ModuleNotFoundError, TypeError):
        pass
    return Path(__file__).resolve().parent / "examples"


def example_path(story: Story) -> Path:
    path = examples_dir() / story.buggy
    if not path.is_file():
        raise InputError(f"example config {story.buggy} is not installed", f"looked in {examples_dir()}")
    return path


# --------------------------------------------------------------------------- the loop


@dataclass
class LoopResult:
    """What one pass of the loop found, did and measured."""

    story: str
    seed: int | None
    out_dir: Path
    fired: list[str] = field(default_factory=list)  # detectors with a finding on the buggy run
    expected_fired: bool = False
    fixes: list[str] = field(default_factory=list)
    resolved: bool = False  # the expected findings are gone from the fixed run
    new_findings: list[str] = field(default_factory=list)  # warning+ findings only in the fixed run
    target_ok: bool = False
    target_text: str = ""
    metrics_before: dict = field(default_factory=dict)
    metrics_after: dict = field(default_factory=dict)
    comparison: dict = field(default_factory=dict)
    diff: str = ""
    seconds: float = 0.0
    error: str | None = None

    @property
    def repaired(self) -> bool:
        return (self.error is None and self.expected_fired and self.resolved and not self.new_findings
                and self.target_ok)


def _train(config: Path, run_dir: Path, seed: int | None) -> None:
    from trainfix.trainers import train

    overrides = [f"run.seed={seed}"] if seed is not None else []
    train(str(config), out_dir=run_dir, overrides=overrides)


def repair_loop(story: Story, out_dir: Path, seed: int | None = None, log: Callable[[str], None] | None = None) -> LoopResult:
    """Buggy run -> diagnose -> apply the recommended fixes -> retrain -> diagnose, compare, judge."""
    from trainfix.diagnostics.compare import comparison, diagnose_one, run_metrics
    from trainfix.diagnostics.finding import Severity
    from trainfix.fixes.foreign import load_document, write_document
    from trainfix.fixes.patch import patch_document
    from trainfix.fixes.recommend import plan_fixes, recommend

    log = log or (lambda s: None)
    t0 = time.monotonic()
    res = LoopResult(story.name, seed, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for sub in ("buggy", "fixed"):
        if (out_dir / sub).exists():
            raise UsageError(f"{out_dir / sub} already exists", "pass --out with a new directory")
    buggy_cfg = out_dir / "buggy.yaml"
    shutil.copyfile(example_path(story), buggy_cfg)

    log(f"1/4 training the buggy config ({story.buggy}) -> {out_dir / 'buggy'}")
    _train(buggy_cfg, out_dir / "buggy", seed)
    before = diagnose_one(out_dir / "buggy")
    res.fired = sorted({f.detector for f in before.findings})
    res.expected_fired = any(d in res.fired for d in story.expected)
    log(f"2/4 diagnosis: {len(before.findings)} finding(s): {', '.join(res.fired) or 'none'}")

    doc = load_document(buggy_cfg)
    recs = recommend(doc.tree, before.findings, min_severity="warning")
    res.fixes = [r.recipe_id for r in recs if r.recipe_id and not r.shared]
    if not res.fixes:
        res.error = "no fix recommended"
        res.seconds = time.monotonic() - t0
        return res
    patches, _ = plan_fixes(doc.tree, res.fixes, before.findings, doc.provenance)
    fixed_cfg = out_dir / "fixed.yaml"
    patched = patch_document(doc, patches, str(fixed_cfg))
    write_document(doc, patched.text, fixed_cfg, patched.provenance)
    res.diff = patched.diff
    log(f"3/4 applied {', '.join(res.fixes)} -> {fixed_cfg}; retraining -> {out_dir / 'fixed'}")
    _train(fixed_cfg, out_dir / "fixed", seed)
    after = diagnose_one(out_dir / "fixed")
    log(f"4/4 diagnosis of the fixed run: {len(after.findings)} finding(s)")

    res.comparison = comparison(before, after)
    after_dets = {f.detector for f in after.findings}
    res.resolved = not any(d in after_dets for d in story.expected if d in res.fired)
    before_keys = {f.detector for f in before.findings}
    res.new_findings = sorted({f.detector for f in after.findings
                               if f.detector not in before_keys and Severity(f.severity) >= Severity.WARNING})
    res.metrics_before, res.metrics_after = run_metrics(before.run), run_metrics(after.run)
    res.target_ok, res.target_text = story.judge(res.metrics_before, res.metrics_after)
    res.seconds = time.monotonic() - t0
    return res
