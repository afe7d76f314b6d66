"""The training loop on small generated data: what it writes, lr scaling, accumulation,
non-finite policies, stages, resume bookkeeping."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch

from trainfix.errors import InputError, TrainingError, UsageError
from trainfix.trainers import checkpoint as ck
from trainfix.trainers import train
from trainfix.trainers.config import load_config

BASE = {
    "run": {"name": "t", "seed": 0, "device": "cpu"},
    "data": {"name": "synthetic", "num_classes": 3, "num_samples": 192, "dim": 8},
    "model": {"name": "mlp", "hidden": [16]},
    "optimizer": {"name": "adam", "lr": 0.01},
    "training": {"epochs": 2, "batch_size": 16},
    "logging": {"every_n_steps": 3, "progress": False},
}


def cfg(**sections):
    out = {k: dict(v) for k, v in BASE.items()}
    for k, v in sections.items():
        out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def series(run, tag):
    return [(r["step"], r[tag]) for r in records(run) if tag in r]


def test_run_dir_holds_config_logs_and_clean_checkpoints(tmp_path):
    result = train(cfg(), out_dir=tmp_path / "run")
    run = result.out_dir
    assert result.metrics["val/acc"] > 0.8 and result.step == 18  # 144 samples / 16 = 9 steps x 2 epochs
    resolved = load_config(run / "config.yaml")
    assert resolved.run.world_size == 1 and resolved.training.global_batch == 16
    assert resolved.optimizer.scaled_lr == pytest.approx(0.01)

    rows = records(run)
    tags = set().union(*rows) - {"step", "wall_time"}
    for tag in ("train/loss_step", "lr", "grad_norm", "mem/allocated_mb", "loss/cls", "loss/cls/raw",
                "train/loss", "train/acc", "val/loss", "val/acc", "val/acc/0", "val/acc/2", "epoch"):
        assert tag in tags, tag
    assert [s for s, _ in series(run, "train/loss_step")] == [3, 6, 9, 12, 15, 18]
    assert series(run, "val/acc")[0][0] == 9  # per-epoch tags at the step that ended the epoch
    assert all(r["mem/allocated_mb"] > 10 for r in rows if "mem/allocated_mb" in r)

    from tbparse import SummaryReader

    tb = SummaryReader(str(run)).scalars
    assert set(tb["tag"]) >= {"train/loss", "val/acc", "grad_norm", "lr", "epoch"}

    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["best.json", "best.pt", "epoch_000.json", "epoch_000.pt", "epoch_001.json",
                     "epoch_001.pt", "last.json", "last.pt"]
    state = ck.load(run / "checkpoints" / "last.pt")
    assert set(state["model"]) == {"net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias"}
    meta = json.loads((run / "checkpoints" / "last.json").read_text())
    assert meta["step"] == 18 and meta["epoch"] == 1 and len(meta["config_hash"]) == 12
    assert meta["metrics"]["val/acc"] == result.metrics["val/acc"]


@pytest.mark.parametrize("rule, factor", [("none", 1.0), ("linear", 4.0), ("sqrt", 2.0)])
def test_lr_scaling_uses_the_global_batch_and_is_recorded(tmp_path, rule, factor):
    c = cfg(optimizer={"lr": 0.01, "lr_scaling": rule, "reference_batch": 8},
            training={"epochs": 1, "batch_size": 16, "grad_accum": 2})
    run = train(c, out_dir=tmp_path / rule).out_dir
    resolved = load_config(run / "config.yaml")
    assert resolved.training.global_batch == 32
    assert resolved.optimizer.scaled_lr == pytest.approx(0.01 * factor)
    lrs = [v for _, v in series(run, "lr")]
    assert lrs and all(v == pytest.approx(0.01 * factor) for v in lrs)


def test_grad_accum_counts_optimizer_steps(tmp_path):
    run = train(cfg(training={"epochs": 1, "grad_accum": 2}, logging={"every_n_steps": 1}), out_dir=tmp_path / "a")
    assert run.step == 5  # 9 micro-batches -> 4 full steps of 2 and one of 1


def test_warmup_schedule_is_what_gets_logged(tmp_path):
    c = cfg(schedule={"name": "cosine", "warmup_steps": 4, "min_lr_ratio": 0.0}, logging={"every_n_steps": 1})
    lrs = [v for _, v in series(train(c, out_dir=tmp_path / "w").out_dir, "lr")]
    assert lrs[:4] == pytest.approx([0.0025, 0.005, 0.0075, 0.01])
    assert lrs[4] == pytest.approx(0.01) and lrs[-1] < 0.001


NAN_LOSS = textwrap.dedent("""
    import torch
    from trainfix.trainers.components.losses import cross_entropy

    class NanAt(torch.nn.Module):
        '''Cross-entropy that turns NaN on the given training calls.'''
        def __init__(self, bundle, at: list = ()):
            super().__init__()
            self.inner = cross_entropy(bundle)
            self.at = set(at)
            self.calls = 0
        def forward(self, output, batch):
            out = self.inner(output, batch)
            if self.training:
                self.calls += 1
                if self.calls in self.at:
                    out.total = out.total * float('nan')
            return out
