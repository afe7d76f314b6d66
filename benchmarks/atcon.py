"""The lift of ATCON on few labels: supervised-only vs supervised + ATCON at equal optimizer steps.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/atcon.py                 # 2, 5, 10 labels per class, 3 seeds
    python benchmarks/atcon.py --labels 5 --seeds 0 1 --weights 0.1

Data: ``digits-canvas`` (each digit at a random place on a cluttered 16x16 canvas, clutter std 0.3)
with ``labelled_per_class`` labels kept per class; the other ~1,300 training images are the
unlabelled pool; validation: 450 held-out images with their digit's box.  Model: trainfix's small
``cnn`` (width 16, two blocks), Adam.

Protocol per (labels, seed): one supervised warm-up (about 200 steps at lr 3e-3) that both arms
start from; then

- **ATCON**: ``training.mode: atcon`` at lr 3e-4 for 50 supervised steps, with the unlabelled
  steps ATCON inserts (alpha 8, mask intensity 8, Guided Backprop mask, Grad-CAM compared; the
  consistency loss weighted ``weight``, the unlabelled steps at ``lr_scale`` x the lr: ``--arms``);
- **supervised**: the same lr, as many optimizer steps as the ATCON arm took in total (its
  supervised plus its unlabelled ones), all supervised.

Figures: macro-F1 on the validation set and Grad-CAM's pointing game (its maximum inside the
digit's box), mean +- std over seeds, and the lift (ATCON minus supervised, paired by seed).
Everything runs through trainfix's trainer (``trainfix.trainers.loop.train``).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BATCH = 10
WARMUP_STEPS = 200
ATCON_SUP_STEPS = 50


def config(labels: int, seed: int, epochs: int, lr: float, mode: str = "supervised", weight: float = 0.1,
           lr_scale: float = 1.0) -> dict:
    return {
        "run": {"name": f"atcon-{labels}-{seed}", "seed": seed, "device": "cpu"},
        "data": {"name": "digits-canvas", "labelled_per_class": labels, "background_noise": 0.3},
        "model": {"name": "cnn", "width": 16, "depth": 2},
        "optimizer": {"name": "adam", "lr": lr},
        "training": {"epochs": epochs, "batch_size": BATCH, "mode": mode, "eval_every_epochs": epochs,
                     "attention_samples": 100_000},
        "atcon": {"alpha": 8.0, "mask_intensity": 8.0, "batch_size": 32, "weight": weight, "lr_scale": lr_scale},
        "logging": {"every_n_steps": 1, "tensorboard": False, "jsonl": True, "progress": False},
        "checkpoint": {"every_n_epochs": 100_000, "keep_last": 0},
    }


def macro_f1(run_dir: Path, cfg: dict) -> float:
    """Macro-F1 of the run's final weights on the validation set."""
    import torch
    from sklearn.metrics import f1_score

    from trainfix.trainers.build import as_config, build_data, build_model
    from trainfix.trainers.checkpoint import load_weights

    c = as_config(cfg)
    bundle = build_data(c)
    model = build_model(c, bundle)
    model.load_state_dict(load_weights(run_dir / "checkpoints" / "last.pt"))
    model.eval()
    with torch.no_grad():
        pred = model(bundle.val.inputs).argmax(dim=1)
    return float(f1_score(bundle.val.targets.numpy(), pred.numpy(), average="macro"))


def last_value(run_dir: Path, tag: str) -> float:
    value = math.nan
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if tag in row:
            value = float(row[tag])
    return value


