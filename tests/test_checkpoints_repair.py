"""The checkpoint-keys artifact recipe: a new file with clean keys, same layout, proven loadable."""

from __future__ import annotations

import hashlib

import pytest

import torch
nn = torch.nn

from trainfix.diagnostics import checkpoints as ck  # noqa: E402
from trainfix.errors import CheckpointError, FixError  # noqa: E402
from trainfix.fixes.recipes import load as load_recipe  # noqa: E402
from trainfix.fixes.recipes.checkpoint_keys import CheckpointKeys  # noqa: E402


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recipe_is_registered_as_an_artifact_recipe():
    cls = load_recipe("checkpoint-keys")
    assert cls is CheckpointKeys
    assert cls.kind == "artifact" and cls.resolves == ("checkpoint-key-mismatch",)
    recipe = cls()
    assert recipe.plan({"model": {"name": "cnn"}}, None) is None and "checkpoint file" in recipe.reason


def test_repairs_dataparallel_training_checkpoint_and_keeps_the_layout(tmp_path):
    model = _net(seed=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    opt.step()
    path = tmp_path / "best.pt"
    torch.save({"model_state_dict": nn.DataParallel(model).state_dict(), "optimizer_state_dict": opt.state_dict(),
                "epoch": 12, "ema": {f"module.{k}": v for k, v in model.state_dict().items()}}, path)
    before = _digest(path)
    result = CheckpointKeys().repair(path, model=_net(seed=2))
    assert result.out_path == tmp_path / "best.fixed.pt"
    assert result.renamed == 9 and result.prefixes == ["module."] and result.verified_strict is True
    assert _digest(path) == before  # the input is never modified
    fixed = torch.load(result.out_path, weights_only=True)
    assert set(fixed) == {"model_state_dict", "optimizer_state_dict", "epoch", "ema"}
    assert list(fixed["model_state_dict"]) == list(model.state_dict())
    assert list(fixed["ema"]) == list(model.state_dict())
    assert fixed["epoch"] == 12 and fixed["optimizer_state_dict"]["state"].keys() == opt.state_dict()["state"].keys()
    fresh = _net(seed=3)
    fresh.load_state_dict(fixed["model_state_dict"], strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), model.state_dict().values()))
    assert ck.summarize(result.out_path).prefixes == {}


def test_repairs_compiled_dataparallel_keys_without_a_model(tmp_path):
    model = _net()
    path = tmp_path / "w.pth"
    torch.save({f"module._orig_mod.{k}": v for k, v in model.state_dict().items()}, path)
    out = tmp_path / "sub" / "clean.pth"
    result = CheckpointKeys().repair(path, out)
    assert result.out_path == out and result.verified_strict is None
    assert result.prefixes == ["module._orig_mod."]
    assert list(torch.load(out, weights_only=True)) == list(model.state_dict())


def test_lightning_checkpoint_keeps_its_container(tmp_path):
    model = _net()
    path = tmp_path / "epoch=2.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "pytorch-lightning_version": "2.4.0", "optimizer_states": [], "global_step": 40}, path)
    result = CheckpointKeys().repair(path, model=_net(seed=5))
    assert result.out_path.name == "epoch=2.fixed.ckpt" and result.verified_strict
    fixed = torch.load(result.out_path, weights_only=True)
    assert fixed["global_step"] == 40 and fixed["pytorch-lightning_version"] == "2.4.0"
    assert list(fixed["state_dict"]) == list(model.state_dict())


def test_safetensors_stay_safetensors(tmp_path):
    from safetensors.torch import load_file, save_file

    model = _net()
    path = tmp_path / "model.safetensors"
    save_file({f"_orig_mod.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(path),
              metadata={"format": "pt"})
    result = CheckpointKeys().repair(path, model=_net(seed=1))
    assert result.out_path.name == "model.fixed.safetensors"
    assert set(load_file(str(result.out_path))) == set(model.state_dict())
    assert ck.load_checkpoint(result.out_path).metadata == {"format": "pt"}


def test_clean_checkpoint_is_not_applicable(tmp_path):
    path = tmp_path / "clean.pt"
    torch.save(_net().state_dict(), path)
    with pytest.raises(FixError, match="nothing to rename"):
        CheckpointKeys().repair(path, model=_net())
    assert not (tmp_path / "clean.fixed.pt").exists()


def test_wrong_model_refuses_and_writes_nothing(tmp_path):
    path = tmp_path / "dp.pt"
    torch.save(nn.DataParallel(_net()).state_dict(), path)
    other = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(CheckpointError, match="still does not fit"):
        CheckpointKeys().repair(path, model=other)
    assert not (tmp_path / "dp.fixed.pt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["dp.pt"]  # no temp file left behind


def test_refuses_to_overwrite_the_input(tmp_path):
    path = tmp_path / "dp.pt"
    torch.save(nn.DataParallel(_net()).state_dict(), path)
    with pytest.raises(FixError, match="overwrite"):
        CheckpointKeys().repair(path, out=path)
