#!/usr/bin/env python3
"""make_optim_fixtures.py - the optimizers transformers' Trainer builds, for sft.h.

Writes tests/fixtures/trainer/optimizers.json: a few steps of each optimizer on
three small parameters, as the Trainer sets them up (param groups: decay and no
decay; the learning rate written into the group before each step, as its LambdaLR
scheduler does), with given gradients:

    sgd               torch.optim.SGD (--optim sgd: momentum 0)
    sgd_momentum      torch.optim.SGD, momentum 0.9, dampening 0.1
    sgd_nesterov      torch.optim.SGD, momentum 0.9, nesterov
    adafactor         transformers.optimization.Adafactor, scale_parameter=False,
                      relative_step=False (what --optim adafactor builds)
    schedule_free     schedulefree.AdamWScheduleFree (--optim schedule_free_adamw),
                      warmup_steps 2, the Trainer's optimizer.train() before each
                      step and optimizer.eval() where an evaluation would run
    schedule_free_r   the same with r 0.5, weight_lr_power 1, no warmup

Parameters: p0 [4, 6] and p2 [3, 5] decay (weight_decay 0.01), p1 [6] does not;
p1 has no gradient at step 3 (the optimizers leave it alone). After each step the
parameters are stored; "eval" entries hold the parameters after optimizer.eval().
Floats are Python's repr of the f32 values (exact). Deterministic output.

    tools/.venv/bin/python tools/make_optim_fixtures.py
"""
import json
import os

import torch
import transformers
import schedulefree
from transformers.optimization import Adafactor

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "trainer", "optimizers.json")
SHAPES = [[4, 6], [6], [3, 5]]
DECAY = [True, False, True]
LRS = [1e-2, 2e-2, 1.5e-2, 5e-3, 1e-2, 8e-3]
STEPS = len(LRS)
EVAL_AFTER = {2, 6}          # schedule-free: an evaluation after these steps


def values(t):
    return [float(x) for x in t.detach().reshape(-1).tolist()]


def setup():
    g = torch.Generator().manual_seed(1234)
    params = [torch.nn.Parameter(torch.randn(s, generator=g) * 0.5) for s in SHAPES]
    grads = [[torch.randn(s, generator=g) * 0.1 for s in SHAPES] for _ in range(STEPS)]
    return params, grads


def groups(params, wd):
    return [{"params": [p for p, d in zip(params, DECAY) if d], "weight_decay": wd},
            {"params": [p for p, d in zip(params, DECAY) if not d], "weight_decay": 0.0}]


def run(name, make, schedule_free=False):
    params, grads = setup()
    init = [values(p) for p in params]
    opt = make(params)
    steps, evals = [], []
    for k in range(STEPS):
        if schedule_free:
            opt.train()
        for i, p in enumerate(params):
            p.grad = None if (i == 1 and k == 2) else grads[k][i].clone()
        for grp in opt.param_groups:
            grp["lr"] = LRS[k]
        opt.step()
        steps.append([values(p) for p in params])
        if schedule_free and k + 1 in EVAL_AFTER:
            opt.eval()
            evals.append({"after_step": k + 1, "params": [values(p) for p in params]})
    return {"name": name, "init": init, "grads": [[values(g) for g in gs] for gs in grads], "steps": steps, "evals": evals}


def main():
    torch.set_num_threads(1)
    cases = [
        run("sgd", lambda ps: torch.optim.SGD(groups(ps, 0.01), lr=LRS[0])),
        run("sgd_momentum", lambda ps: torch.optim.SGD(groups(ps, 0.01), lr=LRS[0], momentum=0.9, dampening=0.1)),
        run("sgd_nesterov", lambda ps: torch.optim.SGD(groups(ps, 0.01), lr=LRS[0], momentum=0.9, nesterov=True)),
        run("adafactor", lambda ps: Adafactor(groups(ps, 0.01), lr=LRS[0], scale_parameter=False, relative_step=False)),
        run("schedule_free", lambda ps: schedulefree.AdamWScheduleFree(groups(ps, 0.01), lr=LRS[0], betas=(0.9, 0.999),
                                                                        eps=1e-8, weight_decay=0.01, warmup_steps=2,
                                                                        r=0.0, weight_lr_power=2.0), True),
        run("schedule_free_r", lambda ps: schedulefree.AdamWScheduleFree(groups(ps, 0.01), lr=LRS[0], weight_decay=0.01,
                                                                          warmup_steps=0, r=0.5, weight_lr_power=1.0), True),
    ]
    doc = {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                        "schedulefree": schedulefree.__version__ if hasattr(schedulefree, "__version__") else "1.4.1"},
           "shapes": SHAPES, "decay": DECAY, "weight_decay": 0.01, "lrs": LRS, "no_grad": [3, 1],
           "eval_after": sorted(EVAL_AFTER), "cases": cases}
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
