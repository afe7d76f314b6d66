"""Run every seed story buggy and fixed on digits and print the before/after table.

Usage::

    python benchmarks/stories.py                    # all five stories, runs in a temp dir
    python benchmarks/stories.py --stories mil sparse --out runs/stories
    python benchmarks/stories.py --epochs-scale 0.5 # quicker, smaller numbers

Each story is a pair of configs in ``examples/`` (``<story>-buggy.yaml`` / ``<story>-fixed.yaml``) and
a ``measure`` function that reads the run directory's ``metrics.jsonl`` (and ``config.yaml``) and
returns the figures that show the failure and its repair.  ``tests/test_stories.py`` imports this
file and asserts on the same figures, so the table and the tests cannot disagree.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


# --- reading a run ---------------------------------------------------------------------------------
def read_metrics(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] from a run's metrics.jsonl, in file order."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(Path(run_dir) / "metrics.jsonl") as f:
        for line in f:
            row = json.loads(line)
            for key, value in row.items():
                if key in ("step", "wall_time") or not isinstance(value, (int, float)):
                    continue
                series.setdefault(key, []).append((int(row["step"]), float(value)))
    return series


def values(series: dict, tag: str) -> np.ndarray:
    return np.array([v for _, v in series.get(tag, [])], dtype=float)


def last_eval(series: dict) -> dict[str, float]:
    """The tags logged with the last ``val/acc`` (the final evaluation)."""
    step = series["val/acc"][-1][0]
    return {tag: pts[-1][1] for tag, pts in series.items() if pts and pts[-1][0] == step}


def relative_change(v: np.ndarray, k: int = 3) -> float:
    """(mean of the last k - mean of the first k) / |mean of the first k|."""
    first, last = float(np.mean(v[:k])), float(np.mean(v[-k:]))
    return (last - first) / abs(first) if first else math.inf


def stability(v: np.ndarray) -> tuple[float, float]:
    """(std around the trend, largest drop) over the second half: ``compare``'s own definition."""
    from trainfix.diagnostics.compare import late_stability

    return late_stability(v, "max") or (math.nan, math.nan)


# --- per-story figures -------------------------------------------------------------------------------
def measure_sparsity(run: Path) -> dict[str, float]:
    s = read_metrics(run)
    raw = values(s, "loss/sparsity/raw")
    weighted, step_loss = values(s, "loss/sparsity"), values(s, "train/loss_step")
    ent = values(s, "attn/entropy")
    return {
        "sparsity term change": relative_change(raw),
        "sparsity share of loss": float(np.median(np.abs(weighted) / np.maximum(step_loss, 1e-12))),
        "attn/entropy start": float(ent[0]),
        "attn/entropy end": float(ent[-1]),
        "val/acc": last_eval(s)["val/acc"],
    }


def measure_lr_scaling(run: Path) -> dict[str, float]:
    import yaml

    s = read_metrics(run)
    cfg = yaml.safe_load((Path(run) / "config.yaml").read_text())
    weights = {t: values(s, t) for t in s if t.startswith("uw/weight/")}
    final = np.array([w[-1] for w in weights.values()])
    spread_over_run = max(float(np.ptp([w[i] for w in weights.values()])) for i in range(len(next(iter(weights.values())))))
    return {
        "scaled lr": float(cfg["optimizer"]["scaled_lr"]),
        "uw weight spread (final)": float(np.ptp(final)),
        "uw weight spread (max)": spread_over_run,
        "val/acc": last_eval(s)["val/acc"],
    }


