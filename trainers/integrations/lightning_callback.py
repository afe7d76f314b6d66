"""A PyTorch Lightning ``Callback`` that runs trainfix's detectors while the model trains.

    from trainfix.trainers.integrations.lightning_callback import TrainfixCallback
    trainer = pl.Trainer(callbacks=[TrainfixCallback(stop_on="error")])

What it feeds the detectors: after every training batch, each value of ``trainer.callback_metrics``
that changed since it was last recorded (what ``self.log`` logged: per-step losses change every
step, validation metrics once per evaluation, so they are not repeated as fake per-step series),
non-finite values every time they are seen, the learning rate of the first optimizer's first parameter group as ``lr``, and, when nothing
logged has "loss" in its name, the loss ``training_step`` returned as ``train_loss_step``.  The
module's ``hparams`` are the run's config (the lr and batch knobs the lr detectors read).

When: every ``every_n_steps`` optimizer steps and after each validation.  New findings (warning and
above by default) go to the console (stderr), the ``trainfix`` Python logger, and each of the
trainer's loggers: as TensorBoard text (``add_text``) when the logger has it, else as a metric
``trainfix/findings`` (the number found so far).  With ``stop_on`` (default ``"error"``; ``None``
never stops) a finding at or above it sets ``trainer.should_stop``; Lightning then ends the fit
after the current batch, and its own checkpointing applies.

Uses ``pytorch_lightning`` when installed, else ``lightning.pytorch``: the callback must subclass
the ``Callback`` of the package the Trainer comes from (:func:`callback_class` builds one for the
other package).
"""

from __future__ import annotations

import math
from typing import Any

from trainfix.trainers.integrations.feed import LiveFeed, as_number

try:
    import pytorch_lightning as _pl
except ImportError:  # pragma: no cover - depends on what is installed
    import lightning.pytorch as _pl  # type: ignore[no-redef]


def _hparams(pl_module: Any) -> dict[str, Any]:
    hp = getattr(pl_module, "hparams", None)
    try:
        return {str(k): v for k, v in dict(hp or {}).items() if isinstance(v, (int, float, str, bool))}
    except (TypeError, ValueError):
        return {}


class _LiveHooks:
    """The callback's behaviour, whatever the Lightning package: mixed in before its ``Callback``
    by :func:`callback_class`, so these hooks are the ones Lightning calls."""

    def __init__(self, stop_on: str | None = "error", every_n_steps: int = 25, min_severity: str = "warning",
                 select=None, ignore=None, params=None, console: bool = True, metric_overrides=None):
        super().__init__()
        self.feed = LiveFeed(stop_on=stop_on, every_n_steps=every_n_steps, min_severity=min_severity,
                             select=select, ignore=ignore, params=params, console=console,
                             metric_overrides=metric_overrides)
        self._last: dict[str, float] = {}

    @property
    def findings(self):
        return self.feed.findings

    def _record(self, trainer: Any, extra: dict[str, Any] | None = None) -> None:
        step = float(trainer.global_step)
        metrics: dict[str, float] = {}
        for key, value in dict(trainer.callback_metrics).items():
            v = as_number(value)
            if v is None:
                continue
            old = self._last.get(key)
            if old is None or v != old or not math.isfinite(v):  # NaN/Inf every time: evidence
                metrics[key] = v
                self._last[key] = v
        for key, value in (extra or {}).items():
            v = as_number(value)
            if v is not None:
                metrics[key] = v
        self.feed.add(step, metrics)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.feed.config = _hparams(pl_module)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        extra: dict[str, Any] = {}
        if trainer.optimizers:
            extra["lr"] = trainer.optimizers[0].param_groups[0]["lr"]
        if not any("loss" in str(k).lower() for k in trainer.callback_metrics):
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            extra["train_loss_step"] = loss
        self._record(trainer, extra)
        self._check(trainer, force=False)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if getattr(trainer, "sanity_checking", False):
            return
        self._record(trainer)
        self._check(trainer, force=True)

    def _check(self, trainer: Any, force: bool) -> None:
        if not getattr(trainer, "is_global_zero", True):
            return
        new = self.feed.check(float(trainer.global_step), force=force)
        if new:
            self._to_loggers(trainer, new)
        if self.feed.should_stop() and not trainer.should_stop:
            trainer.should_stop = True
            import sys

            sys.stderr.write(self.feed.stop_message() + " (trainer.should_stop set)\n")

    def _to_loggers(self, trainer: Any, new: list) -> None:
        from trainfix.diagnostics.tb_findings import finding_markdown

        for logger in getattr(trainer, "loggers", []) or []:
            try:
                exp = getattr(logger, "experiment", None)
                if exp is not None and hasattr(exp, "add_text"):
                    for f in new:
                        exp.add_text(f"trainfix/{f.detector}", finding_markdown(f), trainer.global_step)
                else:
                    logger.log_metrics({"trainfix/findings": float(len(self.feed.findings))}, trainer.global_step)
            except Exception as exc:  # a logger that cannot take it must not stop training
                import logging

                logging.getLogger("trainfix").warning("could not log findings to %s: %s", type(logger).__name__, exc)


def callback_class(base: type) -> type:
    """The trainfix callback as a subclass of ``base`` (a Lightning ``Callback`` class)."""

    class TrainfixCallback(_LiveHooks, base):  # type: ignore[misc, valid-type]
        """Live diagnosis inside ``Trainer.fit`` (see the module docstring)."""

    return TrainfixCallback


TrainfixCallback = callback_class(_pl.Callback)
