"""update_ratio_evidence: per-step |dW|/|W| from a run's checkpoints, judged against the band."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import torch
nn = torch.nn
import pandas as pd

from trainfix.diagnostics import checkpoints as ck  # noqa: E402
from trainfix.diagnostics.roles_vocab import LR, Resolution, RoleMap  # noqa: E402
from trainfix.diagnostics.run import SCALAR_COLUMNS, CheckpointRef, Run  # noqa: E402


def _save(ckdir: Path, name: str, sd: dict, step: int, epoch: int) -> None:
    """The trainer's layout: checkpoints/<name>.pt plus <name>.json meta with the step."""
    torch.save({"model": sd, "epoch": epoch}, ckdir / f"{name}.pt")
    (ckdir / f"{name}.json").write_text(json.dumps({"epoch": epoch, "step": step}))


def _run(run_dir: Path, lr_points: list[tuple[int, float]] | None = None) -> Run:
    refs = [CheckpointRef(p, p.stat().st_size) for p in sorted((run_dir / "checkpoints").glob("*.pt"))]
    rows = [{"tag": "lr", "step": float(s), "value": v, "wall_time": 0.0, "source": "x"} for s, v in lr_points or []]
    scalars = pd.DataFrame(rows, columns=list(SCALAR_COLUMNS))
    roles = RoleMap(single={LR: Resolution("lr", "canonical name", None)}) if lr_points else RoleMap()
    return Run(run_dir, scalars, {}, [], refs, roles)


def _synthetic_run(tmp_path: Path, per_step: float, steps_per_epoch: int = 20, epochs: int = 3) -> Run:
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir(parents=True)
    torch.manual_seed(0)
    sd = nn.Linear(32, 16).state_dict()
    for e in range(1, epochs + 1):
        _save(ckdir, f"epoch_{e:03d}", {k: v.clone() for k, v in sd.items()}, e * steps_per_epoch, e)
        sd = {k: v * (1 + per_step * steps_per_epoch) for k, v in sd.items()}
    # last.pt duplicates the final epoch's step: it must not form a zero-step pair
    torch.save({"model": torch.load(ckdir / f"epoch_{epochs:03d}.pt", weights_only=True)["model"]}, ckdir / "last.pt")
    (ckdir / "last.json").write_text(json.dumps({"step": epochs * steps_per_epoch}))
    return _run(tmp_path)


@pytest.mark.parametrize("per_step, verdict", [(1e-3, "healthy"), (1e-6, "starving"), (5e-2, "exploding")])
def test_verdict_follows_the_band(tmp_path, per_step, verdict):
    ev = ck.update_ratio_evidence(_synthetic_run(tmp_path, per_step))
    assert ev["verdict"] == verdict
    assert ev["median_update_ratio_per_step"] == pytest.approx(per_step, rel=1e-2)  # float32 weights
    assert ev["band"] == [1e-4, 1e-2]
    assert len(ev["pairs"]) == 2 and all(p["steps"] == 20 for p in ev["pairs"])
    assert [Path(p).name for p in ev["checkpoints"]] == ["epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]


def test_none_without_two_checkpoints_with_steps(tmp_path):
    ckdir = tmp_path / "checkpoints"
    ckdir.mkdir()
    assert ck.update_ratio_evidence(_run(tmp_path)) is None
    sd = nn.Linear(4, 4).state_dict()
    _save(ckdir, "epoch_001", sd, 10, 1)
    assert ck.update_ratio_evidence(_run(tmp_path)) is None
    torch.save({"model": sd}, ckdir / "best.pt")  # no step anywhere
    assert ck.update_ratio_evidence(_run(tmp_path)) is None


def test_decayed_lr_tail_is_scaled_to_peak_or_declined(tmp_path):
    run_dir = tmp_path / "a"
    run = _synthetic_run(run_dir, 2e-5)
    # the two pairs sit where a cosine schedule had decayed to 10% of its peak: judged at peak lr
    lr = [(0, 1e-3), (10, 1e-3)] + [(s, 1e-4) for s in range(20, 61, 10)]
    scaled = ck.update_ratio_evidence(_run(run_dir, lr))
    assert scaled["lr_scale"] == pytest.approx(0.1)
    assert scaled["median_update_ratio_per_step"] == pytest.approx(2e-4, rel=1e-3)
    assert scaled["verdict"] == "healthy"
    assert ck.update_ratio_evidence(run)["verdict"] == "starving"  # without the lr it would look starved
    tail = [(0, 1e-3)] + [(s, 1e-6) for s in range(20, 61, 10)]
    assert ck.update_ratio_evidence(_run(run_dir, tail)) is None  # lr at 0.1% of peak: too weak to judge


def _train_digits(run_dir: Path, lr: float, epochs: int = 3) -> Run:
    """A real small training run on sklearn's digits, saving checkpoints the way the trainer does."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ckdir = run_dir / "checkpoints"
    ckdir.mkdir(parents=True)
    step = 0
    gen = torch.Generator().manual_seed(0)
    for epoch in range(1, epochs + 1):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i:i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        _save(ckdir, f"epoch_{epoch:03d}", model.state_dict(), step, epoch)
    return _run(run_dir, [(s, lr) for s in range(0, step + 1, 10)])


@pytest.mark.slow
def test_real_digits_training_healthy_vs_starved_lr(tmp_path):
    healthy = ck.update_ratio_evidence(_train_digits(tmp_path / "h", lr=1e-3))
    starved = ck.update_ratio_evidence(_train_digits(tmp_path / "s", lr=1e-6))
    assert healthy["verdict"] == "healthy", healthy
    assert starved["verdict"] == "starving", starved
    assert healthy["median_update_ratio_per_step"] > 100 * starved["median_update_ratio_per_step"]
    assert np.isfinite(healthy["pairs"][0]["spread_decades"])
    print(f"digits MLP, Adam: lr 1e-3 -> {healthy['median_update_ratio_per_step']:.3g}/step, "
          f"lr 1e-6 -> {starved['median_update_ratio_per_step']:.3g}/step")
