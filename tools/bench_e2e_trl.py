#!/usr/bin/env python3
"""bench_e2e_trl.py - the Python stack's side of `make bench-e2e`.

One QLoRA run on the CPU, with --loop trl: TRL's SFTTrainer (trainer.train()),
or --loop torch: the same model, data and batches in a plain torch loop
(forward, loss.backward(), AdamW step, zero_grad; no Trainer machinery, no token
metrics). Set up as build/bench_e2e sets up
sft.h: the model folder quantized to NF4 by bitsandbytes (BitsAndBytesConfig,
blocksize 64, no double quantization, compute dtype as asked), PEFT LoRA on
every linear layer of the decoder, AdamW, packed rows (BFD, padding-free) of
--max_length tokens, --batch rows per step, gradient checkpointing as asked.
It prints one JSON object per optimizer step on stdout:

    {"step": 1, "s": 14.2, "num_tokens": 2048}

(s: the wall time of the step, from on_step_begin to on_step_end) and a final
{"done": true, ...} line. The caller measures peak memory from outside.

    tools/.venv/bin/python tools/bench_e2e_trl.py --model DIR --data FILE.jsonl \
        --max_length 512 --batch 4 --steps 4 --threads 2 --gradient_checkpointing 0 \
        --compute_dtype float32

Nothing here is used by the library or its tests.
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["trl", "torch"], default="trl")
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max_length", type=int, default=512)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gradient_checkpointing", type=int, default=0)
    ap.add_argument("--compute_dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--output_dir", default="build/bench-e2e/trl-out")
    args = ap.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    bf16 = args.compute_dtype == "bfloat16"
    compute = torch.bfloat16 if bf16 else torch.float32
    quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                               bnb_4bit_compute_dtype=compute, bnb_4bit_quant_storage=torch.uint8)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, quantization_config=quant, dtype=compute,
                                                 attn_implementation="sdpa")
    lora = LoraConfig(task_type="CAUSAL_LM", r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear")
    data = load_dataset("json", data_files=args.data, split="train")
    cfg = SFTConfig(output_dir=args.output_dir, max_length=args.max_length, packing=True, padding_free=True,
                    per_device_train_batch_size=args.batch, gradient_accumulation_steps=1, learning_rate=2e-4,
                    max_steps=args.steps, logging_steps=1, save_strategy="no", report_to=[], bf16=bf16, fp16=False,
                    use_cpu=True, gradient_checkpointing=bool(args.gradient_checkpointing),
                    gradient_checkpointing_kwargs={"use_reentrant": False}, dataloader_num_workers=0,
                    seed=42, disable_tqdm=True, optim="adamw_torch", lr_scheduler_type="linear",
                    assistant_only_loss=False, dataset_num_proc=1)

    class StepTimer(TrainerCallback):
        """Each step's wall time; its tokens from the log TRL writes after it."""
        def __init__(self):
            self.t0, self.s, self.seen = 0.0, 0.0, 0

        def on_step_begin(self, a, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            self.s = time.perf_counter() - self.t0

        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "num_tokens" in logs:
                n = int(logs["num_tokens"])
                print(json.dumps({"step": state.global_step, "s": round(self.s, 4), "num_tokens": n - self.seen,
                                  "loss": logs.get("loss")}), flush=True)
                self.seen = n

    trainer = SFTTrainer(model=model, args=cfg, train_dataset=data, processing_class=tok, peft_config=lora,
                         callbacks=[StepTimer()] if args.loop == "trl" else [])
    if args.loop == "trl":
        trainer.train()
    else:
        torch_loop(trainer, args.steps)
    print(json.dumps({"done": True, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "lora_dtype": str(next(p for p in trainer.model.parameters() if p.requires_grad).dtype)}),
          flush=True)


def torch_loop(trainer, steps):
    """The plain loop on the trainer's own model and batches."""
    import torch
    model = trainer.model
    model.train()
    if trainer.args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4)
    batches = iter(trainer.get_train_dataloader())
    for step in range(1, steps + 1):
        batch = next(batches)
        t0 = time.perf_counter()
        out = model(**batch)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        s = time.perf_counter() - t0
        tokens = int(batch["input_ids"].numel())
        print(json.dumps({"step": step, "s": round(s, 4), "num_tokens": tokens, "loss": float(out.loss)}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
