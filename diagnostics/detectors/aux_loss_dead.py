"""The ``aux-loss-dead`` detector: a loss term that never changes (the seed 000 "L1 fix")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import LOSS_TERMS, LOSS_TERMS_RAW, is_main_term

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


class AuxLossDead(Detector):
    """A loss term that is constant for the whole run, so it has no gradient.

    What it detects
    ---------------
    A logged loss term (``loss/<term>`` or its raw value ``loss/<term>/raw``) whose relative spread
    ``(max - min) / |median|`` over all its points is below ``max_relative_spread`` (1e-6: equal up to
    float32 rounding), with at least ``min_points`` points.  A term that is identically zero is
    reported only when the config gives it a non-zero weight (otherwise it is switched off on
    purpose).

    Why it matters
    --------------
    A quantity that does not change whatever the parameters do has zero gradient: the term adds a
    constant to the loss and nothing to training.  The classic case is an "L1 sparsity" computed on an
    attention map that was first normalised to sum to 1: the L1 norm of such a map is exactly 1 for
    every input, so the term is ``weight x 1.0`` forever and the maps never become sparse.  The term
    looks healthy in a loss table ("sparsity 0.1000"), which is why it survives code review.

    Evidence
    --------
    The constant value, the relative spread, the number of points and steps, whether the value is
    1.0 (or the configured weight x 1.0, which identifies a normalised map's L1 norm), and the config
    values of the term's weight and kind.

    Fix
    ---
    ``sparsity-l1`` for a sparsity term: a sparsity measure on the un-normalised map, which actually
    varies with the map and pulls it toward few active locations.  For other terms no recipe applies;
    the message says the term is dead so the code computing it can be checked.

    False positives
    ---------------
    A term logged only once per run and repeated, or a term rounded to few digits by the logger, can
    look constant; the ``min_points`` and the 1e-6 tolerance make both unlikely for a real loss, which
    always varies with the batch.  Terms that are always exactly 0 with no configured weight are
    treated as switched off and not reported.

    Parameters
    ----------
    max_relative_spread
        Largest ``(max - min) / |median|`` still called constant (1e-6).
    min_points
        Points of the term needed before it can be called constant (4).
    """

    name = "aux-loss-dead"
    severity = Severity.ERROR
    requires_any = (LOSS_TERMS, LOSS_TERMS_RAW)
    fixes = ("sparsity-l1",)

    @dataclass
    class Params:
        max_relative_spread: float = 1e-6
        min_points: int = 4

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        per_term: dict[str, list] = {}
        for role in (LOSS_TERMS, LOSS_TERMS_RAW):
            for key, s in run.group(role).items():
                per_term.setdefault(key, []).append(s.finite())
        if not per_term:
            yield self.skip("no loss/<term> tags logged")
            return
        config = run.config or {}
        judged = 0
        short: list[str] = []
        for key in sorted(per_term):
            series = [s for s in per_term[key] if len(s) >= params.min_points]
            if not series:
                s = max(per_term[key], key=len)
                short.append(signals.need_reason(s.tag, len(s), params.min_points))
                continue
            judged += 1
            constant = [s for s in series
                        if signals.relative_spread(s.values) <= params.max_relative_spread]
            raw_tags = {s.tag for s in run.group(LOSS_TERMS_RAW).values()}
            raw = [s for s in series if s.tag in raw_tags]
            # the raw value decides when it is logged (a weight schedule can move a dead term's
            # weighted value); otherwise every logged view of the term must be constant
            if raw:
                if not any(s.tag in {c.tag for c in constant} for s in raw):
                    continue
            elif len(constant) < len(series):
                continue
            finding = self._report(key, constant, config, params)
            if finding is not None:
                yield finding
        if not judged:
            yield self.skip("; ".join(short))

    def _report(self, key: str, series: list, config: dict, params: Any) -> Finding | None:
        weight, _ = knobs.term_weight_scale(config, key)
        wk, _, kk = knobs.term_knobs(key)
        main = series[0]
        value = float(np.median(main.values))
        if value == 0.0 and all(float(np.max(np.abs(s.values))) == 0.0 for s in series):
            if not (weight is not None and weight != 0.0):
                return None  # switched off on purpose
        values = {s.tag: float(np.median(s.values)) for s in series}
        is_one = any(abs(v - 1.0) <= 1e-6 for v in values.values())
        is_weight_x_one = weight is not None and weight != 0.0 and any(
            abs(v - weight) <= 1e-6 * max(1.0, abs(weight)) for v in values.values())
        steps = (float(min(s.steps[0] for s in series)), float(max(s.steps[-1] for s in series)))
        points = max(len(s) for s in series)
        shown = ", ".join(f"{t} = {signals.fmt(v, 6)}" for t, v in values.items())
        role = "main" if is_main_term(key) else "auxiliary"
        msg = (f"{role} loss term {key} is constant ({shown}) over {points} points, steps "
               f"{signals.fmt(steps[0])}-{signals.fmt(steps[1])}: a term that never changes has zero "
               f"gradient and trains nothing")
        if value == 0.0 and weight:
            msg += f"; it is exactly 0 although its weight is {signals.fmt(weight)}"
        elif is_one or is_weight_x_one:
            msg += ("; the value is exactly 1.0" + (" (x its weight)" if is_weight_x_one and not is_one else "")
                    + ", the L1 norm of a map normalised to sum 1, which is 1 for every input")
        cfg = knobs.config_values(config, wk, kk)
        if cfg:
            msg += "; config: " + ", ".join(f"{k}: {v}" for k, v in cfg.items())
        evidence = {
            "term": key,
            "constant_values": values,
            "relative_spread": max(signals.relative_spread(s.values) for s in series),
            "max_relative_spread": params.max_relative_spread,
            "points": points,
            "is_one": is_one,
            "is_weight_times_one": is_weight_x_one,
            "config": cfg,
        }
        if weight is not None:
            evidence["weight"] = weight
        fixes = ["sparsity-l1"] if "spars" in key.lower() else []
        return self.finding(msg, evidence=evidence, steps=steps, tags=sorted(values), fixes=fixes,
                            confidence=0.95 if (is_one or is_weight_x_one) else 0.85)
