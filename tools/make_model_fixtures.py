#!/usr/bin/env python3
"""make_model_fixtures.py - tiny Llama-family model reference fixtures for sft.h.

Writes tests/fixtures/models/ (the whole folder is replaced):

    llama/      config.json, generation_config.json, model.safetensors (f32),
                adapter/{adapter_config.json, adapter_model.safetensors},
                expected.safetensors, expected.json
    llama_bnb4/ config.json (with quantization_config), generation_config.json,
                model.safetensors: the llama model quantized NF4 by transformers +
                bitsandbytes on the CPU and saved with save_pretrained
    qwen2/      config.json, generation_config.json, model.safetensors (bf16, tied
                embeddings: no lm_head.weight), expected.safetensors, expected.json
    mistral/    config.json, generation_config.json, model.safetensors.index.json,
                model-0000i-of-0000n.safetensors (f32, sharded at 60 kB),
                expected.safetensors, expected.json

Tests read these files; they never run Python.

    tools/.venv/bin/python tools/make_model_fixtures.py

Everything runs on the CPU, one thread, f32 compute, attn_implementation="eager".
The output is deterministic (same bytes on every run; the metadata keys of the
safetensors files this script writes itself are sorted; transformers' and PEFT's own
files carry only {"format": "pt"}).

----------------------------------------------------------------------------------
Weights
----------------------------------------------------------------------------------
Each model is built from its config with transformers, then EVERY parameter is
overwritten from a seeded generator, in sorted parameter-name order: matrices and
embeddings randn * 0.05, RMSNorm weights 1 + 0.1 * randn (not all ones, so a test
notices a missing norm scale), biases (Qwen2's q/k/v) randn * 0.05 (transformers
would init them to zero).  Qwen2's lm_head is tied to the embedding (one parameter).
qwen2 is cast to bf16 before saving (config "dtype": "bfloat16", bf16 tensors on
disk); its reference runs in f32 on the widened bf16 values (loaded with
dtype=torch.float32).  transformers 4.57 writes "dtype" in config.json, not the older
"torch_dtype".

----------------------------------------------------------------------------------
Inputs and conventions
----------------------------------------------------------------------------------
input_ids [2, 7]: row 0 seven tokens, row 1 five tokens then two pad tokens (id 0)
on the right; attention_mask 1/0 accordingly; labels = input_ids with -100 at the pad
positions.  Tokens are drawn from 3..255 (never 0/1/2: pad, Llama bos, Llama eos).
- position ids are 0..6 for both rows (transformers derives them from the cache
  position, not from the mask; right padding makes that the same thing).
- eager attention: causal mask AND key padding mask; a padded query row attends to
  the real keys before it, so logits at pad positions are finite and well defined
  (they are stored; a test may compare only the real positions).
- loss (transformers ForCausalLMLoss): logits in f32, labels shifted left by one
  (position t predicts labels[t+1], the last position predicts -100), cross entropy
  with ignore_index -100, MEAN over the counted targets: 6 in row 0 + 4 in row 1 = 10.
- LoRA (PEFT LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8,
  target_modules="all-linear", lora_dropout=0.0)): every nn.Linear of the decoder
  layers (q/k/v/o, gate/up/down), not lm_head; scaling 8/4 = 2.  After creation every
  lora_A and lora_B is overwritten with randn * 0.05 (sorted key order, one seeded
  generator), so B is non-zero.  Keys in expected.safetensors are PEFT's save keys
  (get_peft_model_state_dict: the adapter name "default" dropped), e.g.
  base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight [4, 64]; the
  gradient of each is grad.<key>.  The LoRA forward runs in train mode (dropout 0,
  attention_dropout 0, so the same arithmetic as eval), with labels, then backward.
- hidden.embed / hidden.layer.<i> / hidden.norm: outputs of embed_tokens, of each
  decoder layer (the residual stream) and of the final norm, base model, eval mode.
- rope.inv_freq: the model's rotary inverse frequencies after rope scaling.  For llama
  (llama3 scaling, original_max_position_embeddings 16: wavelength bands 4 and 16,
  head_dim 16, theta 500000) pair 0 (wavelength 2*pi) is in the smoothed band and
  pairs 1..7 are divided by the factor 8; no pair is in the unchanged band (that
  needs a wavelength < 4, and 2*pi is the shortest).

llama only:
- NF4: from_pretrained(llama, quantization_config=BitsAndBytesConfig(load_in_4bit,
  nf4, double quant, compute dtype f32), device_map="cpu") quantizes on the CPU with
  transformers 4.57.6 + bitsandbytes 0.50.2 (no GPU needed; bitsandbytes' pure-PyTorch
  quantizer, see make_quant_fixtures.py).  Every Linear4bit except lm_head (kept
  f32, as transformers always does).  nf4.logits / nf4.loss: eval forward;
  nf4.lora.*, nf4.grad.<key>: the same LoRA (same A/B values) on the NF4 base, train
  mode, backward.
  bitsandbytes 0.50.2's Linear4bit.forward, on a CPU with AVX512-BF16, in eval mode
  and without grad, REPACKS the weight in place for its AVX512 kernel and converts
  absmax to bf16 (functional._convert_weight_packed_for_cpu; save_pretrained converts
  back and re-quantizes the bf16 absmax).  The script switches that off
  (support_avx512bf16_for_cpu = False on every Linear4bit) so the reference is the
  plain path on every machine: W = dequantize_4bit(packed, state) (f32) then x @ W^T.
  Measured: bitsandbytes' CPU quantization of these 14 weights gives the same 4-bit
  codes as the CUDA kernels' rule (the numpy model in make_quant_fixtures.py; 0 of
  73,728 differ), and 1 of 1,152 nested 8-bit absmax codes differs
  (model.layers.1.self_attn.k_proj, absmax block 3: CPU lookup table 71, CUDA rule
  72); with the CUDA-rule code the logits move by 4.4e-6 at most.  The CPU offset
  (torch f32 mean of absmax) is 1 ulp from the f64 mean in 3 of the 14 weights.
  expected.json nf4.cuda_rule_diffs records the counts; a quantizer that follows the
  CUDA rule reproduces nf4.* to about 1e-5, the stored checkpoint llama_bnb4 exactly.
- llama_bnb4/: save_pretrained of that quantized model (before PEFT touches it);
  reloading it reproduces nf4.logits exactly (checked).  Per quantized Linear P:
  P.weight u8 [N*K/2, 1], P.weight.absmax u8 [N*K/64] (nested), P.weight.quant_map
  f32[16], P.weight.nested_absmax f32 [ceil(blocks/256)], P.weight.nested_quant_map
  f32[256], P.weight.quant_state.bitsandbytes__nf4 u8 [n] = the bytes of a JSON like
  {"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [64, 64],
  "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.13...}
  ("dtype" is the dtype the model was loaded in; float32 here).
  bnb4.dequant.model.layers.0.self_attn.q_proj and ...layers.1.mlp.down_proj:
  dequantize_4bit of those weights, f32 [out, in].
- prompt tuning: PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3,
  prompt_tuning_init="RANDOM"), prompt_embeddings overwritten with randn * 0.5
  (prompt.embeddings [3, 64]).  PEFT prepends the 3 prompt vectors to the token
  embeddings, ones to the attention mask and -100 to the labels; positions are 0..9.
  prompt.logits [2, 10, 256] include the 3 virtual positions.  The shift makes the
  LAST virtual position predict the first real token, so the loss counts 7 + 5 = 12
  targets.  prompt.grad = d loss / d prompt embeddings [3, 64] (train mode).
- greedy generation: generate(input_ids = row 0's first 4 tokens, attention mask of
  ones, max_new_tokens=8, do_sample=False) with the saved generation_config (eos 2);
  generate.output_ids [1, 4 + new] includes the prompt.  Checked against a manual
  greedy loop of full forwards without cache.
----------------------------------------------------------------------------------
"""

