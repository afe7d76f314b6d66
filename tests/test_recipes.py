"""Each fix recipe on trainfix configs (result valid against the schema) and on foreign configs."""

from __future__ import annotations

import copy
import math

import pytest

from trainfix.diagnostics.finding import Finding, Severity
from trainfix.fixes.base import PatchBuilder, is_trainfix_config
from trainfix.fixes.foreign import plain
from trainfix.fixes.patch import apply_patch
from trainfix.fixes.recipes import RECIPES
from trainfix.fixes.recommend import best_fix, make_recipe, recommend
from trainfix.trainers.config import validate


def cfg(**sections):
    base = {
        "run": {"name": "t", "seed": 0, "device": "cpu"},
        "data": {"name": "digits", "image_size": 8},
        "model": {"name": "cnn"},
        "loss": {"name": "cross-entropy"},
        "optimizer": {"name": "adam", "lr": 0.001},
        "schedule": {"name": "cosine"},
        "training": {"epochs": 20, "batch_size": 32},
    }
    for k, v in sections.items():
        base[k] = v
    return base


ATTENTION = cfg(model={"name": "attention-cnn"},
                loss={"name": "self-corrective-attention", "sparsity_kind": "entropy",
                      "sparsity_weight": 0.001, "sparsity_scale": 1000.0, "consistency_weight": 0.0})
MULTITASK = cfg(data={"name": "digits-multitask"}, model={"name": "multitask-cnn"},
                loss={"name": "uncertainty-multitask", "log_var_init": "zeros", "log_var_bounds": [-1.0, 1.0],
                      "log_var_in_optimizer": False},
                optimizer={"name": "adamw", "lr": 0.0005, "lr_scaling": "linear", "reference_batch": 512},
                training={"epochs": 20, "batch_size": 4, "grad_accum": 4})
MIL = cfg(data={"name": "digits-bags"}, model={"name": "mil-dual-stream", "selection": "hard"},
          loss={"name": "mil"}, training={"epochs": 20, "batch_size": 4, "grad_clip": 1.0})
SPARSE = cfg(sparse={"enabled": True, "active_fraction": 0.1, "start_epoch": 0})
IMBALANCED = cfg(data={"name": "digits", "imbalance_ratio": 10.0, "sampler": "uniform"})


def finding(detector, fixes=(), **evidence):
    return Finding(detector, Severity.WARNING, "m", evidence=evidence, fixes=list(fixes))


def applied(config, recipe_id, f=None):
    """Plan and apply a recipe on a trainfix config; the result must pass the schema."""
    patch = make_recipe(recipe_id).plan(copy.deepcopy(config), f)
    assert patch is not None, make_recipe(recipe_id).reason
    result = apply_patch(config, patch, trainfix=True)  # validates: raises FixError if invalid
    assert validate(plain(result.tree)) == []
    return result.tree, patch


def test_the_fixtures_are_valid_trainfix_configs():
    for c in (ATTENTION, MULTITASK, MIL, SPARSE, IMBALANCED):
        assert is_trainfix_config(c)
        assert validate(c) == [], validate(c)


# --- sparsity (seed 000) -------------------------------------------------------------------------

def test_sparsity_l1_sets_a_real_l1_term_without_divisor():
    tree, _ = applied(ATTENTION, "sparsity-l1")
    assert tree["loss"]["sparsity_kind"] == "l1"
    assert tree["loss"]["sparsity_scale"] == 1.0
    assert tree["loss"]["sparsity_weight"] == 0.1  # the seed's weight


def test_sparsity_l1_docstring_says_why_the_seed_fix_is_broken():
    doc = make_recipe("sparsity-l1").__doc__
    assert "constant 1" in doc and "zero" in doc


def test_sparsity_l1_refuses_models_without_a_sparsity_term():
    r = make_recipe("sparsity-l1")
    assert r.plan(cfg()) is None and "no sparsity term" in r.reason


