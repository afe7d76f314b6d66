"""The seed-story detectors on generated runs: each must fire at the strength its seed describes
(also on the first 30% of the run where the issue asks for it) and stay quiet on healthy, noisy runs.

Runs are built in memory: a long scalar table with the canonical tags the trainer writes, a config
dict, and a RoleMap for the canonical tags (the ingest's ``resolve_roles`` when it is available).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from trainfix.diagnostics.detectors import load
from trainfix.diagnostics.detectors.base import DOC_SECTIONS
from trainfix.diagnostics.finding import Finding, Severity, Skip
from trainfix.diagnostics.roles_vocab import (
    ATTN_METRICS,
    CLASS_METRICS,
    GRAD_NORM,
    LOSS_TERMS,
    LOSS_TERMS_RAW,
    LR,
    MAXIMIZE,
    MEMORY,
    MINIMIZE,
    SPARSITY_ACTIVE_FRACTION,
    TASK_LOSSES,
    TRAIN_LOSS,
    TRAIN_LOSS_STEP,
    UW_LOG_VARS,
    UW_WEIGHTS,
    VAL_ACC,
    VAL_LOSS,
    VAL_METRIC,
    Resolution,
    RoleMap,
)
from trainfix.diagnostics.run import Run

SEED_DETECTORS = (
    "sparsity-gradient-vanishing", "aux-loss-dead", "lr-miscaled", "uncertainty-weights-similar",
    "sparse-from-start", "class-disparity", "memory-growth", "gradcam-blank", "attention-inconsistency",
)

STEPS_PER_EPOCH = 21


# --- building runs ---------------------------------------------------------------------------------
def canonical_roles(tags: list[str]) -> RoleMap:
    """RoleMap for the trainer's canonical tags (what the ingest resolves them to)."""
    rm = RoleMap()
    single = {"train/loss": (TRAIN_LOSS, MINIMIZE), "train/loss_step": (TRAIN_LOSS_STEP, MINIMIZE),
              "val/loss": (VAL_LOSS, MINIMIZE), "lr": (LR, None), "grad_norm": (GRAD_NORM, None),
              "mem/allocated_mb": (MEMORY, None), "sparsity/active_fraction": (SPARSITY_ACTIVE_FRACTION, None)}
    for tag in tags:
        if tag in single:
            role, d = single[tag]
            rm.single[role] = Resolution(tag, "canonical name", d)
        elif tag == "val/acc":
            rm.single[VAL_ACC] = Resolution(tag, "canonical name", MAXIMIZE)
            rm.single[VAL_METRIC] = Resolution(tag, "canonical name", MAXIMIZE)
        elif m := re.fullmatch(r"loss/task/(.+)", tag):
            rm.groups.setdefault(TASK_LOSSES, {})[m[1]] = Resolution(tag, "canonical name", MINIMIZE)
        elif m := re.fullmatch(r"loss/(.+)/raw", tag):
            rm.groups.setdefault(LOSS_TERMS_RAW, {})[m[1]] = Resolution(tag, "canonical name", MINIMIZE)
        elif m := re.fullmatch(r"loss/([^/]+)", tag):
            rm.groups.setdefault(LOSS_TERMS, {})[m[1]] = Resolution(tag, "canonical name", MINIMIZE)
        elif m := re.fullmatch(r"uw/weight/(.+)", tag):
            rm.groups.setdefault(UW_WEIGHTS, {})[m[1]] = Resolution(tag, "canonical name", None)
        elif m := re.fullmatch(r"uw/log_var/(.+)", tag):
            rm.groups.setdefault(UW_LOG_VARS, {})[m[1]] = Resolution(tag, "canonical name", None)
        elif m := re.fullmatch(r"val/acc/(.+)", tag):
            rm.groups.setdefault(CLASS_METRICS, {})[m[1]] = Resolution(tag, "canonical name", MAXIMIZE)
        elif m := re.fullmatch(r"attn/(.+)", tag):
            rm.groups.setdefault(ATTN_METRICS, {})[m[1]] = Resolution(tag, "canonical name", None)
    return rm


def make_run(series: dict, config: dict | None = None, inputs: dict | None = None, checkpoints=None,
             roles: RoleMap | None = None) -> Run:
    rows = []
    for tag, (steps, values) in series.items():
        for s, v in zip(np.asarray(steps, dtype=float), np.asarray(values, dtype=float)):
            rows.append((tag, float(s), float(v), 1.7e9 + float(s), "memory"))
    df = pd.DataFrame(rows, columns=["tag", "step", "value", "wall_time", "source"])
    df = df.sort_values(["tag", "step"], kind="stable").reset_index(drop=True)
    tags = sorted(series)
    return Run(Path("/tmp/generated-run"), df, config or {}, [], list(checkpoints or []),
               roles if roles is not None else canonical_roles(tags), inputs or {})


def check(name: str, run: Run, **overrides) -> tuple[list[Finding], list[Skip]]:
    cls = load(name)
    params = cls.Params(**overrides)
    out = list(cls().check(run, params))
    for item in out:
        assert isinstance(item, (Finding, Skip))
    findings = [o for o in out if isinstance(o, Finding)]
    for f in findings:
        assert f.detector == name
        json.dumps(f.to_dict())  # evidence must be JSON-serialisable
        assert f.tags or name == "sparse-from-start", "a finding names the tags it used"
        assert 0.0 <= f.confidence <= 1.0
    return findings, [o for o in out if isinstance(o, Skip)]


def fires(name: str, run: Run, **overrides) -> Finding:
    findings, skips = check(name, run, **overrides)
    assert findings, f"{name} did not fire; skips: {[s.reason for s in skips]}"
    return findings[0]


def quiet(name: str, run: Run, **overrides) -> None:
    findings, _ = check(name, run, **overrides)
    assert not findings, f"{name} fired on a healthy run: {[f.message for f in findings]}"


def epochs(n: int) -> np.ndarray:
    return np.arange(1, n + 1, dtype=float) * STEPS_PER_EPOCH


