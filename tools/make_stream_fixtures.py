#!/usr/bin/env python3
"""make_stream_fixtures.py - transformers' Trainer on an IterableDataset (a
dataset without a length), recorded for sft.h's stream tests.

Writes tests/fixtures/trainer/stream.json:

    runs    for each case, from transformers.Trainer training a tiny random Llama
            on an IterableDataset of pre-tokenized rows with max_steps set
            (num_train_epochs is then sys.maxsize and the logged epoch is
            epoch + micro-batches of the pass / (max_steps x
            gradient_accumulation_steps)), logging_steps 1:
        epochs      the "epoch" of every training log entry in log_history, by step
                    ([global_step, epoch] pairs)
        events      on_epoch_begin / on_epoch_end with the global step they came at
        rows, batch, accumulation, max_steps: the case
      cases: 10 rows, batch 2, accumulation 1, 8 steps (a pass of 5 micro-batches,
      so step 6 opens the second pass); 12 rows, batch 2, accumulation 3, 5 steps
      (passes of 2 windows: steps 3 and 5 open the second and third)

    tools/.venv/bin/python tools/make_stream_fixtures.py

CPU only, deterministic, a few seconds. The numbers depend on no weight: only
the data's length and the settings.
"""
import json
import os
import sys
import tempfile

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "trainer", "stream.json")


class Rows(torch.utils.data.IterableDataset):
    def __init__(self, n):
        self.rows = [[3 + (i * 31 + k * 17) % 60 for k in range(5 + (i * 7) % 6)] for i in range(n)]

    def __iter__(self):
        for ids in self.rows:
            yield {"input_ids": ids}


def collate(batch):
    t = max(len(b["input_ids"]) for b in batch)
    ids = torch.zeros(len(batch), t, dtype=torch.long)
    mask = torch.zeros(len(batch), t, dtype=torch.long)
    labels = torch.full((len(batch), t), -100, dtype=torch.long)
    for r, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[r, :n] = torch.tensor(b["input_ids"])
        mask[r, :n] = 1
        labels[r, :n] = torch.tensor(b["input_ids"])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class Epochs(TrainerCallback):
    def __init__(self):
        self.events = []

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.events.append(["on_epoch_begin", int(state.global_step)])

    def on_epoch_end(self, args, state, control, **kwargs):
        self.events.append(["on_epoch_end", int(state.global_step)])


def run(rows, batch, accumulation, max_steps):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    rec = Epochs()
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=batch, gradient_accumulation_steps=accumulation,
                                 max_steps=max_steps, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, seed=1,
                                 learning_rate=1e-3, disable_tqdm=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=Rows(rows), data_collator=collate, callbacks=[rec])
        trainer.train()
    epochs = [[int(e["step"]), e["epoch"]] for e in trainer.state.log_history if "loss" in e]
    return {"rows": rows, "batch": batch, "accumulation": accumulation, "max_steps": max_steps, "epochs": epochs,
            "events": rec.events}


def main():
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    fixture = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]},
        "runs": [run(10, 2, 1, 8), run(12, 2, 3, 5)],
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
