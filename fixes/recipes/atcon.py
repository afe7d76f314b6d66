"""Attention-consistency fine-tuning: make the model's attention agree with itself over time.

What it changes
---------------
For trainfix's attention model (``loss.name: self-corrective-attention``):
``loss.consistency_weight: 0.1`` (the seed story's ``lambda_consistency``), which turns on the
term that pulls each sample's attention toward its attention from earlier epochs when the
prediction was right and pushes it away when it was wrong.  Foreign configs: the
``consistency_weight``/``lambda_consistency`` keys; for any other model, advice on ATCON.

When to use
-----------
``attention-inconsistency`` (attention maps of the same images disagree between epochs or
between methods) and ``gradcam-blank`` after the checkpoint itself was ruled out.

Why
---
Attention (or attribution) maps of a model trained only for classification are often unstable
and disagree between methods; optimising their consistency, without labels, improves both the
maps and the classifier on small data (ATCON, Mirzazadeh et al., WACV 2022: +6.6 F1 points).  The
seed story (000) ran with ``lambda_consistency=0``, which silently disables the term; 0.1 is the
weight its fix restores.

Example diff
------------
::

     loss:
       name: self-corrective-attention
    -  consistency_weight: 0.0
    +  consistency_weight: 0.1
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe

WEIGHT = 0.1
ATCON_ADVICE = ("fine-tune with an attention-consistency loss (ATCON, Mirzazadeh et al. 2022): for a few epochs "
                "at a low lr, add a term that penalises disagreement between Grad-CAM maps of an image and of its "
                "masked versions (or between epochs), weighted about 0.1 against the classification loss")


class Atcon(Recipe):
    __doc__ = __doc__

    id = "atcon"
    resolves = ("attention-inconsistency", "gradcam-blank")
    knobs = ("consistency_weight",)

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if b.own:
            loss = str(b.section("loss").get("name", ""))
            if loss != "self-corrective-attention":
                return self.skip(f"loss '{loss}' has no attention-consistency term; only the attention model "
                                 "(self-corrective-attention) has one. " + ATCON_ADVICE)
        current = b.get_float("consistency_weight")
        if current is not None and current >= WEIGHT:
            return self.skip(f"the consistency term is already weighted {current:g}")
        b.set("consistency_weight", WEIGHT, "turn on the attention-consistency term", advice=ATCON_ADVICE)
        return self.finish(b, "nothing to change")