import json
import os
import platform
import shutil
import struct
import sys
import warnings

import numpy as np
import torch

import bitsandbytes
import bitsandbytes as bnb
import bitsandbytes.functional as BF
import peft
import safetensors
import tokenizers
import transformers
from peft import LoraConfig, PromptTuningConfig, get_peft_model, get_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_safetensors  # noqa: E402
sys.dont_write_bytecode = True                      # no tools/__pycache__ from the next import
import make_quant_fixtures as mq                     # noqa: E402 (tools/: the CUDA-rule model of the quantizer)
from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM,
                          MistralConfig, MistralForCausalLM, Qwen2Config, Qwen2ForCausalLM)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "models")
WRITER = "tools/make_model_fixtures.py"
SEED = 20261130
ATTN = "eager"
T = 7
PAD = 0
N_REAL = (7, 5)
LORA = dict(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0)
LORA_STD = 0.05
PROMPT_TOKENS = 3
PROMPT_STD = 0.5
GEN_PROMPT = 4
GEN_NEW = 8
SHARD = "60KB"
DEQUANT = ("model.layers.0.self_attn.q_proj", "model.layers.1.mlp.down_proj")

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
transformers.logging.disable_progress_bar()


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "bitsandbytes": bitsandbytes.__version__, "safetensors": safetensors.__version__,
            "tokenizers": tokenizers.__version__, "numpy": np.__version__, "python": platform.python_version()}




