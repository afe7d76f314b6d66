"""Seed 004 end to end on real data: a DataParallel-saved checkpoint loaded with strict=False gives
the maps of an untrained network, gradcam-blank says so with the key evidence, and after
``apply --fix checkpoint-keys`` the maps localise the digit (pointing game before and after)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import torch
import captum  # noqa: F401 - a declared dependency; its absence must fail, not skip
from typer.testing import CliRunner  # noqa: E402

from trainfix.cli.app import app  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "gradcam-keys.yaml"


def invoke(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r


def diagnose_json(path: Path) -> dict:
    r = invoke("diagnose", path, "--format", "json")
    return {f["detector"]: f for f in json.loads(r.stdout)["runs"][0]["findings"]}


def test_seed_004_module_keys_blank_maps_then_repaired(tmp_path):
    from trainfix.trainers.loop import train

    torch.set_num_threads(1)
    run = train(EXAMPLE, out_dir=tmp_path / "train", overrides=["training.epochs=4"]).out_dir
    # the trained run itself, with its attn/* evaluation scalars: healthy, both detectors quiet
    healthy = diagnose_json(run)
    assert "gradcam-blank" not in healthy and "attention-inconsistency" not in healthy

    user = tmp_path / "user"
    user.mkdir()
    shutil.copy(run / "config.yaml", user / "config.yaml")
    state = torch.load(run / "checkpoints" / "best.pt", weights_only=True)["model"]
    torch.save({"model_state_dict": {"module." + k: v for k, v in state.items()}, "epoch": 5}, user / "best_model.pth")

    r = invoke("attention", user / "best_model.pth", "-o", user / "attention", "--ig-steps", "8")
    assert r.exit_code == 0, r.output
    before = json.loads((user / "attention" / "attention.json").read_text())["models"][0]
    assert before["load"]["fill_share"] == 0.0 and before["load"]["prefixes"] == {"module.": 14}
    found = diagnose_json(user)
    blank = found["gradcam-blank"]
    assert blank["evidence"]["loaded_fraction"] == 0.0 and blank["evidence"]["checkpoint_prefixes"] == ["module."]
    assert blank["fixes"][0] == "checkpoint-keys"

    r = invoke("apply", user / "best_model.pth", "--fix", "checkpoint-keys")
    assert r.exit_code == 0, r.output
    fixed_dir = tmp_path / "fixed"
    fixed_dir.mkdir()
    shutil.copy(user / "config.yaml", fixed_dir / "config.yaml")
    shutil.move(user / "best_model.fixed.pth", fixed_dir / "best_model.pth")
    r = invoke("attention", fixed_dir / "best_model.pth", "-o", fixed_dir / "attention", "--ig-steps", "8")
    assert r.exit_code == 0, r.output
    after = json.loads((fixed_dir / "attention" / "attention.json").read_text())["models"][0]
    assert after["load"]["fill_share"] == 1.0
    pg_before, pg_after = before["summary"]["attn/pointing_game"], after["summary"]["attn/pointing_game"]
    assert pg_after >= 0.7 and pg_after - pg_before >= 0.3, (pg_before, pg_after)
    assert "gradcam-blank" not in diagnose_json(fixed_dir)
