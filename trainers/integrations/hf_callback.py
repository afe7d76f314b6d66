"""A Hugging Face ``transformers.TrainerCallback`` that runs trainfix's detectors during training.

    from trainfix.trainers.integrations.hf_callback import TrainfixCallback
    trainer = Trainer(model=..., args=..., callbacks=[TrainfixCallback(stop_on="error")])

What it feeds the detectors: every ``logs`` dict the Trainer logs (``on_log``: ``loss``,
``grad_norm``, ``learning_rate``, ``eval_*`` ...) at ``state.global_step``, and the metrics of each
evaluation (``on_evaluate``).  ``TrainingArguments.to_dict()`` is the run's config, so the lr and
batch knobs (``learning_rate``, ``per_device_train_batch_size``, ``gradient_accumulation_steps``,
``warmup_*``) are what the lr detectors read.  Log often enough for the detectors to see a curve
(``logging_steps`` of 1 to 10 for short runs).

When: at a log call once ``every_n_steps`` steps have passed since the last check, and after each
evaluation.  New findings (warning and above by default) go to transformers' logging (logger
``transformers.trainfix``, shown at its default verbosity), or straight to stderr when that
verbosity hides warnings.  With ``stop_on`` (default ``"error"``; ``None`` never
stops) a finding at or above it sets ``control.should_training_stop``; the Trainer then ends the
loop and saves as its arguments say.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback
from transformers.utils import logging as hf_logging

from trainfix.trainers.integrations.feed import LiveFeed

logger = hf_logging.get_logger("transformers.trainfix")  # follows transformers' verbosity


def _config(args: Any) -> dict[str, Any]:
    try:
        d = args.to_dict()
    except Exception:
        return {}
    return {str(k): v for k, v in d.items() if isinstance(v, (int, float, str, bool)) or v is None}


class TrainfixCallback(TrainerCallback):
    """Live diagnosis inside ``Trainer.train`` (see the module docstring)."""

    def __init__(self, stop_on: str | None = "error", every_n_steps: int = 25, min_severity: str = "warning",
                 select=None, ignore=None, params=None, console: bool = True, metric_overrides=None):
        self.console = console
        self.feed = LiveFeed(stop_on=stop_on, every_n_steps=every_n_steps, min_severity=min_severity,
                             select=select, ignore=ignore, params=params, console=console,
                             metric_overrides=metric_overrides)

    @property
    def findings(self):
        return self.feed.findings

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any):
        self.feed.config = _config(args)
        return control

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any):
        if logs:
            self.feed.add(state.global_step, {k: v for k, v in logs.items() if k != "total_flos"})
        return self._check(state, control, force=False)

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict | None = None, **kwargs: Any):
        if metrics:
            self.feed.add(state.global_step, metrics)
        return self._check(state, control, force=True)

    def _check(self, state: Any, control: Any, force: bool):
        if not getattr(state, "is_world_process_zero", True):
            return control
        import logging

        to_logger = logger.isEnabledFor(logging.WARNING)
        self.feed.console = self.console and not to_logger  # one line on the console either way
        for f in self.feed.check(float(state.global_step), force=force):
            if to_logger:
                logger.warning("trainfix: %s %s: %s", f.severity.value, f.detector, f.message)
        if self.feed.should_stop() and not control.should_training_stop:
            control.should_training_stop = True
            import sys

            sys.stderr.write(self.feed.stop_message() + " (control.should_training_stop set)\n")
        return control
