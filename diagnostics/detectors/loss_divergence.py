"""The ``loss-divergence`` detector: the training loss climbs away from its minimum and stays up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

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
    the minimum, or it ends above where it started by more than ``noise_units`` noise and 10%.

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

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        loss, how = signals.training_loss(run)
        loss, why = signals.usable(loss, how, params.min_points, finite_only=False)
        if loss is None:
            yield self.skip(why)
            return
        n = len(loss)
        y = loss.values
        window = 3 if n < 40 else 5
        sm = signals.smooth(y, window)
        noise = signals.noise_scale(y)
        if not np.isfinite(noise) or noise <= 0:
            noise = 1e-12 * max(1.0, float(np.nanmax(np.abs(y))))
        start, end = signals.head_tail(y, 0.1)
        i_min = int(np.nanargmin(sm))
        minimum = float(sm[i_min])
        after = y[i_min:]
        if after.size < 4:
            return  # the minimum is at the end: nothing rose
        tau, p = signals.mann_kendall(after)
        rise = end - minimum
        learned = max(start - minimum, 0.0)
        trending_up = tau > 0 and p < params.p_value
        ratio = end / minimum if minimum > 0 else float("inf")
        explode = (rise >= params.noise_units * noise
                   and rise >= params.min_rise * abs(minimum)
                   and (rise >= params.give_back * learned or ratio >= params.min_ratio))
        above_start = (end - start >= params.noise_units * noise and end - start >= 0.1 * abs(start))
        if not (trending_up and (explode or above_start)):
            return
        config = run.config or {}
        min_step = float(loss.steps[i_min])
        last_step = float(loss.steps[-1])
        msg = (f"training loss rose from its minimum {signals.fmt(minimum)} at step {min_step:g} "
               f"to {signals.fmt(end)} at the end")
        if np.isfinite(ratio):
            msg += f" ({ratio:.3g}x, {rise / noise:.0f}x its noise)"
        msg += (f"; it started at {signals.fmt(start)}" + (" and ended above that" if end > start else ""))
        fixes = ["lower-lr"]
        if not knobs.has_grad_clip(config):
            fixes.append("grad-clip")
        if not knobs.has_warmup(config):
            fixes.append("lr-warmup")
        worse = end > start
        severity = Severity.ERROR if worse or (np.isfinite(ratio) and ratio >= 10) else Severity.WARNING
        evidence = {
            "start": start,
            "minimum": minimum,
            "min_step": min_step,
            "end": end,
            "rise": rise,
            "rise_ratio": ratio if np.isfinite(ratio) else None,
            "noise": noise,
            "rise_in_noise_units": rise / noise,
            "given_back": rise / learned if learned > 0 else None,
            "ended_above_start": bool(worse),
            "mann_kendall_tau": tau,
            "mann_kendall_p": p,
            "points": n,
            "curve": how,
            "lr": knobs.lookup_float(config, "lr"),
            "warmup": knobs.has_warmup(config),
            "grad_clip": knobs.lookup_float(config, "grad_clip"),
            "grad_norm_median": signals.grad_norm_median(run, before=min_step),
        }
        confidence = (0.95 if (explode and above_start) else 0.85) * min(1.0, n / 10)
        yield self.finding(msg, severity=severity, evidence=evidence, steps=(min_step, last_step),
                           tags=[loss.tag], fixes=fixes, confidence=confidence)