def measure_mil(run: Path) -> dict[str, float]:
    s = read_metrics(run)
    losses = values(s, "train/loss_step")
    # per-epoch q98/q02 spread of the per-step loss, median over the last third of the epochs (the
    # batch-loss-variance detector's measure)
    steps = np.array([st for st, _ in s["train/loss_step"]])
    ends = np.array([st for st, _ in s["train/loss"]])  # per-epoch mean: logged at each epoch's last step
    ratios = []
    start = 0
    for end in ends:
        chunk = losses[(steps > start) & (steps <= end)]
        start = end
        if chunk.size >= 8:
            ratios.append(float(np.quantile(chunk, 0.98) / max(np.quantile(chunk, 0.02), 1e-12)))
    acc, auc = values(s, "val/acc"), values(s, "val/auc")
    return {
        "batch loss max/min": float(losses.max() / max(losses.min(), 1e-12)),
        "late q98/q02 (median)": float(np.median(ratios[-max(1, len(ratios) // 3):])),
        "val std (val/acc)": stability(acc)[0],
        "val std (val/auc)": stability(auc)[0],
        "val/auc": float(auc[-1]),
    }


def measure_sparse(run: Path) -> dict[str, float]:
    s = read_metrics(run)
    acc = values(s, "val/acc")
    return {
        "largest val drop": stability(acc)[1],
        "val std": stability(acc)[0],
        "active fraction (end)": float(values(s, "sparsity/active_fraction")[-1]),
        "val/acc": float(acc[-1]),
    }


def measure_imbalance(run: Path) -> dict[str, float]:
    s = read_metrics(run)
    final = last_eval(s)
    per_class = np.array([v for t, v in final.items() if t.startswith("val/acc/")])
    return {
        "per-class spread": float(np.ptp(per_class)),
        "worst class acc": float(per_class.min()),
        "val/acc": final["val/acc"],
    }


@dataclass(frozen=True)
class Story:
    """A story of ``trainfix.stories.STORIES`` (its name, seed and failure) and its figures."""

    name: str
    seed: str
    failure: str
    measure: Callable[[Path], dict[str, float]]

    def config(self, variant: str) -> Path:
        return EXAMPLES / f"{self.name}-{variant}.yaml"


MEASURES: dict[str, Callable[[Path], dict[str, float]]] = {
    "sparsity": measure_sparsity,
    "lr-scaling": measure_lr_scaling,
    "mil": measure_mil,
    "sparse": measure_sparse,
    "imbalance": measure_imbalance,
}


def _stories() -> dict[str, Story]:
    """The one story table (``trainfix.stories``), each with its measure; a story without one is an
    error here, not a silent gap in the table."""
    from trainfix.stories import STORIES as TABLE

    missing = sorted(set(TABLE) - set(MEASURES))
    if missing:
        raise SystemExit(f"benchmarks/stories.py: no measure for the stories {missing}")
    return {name: Story(name, st.seed_story, st.title, MEASURES[name]) for name, st in TABLE.items()}


STORIES: dict[str, Story] = _stories()


# --- running ---------------------------------------------------------------------------------------
def run_story(story: Story, variant: str, out_root: Path, overrides: list[str] = ()) -> tuple[dict[str, float], float]:
    """Train one config of a story into ``out_root/<story>-<variant>``; (figures, seconds)."""
    from trainfix.trainers import train

    out = out_root / f"{story.name}-{variant}"
    t0 = time.perf_counter()
    train(story.config(variant), out_dir=out, overrides=list(overrides))
    seconds = time.perf_counter() - t0
    return story.measure(out), seconds


def scaled_epochs(config: Path, scale: float) -> list[str]:
    """Overrides that scale a config's epochs (and its stages' epochs) by ``scale``."""
    import yaml

    cfg = yaml.safe_load(config.read_text())
    if scale == 1.0:
        return []
    if cfg.get("stages"):
        stages = [dict(st, epochs=max(1, round(st["epochs"] * scale))) for st in cfg["stages"]]
        return ["stages=" + json.dumps(stages)]
    return [f"training.epochs={max(2, round(cfg['training']['epochs'] * scale))}"]


def fmt(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return str(v)
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.3g}"
    return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 10 else f"{v:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stories", nargs="*", default=list(STORIES), choices=list(STORIES))
    parser.add_argument("--out", type=Path, default=None, help="keep the run dirs here (default: a temp dir)")
    parser.add_argument("--epochs-scale", type=float, default=1.0, help="multiply every config's epochs")
    args = parser.parse_args(argv)

    tmp = None
    if args.out is None:
        tmp = tempfile.TemporaryDirectory(prefix="trainfix-stories-")
        out_root = Path(tmp.name)
    else:
        out_root = args.out
        out_root.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for name in args.stories:
            story = STORIES[name]
            result = {}
            for variant in ("buggy", "fixed"):
                figures, secs = run_story(story, variant, out_root, scaled_epochs(story.config(variant), args.epochs_scale))
                result[variant] = (figures, secs)
            rows.append((story, result))
    finally:
        if tmp is not None:
            tmp.cleanup()

    print()
    print(f"{'story':<12} {'figure':<26} {'buggy':>12} {'fixed':>12}")
    print("-" * 64)
    for story, result in rows:
        (bug, bug_s), (fix, fix_s) = result["buggy"], result["fixed"]
        print(f"{story.name:<12} (seed {story.seed}: {story.failure})")
        for key in bug:
            print(f"{'':<12} {key:<26} {fmt(bug[key]):>12} {fmt(fix.get(key, math.nan)):>12}")
        print(f"{'':<12} {'train time (s)':<26} {bug_s:>12.1f} {fix_s:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