def healthy_loss(rng, steps, start=2.3, end=0.25, tau=None, noise=0.02) -> np.ndarray:
    tau = tau or steps[-1] / 5
    clean = end + (start - end) * np.exp(-(steps - steps[0]) / tau)
    return clean * (1 + rng.normal(0, noise, steps.size))


# --- the contract ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", SEED_DETECTORS)
def test_docstring_sections_in_order(name):
    doc = load(name).__doc__ or ""
    positions = []
    for section in DOC_SECTIONS:
        m = re.search(rf"^\s*{re.escape(section)}\n\s*-{{{len(section)}}}\s*$", doc, re.M)
        assert m, f"{name}: section {section!r} missing or not underlined"
        positions.append(m.start())
    assert positions == sorted(positions)
    assert doc.strip().splitlines()[0].strip().endswith(".")


@pytest.mark.parametrize("name", SEED_DETECTORS)
def test_empty_run_gives_skip_or_nothing(name):
    run = make_run({"train/loss": (epochs(3), [2.3, 2.0, 1.8])})
    findings, _ = check(name, run)
    assert not findings


# --- sparsity-gradient-vanishing (seed 000) -----------------------------------------------------------
def sparsity_seed_run(rng, n_epochs=30, weight=0.001, scale=1000.0, raw_level=5.3, raw_fall=0.0,
                      config=None, log_weighted=True):
    steps = epochs(n_epochs)
    cls = healthy_loss(rng, steps, 0.69, 0.3)
    raw = raw_level * (1 - raw_fall * (steps - steps[0]) / (steps[-1] - steps[0])) * (1 + rng.normal(0, 0.004, steps.size))
    weighted = raw * weight / scale
    series = {"train/loss": (steps, cls + weighted), "loss/cls": (steps, cls), "loss/sparsity/raw": (steps, raw),
              "loss/consistency": (steps, np.zeros(steps.size)), "loss/consistency/raw": (steps, np.zeros(steps.size))}
    if log_weighted:
        series["loss/sparsity"] = (steps, weighted)
    cfg = config if config is not None else {"loss": {"name": "self-corrective-attention", "sparsity_kind": "entropy",
                                                     "sparsity_weight": weight, "sparsity_scale": scale,
                                                     "consistency_weight": 0.0}}
    return make_run(series, cfg)


def test_sparsity_fires_on_seed_000():
    f = fires("sparsity-gradient-vanishing", sparsity_seed_run(np.random.default_rng(0)))
    assert f.evidence["term"] == "sparsity"
    assert f.evidence["share_of_total"] < 1e-4
    assert f.evidence["config"] == {"loss.sparsity_weight": 0.001, "loss.sparsity_scale": 1000.0,
                                    "loss.sparsity_kind": "entropy"}
    assert f.fixes == ["sparsity-l1", "sparsity-rescale"]
    assert "loss.sparsity_weight: 0.001" in f.message and "% of the total loss" in f.message
    assert "loss/sparsity" in f.tags
    assert f.evidence["slope_ci"][0] <= 0 <= f.evidence["slope_ci"][1] or abs(f.evidence["implied_rel_change"]) < 0.1


def test_sparsity_fires_in_first_30_percent():
    run = sparsity_seed_run(np.random.default_rng(1)).truncated(0.3)
    f = fires("sparsity-gradient-vanishing", run)
    assert f.steps[1] <= 9 * STEPS_PER_EPOCH


def test_sparsity_foreign_config_raw_only():
    cfg = {"lambda_sparsity": 0.001, "lambda_consistency": 0, "sparsity_divisor": 1000}
    run = sparsity_seed_run(np.random.default_rng(2), config=cfg, log_weighted=False)
    f = fires("sparsity-gradient-vanishing", run)
    assert f.evidence["weighted_from"].startswith("raw x weight")
    assert "lambda_sparsity: 0.001" in f.message
    assert f.evidence["weight"] == 0.001 and f.evidence["scale"] == 1000


def test_sparsity_quiet_when_well_weighted_and_falling():
    run = sparsity_seed_run(np.random.default_rng(3), weight=0.1, scale=1.0, raw_fall=0.4)
    quiet("sparsity-gradient-vanishing", run)


def test_sparsity_quiet_when_tiny_but_clearly_falling():
    run = sparsity_seed_run(np.random.default_rng(4), raw_fall=0.4)
    quiet("sparsity-gradient-vanishing", run)


def test_sparsity_quiet_when_substantial_share_even_if_flat():
    run = sparsity_seed_run(np.random.default_rng(5), weight=0.05, scale=1.0)
    quiet("sparsity-gradient-vanishing", run)


def test_sparsity_skips_without_aux_terms():
    rng = np.random.default_rng(6)
    steps = epochs(20)
    run = make_run({"train/loss": (steps, healthy_loss(rng, steps)), "loss/cls": (steps, healthy_loss(rng, steps))})
    findings, skips = check("sparsity-gradient-vanishing", run)
    assert not findings and skips and "auxiliary" in skips[0].reason


# --- aux-loss-dead ------------------------------------------------------------------------------------
def l1_normalised_run(rng, n_epochs=30, weight=0.1):
    steps = epochs(n_epochs)
    cls = healthy_loss(rng, steps, 0.69, 0.3)
    ones = np.ones(steps.size, dtype=np.float32).astype(float)
    return make_run({"train/loss": (steps, cls + weight), "loss/cls": (steps, cls),
                     "loss/sparsity": (steps, ones * np.float32(weight)), "loss/sparsity/raw": (steps, ones)},
                    {"loss": {"sparsity_kind": "l1", "sparsity_weight": weight, "sparsity_scale": 1.0}})


def test_aux_dead_fires_on_normalised_l1():
    f = fires("aux-loss-dead", l1_normalised_run(np.random.default_rng(10)))
    assert f.severity == Severity.ERROR
    assert f.evidence["is_one"] is True
    assert "exactly 1.0" in f.message and "normalised to sum 1" in f.message
    assert f.fixes == ["sparsity-l1"]


