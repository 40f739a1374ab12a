#!/usr/bin/env python3
"""PEFT opens sft.h's checkpoints: load tests/fixtures/interop/{lora,dora} (the
adapter files sft_trainer_save wrote; `SFT_WRITE_FIXTURES=1 ./build/test_sft
our_checkpoint_opens_in_peft` rewrites them) with PeftModel.from_pretrained on the
tiny Llama (f32, eager attention), run the batch the C test runs, and compare the
logits with the ones sft.h computed (ours_logits.safetensors).

Writes tests/fixtures/interop/peft_logits.safetensors (<variant>/peft) and
result.json: per variant the largest |PEFT - ours| relative to the largest |PEFT|,
and the FNV-1a 64 hashes of the adapter files it loaded (the C test checks them
against the committed files, so a stale result cannot pass). Run in tools/.venv.
"""
import json
import os
import sys

import torch
import transformers
import peft
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "interop")
MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "llama")
ROWS = [[5, 17, 42, 99, 7, 250, 3, 64], [12, 8, 200, 33, 1, 9, 77, 150]]   # as in the C test


def fnv1a64(path):
    h = 1469598103934665603
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def main():
    torch.set_num_threads(1)
    result = {"writer": "tools/check_peft_interop.py",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
              "batch": ROWS, "tolerance": 1e-5}
    logits = {}
    ok = True
    for variant in ("lora", "dora"):
        d = os.path.join(FIX, variant)
        base = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
        model = peft.PeftModel.from_pretrained(base, d)
        model.eval()
        with torch.no_grad():
            out = model(input_ids=torch.tensor(ROWS)).logits.float()
        ours = load_file(os.path.join(d, "ours_logits.safetensors"))[variant + "/ours"]
        diff = float((out - ours).abs().max()) / float(out.abs().max())
        cfg = json.load(open(os.path.join(d, "adapter_config.json")))
        result[variant] = {
            "max_diff_relative_to_max": diff,
            "peft_type": cfg["peft_type"], "use_dora": cfg.get("use_dora"),
            "loaded_modules": sorted({n.split(".lora_")[0].split(".")[-1] for n, _ in model.named_parameters() if "lora_" in n}),
            "fnv1a64": {f: fnv1a64(os.path.join(d, f)) for f in ("adapter_model.safetensors", "adapter_config.json")},
        }
        logits[variant + "/peft"] = out.contiguous()
        ok &= diff <= 1e-5
        print(f"{variant}: PEFT logits vs sft.h {diff:.2e} of the largest")
    save_file(logits, os.path.join(FIX, "peft_logits.safetensors"))
    with open(os.path.join(FIX, "result.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
