#!/usr/bin/env python3
"""bench_tokenizer.py - the Python tokenizers library's encode speed on the text
that build/bench (make bench) wrote to build/bench_text.txt, with the same
fixture tokenizers, one thread, as one JSON line each (make bench runs it when
tools/.venv exists)."""
import json
import os
import time

os.environ["RAYON_NUM_THREADS"] = "1"   # before tokenizers starts its pool
os.environ["TOKENIZERS_PARALLELISM"] = "false"
import tokenizers  # noqa: E402

text = open("build/bench_text.txt", encoding="utf-8").read()
size = len(text.encode("utf-8"))
for family in ("llama3", "gpt2"):
    tok = tokenizers.Tokenizer.from_file("tests/fixtures/tokenizers/%s/tokenizer.json" % family)
    best = None
    for rep in range(4):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        dt = time.perf_counter() - t0
        if rep > 0 and (best is None or dt < best):
            best = dt
    lines = text.split("\n")          # the same text as a batch of lines, the library's usual input
    best_batch = None
    for rep in range(3):
        t0 = time.perf_counter()
        tok.encode_batch(lines, add_special_tokens=False)
        dt = time.perf_counter() - t0
        if rep > 0 and (best_batch is None or dt < best_batch):
            best_batch = dt
    print(json.dumps({"bench": "tokenizer_ref", "ref": "tokenizers " + tokenizers.__version__, "family": family,
                      "threads": 1, "bytes": size, "ids": len(ids), "mb_per_s": round(size / best / 1e6, 2),
                      "batch_of_lines_mb_per_s": round(size / best_batch / 1e6, 2)}))