def test_aux_dead_fires_in_first_30_percent():
    fires("aux-loss-dead", l1_normalised_run(np.random.default_rng(11)).truncated(0.3))


def test_aux_dead_weight_times_one_only_weighted_logged():
    steps = epochs(12)
    rng = np.random.default_rng(12)
    run = make_run({"train/loss": (steps, healthy_loss(rng, steps)), "loss/cls": (steps, healthy_loss(rng, steps)),
                    "loss/sparsity": (steps, np.full(steps.size, 0.1))}, {"lambda_sparsity": 0.1})
    f = fires("aux-loss-dead", run)
    assert f.evidence["is_weight_times_one"] is True and "x its weight" in f.message


def test_aux_dead_quiet_on_moving_terms_and_switched_off_term():
    rng = np.random.default_rng(13)
    steps = epochs(30)
    cls = healthy_loss(rng, steps, 0.69, 0.3)
    spars = healthy_loss(rng, steps, 5.3, 3.2, noise=0.01)
    run = make_run({"train/loss": (steps, cls + 0.1 * spars), "loss/cls": (steps, cls),
                    "loss/sparsity": (steps, 0.1 * spars), "loss/sparsity/raw": (steps, spars),
                    "loss/consistency": (steps, np.zeros(steps.size))},
                   {"loss": {"sparsity_weight": 0.1, "consistency_weight": 0.0}})
    quiet("aux-loss-dead", run)


def test_aux_dead_fires_on_zero_term_with_weight():
    rng = np.random.default_rng(14)
    steps = epochs(10)
    run = make_run({"loss/cls": (steps, healthy_loss(rng, steps)), "loss/consistency": (steps, np.zeros(steps.size))},
                   {"loss": {"consistency_weight": 0.1}})
    f = fires("aux-loss-dead", run)
    assert "exactly 0" in f.message and f.fixes == []


def test_aux_dead_skips_with_too_few_points():
    steps = epochs(3)
    run = make_run({"loss/sparsity/raw": (steps, np.ones(3))})
    findings, skips = check("aux-loss-dead", run)
    assert not findings and "only 3 points" in skips[0].reason


# --- lr-miscaled (seed 003) -------------------------------------------------------------------------
SEED_003_CONFIG = {
    "optimizer": {"name": "adamw", "lr": 5e-4, "lr_scaling": "linear", "reference_batch": 512,
                  "scaled_lr": 1.5625e-05},
    "training": {"batch_size": 4, "grad_accum": 4, "epochs": 40},
    "run": {"world_size": 1},
    "schedule": {"name": "cosine", "warmup_epochs": 0.0},
}


def slow_loss_run(rng, lr_peak=1.5625e-05, config=SEED_003_CONFIG, n_epochs=40, per_step=False,
                  start=2.3, end=2.22, noise=0.01):
    steps = epochs(n_epochs)
    lr = lr_peak * 0.5 * (1 + np.cos(np.pi * (steps - steps[0]) / (steps[-1] - steps[0])))
    loss = start + (end - start) * (steps - steps[0]) / (steps[-1] - steps[0])
    series = {"lr": (steps, lr), "train/loss": (steps, loss * (1 + rng.normal(0, noise, steps.size)))}
    return make_run(series, config)


def test_lr_fires_on_seed_003_linear_rule():
    f = fires("lr-miscaled", slow_loss_run(np.random.default_rng(20)))
    assert f.evidence["direction"] == "too_low"
    assert f.evidence["global_batch"] == 16
    assert f.evidence["rule_shrink"] == pytest.approx(32.0)
    assert "0.0005 x 16 / 512 = 1.5625e-05" in f.evidence["formula"]
    assert "1.5625e-05" in f.message and "32x" in f.message
    assert f.fixes == ["lr-sqrt-scaling", "lr-warmup"]
    assert f.severity == Severity.ERROR  # config rule and a flat loss agree
    assert f.evidence["sqrt_rule_lr"] == pytest.approx(5e-4 * np.sqrt(16 / 512))
    assert f.evidence["expected_lr"] == pytest.approx(5e-4)


def test_lr_fires_in_first_30_percent():
    run = slow_loss_run(np.random.default_rng(21)).truncated(0.3)
    f = fires("lr-miscaled", run)
    assert f.evidence["direction"] == "too_low"


def test_lr_foreign_config_infers_linear_rule():
    cfg = {"learning_rate": 5e-4, "batch_size": 4, "gradient_accumulation_steps": 4, "scaled_lr": 1.5625e-05,
           "warmup_epochs": 0}
    run = slow_loss_run(np.random.default_rng(22), config=cfg)
    f = fires("lr-miscaled", run)
    assert f.evidence["inferred_reference_batch"] == pytest.approx(512)
    assert f.evidence["optimizer_family"] == "unknown"
    assert "lr-sqrt-scaling" in f.fixes


def test_lr_config_only_no_logged_lr():
    rng = np.random.default_rng(23)
    steps = epochs(40)
    run = make_run({"train/loss": (steps, 2.3 * (1 + rng.normal(0, 0.01, steps.size)))}, SEED_003_CONFIG)
    f = fires("lr-miscaled", run)
    assert f.evidence["effective_lr_from"] == "recorded scaled_lr"


def test_lr_warmup_not_recommended_when_configured():
    cfg = json.loads(json.dumps(SEED_003_CONFIG))
    cfg["schedule"]["warmup_epochs"] = 5
    f = fires("lr-miscaled", slow_loss_run(np.random.default_rng(24), config=cfg))
    assert f.fixes == ["lr-sqrt-scaling"]


def test_lr_too_high_with_divergence():
    rng = np.random.default_rng(25)
    steps = np.arange(1, 301, dtype=float)
    loss = 2.3 + 0.01 * steps * (1 + rng.normal(0, 0.05, steps.size))
    loss[[40, 90, 150]] *= 5
    loss[-5:] = np.nan
    run = make_run({"lr": (steps, np.full(steps.size, 0.05)), "train/loss_step": (steps, loss)},
                   {"optimizer": {"name": "adam", "lr": 0.05}})
    f = fires("lr-miscaled", run)
    assert f.evidence["direction"] == "too_high"
    assert f.fixes == ["lower-lr", "lr-warmup"]


