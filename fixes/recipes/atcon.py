"""Fine-tune with ATCON: unlabelled attention-consistency steps between the supervised ones.

What it changes
---------------
For a trainfix config: two stages.  ``supervised`` trains as before for about 75% of the epochs;
``atcon`` continues from its last checkpoint for the rest with ``training.mode: atcon`` (each step
supervised with probability ``alpha n_sup / (alpha n_sup + n_unsup)``, otherwise an unlabelled
step that makes Grad-CAM of an image agree with Grad-CAM of the image masked by its own Guided
Backprop map), at 0.1x the lr, the consistency loss weighted 0.1.  The unlabelled pool is the
dataset's unlabelled images when it keeps only a few labels (``data.labelled_per_class``), else the
training images themselves (labels unused).  Foreign configs: the ``consistency_weight`` /
``lambda_consistency`` keys when they exist, and advice on ATCON.

When to use
-----------
``attention-inconsistency`` (Grad-CAM and Guided Backprop disagree and training does not bring them
together) and ``gradcam-blank`` after the checkpoint itself was ruled out (``checkpoint-keys``).

Why
---
Attribution maps of a model trained only for classification on little data disagree between
methods; optimising their agreement without labels improves the maps and, on small training sets,
the classifier (ATCON, Mirzazadeh et al., WACV 2023: +6.6 F1 on hospital video, +2.9 on PASCAL).
As a fine-tuning stage, at a low lr and a small weight: from scratch, or at full weight, the
consistency loss also has degenerate solutions (a map that is the same for every input agrees with
itself) and on ``digits-canvas`` it then costs accuracy (``benchmarks/atcon.py``).

Example diff
------------
::

    +stages:
    +  - name: supervised
    +    epochs: 15
    +  - name: atcon
    +    epochs: 5
    +    init_from: last
    +    overrides: {training.mode: atcon, optimizer.lr: 0.0003, atcon.weight: 0.1,
    +                atcon.unlabelled: unlabelled}
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, sig
from trainfix.fixes.schedule_edits import split_epochs

WEIGHT = 0.1
LR_FACTOR = 0.1
ATCON_ADVICE = ("fine-tune with an attention-consistency loss (ATCON, Mirzazadeh et al. 2023): for the last quarter "
                "of training at 0.1x the lr, alternate supervised batches with unlabelled ones whose loss is minus the "
                "Pearson correlation between the Grad-CAM of an image and of the image masked by "
                "sigmoid(8 (g - mean - std/2) / std), g its Guided Backprop map, weighted about 0.1 "
                "(trainfix's trainer does this with training.mode: atcon)")


class Atcon(Recipe):
    __doc__ = __doc__

    id = "atcon"
    resolves = ("attention-inconsistency", "gradcam-blank")
    knobs = ("consistency_weight",)
    warm_start = False

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if b.own:
            if str(b.section("training").get("mode", "supervised")) == "atcon":
                return self.skip("the config already trains with ATCON (training.mode: atcon)")
            stages = config.get("stages") or []
            if any(isinstance(s, dict) and str((s.get("overrides") or {}).get("training.mode")) == "atcon" for s in stages):
                return self.skip("the config already has an ATCON stage")
            if stages:
                names = [str(s.get("name")) for s in stages if isinstance(s, dict)]
                return self.skip(f"the config already has stages ({', '.join(names)}); add an ATCON stage by hand "
                                 "(overrides: training.mode: atcon)")
            epochs = int(b.get_float("epochs", 10) or 10)
            if epochs < 2:
                return self.skip(f"{epochs} epoch(s) leave no room for an ATCON fine-tuning stage")
            lr = b.get_float("lr")
            if lr is None:
                return self.skip("no optimizer.lr to derive the ATCON stage's lr from")
            sup, rest = split_epochs(epochs)
            pool = "unlabelled" if b.section("data").get("labelled_per_class") else "train"
            stage_lr = sig(lr * LR_FACTOR)
            b.set_path(("stages",), [
                {"name": "supervised", "epochs": sup},
                {"name": "atcon", "epochs": rest, "init_from": "last",
                 "overrides": {"training.mode": "atcon", "optimizer.lr": stage_lr, "atcon.weight": WEIGHT,
                               "atcon.unlabelled": pool}},
            ], f"{sup} supervised epochs, then {rest} with ATCON's unlabelled steps at lr {stage_lr:g}")
            b.note(f"the unlabelled pool is the {'dataset unlabelled images' if pool == 'unlabelled' else 'training images, labels unused'}")
            return self.finish(b, "nothing to change")
        current = b.get_float("consistency_weight")
        if current is not None and current >= WEIGHT:
            b.advice(ATCON_ADVICE)
            return self.finish(b, f"the consistency term is already weighted {current:g}")
        if b.has("consistency_weight"):
            b.set("consistency_weight", WEIGHT, "turn on the attention-consistency term")
        b.advice(ATCON_ADVICE)
        return self.finish(b, "nothing to change")