def gen(seed):
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------

def configs():
    common = dict(vocab_size=256, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  max_position_embeddings=64, initializer_range=LORA_STD)
    return {
        "llama": dict(
            cls=LlamaForCausalLM, dtype=torch.float32, shard=None, seed=SEED + 1,
            config=LlamaConfig(**common, intermediate_size=128, num_key_value_heads=2, rms_norm_eps=1e-5,
                               rope_theta=500000.0,
                               rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                             "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
                               tie_word_embeddings=False, hidden_act="silu")),
        "qwen2": dict(
            cls=Qwen2ForCausalLM, dtype=torch.bfloat16, shard=None, seed=SEED + 2,
            config=Qwen2Config(**common, intermediate_size=96, num_key_value_heads=1, tie_word_embeddings=True,
                               rope_theta=10000.0, rms_norm_eps=1e-6)),
        "mistral": dict(
            cls=MistralForCausalLM, dtype=torch.float32, shard=SHARD, seed=SEED + 3,
            config=MistralConfig(**common, intermediate_size=128, num_key_value_heads=2, sliding_window=None,
                                 rope_theta=10000.0, head_dim=16)),
    }


def build(spec):
    """The model with every parameter drawn from one seeded generator (see the header)."""
    torch.manual_seed(spec["seed"])
    model = spec["cls"](spec["config"])
    g = gen(spec["seed"] + 100)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            r = torch.randn(p.shape, generator=g)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * r)
            else:
                p.copy_(LORA_STD * r)
    if spec["config"].tie_word_embeddings:
        assert model.lm_head.weight is model.model.embed_tokens.weight
    return model.to(spec["dtype"])


def load(path, **kw):
    m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=ATTN, **kw)
    m.eval()
    return m


def normalise_dir(path):
    """File modes 0644 (safetensors writes 0600)."""
    for dirpath, _, files in os.walk(path):
        for fn in files:
            os.chmod(os.path.join(dirpath, fn), 0o644)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def inputs():
    g = gen(SEED)
    ids = torch.randint(3, 256, (2, T), generator=g)
    mask = torch.zeros(2, T, dtype=torch.long)
    for r, n in enumerate(N_REAL):
        mask[r, :n] = 1
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, PAD))
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    return ids, mask, labels


def manual_loss(logits, labels):
    """Shift, ignore -100, mean: what ForCausalLMLoss does (checked against model.loss)."""
    lg = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    lb = labels[:, 1:].reshape(-1)
    keep = lb != -100
    return torch.nn.functional.cross_entropy(lg[keep], lb[keep], reduction="mean"), int(keep.sum())


# ---------------------------------------------------------------------------
# Passes
# ---------------------------------------------------------------------------

def base_pass(model, ids, mask, labels):
    t = {}
    caught = {}
    hooks = [model.model.embed_tokens.register_forward_hook(lambda m, i, o: caught.__setitem__("embed", o)),
             model.model.norm.register_forward_hook(lambda m, i, o: caught.__setitem__("norm", o))]
    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(
            lambda m, inp, o, i=i: caught.__setitem__(f"layer.{i}", o[0] if isinstance(o, tuple) else o)))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
    for h in hooks:
        h.remove()
    ref, n = manual_loss(out.logits, labels)
    assert torch.allclose(ref, out.loss, rtol=0, atol=1e-6), (ref, out.loss)
    t["logits"] = out.logits.float().clone()
    t["loss"] = out.loss.reshape(1).float().clone()
    for k, v in caught.items():
        t[f"hidden.{k}"] = v.detach().float().clone()
    t["rope.inv_freq"] = model.model.rotary_emb.inv_freq.float().clone()
    return t, n