@pytest.mark.parametrize("seed", range(5))
def test_lr_quiet_on_adam_1e3_batch_64(seed):
    rng = np.random.default_rng(100 + seed)
    steps = np.arange(10, 2001, 10, dtype=float)
    lr = np.minimum(1.0, steps / 200) * 1e-3 * 0.5 * (1 + np.cos(np.pi * steps / steps[-1]))
    loss = healthy_loss(rng, steps, 2.3, 0.2, noise=0.08)
    cfg = {"optimizer": {"name": "adam", "lr": 1e-3, "lr_scaling": "none"}, "training": {"batch_size": 64}}
    quiet("lr-miscaled", make_run({"lr": (steps, lr), "train/loss_step": (steps, loss)}, cfg))
    quiet("lr-miscaled", make_run({"lr": (steps, lr), "train/loss_step": (steps, loss)}, cfg).truncated(0.3))


def test_lr_quiet_on_finetune_near_optimum_small_lr():
    rng = np.random.default_rng(30)
    steps = np.arange(10, 1001, 10, dtype=float)
    loss = 0.35 + 0.02 * np.exp(-steps / 300) + rng.normal(0, 0.01, steps.size)  # already near its optimum
    cfg = {"learning_rate": 2e-5, "per_device_train_batch_size": 16, "lr_scheduler_type": "linear"}
    quiet("lr-miscaled", make_run({"lr": (steps, np.linspace(2e-5, 0, steps.size)), "train/loss": (steps, loss)}, cfg))


def test_lr_quiet_on_sgd_step_schedule_and_sqrt_rule():
    rng = np.random.default_rng(31)
    steps = epochs(90)
    lr = 0.1 * 0.1 ** np.floor((steps / STEPS_PER_EPOCH) / 30)
    loss = healthy_loss(rng, steps, 2.3, 0.5, noise=0.03)
    quiet("lr-miscaled", make_run({"lr": (steps, lr), "train/loss": (steps, loss)},
                                   {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}}))
    cfg = {"optimizer": {"name": "adamw", "lr": 5e-4, "lr_scaling": "sqrt", "reference_batch": 16},
           "training": {"batch_size": 2, "grad_accum": 8}, "schedule": {"warmup_epochs": 5}}
    quiet("lr-miscaled", make_run({"train/loss": (steps, loss)}, cfg))


def test_lr_uses_update_ratio_evidence(monkeypatch):
    import trainfix.diagnostics.checkpoints as ck

    monkeypatch.setattr(ck, "update_ratio_evidence", lambda run: {"verdict": "starving",
                                                                  "median_update_ratio_per_step": 2e-6})
    rng = np.random.default_rng(32)
    steps = epochs(30)
    flat = 2.3 * (1 + rng.normal(0, 0.01, steps.size))
    cfg = {"optimizer": {"name": "adam", "lr": 2.5e-5}}
    run = make_run({"lr": (steps, np.full(steps.size, 2.5e-5)), "train/loss": (steps, flat)}, cfg,
                   checkpoints=[SimpleNamespace(path="a"), SimpleNamespace(path="b")])
    f = fires("lr-miscaled", run)
    assert f.evidence["update_ratio"]["verdict"] == "starving"
    # without checkpoints the same lr (4x below the range, no config rule) is not enough
    quiet("lr-miscaled", make_run({"lr": (steps, np.full(steps.size, 2.5e-5)), "train/loss": (steps, flat)}, cfg))


# --- uncertainty-weights-similar (seed 003) -------------------------------------------------------
def uw_run(rng, weights, task_losses=(2.0, 0.6, 0.35), n_epochs=30, noise=0.003, config=None, as_log_vars=False):
    steps = epochs(n_epochs)
    series = {}
    for i, w in enumerate(weights):
        w = np.broadcast_to(np.asarray(w, dtype=float), steps.shape)
        vals = w + (rng.normal(0, noise, steps.size) if noise else 0.0)
        if as_log_vars:
            series[f"uw/log_var/t{i}"] = (steps, -np.log(vals))
        else:
            series[f"uw/weight/t{i}"] = (steps, vals)
    for i, L in enumerate(task_losses):
        series[f"loss/task/t{i}"] = (steps, L * (1 + rng.normal(0, 0.03, steps.size)))
    return make_run(series, config if config is not None else SEED_003_CONFIG)


def test_uw_fires_on_seed_003_frozen_at_008():
    f = fires("uncertainty-weights-similar", uw_run(np.random.default_rng(40), [0.08, 0.082, 0.079]))
    assert f.evidence["band"] < 0.01
    assert f.evidence["cause"] == "starved_by_tiny_lr"
    assert f.evidence["task_loss_ratio"] > 5
    assert "1/L_i" in f.message and f.fixes == ["uncertainty-reinit"]


def test_uw_fires_in_first_30_percent_and_from_log_vars():
    run = uw_run(np.random.default_rng(41), [0.08, 0.082, 0.079], as_log_vars=True).truncated(0.3)
    f = fires("uncertainty-weights-similar", run)
    assert f.evidence["weights_from"] == "exp(-log_var)"


def test_uw_exactly_constant_means_not_in_optimizer():
    cfg = {"optimizer": {"name": "adam", "lr": 1e-3}, "loss": {"log_var_in_optimizer": False}}
    f = fires("uncertainty-weights-similar", uw_run(np.random.default_rng(42), [1.0, 1.0, 1.0], noise=0.0, config=cfg))
    assert f.evidence["cause"] == "not_in_optimizer"
    cfg2 = {"optimizer": {"name": "adam", "lr": 1e-3}}
    f2 = fires("uncertainty-weights-similar", uw_run(np.random.default_rng(43), [1.0, 1.0, 1.0], noise=0.0, config=cfg2))
    assert f2.evidence["cause"] == "not_in_optimizer" and "exactly constant" in f2.message


