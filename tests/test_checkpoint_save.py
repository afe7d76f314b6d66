"""Checkpoint saving: clean keys from wrapped modules, safe loading, RNG round trip, last-k/best."""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from trainfix.errors import CheckpointError
from trainfix.trainers import checkpoint as ck


def _model():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_clean_keys_strips_wrapper_prefixes():
    out = ck.clean_keys({"module._orig_mod.0.weight": 1, "_orig_mod.module.1.bias": 2, "enc._orig_mod.w": 4})
    assert out == {"0.weight": 1, "1.bias": 2, "enc.w": 4}


def test_model_state_of_a_compiled_module_has_plain_keys():
    model = _model()
    compiled = torch.compile(model)  # not run: wrapping alone adds the `_orig_mod.` prefix
    assert any(k.startswith("_orig_mod.") for k in compiled.state_dict())
    state = ck.model_state(compiled)
    assert list(state) == list(model.state_dict())
    model.load_state_dict(state)  # strict


def test_model_state_runs_cleaners_and_detaches():
    model = _model()
    state = ck.model_state(model, [lambda sd: {k: v for k, v in sd.items() if "running" not in k}])
    assert not any("running" in k for k in state)
    assert not state["0.weight"].requires_grad


def test_epoch_and_best_copies_do_not_change_when_last_is_rewritten(tmp_path):
    ck.save(tmp_path / "last.pt", {"model": {"w": torch.tensor([1.0])}}, {"step": 1})
    ck.copy(tmp_path / "last.pt", tmp_path / "epoch_000.pt")
    ck.save(tmp_path / "last.pt", {"model": {"w": torch.tensor([2.0])}}, {"step": 2})
    assert float(ck.load(tmp_path / "epoch_000.pt")["model"]["w"]) == 1.0
    assert json.loads((tmp_path / "epoch_000.json").read_text()) == {"step": 1}
    assert float(ck.load(tmp_path / "last.pt")["model"]["w"]) == 2.0


def test_save_is_safe_loadable_with_meta_and_no_temp_files(tmp_path):
    model = _model()
    state = {"model": ck.model_state(model), "rng": ck.rng_state(), "progress": {"step": 3, "epoch": 1}}
    ck.save(tmp_path / "last.pt", state, {"epoch": 1, "step": 3})
    loaded = torch.load(tmp_path / "last.pt", weights_only=True)
    assert loaded["progress"] == {"step": 3, "epoch": 1}
    assert json.loads((tmp_path / "last.json").read_text()) == {"epoch": 1, "step": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.pt"]
    assert ck.load(tmp_path / "last.pt")["model"].keys() == model.state_dict().keys()


def test_rng_states_round_trip():
    saved = ck.rng_state()
    a = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.random(), np.random.rand(), torch.rand(1)
    ck.set_rng_state(torch_load_roundtrip(saved))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == a


def torch_load_roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_load_refuses_pickled_objects(tmp_path):
    torch.save({"model": {}, "cfg": SimpleNamespace(a=1)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="arbitrary unpickling"):
        ck.load(tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="not found"):
        ck.load(tmp_path / "missing.pt")


def test_manager_keeps_last_k_epochs_and_the_best(tmp_path):
    cfg = SimpleNamespace(every_n_epochs=1, keep_last=2, best_metric="val/acc", best_mode="max")
    mgr = ck.CheckpointManager(tmp_path, cfg)
    for epoch, acc in enumerate([0.5, 0.8, 0.7, 0.6]):
        state = {"model": {"w": torch.tensor([float(epoch)])}, "progress": {}}
        mgr.save(state, {"epoch": epoch}, epoch_end=True, epoch=epoch, metric=acc)
    names = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert names == ["best.pt", "epoch_002.pt", "epoch_003.pt", "last.pt"]
    best = ck.load(tmp_path / "best.pt")
    assert float(best["model"]["w"]) == 1.0 and best["progress"]["best"] == 0.8
    assert json.loads((tmp_path / "best.json").read_text())["best_value"] == 0.8
    assert float(ck.load(tmp_path / "last.pt")["model"]["w"]) == 3.0
    assert mgr.improved(float("nan")) is False


def test_manager_min_mode_and_disabled(tmp_path):
    cfg = SimpleNamespace(every_n_epochs=2, keep_last=5, best_metric="val/loss", best_mode="min")
    mgr = ck.CheckpointManager(tmp_path / "a", cfg)
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):
        mgr.save({"model": {}, "progress": {}}, {}, epoch_end=True, epoch=epoch, metric=loss)
    assert mgr.best == 0.5
    assert sorted(p.name for p in (tmp_path / "a").glob("epoch_*.pt")) == ["epoch_001.pt"]
    off = ck.CheckpointManager(tmp_path / "b", cfg, enabled=False)
    assert off.save({"model": {}, "progress": {}}, {}, epoch_end=True, epoch=0, metric=1.0) == []
    assert not (tmp_path / "b").exists()
