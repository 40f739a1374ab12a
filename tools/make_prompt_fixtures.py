"""make_prompt_fixtures.py - PEFT's prompt tuning as it runs multitask prompts
and padding-free (packed) batches, on the tiny llama in tests/fixtures/models.

Run from the repository root:
    tools/.venv/bin/python tools/make_prompt_fixtures.py

Writes tests/fixtures/peft/:
  prompt.safetensors   the inputs, the trained tensors, logits, losses, gradients
  prompt.json          the versions, the rules found, the losses and checks
  mpt_adapter/         a MULTITASK_PROMPT_TUNING adapter as PeftModel.save_pretrained
                       writes it (adapter_config.json, adapter_model.safetensors)

(a) multitask prompt tuning: MultitaskPromptTuningConfig(CAUSAL_LM,
    num_virtual_tokens=3, num_tasks=3, num_ranks=2, RANDOM), its three tensors
    overwritten with seeded randn (shared prompts * 0.5, cols and rows * 0.7 so
    that the task product is of order one). A right-padded batch of 3 rows with
    task_ids [2, 0, 2]: mpt.logits [3, 3 + 6, 256], mpt.loss, and mpt.grad.<name>
    for prompt_embeddings, prefix_task_cols, prefix_task_rows (train mode).
(b) padding-free: TRL's DataCollatorForLanguageModeling(padding_free=True)
    batch of two sequences (lengths 5 and 4) fed to the PEFT model as the
    Trainer feeds it (every key of the collator's output). PEFT drops
    position_ids for prompt tuning ("Position ids are not supported ..."), the
    collator gives no attention_mask, so the row is one causal sequence of
    3 + 9 tokens at positions 0..11: the second sequence attends to the first.
    Plain prompt tuning (pf.*) and multitask with task_ids [1] (pfm.*).
"""
import json
import os
import platform
import shutil
import sys
import warnings

import torch
import transformers
import peft
import trl
from peft import MultitaskPromptTuningConfig, PromptTuningConfig, get_peft_model
from safetensors import safe_open
from transformers import AutoModelForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "tests", "fixtures", "models", "llama")
OUT = os.path.join(ROOT, "tests", "fixtures", "peft")
WRITER = "tools/make_prompt_fixtures.py"
SEED = 20261204
P, TASKS, RANKS = 3, 3, 2
T, N_REAL, TASK_IDS = 6, (6, 4, 5), (2, 0, 2)
PACKED = (5, 4)
PACKED_TASK = 1

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()


def gen(seed):
    return torch.Generator().manual_seed(seed)


def load():
    m = AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def multitask_model():
    pm = get_peft_model(load(), MultitaskPromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, num_tasks=TASKS,
                                                            num_ranks=RANKS, prompt_tuning_init="RANDOM"))
    enc = pm.prompt_encoder["default"]
    g = gen(SEED + 1)
    with torch.no_grad():
        enc.embedding.weight.copy_(0.5 * torch.randn(enc.embedding.weight.shape, generator=g))
        enc.prefix_task_cols.copy_(0.7 * torch.randn(enc.prefix_task_cols.shape, generator=g))
        enc.prefix_task_rows.copy_(0.7 * torch.randn(enc.prefix_task_rows.shape, generator=g))
    return pm, enc


def params(enc):
    return {"prompt_embeddings": enc.embedding.weight, "prefix_task_cols": enc.prefix_task_cols,
            "prefix_task_rows": enc.prefix_task_rows}


def by_hand(pm, enc, ids, mask, task_ids, positions=None):
    """PEFT's multitask forward written out: prompts * (cols[t] @ rows[t]) in front"""
    with torch.no_grad():
        prompts = enc.embedding.weight[None] * (enc.prefix_task_cols[task_ids] @ enc.prefix_task_rows[task_ids])
        emb = torch.cat((prompts, pm.get_base_model().model.embed_tokens(ids)), dim=1)
        full = torch.cat((torch.ones(ids.shape[0], P, dtype=torch.long), mask), dim=1)
        return pm.get_base_model()(inputs_embeds=emb, attention_mask=full, position_ids=positions).logits