def test_uw_quiet_when_weights_separate_and_settle():
    steps = epochs(30)
    t = (steps - steps[0]) / (steps[-1] - steps[0])
    settle = 1 - np.exp(-t * 6)
    targets = [1 / 2.0, 1 / 0.6, 1 / 0.35]
    weights = [1.0 + (tg - 1.0) * settle for tg in targets]
    quiet("uncertainty-weights-similar", uw_run(np.random.default_rng(44), weights, noise=0.01,
                                                 config={"optimizer": {"name": "adam", "lr": 1e-3}}))


def test_uw_quiet_when_task_losses_equal():
    run = uw_run(np.random.default_rng(45), [0.5, 0.5, 0.5], task_losses=(0.7, 0.72, 0.69), noise=0.002)
    quiet("uncertainty-weights-similar", run)


def test_uw_skips_single_task():
    findings, skips = check("uncertainty-weights-similar", uw_run(np.random.default_rng(46), [0.08], task_losses=(1.0,)))
    assert not findings and skips


# --- sparse-from-start (seed 004) -----------------------------------------------------------------
def val_swinging(rng, steps):
    return np.clip(0.6 + 0.25 * np.sin(steps / 40.0) + rng.normal(0, 0.08, steps.size), 0.05, 0.9)


def test_sparse_fires_on_seed_004_config():
    rng = np.random.default_rng(50)
    steps = epochs(30)
    run = make_run({"val/acc": (steps, val_swinging(rng, steps))},
                   {"sparse": {"enabled": True, "active_fraction": 0.1, "start_epoch": 0}})
    f = fires("sparse-from-start", run)
    assert f.fixes == ["two-stage-sparse"]
    assert "10%" in f.message and "sparse.active_fraction: 0.1" in f.message
    assert f.evidence["val_metric"]["largest_drop"] > 0.2


def test_sparse_fires_on_foreign_config_and_on_logged_fraction():
    run = make_run({"train/loss": (epochs(5), [2, 1.8, 1.7, 1.6, 1.5])}, {"use_ast": True, "activation_rate": 10})
    assert fires("sparse-from-start", run).evidence["active_fraction"] == pytest.approx(0.1)
    steps = epochs(30)
    run = make_run({"sparsity/active_fraction": (steps, np.full(steps.size, 0.1))})
    f = fires("sparse-from-start", run.truncated(0.3))
    assert f.evidence["first_active_fraction"] == pytest.approx(0.1)


def test_sparse_quiet_when_dense_two_stage_or_moderate():
    steps = epochs(30)
    quiet("sparse-from-start", make_run({}, {"sparse": {"enabled": False, "active_fraction": 0.25}}))
    quiet("sparse-from-start", make_run({}, {"sparse": {"enabled": True, "active_fraction": 0.5, "start_epoch": 0}}))
    quiet("sparse-from-start", make_run({}, {"sparse": {"enabled": True, "active_fraction": 0.1, "start_epoch": 20}}))
    staged = {"sparse": {"enabled": True, "active_fraction": 0.25},
              "stages": [{"name": "dense", "epochs": 20, "overrides": {"sparse.enabled": False}},
                         {"name": "sparse", "epochs": 10, "init_from": "best", "overrides": {"optimizer.lr": 5e-5}}]}
    quiet("sparse-from-start", make_run({}, staged))
    frac = np.where(steps < 20 * STEPS_PER_EPOCH, 1.0, 0.25)
    quiet("sparse-from-start", make_run({"sparsity/active_fraction": (steps, frac)}))
    late = steps[steps >= 20 * STEPS_PER_EPOCH]
    quiet("sparse-from-start", make_run({"sparsity/active_fraction": (late, np.full(late.size, 0.1)),
                                         "train/loss": (steps, np.linspace(2, 0.3, steps.size))}))


def test_sparse_skips_without_settings():
    findings, skips = check("sparse-from-start", make_run({"train/loss": (epochs(5), [2, 1.8, 1.7, 1.6, 1.5])}))
    assert not findings and skips


# --- class-disparity (seed 004) --------------------------------------------------------------------
def class_run(rng, finals: dict, n_epochs=30, noise=0.03, config=None, percent=False):
    steps = epochs(n_epochs)
    series = {}
    for cls, final in finals.items():
        curve = final * (1 - np.exp(-steps / (steps[-1] / 5))) + rng.normal(0, noise, steps.size)
        curve = np.clip(curve, 0, 1)
        series[f"val/acc/{cls}"] = (steps, curve * (100 if percent else 1))
    return make_run(series, config or {})


def test_class_disparity_fires_on_seed_004():
    cfg = {"data": {"name": "image-folder", "class_counts": {"Normal": 2000, "TB": 700, "Pneumonia": 3800,
                                                             "COVID": 3600}}}
    run = class_run(np.random.default_rng(60), {"Normal": 0.6, "TB": 1.0, "Pneumonia": 0.6, "COVID": 0.6}, config=cfg)
    f = fires("class-disparity", run)
    assert f.evidence["spread"] == pytest.approx(0.4, abs=0.06)
    assert f.evidence["best_class"] == "TB"
    assert f.evidence["count_ratio"] == pytest.approx(3800 / 700)
    assert f.fixes == ["class-balance"]
    assert "points" in f.message and "training counts" in f.message


def test_class_disparity_percent_and_counts_from_inputs():
    rng = np.random.default_rng(61)
    run = class_run(rng, {"0": 0.95, "1": 0.3, "2": 0.9}, percent=True)
    run.inputs["class_counts"] = [100, 10, 100]
    f = fires("class-disparity", run)
    assert f.evidence["worst_class"] == "1" and f.evidence["count_ratio"] == pytest.approx(10)


def test_class_disparity_no_recipe_when_already_balanced():
    cfg = {"loss": {"class_weights": "balanced"}, "data": {"sampler": "balanced"}}
    run = class_run(np.random.default_rng(62), {"a": 0.95, "b": 0.5}, config=cfg)
    f = fires("class-disparity", run)
    assert f.fixes == [] and "already balances" in f.message


