"""Curve-shape signatures met in real logs, each on a realistic curve built here.

- ``loss-divergence``: a loss that falls without bound (an unbounded objective: -3.4e4 -> -6.5e7
  over 70 epochs, still falling at the end) and a loss that jumps once and settles several times
  above its minimum (0.022 -> 17.9 -> 0.14); quiet on negative log-likelihoods that converge, on a
  spike that recovers and on a warm restart still falling.
- ``accuracy-oscillation``: quiet on long runs whose precision or mAP dips for one or two
  evaluations on a small validation set, and on a single dip after the climb; still fires on the
  short multiple-instance run's swings and on an epoch-to-epoch alternation in a long run.
- ``batch-loss-variance``: quiet on a small-batch classifier whose typical batch loss fell by an
  order of magnitude while a few hard samples still cost 1-4.
- roles: ``mean_loss`` is the training loss.
"""

from __future__ import annotations

import numpy as np

import synthetic_runs as synthetic
from trainfix.diagnostics.detectors import load
from trainfix.diagnostics.finding import Finding, Severity
from trainfix.diagnostics.roles import resolve_roles
from trainfix.diagnostics.roles_vocab import TRAIN_LOSS


def findings(name, run, **overrides) -> list[Finding]:
    cls = load(name)
    return [f for f in cls().check(run, cls.Params(**overrides)) if isinstance(f, Finding)]


def per_epoch(tags: dict[str, np.ndarray], steps_per_epoch: int = 100):
    curves = {}
    for tag, values in tags.items():
        v = np.asarray(values, dtype=float)
        curves[tag] = (steps_per_epoch * np.arange(1, v.size + 1, dtype=float), v)
    n = max(len(v) for v in tags.values())
    curves["epoch"] = (steps_per_epoch * np.arange(1, n + 1, dtype=float), np.arange(1, n + 1.0))
    return synthetic.make_run(curves, {})


# --- loss-divergence: unbounded objective -----------------------------------------------------------
def test_divergence_fires_on_a_loss_falling_without_bound():
    rng = np.random.default_rng(0)
    ep = np.arange(70, dtype=float)
    loss = -3.4e4 - 1.3e4 * ep ** 2 * (1 + rng.normal(0, 0.03, ep.size))
    (f,) = findings("loss-divergence", per_epoch({"train/loss": loss, "val/loss": 2 * loss}))
    assert f.evidence["signature"] == "unbounded"
    assert f.severity == Severity.ERROR
    assert f.evidence["end"] < -5e7 and f.evidence["late_fall_share"] > 0.2
    assert "without bound" in f.message


def test_divergence_quiet_on_negative_log_likelihoods_that_converge():
    rng = np.random.default_rng(1)
    ep = np.arange(80, dtype=float)
    gaussian_nll = -3.5 + 4.7 * np.exp(-ep / 10) + rng.normal(0, 0.05, ep.size)  # 1.2 -> -3.5
    flow_nll = -2.0 + 2.0 * np.exp(-ep / 20) + rng.normal(0, 0.02, ep.size)  # 0.0 -> -2.0
    big_scale = -1e4 * (1 - np.exp(-ep / 8)) + rng.normal(0, 50, ep.size)  # converges at -1e4
    for loss in (gaussian_nll, flow_nll, big_scale):
        assert not findings("loss-divergence", per_epoch({"train/loss": loss}))


# --- loss-divergence: a jump that settles above the minimum -----------------------------------------
def _jump_run(recovery: float, settle_ratio: float, n: int = 736, jump_at: int = 550, seed: int = 0):
    rng = np.random.default_rng(seed)
    ep = np.arange(n, dtype=float)
    before = 0.5 * np.exp(-ep / 60) + 0.022
    loss = before.copy()
    after = ep[jump_at:] - jump_at
    floor = 0.022 * settle_ratio
    loss[jump_at:] = floor + 0.4 * np.exp(-after / recovery)
    loss[jump_at:jump_at + 3] = [17.9, 2.0, 17.9]
    return loss * (1 + rng.normal(0, 0.005, n))


