"""The ``gradcam-blank`` detector: logged attention/saliency statistics that are zero or frozen (seed 004)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from trainfix.diagnostics import signals
from trainfix.diagnostics.detectors.base import Detector
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import ATTN_METRICS

if TYPE_CHECKING:
    from trainfix.diagnostics.run import Run

#: statistics of a map's magnitude: ~0 means a blank map, constant means a frozen one
MAGNITUDE = re.compile(r"energy|max|mean|norm|sum|std|var|cam|saliency|peak|intensity|magnitude")
#: statistics whose constancy alone means a frozen map (entropy of a fixed map)
SHAPE = re.compile(r"entropy")
#: statistics that may be constant by construction or belong to another detector
EXCLUDED = re.compile(r"fraction|ratio|consisten|iou|agree|overlap|similar|corr|top_?k|count|size|temperature|select|"
                      r"share|pointing|box|hoyer|gini|accuracy|loaded")
#: share of the model's parameters the checkpoint filled when the maps were drawn (trainfix attention)
LOADED = re.compile(r"loaded_fraction|fill_share")
#: share of samples whose map is all zero (trainfix attention, the trainer's attn/gradcam_blank_share)
BLANK_SHARE = re.compile(r"blank_share")

#: wrapper prefixes a plain load_state_dict does not strip
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.module.")


def checkpoint_prefixes(run: Any) -> list[str]:
    """Wrapper prefixes found in the run's checkpoint summaries (read lazily; unreadable ones skipped)."""
    found: set[str] = set()
    for ref in getattr(run, "checkpoints", []) or []:
        try:
            summary = ref.summary
        except Exception:
            continue
        if summary is None:
            continue
        for attr in ("prefixes", "wrapper_prefixes", "prefix"):
            value = summary.get(attr) if isinstance(summary, dict) else getattr(summary, attr, None)
            if not value:
                continue
            items = [value] if isinstance(value, str) else (list(value.keys()) if isinstance(value, dict) else list(value))
            for item in items:
                text = str(item)
                # summaries list leading wrapper chains ("module.", "module._orig_mod."); interior
                # ones ("*._orig_mod.") do not stop a load of the top-level keys
                if text and not text.startswith("*") and (
                        any(text.startswith(p) for p in WRAPPER_PREFIXES) or text.endswith(".")):
                    found.add(text)
    return sorted(found)


def _one_hot(name: str, value: float) -> bool:
    """A max of exactly 1 or an entropy of exactly 0: a fully concentrated (one-hot) map, the
    opposite of a blank one (hard selection produces it by construction)."""
    return ("max" in name and value == 1.0) or ("entropy" in name and value == 0.0)


