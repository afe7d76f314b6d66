"""A user's plain PyTorch training script (not trainfix code): an MLP on generated 10-class data
(Gaussian clusters in 64 dimensions).

It reads its own YAML config (its own key names: ``base_lr``, ``lr_scaling``, ``base_batch_size``,
``warmup_epochs``) and logs to TensorBoard with its own tag names (``Loss/train``, ``Loss/val``,
``Accuracy/val``, ``LearningRate``), the way people write these scripts.  The learning rate is
computed the way the seed-003 author did: ``lr = base_lr * batch_size / base_batch_size`` under
``lr_scaling: linear``, or ``base_lr * sqrt(batch_size / base_batch_size)`` under ``sqrt``.

    python plain_torch_train.py --config CONFIG.yaml --out RUN_DIR
"""

import argparse
import math
import os
import shutil

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.tensorboard import SummaryWriter


def clusters(n=1500, dim=64, classes=10):
    """Ten Gaussian clusters that overlap a little: learnable, not trivially."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return centers[y] + 2.0 * torch.randn(n, dim, generator=g), y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.config) as fh:
        cfg = yaml.safe_load(fh)
    os.makedirs(args.out, exist_ok=True)
    shutil.copy(args.config, os.path.join(args.out, "train_config.yaml"))  # keep what the run used
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(1)

    x, y = clusters()
    tr, va = torch.arange(1200), torch.arange(1200, len(x))

    batch = cfg["batch_size"]
    if cfg["lr_scaling"] == "linear":
        lr = cfg["base_lr"] * batch / cfg["base_batch_size"]
    elif cfg["lr_scaling"] == "sqrt":
        lr = cfg["base_lr"] * math.sqrt(batch / cfg["base_batch_size"])
    else:
        lr = cfg["base_lr"]
    model = nn.Sequential(nn.Linear(64, cfg["hidden"]), nn.ReLU(), nn.Linear(cfg["hidden"], 10))
    opt = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[cfg.get("optimizer", "adam")](model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(len(tr) / batch)
    warmup = cfg.get("warmup_epochs", 0) * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    writer = SummaryWriter(os.path.join(args.out, "tb"))
    step = 0
    for epoch in range(cfg["epochs"]):
        model.train()
        order = tr[torch.randperm(len(tr))]
        losses = []
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 5 == 0:
                writer.add_scalar("LearningRate", opt.param_groups[0]["lr"], step)
            sched.step()
            losses.append(loss.item())
            step += 1
        model.eval()
        with torch.no_grad():
            out = model(x[va])
            val_loss = nn.functional.cross_entropy(out, y[va]).item()
            acc = (out.argmax(1) == y[va]).float().mean().item()
        writer.add_scalar("Loss/train", float(np.mean(losses)), step)
        writer.add_scalar("Loss/val", val_loss, step)
        writer.add_scalar("Accuracy/val", acc, step)
        print(f"epoch {epoch} loss {np.mean(losses):.4f} val_loss {val_loss:.4f} val_acc {acc:.4f}")
    writer.close()


if __name__ == "__main__":
    main()