def lora_values(pm):
    """Overwrite every lora_A / lora_B with seeded randn * LORA_STD; returns {save key: tensor}."""
    params = {}
    for name, p in pm.named_parameters():
        if ".lora_A." in name or ".lora_B." in name:
            params[name.replace(".default.", ".")] = p
    keys = sorted(params)
    assert keys == sorted(get_peft_model_state_dict(pm).keys())
    g = gen(SEED + 1000)
    vals = {}
    with torch.no_grad():
        for k in keys:
            v = LORA_STD * torch.randn(params[k].shape, generator=g)
            params[k].copy_(v)
            vals[k] = v.clone()
    return vals


def set_lora(pm, vals):
    params = {name.replace(".default.", "."): p for name, p in pm.named_parameters()
              if ".lora_A." in name or ".lora_B." in name}
    assert sorted(params) == sorted(vals)
    with torch.no_grad():
        for k, v in vals.items():
            params[k].copy_(v)
    return params


def lora_pass(pm, params, ids, mask, labels, prefix, grad_prefix):
    trainable = sorted(n for n, p in pm.named_parameters() if p.requires_grad)
    assert len(trainable) == len(params), (len(trainable), len(params))
    pm.train()
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    ref, _ = manual_loss(out.logits.detach(), labels)
    assert torch.allclose(ref, out.loss.detach(), rtol=0, atol=1e-6)
    t = {f"{prefix}.logits": out.logits.detach().float().clone(),
         f"{prefix}.loss": out.loss.detach().reshape(1).float().clone()}
    for k, p in params.items():
        t[f"{grad_prefix}.{k}"] = p.grad.detach().clone()
    return t


def no_avx512_repack(model):
    n = 0
    for m in model.modules():
        if isinstance(m, bnb.nn.Linear4bit):
            m.support_avx512bf16_for_cpu = False
            n += 1
    return n


def greedy_manual(model, prompt, new, eos):
    seq = prompt.clone()
    with torch.no_grad():
        for _ in range(new):
            nxt = model(input_ids=seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], 1)
            if int(nxt) == eos:
                break
    return seq


# ---------------------------------------------------------------------------
# Per model
# ---------------------------------------------------------------------------

def shape_of(t):
    return list(t.shape)