@pytest.mark.parametrize("seed", range(5))
def test_class_disparity_quiet_on_balanced_noisy_classes(seed):
    rng = np.random.default_rng(200 + seed)
    finals = {str(c): rng.uniform(0.85, 0.99) for c in range(10)}
    quiet("class-disparity", class_run(rng, finals, noise=0.04))


# --- memory-growth (seed 003) -----------------------------------------------------------------------
def memory_run(values, steps=None, config=None):
    steps = epochs(len(values)) if steps is None else steps
    return make_run({"mem/allocated_mb": (steps, values)}, config or {})


def test_memory_growth_fires_and_extrapolates_oom():
    rng = np.random.default_rng(70)
    n = 15
    mem = 9000 + 450 * np.arange(n) + rng.normal(0, 30, n)
    run = make_run({"mem/allocated_mb": (epochs(n), mem), "epoch": (epochs(n), np.arange(1, n + 1))},
                   {"device_total_mb": 16384, "training": {"epochs": 40}})
    f = fires("memory-growth", run)
    assert f.severity == Severity.ERROR and "before the planned 40 epochs end" in f.message
    assert 15 < f.evidence["exhausted_at_epoch"] < 20 and "(epoch 1" in f.message
    assert f.fixes == []
    assert "no config change fixes this" in f.message
    at = f.evidence["exhausted_at_step"]
    assert 15 * STEPS_PER_EPOCH < at < 20 * STEPS_PER_EPOCH  # the seed ran out at epoch 16
    assert f.evidence["slope_mb_per_1000_steps"] == pytest.approx(450 / STEPS_PER_EPOCH * 1000, rel=0.15)


def test_memory_growth_without_total_states_rate():
    rng = np.random.default_rng(71)
    steps = np.arange(0, 3000, 25, dtype=float)
    mem = 1500 + 0.2 * steps + rng.normal(0, 8, steps.size)
    f = fires("memory-growth", memory_run(mem, steps))
    assert "per 1000 steps" in f.message and "not recorded" in f.message
    assert f.severity == Severity.WARNING


@pytest.mark.parametrize("seed", range(4))
def test_memory_quiet_on_flat_noise_with_startup_jump(seed):
    rng = np.random.default_rng(300 + seed)
    steps = np.arange(0, 3000, 25, dtype=float)
    mem = np.where(steps < 100, 300.0, 2100.0) + rng.normal(0, 15, steps.size)
    quiet("memory-growth", memory_run(mem, steps))


def test_memory_quiet_on_mid_run_jump_and_plateau():
    rng = np.random.default_rng(72)
    steps = np.arange(0, 3000, 25, dtype=float)
    jump = np.where(steps < 1500, 2000.0, 2600.0) + rng.normal(0, 10, steps.size)
    quiet("memory-growth", memory_run(jump, steps))
    plateau = 2000 + 600 * (1 - np.exp(-steps / 300)) + rng.normal(0, 10, steps.size)
    quiet("memory-growth", memory_run(plateau, steps))


# --- gradcam-blank (seed 004) -------------------------------------------------------------------------
def test_gradcam_blank_fires_on_zero_energy():
    steps = epochs(10)
    run = make_run({"attn/gradcam_energy": (steps, np.zeros(steps.size)), "attn/entropy": (steps, 4.0 + 0.1 * np.sin(steps))})
    f = fires("gradcam-blank", run)
    assert f.evidence["statistics"]["gradcam_energy"]["kind"] == "zero"
    assert f.fixes == ["atcon"]


def test_gradcam_blank_frozen_and_checkpoint_prefixes():
    steps = epochs(10)
    summary = SimpleNamespace(prefixes={"module.": 412})
    run = make_run({"attn/max": (steps, np.full(steps.size, 0.0625))},
                   checkpoints=[SimpleNamespace(path="best.pt", summary=summary)])
    f = fires("gradcam-blank", run)
    assert f.fixes == ["checkpoint-keys", "atcon"]
    assert "module." in f.message


def test_gradcam_quiet_on_moving_stats_and_constant_by_design():
    rng = np.random.default_rng(80)
    steps = epochs(20)
    run = make_run({"attn/gradcam_energy": (steps, 0.3 + rng.normal(0, 0.02, steps.size)),
                    "attn/active_fraction": (steps, np.full(steps.size, 0.1)),
                    "attn/entropy": (steps, np.linspace(5.0, 3.5, steps.size))})
    quiet("gradcam-blank", run)


# --- attention-inconsistency (ATCON, seed 001) --------------------------------------------------------
def test_attention_inconsistency_fires_on_low_flat_agreement():
    rng = np.random.default_rng(90)
    steps = epochs(50)
    f = fires("attention-inconsistency", make_run({"attn/consistency": (steps, 0.3 + rng.normal(0, 0.03, steps.size))}))
    assert f.fixes == ["atcon"] and f.evidence["final_level"] < 0.4


def test_attention_inconsistency_quiet_when_improving_or_high():
    rng = np.random.default_rng(91)
    steps = epochs(50)
    rising = np.linspace(0.2, 0.45, steps.size) + rng.normal(0, 0.02, steps.size)
    quiet("attention-inconsistency", make_run({"attn/iou": (steps, rising)}))
    quiet("attention-inconsistency", make_run({"attn/consistency": (steps, 0.8 + rng.normal(0, 0.03, steps.size))}))


# --- the ingest's role resolution -------------------------------------------------
def test_seed_runs_through_resolve_roles():
    from trainfix.diagnostics.roles import resolve_roles as resolve

    cases = [
        ("sparsity-gradient-vanishing", sparsity_seed_run(np.random.default_rng(0))),
        ("aux-loss-dead", l1_normalised_run(np.random.default_rng(10))),
        ("lr-miscaled", slow_loss_run(np.random.default_rng(20))),
        ("uncertainty-weights-similar", uw_run(np.random.default_rng(40), [0.08, 0.082, 0.079])),
        ("class-disparity", class_run(np.random.default_rng(60), {"a": 0.6, "b": 1.0, "c": 0.6})),
        ("memory-growth", memory_run(9000 + 450 * np.arange(15.0))),
        ("attention-inconsistency", make_run({"attn/consistency": (epochs(20), 0.3 + 0.01 * np.sin(epochs(20)))})),
    ]
    for name, run in cases:
        resolved = resolve(run.tags)
        run = Run(run.path, run.scalars, run.config, [], [], resolved, run.inputs)
        fires(name, run)


