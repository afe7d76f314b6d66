"""A user's Hugging Face Trainer script (not trainfix code): a tiny BERT classifier on generated
token sequences, fine-tuned from ``model_name_or_path`` (a local directory an earlier run saved),
or built from a ``BertConfig`` when that is null.  Nothing is downloaded.

Settings come from the user's own JSON file (``--args``), read the way Hugging Face's examples
read theirs: ``HfArgumentParser((ModelArguments, TrainingArguments))`` over one file, so the keys
are ``model_name_or_path`` plus TrainingArguments' own (``learning_rate``,
``per_device_train_batch_size``, ...).  The Trainer (with ``accelerate`` underneath) writes
``trainer_state.json``, the model and ``training_args.bin``; the script also saves the arguments
as ``training_args.json`` beside them, as many scripts do.

    python hf_trainer_train.py --args ARGS.json --out RUN_DIR
"""

import argparse
import json
import logging
import os
import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from transformers import BertConfig, BertForSequenceClassification, HfArgumentParser, Trainer, TrainingArguments

VOCAB, LENGTH = 40, 12


class Sequences(torch.utils.data.Dataset):
    """Label 1 when the sequence holds more 'high' tokens (id >= VOCAB/2) than low ones."""

    def __init__(self, n, seed):
        rng = np.random.default_rng(seed)
        self.ids = rng.integers(2, VOCAB, size=(n, LENGTH))
        self.labels = ((self.ids >= VOCAB // 2).sum(1) * 2 > LENGTH).astype(np.int64)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": torch.tensor(self.ids[i]), "attention_mask": torch.ones(LENGTH, dtype=torch.long),
                "labels": torch.tensor(self.labels[i])}


@dataclass
class ModelArguments:
    model_name_or_path: Optional[str] = None


def accuracy(pred):
    return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--args", required=True)
    ap.add_argument("--out", required=True)
    cli = ap.parse_args()
    warnings.filterwarnings("ignore")
    logging.getLogger("transformers").setLevel(logging.ERROR)
    torch.set_num_threads(1)
    with open(cli.args) as fh:
        settings = json.load(fh)
    settings["output_dir"] = cli.out
    model_args, args = HfArgumentParser((ModelArguments, TrainingArguments)).parse_dict(settings)
    torch.manual_seed(args.seed)
    if model_args.model_name_or_path:
        model = BertForSequenceClassification.from_pretrained(model_args.model_name_or_path)
    else:
        config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                            intermediate_size=64, max_position_embeddings=LENGTH, num_labels=2)
        model = BertForSequenceClassification(config)
    trainer = Trainer(model=model, args=args, train_dataset=Sequences(640, 0), eval_dataset=Sequences(256, 1),
                      compute_metrics=accuracy)
    trainer.train()
    trainer.save_model()
    trainer.save_state()
    with open(os.path.join(cli.out, "training_args.json"), "w") as fh:
        fh.write(args.to_json_string())
    print(trainer.evaluate())


if __name__ == "__main__":
    main()
