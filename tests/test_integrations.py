"""The Lightning and Hugging Face callbacks with the real packages: tiny models (an MLP on sklearn's
digits, a GPT-2 built from a config object on generated token sequences), nothing downloaded.

A run with an lr far too large must be flagged and stopped by the callback before its planned end;
the same run with a sane lr must train to the end without an error finding."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_integrations_are_not_on_the_diagnose_path():
    code = ("import sys\n"
            "from typer.testing import CliRunner\n"
            "from trainfix.cli.app import app\n"
            "import trainfix.diagnostics.engine, trainfix.diagnostics.live, trainfix.cli.watch\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pytorch_lightning', 'lightning', 'transformers', "
            "'trainfix.trainers.integrations'))))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_feed_keeps_numbers_and_nonfinite_values():
    from trainfix.trainers.integrations.feed import LiveFeed

    feed = LiveFeed(every_n_steps=10)
    feed.add(1, {"loss": 1.0, "epoch": 0.1, "note": "x", "flag": True})
    feed.add(2, {"loss": float("nan")})
    assert feed.records[0] == {"step": 1.0, "loss": 1.0, "epoch": 0.1}
    assert feed.records[1]["loss"] != feed.records[1]["loss"]
    assert feed.due(11) and not feed.due(5) is False


# --- PyTorch Lightning -------------------------------------------------------------------------------


def _digits_loaders(batch: int = 64):
    import torch
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x / 16.0, dtype=torch.float32)
    y = torch.tensor(y)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(y), generator=g)
    tr, va = order[:1400], order[1400:]
    train = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[tr], y[tr]), batch_size=batch, shuffle=True,
                                        generator=g)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[va], y[va]), batch_size=256)
    return train, val


def naive_cross_entropy(logits, y):
    """Cross-entropy written by hand as log(softmax): a common bug that turns into inf/NaN once the
    logits grow large (softmax underflows to 0), which a too-large lr makes happen in a few steps."""
    import torch

    p = torch.softmax(logits, dim=1)
    return -torch.log(p.gather(1, y[:, None])).mean()


def _lightning_fit(tmp_path, lr: float, epochs: int):
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import TensorBoardLogger

    from trainfix.trainers.integrations.lightning_callback import TrainfixCallback

    class DigitsMLP(pl.LightningModule):
        def __init__(self, lr: float):
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = naive_cross_entropy(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=False)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", naive_cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    pl.seed_everything(0, workers=True)
    train, val = _digits_loaders()
    cb = TrainfixCallback(stop_on="error", every_n_steps=10)
    trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[cb],
                         logger=TensorBoardLogger(str(tmp_path), name="tb"), enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
    trainer.fit(DigitsMLP(lr), train, val)
    return trainer, cb


@pytest.mark.slow
def test_lightning_callback_stops_a_diverging_run_and_logs_the_finding(tmp_path):
    trainer, cb = _lightning_fit(tmp_path, lr=40.0, epochs=8)
    names = {f.detector for f in cb.findings}
    errors = [f for f in cb.findings if f.severity.value == "error"]
    assert errors, names
    assert names & {"nonfinite-loss", "loss-divergence"}, names
    assert trainer.should_stop
    assert trainer.current_epoch < 7, trainer.current_epoch  # stopped well before the planned 8 epochs
    from tbparse import SummaryReader

    text = SummaryReader(str(tmp_path / "tb")).text
    assert any(t.startswith("trainfix/") for t in text["tag"]), text


@pytest.mark.slow
def test_lightning_callback_lets_a_healthy_run_finish(tmp_path):
    trainer, cb = _lightning_fit(tmp_path, lr=0.1, epochs=4)
    assert not [f for f in cb.findings if f.severity.value == "error"], [f.message for f in cb.findings]
    assert trainer.current_epoch == 4
    assert len(cb.feed.records) >= 4 * 22  # every step's loss and lr, and each validation
    assert cb.feed.live.polls >= 4


# --- Hugging Face transformers -------------------------------------------------------------------------


def _hf_train(tmp_path, lr: float, steps: int):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    from trainfix.trainers.integrations.hf_callback import TrainfixCallback

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=32, n_positions=16, n_embd=32, n_layer=1, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(cfg)
    g = torch.Generator().manual_seed(1)
    # sequences that count upward mod 32 from a random start: learnable in a few hundred steps
    start = torch.randint(0, 32, (512, 1), generator=g)
    ids = (start + torch.arange(16)) % 32

    class Seqs(torch.utils.data.Dataset):
        def __len__(self):
            return len(ids)

        def __getitem__(self, i):
            return {"input_ids": ids[i], "labels": ids[i]}

    args = TrainingArguments(output_dir=str(tmp_path / "hf"), max_steps=steps, per_device_train_batch_size=16,
                             learning_rate=lr, logging_steps=1, eval_strategy="steps", eval_steps=20,
                             per_device_eval_batch_size=64, save_strategy="no", report_to=[], use_cpu=True,
                             disable_tqdm=True, seed=0, max_grad_norm=0.0, warmup_steps=0,
                             lr_scheduler_type="constant", dataloader_num_workers=0)
    cb = TrainfixCallback(stop_on="error", every_n_steps=10)
    trainer = Trainer(model=model, args=args, train_dataset=Seqs(), eval_dataset=Seqs(), callbacks=[cb])
    trainer.train()
    return trainer, cb


@pytest.mark.slow
def test_hf_callback_stops_a_diverging_run(tmp_path):
    trainer, cb = _hf_train(tmp_path, lr=30.0, steps=200)
    errors = [f for f in cb.findings if f.severity.value == "error"]
    assert errors, [f.detector for f in cb.findings]
    assert trainer.state.global_step < 200, trainer.state.global_step


@pytest.mark.slow
def test_hf_callback_lets_a_healthy_run_finish(tmp_path):
    trainer, cb = _hf_train(tmp_path, lr=3e-3, steps=120)
    assert trainer.state.global_step == 120
    assert not [f for f in cb.findings if f.severity.value == "error"], [f.message for f in cb.findings]
    assert any("loss" in r for r in cb.feed.records) and any("eval_loss" in r for r in cb.feed.records)