# --- shapes seen in real logs -------------------------------------------------------------------------
def test_sparsity_quiet_on_converged_detection_term():
    """Shape of a Detectron2 run (loss_rpn_cls 0.78 -> 0.001 within 20 steps, total ~0.3): the
    objectness term mattered and was minimised; that is convergence, not a vanishing term."""
    rng = np.random.default_rng(7)
    steps = np.arange(19, 1500, 20, dtype=float)
    rpn = np.concatenate([[0.78], np.abs(rng.normal(0.001, 0.0004, steps.size - 1))])
    cls = 0.03 + 0.96 * np.exp(-(steps - 19) / 100) + rng.normal(0, 0.004, steps.size)
    box = 0.2 + 0.3 * np.exp(-(steps - 19) / 600) + rng.normal(0, 0.01, steps.size)
    total = rpn + cls + box
    run = make_run({"train/loss": (steps, total), "loss/rpn_cls": (steps, rpn), "loss/cls": (steps, cls),
                    "loss/box_reg": (steps, box)})
    quiet("sparsity-gradient-vanishing", run)


def test_lr_quiet_on_speech_finetune_with_tiny_lr_and_falling_loss():
    """Shape of a Whisper fine-tune (peak lr 1e-5 after warmup, loss 0.5 -> 0.2 with noise)."""
    rng = np.random.default_rng(8)
    steps = np.arange(25, 4001, 25, dtype=float)
    lr = np.where(steps < 500, steps / 500, 1 - (steps - 500) / 3600) * 9.9e-6
    loss = 0.2 + 0.3 * np.exp(-steps / 800) + rng.normal(0, 0.04, steps.size)
    quiet("lr-miscaled", make_run({"lr": (steps, lr), "train/loss": (steps, loss)}))


def test_lr_fires_on_log_only_when_far_below_and_flat():
    rng = np.random.default_rng(9)
    steps = np.arange(10, 2001, 10, dtype=float)
    loss = 2.3 * (1 + rng.normal(0, 0.02, steps.size))
    f = fires("lr-miscaled", make_run({"lr": (steps, np.full(steps.size, 5e-6)), "train/loss": (steps, loss)},
                                      {"optimizer": {"name": "adam"}}))
    assert f.fixes == ["lr-sqrt-scaling", "lr-warmup"] and "raise the lr" in f.message
    assert f.severity == Severity.WARNING
    assert f.evidence["expected_lr"] == pytest.approx(np.sqrt(1e-4 * 3e-3))


def test_through_the_engine_with_overrides():
    from trainfix.diagnostics import engine
    run = slow_loss_run(np.random.default_rng(20))
    report = engine.diagnose(run, select=["lr-miscaled"], params={"lr-miscaled": {"min_rule_shrink": "40"}})
    assert not [f for f in report.findings if f.detector == "lr-miscaled"]  # 32x shrink < 40: rule evidence off
    report = engine.diagnose(run, select=["lr-miscaled", "memory-growth"])
    assert not report.errors
    assert [f.detector for f in report.findings] == ["lr-miscaled"]
    assert [s.detector for s in report.skipped] == ["memory-growth"]  # no memory tag: skipped, not run


def test_attention_inconsistency_sets_aside_a_consistency_loss_statistic():
    """The self-corrective loss logs attn/consistency = mean |a - a_prev| beside loss/consistency:
    a distance that falls as maps stabilise, not an agreement between attribution methods."""
    rng = np.random.default_rng(92)
    steps = epochs(30)
    dist = 0.002 + 0.015 * np.exp(-steps / 100) + rng.normal(0, 0.0005, steps.size)
    run = make_run({"attn/consistency": (steps, dist), "loss/consistency": (steps, np.zeros(steps.size)),
                    "loss/cls": (steps, healthy_loss(rng, steps))})
    findings, skips = check("attention-inconsistency", run)
    assert not findings and "loss statistic" in skips[0].reason
    quiet("attention-inconsistency", make_run({"attn/consistency_dist": (steps, dist)}))


def test_class_disparity_ignores_per_task_accuracies_of_a_multitask_run():
    """A multi-task run logs val/acc/<task>: a 10-way task sits far below 2-way ones by nature."""
    rng = np.random.default_rng(63)
    run = class_run(rng, {"digit": 0.2, "parity": 0.7, "ge5": 0.65})
    steps = epochs(30)
    extra = {f"loss/task/{t}": (steps, np.full(steps.size, L)) for t, L in (("digit", 2.3), ("parity", 0.69), ("ge5", 0.69))}
    series = {t: (run.series(t).steps, run.series(t).values) for t in run.tags}
    findings, skips = check("class-disparity", make_run({**series, **extra}))
    assert not findings and skips


def test_class_disparity_quiet_while_lagging_classes_still_climb():
    """Early in training classes are learned one after another: a gap that is still closing is
    not a disparity yet."""
    rng = np.random.default_rng(64)
    steps = epochs(8)
    series = {}
    for c in range(10):
        delay = c * 1.5 * STEPS_PER_EPOCH
        acc = 0.95 / (1 + np.exp(-(steps - delay) / (1.2 * STEPS_PER_EPOCH))) + rng.normal(0, 0.02, steps.size)
        series[f"val/acc/{c}"] = (steps, np.clip(acc, 0, 1))
    quiet("class-disparity", make_run(series))


