"""Schedule edits that several fix recipes plan: a warmup, shared by ``lr-warmup``,
``lr-sqrt-scaling`` (a rescaled lr wants a warmup) and ``two-stage-sparse`` (a constant schedule
it turns into a cosine one gets a warmup too); and the split of a run's epochs into two stages,
shared by ``two-stage-sparse`` (dense, then sparse) and ``atcon`` (supervised, then ATCON).

Recipes never import each other; what two of them plan lives here, on a
:class:`~trainfix.fixes.base.PatchBuilder`.
"""

from __future__ import annotations

from trainfix.fixes.base import PatchBuilder

RATIO = 0.1
MAX_EPOCHS = 5
DENSE_SHARE = 0.75  # of a two-stage run, the first stage's share of the epochs


def warmup_epochs_for(epochs: float | None) -> int:
    """10% of the run, between 1 and 5 epochs (5 when the length is unknown)."""
    if not epochs or epochs <= 0:
        return MAX_EPOCHS
    return int(min(MAX_EPOCHS, max(1, round(RATIO * epochs))))


def current_warmup(b: PatchBuilder) -> tuple[str, float] | None:
    """(knob, value) of a warmup already set to more than zero, or None."""
    for knob in ("warmup_epochs", "warmup_steps", "warmup_ratio"):
        if b.own and knob != "warmup_epochs":
            continue
        value = b.get_float(knob)
        if value is not None and value > 0:
            return knob, value
    return None


def add_warmup(b: PatchBuilder) -> bool:
    """Plan a warmup on ``b`` (no-op when one exists); returns whether anything was planned."""
    if current_warmup(b) is not None:
        return False
    epochs = b.get_float("epochs")
    n = warmup_epochs_for(epochs)
    reason = f"linear warmup over the first {n} epoch(s)"
    if b.own:
        b.set("warmup_epochs", n, reason)
        return True
    if b.has("warmup_epochs"):
        return b.set("warmup_epochs", n, reason)
    if b.has("warmup_ratio"):
        b.set("warmup_ratio", RATIO, f"linear warmup over the first {RATIO:.0%} of training")
        if b.has("warmup_steps"):
            b.set("warmup_steps", 0, "a positive warmup_steps overrides warmup_ratio")
        return True
    if b.has("warmup_steps"):
        b.advice(f"set warmup_steps to about {RATIO:.0%} of your total optimizer steps "
                 f"({n} epoch(s) x steps per epoch)")
        return True
    b.advice(f"your config has no warmup setting: add {n} warmup epoch(s) (linear ramp from ~0 to the lr) to your scheduler")
    return True


def split_epochs(epochs: int) -> tuple[int, int]:
    """(first, second) stage epochs: about 75/25, each at least 1."""
    dense = int(round(DENSE_SHARE * epochs))
    dense = min(max(dense, 1), max(epochs - 1, 1))
    return dense, max(epochs - dense, 1)