def test_sparsity_rescale_computes_the_weight_from_the_measured_share():
    f = finding("sparsity-gradient-vanishing", ["sparsity-l1", "sparsity-rescale"], share_of_total=1e-6)
    tree, patch = applied(ATTENTION, "sparsity-rescale", f)
    w = tree["loss"]["sparsity_weight"]
    # share 1e-6 at weight 1e-3 / divisor 1e3 -> weight for 5% without the divisor:
    expected = 0.05 / 0.95 * (1 - 1e-6) / 1e-6 * 1e-3 / 1e3
    assert w == pytest.approx(min(1.0, expected), rel=0.05)
    assert tree["loss"]["sparsity_scale"] == 1.0
    assert tree["loss"]["sparsity_kind"] == "entropy"  # the term is kept
    assert patch.relative


def test_sparsity_rescale_without_evidence_uses_the_seed_weight():
    tree, _ = applied(ATTENTION, "sparsity-rescale")
    assert tree["loss"]["sparsity_weight"] == 0.1


def test_sparsity_recipes_on_a_foreign_config():
    foreign = {"train": {"lr": 1e-3}, "loss": {"lambda_sparsity": 0.001, "sparsity_divisor": 1000}}
    patch = make_recipe("sparsity-l1").plan(foreign)
    edits = {".".join(e.path): e.new for e in patch.edits}
    assert edits == {"loss.lambda_sparsity": 0.1, "loss.sparsity_divisor": 1}
    assert any("normalis" in a for a in patch.advice)
    none = make_recipe("sparsity-l1")
    assert none.plan({"lr": 0.1}) is None and "configured in code" in none.reason


# --- lr scaling and uncertainty weights (seed 003) -------------------------------------------------

def test_lr_sqrt_scaling_gives_the_base_lr_at_the_seed_global_batch():
    tree, patch = applied(MULTITASK, "lr-sqrt-scaling")
    opt = tree["optimizer"]
    assert opt["lr_scaling"] == "sqrt" and opt["reference_batch"] == 16  # 4 x 4 accumulation
    effective = opt["lr"] * math.sqrt(16 / opt["reference_batch"])
    assert effective == pytest.approx(5e-4)  # the ~5e-4 the story expects, not 1.6e-5
    assert tree["schedule"]["warmup_epochs"] == 2  # warmup added: 10% of 20 epochs


def test_lr_sqrt_scaling_counts_world_size_in_the_global_batch():
    c = copy.deepcopy(MULTITASK)
    c["run"]["world_size"] = 2
    tree, _ = applied(c, "lr-sqrt-scaling")
    assert tree["optimizer"]["reference_batch"] == 32


def test_lr_sqrt_scaling_refuses_an_unscaled_lr_without_evidence():
    r = make_recipe("lr-sqrt-scaling")
    assert r.plan(cfg()) is None and "not scaled by batch" in r.reason


def test_lr_sqrt_scaling_foreign_config_gets_the_formula_as_advice():
    seed_like = {"learning_rate": 5e-4, "batch_size": 4, "gradient_accumulation_steps": 4, "warmup_epochs": 0,
                 "epochs": 50}
    patch = make_recipe("lr-sqrt-scaling").plan(seed_like)
    assert {".".join(e.path): e.new for e in patch.edits} == {"warmup_epochs": 5}
    assert any("sqrt(global_batch / 16)" in a and "0.0005" in a for a in patch.advice)


def test_lr_warmup_only_when_missing_and_scaled_to_the_run():
    tree, _ = applied(cfg(training={"epochs": 8, "batch_size": 32}), "lr-warmup")
    assert tree["schedule"]["warmup_epochs"] == 1
    r = make_recipe("lr-warmup")
    assert r.plan(cfg(schedule={"name": "cosine", "warmup_epochs": 2})) is None
    assert "already warms up" in r.reason
    advice = make_recipe("lr-warmup").plan({"lr": 0.1})
    assert not advice.edits and "no warmup setting" in advice.advice[0]