def make(name, spec, ids, mask, labels):
    d = os.path.join(OUT, name)
    os.makedirs(d)
    model = build(spec)
    kw = {"safe_serialization": True}
    if spec["shard"]:
        kw["max_shard_size"] = spec["shard"]
    model.save_pretrained(d, **kw)
    del model
    cfg = json.load(open(os.path.join(d, "config.json")))

    tensors = {"input_ids": ids.int(), "attention_mask": mask.int(), "labels": labels.int()}
    doc_extra = {}

    # base forward
    m = load(d)
    t, n_targets = base_pass(m, ids, mask, labels)
    tensors.update(t)

    # LoRA on the dense base
    pm = get_peft_model(m, LoraConfig(**LORA))
    lora_vals = lora_values(pm)
    params = set_lora(pm, lora_vals)
    layer = pm.base_model.model.model.layers[0].self_attn.q_proj
    scaling = float(layer.scaling["default"])
    target_modules = sorted(pm.peft_config["default"].target_modules)
    tensors.update(lora_vals)
    tensors.update(lora_pass(pm, params, ids, mask, labels, "lora", "grad"))
    if name == "llama":
        pc = pm.peft_config["default"]
        pc.base_model_name_or_path = "tests/fixtures/models/llama"
        pc.target_modules = sorted(pc.target_modules)     # a set: its order would vary run to run
        ad = os.path.join(d, "adapter")
        pm.save_pretrained(ad)
        if os.path.exists(os.path.join(ad, "README.md")):
            os.remove(os.path.join(ad, "README.md"))
        acfg = json.load(open(os.path.join(ad, "adapter_config.json")))
        assert acfg["target_modules"] == target_modules
        saved = load_file(os.path.join(ad, "adapter_model.safetensors"))
        assert sorted(saved) == sorted(lora_vals)
        for k, v in lora_vals.items():
            assert torch.equal(saved[k], v), k
    del pm, m

    if name == "llama":
        doc_extra.update(llama_extras(d, ids, mask, labels, lora_vals, tensors))

    # write
    meta = {"versions": json.dumps(versions()), "writer": WRITER, "attn_implementation": ATTN}
    if name == "llama":
        meta["quantized_on"] = "cpu"
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    st = os.path.join(d, "expected.safetensors")
    save_safetensors(tensors, st, meta)
    back = load_file(st)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(back[k], v), k

    c = spec["config"]
    files = sorted(f for f in os.listdir(d) if f.startswith("model") and f.endswith(".safetensors"))
    doc = {
        "writer": WRITER, "versions": versions(), "model": name, "model_type": cfg["model_type"],
        "architecture": cfg["architectures"][0],
        "checkpoint": {"files": files, "sharded": bool(spec["shard"]),
                       "index": "model.safetensors.index.json" if spec["shard"] else None,
                       "max_shard_size": spec["shard"], "dtype_on_disk": str(spec["dtype"]).replace("torch.", ""),
                       "tied_embeddings": bool(c.tie_word_embeddings),
                       "lm_head_in_file": not c.tie_word_embeddings},
        "config": {k: cfg.get(k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                                           "num_attention_heads", "num_key_value_heads", "head_dim",
                                           "rms_norm_eps", "rope_theta", "rope_scaling",
                                           "max_position_embeddings", "tie_word_embeddings", "hidden_act",
                                           "attention_bias", "sliding_window", "dtype")},
        "head_dim": c.hidden_size // c.num_attention_heads if getattr(c, "head_dim", None) is None else c.head_dim,
        "attn_implementation": ATTN, "compute_dtype": "float32",
        "weights_init": "every parameter, sorted by name, from torch.Generator seed %d: matrices/embeddings "
                        "randn*0.05, *norm.weight 1+0.1*randn, biases randn*0.05" % (spec["seed"] + 100),
        "inputs": {"pad_token_id": PAD, "padding_side": "right", "real_tokens_per_row": list(N_REAL),
                   "input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels.tolist(),
                   "position_ids": "0..6 for both rows"},
        "loss": {"value": float(tensors["loss"][0]), "lora": float(tensors["lora.loss"][0]),
                 "rule": "labels shifted left by one (position t predicts labels[t+1]), cross entropy in f32, "
                         "ignore_index -100, mean over counted targets",
                 "n_targets": n_targets},
        "logits_at_pad_positions": "stored; pad queries attend to the real keys before them (key padding mask)",
        "hidden": "hidden.embed = embed_tokens output, hidden.layer.<i> = decoder layer i output (residual "
                  "stream), hidden.norm = final norm output; base model, eval",
        "lora": {"r": LORA["r"], "lora_alpha": LORA["lora_alpha"], "scaling": scaling,
                 "lora_dropout": LORA["lora_dropout"], "target_modules": target_modules,
                 "values": "randn*%g from torch.Generator seed %d, keys in sorted order" % (LORA_STD, SEED + 1000),
                 "mode": "train (dropout 0), forward with labels, loss.backward()",
                 "keys": {k: shape_of(v) for k, v in sorted(lora_vals.items())},
                 "tensors": "each key holds the value; grad.<key> its gradient; lora.logits, lora.loss"},
    }
    if name == "llama":
        doc["adapter_dir"] = "adapter"
    doc.update(doc_extra)
    doc["tensors"] = {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": shape_of(v)}
                      for k, v in sorted(tensors.items())}
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    normalise_dir(d)
    return tensors, doc