def multitask(tensors, doc):
    pm, enc = multitask_model()
    g = gen(SEED)
    ids = torch.randint(3, 256, (len(N_REAL), T), generator=g)
    mask = torch.zeros(len(N_REAL), T, dtype=torch.long)
    for r, n in enumerate(N_REAL):
        mask[r, :n] = 1
    ids = torch.where(mask.bool(), ids, torch.zeros_like(ids))
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    task_ids = torch.tensor(TASK_IDS)
    trainable = sorted(n for n, p in pm.named_parameters() if p.requires_grad)
    assert trainable == ["prompt_encoder.default.embedding.weight", "prompt_encoder.default.prefix_task_cols",
                         "prompt_encoder.default.prefix_task_rows"], trainable
    for k, v in params(enc).items():
        tensors["mpt." + k] = v.detach().clone()
    pm.train()
    out = pm(input_ids=ids, attention_mask=mask, labels=labels, task_ids=task_ids)
    out.loss.backward()
    err = float((by_hand(pm, enc, ids, mask, task_ids) - out.logits.detach()).abs().max())
    assert err < 1e-5, err
    tensors.update({"mpt.input_ids": ids.int(), "mpt.attention_mask": mask.int(), "mpt.labels": labels.int(),
                    "mpt.task_ids": task_ids.int(), "mpt.logits": out.logits.detach().clone(),
                    "mpt.loss": out.loss.detach().reshape(1).clone()})
    for k, v in params(enc).items():
        tensors["mpt.grad." + k] = v.grad.detach().clone()
    try:
        pm(input_ids=ids, attention_mask=mask, labels=labels)
        missing = "accepted"
    except ValueError as e:
        missing = "ValueError: %s" % e
    # the adapter as PEFT saves it, and what it holds
    adir = os.path.join(OUT, "mpt_adapter")
    shutil.rmtree(adir, ignore_errors=True)
    pm.save_pretrained(adir)
    for dirpath, _, files in os.walk(adir):
        for fn in files:
            if fn == "README.md":
                os.remove(os.path.join(dirpath, fn))
            else:
                os.chmod(os.path.join(dirpath, fn), 0o644)
    with safe_open(os.path.join(adir, "adapter_model.safetensors"), "pt") as f:
        keys = {k: list(f.get_tensor(k).shape) for k in f.keys()}
        for k in keys:
            assert torch.equal(f.get_tensor(k), tensors["mpt." + k]), k
    cfg = json.load(open(os.path.join(adir, "adapter_config.json")))
    cfg["base_model_name_or_path"] = "tests/fixtures/models/llama"
    with open(os.path.join(adir, "adapter_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    # and PEFT loads it back to the same logits
    back = peft.PeftModel.from_pretrained(load(), adir)
    with torch.no_grad():
        again = back(input_ids=ids, attention_mask=mask, task_ids=task_ids).logits
    assert torch.equal(again, out.logits.detach()), "reloaded adapter differs"
    doc["multitask"] = {
        "config": {"task_type": "CAUSAL_LM", "num_virtual_tokens": P, "num_tasks": TASKS, "num_ranks": RANKS,
                   "prompt_tuning_init": "RANDOM"},
        "values": "prompt_embeddings = 0.5 randn, prefix_task_cols = 0.7 randn, prefix_task_rows = 0.7 randn "
                  "(torch.Generator seed %d, in that order)" % (SEED + 1),
        "rule": "prompts[b] = prompt_embeddings * (prefix_task_cols[task_ids[b]] @ prefix_task_rows[task_ids[b]]); "
                "inputs_embeds = cat(prompts, embed(input_ids)); attention_mask = cat(ones, mask); labels = cat(-100, labels)",
        "task_ids": list(TASK_IDS), "rows": list(N_REAL), "loss": float(out.loss), "mode": "train (no dropout)",
        "max_abs_diff_vs_by_hand_forward": err,
        "without_task_ids": missing,
        "adapter_keys": keys, "adapter_config": cfg,
        "init_std": "RANDOM: prompt_embeddings nn.Embedding N(0, 1); prefix_task_cols, prefix_task_rows torch.normal(0, 0.02)",
    }


def padding_free(tensors, doc):
    coll = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)
    g = gen(SEED + 2)
    seqs = [torch.randint(3, 256, (n,), generator=g).tolist() for n in PACKED]
    batch = coll([{"input_ids": s} for s in seqs])
    assert "attention_mask" not in batch
    tensors.update({"pf.input_ids": batch["input_ids"].int(), "pf.labels": batch["labels"].int(),
                    "pf.position_ids": batch["position_ids"].int()})
    n = batch["input_ids"].shape[1]
    found = {}
    # plain prompt tuning
    pm = get_peft_model(load(), PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, prompt_tuning_init="RANDOM"))
    emb = pm.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        emb.copy_(0.5 * torch.randn(emb.shape, generator=gen(SEED + 3)))
    tensors["pf.prompt_embeddings"] = emb.detach().clone()
    pm.train()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        out = pm(**batch)
    found["warnings"] = sorted({str(x.message) for x in w if "ids" in str(x.message)})
    out.loss.backward()
    base = pm.get_base_model()
    with torch.no_grad():   # one causal sequence over the whole row, positions 0..P+n-1
        e = torch.cat((emb[None], base.model.embed_tokens(batch["input_ids"])), dim=1)
        whole = base(inputs_embeds=e).logits
        kept = base(inputs_embeds=e, position_ids=torch.cat((torch.arange(P)[None], batch["position_ids"] + P), dim=1)).logits
    found["max_abs_diff_vs_one_causal_sequence"] = float((whole - out.logits.detach()).abs().max())
    found["max_abs_diff_vs_positions_kept"] = float((kept - out.logits.detach()).abs().max())
    assert found["max_abs_diff_vs_one_causal_sequence"] < 1e-5, found
    tensors.update({"pf.logits": out.logits.detach().clone(), "pf.loss": out.loss.detach().reshape(1).clone(),
                    "pf.grad.prompt_embeddings": emb.grad.detach().clone()})
    # multitask, the row's one task id
    pm, enc = multitask_model()
    pm.train()
    out = pm(**batch, task_ids=torch.tensor([PACKED_TASK]))
    out.loss.backward()
    tensors.update({"pfm.logits": out.logits.detach().clone(), "pfm.loss": out.loss.detach().reshape(1).clone()})
    for k, v in params(enc).items():
        tensors["pfm.grad." + k] = v.grad.detach().clone()
    doc["padding_free"] = {
        "collator": "trl DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True), sequences of %s tokens"
                    % list(PACKED),
        "keys_given_to_the_model": sorted(batch.keys()),
        "rule": "PeftModelForCausalLM drops position_ids for prompt tuning (warning) and the collator gives no "
                "attention_mask: prompts go in front of the whole flattened row, which runs as one causal "
                "sequence at positions 0..P+n-1 (sequence boundaries are not kept; cu_seq_lens_* only matter "
                "to flash attention)",
        "tokens": n, "loss": float(tensors["pf.loss"][0]), "multitask_task_ids": [PACKED_TASK],
        "multitask_loss": float(tensors["pfm.loss"][0]), **found,
    }


def main():
    tensors, doc = {}, {"versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                                     "peft": peft.__version__, "trl": trl.__version__,
                                     "python": platform.python_version()},
                        "writer": WRITER, "model": "tests/fixtures/models/llama (eager attention, f32)"}
    multitask(tensors, doc)
    padding_free(tensors, doc)
    tensors = {k: v.contiguous() for k, v in sorted(tensors.items())}
    save_safetensors(tensors, os.path.join(OUT, "prompt.safetensors"), {"writer": WRITER})
    with open(os.path.join(OUT, "prompt.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps({k: doc[k] for k in ("multitask", "padding_free")}, indent=1)[:4000])


if __name__ == "__main__":
    main()