def test_divergence_fires_on_a_jump_that_settles_far_above_the_minimum():
    (f,) = findings("loss-divergence", per_epoch({"mean_loss": _jump_run(recovery=30, settle_ratio=6)}))
    assert f.evidence["signature"] == "settled"
    assert 4 < f.evidence["rise_ratio"] < 9
    assert "settled" in f.message


def test_divergence_quiet_when_the_jump_recovers_or_settles_near_the_minimum():
    # the same jump, recovering to 1.3x the minimum: a spike, not a divergence
    assert not findings("loss-divergence", per_epoch({"mean_loss": _jump_run(recovery=30, settle_ratio=1.3)}))
    # a jump late in the run that is still falling fast at the end: a restart in progress
    assert not findings("loss-divergence",
                        per_epoch({"mean_loss": _jump_run(recovery=200, settle_ratio=1.0, jump_at=640)}))


def test_divergence_quiet_on_warm_restarts_ending_mid_cycle():
    rng = np.random.default_rng(2)
    ep = np.arange(130, dtype=float)
    cycle = (ep % 40) / 40  # SGDR, cycle 40, the run ends 25% into its fourth cycle
    loss = (0.3 + 1.5 * np.exp(-ep / 30)) * (1 + 0.8 * np.exp(-6 * cycle)) + rng.normal(0, 0.01, ep.size)
    assert not findings("loss-divergence", per_epoch({"train/loss": loss}))


def test_mean_loss_is_the_training_loss():
    assert resolve_roles(["mean_loss", "dielectric_loss", "epoch"]).single[TRAIN_LOSS].tag == "mean_loss"


