"""Replace a sparsity term that cannot work with an L1 penalty on the un-normalised attention map.

What it changes
---------------
``loss.sparsity_kind: l1``, ``loss.sparsity_scale: 1`` (no divisor) and ``loss.sparsity_weight:
0.1`` (the seed story's weight).  In a foreign config the keys matching those knobs
(``sparsity_loss``/``sparsity_type``, ``sparsity_divisor``, ``lambda_sparsity``/``sparsity_weight``)
are set; what the file cannot express (how the term is computed) becomes advice.

When to use
-----------
``sparsity-gradient-vanishing``: the sparsity term is a negligible share of the total loss and
does not move; ``aux-loss-dead``: the term is constant, so its gradient is zero.

Why
---
The seed (000) had three faults: an entropy term that barely changes on maps already peaked, a
``/1000`` divisor and ``lambda_sparsity=0.001`` that together made the term about a millionth of
the loss.  Its proposed "L1" fix was itself broken: the L1 norm of a map first normalised to sum
1 is the constant 1, whose gradient is zero, so the term would stay dead at any weight.  Our
``l1`` is the mean absolute value of the *un-normalised* (sigmoid) attention map, which falls
only when attention is switched off where it is not needed: a real sparsity pressure.  Scale 1
and weight 0.1 make it a few per cent of a cross-entropy of order 1, enough to shape the map
without overruling the classifier.

Example diff
------------
::

     loss:
       name: self-corrective-attention
    -  sparsity_kind: entropy
    -  sparsity_weight: 0.001
    -  sparsity_scale: 1000.0
    +  sparsity_kind: l1
    +  sparsity_weight: 0.1
    +  sparsity_scale: 1.0
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe

WEIGHT = 0.1


class SparsityL1(Recipe):
    __doc__ = __doc__

    id = "sparsity-l1"
    resolves = ("sparsity-gradient-vanishing", "aux-loss-dead")
    knobs = ("sparsity_kind", "sparsity_weight", "sparsity_scale")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if b.own:
            if str(b.section("loss").get("name", "")) != "self-corrective-attention":
                return self.skip(f"loss '{b.section('loss').get('name')}' has no sparsity term "
                                 "(only self-corrective-attention has one)")
        elif not any(b.has(k) for k in self.knobs):
            return self.skip("this config has no sparsity setting (sparsity_weight/lambda_sparsity, "
                             "sparsity_kind, sparsity_scale): the term is configured in code")
        b.set("sparsity_kind", "l1", "L1 on the un-normalised map: a sparsity pressure with a gradient",
              advice="compute the sparsity term as mean(|a|) of the attention map *before* any "
                     "normalisation to sum 1 (the L1 norm of a normalised map is the constant 1 and has no gradient)")
        b.set("sparsity_scale", 1.0, "no divisor: the /scale shrank the term and its gradient",
              advice="remove any divisor (such as /1000) applied to the sparsity term")
        b.set("sparsity_weight", WEIGHT, "weight 0.1 makes the term a few % of the total loss",
              advice="weight the sparsity term by 0.1 in the total loss")
        return self.finish(b, "nothing to change")
