"""Train dense first, then sparsify: two stages instead of pruning from the first epoch.

What it changes
---------------
Adds ``stages``: ``dense`` for about 75% of the epochs with sparse training off, then ``sparse``
for the rest, starting from the dense stage's best checkpoint (``init_from: best``) with 25% of
the weights active, re-masked as before, at 0.1x the lr and without warmup; a per-layer mask
(``sparse.scope: layer``) becomes one global threshold in that stage.  The top-level
``sparse.enabled`` is switched off so the base config is dense.  A ``constant`` lr schedule
becomes ``cosine`` with a short warmup (the seed's OneCycle -> cosine).  Foreign configs cannot express
stages: advice with the same plan in numbers.

When to use
-----------
``sparse-from-start`` (pruning or sparse activation active from epoch 0 at a low active fraction)
and ``accuracy-oscillation`` in a run where it is.

Why
---
Masking 90% of the weights from the first epoch and re-masking every epoch re-draws which weights
exist while the features are still forming: validation accuracy swings (seed 004: 85.9% -> 7% ->
64%).  Dense training first learns the features; magnitude pruning then removes the weights that
matter least, and a short fine-tune at a low lr lets the remaining 25% take over (the seed's
"learn first, compress later", its 25% activation and its low stage-2 lr; Han et al. 2015).

Example diff
------------
::

     sparse:
    -  enabled: true
    -  active_fraction: 0.1
    +  enabled: false
    +  active_fraction: 0.1
    +stages:
    +  - name: dense
    +    epochs: 15
    +    overrides: {sparse.enabled: false}
    +  - name: sparse
    +    epochs: 5
    +    init_from: best
    +    overrides: {sparse.enabled: true, sparse.active_fraction: 0.25, sparse.start_epoch: 0,
    +                optimizer.lr: 0.0001, schedule.warmup_epochs: 0}
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, sig
from trainfix.fixes.schedule_edits import add_warmup, split_epochs

ACTIVE = 0.25
LR_FACTOR = 0.1


class TwoStageSparse(Recipe):
    __doc__ = __doc__

    id = "two-stage-sparse"
    resolves = ("sparse-from-start", "accuracy-oscillation")
    knobs = ("sparse_enabled", "active_fraction", "sparse_start_epoch", "lr")
    warm_start = False

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        lr = b.get_float("lr")
        if b.own:
            sparse = b.section("sparse")
            if not sparse.get("enabled") and not config.get("stages"):
                return self.skip("sparse training is not enabled in this config (sparse.enabled: false)")
            if config.get("stages"):
                names = [str(s.get("name")) for s in config["stages"] if isinstance(s, dict)]
                if names == ["dense", "sparse"]:
                    return self.skip("the config already trains in two stages (dense, then sparse)")
                return self.skip(f"the config already has stages ({', '.join(names)}); edit them by hand")
            if lr is None:
                return self.skip("no optimizer.lr to derive the sparse stage's lr from")
            epochs = int(b.get_float("epochs", 10) or 10)
            if epochs < 2:
                return self.skip(f"{epochs} epoch(s) cannot be split into a dense and a sparse stage")
            dense, rest = split_epochs(epochs)
            stage_lr = sig(lr * LR_FACTOR)
            stage = {"sparse.enabled": True, "sparse.active_fraction": ACTIVE, "sparse.start_epoch": 0,
                     "optimizer.lr": stage_lr, "schedule.warmup_epochs": 0.0}
            if str(sparse.get("scope", "global")) == "layer":
                stage["sparse.scope"] = "global"
                b.note("the sparse stage masks with one global threshold: 25% of each layer starves the "
                       "smallest layers (on digits the stage starts at 0.25 val acc, from 0.95 dense)")
            b.set_path(("sparse", "enabled"), False, "the base config trains dense")
            if str(b.section("schedule").get("name", "constant")) == "constant":
                b.set_path(("schedule", "name"), "cosine",
                           "the seed recipe's decaying lr: a constant lr keeps knocking the dense model about")
                add_warmup(b)
            b.set_path(("stages",), [
                {"name": "dense", "epochs": dense, "overrides": {"sparse.enabled": False}},
                {"name": "sparse", "epochs": rest, "init_from": "best", "overrides": stage},
            ], f"dense {dense} epochs, then {rest} sparse at {ACTIVE:.0%} active from the best checkpoint, lr {stage_lr:g}")
            b.note(f"total epochs stay {epochs}: {dense} dense + {rest} sparse")
            return self.finish(b, "nothing to change")
        if not b.has("sparse_enabled") and not b.has("active_fraction"):
            return self.skip("this config has no sparse-training setting (use_ast, sparse_training, "
                             "activation_rate, active_fraction)")
        epochs = int(b.get_float("epochs", 0) or 0)
        dense, rest = split_epochs(epochs) if epochs >= 2 else (None, None)
        when = f"{dense} epochs dense, then {rest}" if dense else "about 75% of the epochs dense, then the rest"
        lr_text = f" at lr {sig(lr * LR_FACTOR):g}" if lr else " at 0.1x the lr"
        b.advice(f"train in two stages: {when} with {ACTIVE:.0%} of weights active, starting from the "
                 f"dense stage's best checkpoint{lr_text}; do not prune from the first epoch")
        return self.finish(b, "nothing to change")
