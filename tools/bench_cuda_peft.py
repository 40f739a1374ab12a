#!/usr/bin/env python3
"""bench_cuda_peft.py - the PEFT + bitsandbytes side of `make bench-cuda` (on a GPU).

The job build/bench_cuda gives sft.h, in torch: the model folder loaded in NF4
by bitsandbytes (BitsAndBytesConfig: double quantization, compute dtype
bfloat16), prepare_model_for_kbit_training (gradient checkpointing), PEFT LoRA
r 16 / alpha 32 / dropout 0.05 on every linear of the decoder, AdamW lr 2e-4,
bf16 autocast as transformers' --bf16, batch 1 x --seq tokens (pre-tokenized
ids, the same rule as the C side), labels = ids. The first step is a warm-up;
the next --steps are timed. Prints progress lines, then one JSON line:

    {"impl": "peft_bnb", "tokens_per_s": .., "s_per_step": .., "peak_device_mb": ..}

(peak_device_mb: torch.cuda.max_memory_allocated over the timed steps and the
warm-up, the allocator's count, as sft.h's device_peak_bytes counts its own.)

    tools/.venv/bin/python tools/bench_cuda_peft.py --model build/bench-cuda/model --seq 2048 --steps 4

Needs torch with CUDA, transformers, peft, bitsandbytes. Nothing in the library
or its tests uses this file.
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    import torch
    if not torch.cuda.is_available():
        print("torch has no CUDA device", file=sys.stderr)
        return 1
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(a.model, quantization_config=bnb, dtype=torch.bfloat16,
                                                 device_map={"": 0})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    model.train()
    torch.cuda.reset_peak_memory_stats()
    total = 0.0
    for i in range(a.steps + 1):
        ids = torch.tensor([[3 + (i * 131 + k * 17) % 240 for k in range(a.seq)]], device="cuda")
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        print(f"step {i}: {dt:.3f} s, loss {loss.item():.4f}", file=sys.stderr)
        if i > 0:
            total += dt
    print(json.dumps({"impl": "peft_bnb", "tokens_per_s": a.seq * a.steps / total, "s_per_step": total / a.steps,
                      "peak_device_mb": torch.cuda.max_memory_allocated() / 1048576.0}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
