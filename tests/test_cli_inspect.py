"""`trainfix inspect`: layout, prefixes, model fit and update ratios, rich and JSON."""

from __future__ import annotations

import json
import os
import sys

import pytest

import torch
nn = torch.nn
from typer.testing import CliRunner  # noqa: E402

from trainfix.cli.app import app  # noqa: E402

FACTORY = '''
import torch.nn as nn


def build():
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def wider():
    return nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8 * 6 * 6, 10))


NOT_A_MODEL = 3
'''


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


@pytest.fixture()
def factory_module(tmp_path, monkeypatch):
    name = f"h6_factory_{abs(hash(str(tmp_path))) % 10**8}"
    (tmp_path / f"{name}.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _invoke(*args: str):
    return CliRunner().invoke(app, ["inspect", *args])


def _dp_checkpoint(tmp_path):
    model = _net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    opt.step()
    path = tmp_path / "best.pt"
    torch.save({"model_state_dict": nn.DataParallel(model).state_dict(), "optimizer_state_dict": opt.state_dict(),
                "epoch": 4, "step": 80}, path)
    return path


def test_rich_output_shows_layout_prefix_counts_and_optimizer(tmp_path):
    res = _invoke(str(_dp_checkpoint(tmp_path)))
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "weights at: model_state_dict" in out
    assert "prefix 'module.' on 9 of 9 keys" in out
    assert "parameters: 1,498 (1,507 elements with buffers)" in out
    assert "optimizer state: 6 parameters in 1 group(s), 6 with state" in out
    assert "non-finite tensors: none" in out
    assert "epoch: 4   step: 80" in out


def test_json_output_with_model_factory(tmp_path, factory_module):
    res = _invoke(str(_dp_checkpoint(tmp_path)), "--model", f"{factory_module}:build", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema"] == 1 and doc["checkpoint"]["prefixes"] == {"module.": 9}
    saved, fixed = doc["model"]["as_saved"], doc["model"]["after_strip"]
    assert saved["fill_share"] == 0.0 and len(saved["missing"]) == 9 and len(saved["unexpected"]) == 9
    assert fixed["loads_strict"] is True and fixed["fill_share"] == 1.0


def test_rich_model_mismatch_lists_keys(tmp_path, factory_module):
    res = _invoke(str(_dp_checkpoint(tmp_path)), "--model", f"{factory_module}:wider")
    assert res.exit_code == 0, res.output
    assert "strict=False fills 0.0% of the parameters" in res.stdout
    assert "unexpected: module.0.weight" in res.stdout
    assert "after stripping wrappers: 0 missing, 0 unexpected" in res.stdout


def test_against_reports_update_ratio_per_step(tmp_path):
    a = _net().state_dict()
    b = {k: (v * 1.05 if v.is_floating_point() else v) for k, v in a.items()}
    pa, pb = tmp_path / "epoch_001.pt", tmp_path / "epoch_002.pt"
    torch.save({"model": a, "step": 50}, pa)
    torch.save({"model": b, "step": 100}, pb)
    res = _invoke(str(pa), "--against", str(pb), "--format", "json")
    doc = json.loads(res.stdout)
    assert doc["update"]["median"] == pytest.approx(0.05, rel=1e-6)
    assert doc["update"]["steps"] == 50 and doc["update"]["median_per_step"] == pytest.approx(0.001, rel=1e-6)
    rich = _invoke(str(pa), "--against", str(pb))
    assert "per optimizer step (50 steps apart): 0.001" in rich.stdout


def test_hostile_checkpoint_is_a_one_line_error(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "p": Payload()}, path)
    res = _invoke(str(path))
    assert res.exit_code == 2
    assert "error: refusing to unpickle evil.pt" in res.stderr and "Traceback" not in res.stderr
    assert "hint:" in res.stderr and "add_safe_globals" in res.stderr
    assert not (tmp_path / "pwned").exists()
    js = _invoke(str(path), "--format", "json")
    assert js.exit_code == 2 and json.loads(js.stdout)["error"]["code"] == "checkpoint"


def test_bad_inputs_exit_2(tmp_path, factory_module):
    assert _invoke(str(tmp_path / "missing.pt")).exit_code == 2
    assert _invoke(str(tmp_path)).exit_code == 2
    path = _dp_checkpoint(tmp_path)
    res = _invoke(str(path), "--model", "no_such_module_xyz:build")
    assert res.exit_code == 2 and "cannot import" in res.stderr
    res = _invoke(str(path), "--model", f"{factory_module}:NOT_A_MODEL")
    assert res.exit_code == 2 and "not an nn.Module" in res.stderr
    assert _invoke(str(path), "--format", "xml").exit_code == 2
