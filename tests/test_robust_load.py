"""load_state_dict_robust: strips wrappers, loads strictly, never loads nothing in silence."""

from __future__ import annotations

import pytest

import torch
nn = torch.nn

from trainfix.errors import CheckpointError  # noqa: E402
from trainfix.trainers.robust_load import load_state_dict_robust  # noqa: E402


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("wrap", ["plain", "dataparallel", "lightning", "training-dict", "compiled-names"])
def test_loads_every_wrapper_layout_strictly(tmp_path, wrap):
    src = _net(seed=1)
    sd = src.state_dict()
    if wrap == "dataparallel":
        obj = nn.DataParallel(src).state_dict()
    elif wrap == "lightning":
        obj = {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "pytorch-lightning_version": "2.4.0",
               "optimizer_states": [], "epoch": 1}
    elif wrap == "training-dict":
        obj = {"model_state_dict": sd, "optimizer_state_dict": torch.optim.SGD(src.parameters(), 0.1).state_dict(),
               "epoch": 3}
    elif wrap == "compiled-names":
        obj = {f"module._orig_mod.{k}": v for k, v in sd.items()}
    else:
        obj = sd
    path = tmp_path / "ckpt.pt"
    torch.save(obj, path)
    dst = _net(seed=2)
    assert not _same(src, dst)
    report = load_state_dict_robust(dst, path)
    assert report.loads_strict and report.fill_share == 1.0
    assert _same(src, dst)


def test_seed_004_state_dict_is_repaired_not_silently_skipped():
    src = _net(seed=1)
    buggy = {}
    for key, value in nn.DataParallel(src).state_dict().items():
        new_key = key.replace("module.", "")  # noqa: F841 - the seed-004 bug: computed, then unused
        buggy[key] = value
    dst = _net(seed=2)
    report = load_state_dict_robust(dst, buggy)
    assert report.prefixes == {"module.": len(buggy)}
    assert _same(src, dst)


def test_wrong_architecture_raises_with_the_exact_keys_and_leaves_the_model_alone(tmp_path):
    # no BN, 5 classes, one extra layer
    other = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.ReLU(), nn.Linear(8, 5), nn.Linear(5, 5))
    path = tmp_path / "other.pt"
    torch.save(nn.DataParallel(other).state_dict(), path)
    dst = _net(seed=2)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(CheckpointError) as info:
        load_state_dict_robust(dst, path)
    err = info.value
    assert "does not fit the model" in err.message
    assert "missing: 1.running_mean" in err.details
    assert "unexpected: 4.weight" in err.details  # reported by its clean name, wrapper stripped
    assert any(d.startswith("shape mismatch: 3.weight checkpoint [5, 8] vs model [3, 8]") for d in err.details)
    assert all(torch.equal(before[k], v) for k, v in dst.state_dict().items())


def test_hostile_file_is_refused(tmp_path):
    import os

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"0.weight": torch.zeros(8, 6)}, "x": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_state_dict_robust(_net(), path)
    assert not (tmp_path / "pwned").exists()
