#!/usr/bin/env python3
"""make_callback_fixtures.py - transformers' TrainerCallback events, TrainerControl
and EarlyStoppingCallback, recorded for sft.h's callback tests.

Writes tests/fixtures/trainer/callbacks.json:

    runs            for each case, the events a recording callback saw, in order, as
                    [name, global_step] pairs, from transformers.Trainer training a
                    tiny random Llama on 10 pre-tokenized rows: batch 2,
                    gradient_accumulation_steps 2 (windows of 2, 2, 1 micro-batches),
                    2 epochs (6 optimizer steps), logging_steps 2, eval_steps 3 (an
                    eval set of 3 rows), save_steps 4. The events are independent of
                    the model and the data: only their counts matter. Dropped:
                    on_prediction_step (per eval batch; sft.h has no such event) and
                    what follows the training loop's end but on_train_end (the final
                    on_log of train_runtime and friends, which sft.h returns in
                    sft_train_output instead of logging).
        plain       no callback steers
        steered     a callback at on_step_end: step 1 sets should_epoch_stop (epoch 0
                    ends there), step 2 sets should_evaluate and should_save, step 4
                    clears should_log; the run ends after its 2 epochs at step 4
    early_stopping  EarlyStoppingCallback(patience, threshold) fed eval_loss sequences
                    as the Trainer feeds it (state.best_metric updated after each
                    on_evaluate, as Trainer._determine_best_metric does): for each
                    case the metrics, and the index of the evaluation after which it
                    set should_training_stop (-1: never)

    tools/.venv/bin/python tools/make_callback_fixtures.py

CPU only, deterministic (the same bytes on every run), a few seconds.
"""
import json
import os
import sys
import tempfile

import torch
import transformers
from transformers import (EarlyStoppingCallback, LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback,
                          TrainerControl, TrainerState, TrainingArguments)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "trainer", "callbacks.json")

EVENTS = ["on_init_end", "on_train_begin", "on_epoch_begin", "on_step_begin", "on_substep_end", "on_pre_optimizer_step",
          "on_optimizer_step", "on_step_end", "on_log", "on_evaluate", "on_predict", "on_save", "on_epoch_end", "on_train_end"]


class Recorder(TrainerCallback):
    """every event with the global step it came at; steer(state, control) at on_step_end"""

    def __init__(self, steer=None):
        self.events = []
        self.steer = steer
        self.in_train = False

    def _rec(self, name, state):
        self.events.append([name, int(state.global_step)])


def _make_event(name):
    def handler(self, args, state, control, **kwargs):
        self._rec(name, state)
        if name == "on_step_end" and self.steer:
            self.steer(state, control)
        return control
    return handler


for _name in EVENTS:
    setattr(Recorder, _name, _make_event(_name))


class Rows(torch.utils.data.Dataset):
    def __init__(self, n, salt):
        self.rows = []
        for i in range(n):
            ids = [3 + (i * 31 + k * 17 + salt) % 60 for k in range(5 + (i * 7 + salt) % 6)]
            self.rows.append(ids)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return {"input_ids": self.rows[i]}


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


def run(steer):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                      num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(cfg)
    rec = Recorder(steer)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=2, per_device_eval_batch_size=2,
                                 gradient_accumulation_steps=2, num_train_epochs=2, logging_steps=2, eval_strategy="steps",
                                 eval_steps=3, save_strategy="steps", save_steps=4, report_to=[], use_cpu=True, seed=1,
                                 learning_rate=1e-3, disable_tqdm=True, dataloader_num_workers=0, save_safetensors=True)
        trainer = Trainer(model=model, args=args, train_dataset=Rows(10, 0), eval_dataset=Rows(3, 5), data_collator=collate,
                          callbacks=[rec])
        trainer.train()
    ev = rec.events
    # the final on_log (train_runtime, ...) comes after the last on_epoch_end and before on_train_end
    last_epoch_end = max(i for i, e in enumerate(ev) if e[0] == "on_epoch_end")
    tail = [e for e in ev[last_epoch_end + 1:] if e[0] == "on_train_end"]
    return ev[:last_epoch_end + 1] + tail


def steered(state, control):
    if state.global_step == 1:
        control.should_epoch_stop = True
    if state.global_step == 2:
        control.should_evaluate = True
        control.should_save = True
    if state.global_step == 4:
        control.should_log = False


def early_stopping_case(metrics, patience, threshold, greater_is_better=False):
    """EarlyStoppingCallback.on_evaluate fed metrics one by one, the best metric
    updated after each as Trainer._determine_best_metric does"""
    cb = EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=threshold)
    args = TrainingArguments(output_dir=tempfile.gettempdir(), metric_for_best_model="loss", greater_is_better=greater_is_better,
                             load_best_model_at_end=True, eval_strategy="steps", save_strategy="steps", report_to=[], use_cpu=True)
    state = TrainerState()
    control = TrainerControl()
    stop = -1
    for i, m in enumerate(metrics):
        cb.on_evaluate(args, state, control, metrics={"eval_loss": m})
        if control.should_training_stop and stop < 0:
            stop = i
        better = state.best_metric is None or (m > state.best_metric if greater_is_better else m < state.best_metric)
        if better:
            state.best_metric = m
    return {"metrics": metrics, "patience": patience, "threshold": threshold, "greater_is_better": greater_is_better, "stop": stop}


def main():
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    fixture = {
        "versions": {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0]},
        "runs": {"plain": run(None), "steered": run(steered)},
        "early_stopping": [
            early_stopping_case([3.0, 2.5, 2.6, 2.55, 2.7, 2.0], 2, 0.0),
            early_stopping_case([3.0, 2.5, 2.45, 2.44, 2.43, 2.0], 2, 0.02),
            early_stopping_case([3.0, 2.5, 2.6, 2.4, 2.7, 2.8, 2.9], 3, 0.0),
            early_stopping_case([1.0, 1.2, 1.1, 1.3, 1.25, 1.29], 1, 0.0, greater_is_better=True),
            early_stopping_case([2.0, 2.0, 1.5], 1, 0.0),
        ],
    }
    with open(OUT, "w") as f:
        json.dump(fixture, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
