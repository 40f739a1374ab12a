#!/usr/bin/env python3
"""check_arch_interop.py - PEFT opens the adapters sft.h saves for the newer architectures.

For each model of tests/fixtures/archs/ (make_arch_fixtures.py): load ours/ (the
adapter sft.h's sft_model_save_adapter wrote after loading PEFT's adapter/;
`SFT_WRITE_FIXTURES=1 ./build/test_sft our_adapters_open_in_peft` rewrites it)
with PeftModel.from_pretrained on the model (f32, eager attention), run the
fixture's batch in train mode (dropout 0), and compare the logits with the ones
PEFT computed with its own adapter (expected.safetensors lora.logits).

Writes tests/fixtures/archs/peft_opens_ours.json: per model the largest |ours
loaded by PEFT - PEFT's own| relative to the largest |PEFT's own|, the modules
PEFT attached adapters to, and the FNV-1a 64 hashes of the files it loaded (the
C test checks them against the committed files, so a stale result cannot
pass). Run in tools/.venv after make_arch_fixtures.py and the C test.
"""
import json
import os
import sys

import peft
import torch
import transformers
from safetensors.torch import load_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "archs")


def fnv1a64(path):
    h = 1469598103934665603
    with open(path, "rb") as f:
        for b in f.read():
            h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def main():
    torch.set_num_threads(1)
    result = {"writer": "tools/check_arch_interop.py",
              "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__},
              "tolerance": 1e-5}
    ok = True
    for name in sorted(os.listdir(FIX)):
        d = os.path.join(FIX, name)
        if not os.path.isdir(os.path.join(d, "ours")):
            continue
        exp = load_file(os.path.join(d, "expected.safetensors"))
        base = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager")
        model = peft.PeftModel.from_pretrained(base, os.path.join(d, "ours"))
        model.train()
        with torch.no_grad():
            out = model(input_ids=exp["input_ids"].long(), attention_mask=exp["attention_mask"].long()).logits.float()
        want = exp["lora.logits"]
        keep = exp["attention_mask"].bool()
        diff = float((out[keep] - want[keep]).abs().max()) / float(want[keep].abs().max())
        result[name] = {
            "max_diff_relative_to_max": diff,
            "loaded_modules": sorted({n.split(".lora_")[0].split(".")[-1] for n, _ in model.named_parameters() if "lora_" in n}),
            "fnv1a64": {f: fnv1a64(os.path.join(d, "ours", f)) for f in ("adapter_model.safetensors", "adapter_config.json")},
        }
        ok &= diff <= 1e-5
        print(f"{name}: PEFT with sft.h's adapter vs PEFT's own {diff:.2e} of the largest")
    with open(os.path.join(FIX, "peft_opens_ours.json"), "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
