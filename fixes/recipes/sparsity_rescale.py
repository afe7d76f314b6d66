"""Keep the regulariser, but make it big enough to matter: remove its divisor and raise its weight.

What it changes
---------------
``loss.sparsity_scale: 1`` (the divisor removed) and ``loss.sparsity_weight`` raised so that the
weighted term is about 5% of the total loss.  The new weight comes from the finding's evidence:
with the term's measured share ``s`` of the total, its weight ``w`` and divisor ``d``, the weight
that gives a share ``t`` is ``w' = t/(1-t) * (1-s)/s * w/d``, clamped to [current weight, 1].
Without a share in the evidence the weight becomes 0.1.  The kind of term is kept.

When to use
-----------
``sparsity-gradient-vanishing`` when the term itself is sound (an entropy or L1 penalty that
does move when it is weighted) but was scaled into irrelevance.  Use ``sparsity-l1`` instead
when the term is constant (``aux-loss-dead``).

Why
---
A term that is 0.0004% of the loss contributes 0.0004% of the gradient: the optimizer never
sees it.  The seed (000) divided the term by 1000 *and* weighted it by 0.001.  A few per cent is
the usual share for a shaping regulariser: large enough to move the attention map, small enough
not to fight the classification loss.  Computing the weight from the measured share replaces a
guess by one division.

Example diff
------------
::

     loss:
       sparsity_kind: entropy
    -  sparsity_weight: 0.001
    -  sparsity_scale: 1000.0
    +  sparsity_weight: 0.0085
    +  sparsity_scale: 1.0
"""

from __future__ import annotations

from trainfix.fixes.base import Recipe, evidence_number, sig

TARGET_SHARE = 0.05
DEFAULT_WEIGHT = 0.1
MAX_WEIGHT = 1.0


def share_from_evidence(finding) -> float | None:
    """The term's share of the total loss as a fraction (``share_of_total`` in the evidence)."""
    frac = evidence_number(finding, "share_of_total")
    return frac if frac is not None and 0 < frac < 1 else None


class SparsityRescale(Recipe):
    __doc__ = __doc__

    id = "sparsity-rescale"
    resolves = ("sparsity-gradient-vanishing",)
    evidence = ("share_of_total",)
    knobs = ("sparsity_weight", "sparsity_scale")

    def plan(self, config, finding=None):
        b = self.builder(config, finding)
        if b.own and str(b.section("loss").get("name", "")) != "self-corrective-attention":
            return self.skip(f"loss '{b.section('loss').get('name')}' has no sparsity term")
        if not b.own and not b.has("sparsity_weight") and not b.has("sparsity_scale"):
            return self.skip("this config has no sparsity weight or divisor (lambda_sparsity, "
                             "sparsity_weight, sparsity_scale): the term is set in code")
        if b.own and str(b.get("sparsity_kind", "")) == "none":
            return self.skip("the sparsity term is switched off (sparsity_kind: none); use sparsity-l1 to add one")
        weight = b.get_float("sparsity_weight", 0.0) or 0.0
        scale = b.get_float("sparsity_scale", 1.0) or 1.0
        share = share_from_evidence(finding)
        b.patch.relative = True
        if share is not None and weight > 0:
            wanted = TARGET_SHARE / (1 - TARGET_SHARE) * (1 - share) / share * weight / scale
            new_weight = sig(min(MAX_WEIGHT, max(weight, wanted)), 2)
            b.note(f"term share {share:.3g} of the total at weight {weight:g}, divisor {scale:g}: "
                   f"weight {new_weight:g} without the divisor gives about {TARGET_SHARE:.0%}")
        else:
            new_weight = max(weight, DEFAULT_WEIGHT)
            b.note(f"no measured share in the evidence: weight {new_weight:g} (the seed story's value)")
        if scale != 1.0:
            b.set("sparsity_scale", 1.0, "remove the divisor that shrank the term's gradient")
        elif not b.own and not b.has("sparsity_scale"):
            b.advice("if your code divides the sparsity term (for example by 1000), remove the divisor")
        if new_weight != weight:
            b.set("sparsity_weight", new_weight, f"term about {TARGET_SHARE:.0%} of the total loss",
                  advice=f"weight the sparsity term by {new_weight:g} in the total loss")
        return self.finish(b, f"the sparsity term is already unscaled with weight {weight:g}")
