"""Balance the classes the model learns from: class-balanced loss weights (or a balanced sampler).

What it changes
---------------
``loss.class_weights: balanced`` (each class weighted by 1/frequency) when the loss takes class
weights; otherwise ``data.sampler: balanced``.  Never both: see Why.  Foreign configs: the
class-weight keys (``class_weights``, ``class_weight``, ``loss_weights``) when present, else the
sampler keys (``sampler``, ``weighted_sampler``, ``balanced_sampler``); otherwise advice.

When to use
-----------
``class-disparity``: per-class accuracy spreads far apart and the weak classes are the rare ones.
When the training counts are balanced (within 1.5x, from the finding's evidence or a digits
config without ``imbalance_ratio``) the recipe declines: re-weighting cannot fix a disparity that
frequency does not cause.

Why
---
With a 10:1 imbalance the rare classes contribute a tenth of the gradient and the model learns to
under-predict them.  Weighting the loss by 1/frequency restores each class's share of the gradient
while every sample is still seen once per epoch; a balanced sampler does the same by drawing the
few rare images ~10x as often and the common ones less, which overfits the rare images.  The seed
story (004) used weighted sampling *and* a weighted loss: that corrects twice (the sampler already
balances the batches, the weights then up-weight the rare classes again).  Measured on the
imbalance story (digits, ratio 10, 8 epochs, seeds 0-2), per-class accuracy spread before -> after:
loss weights 1.0/1.0/0.76 -> 0.42/0.16/0.20; sampler -> 0.22/0.41/0.49; both (seeds 1-2) ->
1.0/0.59 with overall accuracy falling to 0.49/0.75.  So: the loss weights, alone.

Example diff
------------
::

     loss:
       name: cross-entropy
    -  class_weights: null
    +  class_weights: balanced
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, evidence_number
from trainfix.trainers.config import component_accepts

BALANCED_RATIO = 1.5  # max/min class counts below this: frequency does not explain a disparity
BALANCED_DATASETS = {"digits", "digits-multitask"}  # balanced unless imbalance_ratio says otherwise


class ClassBalance(Recipe):
    __doc__ = __doc__

    id = "class-balance"
    resolves = ("class-disparity",)
    evidence = ("count_ratio",)
    knobs = ("sampler", "class_weights")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        ratio = evidence_number(finding, "count_ratio")
        if ratio is not None and ratio < BALANCED_RATIO:
            return self.skip(f"the training classes are already balanced (counts within {ratio:.2g}x): the "
                             "disparity is not from class frequency; look at model capacity and the data")
        if b.own and str(b.section("data").get("name", "")) in BALANCED_DATASETS:
            imbalance = b.section("data").get("imbalance_ratio", 1.0)
            if isinstance(imbalance, (int, float)) and imbalance < BALANCED_RATIO:
                return self.skip(f"data '{b.section('data').get('name')}' is balanced (imbalance_ratio {imbalance:g}): "
                                 "the disparity is not from class frequency; look at model capacity and the data")
        if b.own:
            sampler = str(b.get("sampler", "uniform") or "uniform")
            weights = b.get("class_weights")
            if sampler == "balanced" or weights not in (None, "none", "null"):
                return self.skip(f"classes are already balanced (sampler: {sampler}, class_weights: {weights})")
            if component_accepts(config, "loss", "class_weights"):
                b.set("class_weights", "balanced", "weight each class by 1/frequency in the loss")
            elif component_accepts(config, "data", "sampler"):
                b.set("sampler", "balanced", "draw every class equally often")
            else:
                return self.skip(f"neither data '{b.section('data').get('name')}' takes a sampler nor loss "
                                 f"'{b.section('loss').get('name')}' class weights")
            return self.finish(b, "nothing to change")
        sampler = b.get("sampler") if b.has("sampler") else None
        if sampler is True or str(sampler).lower() in ("balanced", "weighted", "true"):
            return self.skip(f"the sampler is already balanced ({sampler})")
        if b.has("class_weights"):
            value = b.get("class_weights")
            if value not in (None, "none", "null", False):
                return self.skip(f"class weights are already set ({value})")
            b.set("class_weights", "balanced", "weight each class by 1/frequency in the loss")
        elif b.has("sampler"):
            b.set("sampler", "balanced", "draw every class equally often")
        else:
            b.advice("your config has no class-weight or sampler setting: pass weight=1/frequency (normalised "
                     "to mean 1) to the loss, e.g. nn.CrossEntropyLoss(weight=w); or draw batches with a "
                     "WeightedRandomSampler, but not both")
        return self.finish(b, "nothing to change")
