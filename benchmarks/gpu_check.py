"""One prepared check of trainfix's GPU path, printed as one table.

What it runs, each a row ``check | PASS/FAIL/SKIP | detail``:

- ``precision/<p>``: ``examples/digits-quick.yaml`` in fp32, bf16 and fp16 (+GradScaler) on the
  device; every logged loss finite and the final ``val/acc`` within one point of the same config's
  fp32 run on the CPU.
- ``compile``: a ``run.compile: true`` run; its checkpoint's keys carry no ``_orig_mod.``/``module.``
  prefix and load into a fresh model with ``strict=True``.
- ``memory/logged``: ``mem/allocated_mb`` logged (CUDA allocated memory on a GPU) and
  ``run.device_total_mb`` recorded in the resolved config.
- ``memory/quiet``, ``memory/leak``: ``memory-growth`` stays quiet on the precision runs and fires on
  a run whose model keeps a tensor per training step (the classic "list of losses with their graphs").
- ``resume``: a run killed with SIGKILL mid-epoch and resumed against one that never stopped: every
  ``metrics.jsonl`` record compared; identical, or the largest difference and where.
- ``ddp``: ``torchrun --nproc_per_node 1`` (nccl on CUDA, gloo on CPU): the process group's backend
  as recorded in the run's config, and accuracy against the single-process run.
- ``overhead``: ``trainfix train`` against a plain loop on the same device, same model and steps,
  synchronised timing (``benchmarks/trainer_overhead.py``); the goal is within 5%.
- ``story/<name>``: the five seed stories' buggy and fixed configs on the device with their figures
  (a second table, the same columns as ``benchmarks/stories.py``).

Usage::

    python benchmarks/gpu_check.py                  # everything, on CUDA when present
    python benchmarks/gpu_check.py --device cpu --only precision memory ddp   # the CPU smoke test
    python benchmarks/gpu_check.py --out /tmp/gpu-runs --stories-scale 0.5    # keep runs; quicker stories

Without a CUDA device the CUDA-only rows (fp16, compile by default) print SKIP with the reason and the
rest run on the CPU.  The whole check is sized to finish in under 8 minutes on one GPU; each row
prints as soon as it is known, so a run cut short still tells what it reached.  Exit code 1 when any
row FAILED.

On a bare GPU machine with torch already installed::

    python -m pip install --no-deps -e . && python -m pip install ruamel.yaml   # what the image lacks
    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py --out /tmp/gpu-check
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from _resume import comparable_records, kill_mid_second_epoch, resume_and_reference, resume_config

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = ROOT / "examples"
QUICK = EXAMPLES / "digits-quick.yaml"
ACC_TOLERANCE = 0.01  # "within a point" of the CPU run's accuracy
OVERHEAD_GOAL = 5.0  # percent


def _load(name: str):
    """A sibling benchmark script as a module (benchmarks/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"trainfix_bench_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


# --- a deliberately leaking model (its config names it through `_component_`) -------------------
class LeakyModel(nn.Module):
    """Wraps a model and keeps one ``leak_mb`` tensor per training forward on the input's device:
    memory that grows every step until the process runs out, as a list of kept losses does."""

    def __init__(self, inner: nn.Module, leak_mb: float):
        super().__init__()
        self.inner = inner
        self.leak_numel = int(leak_mb * 2**20 / 4)
        self.kept: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.kept.append(torch.ones(self.leak_numel, device=x.device))  # ones: the pages are touched
        return self.inner(x)


def leaky_cnn(bundle, width: int = 16, depth: int = 2, leak_mb: float = 1.0) -> nn.Module:
    """trainfix's ``cnn`` that leaks ``leak_mb`` per training step (for the memory-growth check)."""
    from trainfix.trainers.components.models import cnn

    return LeakyModel(cnn(bundle, width=width, depth=depth), leak_mb)


# --- results ------------------------------------------------------------------------------------
@dataclass
class Row:
    check: str
    status: str  # PASS | FAIL | SKIP
    detail: str


class Table:
    """Rows printed as they arrive, and once more together at the end."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def add(self, check: str, status: str, detail: str) -> None:
        row = Row(check, status, detail)
        self.rows.append(row)
        print(f"  {row.check:<22} {row.status:<5} {row.detail}", flush=True)

    def passed(self, check: str, ok: bool, detail: str) -> None:
        self.add(check, "PASS" if ok else "FAIL", detail)

    def render(self) -> str:
        width = max([len(r.check) for r in self.rows] + [5])
        lines = [f"| {'check':<{width}} | result | detail |", f"|{'-' * (width + 2)}|--------|--------|"]
        lines += [f"| {r.check:<{width}} | {r.status:<6} | {r.detail} |" for r in self.rows]
        return "\n".join(lines)

    @property
    def failed(self) -> bool:
        return any(r.status == "FAIL" for r in self.rows)


# --- reading a run ------------------------------------------------------------------------------
def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def series(run: Path, tag: str) -> list[float]:
    return [float(r[tag]) for r in records(run) if isinstance(r.get(tag), (int, float))]


def final_acc(run: Path) -> float:
    accs = series(run, "val/acc")
    return accs[-1] if accs else math.nan


def losses_finite(run: Path) -> tuple[bool, int]:
    """(every logged loss is finite, how many loss values were logged)."""
    values = [float(v) for r in records(run) for k, v in r.items()
              if isinstance(v, (int, float)) and ("loss" in k)]
    return all(math.isfinite(v) for v in values), len(values)


def recorded(run: Path, section: str, key: str):
    import yaml

    return (yaml.safe_load((run / "config.yaml").read_text()) or {}).get(section, {}).get(key)


def diagnose_json(run: Path, select: str) -> dict:
    """``trainfix diagnose RUN --format json --select NAME`` as a user runs it (exit 0 or 1)."""
    proc = subprocess.run([sys.executable, "-m", "trainfix", "diagnose", str(run), "--format", "json",
                           "--select", select, "--fail-on", "error"], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"trainfix diagnose exited {proc.returncode}: {proc.stderr.strip()[-400:]}")
    return json.loads(proc.stdout)


def fired(report: dict, detector: str) -> list[dict]:
    return [f for run in report["runs"] for f in run["findings"] if f["detector"] == detector]


def train_run(config, out: Path, overrides: list[str]) -> tuple[Path, float]:
    from trainfix.trainers import train

    t0 = time.perf_counter()
    result = train(config, out_dir=out, overrides=overrides)
    return Path(result.out_dir), time.perf_counter() - t0


# --- the checks ---------------------------------------------------------------------------------
def check_precision(table: Table, device: str, out: Path, cuda: bool) -> list[Path]:
    """fp32 on the CPU as the reference, then fp32/bf16/fp16 on the device."""
    ref, secs = train_run(QUICK, out / "quick-cpu-fp32", ["run.device=cpu", "run.precision=fp32"])
    ref_acc = final_acc(ref)
    table.add("precision/cpu-ref", "PASS" if math.isfinite(ref_acc) else "FAIL",
              f"fp32 on the CPU: val/acc {ref_acc:.4f} ({secs:.1f} s)")
    runs = [ref]
    for precision in ("fp32", "bf16", "fp16"):
        name = f"precision/{precision}"
        if precision == "fp16" and not cuda:
            table.add(name, "SKIP", "fp16 autocast with GradScaler needs a CUDA device")
            continue
        if device == "cpu" and precision == "fp32":
            continue  # the reference already is this run
        run, secs = train_run(QUICK, out / f"quick-{device}-{precision}", [f"run.device={device}", f"run.precision={precision}"])
        ok_finite, n = losses_finite(run)
        acc = final_acc(run)
        ok = ok_finite and abs(acc - ref_acc) <= ACC_TOLERANCE
        table.passed(name, ok, f"{n} losses {'all finite' if ok_finite else 'NOT all finite'}; val/acc {acc:.4f} "
                               f"vs CPU {ref_acc:.4f} (diff {acc - ref_acc:+.4f}, tolerance {ACC_TOLERANCE}); {secs:.1f} s")
        runs.append(run)
    return runs


def check_compile(table: Table, device: str, out: Path, cuda: bool, force: bool) -> None:
    if not cuda and not force:
        table.add("compile", "SKIP", "torch.compile on the CPU takes minutes here; pass --compile-on-cpu to run it")
        return
    run, secs = train_run(QUICK, out / f"quick-{device}-compile",
                          [f"run.device={device}", "run.compile=true", "training.epochs=2"])
    from trainfix.trainers.build import build
    from trainfix.trainers.config import load_config

    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    weights = state["model"] if "model" in state else state
    prefixed = [k for k in weights if k.startswith(("_orig_mod.", "module."))]
    _, model, _ = build(load_config(run / "config.yaml"))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    ok = not prefixed and not missing and not unexpected
    table.passed("compile", ok, f"{len(weights)} keys, {len(prefixed)} prefixed; strict load: {len(missing)} missing, "
                                f"{len(unexpected)} unexpected; {secs:.1f} s with compilation")


def check_memory(table: Table, device: str, out: Path, healthy: list[Path], cuda: bool) -> None:
    dev_runs = [r for r in healthy if f"-{device}-" in r.name] or healthy
    mem = series(dev_runs[0], "mem/allocated_mb")
    total = recorded(dev_runs[0], "run", "device_total_mb")
    what = "CUDA allocated memory" if cuda else "process RSS"
    table.passed("memory/logged", bool(mem) and all(v > 0 for v in mem) and bool(total),
                 f"{len(mem)} points of mem/allocated_mb ({what}, {min(mem, default=0):.1f}..{max(mem, default=0):.1f} MB); "
                 f"run.device_total_mb {total}")
    loud = [(r.name, f["message"]) for r in healthy for f in fired(diagnose_json(r, "memory-growth"), "memory-growth")]
    table.passed("memory/quiet", not loud, f"memory-growth quiet on {len(healthy)} healthy runs" if not loud
                 else f"memory-growth fired on a healthy run: {loud[0][0]}: {loud[0][1][:160]}")
    leak_cfg = {
        "run": {"name": "leak", "seed": 0, "device": device},
        "data": {"name": "digits", "image_size": 16},
        "model": {"_component_": "gpu_check:leaky_cnn", "width": 16, "depth": 2, "leak_mb": 2.0},
        "loss": {"name": "cross-entropy"},
        "optimizer": {"name": "adamw", "lr": 0.003},
        "training": {"epochs": 3, "batch_size": 32},
        "logging": {"every_n_steps": 2, "progress": False},
        "checkpoint": {"every_n_epochs": 1},
    }
    sys.path.insert(0, str(HERE))  # so that `_component_: gpu_check:leaky_cnn` imports this file
    try:
        run, secs = train_run(leak_cfg, out / f"leak-{device}", [])
    finally:
        sys.path.remove(str(HERE))
    found = fired(diagnose_json(run, "memory-growth"), "memory-growth")
    leaked = series(run, "mem/allocated_mb")
    table.passed("memory/leak", bool(found),
                 (found[0]["message"][:320] if found else "memory-growth did NOT fire")
                 + f" (mem {leaked[0]:.0f} -> {leaked[-1]:.0f} MB over {len(leaked)} points; {secs:.1f} s)")


def check_resume(table: Table, device: str, out: Path) -> None:
    cfg = out / "resume.yaml"
    cfg.write_text(resume_config("resume-check", device, 16))
    killed, ref = out / "resume-killed", out / "resume-ref"
    step = kill_mid_second_epoch(cfg, killed, {**os.environ, "OMP_NUM_THREADS": "1"}, timeout=180)
    if not step:
        table.add("resume", "FAIL", "the run finished or never saved a mid-epoch checkpoint before it could be killed")
        return
    resume_and_reference(cfg, killed, ref)
    a, b = comparable_records(ref), comparable_records(killed)
    if len(a) != len(b) or [r["step"] for r in a] != [r["step"] for r in b]:
        table.add("resume", "FAIL", f"{len(b)} records after resume vs {len(a)} uninterrupted (steps differ)")
        return
    worst, where = 0.0, ""
    for ra, rb in zip(a, b):
        if set(ra) != set(rb):
            table.add("resume", "FAIL", f"step {ra['step']}: tags differ: {sorted(set(ra) ^ set(rb))}")
            return
        for k, va in ra.items():
            if isinstance(va, float) and isinstance(rb[k], float):
                d = abs(va - rb[k]) / max(1.0, abs(va))
                if d > worst:
                    worst, where = d, f"{k} at step {ra['step']}"
    exact = worst == 0.0
    ok = worst <= 1e-4
    detail = (f"killed at step {step} (mid epoch 1), resumed: {len(a)} records "
              + ("identical" if exact else f"within float tolerance: largest relative difference {worst:.2e} ({where})"))
    if not exact and device == "cuda":
        detail += "; cuDNN's backward kernels are not bitwise deterministic by default"
    table.passed("resume", ok, detail)


def check_ddp(table: Table, device: str, out: Path, single: Path | None, overrides: tuple[str, ...] = ()) -> None:
    run = out / f"ddp1-{device}"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
           "-m", "trainfix.trainers.distributed", "--config", str(QUICK), "--out", str(run),
           "--device", device, "logging.progress=false", *overrides]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    secs = time.perf_counter() - t0
    if proc.returncode != 0:
        table.add("ddp", "FAIL", f"torchrun exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
        return
    backend, world = recorded(run, "run", "dist_backend"), recorded(run, "run", "world_size")
    want = "nccl" if device == "cuda" else "gloo"
    acc = final_acc(run)
    ref = final_acc(single) if single is not None else math.nan
    ok = backend == want and world == 1 and (math.isnan(ref) or abs(acc - ref) <= ACC_TOLERANCE)
    table.passed("ddp", ok, f"torchrun, world size {world}, backend {backend} (want {want}); val/acc {acc:.4f} vs "
                            f"single process {ref:.4f}; {secs:.1f} s")


def check_overhead(table: Table, device: str, out: Path, reps: int) -> None:
    bench = _load("trainer_overhead")
    steady: dict[str, list[float]] = {"plain": [], "trainfix": []}
    bench.plain_loop(1, out, device=device)  # warm-up: first-call costs, allocator, cuDNN autotune
    bench.trainfix_loop(1, out / "warm", device=device)
    for rep in range(reps):
        for name, fn in (("plain", bench.plain_loop), ("trainfix", bench.trainfix_loop)):
            d = out / f"overhead-{name}-{rep}"
            d.mkdir(parents=True, exist_ok=True)
            _, _, n, after_warm = fn(3, d, device=device)
            steady[name].append(1000 * after_warm / (n - bench.WARM))
    paired = sorted(100 * (t / p - 1) for p, t in zip(steady["plain"], steady["trainfix"]))
    med = paired[len(paired) // 2]
    plain_ms = sorted(steady["plain"])[reps // 2]
    ours_ms = sorted(steady["trainfix"])[reps // 2]
    table.passed("overhead", med <= OVERHEAD_GOAL,
                 f"steady-state step {plain_ms:.3f} ms plain vs {ours_ms:.3f} ms trainfix on {device}: paired median "
                 f"{med:+.1f}% (range {paired[0]:+.1f}%..{paired[-1]:+.1f}%, {reps} reps; goal <= {OVERHEAD_GOAL:.0f}%)")


def check_stories(table: Table, device: str, out: Path, scale: float) -> list[tuple[str, dict, dict]]:
    stories = _load("stories")
    figures = []
    for story in stories.STORIES.values():
        got = {}
        for variant in ("buggy", "fixed"):
            overrides = stories.scaled_epochs(story.config(variant), scale) + [f"run.device={device}"]
            got[variant], secs = stories.run_story(story, variant, out / "stories", overrides)
            got[variant]["train time (s)"] = secs
        finite = all(math.isfinite(v) for side in got.values() for v in side.values())
        table.passed(f"story/{story.name}", finite,
                     f"buggy and fixed ran on {device} ({got['buggy']['train time (s)']:.1f} s + "
                     f"{got['fixed']['train time (s)']:.1f} s); figures below")
        figures.append((story.name, got["buggy"], got["fixed"]))
    return figures


CHECKS = ("precision", "compile", "memory", "resume", "ddp", "overhead", "stories")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", nargs="*", choices=CHECKS, default=list(CHECKS))
    ap.add_argument("--out", type=Path, default=None, help="keep the run dirs here (default: a temp dir)")
    ap.add_argument("--reps", type=int, default=5, help="overhead repetitions (alternating plain / trainfix)")
    ap.add_argument("--stories-scale", type=float, default=1.0, help="multiply the stories' epochs")
    ap.add_argument("--compile-on-cpu", action="store_true", help="also run the torch.compile check without CUDA")
    args = ap.parse_args(argv)

    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no CUDA device\nhint: run with --device cpu for the CPU smoke test")
        return 2
    tmp = tempfile.TemporaryDirectory(prefix="trainfix-gpu-check-") if args.out is None else None
    out = Path(tmp.name) if tmp else args.out
    out.mkdir(parents=True, exist_ok=True)
    name = torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA device: CUDA-only rows are skipped)"
    print(f"trainfix GPU check on {name}; torch {torch.__version__}; runs under {out}", flush=True)
    t0 = time.perf_counter()
    table, figures = Table(), []
    healthy: list[Path] = []
    try:
        if "precision" in args.only or "memory" in args.only or "ddp" in args.only:
            healthy = check_precision(table, args.device, out, cuda)
        if "compile" in args.only:
            check_compile(table, args.device, out, cuda, args.compile_on_cpu)
        if "memory" in args.only:
            check_memory(table, args.device, out, healthy, cuda)
        if "resume" in args.only:
            check_resume(table, args.device, out)
        if "ddp" in args.only:
            single = next((r for r in healthy if r.name == f"quick-{args.device}-fp32"), None)
            check_ddp(table, args.device, out, single)
        if "overhead" in args.only:
            check_overhead(table, args.device, out, args.reps)
        if "stories" in args.only:
            figures = check_stories(table, args.device, out, args.stories_scale)
    finally:
        print(f"\n{table.render()}")
        if figures:
            fmt = _load("stories").fmt
            print(f"\n| story | figure | buggy | fixed |\n|---|---|---|---|")
            for story, bug, fix in figures:
                for key in bug:
                    print(f"| {story} | {key} | {fmt(bug[key])} | {fmt(fix.get(key, math.nan))} |")
        print(f"\n{len(table.rows)} rows in {time.perf_counter() - t0:.0f} s on {name}")
        if tmp:
            tmp.cleanup()
    return 1 if table.failed else 0


if __name__ == "__main__":
    sys.exit(main())
