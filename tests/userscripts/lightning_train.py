"""A user's PyTorch Lightning script (not trainfix code): an MLP on generated 10-class data
(Gaussian clusters in 64 dimensions).

Hyperparameters come from a YAML file of the user's (``--hparams``), go through
``save_hyperparameters`` (so Lightning writes them to ``lightning_logs/version_N/hparams.yaml``),
and metrics are logged with ``self.log`` to Lightning's CSVLogger (``metrics.csv``), with the
learning rate from ``LearningRateMonitor`` (``lr-SGD``).  A relaunch can be pointed at a patched
copy of that ``hparams.yaml``.

    python lightning_train.py --hparams HPARAMS.yaml --out RUN_DIR
"""

import argparse
import logging
import warnings

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.callbacks import LearningRateMonitor
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class DigitsMLP(pl.LightningModule):
    def __init__(self, hidden=64, optimizer="sgd", learning_rate=0.1, momentum=0.9, batch_size=32, max_epochs=5, seed=0):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, _):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        return loss

    def validation_step(self, batch, _):
        x, y = batch
        out = self(x)
        self.log("val_loss", nn.functional.cross_entropy(out, y), on_epoch=True)
        self.log("val_acc", (out.argmax(1) == y).float().mean(), on_epoch=True)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.learning_rate, momentum=self.hparams.momentum)


def loaders(batch_size, n=1500, dim=64, classes=10):
    """Ten Gaussian clusters that overlap a little: learnable, not trivially."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(classes, dim, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = centers[y] + 2.0 * torch.randn(n, dim, generator=g)
    x = (x - x.mean(0)) / x.std(0)  # standardised features, as a careful user would
    train = TensorDataset(x[:1200], y[:1200])
    val = TensorDataset(x[1200:], y[1200:])
    return DataLoader(train, batch_size=batch_size, shuffle=True), DataLoader(val, batch_size=256)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hparams", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.hparams) as fh:
        hp = yaml.safe_load(fh)
    warnings.filterwarnings("ignore")
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    pl.seed_everything(hp.get("seed", 0), verbose=False)
    model = DigitsMLP(**hp)
    train, val = loaders(hp["batch_size"])
    trainer = pl.Trainer(max_epochs=hp["max_epochs"], logger=CSVLogger(args.out, name="lightning_logs"),
                         callbacks=[LearningRateMonitor(logging_interval="step")], log_every_n_steps=5,
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                         accelerator="cpu", devices=1)
    trainer.fit(model, train, val)
    print({k: float(v) for k, v in trainer.callback_metrics.items()})


if __name__ == "__main__":
    main()