def test_class_disparity_fires_on_a_climbing_tail_when_the_counts_are_imbalanced():
    """With training counts known to be long-tailed, a tail class still creeping up at the end of
    the run is the symptom of the imbalance, not a reason to wait."""
    rng = np.random.default_rng(66)
    steps = epochs(12)
    series = {}
    for c in range(10):
        delay = c * 1.1 * STEPS_PER_EPOCH
        acc = 0.97 / (1 + np.exp(-(steps - delay) / (1.5 * STEPS_PER_EPOCH))) + rng.normal(0, 0.01, steps.size)
        series[f"val/acc/{c}"] = (steps, np.clip(acc, 0, 1))
    counts = [int(130 * 0.774 ** c) for c in range(10)]  # 130 .. 13: a 10x long tail
    quiet("class-disparity", make_run(series))
    finding = fires("class-disparity", make_run(series, inputs={"dataset": {"run": {"train_class_counts": counts}}}))
    assert finding.evidence["count_ratio"] == pytest.approx(counts[0] / counts[-1])
    assert "class-balance" in finding.fixes


def test_class_disparity_skips_with_few_evaluations():
    run = class_run(np.random.default_rng(65), {"a": 0.2, "b": 0.9}, n_epochs=3)
    findings, skips = check("class-disparity", run)
    assert not findings and "only 3 points" in skips[0].reason


def test_sparsity_term_switched_on_later_is_judged_from_then():
    """A consistency memory is empty in the first epoch (term exactly 0), then the term is active."""
    rng = np.random.default_rng(15)
    steps = np.arange(5, 401, 5, dtype=float)
    cls = healthy_loss(rng, steps, 2.3, 0.3, noise=0.03)
    on = steps > 100
    healthy_term = np.where(on, 0.1 * (0.4 + rng.normal(0, 0.05, steps.size)), 0.0)
    run = make_run({"train/loss_step": (steps, cls + healthy_term), "loss/cls": (steps, cls),
                    "loss/consistency": (steps, healthy_term)}, {"loss": {"consistency_weight": 0.1}})
    quiet("sparsity-gradient-vanishing", run)
    tiny = np.where(on, 1e-5 * (0.4 + rng.normal(0, 0.01, steps.size)), 0.0)
    run = make_run({"train/loss_step": (steps, cls + tiny), "loss/cls": (steps, cls), "loss/consistency": (steps, tiny)},
                   {"loss": {"consistency_weight": 1e-4}})
    f = fires("sparsity-gradient-vanishing", run)
    assert f.steps[0] > 100 and f.fixes == [] and "raise consistency_weight" in f.message


def test_gradcam_quiet_on_one_hot_selection_statistics():
    """Hard MIL selection logs a selection max of exactly 1 and an entropy of 0 by construction."""
    steps = epochs(20)
    run = make_run({"attn/selection_max": (steps, np.ones(steps.size)), "attn/max": (steps, np.ones(steps.size)),
                    "attn/entropy": (steps, np.zeros(steps.size))})
    quiet("gradcam-blank", run)


def test_lr_quiet_on_sgd_with_its_linear_rule_at_a_small_batch():
    rng = np.random.default_rng(33)
    steps = epochs(30)
    loss = healthy_loss(rng, steps, 2.3, 0.4, noise=0.03)
    cfg = {"optimizer": {"name": "sgd", "lr": 0.1, "lr_scaling": "linear", "reference_batch": 256},
           "training": {"batch_size": 16}}
    quiet("lr-miscaled", make_run({"lr": (steps, np.full(steps.size, 0.1 * 16 / 256)), "train/loss": (steps, loss)}, cfg))


def test_memory_quiet_on_cpu_rss_settling():
    """Process RSS of a CPU run: +60 MB in the first third, then flat within a few MB."""
    rng = np.random.default_rng(73)
    steps = np.arange(5, 3001, 5, dtype=float)
    mem = 440 + 62 * (1 - np.exp(-steps / 300)) + rng.normal(0, 0.3, steps.size)
    quiet("memory-growth", memory_run(mem, steps))


def test_class_disparity_no_recipe_when_training_classes_are_balanced():
    cfg = {"data": {"name": "digits", "train_class_counts": [135] * 3}}
    f = fires("class-disparity", class_run(np.random.default_rng(66), {"a": 0.95, "b": 0.5, "c": 0.97}, config=cfg))
    assert f.fixes == [] and "balanced" in f.message
    cfg = {"data": {"name": "digits", "train_class_counts": [135, 7, 135]}}
    f = fires("class-disparity", class_run(np.random.default_rng(66), {"a": 0.95, "b": 0.5, "c": 0.97}, config=cfg))
    assert f.fixes == ["class-balance"] and f.evidence["count_ratio"] == pytest.approx(135 / 7)


def test_class_disparity_points_at_sparse_training_from_the_start():
    cfg = {"data": {"name": "digits", "train_class_counts": [130, 135, 128]},
           "sparse": {"enabled": True, "active_fraction": 0.1, "start_epoch": 0}}
    f = fires("class-disparity", class_run(np.random.default_rng(67), {"a": 0.6, "b": 1.0, "c": 0.6}, config=cfg))
    assert f.fixes == ["two-stage-sparse"] and f.evidence["sparse_active_fraction"] == 0.1
    cfg["data"]["train_class_counts"] = [130, 13, 128]
    f = fires("class-disparity", class_run(np.random.default_rng(67), {"a": 0.6, "b": 1.0, "c": 0.6}, config=cfg))
    assert f.fixes == ["class-balance", "two-stage-sparse"]
    del cfg["data"]["train_class_counts"]  # counts unknown: the sparse cause first
    f = fires("class-disparity", class_run(np.random.default_rng(67), {"a": 0.6, "b": 1.0, "c": 0.6}, config=cfg))
    assert f.fixes == ["two-stage-sparse", "class-balance"]


def test_lr_quiet_while_a_long_warmup_is_still_ramping():
    rng = np.random.default_rng(34)
    steps = np.arange(10, 301, 10, dtype=float)
    lr = 1e-3 * steps / 3000  # a 3000-step warmup, seen for its first 300 steps
    quiet("lr-miscaled", make_run({"lr": (steps, lr), "train/loss": (steps, 2.3 * (1 + rng.normal(0, 0.01, steps.size)))},
                                   {"optimizer": {"name": "adam"}}))