def llama_extras(d, ids, mask, labels, lora_vals, tensors):
    doc = {}
    bnb_cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                 bnb_4bit_compute_dtype=torch.float32)
    # (a) NF4 base, quantized by transformers + bitsandbytes on the CPU
    q = load(d, quantization_config=bnb_cfg, device_map="cpu")
    n4 = no_avx512_repack(q)
    assert type(q.lm_head) is torch.nn.Linear
    with torch.no_grad():
        out = q(input_ids=ids, attention_mask=mask, labels=labels)
    tensors["nf4.logits"] = out.logits.float().clone()
    tensors["nf4.loss"] = out.loss.reshape(1).float().clone()
    # (b) the bnb-4bit checkpoint and two dequantized weights
    qd = os.path.join(OUT, "llama_bnb4")
    q.save_pretrained(qd, safe_serialization=True)
    normalise_dir(qd)
    mods = dict(q.named_modules())
    for mn in DEQUANT:
        w = mods[mn].weight
        assert w.quant_state.dtype == torch.float32 and w.quant_state.nested
        tensors[f"bnb4.dequant.{mn}"] = BF.dequantize_4bit(w.data, w.quant_state).float().clone()
    qs_json = {}
    with safe_open(os.path.join(qd, "model.safetensors"), "pt") as f:
        for k in f.keys():
            if k.endswith(".quant_state.bitsandbytes__nf4"):
                qs_json[k] = json.loads(bytes(f.get_tensor(k).tolist()).decode())
        for mn in DEQUANT:     # the checkpoint holds exactly the in-memory quantized bytes
            assert torch.equal(f.get_tensor(mn + ".weight"), mods[mn].weight.data)
    cuda_rule = cuda_rule_diffs(d, q)
    q2 = load(qd, device_map="cpu")
    no_avx512_repack(q2)
    with torch.no_grad():
        re = q2(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(re, tensors["nf4.logits"]), "reloaded llama_bnb4 differs"
    del q2
    # LoRA on the NF4 base, same A/B
    pm = get_peft_model(q, LoraConfig(**LORA))
    assert type(pm.base_model.model.model.layers[0].self_attn.q_proj).__name__ == "Linear4bit"
    params = set_lora(pm, lora_vals)
    tensors.update(lora_pass(pm, params, ids, mask, labels, "nf4.lora", "nf4.grad"))
    del pm, q
    first = sorted(qs_json)[0]
    doc["nf4"] = {
        "how": "AutoModelForCausalLM.from_pretrained(llama, quantization_config=BitsAndBytesConfig(load_in_4bit=True, "
               "bnb_4bit_quant_type='nf4', bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=float32), "
               "dtype=float32, device_map='cpu'): quantized on the CPU by bitsandbytes",
        "linear4bit_modules": n4, "lm_head": "not quantized (f32)",
        "avx512_repack": "disabled (support_avx512bf16_for_cpu=False): plain dequantize_4bit + matmul path",
        "loss": float(tensors["nf4.loss"][0]), "lora_loss": float(tensors["nf4.lora.loss"][0]),
        "tensors": "nf4.logits, nf4.loss (eval); nf4.lora.logits, nf4.lora.loss, nf4.grad.<key> (LoRA, train)",
        "checkpoint_dir": "../llama_bnb4",
        "reload_matches": True,
        "dequant": {f"bnb4.dequant.{mn}": "dequantize_4bit of " + mn + ".weight, f32 [out, in]" for mn in DEQUANT},
        "quant_state_example": {first: qs_json[first]},
        "cuda_rule_diffs": cuda_rule,
    }

    # (c) prompt tuning on the dense base
    m = load(d)
    pm = get_peft_model(m, PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=PROMPT_TOKENS,
                                              prompt_tuning_init="RANDOM"))
    emb = pm.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        emb.copy_(PROMPT_STD * torch.randn(emb.shape, generator=gen(SEED + 2000)))
    tensors["prompt.embeddings"] = emb.detach().clone()
    assert [n for n, p in pm.named_parameters() if p.requires_grad] == ["prompt_encoder.default.embedding.weight"]
    pm.train()
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    full_labels = torch.cat([torch.full((2, PROMPT_TOKENS), -100), labels], 1)
    ref, n_prompt = manual_loss(out.logits.detach(), full_labels)
    assert torch.allclose(ref, out.loss.detach(), rtol=0, atol=1e-6)
    # the same forward by hand: prompts prepended to the embeddings, mask of ones prepended
    with torch.no_grad():
        x = torch.cat([emb.unsqueeze(0).expand(2, -1, -1), m.model.embed_tokens(ids)], 1)
        mk = torch.cat([torch.ones(2, PROMPT_TOKENS, dtype=torch.long), mask], 1)
        by_hand = m(inputs_embeds=x, attention_mask=mk).logits
    prompt_err = float((by_hand - out.logits.detach()).abs().max())
    assert prompt_err < 1e-5, prompt_err
    tensors["prompt.logits"] = out.logits.detach().float().clone()
    tensors["prompt.loss"] = out.loss.detach().reshape(1).float().clone()
    tensors["prompt.grad"] = emb.grad.detach().clone()
    doc["prompt_tuning"] = {
        "config": {"task_type": "CAUSAL_LM", "num_virtual_tokens": PROMPT_TOKENS, "prompt_tuning_init": "RANDOM"},
        "embeddings": "prompt.embeddings = randn*%g from torch.Generator seed %d" % (PROMPT_STD, SEED + 2000),
        "rule": "inputs_embeds = cat(prompt, embed(input_ids)); attention_mask = cat(ones, mask); labels = "
                "cat(-100 x 3, labels); position ids 0..9; the last virtual position predicts the first token",
        "loss": float(tensors["prompt.loss"][0]), "n_targets": n_prompt, "mode": "train (no dropout)",
        "max_abs_diff_vs_by_hand_forward": prompt_err,
    }
    del pm, m

    # (d) greedy generation on the dense base
    m = load(d)
    prompt = ids[0:1, :GEN_PROMPT]
    with torch.no_grad():
        outg = m.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=GEN_NEW,
                          do_sample=False)
    eos = m.generation_config.eos_token_id
    manual = greedy_manual(m, prompt, GEN_NEW, eos)
    assert torch.equal(outg, manual), (outg, manual)
    tensors["generate.input_ids"] = prompt.int().clone()
    tensors["generate.output_ids"] = outg.int().clone()
    doc["generate"] = {"call": "generate(input_ids, attention_mask=ones, max_new_tokens=%d, do_sample=False)" % GEN_NEW,
                       "eos_token_id": eos, "output_includes_prompt": True,
                       "new_tokens": outg[0, GEN_PROMPT:].tolist(),
                       "stopped_at_eos": bool(eos in outg[0, GEN_PROMPT:].tolist()),
                       "matches_manual_greedy_without_cache": True}
    return doc