def one(labels: int, seed: int, arms: list[tuple[float, float]], work: Path) -> dict:
    from trainfix.trainers.loop import train

    per_epoch = math.ceil(10 * labels / BATCH)
    warm_cfg = config(labels, seed, max(1, WARMUP_STEPS // per_epoch), 3e-3)
    warm = train(warm_cfg, out_dir=work / f"warm-{labels}-{seed}").out_dir
    start = warm / "checkpoints" / "last.pt"
    out = {"warmup": {"f1": macro_f1(warm, warm_cfg), "pointing": last_value(warm, "attn/pointing_game")}}
    baselines: dict[int, dict] = {}  # total steps -> the supervised arm (ATCON's draws depend on seed and step only)
    for w, scale in arms:
        epochs = max(1, ATCON_SUP_STEPS // per_epoch)
        atcon_cfg = config(labels, seed, epochs, 3e-4, "atcon", w, scale)
        a_dir = train(atcon_cfg, out_dir=work / f"atcon-{labels}-{seed}-{w}-{scale}", init_from=start).out_dir
        unlabelled = int(last_value(a_dir, "atcon/unlabelled_steps"))
        total = epochs * per_epoch + unlabelled  # every optimizer step the ATCON arm took
        if total not in baselines:
            sup_cfg = config(labels, seed, max(1, round(total / per_epoch)), 3e-4)
            s_dir = train(sup_cfg, out_dir=work / f"sup-{labels}-{seed}-{total}", init_from=start).out_dir
            baselines[total] = {"sup_f1": macro_f1(s_dir, sup_cfg), "sup_pg": last_value(s_dir, "attn/pointing_game"),
                                "sup_agree": last_value(s_dir, "attn/gradcam_guided_agreement")}
        out[(w, scale)] = {"atcon_f1": macro_f1(a_dir, atcon_cfg), "atcon_pg": last_value(a_dir, "attn/pointing_game"),
                           "atcon_agree": last_value(a_dir, "attn/gradcam_guided_agreement"),
                           "steps": total, "unlabelled": unlabelled, **baselines[total]}
    return out


def ms(values: list[float]) -> str:
    m = statistics.fmean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m:.3f} +- {s:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--labels", type=int, nargs="+", default=[2, 5, 10])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--arms", nargs="+", default=["0.1:1", "1:1", "1:0.1"],
                   help="ATCON arms as WEIGHT:LR_SCALE (consistency-loss weight : unlabelled-step lr / supervised lr)")
    p.add_argument("--out", type=Path, default=None, help="keep the runs here (default: a temp dir)")
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    t0 = time.time()
    work = args.out or Path(tempfile.mkdtemp(prefix="trainfix-atcon-"))
    arms = [(float(a.split(":")[0]), float(a.split(":")[1])) for a in args.arms]
    results = {k: [one(k, s, arms, work) for s in args.seeds] for k in args.labels}
    print(f"ATCON on digits-canvas (clutter 0.3), cnn width 16; {len(args.seeds)} seeds; equal optimizer steps; "
          f"{time.time() - t0:.0f} s\n")
    head = ("labels/class", "weight", "lr scale", "steps", "F1 supervised", "F1 ATCON", "F1 lift", "PG supervised", "PG ATCON",
            "PG lift", "agree sup", "agree ATCON")
    print(" | ".join(head))
    print(" | ".join("---" for _ in head))
    for k, rows in results.items():
        for w, scale in arms:
            r = [row[(w, scale)] for row in rows]
            f1_lift = [x["atcon_f1"] - x["sup_f1"] for x in r]
            pg_lift = [x["atcon_pg"] - x["sup_pg"] for x in r]
            print(" | ".join([str(k), f"{w:g}", f"{scale:g}", f"{statistics.fmean(x['steps'] for x in r):.0f}",
                              ms([x["sup_f1"] for x in r]), ms([x["atcon_f1"] for x in r]), ms(f1_lift),
                              ms([x["sup_pg"] for x in r]), ms([x["atcon_pg"] for x in r]), ms(pg_lift),
                              ms([x["sup_agree"] for x in r]), ms([x["atcon_agree"] for x in r])]))
    print("\nwarm-up (both arms' start): " + "; ".join(
        f"{k}/class F1 {ms([row['warmup']['f1'] for row in rows])}, PG {ms([row['warmup']['pointing'] for row in rows])}"
        for k, rows in results.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
