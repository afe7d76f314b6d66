"""gradcam-blank and attention-inconsistency on real runs (tests/data/attention, see PROVENANCE.md):
they fire on maps drawn from an unloaded checkpoint and on attribution methods that disagree, and
stay quiet on healthy trained runs and on the repaired checkpoint's maps."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trainfix.diagnostics.pipeline import diagnose_paths

DATA = Path(__file__).parent / "data" / "attention"


def findings(path: Path) -> dict:
    report = diagnose_paths([path])
    return {f.detector: f for f in report.runs[0].findings}


def test_gradcam_blank_fires_on_maps_of_an_unloaded_checkpoint_with_the_key_evidence(tmp_path):
    import torch
    run = tmp_path / "user"
    shutil.copytree(DATA / "wrapped-keys", run)
    from trainfix.trainers.build import as_config, build_data, build_model

    cfg = as_config(run / "config.yaml")
    model = build_model(cfg, build_data(cfg))
    torch.save({"model_state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, run / "best_model.pth")
    f = findings(run)["gradcam-blank"]
    assert f.evidence["loaded_fraction"] == 0.0
    assert f.evidence["checkpoint_prefixes"] == ["module."]
    assert f.fixes[0] == "checkpoint-keys"
    assert "untrained network" in f.message and "module." in f.message
    assert f.evidence["pointing_game"] < 0.5  # the maps recorded with that load miss the digit


def test_gradcam_blank_fires_on_unloaded_maps_even_without_the_checkpoint():
    f = findings(DATA / "wrapped-keys")["gradcam-blank"]
    assert f.evidence["loaded_fraction"] == 0.0 and f.evidence["checkpoint_prefixes"] == []


@pytest.mark.parametrize("run", ["healthy-cnn", "repaired-keys", "sparsity-buggy", "sparsity-fixed"])
def test_both_attention_detectors_quiet_on_healthy_real_runs(run):
    found = findings(DATA / run)
    assert "gradcam-blank" not in found and "attention-inconsistency" not in found


def test_attention_inconsistency_fires_on_a_few_label_run_whose_maps_disagree():
    f = findings(DATA / "few-labels")["attention-inconsistency"]
    assert f.evidence["metric"] == "gradcam_guided_agreement"
    assert f.evidence["final_level"] < 0.45 and f.fixes == ["atcon"]
    assert "gradcam-blank" not in findings(DATA / "few-labels")
