#!/usr/bin/env python3
"""make_grad_scaler_fixture.py - torch.amp.GradScaler's loss-scale sequence for sft.h.

Writes tests/fixtures/amp/grad_scaler.json: for a few runs of GradScaler (the class
transformers' Trainer uses with --fp16), the scale and growth tracker after every
update and whether the optimizer step was skipped, given which steps' gradients
hold inf or NaN. The gradients are real tensors: scaler.unscale_ (through
scaler.step) finds the overflow itself, so the fixture pins torch's whole
unscale -> check -> step/skip -> update path, not a re-implementation of it.

    tools/.venv/bin/python tools/make_grad_scaler_fixture.py

Cases (name: init_scale, growth_interval, steps, where the gradients overflow):
    defaults     2^16, 2000 (torch's defaults), 4500 steps; inf at 3, 4 and 2600,
                 NaN at 2601: growth at 2000 clean steps, backoff, growth again
    growth_cap   2^100, 1, 40 clean steps: doubling stops below f32's overflow
    backoff      1.0, 2000, 160 overflowing steps: halving down through the
                 subnormals to 0
    alternating  2^16, 3, 30 steps, inf at every 4th: growth interrupted
For "defaults" only the steps where the scale changes are stored (the "changes"
list: [step, scale]); the others store every step. Steps count from 1. Floats are
Python's repr of the f32 value as a double (exact). Deterministic output."""
import json
import math
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "amp", "grad_scaler.json")


def run(init_scale, growth_interval, steps, bad):
    """bad: step -> 'inf' | 'nan'. Returns per-step (scale, tracker, skipped)."""
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.ones(4))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=init_scale, growth_factor=2.0, backoff_factor=0.5,
                                  growth_interval=growth_interval)
    rows = []
    for step in range(1, steps + 1):
        opt.zero_grad()
        loss = (p * 0.25).sum()
        scaler.scale(loss).backward()
        if step in bad:
            p.grad[1] = float("inf") if bad[step] == "inf" else float("nan")
        before = p.detach().clone()
        scaler.step(opt)
        scaler.update()
        skipped = bool(torch.equal(before, p.detach()))
        rows.append((float(scaler.get_scale()), int(scaler._growth_tracker.item()), skipped))
    return rows


def main():
    cases = []
    bad = {3: "inf", 4: "inf", 2600: "inf", 2601: "nan"}
    rows = run(2.0 ** 16, 2000, 4500, bad)
    changes, last = [], 2.0 ** 16
    for i, (sc, _, _) in enumerate(rows):
        if sc != last:
            changes.append([i + 1, sc])
            last = sc
    cases.append({"name": "defaults", "init_scale": 2.0 ** 16, "growth_interval": 2000, "steps": 4500,
                  "inf_steps": [s for s, k in sorted(bad.items()) if k == "inf"],
                  "nan_steps": [s for s, k in sorted(bad.items()) if k == "nan"],
                  "changes": changes, "skipped": [i + 1 for i, r in enumerate(rows) if r[2]],
                  "final_scale": rows[-1][0], "final_growth_tracker": rows[-1][1]})
    for name, init, interval, steps, bad in (
            ("growth_cap", 2.0 ** 100, 1, 40, {}),
            ("backoff", 1.0, 2000, 160, {s: "inf" for s in range(1, 161)}),
            ("alternating", 2.0 ** 16, 3, 30, {s: "inf" for s in range(4, 31, 4)})):
        rows = run(init, interval, steps, bad)
        cases.append({"name": name, "init_scale": init, "growth_interval": interval, "steps": steps,
                      "inf_steps": sorted(bad), "nan_steps": [],
                      "scales": [r[0] for r in rows], "growth_trackers": [r[1] for r in rows],
                      "skipped": [i + 1 for i, r in enumerate(rows) if r[2]]})
    for c in cases:   # the stored values are f32 values
        for v in c.get("scales", []) + [x[1] for x in c.get("changes", [])]:
            assert v == 0.0 or math.isfinite(v)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__.split("+")[0], "cases": cases}, f, indent=1)
        f.write("\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
