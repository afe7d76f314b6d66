"""The ``memory-growth`` detector: memory that climbs steadily until it runs out (seed 003)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import MEMORY

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

#: config / inputs keys that give the device's total memory in MB
TOTAL_KEYS = ("device_total_mb", "total_memory_mb", "gpu_memory_mb", "device_memory_mb")


def device_total_mb(config: dict, inputs: dict) -> tuple[float | None, str | None]:
    """The device's total memory (MB) recorded in the run's inputs or config, and where."""
    for name, source in (("inputs", inputs or {}), ("config", config or {})):
        stack = [((), source)]
        while stack:
            path, node = stack.pop()
            if not isinstance(node, dict):
                continue
            for k, v in node.items():
                if str(k).lower() in TOTAL_KEYS and not isinstance(v, bool):
                    try:
                        total = float(v)
                    except (TypeError, ValueError):
                        continue
                    if math.isfinite(total) and total > 0:
                        return total, f"{name}: {'.'.join(map(str, path + (k,)))}"
                stack.append((path + (k,), v))
    return None, None


def _mb(value: float) -> str:
    """Megabytes for a message: whole MB from 100 up, else 3 significant digits."""
    return f"{value:.0f}" if abs(value) >= 100 else signals.fmt(value)


def _epoch_at(run: Any, step: float) -> float | None:
    """The epoch a step falls in, extrapolated from the logged ``epoch`` tag (None without it)."""
    s = run.series("epoch")
    if s is None:
        return None
    s = s.finite()
    if len(s) < 2 or s.steps[-1] <= s.steps[0]:
        return None
    if step <= s.steps[-1]:
        return float(np.interp(step, s.steps, s.values))
    rate = (s.values[-1] - s.values[0]) / (s.steps[-1] - s.steps[0])
    return float(s.values[-1] + rate * (step - s.steps[-1]))


class MemoryGrowth(Detector):
    """Memory climbs steadily through training, the signature of a leak that ends in out-of-memory.

    What it detects
    ---------------
    The memory series (``mem/allocated_mb``: CUDA allocated, or process RSS) after its startup phase
    (the first ``skip_fraction`` of the points, where allocators and caches fill) rises in every
    third of the rest: the median of each third exceeds the previous one by more than ``noise_k``
    noise units; the Theil-Sen slope's 95% interval lies above zero; Mann-Kendall's tau is at least
    ``min_tau``; and the total growth exceeds ``min_growth`` (5%) of the starting level and
    ``min_growth_mb`` (32 MB).  When the device's total memory is known (``device_total_mb`` in the
    config or the run's inputs) the step at which the trend reaches it is extrapolated.

    Why it matters
    --------------
    Memory that grows with the step count is memory kept alive by the training loop: a loss summed as
    a tensor instead of ``.item()`` (which keeps every graph), predictions appended to a list on the
    device, caches keyed by sample.  It ends in a CUDA out-of-memory error many epochs in (seed: OOM
    at epoch 16), after hours of compute; emptying the cache only hides it.

    Evidence
    --------
    Start and end levels of the analysed part, the growth in MB and relative, the Theil-Sen slope per
    1000 steps with its interval, tau, the thirds' medians, the noise scale, and when the total is
    known, the extrapolated step of exhaustion (and steps left from the last point), with its epoch
    when an ``epoch`` tag is logged.  The finding is an error when that epoch comes before the
    config's planned ``epochs`` end (the run will crash), else a warning.

    Fix
    ---
    None of the config recipes fixes a leak: the finding lists no fix id and the message says where
    to look (tensors kept across steps).

    False positives
    ---------------
    One-time jumps (the first evaluation allocating its buffers, the allocator growing its cache, a
    stage switch) raise one third and not the others: the every-third rule keeps them quiet.  Memory
    that grows early and then plateaus fails the last-third test.  A run whose batch size really
    grows over time (progressive resizing) is a legitimate climb; ignore the detector there.

    Parameters
    ----------
    skip_fraction
        Share of the first points treated as startup and ignored (0.1).
    noise_k
        Each third must exceed the previous by this many noise units (2.0).
    min_tau
        Smallest Mann-Kendall tau of a steady climb (0.5).
    min_growth
        Smallest total growth relative to the starting level (0.05).
    min_growth_mb
        Smallest total growth in MB (32; a CPU process's RSS settles by tens of MB early on).
    min_points
        Memory points needed (9).
    """

    name = "memory-growth"
    severity = Severity.WARNING
    requires = (MEMORY,)
    fixes = ()

    @dataclass
    class Params:
        skip_fraction: float = 0.1
        noise_k: float = 2.0
        min_tau: float = 0.5
        min_growth: float = 0.05
        min_growth_mb: float = 32.0
        min_points: int = 9

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        s = run.role(MEMORY)
        if s is None:
            yield self.skip("no memory tag logged")
            return
        s = s.finite()
        if len(s) < params.min_points:
            yield self.skip(signals.need_reason(s.tag, len(s), params.min_points))
            return
        skip = int(math.floor(len(s) * params.skip_fraction))
        x, y = s.steps[skip:], s.values[skip:]
        if len(y) < params.min_points:
            x, y = s.steps, s.values
        thirds = np.array_split(np.arange(len(y)), 3)
        medians = [float(np.median(y[idx])) for idx in thirds]
        noise = signals.noise_scale(y)
        noise = noise if math.isfinite(noise) else 0.0
        rising_thirds = all(b - a > params.noise_k * noise and b > a for a, b in zip(medians, medians[1:]))
        trend = signals.theil_sen(x, y)
        tau, p = signals.mann_kendall(y)
        start, end = signals.head_tail(y, 0.1, 2)
        growth = end - start
        rel_growth = growth / abs(start) if start else float("inf")
        if not (rising_thirds and trend.lo > 0 and tau >= params.min_tau
                and rel_growth > params.min_growth and growth > params.min_growth_mb):
            return

        per_1000 = trend.slope * 1000.0
        severity = self.severity
        total, total_from = device_total_mb(run.config or {}, getattr(run, "inputs", {}) or {})
        last_step, last_value = float(x[-1]), float(y[-1])
        msg = (f"{s.tag} grows steadily from {_mb(start)} to {_mb(end)} MB "
               f"(+{signals.pct(rel_growth)}) over steps {float(x[0]):g}-{last_step:g}: "
               f"{_mb(per_1000)} MB per 1000 steps (95% CI [{_mb(trend.lo * 1000)}, "
               f"{_mb(trend.hi * 1000)}], Mann-Kendall tau {signals.fmt(tau, 2)})")
        evidence: dict[str, Any] = {
            "start_mb": start,
            "end_mb": end,
            "growth_mb": growth,
            "relative_growth": rel_growth,
            "slope_mb_per_1000_steps": per_1000,
            "slope_ci_per_1000_steps": [trend.lo * 1000.0, trend.hi * 1000.0],
            "mann_kendall_tau": tau,
            "mann_kendall_p": p,
            "thirds_medians": medians,
            "noise_mb": noise,
            "startup_points_skipped": skip,
        }
        if total is not None and trend.slope > 0:
            at = last_step + max(0.0, total - last_value) / trend.slope
            evidence.update({"device_total_mb": total, "device_total_from": total_from,
                             "exhausted_at_step": at, "steps_left": at - last_step})
            msg += f"; at this rate it reaches the device's {_mb(total)} MB at about step {at:.0f}"
            epoch_at = _epoch_at(run, at)
            if epoch_at is not None:
                evidence["exhausted_at_epoch"] = epoch_at
                msg += f" (epoch {epoch_at:.0f})"
                planned = knobs.lookup_float(run.config or {}, "epochs")
                if planned and epoch_at <= planned:
                    evidence["planned_epochs"] = planned
                    severity = Severity.ERROR
                    msg += f", before the planned {planned:g} epochs end"
            if last_value >= total:
                msg += " (already there)"
        else:
            msg += "; the device total is not recorded, so no out-of-memory step can be extrapolated"
        msg += ("; no config change fixes this: look for tensors kept across steps (a loss summed "
                "without .item(), outputs appended to a list, per-sample caches on the device)")
        yield self.finding(msg, severity=severity, evidence=evidence, steps=(float(x[0]), last_step), tags=[s.tag], fixes=[],
                           confidence=0.9 if tau > 0.8 else 0.75)