# --- accuracy-oscillation -------------------------------------------------------------------------
def _noisy_detector_metrics(n: int, seed: int):
    """A long YOLO-style run: mAP rises and holds near 0.83; precision and recall at the best-F1
    threshold wobble on a small validation set, with single- and two-evaluation dips of 0.2-0.35."""
    rng = np.random.default_rng(seed)
    f = np.arange(n) / n
    m_ap = 0.83 * (1 - np.exp(-f * 12)) + rng.normal(0, 0.02, n)
    precision = 0.72 * (1 - np.exp(-f * 6)) + rng.normal(0, 0.035, n)
    recall = 0.82 * (1 - np.exp(-f * 15)) + rng.normal(0, 0.03, n)
    for i in rng.choice(np.arange(n // 3, n - 2), size=8, replace=False):
        depth = rng.uniform(0.2, 0.35)
        precision[i] -= depth
        if rng.uniform() < 0.5:
            precision[i + 1] -= 0.7 * depth
        recall[i] += rng.choice([-1, 1]) * 0.8 * depth
    clip = lambda a: np.clip(a, 0, 1)  # noqa: E731
    return {"metrics/mAP_0.5": clip(m_ap), "metrics/precision": clip(precision),
            "metrics/recall": clip(recall), "train/loss": 0.2 * np.exp(-3 * f) + 0.05}


def test_oscillation_quiet_on_long_runs_with_brief_dips_on_a_small_validation_set():
    for n, seed in ((300, 0), (300, 1), (500, 2), (200, 3)):
        assert not findings("accuracy-oscillation", per_epoch(_noisy_detector_metrics(n, seed))), (n, seed)


def test_oscillation_quiet_on_a_single_dip_after_the_climb():
    m_ap = [0.002, 0.0004, 0.0005, 0.0005, 0.0005, 0.0005, 0.0004, 0.0003, 0.0003, 0.0014, 0, 0, 0,
            0.005, 0.83, 0.71, 0.87, 0.76, 0.80, 0.83, 0.70, 0.33, 0.83, 0.85, 0.86, 0.77, 0.94, 0.92,
            0.99, 0.96]
    assert not findings("accuracy-oscillation", per_epoch({"val/mAP50": m_ap, "train/loss": np.linspace(1, 0.3, 30)}))


def test_oscillation_still_fires_on_short_mil_swings_and_the_seed_numbers():
    val_auc = [0.819, 0.713, 0.323, 0.628, 0.995, 0.970, 0.583, 0.967, 0.5]
    (f,) = findings("accuracy-oscillation", per_epoch({"val/auc": val_auc, "train/loss": np.linspace(0.6, 0.5, 9)}))
    assert f.evidence["bad_swings"] >= 2
    seed = [0.45, 0.62, 0.78, 0.859, 0.07, 0.64, 0.84, 0.12, 0.70, 0.86, 0.30, 0.81]
    assert findings("accuracy-oscillation", per_epoch({"val/acc": seed, "train/loss": np.linspace(2, 1, 12)}))


def test_oscillation_fires_on_an_epoch_to_epoch_alternation_in_a_long_run():
    rng = np.random.default_rng(4)
    n = 240
    acc = 0.85 * (1 - np.exp(-np.arange(n) / 10)) + rng.normal(0, 0.01, n)
    acc[60:][1::2] -= 0.4  # from epoch 60 every other evaluation lands on a bad solution
    (f,) = findings("accuracy-oscillation", per_epoch({"val/acc": np.clip(acc, 0, 1),
                                                       "train/loss": np.linspace(1, 0.2, n)}))
    assert f.evidence["reversals"] > 10


# --- batch-loss-variance ------------------------------------------------------------------------------
def test_batch_variance_quiet_on_a_converged_small_batch_classifier():
    """Batch size 4: most batches score ~1e-3 late, a misclassified sample costs 1-4; the spread
    stays as wide as the start but the typical batch loss fell 20x."""
    rng = np.random.default_rng(5)
    epochs, per = 30, 170
    steps = np.arange(1, epochs * per + 1, dtype=float)
    f = steps / steps[-1]
    typical = 0.4 * np.exp(-f * 6) + 0.01
    loss = typical * rng.lognormal(0, 1.9, steps.size)
    hard = rng.uniform(size=steps.size) < 0.03
    loss[hard] = rng.uniform(1, 4, hard.sum())
    ends = per * np.arange(1, epochs + 1, dtype=float)
    run = synthetic.make_run({"train/loss_step": (steps, loss), "epoch": (ends, np.arange(epochs, dtype=float)),
                              "train/loss": (ends, [loss[i - per:i].mean() for i in ends.astype(int)])})
    assert not findings("batch-loss-variance", run)
    # watched live, its first 16 epochs: the typical batch loss is 5x down and still falling, not
    # yet 10x: quiet only because it is still falling
    early = 16 * per
    prefix = synthetic.make_run({"train/loss_step": (steps[:early], loss[:early]),
                                 "epoch": (ends[:16], np.arange(16, dtype=float))})
    assert not findings("batch-loss-variance", prefix)
    assert findings("batch-loss-variance", prefix, falling_drop=1e9)
    # its first 5 epochs (a real one: window medians 0.59, 0.19, 0.14, 0.10, 0.11): the typical loss
    # 4-7x down after a fast first epoch, then wobbling down; four medians after the first rarely
    # make a significant trend, and a downward one waits
    head = 5 * per
    drop = np.repeat([1.0, 0.3, 0.22, 0.16, 0.15], per)
    short = synthetic.make_run({"train/loss_step": (steps[:head], 0.6 * drop * rng.lognormal(0, 1.9, head)),
                                "epoch": (ends[:5], np.arange(5, dtype=float))})
    assert not findings("batch-loss-variance", short)
    assert findings("batch-loss-variance", short, few_windows=0)
    # the same spread around a typical loss that does not come down: fires
    stuck = 0.4 * rng.lognormal(0, 1.9, steps.size)
    run = synthetic.make_run({"train/loss_step": (steps, stuck), "epoch": (ends, np.arange(epochs, dtype=float))})
    (fnd,) = findings("batch-loss-variance", run)
    assert fnd.evidence["late_median"] * 10 > fnd.evidence["start_level"]


# --- overfitting by the task metric (no validation loss logged) ------------------------------------
def _segmenter(n: int, peak_then_fall: bool, seed: int, train_rises: bool = False):
    """An Ultralytics-style console run: box/seg losses fall every epoch, mask mAP50 climbs to ~0.5
    in 8 epochs and then either falls to ~0.38 by the end or holds with noise."""
    rng = np.random.default_rng(seed)
    ep = np.arange(n, dtype=float)
    m_ap = 0.5 * (1 - np.exp(-ep / 2.5))
    if peak_then_fall:
        m_ap -= np.clip(ep - 10, 0, None) * (0.12 / (n - 10))
    m_ap += rng.normal(0, 0.025, n)
    seg = 2.8 * np.exp(-ep / 40) + 0.3 + rng.normal(0, 0.03, n)
    if train_rises:
        seg = seg[::-1].copy()
    return per_epoch({"metrics/mAP50(M)": np.clip(m_ap, 0, 1), "train/seg_loss": seg})


def test_overfitting_fires_on_a_task_metric_that_peaks_and_falls_without_a_validation_loss():
    (f,) = findings("overfitting", _segmenter(35, True, 0))
    ev = f.evidence
    assert ev["signature"] == "task-metric" and ev["metric_tag"] == "metrics/mAP50(M)"
    assert ev["metric_best"] > 0.45 and ev["metric_end"] < 0.42
    assert ev["early_stop_step"] == ev["metric_best_step"] > 100
    assert "early stopping" in f.message


def test_overfitting_by_the_task_metric_quiet_on_a_noisy_plateau_and_when_training_worsens():
    for seed in range(6):
        assert not findings("overfitting", _segmenter(35, False, seed)), seed
        assert not findings("overfitting", _segmenter(120, False, seed)), seed
    assert not findings("overfitting", _segmenter(35, True, 0, train_rises=True))


# --- early warning: what a prefix of a healthy run must not be called ------------------------------
def test_oscillation_judges_precision_and_recall_only_without_a_threshold_free_metric():
    rng = np.random.default_rng(6)
    n = 40
    m_ap = np.clip(0.8 * (1 - np.exp(-np.arange(n) / 4)) + rng.normal(0, 0.01, n), 0, 1)
    precision = m_ap.copy()
    precision[[14, 21, 28, 35]] -= 0.4  # the best-F1 threshold moved: precision swaps with recall
    recall = np.clip(m_ap + 0.05, 0, 1)
    recall[[14, 21, 28, 35]] += 0.1
    tags = {"metrics/precision": precision, "metrics/recall": recall, "train/loss": np.linspace(1, 0.2, n)}
    (f,) = findings("accuracy-oscillation", per_epoch(tags))  # precision alone: judged
    assert f.tags[0] == "metrics/precision"
    assert not findings("accuracy-oscillation", per_epoch({**tags, "metrics/mAP_0.5": m_ap}))


def test_collapse_needs_a_metric_that_left_the_floor():
    m_ap = [0.002214, 0.0004198, 0.0004846, 0.000538, 0.0005309, 0.0005351, 0.0004198, 0.0003118,
            0.0003048, 0.00141, 0, 0, 0]  # a detector's first 13 epochs, before it learned anything
    assert not findings("accuracy-collapse", per_epoch({"val/mAP50": m_ap, "train/loss": np.linspace(1, 0.8, 13)}))
    learned = [0.1, 0.5, 0.7, 0.8, 0.82, 0.6, 0.4, 0.3, 0.2, 0.15, 0.12, 0.1]
    assert findings("accuracy-collapse", per_epoch({"val/acc": learned, "train/loss": np.linspace(1, 0.8, 12)}))


def test_divergence_ratio_alone_does_not_count_after_a_fall_by_orders_of_magnitude():
    rng = np.random.default_rng(7)
    ep = np.arange(200, dtype=float)
    loss = 2.2e4 * np.exp(-ep / 6) + 4e-7  # a physics loss falling to ~0
    loss[150:] += np.linspace(0, 0.09, 50)  # then drifting up to 0.09: 1e5x its minimum, 4e-6 of the fall
    loss *= 1 + rng.normal(0, 0.01, ep.size)
    assert not findings("loss-divergence", per_epoch({"train/loss": loss}))