def test_lower_lr_scales_by_point_three_or_to_the_typical_range():
    tree, patch = applied(cfg(), "lower-lr")
    assert tree["optimizer"]["lr"] == pytest.approx(3e-4) and patch.relative
    f = finding("lr-miscaled", ["lower-lr"], effective_lr=0.5, typical_range=[1e-4, 1e-2], direction="too_high")
    tree, _ = applied(cfg(optimizer={"name": "adam", "lr": 0.5}), "lower-lr", f)
    assert tree["optimizer"]["lr"] == pytest.approx(0.01)
    foreign = make_recipe("lower-lr").plan({"optim": {"lr": 0.1, "max_lr": 0.4}, "scaled_lr": 0.2})
    assert sorted(round(e.new, 6) for e in foreign.edits) == [0.03, 0.06, 0.12]


def test_uncertainty_reinit_keeps_wide_bounds_and_own_lr():
    tree, patch = applied(MULTITASK, "uncertainty-reinit")
    loss = tree["loss"]
    assert loss["log_var_init"] == "random" and loss["log_var_init_std"] == 0.1
    assert loss["log_var_bounds"] == [-2.0, 2.0]  # the seed's [-1, 1] squeezes the weights together
    assert loss["log_var_lr"] == 0.01 and loss["log_var_in_optimizer"] is True
    assert make_recipe("uncertainty-reinit").warm_start is False
    r = make_recipe("uncertainty-reinit")
    assert r.plan(cfg()) is None and "uncertainty" in r.reason


def test_uncertainty_reinit_on_a_foreign_config():
    patch = make_recipe("uncertainty-reinit").plan({"uncertainty_init": "zeros", "log_var_range": [-1, 1]})
    edits = {".".join(e.path): e.new for e in patch.edits}
    assert edits == {"uncertainty_init": "random", "log_var_range": [-2.0, 2.0]}
    assert any("own optimizer group" in a for a in patch.advice)


# --- MIL (seed 002) ------------------------------------------------------------------------------

def test_mil_soft_selection_is_the_seed_recipe():
    tree, _ = applied(MIL, "mil-soft-selection")
    assert tree["model"]["selection"] == "soft"
    assert (tree["model"]["temperature_start"], tree["model"]["temperature_end"]) == (10.0, 1.0)
    assert tree["loss"]["label_smoothing"] == 0.1
    # entropy sign: our loss adds weight * (-H), so a POSITIVE weight rewards spread attention
    assert tree["loss"]["entropy_weight"] == 0.01 and tree["loss"]["confidence_weight"] == 0.01
    assert tree["training"]["grad_clip"] == 0.5


def test_mil_soft_selection_on_the_seed_style_arguments():
    args = {"critical_selection_mode": "hard", "temperature_start": 1.0, "label_smoothing": 0.0,
            "reg_weight_entropy": 0.0, "reg_weight_confidence": 0.0, "grad_clip": 1.0}
    patch = make_recipe("mil-soft-selection").plan(args)
    edits = {".".join(e.path): e.new for e in patch.edits}
    assert edits == {"critical_selection_mode": "soft", "temperature_start": 10.0, "label_smoothing": 0.1,
                     "reg_weight_entropy": 0.01, "reg_weight_confidence": 0.01, "grad_clip": 0.5}
    r = make_recipe("mil-soft-selection")
    assert r.plan(cfg()) is None and "not a MIL model" in r.reason


# --- sparse training and imbalance (seed 004) ------------------------------------------------------

def test_two_stage_sparse_dense_then_quarter_from_best():
    tree, patch = applied(SPARSE, "two-stage-sparse")
    dense, sparse = tree["stages"]
    assert dense["epochs"] == 15 and sparse["epochs"] == 5  # 75% / 25% of 20
    assert dense["overrides"]["sparse.enabled"] is False
    assert sparse["init_from"] == "best"
    assert sparse["overrides"]["sparse.active_fraction"] == 0.25
    assert sparse["overrides"]["optimizer.lr"] == pytest.approx(1e-4)  # 0.1x
    assert tree["sparse"]["enabled"] is False
    assert "sparse.scope" not in sparse["overrides"]  # a global mask stays as it is
    again = make_recipe("two-stage-sparse")
    assert again.plan(tree) is None and "already trains in two stages" in again.reason