""")


@pytest.fixture
def nan_loss(tmp_path, monkeypatch):
    (tmp_path / "nan_loss_mod.py").write_text(NAN_LOSS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "nan_loss_mod.NanAt"


def test_nonfinite_loss_stops_on_the_step_and_keeps_the_last_good_checkpoint(tmp_path, nan_loss):
    c = cfg(loss={"_component_": nan_loss, "at": [5]}, checkpoint={"every_n_steps": 2}, logging={"every_n_steps": 100})
    c["loss"].pop("name", None)
    with pytest.raises(TrainingError) as exc:
        train(c, out_dir=tmp_path / "stop")
    assert "at step 5, epoch 0" in exc.value.message and "last good checkpoint" in exc.value.message
    assert "grad_clip" in exc.value.hint
    last = ck.load(tmp_path / "stop" / "checkpoints" / "last.pt")
    assert last["progress"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in last["model"].values())
    nan_rows = series(tmp_path / "stop", "train/loss_step")
    assert nan_rows[-1][0] == 5 and nan_rows[-1][1] != nan_rows[-1][1]


def test_nonfinite_loss_skip_policy_skips_up_to_the_limit(tmp_path, nan_loss):
    c = cfg(loss={"_component_": nan_loss, "at": [2, 7]}, training={"nonfinite_policy": "skip", "max_nonfinite_skips": 2})
    c["loss"].pop("name", None)
    result = train(c, out_dir=tmp_path / "skip")
    assert series(result.out_dir, "train/nonfinite_skips") == [(2, 1.0), (7, 2.0)]
    assert result.metrics["val/acc"] > 0.8
    c["training"]["max_nonfinite_skips"] = 1
    with pytest.raises(TrainingError, match="2 non-finite steps > max_nonfinite_skips 1"):
        train(c, out_dir=tmp_path / "skip2")


def test_stages_continue_the_step_and_start_from_the_previous_stage(tmp_path):
    c = cfg(training={"epochs": 1}, stages=[
        {"name": "warm", "epochs": 1},
        {"name": "fine", "epochs": 2, "init_from": "last", "overrides": {"optimizer.lr": 0.001}},
    ])
    result = train(c, out_dir=tmp_path / "st")
    run = result.out_dir
    assert result.step == 27
    assert series(run, "stage") == [(9, 0.0), (18, 1.0), (27, 1.0)]
    assert [(r["step"], r["epoch"]) for r in records(run) if "train/loss" in r] == [(9, 0), (18, 1), (27, 2)]
    lrs = dict(series(run, "lr"))
    assert lrs[9] == pytest.approx(0.01) and lrs[12] == pytest.approx(0.001)
    assert (run / "checkpoints" / "stage-warm-last.pt").exists() and (run / "checkpoints" / "stage-fine-best.pt").exists()
    assert series(run, "val/acc")[1][1] >= series(run, "val/acc")[0][1] - 0.05  # started from stage 1's weights


def test_resume_of_a_finished_run_trains_nothing_more(tmp_path):
    first = train(cfg(), out_dir=tmp_path / "r")
    lines = (first.out_dir / "metrics.jsonl").read_text()
    again = train(cfg(), out_dir=tmp_path / "r", resume=True)
    assert again.metrics == first.metrics and again.step == first.step
    assert (first.out_dir / "metrics.jsonl").read_text() == lines


def test_an_existing_run_is_never_overwritten_and_resume_needs_a_checkpoint(tmp_path):
    train(cfg(training={"epochs": 1}), out_dir=tmp_path / "x")
    with pytest.raises(UsageError, match="already holds a run"):
        train(cfg(), out_dir=tmp_path / "x")
    with pytest.raises(InputError, match="nothing to resume"):
        train(cfg(), out_dir=tmp_path / "empty", resume=True)


def test_ema_weights_are_evaluated_and_saved(tmp_path):
    result = train(cfg(training={"epochs": 1, "ema_decay": 0.5}), out_dir=tmp_path / "e")
    state = ck.load(result.out_dir / "checkpoints" / "last.pt")
    assert set(state["ema"]) == set(state["model"])
    assert not torch.equal(state["ema"]["net.1.weight"], state["model"]["net.1.weight"])


def test_init_from_is_a_warm_start_in_a_new_run(tmp_path):
    first = train(cfg(training={"epochs": 1}), out_dir=tmp_path / "a")
    weights = ck.load(first.out_dir / "checkpoints" / "last.pt")["model"]
    torch.save({f"module.{k}": v for k, v in weights.items()}, tmp_path / "plain.pt")  # a DDP-style state dict
    warm = train(cfg(training={"epochs": 1}, optimizer={"lr": 1e-9}), out_dir=tmp_path / "b", init_from=tmp_path / "plain.pt")
    assert warm.step == 9 and warm.metrics["val/acc"] == pytest.approx(first.metrics["val/acc"], abs=0.02)
    cold = train(cfg(training={"epochs": 1}, optimizer={"lr": 1e-9}), out_dir=tmp_path / "c")
    assert cold.metrics["val/acc"] < warm.metrics["val/acc"] - 0.2
    with pytest.raises(Exception, match="cannot start the run"):
        train(cfg(model={"hidden": [4]}), out_dir=tmp_path / "d", init_from=tmp_path / "plain.pt")


def test_default_run_dirs_never_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    c = cfg(training={"epochs": 1})
    assert train(c).out_dir == Path("runs/t")
    assert train(c).out_dir == Path("runs/t-2")


def test_total_grad_norm_matches_what_clipping_measures():
    import torch

    from trainfix.trainers.loop import total_grad_norm

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    net(torch.randn(11, 5)).pow(2).sum().backward()
    params = list(net.parameters())
    measured = total_grad_norm(params)
    clipped = torch.nn.utils.clip_grad_norm_(params, max_norm=1e9)
    assert float(measured) == pytest.approx(float(clipped), rel=1e-6)
    assert float(total_grad_norm([torch.nn.Parameter(torch.zeros(2))])) == 0.0
