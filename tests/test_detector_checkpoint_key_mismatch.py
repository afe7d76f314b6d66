"""checkpoint-key-mismatch: fires on wrapped checkpoints in a run dir, quiet on clean ones."""

from __future__ import annotations

import shutil
from pathlib import Path


import torch
nn = torch.nn
import pandas as pd

from trainfix.diagnostics.detectors import load as load_detector  # noqa: E402
from trainfix.diagnostics.detectors.base import DOC_SECTIONS  # noqa: E402
from trainfix.diagnostics.finding import Finding, Severity, Skip  # noqa: E402
from trainfix.diagnostics.run import SCALAR_COLUMNS, CheckpointRef, Run  # noqa: E402

Detector = load_detector("checkpoint-key-mismatch")
REPO = Path(__file__).resolve().parents[1]


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))


def _run(run_dir: Path, config: dict | None = None, config_files: list[Path] | None = None) -> Run:
    refs = [CheckpointRef(p, p.stat().st_size) for p in sorted(run_dir.rglob("*"))
            if p.suffix in (".pt", ".pth", ".ckpt", ".bin", ".safetensors")]
    return Run(run_dir, pd.DataFrame(columns=list(SCALAR_COLUMNS)), config or {}, config_files or [], refs)


def _check(run: Run, **params) -> list:
    det = Detector()
    return list(det.check(run, Detector.Params(**params)))


def _trainer_style(model: nn.Module, step: int) -> dict:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 2, "step": step,
            "rng": {"torch": torch.get_rng_state()}, "ema": None}


def test_docstring_has_every_section_in_order():
    doc = Detector.__doc__
    positions = [doc.index(f"{name}\n    {'-' * len(name)}") for name in DOC_SECTIONS]
    assert positions == sorted(positions)
    assert Detector.severity == Severity.ERROR and Detector.fixes == ("checkpoint-keys",)


def test_fires_on_dataparallel_checkpoints_with_key_counts(tmp_path):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    sd = nn.DataParallel(_net()).state_dict()
    for name in ("best.pt", "last.pt"):
        torch.save({"model_state_dict": sd, "epoch": 30}, ckdir / name)
    out = _check(_run(tmp_path))
    assert len(out) == 1 and isinstance(out[0], Finding)
    f = out[0]
    assert f.severity == Severity.ERROR and f.fixes == ["checkpoint-keys"]
    assert "2 checkpoints (best.pt, last.pt)" in f.message
    assert "9 of 9 keys start with 'module.'" in f.message
    assert f.evidence["keys_with_prefix"] == 9 and f.evidence["n_keys"] == 9
    assert f.evidence["state_dict_at"] == "model_state_dict"


def test_fires_on_compiled_and_lightning_checkpoints_separately(tmp_path):
    compiled = torch.compile(_net())  # never called: its state_dict carries the real wrapper names
    torch.save(compiled.state_dict(), tmp_path / "compiled.pt")
    lightning_sd = {f"model.{k}": v for k, v in _net().state_dict().items()}
    torch.save({"state_dict": lightning_sd, "pytorch-lightning_version": "2.4.0", "optimizer_states": [],
                "global_step": 10}, tmp_path / "epoch=0-step=10.ckpt")
    out = _check(_run(tmp_path))
    messages = sorted(f.message for f in out)
    assert len(out) == 2 and all(isinstance(f, Finding) for f in out)
    assert "compiled.pt: 9 of 9 keys start with '_orig_mod.' (torch.compile wrapper)" in messages[0]
    assert "epoch=0-step=10.ckpt: 9 of 9 keys start with 'model.' (Lightning module attribute wrapper)" in messages[1]


def test_fires_on_a_compiled_submodule(tmp_path):
    sd = {("backbone._orig_mod." + k): v for k, v in _net().state_dict().items()}
    torch.save(sd, tmp_path / "w.pt")
    (f,) = _check(_run(tmp_path))
    assert "9 of 9 keys hold an inner '._orig_mod.'" in f.message


