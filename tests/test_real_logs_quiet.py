"""Every detector over 30 real training logs (tests/data/real-logs, provenance in PROVENANCE.md),
asserting what a person reading the curves says about each run.

The verdicts below come from reading each curve, not from running the tool:

- csv-01 (LSTM on daily BTC prices): training loss 0.1026 -> 0.1015 over 10 epochs, within its
  noise.  The GRU twin in csv-00 sat at the same 0.101 for five epochs and then fell to 0.0011, so
  0.101 is the "nothing learned yet" level: a plateau.
- pl-21 (probing classifier): training accuracy stays at chance (~0.1) while the loss wanders
  between 2.3 and 4.0 without falling: a plateau.
- hf-05 (token classification): validation loss bottoms at 0.409 (step 2910) and climbs to 0.67
  while training loss falls to 0.02, but the overall accuracy and F1 keep improving after the loss
  minimum: the loss is mis-calibrated, which ``overfitting`` reports as an info, never as advice to
  stop at the loss minimum.
- keras-17 (speaker identification, 250 classes): validation loss rises from the first epoch (4.2 ->
  5.4) while training loss falls 4.9 -> 1.7, and validation accuracy rises 0.41 -> 0.63 all the
  while: the same info, not a warning.
- hf-08 (Whisper fine-tune): the WER is best at the first evaluation (17.7) and ends near 30 as the
  lr warms up to 1e-4, eval loss doubling: the validation metric never improves.
- keras-14 (segmentation): validation accuracy 0.9866 in every one of 35 epochs: the model predicts
  background only, it never learned.
- pl-19 (GAN): the discriminator loss is 1.6e24 at step 0 and NaN after, the generator loss NaN
  throughout: non-finite loss.
- txt-29 (Transformer translation, epochs 16-30): validation loss 5.94-6.01 over all 15
  evaluations while the training loss creeps 4.61 -> 4.37 and the lr stays near 3/4 of its peak:
  a plateau.
- Everything else is healthy or has too little data to judge, including fine-tunes near their
  optimum (hf-04: an LM loss flat at ~2.1 within its noise; jsonl-09: a loss flat at 4.77 while
  top-1 accuracy rises 66% -> 69.5%), early-training roughness in YOLO metrics (tfev-25), a GAN whose
  discriminator loss levels off (pl-18), per-entity precision with small support (hf-05), and
  DETR's unbounded cardinality errors (jsonl-10): all must stay quiet.

Skips cleanly when the data or the reader is missing.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data" / "real-logs"

EXPECTED: dict[str, set[str]] = {
    "csv-01": {"loss-plateau"},
    "pl-21": {"loss-plateau"},
    "hf-08": {"validation-never-improves"},
    "keras-14": {"never-learned"},
    "pl-19": {"nonfinite-loss"},
    "txt-29": {"loss-plateau"},
}

RUNS = sorted(p.name for p in DATA.iterdir() if p.is_dir())  # tracked in the repository: never absent


@pytest.fixture(scope="module")
def reader():
    from trainfix.diagnostics import engine, ingest

    return ingest.read_run, engine.diagnose


def diagnosed(reader, name):
    read_run, diagnose = reader
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = read_run(DATA / name)
    return run, diagnose(run)


@pytest.mark.parametrize("name", RUNS)
def test_real_log_verdict(reader, name):
    from trainfix.diagnostics.finding import Severity

    run, report = diagnosed(reader, name)
    assert not report.errors, [e.message for e in report.errors]
    fired = {f.detector for f in report.findings if Severity(f.severity) >= Severity.WARNING}
    expected = EXPECTED.get(name, set())
    messages = {f.detector: f.message for f in report.findings}
    assert fired == expected, f"{name}: fired {sorted(fired)}, expected {sorted(expected)}: {messages}"


def test_overfitting_while_the_task_metric_improves_is_an_info_without_stopping_advice(reader):
    from trainfix.diagnostics.finding import Severity

    for name in ("hf-05", "keras-17"):
        _, report = diagnosed(reader, name)
        (f,) = [f for f in report.findings if f.detector == "overfitting"]
        assert Severity(f.severity) == Severity.INFO
        assert f.evidence["task_metric"]["kept_improving"]
        assert "early stopping" not in f.message and "mis-calibrated" in f.message
        assert f.evidence["early_stop_step"] is None
    _, report = diagnosed(reader, "hf-05")
    (f,) = [f for f in report.findings if f.detector == "overfitting"]
    assert f.evidence["val_min_step"] == 2910
    assert f.evidence["val_min"] == pytest.approx(0.409, abs=0.01)


def test_nonfinite_on_a_real_gan_log(reader):
    _, report = diagnosed(reader, "pl-19")
    (f,) = [f for f in report.findings if f.detector == "nonfinite-loss"]
    assert f.evidence["first_step"] == 0
    assert f.evidence["nonfinite_points"] >= 600


def test_flat_loss_with_rising_accuracy_is_not_a_plateau(reader):
    run, report = diagnosed(reader, "jsonl-09")
    loss = run.role("train_loss").values
    assert abs(loss[-1] - loss[0]) / loss[0] < 0.01  # the loss really is flat ...
    assert "loss-plateau" not in {f.detector for f in report.findings}  # ... but the model learns
