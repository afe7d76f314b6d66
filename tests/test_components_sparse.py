"""Magnitude-mask sparse training: masks, schedule, clean keys, resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainfix.errors import ConfigError
from trainfix.trainers.components import sparse


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10))


def cfg(**kw):
    return {"enabled": True, "active_fraction": 0.25, "start_epoch": 0, "remask_every_epochs": 1, **kw}


def test_global_masks_keep_the_largest_weights():
    model = net()
    cb = sparse.SparseTraining(model, cfg(), steps_per_epoch=10)
    weights = torch.cat([m.weight.detach().abs().flatten() for _, m in sparse.prunable_layers(model)])
    cb.on_epoch_start(0, 5)
    assert cb.active_fraction() == pytest.approx(0.25, abs=0.002)
    kept = torch.cat([m.weight_mask.flatten() for _, m in cb.layers]).bool()
    assert float(weights[kept].min()) >= float(weights[~kept].max())


def test_per_layer_scope_gives_each_layer_the_fraction():
    model = net()
    cb = sparse.SparseTraining(model, {**cfg(active_fraction=0.5), "scope": "layer"})
    cb.on_epoch_start(0, 1)
    for _, m in cb.layers:
        assert float(m.weight_mask.mean()) == pytest.approx(0.5, abs=0.01)


def test_masked_weights_are_zero_and_get_no_gradient():
    model = net()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    cb = sparse.SparseTraining(model, cfg(active_fraction=0.1))
    cb.on_epoch_start(0, 3)
    conv = model[0]
    assert torch.equal(conv.weight == 0, conv.weight_mask == 0) or bool((conv.weight[conv.weight_mask == 0] == 0).all())
    model(torch.randn(4, 1, 4, 4)).sum().backward()
    assert float(conv.weight_orig.grad[conv.weight_mask == 0].abs().max()) == 0.0
    before = conv.weight_orig.detach().clone()
    opt.step()  # the optimizer still holds the same Parameter (now weight_orig)
    assert not torch.equal(before, conv.weight_orig.detach())


def test_start_epoch_and_remask_cadence():
    model = net()
    cb = sparse.SparseTraining(model, cfg(start_epoch=2, remask_every_epochs=2))
    assert cb.on_epoch_start(0, 6)["sparsity/active_fraction"] == 1.0
    assert cb.on_epoch_start(1, 6)["sparsity/active_fraction"] == 1.0
    cb.on_epoch_start(2, 6)
    assert cb.last_mask_epoch == 2
    cb.on_epoch_start(3, 6)
    assert cb.last_mask_epoch == 2
    cb.on_epoch_start(4, 6)
    assert cb.last_mask_epoch == 4


def test_remask_lets_weights_regrow():
    model = net()
    cb = sparse.SparseTraining(model, cfg(active_fraction=0.1))
    cb.on_epoch_start(0, 2)
    lin = model[3]
    off = (lin.weight_mask == 0).nonzero()[0]
    with torch.no_grad():
        lin.weight_orig[tuple(off)] = 100.0  # a masked weight grew (e.g. from momentum)
    cb.on_epoch_start(1, 2)
    assert float(lin.weight_mask[tuple(off)]) == 1.0


def test_clean_state_dict_loads_into_the_dense_model():
    model = net()
    cb = sparse.SparseTraining(model, cfg())
    cb.on_epoch_start(0, 1)
    sd = cb.clean_state_dict(model.state_dict())
    assert not any(k.endswith(("_orig", "_mask")) for k in sd)
    dense = net()
    assert set(sd) == set(dense.state_dict())
    dense.load_state_dict(sd)
    x = torch.randn(3, 1, 4, 4)
    assert torch.allclose(dense(x), model(x))


def test_state_dict_round_trip_restores_masks_and_hidden_weights():
    model = net()
    cb = sparse.SparseTraining(model, cfg())
    cb.on_epoch_start(0, 2)
    state = cb.state_dict()
    clean = cb.clean_state_dict(model.state_dict())
    fresh = net()
    fresh.load_state_dict(clean)  # the loop loads clean model weights first
    cb2 = sparse.SparseTraining(fresh, cfg())
    cb2.load_state_dict(state)
    for (_, a), (_, b) in zip(cb.layers, cb2.layers):
        assert torch.equal(a.weight_mask, b.weight_mask) and torch.equal(a.weight_orig, b.weight_orig)
    assert cb2.last_mask_epoch == 0


def test_energy_savings_counts_conv_positions():
    model = net()
    cb = sparse.SparseTraining(model, cfg())
    cb.on_epoch_start(0, 1)
    assert "sparsity/energy_savings" not in cb.scalars()  # conv output size not known yet
    model(torch.randn(1, 1, 4, 4))
    conv, lin = model[0], model[3]
    dense = conv.weight.numel() * 16 + lin.weight.numel()
    skipped = float((conv.weight_mask == 0).sum()) * 16 + float((lin.weight_mask == 0).sum())
    assert cb.scalars()["sparsity/energy_savings"] == pytest.approx(skipped / dense)


def test_bad_settings():
    with pytest.raises(ConfigError):
        sparse.SparseTraining(net(), cfg(active_fraction=0.0))
    with pytest.raises(ConfigError):
        sparse.SparseTraining(nn.ReLU(), cfg())


def test_resumed_epoch_keeps_the_restored_masks():
    model = net()
    cb = sparse.SparseTraining(model, cfg())
    cb.on_epoch_start(0, 2)
    state = cb.state_dict()
    with torch.no_grad():
        for _, m in cb.layers:
            m.weight_orig.mul_(torch.rand_like(m.weight_orig))  # training moved the weights
    cb2 = sparse.SparseTraining(model, cfg())
    cb2.load_state_dict(state)
    cb2.on_epoch_start(0, 2)  # the loop calls the hook again for the interrupted epoch
    for (_, a) in cb2.layers:
        assert torch.equal(a.weight_mask, state["masks"][_])
