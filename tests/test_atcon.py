"""ATCON: the soft mask, the consistency loss (both pairings, trained through), the Bernoulli mix of
supervised and unlabelled steps, frozen BatchNorm statistics, pools, and the trainer's hook."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

import torch  # noqa: E402

from trainfix.errors import ConfigError  # noqa: E402
from trainfix.trainers.atcon import Atcon, apply_mask, consistency_loss, pearson, soft_mask  # noqa: E402
from trainfix.trainers.attribution.layers import find_layer  # noqa: E402
from trainfix.trainers.components.attention import digits_canvas  # noqa: E402
from trainfix.trainers.components.models import cnn  # noqa: E402
from trainfix.trainers.config import from_dict  # noqa: E402


@pytest.fixture(scope="module")
def bundle():
    return digits_canvas(0, labelled_per_class=2, background_noise=0.3)


def config(**atcon):
    return from_dict({"data": {"name": "digits-canvas", "labelled_per_class": 2}, "model": {"name": "cnn", "width": 4},
                      "training": {"mode": "atcon", "batch_size": 10}, "atcon": {"batch_size": 8, **atcon}})


def test_standardised_mask_ignores_the_gradient_scale_and_the_raw_one_masks_nothing():
    torch.manual_seed(0)
    g = torch.rand(2, 16, 16)
    assert torch.allclose(soft_mask(g, 8.0), soft_mask(g * 1e-3, 8.0), atol=1e-5)
    m = soft_mask(g, 8.0)
    assert float(m.min()) < 0.05 and float(m.max()) > 0.95  # it really selects pixels
    raw = soft_mask(g * 1e-3, 8.0, "raw")  # the paper code on an input gradient of typical size
    assert float((raw - 0.5).abs().max()) < 0.01


def test_mask_fades_to_the_blank_value_and_pearson_is_bounded():
    x = torch.randn(3, 1, 16, 16)
    zero = apply_mask(x, torch.zeros(3, 16, 16))
    assert torch.allclose(zero, x.flatten(1).amin(1).view(3, 1, 1, 1).expand_as(x))
    assert torch.allclose(apply_mask(x, torch.ones(3, 16, 16)), x, atol=1e-6)
    a = torch.rand(4, 8, 8)
    assert torch.allclose(pearson(a, 2 * a + 1), torch.ones(4), atol=1e-5)
    assert float(pearson(a, torch.ones(4, 8, 8)).abs().max()) == 0.0  # a constant map: 0, not NaN


@pytest.mark.parametrize("pairing", ["gb-mask", "gradcam-mask"])
def test_consistency_loss_trains_the_weights(bundle, pairing):
    torch.manual_seed(0)
    model = cnn(bundle, width=4).eval()
    x = torch.stack([bundle.unlabelled[i][0] for i in range(6)])
    loss, stats = consistency_loss(model, find_layer(model, "features"), x, pairing=pairing)
    assert -1.0 <= float(loss) <= 1.0 and 0.0 < float(stats["mask_mean"]) < 1.0
    loss.backward()
    assert model.head.weight.grad is not None and float(model.head.weight.grad.abs().sum()) > 0
    assert float(model.features[0].weight.grad.abs().sum()) > 0


def test_supervised_share_matches_alpha_and_choices_are_reproducible(bundle):
    torch.manual_seed(0)
    model = cnn(bundle, width=4)
    a = Atcon(config(alpha=8), bundle, model, seed=0)
    n_sup, n_unsup = len(bundle.train), len(bundle.unlabelled)
    p = 8 * n_sup / (8 * n_sup + n_unsup)
    assert a.p_supervised == pytest.approx(p)
    draws = [a.unlabelled_steps_before(s) for s in range(4000)]
    share = 4000 / (4000 + sum(draws))
    assert share == pytest.approx(p, rel=0.08)
    assert draws[:50] == [Atcon(config(alpha=8), bundle, model, seed=0).unlabelled_steps_before(s) for s in range(50)]


def test_unlabelled_steps_freeze_batchnorm_and_leave_grads_zero(bundle):
    torch.manual_seed(0)
    model = cnn(bundle, width=4).train()
    a = Atcon(config(alpha=60), bundle, model, seed=0)  # about half the steps unlabelled
    step = next(s for s in range(100) if a.unlabelled_steps_before(s) > 0)
    bn = model.features[1]
    before = bn.running_mean.clone(), bn.num_batches_tracked.clone()
    weight0 = model.head.weight.detach().clone()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    a.before_step(model, opt, step, list(model.parameters()), None, torch.device("cpu"))
    assert a.done > 0 and model.training and opt.param_groups[0]["lr"] == 1e-3  # lr_scale applied, then undone
    assert torch.equal(bn.running_mean, before[0]) and torch.equal(bn.num_batches_tracked, before[1])
    assert not torch.equal(model.head.weight, weight0)
    assert all(p.grad is None for p in model.parameters())
    s = a.scalars()
    assert s["atcon/unlabelled_steps"] == a.done and "loss/atcon" in s


def test_pools_are_configurable_and_a_missing_one_is_one_line(bundle):
    model = cnn(bundle, width=4)
    assert len(Atcon(config(unlabelled="val"), bundle, model, 0).pool) == len(bundle.val)
    assert len(Atcon(config(unlabelled="train"), bundle, model, 0).pool) == len(bundle.train)
    full = digits_canvas(0)
    with pytest.raises(ConfigError) as err:
        Atcon(config(), full, model, 0)
    assert "labelled_per_class" in str(err.value.hint) and "\n" not in str(err.value)
    with pytest.raises(ConfigError):
        Atcon(config(), bundle, model, 0, world_size=2)


def test_trainer_runs_atcon_steps_and_logs_them(tmp_path):
    import json

    from trainfix.trainers.loop import train

    cfg = {"run": {"name": "a", "seed": 0, "device": "cpu"},
           "data": {"name": "digits-canvas", "labelled_per_class": 2}, "model": {"name": "cnn", "width": 4},
           "training": {"epochs": 2, "batch_size": 10, "mode": "atcon", "attention_samples": 16},
           "atcon": {"batch_size": 8},
           "logging": {"every_n_steps": 1, "tensorboard": False, "jsonl": True, "progress": False}}
    res = train(cfg, out_dir=tmp_path / "r")
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    done = max(r.get("atcon/unlabelled_steps", 0) for r in rows)
    assert done > 0 and any("loss/atcon" in r for r in rows)
    assert res.step == 4 and math.isfinite(res.metrics["val/loss"])