class GradcamBlank(Detector):
    """Logged attention or saliency statistics are flat zero or frozen: the maps are blank.

    What it detects
    ---------------
    An attention/saliency statistic logged by the run (the ``attn_metrics`` role: ``attn/gradcam_energy``,
    ``attn/max``, ``attn/mean``, ``attn/entropy``, ...) with at least ``min_points`` points that is

    * **zero**: a magnitude statistic (energy, max, mean, norm, sum, std, cam, saliency) whose
      largest absolute value is at most ``zero_tol``; or
    * **frozen**: a magnitude or entropy statistic whose relative spread is at most
      ``max_relative_spread`` (equal up to float rounding) over the whole run.

    * **drawn from an unloaded model**: ``attn/loaded_fraction`` (written by ``trainfix attention``:
      the share of the model's parameters the checkpoint filled as it was saved, loaded with
      ``strict=False`` the way most Grad-CAM scripts load it) below 1 at any point: those maps are
      maps of the network's initialisation, whatever they look like; or
    * **mostly black**: ``attn/gradcam_blank_share`` (share of samples whose Grad-CAM is all zero)
      at or above ``max_blank_share`` at its last point.

    One point suffices for these two (a ``trainfix attention`` run writes one per checkpoint).
    Statistics that can be constant by construction (active fractions, top-k ratios, counts, MIL
    selection weights) and agreement metrics (consistency, IoU: see ``attention-inconsistency``) are
    not judged; nor is a max frozen at exactly 1 or an entropy frozen at exactly 0, which describe a
    one-hot map (hard selection), not a blank one.  The
    detector only fires on logged statistics; it never guesses from checkpoints alone.

    Why it matters
    --------------
    A Grad-CAM that is all black means the gradients reaching the target layer are zero: the layer is
    not on the path to the logits, the hooks sit on a module that is not used, or the weights were not
    loaded (a checkpoint saved from a DataParallel or compiled model carries ``module.`` or
    ``_orig_mod.`` prefixes, and a non-strict load silently leaves the network at its random init).
    A frozen attention statistic means the maps do not change with the input or with training.

    Evidence
    --------
    The statistic, its value range and relative spread, the tolerance used, the loaded fraction and
    blank share when logged, and the wrapper prefixes found in the run's checkpoints when any.

    Fix
    ---
    ``checkpoint-keys`` when the run's checkpoints carry wrapper prefixes (strip them so the trained
    weights really load), then ``atcon``; otherwise ``atcon`` (train the attention to agree across
    attribution methods).

    False positives
    ---------------
    A statistic that is logged once and repeated, or a metric that is constant by design, would look
    frozen: the name filter excludes the usual by-construction constants, and ``min_points`` requires
    a series.  A saliency statistic that is legitimately zero early (before the first evaluation) and
    then moves is not constant and is not reported.

    Parameters
    ----------
    zero_tol
        Largest absolute value still called zero (1e-8).
    max_relative_spread
        Largest relative spread still called frozen (1e-6).
    min_points
        Points needed per statistic (4).
    max_blank_share
        Share of all-zero Grad-CAMs at which the maps are called blank (0.5).
    """

    name = "gradcam-blank"
    severity = Severity.WARNING
    requires = (ATTN_METRICS,)
    fixes = ("checkpoint-keys", "atcon")

    @dataclass
    class Params:
        zero_tol: float = 1e-8
        max_relative_spread: float = 1e-6
        min_points: int = 4
        max_blank_share: float = 0.5

    def check(self, run: Run, params: Params) -> Iterable[Finding | Skip]:
        metrics = run.group(ATTN_METRICS)
        unloaded = self._unloaded(run, metrics, params)
        if unloaded is not None:
            yield unloaded
            return
        candidates = {k: s.finite() for k, s in metrics.items()
                      if not EXCLUDED.search(k.lower()) and (MAGNITUDE.search(k.lower()) or SHAPE.search(k.lower()))}
        if not candidates:
            yield self.skip("no attention magnitude or entropy statistic logged (attn/gradcam_energy, attn/max, ...)"
                            " nor attn/loaded_fraction, attn/gradcam_blank_share")
            return
        judged = {k: s for k, s in candidates.items() if len(s) >= params.min_points}
        if not judged:
            s = max(candidates.values(), key=len)
            yield self.skip(signals.need_reason(s.tag, len(s), params.min_points))
            return
        blank: dict[str, dict[str, Any]] = {}
        for key, s in sorted(judged.items()):
            peak = float(np.max(np.abs(s.values)))
            spread = signals.relative_spread(s.values)
            is_magnitude = bool(MAGNITUDE.search(key.lower()))
            if is_magnitude and peak <= params.zero_tol:
                blank[key] = {"tag": s.tag, "kind": "zero", "max_abs": peak, "points": len(s),
                              "steps": (float(s.steps[0]), float(s.steps[-1]))}
            elif spread <= params.max_relative_spread and not _one_hot(key.lower(), float(np.median(s.values))):
                blank[key] = {"tag": s.tag, "kind": "frozen", "value": float(np.median(s.values)),
                              "relative_spread": spread, "points": len(s),
                              "steps": (float(s.steps[0]), float(s.steps[-1]))}
        if not blank:
            return
        prefixes = checkpoint_prefixes(run)
        parts = []
        for key, b in blank.items():
            if b["kind"] == "zero":
                parts.append(f"{b['tag']} is zero (max |value| {signals.fmt(b['max_abs'])}) over {b['points']} points")
            else:
                parts.append(f"{b['tag']} is frozen at {signals.fmt(b['value'], 6)} over {b['points']} points")
        msg = "attention maps look blank: " + "; ".join(parts)
        if prefixes:
            msg += (f"; the run's checkpoints carry wrapper prefixes ({', '.join(prefixes)}), so a plain "
                    "load leaves the weights at their init")
            fixes = ["checkpoint-keys", "atcon"]
        else:
            fixes = ["atcon"]
        first = min(b["steps"][0] for b in blank.values())
        last = max(b["steps"][1] for b in blank.values())
        evidence = {
            "statistics": {k: {kk: vv for kk, vv in b.items() if kk != "steps"} for k, b in blank.items()},
            "zero_tol": params.zero_tol,
            "max_relative_spread": params.max_relative_spread,
            "checkpoint_prefixes": prefixes,
        }
        yield self.finding(msg, evidence=evidence, steps=(first, last), tags=sorted(b["tag"] for b in blank.values()),
                           fixes=fixes, confidence=0.85 if any(b["kind"] == "zero" for b in blank.values()) else 0.7)

    def _unloaded(self, run: Any, metrics: dict, params: Any) -> Finding | None:
        """The single-point criteria: maps of a partly loaded model, or mostly blank maps."""
        loaded = {k: s.finite() for k, s in metrics.items() if LOADED.search(k.lower())}
        blank = {k: s.finite() for k, s in metrics.items() if BLANK_SHARE.search(k.lower())}
        low = {k: s for k, s in loaded.items() if len(s) and float(np.min(s.values)) < 1.0 - 1e-9}
        dark = {k: s for k, s in blank.items() if len(s) and float(s.values[-1]) >= params.max_blank_share}
        if not low and not dark:
            return None
        prefixes = checkpoint_prefixes(run)
        parts, evidence, tags, steps = [], {}, [], []
        for k, s in low.items():
            i = int(np.argmin(s.values))
            parts.append(f"{s.tag} is {signals.fmt(float(s.values[i]) * 100)}%: the maps were drawn from a model the "
                         "checkpoint filled only that far, so they are maps of the untrained network")
            evidence["loaded_fraction"] = float(s.values[i])
            tags.append(s.tag)
            steps.append(float(s.steps[i]))
        for k, s in dark.items():
            parts.append(f"{s.tag} is {signals.fmt(float(s.values[-1]) * 100)}% (Grad-CAM all zero on that share of samples)")
            evidence["blank_share"] = float(s.values[-1])
            tags.append(s.tag)
            steps.append(float(s.steps[-1]))
        at = steps[0]  # the other map statistics recorded with the same maps (same step)
        for k in ("gradcam_entropy", "pointing_game", "energy_in_box", "gradcam_guided_agreement", "accuracy"):
            series = metrics[k].finite() if k in metrics else None
            if series is not None and len(series):
                same = np.flatnonzero(series.steps == at)
                if same.size:
                    evidence[k] = float(series.values[same[-1]])
        msg = "attention maps are not the trained model's: " + "; ".join(parts)
        if prefixes:
            msg += (f"; the run's checkpoints carry wrapper prefixes ({', '.join(prefixes)}), which a plain "
                    "load_state_dict does not strip")
        evidence.update({"checkpoint_prefixes": prefixes, "max_blank_share": params.max_blank_share})
        fixes = ["checkpoint-keys", "atcon"] if (prefixes or low) else ["atcon"]
        return self.finding(msg, evidence=evidence, steps=(min(steps), max(steps)), tags=sorted(tags), fixes=fixes,
                            confidence=0.9 if low else 0.75)
