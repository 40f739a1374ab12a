#!/usr/bin/env python3
"""make_metrics_fixtures.py - compute_metrics, preprocess_logits_for_metrics and a
custom metric_for_best_model, recorded from one real TRL SFTTrainer run.

Writes tests/fixtures/trainer/metrics.json:

    the job         trl_plateau's (tools/make_trainer_fixtures.py): the llama fixture
                    with the fixed initial LoRA adapter of trl_loop_init.safetensors,
                    the 18 trl_loop rows in order (SequentialSampler), batch 4, GA 2,
                    lr 1e-3 linear with warmup 2, max_steps 8, logging_steps 1; the 6
                    trl_plateau eval rows, per_device_eval_batch_size 4 (batches of
                    4 and 2 rows), eval_steps 2, save_steps 2, load_best_model_at_end
    metrics         batch_eval_metrics=True. preprocess_logits_for_metrics(logits
                    [B, T, V], labels [B, T] unshifted) -> f32 [B, T, 2]: [..., 0] =
                    logits.argmax(-1) (the first largest logit), [..., 1] = the
                    next token's NLL, -log_softmax(logits[b, t])[labels[b, t + 1]]
                    (f32; 0 where t + 1 is past the row or its label is -100). Per
                    batch compute_metrics(EvalPrediction(predictions, label_ids),
                    compute_result) adds, over the targets (labels[:, 1:] != -100),
                    how many argmaxes equal the next label, the NLL sum (double) and
                    the target count; with compute_result it returns {"accuracy":
                    correct / targets, "target_nll": nll / targets, "targets":
                    targets} and resets. Trainer prefixes eval_.
    best            metric_for_best_model "target_nll": greater_is_better is True by
                    transformers' rule (the name does not end in "loss"), so the
                    highest NLL wins; the eval losses of this run rise, so the best
                    is the last evaluation, not the first (accuracy stays 0: random
                    tokens)
    evals           per evaluation: step, eval_loss, eval_accuracy, eval_targets,
                    the per-batch correct/targets counts, and whether the call had
                    compute_result
    log_history     trainer_state.json's eval entries (eval_* keys and epoch, step;
                    eval_runtime and the per-second rates dropped: time-dependent)
    best_metric, best_global_step, best_model_checkpoint (the folder's base name)

    tools/.venv/bin/python tools/make_metrics_fixtures.py

CPU only, one thread, f32; a few seconds. Deterministic (the same bytes each run).
"""
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_trainer_fixtures as mt  # noqa: E402  (the trl_loop job: rows, tokenizer, model, versions)

import datasets  # noqa: E402
import peft  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

WRITER = "tools/make_metrics_fixtures.py"
MAX_STEPS, EVAL_STEPS = 8, 2


class TokenAccuracy:
    """compute_metrics for batch_eval_metrics: the state is summed per batch and
    returned (then reset) at compute_result"""

    def __init__(self):
        self.correct = self.targets = 0
        self.nll = 0.0
        self.calls = []

    def __call__(self, pred, compute_result):
        p, labels = torch.as_tensor(pred.predictions), torch.as_tensor(pred.label_ids)
        tgt = labels[:, 1:]
        sel = tgt != -100
        ids, nll = p[:, :-1, 0].long(), p[:, :-1, 1].double()
        c, n, s = int((ids[sel] == tgt[sel]).sum()), int(sel.sum()), float(nll[sel].sum())
        self.correct += c
        self.targets += n
        self.nll += s
        self.calls.append({"batch_shape": list(labels.shape), "predictions_shape": list(p.shape), "correct": c,
                           "targets": n, "nll_sum": s, "compute_result": bool(compute_result)})
        if not compute_result:
            return {}
        out = {"accuracy": self.correct / self.targets, "target_nll": self.nll / self.targets,
               "targets": float(self.targets)}
        self.correct = self.targets = 0
        self.nll = 0.0
        return out