def test_two_stage_sparse_masks_the_sparse_stage_globally_not_per_layer():
    per_layer = cfg(sparse={"enabled": True, "active_fraction": 0.1, "start_epoch": 0, "scope": "layer"})
    tree, patch = applied(per_layer, "two-stage-sparse")
    assert tree["stages"][1]["overrides"]["sparse.scope"] == "global"
    assert tree["sparse"]["scope"] == "layer"  # the base config keeps what it said
    assert any("global threshold" in n for n in patch.notes)


def test_two_stage_sparse_refuses_dense_runs_and_advises_foreign_ones():
    r = make_recipe("two-stage-sparse")
    assert r.plan(cfg()) is None and "not enabled" in r.reason
    patch = make_recipe("two-stage-sparse").plan({"use_ast": True, "activation_rate": 0.1, "epochs": 80, "lr": 5e-4})
    assert not patch.edits and "60 epochs dense, then 20" in patch.advice[0]


def test_class_balance_uses_one_correction_not_two():
    tree, _ = applied(IMBALANCED, "class-balance")
    assert tree["loss"]["class_weights"] == "balanced"
    assert tree["data"]["sampler"] == "uniform"  # not both: that corrects twice
    r = make_recipe("class-balance")
    assert r.plan(tree) is None and "already" in r.reason
    sampled = copy.deepcopy(IMBALANCED)
    sampled["data"]["sampler"] = "balanced"
    r = make_recipe("class-balance")
    assert r.plan(sampled) is None and "already balanced" in r.reason
    foreign = make_recipe("class-balance").plan({"weighted_sampler": False})
    assert foreign.edits[0].new is True
    foreign = make_recipe("class-balance").plan({"class_weight": None, "sampler": "uniform"})
    assert [(".".join(e.path), e.new) for e in foreign.edits] == [("class_weight", "balanced")]


# --- the basics ----------------------------------------------------------------------------------

def test_grad_clip_default_and_from_grad_norm_evidence():
    tree, _ = applied(cfg(), "grad-clip")
    assert tree["training"]["grad_clip"] == 1.0
    f = finding("batch-loss-variance", ["grad-clip"], grad_norm_median=0.2)
    tree, _ = applied(cfg(), "grad-clip", f)
    assert tree["training"]["grad_clip"] == pytest.approx(0.4)
    advice = make_recipe("grad-clip").plan({"lr": 0.1})
    assert "clip_grad_norm_" in advice.advice[0]


def test_label_smoothing_and_atcon_and_nan_guard():
    tree, _ = applied(cfg(), "label-smoothing")
    assert tree["loss"]["label_smoothing"] == 0.1
    tree, _ = applied(ATTENTION, "atcon")  # ATCON as a fine-tuning stage of trainfix's trainer
    sup, atc = tree["stages"]
    assert atc["init_from"] == "last" and atc["overrides"]["training.mode"] == "atcon"
    assert atc["overrides"]["atcon.unlabelled"] == "train" and sup["epochs"] + atc["epochs"] == ATTENTION["training"]["epochs"]
    few = cfg(data={"name": "digits-canvas", "labelled_per_class": 5})
    assert applied(few, "atcon")[0]["stages"][1]["overrides"]["atcon.unlabelled"] == "unlabelled"
    r = make_recipe("atcon")
    assert r.plan(copy.deepcopy(tree)) is None and "ATCON stage" in r.reason
    foreign = r.plan({"lambda_consistency": 0.0, "lr": 0.001})
    assert foreign.edits and any("ATCON" in a for a in foreign.advice)
    advice_only = r.plan({"lr": 0.001})
    assert advice_only is not None and not advice_only.edits and "Grad-CAM" in advice_only.advice[0]
    tree, patch = applied(cfg(run={"name": "t", "precision": "fp16", "device": "cpu"}), "nan-guard")
    assert tree["training"]["nonfinite_policy"] == "skip" and tree["training"]["grad_clip"] == 1.0
    assert any("bf16" in a for a in patch.advice) and any("lower-lr" in a for a in patch.advice)


