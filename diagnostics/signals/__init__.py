"""Shared numerics for detectors: robust noise, robust trends, reversals, spikes, run lengths.

Detectors decide relative to each series' *own* noise instead of on absolute thresholds alone: a
validation accuracy that wobbles by 1% between epochs is healthy; one that swings by 40% is not.
Everything here takes numpy arrays (or anything ``np.asarray`` accepts), returns plain Python
floats, ints, tuples or lists, and is NaN-safe: non-finite points are dropped before any statistic
is computed (NaN/Inf are evidence for the ``nonfinite-loss`` detector, not noise), and a statistic
that cannot be computed from too few points is ``nan`` (every comparison with ``nan`` is False, so a
detector that forgets to check :func:`enough` stays quiet instead of raising).

Only numpy is used (reading a log never imports scipy); the run-level functions at the end read a Run
duck-typed and import the role names lazily (detectors import this module, not the other way round).

The package is split by job: :mod:`.series` (asking for a series), :mod:`.noise` (noise, levels,
relative sizes), :mod:`.trends` (Theil-Sen, Mann-Kendall), :mod:`.shapes` (smoothing, reversals,
spikes, runs), :mod:`.display` (numbers in messages) and :mod:`.run_level` (series of a whole run).
Detectors use ``signals.NAME``: every name below is importable from here.
"""

from __future__ import annotations

from trainfix.diagnostics.signals.series import (
    as_array,
    count_finite,
    enough,
    finite,
    need_reason,
    usable,
)
from trainfix.diagnostics.signals.noise import (
    head_tail,
    MAD_TO_SIGMA,
    metric_unit,
    noise_scale,
    rel_change,
    relative_spread,
    robust_level,
)
from trainfix.diagnostics.signals.trends import (
    bin_medians,
    falls_steadily,
    mann_kendall,
    theil_sen,
    THEIL_SEN_MAX_POINTS,
    Trend,
)
from trainfix.diagnostics.signals.trends import _inversions, _kendall_exact_p, _normal_quantile  # noqa: F401 (tested)
from trainfix.diagnostics.signals.shapes import (
    ema,
    frozen_from,
    longest_run,
    reversals,
    run_lengths,
    smooth,
    spikes,
)
from trainfix.diagnostics.signals.display import (
    fmt,
    pct,
)
from trainfix.diagnostics.signals.run_level import (
    effective_lr,
    epoch_boundaries,
    grad_norm_median,
    group_by_boundaries,
    loss_tags,
    NUM_CLASS_KEYS,
    number_of_classes,
    training_loss,
)

__all__ = [
    "as_array",
    "count_finite",
    "enough",
    "finite",
    "need_reason",
    "usable",
    "head_tail",
    "MAD_TO_SIGMA",
    "metric_unit",
    "noise_scale",
    "rel_change",
    "relative_spread",
    "robust_level",
    "bin_medians",
    "mann_kendall",
    "theil_sen",
    "THEIL_SEN_MAX_POINTS",
    "Trend",
    "ema",
    "longest_run",
    "reversals",
    "run_lengths",
    "smooth",
    "spikes",
    "fmt",
    "pct",
    "effective_lr",
    "epoch_boundaries",
    "grad_norm_median",
    "group_by_boundaries",
    "loss_tags",
    "NUM_CLASS_KEYS",
    "number_of_classes",
    "training_loss",
]
