"""The ``sparse-from-start`` detector: aggressive sparse training from the first epoch (seed 004)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import SPARSITY_ACTIVE_FRACTION, TRAIN_LOSS, VAL_METRIC

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

ENERGY_SAVINGS_TAGS = ("sparsity/energy_savings", "energy_savings", "sparsity/energy_saving")



class SparseFromStart(Detector):
    """Pruning or sparse activation is active from the first epoch at a low active fraction.

    What it detects
    ---------------
    Sparse training (magnitude masks, pruning, adaptive sparse activation) that keeps at most
    ``max_active_fraction`` (30%) of the weights active and starts in the first epoch (start epoch at
    most ``max_start_epoch``).  Evidence is the logged ``sparsity/active_fraction`` (or an energy-
    savings tag, active = 1 - savings) when present: its first value is at or below the threshold and
    was logged in the first epochs (by the ``epoch`` tag: at most ``max_start_epoch`` epochs completed
    before it; else at most that many validation/epoch-loss points before it; else within the first
    ``start_fraction`` of the run's steps).  Without such a tag the
    config decides (knobs ``sparse_enabled``, ``active_fraction``, ``sparse_start_epoch``; a multi-
    stage config is judged by its first stage).

    Why it matters
    --------------
    Masking 90% of the weights before the network has learned anything re-draws the mask from
    near-random magnitudes every epoch: features are zeroed as soon as they form, and validation
    accuracy swings wildly (seed: 85.9% -> 7% -> 64%) while per-class accuracy stays poor.  Training
    dense first and compressing a good model afterwards keeps the accuracy at a similar saving.

    Evidence
    --------
    The active fraction, where it came from (tag or config key), the start epoch, the first logged
    step of the sparsity tag against the run's length, and, when a validation metric is logged, its
    largest drop between consecutive evaluations.

    Fix
    ---
    ``two-stage-sparse``: a dense stage first, then a sparse stage at a moderate active fraction
    (about 25%) started from the best dense checkpoint with a lower lr.

    False positives
    ---------------
    Deliberately sparse-from-scratch methods (RigL, SET) train well at low density because they
    regrow connections; with the default threshold they are reported anyway, since the logs cannot
    tell them apart; raise ``max_active_fraction`` or ignore the detector for such runs.  A run whose
    logged active fraction starts at 1.0 (dense) is never reported.

    Parameters
    ----------
    max_active_fraction
        Largest active fraction still called aggressive (0.3).
    max_start_epoch
        Latest start epoch still called "from the start" (1).
    start_fraction
        Without epoch information, the first logged sparsity value must be within this share of the
        run's steps (0.1).
    """

    name = "sparse-from-start"
    severity = Severity.WARNING
    fixes = ("two-stage-sparse",)

    @dataclass
    class Params:
        max_active_fraction: float = 0.3
        max_start_epoch: float = 1.0
        start_fraction: float = 0.1

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        config = run.config or {}
        logged = run.role(SPARSITY_ACTIVE_FRACTION)
        logged = logged.finite() if logged is not None else None
        from_savings = False
        if logged is None or not len(logged):
            for tag in ENERGY_SAVINGS_TAGS:
                s = run.series(tag)
                if s is not None and len(s.finite()):
                    s = s.finite()
                    vals = np.where(s.values > 1.0, s.values / 100.0, s.values)
                    logged = type(s)(s.tag, s.steps, 1.0 - vals)
                    from_savings = True
                    break
        evidence: dict[str, Any] = {}
        tags: list[str] = []
        steps = None
        if logged is not None and len(logged):
            vals = np.where(logged.values > 1.0, logged.values / 100.0, logged.values)
            first_step = float(logged.steps[0])
            lo_step, hi_step = self._run_span(run)
            early, when = self._is_early(run, logged.tag, first_step, lo_step, hi_step, params)
            first = float(vals[0])
            evidence.update({
                "source": f"logged {logged.tag}" + (" (1 - energy savings)" if from_savings else ""),
                "first_active_fraction": first,
                "median_active_fraction": float(np.median(vals)),
                "first_logged_step": first_step,
                "first_logged_when": when,
                "run_steps": [lo_step, hi_step],
            })
            tags.append(logged.tag)
            if not (early and first <= params.max_active_fraction):
                return
            frac = first
            steps = (first_step, float(logged.steps[-1]))
            where = f"{logged.tag} is {signals.pct(first)} at step {signals.fmt(first_step)}"
        else:
            enabled, frac, start, where_cfg = knobs.first_stage_sparse(config)
            if enabled is None and frac is None:
                yield self.skip("no sparse-training settings in the config and no sparsity/active_fraction logged")
                return
            if enabled is False or frac is None:
                return
            if enabled is None:
                # no on/off switch found: only a sparse-training-specific key counts (a bare
                # ``density`` elsewhere in a config says nothing about pruning)
                hits = knobs.locate(config, "active_fraction")
                if not hits or str(hits[0][0][-1]).lower() == "density":
                    return
            start = 0.0 if start is None else start
            evidence.update({"source": where_cfg, "active_fraction": frac, "start_epoch": start})
            if not (frac <= params.max_active_fraction and start <= params.max_start_epoch):
                return
            cfg = knobs.config_values(config, "sparse_enabled", "active_fraction", "sparse_start_epoch")
            evidence["config"] = cfg
            where = f"{where_cfg}: " + ", ".join(f"{k}: {v}" for k, v in cfg.items())
        msg = (f"sparse training keeps only {signals.pct(frac)} of the weights active from the first epoch "
               f"({where}): masks drawn before the network has learned anything keep zeroing the "
               f"features it is forming")
        swing = self._val_swing(run)
        if swing:
            evidence["val_metric"] = swing
            tags.append(swing["tag"])
            msg += (f"; {swing['tag']} drops by up to {signals.fmt(swing['largest_drop'])} between "
                    f"evaluations")
        evidence["max_active_fraction"] = params.max_active_fraction
        yield self.finding(msg, evidence=evidence, steps=steps, tags=tags,
                           confidence=0.9 if frac <= params.max_active_fraction / 2 else 0.75)

    @staticmethod
    def _is_early(run: Any, tag: str, first_step: float, lo_step: float, hi_step: float,
                  params: Any) -> tuple[bool, str]:
        """Whether ``first_step`` lies in the first epochs: by the logged ``epoch`` tag, else by the
        evaluations (validation metric or per-epoch loss) logged before it, else by the share of the
        run's steps."""
        ep = run.series("epoch")
        if ep is not None and len(ep.finite()) >= 1:
            ep = ep.finite()
            later = ep.values[ep.steps >= first_step]
            epoch = float(later[0]) if later.size else float(ep.values[-1]) + 1.0
            # the trainer logs ``epoch`` 1-based at the step that ends it; a 0-based logger gives 0
            base = 1.0 if float(ep.values.min()) >= 1.0 else 0.0
            started = epoch - base  # epochs completed before this one
            return started <= params.max_start_epoch, f"epoch {epoch:g}"
        for role in (VAL_METRIC, TRAIN_LOSS):
            s = run.role(role)
            if s is not None and s.tag != tag and len(s.finite()) >= 2:
                before = int(np.sum(s.finite().steps < first_step))
                return before <= params.max_start_epoch, f"after {before} points of {s.tag}"
        span = max(hi_step - lo_step, 1.0)
        share = (first_step - lo_step) / span
        return share <= params.start_fraction, f"at {signals.pct(share)} of the run's steps"

    @staticmethod
    def _run_span(run: Any) -> tuple[float, float]:
        if run.scalars is None or not len(run.scalars):
            return 0.0, 1.0
        steps = run.scalars["step"].to_numpy(dtype=float)
        steps = steps[np.isfinite(steps)]
        return (float(steps.min()), float(steps.max())) if steps.size else (0.0, 1.0)

    @staticmethod
    def _val_swing(run: Any) -> dict | None:
        s = run.role(VAL_METRIC)
        if s is None:
            return None
        s = s.finite()
        if len(s) < 3:
            return None
        d = np.diff(s.values)
        if run.roles.direction(VAL_METRIC) == "min":
            d = -d
        return {"tag": s.tag, "largest_drop": float(max(0.0, -d.min())), "noise": signals.noise_scale(s.values)}