@pytest.mark.parametrize("recipe_id", [r for r in RECIPES if r != "checkpoint-keys"])
def test_every_config_recipe_is_idempotent_on_its_own_output(recipe_id):
    for base in (ATTENTION, MULTITASK, MIL, SPARSE, IMBALANCED, cfg()):
        recipe = make_recipe(recipe_id)
        patch = recipe.plan(copy.deepcopy(base))
        if patch is None or not patch.edits:
            continue
        first = apply_patch(base, patch, trainfix=True)
        assert validate(plain(first.tree)) == []
        second_plan = make_recipe(recipe_id).plan(first.tree)
        if second_plan is None:
            continue
        prov = [{"id": recipe_id}]
        second = apply_patch(first.tree, second_plan, trainfix=True, provenance=prov)
        assert second.is_noop, (recipe_id, [e.describe() for e in second.changed])


def test_recommend_takes_the_first_fix_that_applies():
    f = finding("accuracy-oscillation", ["two-stage-sparse", "mil-soft-selection", "lower-lr", "grad-clip"])
    rec = best_fix(cfg(), f)
    assert rec.recipe_id == "lower-lr"
    assert [i for i, _ in rec.passed_over] == ["two-stage-sparse", "mil-soft-selection"]
    assert best_fix(SPARSE, f).recipe_id == "two-stage-sparse"
    recs = recommend(SPARSE, [f, finding("sparse-from-start", ["two-stage-sparse"])])
    assert [r.recipe_id for r in recs] == ["two-stage-sparse", "two-stage-sparse"]
    assert [r.shared for r in recs] == [False, True]


def test_patch_builder_keeps_foreign_types():
    b = PatchBuilder("x", {"lr": "5e-4", "use_balanced": True, "epochs": 10})
    b.set("lr", 0.00015, "r")
    assert b.patch.edits[0].new == "0.00015"  # a quoted number stays a string


def test_class_balance_declines_when_classes_are_already_balanced():
    r = make_recipe("class-balance")
    assert r.plan(cfg()) is None and "balanced (imbalance_ratio 1)" in r.reason
    f = finding("class-disparity", ["class-balance"], count_ratio=1.1)
    r = make_recipe("class-balance")
    assert r.plan(IMBALANCED, f) is None and "1.1x" in r.reason
    f = finding("class-disparity", ["class-balance"], count_ratio=10.0)
    assert make_recipe("class-balance").plan(IMBALANCED, f) is not None


def test_recorded_effective_lr_is_kept_true_in_resolved_configs():
    resolved = copy.deepcopy(MULTITASK)
    resolved["optimizer"]["scaled_lr"] = 1.5625e-05
    tree, _ = applied(resolved, "lr-sqrt-scaling")
    assert tree["optimizer"]["scaled_lr"] == pytest.approx(5e-4)
    tree, _ = applied(resolved, "lower-lr")
    assert tree["optimizer"]["scaled_lr"] == pytest.approx(1.5625e-05 * 0.3, rel=1e-2)


def test_two_stage_sparse_gives_a_constant_lr_a_decaying_schedule():
    c = copy.deepcopy(SPARSE)
    c["schedule"] = {"name": "constant"}
    tree, _ = applied(c, "two-stage-sparse")
    assert tree["schedule"]["name"] == "cosine" and tree["schedule"]["warmup_epochs"] == 2
    assert tree["stages"][1]["overrides"]["schedule.warmup_epochs"] == 0.0