def argmax_and_nll(logits, labels):
    """[..., 0] the argmax, [..., 1] the next label's NLL (0 where there is none)"""
    nxt = torch.full_like(labels, -100)
    nxt[:, :-1] = labels[:, 1:]
    lp = torch.log_softmax(logits.float(), dim=-1)
    nll = -lp.gather(-1, nxt.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    nll = torch.where(nxt != -100, nll, torch.zeros_like(nll))
    return torch.stack([logits.argmax(dim=-1).float(), nll], dim=-1)


def run():
    from torch.utils.data import SequentialSampler
    from trl import SFTConfig, SFTTrainer

    rows, erows = mt.make_rows(), mt.make_eval_rows()
    ds = datasets.Dataset.from_dict({"input_ids": rows})
    eds = datasets.Dataset.from_dict({"input_ids": erows})
    model = transformers.AutoModelForCausalLM.from_pretrained(mt.MODEL_DIR, dtype=torch.float32,
                                                              attn_implementation="eager")
    lcfg = peft.LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0)
    metric = TokenAccuracy()
    calls_per_eval = []

    class Trainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def evaluate(self, *a, **kw):
            n = len(metric.calls)
            out = super().evaluate(*a, **kw)
            calls_per_eval.append(metric.calls[n:])
            return out

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SFTConfig(output_dir=tmp, per_device_train_batch_size=4, gradient_accumulation_steps=2, learning_rate=1e-3,
                        lr_scheduler_type="linear", warmup_steps=2, max_steps=MAX_STEPS, logging_steps=1, seed=42,
                        packing=False, max_length=64, bf16=False, fp16=False, gradient_checkpointing=False,
                        report_to="none", max_grad_norm=1.0, use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
                        eval_strategy="steps", eval_steps=EVAL_STEPS, per_device_eval_batch_size=4,
                        save_strategy="steps", save_steps=EVAL_STEPS, load_best_model_at_end=True,
                        metric_for_best_model="target_nll", batch_eval_metrics=True)
        tr = Trainer(model=model, args=cfg, train_dataset=ds, eval_dataset=eds, processing_class=mt.make_tokenizer(),
                     peft_config=lcfg, compute_metrics=metric, preprocess_logits_for_metrics=argmax_and_nll)
        tr.remove_callback(transformers.trainer_callback.PrinterCallback)
        init = load_file(os.path.join(mt.OUT, "trl_loop_init.safetensors"))
        params = dict(tr.model.named_parameters())
        with torch.no_grad():
            for key, v in init.items():
                params[key.replace(".weight", ".default.weight")].copy_(v)
        assert all(torch.equal(v, mt.lora_state(tr.model)[k]) for k, v in init.items())
        assert [list(r) for r in tr.train_dataset["input_ids"]] == rows
        assert tr.args.greater_is_better is True
        tr.train()
        st = tr.state
        hist = [{k: v for k, v in e.items() if k not in ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")}
                for e in st.log_history if "eval_loss" in e]
        best = {"best_metric": st.best_metric, "best_global_step": st.best_global_step,
                "best_model_checkpoint": os.path.basename(st.best_model_checkpoint)}
    assert len(hist) == len(calls_per_eval) == MAX_STEPS // EVAL_STEPS
    evals = []
    for e, calls in zip(hist, calls_per_eval):
        assert [c["compute_result"] for c in calls] == [False] * (len(calls) - 1) + [True]
        assert e["eval_accuracy"] == sum(c["correct"] for c in calls) / sum(c["targets"] for c in calls)
        evals.append({"step": e["step"], "eval_loss": e["eval_loss"], "eval_accuracy": e["eval_accuracy"],
                      "eval_target_nll": e["eval_target_nll"], "eval_targets": e["eval_targets"], "batches": calls})
    accs = [e["eval_target_nll"] for e in evals]
    i = max(range(len(accs)), key=lambda k: (accs[k], -k))     # the first of the highest (strictly greater wins)
    assert best["best_metric"] == accs[i] and best["best_global_step"] == evals[i]["step"]
    assert best["best_model_checkpoint"] == "checkpoint-%d" % evals[i]["step"]
    return {"evals": evals, "log_history_evals": hist, **best}


def main():
    torch.set_num_threads(1)
    r = run()
    doc = {"writer": WRITER, "versions": mt.versions(),
           "notes": "trl_plateau's job (linear schedule, warmup 2) with batch_eval_metrics compute_metrics (token "
                    "accuracy of argmax predictions and the mean next-token NLL, over shifted labels, from a "
                    "preprocess_logits_for_metrics that keeps [argmax, NLL] per position) and metric_for_best_model "
                    "'target_nll' (maximised by transformers' default). See the "
                    "header of tools/make_metrics_fixtures.py.",
           "config": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 2, "learning_rate": 1e-3,
                      "lr_scheduler_type": "linear", "warmup_steps": 2, "max_steps": MAX_STEPS, "logging_steps": 1,
                      "eval_steps": EVAL_STEPS, "save_steps": EVAL_STEPS, "per_device_eval_batch_size": 4,
                      "load_best_model_at_end": True, "metric_for_best_model": "target_nll", "greater_is_better": True,
                      "batch_eval_metrics": True},
           "train_rows": "trl_loop.json dataset.rows", "eval_rows": mt.make_eval_rows(),
           "adapter_init": "trl_loop_init.safetensors", **r}
    mt.write_json("metrics.json", doc)
    for e in r["evals"]:
        print(f"  step {e['step']}: eval_loss {e['eval_loss']:.7f} eval_accuracy {e['eval_accuracy']:.6f} "
              f"eval_target_nll {e['eval_target_nll']:.7f} "
              f"batches {[(c['correct'], c['targets']) for c in e['batches']]}")
    print(f"  best_metric {r['best_metric']} at {r['best_global_step']} ({r['best_model_checkpoint']})")


if __name__ == "__main__":
    sys.exit(main())
