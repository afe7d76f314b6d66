"""The ``loss-divergence`` detector: the training loss climbs away from its minimum and stays up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import TRAIN_LOSS, TRAIN_LOSS_STEP

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class LossDivergence(Detector):
    """Training loss rises far beyond its noise after its minimum, or ends above where it started.

    What it detects
    ---------------
    On the training loss (per epoch; else the per-step loss reduced to per-epoch medians), smoothed by
    a centered rolling median: the rise from the smoothed minimum to the median of the last 10% of
    points.  It fires when that rise is at least ``noise_units`` times the loss's own point-to-point
    noise, the points after the minimum trend upward (Mann-Kendall, p < ``p_value``), and either the
    loss rises by at least ``min_rise`` of the minimum's value while giving back at least
    ``give_back`` of what it had learned (start minus minimum) or ending ``min_ratio`` times above
    the minimum (and losing at least 1% of what it learned: a loss that fell by orders of magnitude
    multiplies a tiny minimum without meaning anything), or it ends above where it started by more
    than ``noise_units`` noise and 10%.

    Two more signatures, met in real logs.  *Settled*: the loss jumped and settled far above its
    minimum without an upward trend (0.022 -> 17.9 -> 0.14 over the last 180 epochs): the whole last
    quarter of the run lies ``settled_ratio`` times above the minimum (and ``noise_units`` noise),
    and over the last tenth the loss recovered less than a quarter of the gap.  *Unbounded*: a loss
    that falls without bound (-3.4e4 -> -6.5e7): it ends negative, has fallen by
    ``unbounded_factor`` times the larger of its starting magnitude and 1, still trends down over
    its second half and its last quarter holds at least a fifth of the whole fall; a bounded loss
    that converges does its falling early.

    Why it matters
    --------------
    A loss that climbs back up is not learning any more: the step size is too large for the current
    curvature (lr too high, no warmup, an lr restart that is too violent), or gradients blew up.
    Without intervention it usually ends in NaN; every later epoch makes the weights worse.

    Evidence
    --------
    ``start`` (median of the first 10%), ``minimum`` and ``min_step``, ``end`` (median of the last 10%),
    ``rise``, ``rise_ratio`` (end / minimum), ``noise``, ``rise_in_noise_units``, ``given_back``
    (share of the learned drop lost again), the Mann-Kendall ``tau``/``p`` after the minimum, how the
    curve was built, the config's ``lr``, warmup and grad_clip, and ``grad_norm_median`` (the median
    logged gradient norm before the minimum, which ``grad-clip`` clips at twice).
    ``signature`` says which shape fired (``trend``, ``settled`` or ``unbounded``; the unbounded one
    reports ``fall`` and ``late_fall_share`` instead of the rise).

    Fix
    ---
    ``lower-lr`` first; ``grad-clip`` when clipping is not configured; ``lr-warmup`` when there is no
    warmup.

    False positives
    ---------------
    Warm restarts (SGDR) raise the loss for a while by design; the rise must give back 30% of the
    learned drop (or double the loss) and persist as an upward trend into the last 10% of the run,
    which restarts, falling again within their cycle, do not.  Curricula that
    make the data harder over time also raise the training loss; ignore the detector for such runs.
    A restart or a stage change that raises the loss and is still bringing it down at the end is
    not *settled*; a negative log-likelihood that converges (1.2 -> -3.5) is not *unbounded*.

    Parameters
    ----------
    noise_units
        Rise needed, in units of the loss's robust noise (8).
    give_back
        Share of the learned drop that must be lost again (0.3) ...
    min_ratio
        ... or the factor by which the end must exceed the minimum (2.0).
    min_rise
        Rise needed relative to the minimum's magnitude (0.25).
    p_value
        Significance of the upward trend after the minimum (0.05).
    min_points
        Points of the training-loss curve needed (5: a Hugging Face run that logs its loss every 500
        steps may have no more; below 10 points the confidence is scaled down with the count).
    settled_ratio
        Factor above the minimum the whole last quarter must stay at for the *settled* signature (3).
    unbounded_factor
        Fall, in units of the larger of the starting magnitude and 1, for the *unbounded* signature (10).
    """

    name = "loss-divergence"
    severity = Severity.WARNING
    requires_any = (TRAIN_LOSS, TRAIN_LOSS_STEP)
    fixes = ("lower-lr", "grad-clip", "lr-warmup")

    @dataclass
    class Params:
        noise_units: float = 8.0
        give_back: float = 0.3
        min_ratio: float = 2.0
        min_rise: float = 0.25
        p_value: float = 0.05
        min_points: int = 5
        settled_ratio: float = 3.0
        unbounded_factor: float = 10.0

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        loss, how = signals.training_loss(run)
        loss, why = signals.usable(loss, how, params.min_points, finite_only=False)
        if loss is None:
            yield self.skip(why)
            return
        curve = self._curve(loss)
        unbounded = self._unbounded(curve, params)
        if unbounded is not None:
            yield self._unbounded_finding(run, loss, how, curve, unbounded)
            return
        judged = self._judge_rise(curve, params)
        if judged is not None:
            yield self._rise_finding(run, loss, how, curve, judged)

    @staticmethod
    def _curve(loss: Any) -> dict[str, Any]:
        """The numbers every signature reads: values, smoothed values, noise, start and end."""
        y = loss.values
        n = len(y)
        sm = signals.smooth(y, 3 if n < 40 else 5)
        noise = signals.noise_scale(y)
        if not np.isfinite(noise) or noise <= 0:
            noise = 1e-12 * max(1.0, float(np.nanmax(np.abs(y))))
        start, end = signals.head_tail(y, 0.1)
        i_min = int(np.nanargmin(sm))
        return {"y": y, "n": n, "sm": sm, "noise": noise, "start": start, "end": end,
                "i_min": i_min, "minimum": float(sm[i_min])}

    @staticmethod
    def _unbounded(c: dict[str, Any], params: Any) -> dict[str, Any] | None:
        """An unbounded objective running away downwards: the loss ends negative, has fallen by
        ``unbounded_factor`` times the larger of its starting magnitude and 1, falls significantly
        over its second half and is still falling fast at the end (the last quarter holds a fifth
        or more of the whole fall).  A bounded loss that converges does its falling early."""
        y, n, start, end = c["y"], c["n"], c["start"], c["end"]
        fall = start - end
        if not (end < 0 and n >= 8 and fall >= params.unbounded_factor * max(abs(start), 1.0)):
            return None
        tau, p = signals.mann_kendall(y[n // 2:])
        if not (tau < 0 and p < params.p_value):
            return None
        q = max(2, n // 4)
        late_fall = float(np.median(y[-q - 2:-q + 1]) - end) if n > q + 2 else 0.0
        if late_fall < 0.2 * fall:
            return None
        return {"fall": fall, "late_fall_share": late_fall / fall, "tau": tau, "p": p}

    def _unbounded_finding(self, run: Any, loss: Any, how: str, c: dict[str, Any], u: dict[str, Any]) -> Finding:
        config = run.config or {}
        first_step, last_step = float(loss.steps[0]), float(loss.steps[-1])
        msg = (f"training loss fell without bound: {signals.fmt(c['start'])} at the start to "
               f"{signals.fmt(c['end'])} at the end, still falling ({signals.pct(u['late_fall_share'], 2)} of the "
               f"fall came in the last quarter of the run); a loss that can go below any value is an "
               f"unbounded objective (a log-likelihood without a variance floor, a sign error, a critic "
               f"without a constraint) and training is running away on it")
        evidence = {
            "signature": "unbounded",
            "start": c["start"],
            "end": c["end"],
            "fall": u["fall"],
            "late_fall_share": u["late_fall_share"],
            "mann_kendall_tau": u["tau"],
            "mann_kendall_p": u["p"],
            "points": c["n"],
            "curve": how,
            "lr": knobs.lookup_float(config, "lr"),
            "warmup": knobs.has_warmup(config),
            "grad_clip": knobs.lookup_float(config, "grad_clip"),
        }
        fixes = ["lower-lr"] + ([] if knobs.has_grad_clip(config) else ["grad-clip"])
        return self.finding(msg, severity=Severity.ERROR, evidence=evidence, steps=(first_step, last_step),
                            tags=[loss.tag], fixes=fixes, confidence=0.9 * min(1.0, c["n"] / 10))

    @staticmethod
    def _judge_rise(c: dict[str, Any], params: Any) -> dict[str, Any] | None:
        """The rise from the minimum to the end, and which signature it meets (None: none).

        *trend*: the points after the minimum trend upward and the rise is large (``explode``) or
        the loss ends above its start (``above_start``).  *settled*: the loss jumped and settled
        ``settled_ratio`` times above its minimum: the last quarter of the run lies wholly above
        that level, beyond ``noise_units`` noise, and over the last tenth the loss recovered less
        than a quarter of the gap (a spike that recovers, or a restart still falling, does not)."""
        y, n, sm, noise, i_min = c["y"], c["n"], c["sm"], c["noise"], c["i_min"]
        start, end, minimum = c["start"], c["end"], c["minimum"]
        after = y[i_min:]
        if after.size < 4:
            return None  # the minimum is at the end: nothing rose
        tau, p = signals.mann_kendall(after)
        rise = end - minimum
        learned = max(start - minimum, 0.0)
        trending_up = tau > 0 and p < params.p_value
        ratio = end / minimum if minimum > 0 else float("inf")
        explode = (rise >= params.noise_units * noise
                   and rise >= params.min_rise * abs(minimum)
                   and (rise >= params.give_back * learned
                        # a loss that fell by orders of magnitude multiplies its tiny minimum
                        # without losing what it learned: the ratio alone does not count then
                        or (ratio >= params.min_ratio and rise >= 0.01 * learned)))
        above_start = (end - start >= params.noise_units * noise and end - start >= 0.1 * abs(start))
        settled = False
        q, t = max(3, n // 4), max(2, n // 10)
        if not trending_up and minimum > 0 and n >= 20 and i_min < n - q:
            late = sm[-q:]
            floor = max(params.settled_ratio * minimum, minimum + params.noise_units * noise)
            recovered = float(sm[-t - 1] - sm[-1])
            settled = bool(np.nanmin(late) >= floor and recovered < 0.25 * (sm[-1] - minimum))
        if not ((trending_up and (explode or above_start)) or settled):
            return None
        return {"tau": tau, "p": p, "rise": rise, "learned": learned, "ratio": ratio, "explode": explode,
                "above_start": above_start, "signature": "trend" if trending_up else "settled"}

    def _rise_finding(self, run: Any, loss: Any, how: str, c: dict[str, Any], j: dict[str, Any]) -> Finding:
        config = run.config or {}
        start, end, minimum, noise, n = c["start"], c["end"], c["minimum"], c["noise"], c["n"]
        rise, ratio = j["rise"], j["ratio"]
        min_step = float(loss.steps[c["i_min"]])
        last_step = float(loss.steps[-1])
        msg = (f"training loss rose from its minimum {signals.fmt(minimum)} at step {min_step:g} "
               f"to {signals.fmt(end)} at the end")
        if np.isfinite(ratio):
            msg += f" ({ratio:.3g}x, {rise / noise:.0f}x its noise)"
        if j["signature"] == "settled":
            msg += "; it jumped and settled there without recovering"
        msg += (f"; it started at {signals.fmt(start)}" + (" and ended above that" if end > start else ""))
        fixes = ["lower-lr"]
        if not knobs.has_grad_clip(config):
            fixes.append("grad-clip")
        if not knobs.has_warmup(config):
            fixes.append("lr-warmup")
        worse = end > start
        severity = Severity.ERROR if worse or (np.isfinite(ratio) and ratio >= 10) else Severity.WARNING
        evidence = {
            "signature": j["signature"],
            "start": start,
            "minimum": minimum,
            "min_step": min_step,
            "end": end,
            "rise": rise,
            "rise_ratio": ratio if np.isfinite(ratio) else None,
            "noise": noise,
            "rise_in_noise_units": rise / noise,
            "given_back": rise / j["learned"] if j["learned"] > 0 else None,
            "ended_above_start": bool(worse),
            "mann_kendall_tau": j["tau"],
            "mann_kendall_p": j["p"],
            "points": n,
            "curve": how,
            "lr": knobs.lookup_float(config, "lr"),
            "warmup": knobs.has_warmup(config),
            "grad_clip": knobs.lookup_float(config, "grad_clip"),
            "grad_norm_median": signals.grad_norm_median(run, before=min_step),
        }
        confidence = (0.95 if (j["explode"] and j["above_start"]) else 0.85) * min(1.0, n / 10)
        return self.finding(msg, severity=severity, evidence=evidence, steps=(min_step, last_step),
                            tags=[loss.tag], fixes=fixes, confidence=confidence)
