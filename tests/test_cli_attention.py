"""`trainfix attention`: pictures, attention.json and metrics.jsonl from a checkpoint; the trust
boundary (nothing named in a run dir is imported); bad layers and outputs end in one line, exit 2;
the trainer logs attn/* at evaluation."""

from __future__ import annotations

import json


import torch
import captum  # noqa: F401 - a declared dependency; its absence must fail, not skip
import matplotlib  # noqa: F401 - a declared dependency; its absence must fail, not skip
import yaml  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from trainfix.cli.app import app  # noqa: E402

CONFIG = {
    "run": {"name": "tiny", "seed": 0, "device": "cpu"},
    "data": {"name": "digits-canvas", "background_noise": 0.3},
    "model": {"name": "attention-cnn", "channels": 4},
    "training": {"epochs": 1, "batch_size": 64},
    "logging": {"every_n_steps": 5, "tensorboard": False, "jsonl": True, "progress": False},
}


def make_run(tmp_path, name="run", prefix="", config=None):
    from trainfix.trainers.build import as_config, build_data, build_model

    run = tmp_path / name
    (run / "checkpoints").mkdir(parents=True)
    cfg = config or CONFIG
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    if config is None:
        c = as_config(cfg)
        torch.manual_seed(123)  # weights other than the config's seeded init
        model = build_model(c, build_data(c))
        for p in model.parameters():
            p.data.normal_(0, 0.3)
        state = {prefix + k: v for k, v in model.state_dict().items()}
        torch.save({"model": state, "progress": {"step": 42}}, run / "checkpoints" / "best.pt")
    return run


def invoke(*args):
    return CliRunner().invoke(app, list(args))


def test_pictures_json_and_scalars_from_a_run_dir(tmp_path):
    run = make_run(tmp_path)
    out = run / "attention"
    r = invoke("attention", str(run), "-o", str(out), "--samples", "2", "--measure", "8", "--ig-steps", "4")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "attention.json").read_text())
    m = doc["models"][0]
    assert doc["layer"] == "gated" and m["step"] == 42 and m["load"]["loads_strict"]
    assert len(m["samples"]) == 8 and "pointing_game" in m["samples"][0]
    assert (out / "samples" / "sample_000.png").stat().st_size > 1000 and (out / "overview.png").is_file()
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    tags = {x["tag"] for x in lines}
    assert {"attn/gradcam_entropy", "attn/pointing_game", "attn/loaded_fraction"} <= tags
    assert all(x["step"] == 42 for x in lines)


def test_against_pictures_both_models_and_reports_a_partial_load(tmp_path):
    good = make_run(tmp_path, "good")
    wrapped = make_run(tmp_path, "wrapped", prefix="module.")
    out = tmp_path / "cmp"
    r = invoke("attention", str(wrapped), "--against", str(good), "-o", str(out), "--samples", "1", "--measure", "4",
               "--ig-steps", "0")
    assert r.exit_code == 0, r.output
    doc = json.loads((out / "attention.json").read_text())
    a, b = doc["models"]
    assert a["load"]["fill_share"] == 0.0 and "module." in a["load"]["prefixes"] and a["load"]["n_unexpected"] > 0
    assert b["load"]["fill_share"] == 1.0
    assert "untrained network" in r.output and "checkpoint-keys" in r.output


def test_a_run_dir_config_naming_code_is_refused(tmp_path):
    evil = dict(CONFIG, model={"_component_": "os.system", "command": "echo pwned"})
    run = make_run(tmp_path, config=evil)
    torch.save({"model": {}}, run / "checkpoints" / "best.pt")
    r = invoke("attention", str(run), "-o", str(tmp_path / "o"))
    assert r.exit_code == 2
    assert "does not import code named in a run's files" in r.output
    assert not (tmp_path / "o").exists()


def test_unknown_layer_lists_the_layers_in_one_line(tmp_path):
    run = make_run(tmp_path)
    r = invoke("attention", str(run), "-o", str(tmp_path / "o"), "--layer", "layer4", "--ig-steps", "0")
    assert r.exit_code == 2
    line = next(x for x in r.output.splitlines() if x.startswith("error:"))
    assert "'layer4'" in line and "trunk.0" in line and "gated" in line


def test_output_over_an_input_is_refused(tmp_path):
    run = make_run(tmp_path)
    r = invoke("attention", str(run / "checkpoints" / "best.pt"), "-o", str(run / "checkpoints" / "best.pt"))
    assert r.exit_code == 2
    assert (run / "checkpoints" / "best.pt").is_file()


def test_trainer_logs_attention_metrics_at_eval(tmp_path):
    from trainfix.trainers.loop import train

    res = train(CONFIG, out_dir=tmp_path / "t")
    assert "attn/pointing_game" in res.metrics and "attn/gradcam_guided_agreement" in res.metrics
    off = train(dict(CONFIG, training={**CONFIG["training"], "attention_eval": "off"}), out_dir=tmp_path / "u")
    assert not any(k.startswith("attn/gradcam") for k in off.metrics)
