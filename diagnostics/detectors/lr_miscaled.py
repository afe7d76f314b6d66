"""The ``lr-miscaled`` detector: an effective learning rate far outside the optimizer's range (seed 003)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import knobs, signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import LR, TRAIN_LOSS, TRAIN_LOSS_STEP

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run


def _g(value: float) -> str:
    """A config number as a person writes it: 0.0005, 16, 512, 1.5625e-05."""
    return f"{value:.6g}"


class LrMiscaled(Detector):
    """The effective learning rate is far from what the optimizer and the global batch call for.

    What it detects
    ---------------
    **Too low** (the usual case): the effective lr (the peak of the logged ``lr`` after warmup, or
    the config's own lr when that peak is up to 25% below it: a schedule first logged after it began
    to decay; else the config's recorded ``scaled_lr``, else the lr the config's scaling rule
    computes) is below the typical range of the optimizer in the run's regime
    (``knobs.LR_RANGES``: from scratch Adam/AdamW
    1e-4..3e-3 and SGD 1e-2..0.5; fine-tuning pretrained weights, which ``pretrained``, a model name
    or path or a Hugging Face Trainer config says, Adam 1e-6..3e-4 and SGD 1e-4..5e-2) and either

    * a batch-scaling rule in the config shrank the base lr by ``min_rule_shrink`` (8x) or more (for
      SGD, whose own rule is linear, the result must also be ``far_factor`` below the range): a
      linear ``lr x global_batch / reference`` rule applied at a tiny global batch (5e-4 x 16 / 512 =
      1.5625e-05), the global batch being ``batch_size x grad_accum x world_size``; the rule is read
      from ``optimizer.lr_scaling``/``reference_batch`` or inferred from a recorded ``scaled_lr``; or
    * the lr is ``log_only_factor`` (10x) below the range and the training loss barely moves in the
      first part of the run (falls less than ``flat_drop`` of its level, or by less than ``noise_k``
      standard errors of its start/end medians without a significant Theil-Sen fall); or
    * the lr is ``far_factor`` (3x) below the range, the loss is flat, and the update-to-weight ratio
      between two checkpoints says the weights are starving.

    **Too high**: the effective lr is ``far_factor`` above the range and the loss shows harm: non-
    finite values, a rise from start to end beyond its noise, a validation loss that never beats its
    first evaluation and ends 10% above it (what a run with only a few training-loss points shows),
    or exploding update ratios (early spikes are reported alongside, but isolated spikes alone are
    normal in small-batch losses).  A fine-tune (peak 3e-3 on a pretrained Whisper) is judged
    against the fine-tuning range, where 3e-3 is 10x too high.

    Why it matters
    --------------
    A linear scaling rule tuned for batch 512 divides the lr by 32 at a global batch of 16. With Adam
    the lr is the step size itself, so the model moves 32x slower than intended; the loss looks
    "stable" while nothing is learned, and learned loss weights (uncertainty weighting) stay frozen.
    Square-root scaling is the rule that fits adaptive optimizers.  The opposite error, an lr far
    above the range, shows as early spikes and divergence.

    Evidence
    --------
    Optimizer and its family range, base lr, scaling rule and reference batch, the global batch with
    its factors, the computed lr with its formula, the recorded ``scaled_lr``, the logged peak lr and
    where it came from, the shrink factor, the lr the square-root rule would give, the loss's relative
    fall and noise over the first part of the run, the warmup found, and the checkpoints' update
    ratio when two or more checkpoints exist.

    Fix
    ---
    Too low: ``lr-sqrt-scaling`` (with a scaling rule at fault it switches the rule to the square
    root referenced to the run's global batch; without one it sets the lr to the evidence's
    ``expected_lr``, the geometric middle of the optimizer's range), plus ``lr-warmup`` when the run
    has no warmup (a larger lr needs one).  Too high: ``lower-lr`` toward the top of the range (plus
    ``lr-warmup`` without warmup).

    False positives
    ---------------
    Fine-tuning deliberately uses small lrs (2e-5 with AdamW is common): without config evidence of a
    scaling rule, "too low" needs the lr 10x below the range **and** a flat loss, so ordinary fine-
    tunes are not reported.  Optimizers with other ranges (Adafactor, LARS) are treated as unknown:
    only lrs outside both ranges are judged.

    Parameters
    ----------
    far_factor
        How far outside the range (multiplicative) counts as "far" (3.0).
    log_only_factor
        Below the range by this factor for a finding without config evidence (10.0).
    min_rule_shrink
        A scaling rule that divides the base lr by at least this much is evidence (8.0).
    early_fraction
        Share of the loss points judged as "the first part of the run" (0.5).
    flat_drop
        A loss that falls less than this fraction of its start level there is flat (0.1).
    noise_k
        ... or whose fall is within this many standard errors (3.0).
    min_points
        Loss points needed to judge flatness (5).
    """

    name = "lr-miscaled"
    severity = Severity.WARNING
    fixes = ("lr-sqrt-scaling", "lr-warmup", "lower-lr")

    @dataclass
    class Params:
        far_factor: float = 3.0
        log_only_factor: float = 10.0
        min_rule_shrink: float = 8.0
        early_fraction: float = 0.5
        flat_drop: float = 0.1
        noise_k: float = 3.0
        min_points: int = 5

    # ------------------------------------------------------------------------------------------
    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        config = run.config or {}
        cfg = self._config_lr(config)
        lr_series = run.role(LR)
        lr_series = lr_series.finite() if lr_series is not None else None
        eff, eff_from, logged_peak, warming = self._effective(cfg, lr_series)
        if eff is None:
            yield self.skip("no learning rate: neither an lr tag nor optimizer lr in the config")
            return
        if not eff > 0:
            yield self.skip(f"effective lr is {eff}: nothing to judge")
            return

        family = knobs.optimizer_family(knobs.optimizer_name(config))
        regime, regime_why = knobs.training_regime(config)
        lo, hi = knobs.lr_range(family, regime)
        loss = self._loss_evidence(run, params)
        loss.update(self._val_evidence(run))
        ur = self._update_ratio(run)
        warmup = knobs.has_warmup(config, lr_series.values if lr_series is not None else None)

        evidence: dict[str, Any] = {
            "optimizer": knobs.optimizer_name(config),
            "optimizer_family": family,
            "regime": regime,
            "regime_from": regime_why,
            "typical_range": [lo, hi],
            "effective_lr": eff,
            "effective_lr_from": eff_from,
            "logged_peak_lr": logged_peak,
            "warmup": warmup,
            **{k: v for k, v in cfg.items() if k not in ("effective", "effective_from")},
            **{f"loss_{k}": v for k, v in loss.items() if k != "tag"},
        }
        if ur:
            evidence["update_ratio"] = ur
        tags = [t for t in (lr_series.tag if lr_series is not None else None, loss.get("tag")) if t]
        steps = self._steps(run, lr_series, loss)
        verdict = str((ur or {}).get("verdict", "")).lower()

        shrink = cfg.get("rule_shrink")
        rule_evidence = shrink is not None and shrink >= params.min_rule_shrink
        if family == "sgd":
            # linear scaling is SGD's own rule (Goyal et al. 2017): only a result far below the
            # range counts against it
            rule_evidence = rule_evidence and eff < lo / params.far_factor
        flat = bool(loss.get("flat"))
        if warming and eff_from.startswith("peak of logged"):
            flat = False  # the logged lr is still ramping up: its peak (and the loss's pace) unknown
        too_low = eff < lo and (
            rule_evidence
            or (eff <= lo / params.log_only_factor and flat)
            or (eff < lo / params.far_factor and flat and verdict == "starving"))
        if too_low:
            yield self._too_low(eff, lo, hi, family, cfg, loss, verdict, warmup, rule_evidence, evidence,
                                tags, steps)
            return
        # isolated spikes are common in healthy small-batch losses: they are shown, not decisive
        harm = (loss.get("nonfinite", 0) > 0 or loss.get("rises", False) or loss.get("val_rises", False)
                or verdict == "exploding")
        if eff > hi * params.far_factor and harm:
            yield self._too_high(eff, lo, hi, family, loss, verdict, warmup, evidence, tags, steps)

    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _effective(cfg: dict[str, Any], lr_series: Any) -> tuple[float | None, str, float | None, bool]:
        """The effective lr and where it came from, the logged peak, and whether the logged lr is
        still warming up at the end of what was logged (its peak not known yet).

        The logged peak wins, except while it is still warming up, and except when the config's own
        lr (no scaling rule) lies within 25% above it: a schedule that decays from the first step
        (a Hugging Face linear schedule logged every few steps) never logs the lr it starts from,
        and the config's value is that peak."""
        logged_peak, warming = None, False
        if lr_series is not None and len(lr_series):
            vals = lr_series.values
            logged_peak = float(np.max(vals))
            warming = len(vals) >= 3 and vals[-1] >= 0.999 * logged_peak and vals[0] < 0.5 * logged_peak
        config_eff = cfg.get("effective")
        if logged_peak is not None and not (warming and config_eff is not None):
            if (cfg.get("effective_from") == "optimizer lr in the config" and config_eff is not None
                    and logged_peak < config_eff <= 1.25 * logged_peak):
                return (config_eff, f"optimizer lr in the config (the logged {lr_series.tag} peaks at "
                        f"{_g(logged_peak)}: the schedule was first logged after it began)", logged_peak, warming)
            return logged_peak, f"peak of logged {lr_series.tag}", logged_peak, warming
        if config_eff is not None:
            return config_eff, cfg["effective_from"], logged_peak, warming
        return None, "", logged_peak, warming

    @staticmethod
    def _config_lr(config: dict) -> dict[str, Any]:
        """Base lr, global batch, scaling rule and the lr they produce, from the config."""
        out: dict[str, Any] = {}
        base = knobs.finite_float(knobs.lookup(config, "lr"))
        scaled = knobs.finite_float(knobs.lookup(config, "scaled_lr"))
        rule = knobs.lookup(config, "lr_scaling")
        rule = str(rule).lower() if rule not in (None, False) else None
        if rule in ("true", "1"):
            rule = "linear"
        ref = knobs.finite_float(knobs.lookup(config, "reference_batch"))
        bs = knobs.finite_float(knobs.lookup(config, "batch_size"))
        accum = knobs.finite_float(knobs.lookup(config, "grad_accum")) or 1.0
        world = knobs.finite_float(knobs.lookup(config, "world_size")) or 1.0
        if base is not None:
            out["base_lr"] = base
            out["base_lr_key"] = ".".join(knobs.locate(config, "lr")[0][0])
        if rule:
            out["lr_scaling"] = rule
        if ref is not None:
            out["reference_batch"] = ref
        if bs is not None:
            g = bs * accum * world
            out["global_batch"] = g
            out["global_batch_formula"] = (f"{_g(bs)} (batch) x {_g(accum)} (accum) x "
                                           f"{_g(world)} (world size) = {_g(g)}")
        g = out.get("global_batch")
        computed = None
        if base is not None and g and ref and rule in ("linear", "sqrt"):
            if rule == "linear":
                computed = base * g / ref
                out["formula"] = f"{_g(base)} x {_g(g)} / {_g(ref)} = {_g(computed)}"
            else:
                computed = base * math.sqrt(g / ref)
                out["formula"] = (f"{_g(base)} x sqrt({_g(g)} / {_g(ref)}) = "
                                  f"{_g(computed)}")
            out["computed_lr"] = computed
        if scaled is not None:
            out["scaled_lr"] = scaled
        if base is not None and g and ref:
            out["sqrt_rule_lr"] = base * math.sqrt(g / ref)
        effective = scaled if scaled is not None else computed if computed is not None else base
        if effective is not None:
            out["effective"] = effective
            out["effective_from"] = ("recorded scaled_lr" if scaled is not None else
                                     f"{rule} scaling rule in the config" if computed is not None else
                                     "optimizer lr in the config")
        # a shrink only counts as the scaling rule's doing when a rule is configured or, in a
        # foreign config without one, a recorded scaled lr implies it (``lr_scaling: none`` with a
        # different scaled lr is left alone)
        if (base is not None and effective and effective > 0 and base / effective > 1.0 + 1e-9
                and rule in (None, "linear", "sqrt")):
            out["rule_shrink"] = base / effective
            if ref is None and g and rule in (None, "linear"):
                # a recorded scaled_lr without the rule: infer the reference batch of a linear rule
                inferred = g * base / effective
                out["inferred_reference_batch"] = inferred
                out["formula"] = (f"{_g(base)} x {_g(g)} / {_g(inferred)} = "
                                  f"{_g(effective)} (a linear batch/{_g(inferred)} rule)")
                out["sqrt_rule_lr"] = base * math.sqrt(g / inferred)
        return out

    @staticmethod
    def _loss_evidence(run: Any, params: Any) -> dict[str, Any]:
        """How much the training loss moved in the first part of the run, relative to its noise."""
        s = run.role(TRAIN_LOSS)
        if s is None or len(s.finite()) < params.min_points:
            s2 = run.role(TRAIN_LOSS_STEP)
            if s2 is not None and len(s2.finite()) >= params.min_points:
                s = s2
        if s is None:
            return {}
        out: dict[str, Any] = {"tag": s.tag, "nonfinite": int(np.sum(~np.isfinite(s.values)))}
        fin = s.finite()
        if len(fin) < params.min_points:
            out["points"] = len(fin)
            return out
        n = max(params.min_points, int(round(len(fin) * params.early_fraction)))
        early = fin.values[:n]
        start, end = signals.head_tail(early, 0.2, 2)
        noise = signals.noise_scale(early)
        drop = start - end
        rel_drop = drop / abs(start) if start else float("nan")
        # flat: it lost less than ``flat_drop`` of its level, or the fall is not beyond its noise
        # (the head and tail medians differ by less than ``noise_k`` of their standard errors and
        # the Theil-Sen slope is not significantly negative)
        k = max(2, int(round(len(early) * 0.2)))
        stderr = noise * np.sqrt(2.0 / k) if noise > 0 else 0.0
        trend = signals.theil_sen(fin.steps[:n], early)
        flat = bool((rel_drop < params.flat_drop) or (drop < params.noise_k * stderr and not trend.hi < 0))
        first_all, last_all = signals.head_tail(fin.values, 0.1, 2)
        full_noise = signals.noise_scale(fin.values)
        rises = bool(last_all - first_all > max(0.1 * abs(first_all), params.noise_k * (full_noise or 0.0)))
        out.update({
            "early_points": int(n),
            "early_steps": [float(fin.steps[0]), float(fin.steps[n - 1])],
            "early_start": start,
            "early_end": end,
            "early_rel_drop": rel_drop,
            "early_noise": noise,
            "flat": flat,
            "start": first_all,
            "end": last_all,
            "rises": rises,
            "early_spikes": len(signals.spikes(early)),
        })
        return out

    @staticmethod
    def _val_evidence(run: Any) -> dict[str, Any]:
        """Whether the validation loss got worse from its first evaluation on (never better than the
        first by 2%, ending 10% above it): harm that a run with only a few training-loss points
        (an HF run logging every 500 steps) still shows in its evaluations."""
        from trainfix.diagnostics.roles_vocab import VAL_LOSS

        s = run.role(VAL_LOSS)
        if s is None or len(s.finite()) < 4:
            return {}
        v = s.finite().values
        first, end = float(v[0]), float(np.median(v[-max(2, len(v) // 4):]))
        rises = bool(first > 0 and float(np.min(v[1:])) >= 0.98 * first and end >= 1.1 * first)
        return {"val_tag": s.tag, "val_first": first, "val_end": end, "val_points": int(len(v)), "val_rises": rises}

    @staticmethod
    def _update_ratio(run: Any) -> dict | None:
        if len(getattr(run, "checkpoints", []) or []) < 2:
            return None
        from trainfix.diagnostics.checkpoints import update_ratio_evidence

        try:
            ev = update_ratio_evidence(run)
        except Exception:  # checkpoint trouble must not stop an lr diagnosis
            return None
        return ev if isinstance(ev, dict) else None

    @staticmethod
    def _steps(run: Any, lr_series: Any, loss: dict) -> tuple[float, float] | None:
        if loss.get("early_steps"):
            return tuple(loss["early_steps"])  # type: ignore[return-value]
        if lr_series is not None and len(lr_series):
            return float(lr_series.steps[0]), float(lr_series.steps[-1])
        return None

    # ------------------------------------------------------------------------------------------
    def _too_low(self, eff, lo, hi, family, cfg, loss, verdict, warmup, rule_evidence, evidence, tags, steps):
        fam = {"adam": "Adam-family", "sgd": "SGD"}.get(family, "common-optimizer")
        if evidence.get("regime") == "finetune":
            fam += " fine-tuning"
        msg = (f"effective lr {_g(eff)} is {signals.fmt(lo / eff, 2)}x below the typical {fam} range "
               f"{_g(lo)}..{_g(hi)}")
        if rule_evidence:
            msg += (f"; the config's batch scaling shrank the base lr {_g(cfg['base_lr'])} by "
                    f"{signals.fmt(cfg['rule_shrink'], 3)}x: {cfg.get('formula', '')}")
            if cfg.get("global_batch_formula"):
                msg += f" with global batch {cfg['global_batch_formula']}"
        if loss.get("flat") is not None and "early_rel_drop" in loss:
            msg += (f"; the training loss fell {signals.pct(loss['early_rel_drop'])} over its first "
                    f"{loss['early_points']} points (noise {signals.fmt(loss['early_noise'])})")
        if verdict == "starving":
            msg += "; checkpoint update ratios say the weights barely move"
        # the lr to aim for: with a scaling rule at fault, the base lr itself (it holds at the batch
        # the run uses: the sqrt rule referenced to the run's global batch); else the middle of the
        # optimizer's typical range (geometric), or its low end when the optimizer is unknown
        if rule_evidence and cfg.get("base_lr"):
            expected = float(cfg["base_lr"])
            if cfg.get("sqrt_rule_lr"):
                msg += (f"; square-root scaling gives {_g(expected)} referenced to the run's own global "
                        f"batch ({_g(cfg['sqrt_rule_lr'])} from the rule's reference batch)")
        else:
            expected = knobs.typical_lr(family, evidence.get("regime", "scratch"))
            msg += f"; raise the lr toward {_g(expected)} (typical {_g(lo)}..{_g(hi)})"
        fixes = ["lr-sqrt-scaling"]
        if not warmup:
            fixes.append("lr-warmup")
        severity = Severity.ERROR if (rule_evidence and loss.get("flat")) else Severity.WARNING
        confidence = 0.9 if (rule_evidence and loss.get("flat")) else 0.75
        evidence = dict(evidence, direction="too_low", expected_lr=expected)
        return self.finding(msg, severity=severity, evidence=evidence, steps=steps, tags=tags, fixes=fixes,
                            confidence=confidence)

    def _too_high(self, eff, lo, hi, family, loss, verdict, warmup, evidence, tags, steps):
        fam = {"adam": "Adam-family", "sgd": "SGD"}.get(family, "common-optimizer")
        if evidence.get("regime") == "finetune":
            fam += " fine-tuning"
        harm = []
        if loss.get("nonfinite"):
            harm.append(f"{loss['nonfinite']} non-finite loss values")
        if loss.get("early_spikes", 0) >= 2:
            harm.append(f"{loss['early_spikes']} loss spikes in the first part of the run")
        if loss.get("rises"):
            harm.append(f"the loss rose from {signals.fmt(loss['start'])} to {signals.fmt(loss['end'])}")
        if loss.get("val_rises"):
            harm.append(f"{loss['val_tag']} never beat its first evaluation {signals.fmt(loss['val_first'])} "
                        f"and ended at {signals.fmt(loss['val_end'])}")
        if verdict == "exploding":
            harm.append("checkpoint update ratios are far above 1e-3 per step")
        msg = (f"effective lr {_g(eff)} is {signals.fmt(eff / hi, 2)}x above the typical {fam} range "
               f"{_g(lo)}..{_g(hi)} and the run shows it: " + "; ".join(harm))
        fixes = ["lower-lr"] + ([] if warmup else ["lr-warmup"])
        evidence = dict(evidence, direction="too_high", expected_lr=hi)
        return self.finding(msg, evidence=evidence, steps=steps, tags=tags, fixes=fixes, confidence=0.8)
