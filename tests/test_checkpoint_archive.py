"""Checkpoints read as data without torch: the same keys, shapes, dtypes and values as
``torch.load(weights_only=True)`` on real torch-saved files; hostile pickles refused unexecuted."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from trainfix.diagnostics import checkpoint_archive as ca
from trainfix.diagnostics import checkpoints as ck
from trainfix.errors import CheckpointError


def _same(ours, theirs, where="") -> None:
    if isinstance(theirs, torch.Tensor):
        t = theirs.detach()
        assert isinstance(ours, ca.ArrayRef), where
        assert ours.shape == tuple(t.shape) and str(ours.dtype) == str(t.dtype), where
        want = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
        np.testing.assert_array_equal(ours.array(), want, err_msg=where)
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs), where
        for k in theirs:
            _same(ours[k], theirs[k], f"{where}.{k}")
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs), where
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _same(a, b, f"{where}[{i}]")
    else:
        assert ours == theirs and type(ours) is type(theirs), where


def _training_checkpoint() -> dict:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 6 * 6, 5))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    opt.step()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    return {
        "state_dict": {**{f"module.{k}": v for k, v in model.state_dict().items()},
                       "module.scale": torch.tensor([1.0, float("nan"), float("-inf")])},
        "optimizer_states": [opt.state_dict()],
        "epoch": 3, "global_step": 120, "pytorch-lightning_version": "2.4.0",
        "hyper_parameters": {"lr": 1e-3, "betas": (0.9, 0.999), "tags": {"a", "b"}, "blob": b"\x00\xff"},
        "views": {"t": base.t(), "slice": base[1:, 2:], "row": base[2], "scalar": torch.tensor(2.5)},
        "dtypes": {"bf16": torch.randn(3, 2).to(torch.bfloat16), "f16": torch.randn(5).half(),
                   "f64": torch.randn(2, 2).double(), "i32": torch.arange(4, dtype=torch.int32),
                   "u8": torch.arange(3, dtype=torch.uint8), "flag": torch.tensor([True, False]),
                   "nan": torch.tensor([1.0, float("nan"), float("inf")])},
        "param": torch.nn.Parameter(torch.ones(2, 2)),
        "ordered": collections.OrderedDict(b=torch.zeros(1), a=None),
    }


def test_a_training_checkpoint_reads_as_torch_reads_it(tmp_path):
    path = tmp_path / "last.ckpt"
    torch.save(_training_checkpoint(), path)
    fmt, obj, meta = ca.read_archive(path)
    assert fmt == "torch-zip" and meta == {}
    _same(obj, torch.load(path, weights_only=True))


def test_a_plain_state_dict_and_a_legacy_file(tmp_path):
    sd = torch.nn.Linear(4, 3).state_dict()
    torch.save(sd, tmp_path / "w.pt")
    _same(ca.read_archive(tmp_path / "w.pt")[1], torch.load(tmp_path / "w.pt", weights_only=True))
    torch.save(sd, tmp_path / "old.pt", _use_new_zipfile_serialization=False)
    assert ca.read_archive(tmp_path / "old.pt") is None  # torch reads that one
    assert ck.read_checkpoint(tmp_path / "old.pt").format == "torch-legacy"


def test_safetensors_header_and_values(tmp_path):
    from safetensors.torch import load_file, save_file

    tensors = {"a.weight": torch.randn(3, 4), "b": torch.arange(5, dtype=torch.int64),
               "h": torch.randn(2).to(torch.bfloat16)}
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata={"format": "pt"})
    fmt, obj, meta = ca.read_archive(tmp_path / "m.safetensors")
    assert fmt == "safetensors" and meta == {"format": "pt"}
    _same(obj, load_file(str(tmp_path / "m.safetensors")))


def test_a_hostile_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"w": torch.zeros(1), "p": Payload()}, path)
    with pytest.raises(CheckpointError) as info:
        ca.read_archive(path)
    assert "refusing to unpickle evil.pt" in info.value.message and "system" in info.value.message
    assert not marker.exists()
    # and in a fresh interpreter: nothing of torch imported, nothing run
    code = textwrap.dedent(f"""
        import sys
        from trainfix.diagnostics.checkpoint_archive import read_archive
        try:
            read_archive({str(path)!r})
        except Exception as exc:
            print(type(exc).__name__, 'torch' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["CheckpointError", "False"], out.stderr
    assert not marker.exists()


Point = collections.namedtuple("Point", "x")


def test_an_unknown_class_is_refused(tmp_path):
    path = tmp_path / "obj.pt"
    torch.save({"w": torch.zeros(1), "c": Point(1)}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle obj.pt"):
        ca.read_archive(path)


def test_what_the_reader_does_not_model_goes_to_torch(tmp_path):
    path = tmp_path / "sparse.pt"
    torch.save({"s": torch.eye(3).to_sparse()}, path)
    with pytest.raises(ca.Unsupported):
        ca.read_archive(path)
    assert ck.read_checkpoint(path).obj["s"].is_sparse


def test_summary_is_the_one_torch_tensors_give(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    torch.save(_training_checkpoint(), path)
    ours = ck.summarize(path).to_dict()
    monkeypatch.setattr(ca, "read_archive", lambda p: None)  # force torch.load(weights_only=True)
    theirs = ck.summarize(path).to_dict()
    assert json.dumps(ours, sort_keys=True, default=str) != "" and ours.keys() == theirs.keys()
    for key in ours:
        if key in ("layer_norms_top", "layer_norms_bottom"):
            assert [k for k, _ in ours[key]] == [k for k, _ in theirs[key]]
            assert [v for _, v in ours[key]] == pytest.approx([v for _, v in theirs[key]], rel=1e-12)
        else:
            assert ours[key] == theirs[key], key
    assert ours["nonfinite"] and ours["epoch"] == 3 and ours["step"] == 120


def test_update_ratios_without_torch_tensors(tmp_path):
    torch.manual_seed(1)
    a = torch.nn.Linear(6, 4).state_dict()
    b = {k: v + 0.01 * torch.randn_like(v) for k, v in a.items()}
    torch.save({"model": a, "step": 10}, tmp_path / "a.pt")
    torch.save({"model": b, "step": 20}, tmp_path / "b.pt")
    from_files = ck.update_ratios(tmp_path / "a.pt", tmp_path / "b.pt")
    in_memory = ck.update_ratios(a, b, steps=10)
    assert from_files.steps == 10 and from_files.per_layer == pytest.approx(in_memory.per_layer, rel=1e-12)
    want = float(torch.linalg.vector_norm(b["weight"].double() - a["weight"].double()) / torch.linalg.vector_norm(a["weight"].double()))
    assert from_files.per_layer["weight"] == pytest.approx(want, rel=1e-12)


def test_diagnose_with_checkpoints_imports_no_torch(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "metrics.jsonl").write_text("".join(f'{{"step": {i}, "train/loss": {1.0 / (i + 1)}}}\n' for i in range(40)))
    sd = torch.nn.Linear(3, 2).state_dict()
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in sd.items()}, "step": 40}, run / "checkpoints" / "last.pt")
    code = textwrap.dedent(f"""
        import sys, json
        from trainfix.cli.app import main
        sys.argv = ["trainfix", "diagnose", {str(run)!r}, "--format", "json", "-o", {str(tmp_path / "r.json")!r}]
        try:
            main()
        except SystemExit as exc:
            print(exc.code, 'torch' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-2:] == ["1", "False"] or out.stdout.split()[-2:] == ["0", "False"], out.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    fired = [f["detector"] for r in report["runs"] for f in r["findings"]]
    assert "checkpoint-key-mismatch" in fired