def cuda_rule_diffs(d, q):
    """How many codes the bitsandbytes CPU quantization of these weights differs in from the CUDA
    kernels' rule (numpy model in make_quant_fixtures.py): 4-bit codes, and the nested 8-bit absmax
    codes given the CPU's offset."""
    dense = load_file(os.path.join(d, "model.safetensors"))
    n4 = n8 = tot4 = tot8 = 0
    per = {}
    for mn, mod in q.named_modules():
        if not isinstance(mod, bnb.nn.Linear4bit):
            continue
        w = dense[mn + ".weight"].numpy().reshape(-1)
        qs = mod.weight.quant_state
        cpu = mq.unpack(mod.weight.data.numpy(), w.size)
        cuda, absmax = mq.cuda_quantize_4bit(w, qs.blocksize, "nf4")
        c4 = int((cpu != cuda).sum())
        q8, _ = mq.cuda_quantize_blockwise(absmax - qs.offset.numpy(), qs.state2.code.numpy(), qs.state2.blocksize)
        c8 = int((qs.absmax.numpy().reshape(-1) != q8).sum())
        n4, n8, tot4, tot8 = n4 + c4, n8 + c8, tot4 + w.size, tot8 + q8.size
        if c4 or c8:
            per[mn] = [c4, c8]
    return {"nf4_codes_differing": n4, "nf4_codes_total": tot4, "nested_codes_differing": n8,
            "nested_codes_total": tot8, "modules_with_diffs_[4bit,nested]": per}


def main():
    torch.set_num_threads(1)
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    ids, mask, labels = inputs()
    for name, spec in configs().items():
        tensors, doc = make(name, spec, ids, mask, labels)
        print(f"{name}: loss {doc['loss']['value']:.6f}, lora loss {doc['loss']['lora']:.6f}, "
              f"{len(doc['lora']['keys'])} LoRA tensors, {len(tensors)} tensors")
        if name == "llama":
            print(f"  nf4 loss {doc['nf4']['loss']:.6f}, nf4 lora loss {doc['nf4']['lora_loss']:.6f}, "
                  f"prompt loss {doc['prompt_tuning']['loss']:.6f} ({doc['prompt_tuning']['n_targets']} targets), "
                  f"generate new tokens {doc['generate']['new_tokens']}")
    total = 0
    for dirpath, _, files in sorted(os.walk(OUT)):
        for fn in sorted(files):
            p = os.path.join(dirpath, fn)
            total += os.path.getsize(p)
            print(f"  {os.path.relpath(p, OUT)}: {os.path.getsize(p)} bytes")
    print(f"total {total} bytes")
    print("versions:", json.dumps(versions()))


if __name__ == "__main__":
    sys.exit(main())
