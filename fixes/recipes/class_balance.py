"""Balance the classes the model sees: a class-balanced sampler (or balanced class weights).

What it changes
---------------
``data.sampler: balanced`` when the dataset takes a sampler (digits, image-folder); otherwise
``loss.class_weights: balanced`` when the loss takes class weights.  Not both: see Why.  Foreign configs: the sampler keys
(``sampler``, ``weighted_sampler``, ``balanced_sampler``) and class-weight keys when present;
otherwise advice.

When to use
-----------
``class-disparity``: per-class accuracy spreads far apart and the weak classes are the rare ones.
When the training counts are balanced (within 1.5x, from the finding's evidence or a digits
config without ``imbalance_ratio``) the recipe declines: re-weighting cannot fix a disparity that
frequency does not cause.

Why
---
With a 10:1 imbalance the rare classes contribute a tenth of the gradient and the model learns to
under-predict them.  A balanced sampler draws every class equally often, so each batch carries
the same pressure for each class.  The seed story (004) used weighted sampling *and* a weighted
loss; together they correct twice (the sampler already balances the batches, the weights then
up-weight the rare classes again) and over-predict the rare classes.  We apply one correction.

Example diff
------------
::

     data:
       name: digits
       imbalance_ratio: 10.0
    -  sampler: uniform
    +  sampler: balanced
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, component_accepts, evidence_number

BALANCED_RATIO = 1.5  # max/min class counts below this: frequency does not explain a disparity
BALANCED_DATASETS = {"digits", "digits-multitask"}  # balanced unless imbalance_ratio says otherwise


class ClassBalance(Recipe):
    __doc__ = __doc__

    id = "class-balance"
    resolves = ("class-disparity",)
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
            if component_accepts(config, "data", "sampler"):
                b.set("sampler", "balanced", "draw every class equally often")
            elif component_accepts(config, "loss", "class_weights"):
                b.set("class_weights", "balanced", "weight each class by 1/frequency in the loss")
            else:
                return self.skip(f"neither data '{b.section('data').get('name')}' takes a sampler nor loss "
                                 f"'{b.section('loss').get('name')}' class weights")
            return self.finish(b, "nothing to change")
        if b.has("sampler"):
            value = b.get("sampler")
            if value is True or str(value).lower() in ("balanced", "weighted", "true"):
                return self.skip(f"the sampler is already balanced ({value})")
            b.set("sampler", "balanced", "draw every class equally often")
        elif b.has("class_weights"):
            value = b.get("class_weights")
            if value not in (None, "none", "null", False):
                return self.skip(f"class weights are already set ({value})")
            b.set("class_weights", "balanced", "weight each class by 1/frequency in the loss")
        else:
            b.advice("your config has no sampler or class-weight setting: draw batches with "
                     "torch.utils.data.WeightedRandomSampler(weights=1/count[label], num_samples=len(ds)) "
                     "(or pass weight=1/frequency to the loss, but not both)")
        return self.finish(b, "nothing to change")