def test_quiet_on_clean_trainer_style_checkpoints(tmp_path):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    for i, name in enumerate(("epoch_001.pt", "epoch_002.pt", "last.pt", "best.pt")):
        torch.save(_trainer_style(_net(seed=i), step=20 * (i + 1)), ckdir / name)
    # a plain model owning `self.model` is not a Lightning wrapper
    torch.save({f"model.{k}": v for k, v in _net().state_dict().items()}, tmp_path / "plain_with_model_attr.pt")
    assert _check(_run(tmp_path)) == []


def test_skips_without_checkpoints_and_when_none_is_readable(tmp_path):
    (skip,) = _check(_run(tmp_path))
    assert isinstance(skip, Skip) and skip.reason == "no checkpoints in the run directory"

    import os

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    torch.save({"w": torch.zeros(1), "p": Payload()}, tmp_path / "evil.pt")
    (skip,) = _check(_run(tmp_path))
    assert isinstance(skip, Skip) and "refusing to unpickle" in skip.reason
    assert not (tmp_path / "pwned").exists()


def test_seed_004_style_run_dir(tmp_path):
    """Seed 004: the best model was saved from DataParallel; a loader that keeps `key` loads nothing."""
    ckdir = tmp_path / "checkpoints_multiclass_best"
    ckdir.mkdir()
    model = _net()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    torch.save({"epoch": 60, "model_state_dict": nn.DataParallel(model).state_dict(),
                "optimizer_state_dict": opt.state_dict(), "best_acc": 85.91}, ckdir / "best.pt")
    (f,) = _check(_run(tmp_path))
    assert f.message.startswith("best.pt: 9 of 9 keys start with 'module.' (DataParallel/DistributedDataParallel")
    assert "strict=False silently loads nothing" in f.message


# -- against the model the run's trainfix config builds ---------------------------------------


def _trainfix_run(tmp_path: Path, width: int) -> Run:
    import yaml

    from trainfix.diagnostics.checkpoints import locate_state_dict  # noqa: F401 - import check
    from trainfix.trainers.build import model_from_config

    src = REPO / "examples" / "digits-quick.yaml"
    cfg = yaml.safe_load(src.read_text())
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    saved_cfg = dict(cfg, model=dict(cfg["model"], width=width))
    model = model_from_config(saved_cfg)
    torch.save({"model": model.state_dict(), "step": 21}, run_dir / "checkpoints" / "last.pt")
    shutil.copy(src, run_dir / "config.yaml")
    from trainfix.trainers.build import expected_model

    run = _run(run_dir, cfg, [run_dir / "config.yaml"])
    run.own_config, run.model_builder = cfg, expected_model
    return run


def test_config_model_comparison_fires_on_an_architecture_mismatch(tmp_path):
    run = _trainfix_run(tmp_path, width=8)  # the config says width 16
    (f,) = _check(run)
    assert "against the model built from the run's config" in f.message
    assert f.evidence["shape_mismatched"] > 0 and f.evidence["fill_share"] < 1.0
    assert "prefix" not in f.evidence


def test_config_model_comparison_quiet_when_the_checkpoint_fits(tmp_path):
    run = _trainfix_run(tmp_path, width=16)
    assert _check(run) == []


def test_diagnose_cli_reports_the_seed_004_finding(tmp_path):
    from typer.testing import CliRunner

    from trainfix.cli.app import app

    (tmp_path / "train.log").write_text("".join(
        f"Epoch {e}/10: Train Loss: {1.0 / e:.3f} | Val Acc: {50 + e}.00%\n" for e in range(1, 11)))
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    torch.save({"model_state_dict": nn.DataParallel(_net()).state_dict(), "epoch": 10}, ckdir / "best.pt")
    result = CliRunner().invoke(app, ["diagnose", str(tmp_path), "--format", "json"])
    assert result.exit_code == 1, result.output  # an error-severity finding
    import json

    doc = json.loads(result.stdout)
    findings = [f for r in doc["runs"] for f in r["findings"] if f["detector"] == "checkpoint-key-mismatch"]
    assert findings and "9 of 9 keys start with 'module.'" in findings[0]["message"]
