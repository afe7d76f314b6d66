"""Checkpoint reading and summaries on real checkpoints built with torch on the fly."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import zipfile

import pytest

import torch
nn = torch.nn

from trainfix.diagnostics import checkpoints as ck  # noqa: E402
from trainfix.diagnostics.run import CheckpointRef  # noqa: E402
from trainfix.errors import CheckpointError  # noqa: E402


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4 * 6 * 6, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def _stepped_adam(model: nn.Module, params=None) -> torch.optim.Optimizer:
    opt = torch.optim.Adam(params if params is not None else model.parameters(), lr=1e-3)
    model(torch.randn(4, 1, 8, 8)).sum().backward()
    opt.step()
    return opt


class Payload:
    """Unpickling this would create a file: the proof that nothing was executed."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


# -- import hygiene ----------------------------------------------------------------------------


def test_importing_the_module_does_not_import_torch():
    code = ("import sys, trainfix.diagnostics.checkpoints, trainfix.diagnostics.detectors.checkpoint_key_mismatch, "
            "trainfix.fixes.recipes.checkpoint_keys; print('torch' in sys.modules)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


# -- refusing hostile files ----------------------------------------------------------------------


def test_zip_checkpoint_with_code_payload_is_refused_and_never_executed(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": torch.zeros(2), "payload": Payload(str(target))}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError) as info:
        ck.load_checkpoint(path)
    assert "system" in info.value.message  # names the global it asked for
    assert "add_safe_globals" in info.value.hint
    assert not target.exists()


def test_raw_pickle_with_code_payload_is_refused_and_never_executed(tmp_path):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as fh:
        pickle.dump({"weight": Payload(str(target))}, fh, protocol=2)
    with pytest.raises(CheckpointError):
        ck.summarize(path)
    ref = CheckpointRef(path, path.stat().st_size)
    assert ref.summary is None and "refusing" in ref.error
    assert not target.exists()


def test_corrupt_and_missing_files_raise_checkpoint_error(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(_net().state_dict(), good)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="cannot read"):
        ck.load_checkpoint(broken)
    with pytest.raises(CheckpointError, match="not found"):
        ck.load_checkpoint(tmp_path / "nope.pt")


# -- formats and layouts ----------------------------------------------------------------------


def test_plain_state_dict_zip_is_read_with_mmap_and_summarised(tmp_path):
    model = _net()
    path = tmp_path / "plain.pt"
    torch.save(model.state_dict(), path)
    s = ck.summarize(path)
    assert s.format == "torch-zip" and s.kind == "state_dict" and s.state_dict_at == ""
    assert s.n_tensors == len(model.state_dict())
    assert s.n_params == sum(p.numel() for p in model.parameters())
    assert s.n_elements == sum(v.numel() for v in model.state_dict().values())
    assert s.dtypes == {"float32": 8, "int64": 1}
    assert s.prefixes == {}
    assert s.optimizer == {"present": False}
    top_key, top_norm = s.layer_norms_top[0]
    assert top_norm == pytest.approx(max(float(v.double().norm()) for k, v in model.state_dict().items()
                                         if v.is_floating_point() and "running" not in k), rel=1e-6)


def test_legacy_non_zip_checkpoint_is_read_without_mmap(tmp_path):
    path = tmp_path / "legacy.pt"
    torch.save(_net().state_dict(), path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    s = ck.summarize(path)
    assert s.format == "torch-legacy" and s.n_tensors == 9


def test_dataparallel_training_checkpoint(tmp_path):
    model = _net()
    opt = _stepped_adam(model)
    dp = nn.DataParallel(model)
    path = tmp_path / "dp.pt"
    torch.save({"model_state_dict": dp.state_dict(), "optimizer_state_dict": opt.state_dict(),
                "epoch": 7, "step": 140}, path)
    s = ck.summarize(path)
    assert s.kind == "training" and s.state_dict_at == "model_state_dict"
    assert s.top_level_keys == ["model_state_dict", "optimizer_state_dict", "epoch", "step"]
    assert s.prefixes == {"module.": 9}
    assert s.prefix_share() == ("module.", 9)
    assert (s.epoch, s.step) == (7, 140)
    assert s.optimizer["present"] and s.optimizer["n_params_in_optimizer"] == 6
    assert s.optimizer["params_without_state"] == []


def test_compiled_and_dataparallel_compiled_prefixes(tmp_path):
    compiled = torch.compile(_net())  # never called: only the wrapper's key names are needed
    keys = list(compiled.state_dict())
    assert all(k.startswith("_orig_mod.") for k in keys)
    both = nn.DataParallel(compiled)
    path = tmp_path / "both.pt"
    torch.save(both.state_dict(), path)
    s = ck.summarize(path)
    assert s.prefixes == {"module._orig_mod.": 9}
    assert ck.strip_prefixes(list(s.shapes)) == list(_net().state_dict())


def test_lightning_style_checkpoint(tmp_path):
    model = _net()
    opt = _stepped_adam(model)
    sd = {f"model.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "epoch=3-step=120.ckpt"
    torch.save({"epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0", "state_dict": sd,
                "optimizer_states": [opt.state_dict()], "lr_schedulers": [], "hyper_parameters": {"lr": 1e-3}},
               path)
    s = ck.summarize(path)
    assert s.kind == "lightning" and s.state_dict_at == "state_dict"
    assert s.prefixes == {"model.": 9}
    assert (s.epoch, s.step) == (3, 120)
    assert s.optimizer["n_params_in_optimizer"] == 6


def test_hf_style_bin_and_safetensors(tmp_path):
    from safetensors.torch import save_file

    model = _net()
    hf = tmp_path / "pytorch_model.bin"
    torch.save(model.state_dict(), hf)
    assert ck.summarize(hf).kind == "hf"
    st = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(st), metadata={"format": "pt"})
    s = ck.summarize(st)
    assert s.format == "safetensors" and s.n_tensors == 9 and s.prefixes == {}
    # detected by content too, whatever the suffix
    other = tmp_path / "weights.bin"
    other.write_bytes(st.read_bytes())
    assert ck.load_checkpoint(other).format == "safetensors"


def test_nested_training_dict_with_ema_prefers_the_model(tmp_path):
    model = _net()
    ema = _net(seed=1)
    path = tmp_path / "nested.pt"
    torch.save({"checkpoint": {"model": model.state_dict(), "meta": {"step": 55}},
                "ema": ema.state_dict(), "rng": {"torch": torch.get_rng_state()}}, path)
    s = ck.summarize(path)
    assert s.state_dict_at == "checkpoint.model"
    assert s.other_state_dicts == {"ema": 9}
    assert s.step == 55


def test_nonfinite_tensors_are_listed(tmp_path):
    sd = _net().state_dict()
    sd["head.weight"][0, :3] = float("nan")
    sd["head.bias"][1] = float("inf")
    path = tmp_path / "nan.pt"
    torch.save(sd, path)
    s = ck.summarize(path)
    found = {d["key"]: (d["nan"], d["inf"]) for d in s.nonfinite}
    assert found == {"head.weight": (3, 0), "head.bias": (0, 1)}


def test_parameters_missing_from_the_optimizer_are_named(tmp_path):
    """Seed 003's bug: uncertainty log-variances created but never given to the optimizer."""

    class WithLogVars(Net):
        def __init__(self) -> None:
            super().__init__()
            self.log_vars = nn.Parameter(torch.zeros(3))

    model = WithLogVars()
    opt = _stepped_adam(model, [p for n, p in model.named_parameters() if n != "log_vars"])
    path = tmp_path / "uw.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    s = ck.summarize(path)
    assert s.optimizer["n_params_in_optimizer"] == 6 and s.optimizer["n_param_tensors"] == 7
    assert s.optimizer["params_without_state_count"] == 1
    assert s.optimizer["params_without_state"] == ["log_vars"]


def test_meta_json_beside_the_checkpoint_gives_the_step(tmp_path):
    path = tmp_path / "epoch_002.pt"
    torch.save({"model": _net().state_dict()}, path)
    (tmp_path / "epoch_002.json").write_text(json.dumps({"epoch": 2, "step": 84}))
    s = ck.summarize(path)
    assert (s.epoch, s.step) == (2, 84)


def test_summary_is_json_ready(tmp_path):
    path = tmp_path / "x.pt"
    torch.save(_net().state_dict(), path)
    d = ck.summarize(path).to_dict()
    json.dumps(d)
    assert d["n_keys"] == 9 and "shapes" not in d


# -- keys against a model ---------------------------------------------------------------------


def test_seed_004_loader_bug_fills_nothing_and_is_caught():
    """The seed-004 loader computed new_key but stored key: strict=False then loads 0%."""
    trained = _net(seed=1)
    saved = nn.DataParallel(trained).state_dict()
    fresh = _net(seed=2)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    buggy = {}
    for key, value in saved.items():
        new_key = key.replace("module.", "")  # noqa: F841 - computed and then not used: the bug
        buggy[key] = value
    result = fresh.load_state_dict(buggy, strict=False)
    # silently nothing: every key unexpected, every weight missing (BN tolerates num_batches_tracked)
    assert len(result.missing_keys) == 8 and len(result.unexpected_keys) == 9
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items())
    report = ck.compare_to_model(buggy, fresh)
    assert report.fill_share == 0.0 and report.key_fill_share == 0.0 and not report.loads_strict
    assert report.prefixes == {"module.": 9}
    repaired = ck.compare_to_model(ck.strip_prefixes(buggy, list(fresh.state_dict())), fresh)
    assert repaired.loads_strict and repaired.fill_share == 1.0


def test_compare_reports_shape_mismatch_and_partial_fill():
    model = _net()
    sd = dict(model.state_dict())
    sd["head.weight"] = torch.zeros(5, 144)
    sd["head.bias"] = torch.zeros(5)
    del sd["features.0.bias"]
    sd["extra.weight"] = torch.zeros(1)
    r = ck.compare_to_model(sd, model)
    assert r.missing == ["features.0.bias"] and r.unexpected == ["extra.weight"]
    assert [k for k, _, _ in r.shape_mismatched] == ["head.weight", "head.bias"]
    n_params = sum(p.numel() for p in model.parameters())
    assert r.fill_share == pytest.approx((36 + 4 + 4) / n_params)  # conv weight + bn weight + bn bias


def test_plan_renames_rules():
    assert ck.plan_renames(["module._orig_mod.a.w", "module._orig_mod.b"]) == {
        "module._orig_mod.a.w": "a.w", "module._orig_mod.b": "b"}
    assert ck.plan_renames(["backbone._orig_mod.0.weight", "head.weight"]) == {
        "backbone._orig_mod.0.weight": "backbone.0.weight"}
    # model. alone is only stripped when every key has it
    assert ck.plan_renames(["model.a", "loss.weight"]) == {}
    assert ck.plan_renames(["model.a", "model.b"]) == {"model.a": "a", "model.b": "b"}
    # a collision keeps the original names
    assert ck.plan_renames(["module.a", "a", "module.b"]) == {"module.b": "b"}
    # against a wrapped model: clean keys get the wrapper added
    assert ck.plan_renames(["a.w", "b"], ["module.a.w", "module.b"]) == {"a.w": "module.a.w", "b": "module.b"}
    # against a model that owns a submodule called model: nothing is stripped wrongly
    assert ck.plan_renames(["module.model.a"], ["model.a"]) == {"module.model.a": "model.a"}


# -- update ratios ----------------------------------------------------------------------------


def test_update_ratios_on_known_perturbation(tmp_path):
    a = _net().state_dict()
    b = {k: (v * 1.02 if v.is_floating_point() else v) for k, v in a.items()}
    pa, pb = tmp_path / "epoch_001.pt", tmp_path / "epoch_002.pt"
    torch.save({"model": a, "step": 100}, pa)
    torch.save({"model": {f"module.{k}": v for k, v in b.items()}, "step": 120}, pb)
    r = ck.update_ratios(pa, pb)
    assert r.median == pytest.approx(0.02, rel=1e-6)
    assert r.steps == 20 and r.median_per_step == pytest.approx(0.001, rel=1e-6)
    assert "features.1.running_mean" not in r.per_layer  # buffers are not parameters
    assert r.spread_decades == pytest.approx(0.0, abs=1e-6)


def test_update_ratios_without_step_info_has_no_per_step_value():
    a = _net().state_dict()
    b = {k: (v + 0.01 if v.is_floating_point() else v) for k, v in a.items()}
    r = ck.update_ratios(a, b)
    assert r.steps is None and r.median_per_step is None and r.median > 0
    with pytest.raises(CheckpointError):
        ck.update_ratios(a, {"other.weight": torch.ones(3)})


def test_loss_module_parameters_count_for_optimizer_coverage(tmp_path):
    """The trainer keeps the loss module's state (uncertainty log-variances) beside the model."""
    model = Net()
    log_vars = nn.Parameter(torch.zeros(3))
    starved = _stepped_adam(model)  # log_vars never given to the optimizer
    torch.save({"model": model.state_dict(), "loss": {"log_vars": log_vars.detach()},
                "optimizer": starved.state_dict()}, tmp_path / "starved.pt")
    s = ck.summarize(tmp_path / "starved.pt")
    assert s.optimizer["n_param_tensors"] == 7 and s.optimizer["params_without_state"] == ["loss.log_vars"]
    fed = torch.optim.Adam([{"params": list(model.parameters())}, {"params": [log_vars], "lr": 1e-2}])
    model(torch.randn(2, 1, 8, 8)).sum().backward()
    log_vars.sum().backward()
    fed.step()
    torch.save({"model": model.state_dict(), "loss": {"log_vars": log_vars.detach()},
                "optimizer": fed.state_dict()}, tmp_path / "fed.pt")
    s = ck.summarize(tmp_path / "fed.pt")
    assert s.optimizer["n_params_in_optimizer"] == 7 and "params_without_state_count" not in s.optimizer


def test_counters_prefer_the_top_level_then_the_meta_over_nested_progress(tmp_path):
    """Our trainer's container keeps progress.epoch = the next epoch and config.training.epochs;
    the meta beside it records the finished epoch."""
    path = tmp_path / "epoch_005.pt"
    torch.save({"model": _net().state_dict(), "progress": {"step": 258, "epoch": 6},
                "config": {"training": {"epochs": 30}}}, path)
    assert (ck.summarize(path).epoch, ck.summarize(path).step) == (6, 258)
    (tmp_path / "epoch_005.json").write_text(json.dumps({"epoch": 5, "step": 258}))
    s = ck.summarize(path)
    assert (s.epoch, s.step) == (5, 258)
    torch.save({"model": _net().state_dict(), "config": {"training": {"epochs": 30}}}, tmp_path / "c.pt")
    assert ck.summarize(tmp_path / "c.pt").epoch is None


def test_torch_load_is_weights_only_with_mmap_for_zip_files_only(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    torch.save(_net().state_dict(), tmp_path / "zip.pt")
    torch.save(_net().state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    ck.load_checkpoint(tmp_path / "zip.pt")
    ck.load_checkpoint(tmp_path / "legacy.pt")
    assert calls == [{"weights_only": True, "map_location": "cpu", "mmap": True},
                     {"weights_only": True, "map_location": "cpu", "mmap": False}]


def test_mmap_refusal_falls_back_to_a_plain_weights_only_load(tmp_path, monkeypatch):
    calls = []
    real_load = torch.load

    def no_mmap(*args, **kwargs):
        calls.append(kwargs.get("mmap"))
        if kwargs.get("mmap"):
            raise RuntimeError("mmap can only be used with files saved with the new zipfile serialization")
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", no_mmap)
    torch.save(_net().state_dict(), tmp_path / "zip.pt")
    assert len(ck.load_checkpoint(tmp_path / "zip.pt").obj) == 9
    assert calls == [True, None]
