#!/usr/bin/env python3
"""make_arch_fixtures.py - tiny models of the newer architectures, for sft.h's tests.

Writes tests/fixtures/archs/<name>/ for each architecture below: the model as
transformers' save_pretrained writes it (config.json, model.safetensors,
generation_config.json), a PEFT LoRA adapter saved by PEFT (adapter/), and
expected.safetensors + expected.json with what transformers, PEFT and
bitsandbytes compute on it:

  logits, loss                 eager attention, f32, the right-padded batch of
                               make_model_fixtures.py (the same input_ids,
                               attention_mask and -100 labels)
  long.input_ids, long.logits  one unpadded row of 24 seeded ids: far past
                               every sliding window, and past phi3's original
                               length (longrope's long factors)
  <peft key>, lora.logits,     a LoRA (r 4, alpha 8, all-linear, every A and B
  lora.loss, grad.<peft key>   set to seeded values) in train mode: logits, loss
                               and every gradient of A and B after backward
  nf4.logits, nf4.loss,        the same model loaded with BitsAndBytesConfig
  nf4.lora.logits, ...         (NF4, compute f32) on the CPU, and the same LoRA
                               on it. Without double quantization: bitsandbytes'
                               CPU path codes some blocks' nested absmax apart
                               from its CUDA kernels (make_model_fixtures.py counts
                               them for the llama fixture, whose test covers
                               double quantization)

Every layer's input width is a multiple of the 4-bit blocksize (64): where it
is not (an intermediate size of 96), bitsandbytes 0.50's CPU quantize_4bit
codes the down projection differently from its CUDA kernels (an error three
times the NF4 step: 0.079 against 0.024 for this script's weights), and the
CUDA rule is what users' checkpoints hold and what sft.h writes.

trl.json records a short TRL SFTTrainer run on the model: the 18
pre-tokenized rows of make_trainer_fixtures.py's trl_loop, LoRA (r 4, alpha
8, all-linear) starting from the values above, batch 4 x accumulation 2,
AdamW lr 1e-3 with 2 linear warmup steps, 6 steps, the sequential sampler;
per step the loss (unrounded, the window's sum of micro-batch losses) and
grad_norm. TRL 1.16's SFTTrainer scores with its fused LM head, which finds the
decoder as model.base_model (base_model_prefix); transformers 4.57.6's
Gemma3ForCausalLM names "language_model", which it does not have, so
base_model is the whole causal LM and TRL fails ('CausalLMOutputWithPast' object has no attribute
'last_hidden_state'): for that run the script sets the instance's prefix to
"model", the Gemma3TextModel inside, which is what TRL means to call.

The model weights are drawn as make_model_fixtures.py draws them (every
parameter from one seeded generator; norms 1 + 0.1 randn), so the recipe is
the one the older fixtures document; this script imports its helpers. Gemma's
norms multiply by 1 + weight, so their weights are drawn 1 + 0.1 randn and
then lowered by 1: the same scale 1 + 0.1 randn as the other models'. (Left
at 2 + 0.1 randn, Gemma 3's q/k norms double q and k and sharpen the scores
so much that transformers' own f32 gradients are 1.7e-5 of the largest from
its float64 ones; with scales near 1 they are 2.3e-6.)

    tools/.venv/bin/python tools/make_arch_fixtures.py [name ...]

(with names, only those models' folders are rewritten)

The architectures and what each adds to the Llama block:
  qwen3    Qwen3ForCausalLM: q_norm / k_norm, an RMSNorm over each head of q and
           k before RoPE (weights [head_dim]); head_dim 32 > hidden / heads
  smollm3  SmolLM3ForCausalLM: no_rope_layers, a layer with 0 applies no RoPE
           (3 layers, the middle one without); attention and MLP biases on
  gemma2   Gemma2ForCausalLM: (1 + w) RMSNorms before and after attention and
           the MLP, GeGLU (gelu_pytorch_tanh), embeddings times sqrt(hidden),
           attention scale query_pre_attn_scalar^-1/2 (24, not head_dim 32),
           layers 0 and 2 sliding with a window of 4 (the batch has 7 tokens,
           TRL's rows up to 21), soft caps small enough to bend these weights'
           scores and logits (attention 0.3, output 0.6; Gemma 2 ships 50 and
           30), tied embeddings as Gemma ships them
  gemma3   Gemma3ForCausalLM (text): Gemma 2's block without the attention
           soft cap, q_norm / k_norm with (1 + w), the embedding itself scaled
           by sqrt(hidden), six layers in Gemma 3's default 5:1 pattern (five
           sliding with a window of 3, the last global), the sliding layers
           rotating with rope_local_base_freq 1e4 unscaled and the global one
           with rope_theta 1e6 and linear scaling 8 (as Gemma 3 4B+ ship);
           2 heads on 1 key/value head of 32, intermediate 64 (small: six layers)
  phi3     Phi3ForCausalLM (Phi-3, Phi-4-mini): fused qkv_proj and gate_up_proj
           (PEFT's targets by those names), partial_rotary_factor 0.5 (16 of 32
           head dims turn, as Phi-4-mini turns 96 of 128), longrope with 8 short
           and 8 long factors, original_max_position_embeddings 16 of 64 (the
           batch's 7 positions use the short factors; TRL's batches, up to 21
           long, the long ones; attention factor sqrt(1 + ln 4 / ln 16)), a
           sliding window of 5 on every layer
"""

import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_model_fixtures as mmf  # noqa: E402  (the shared recipe: weights, inputs, passes)

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from transformers import (BitsAndBytesConfig, Gemma2Config, Gemma2ForCausalLM, Gemma3ForCausalLM,  # noqa: E402
                          Gemma3TextConfig, Phi3Config, Phi3ForCausalLM, Qwen3Config, Qwen3ForCausalLM, SmolLM3Config,
                          SmolLM3ForCausalLM)

from fixture_io import save_safetensors  # noqa: E402

OUT = os.path.join(mmf.ROOT, "tests", "fixtures", "archs")
LONG_T = 24     # long.logits: one row past every window and phi3's original length (16)
WRITER = "tools/make_arch_fixtures.py"


def configs():
    common = dict(vocab_size=256, hidden_size=64, num_attention_heads=4, max_position_embeddings=64,
                  initializer_range=mmf.LORA_STD, tie_word_embeddings=False)
    return {
        "qwen3": dict(
            cls=Qwen3ForCausalLM, dtype=torch.float32, shard=None, seed=mmf.SEED + 11,
            config=Qwen3Config(**common, num_hidden_layers=2, intermediate_size=128, num_key_value_heads=2, head_dim=32,
                               rope_theta=1000000.0, rms_norm_eps=1e-6)),
        "smollm3": dict(
            cls=SmolLM3ForCausalLM, dtype=torch.float32, shard=None, seed=mmf.SEED + 12,
            config=SmolLM3Config(**common, num_hidden_layers=3, intermediate_size=128, num_key_value_heads=2,
                                 no_rope_layers=[1, 0, 1], attention_bias=True, mlp_bias=True, rope_theta=5000000.0,
                                 rms_norm_eps=1e-6, pad_token_id=None)),
        "gemma2": dict(
            cls=Gemma2ForCausalLM, dtype=torch.float32, shard=None, seed=mmf.SEED + 13, norms_as_offsets=True,
            config=Gemma2Config(**dict(common, tie_word_embeddings=True), num_hidden_layers=3, intermediate_size=128,
                                num_key_value_heads=2, head_dim=32, query_pre_attn_scalar=24, sliding_window=4,
                                attn_logit_softcapping=0.3, final_logit_softcapping=0.6, rope_theta=10000.0,
                                rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh")),
        "gemma3": dict(
            cls=Gemma3ForCausalLM, dtype=torch.float32, shard=None, seed=mmf.SEED + 14, norms_as_offsets=True,
            config=Gemma3TextConfig(**dict(common, tie_word_embeddings=True, num_attention_heads=2), num_hidden_layers=6,
                                    intermediate_size=64, num_key_value_heads=1, head_dim=32, query_pre_attn_scalar=48,
                                    sliding_window=3, rope_theta=1000000.0, rope_local_base_freq=10000.0,
                                    rope_scaling={"rope_type": "linear", "factor": 8.0}, rms_norm_eps=1e-6,
                                    hidden_activation="gelu_pytorch_tanh")),
        "phi3": dict(
            cls=Phi3ForCausalLM, dtype=torch.float32, shard=None, seed=mmf.SEED + 15,
            config=Phi3Config(**dict(common, num_attention_heads=2), num_hidden_layers=2, intermediate_size=128,
                              num_key_value_heads=1, partial_rotary_factor=0.5, rope_theta=10000.0,
                              original_max_position_embeddings=16, sliding_window=5, rms_norm_eps=1e-5,
                              rope_scaling={"type": "longrope", "short_factor": [1.0 + 0.1 * i for i in range(8)],
                                            "long_factor": [1.5 + 0.7 * i for i in range(8)]},
                              pad_token_id=0, bos_token_id=1, eos_token_id=2)),
    }


def trl_run(d, lora_vals, steps=6):
    """TRL's SFTTrainer on the model, as make_trainer_fixtures.py's trl_loop (see the header)"""
    import tempfile
    import datasets
    import transformers
    from torch.utils.data import SequentialSampler
    from trl import SFTConfig, SFTTrainer
    import make_trainer_fixtures as mtf
    datasets.disable_progress_bars()
    rows = mtf.make_rows()
    ds = datasets.Dataset.from_dict({"input_ids": rows})
    model = mmf.load(d)
    if model.base_model is model:
        model.base_model_prefix = "model"     # Gemma3ForCausalLM: see the header (TRL's fused LM head)
    log = []

    class Trainer(SFTTrainer):
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)

        def _maybe_log_save_evaluate(self, tr_loss, grad_norm, *args, **kwargs):
            if self.control.should_log and self.state.global_step > self._globalstep_last_logged:
                log.append({"step": self.state.global_step, "loss_unrounded": float(tr_loss.item()),
                            "grad_norm": float(grad_norm), "learning_rate": self._get_learning_rate()})
            return super()._maybe_log_save_evaluate(tr_loss, grad_norm, *args, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        cfg = SFTConfig(output_dir=tmp, per_device_train_batch_size=4, gradient_accumulation_steps=2, learning_rate=1e-3,
                        lr_scheduler_type="linear", warmup_steps=2, max_steps=steps, logging_steps=1, seed=42, packing=False,
                        max_length=64, bf16=False, fp16=False, gradient_checkpointing=False, report_to="none", weight_decay=0.0,
                        use_cpu=True, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0)
        tr = Trainer(model=model, args=cfg, train_dataset=ds, processing_class=mtf.make_tokenizer(),
                     peft_config=LoraConfig(**mmf.LORA))
        tr.remove_callback(transformers.trainer_callback.PrinterCallback)
        mmf.set_lora(tr.model, lora_vals)
        tr.train()
    assert [e["step"] for e in log] == list(range(1, steps + 1)), log
    return {"rows": rows, "steps": log,
            "settings": "SFTConfig(per_device_train_batch_size=4, gradient_accumulation_steps=2, learning_rate=1e-3, "
                        "lr_scheduler_type='linear', warmup_steps=2, max_steps=%d, max_length=64, weight_decay=0, fp32, "
                        "SequentialSampler); LoRA r 4 alpha 8 all-linear from the fixture's values; pad id 0" % steps}


def make(name, spec, ids, mask, labels):
    d = os.path.join(OUT, name)
    os.makedirs(d)
    model = mmf.build(spec)
    if spec.get("norms_as_offsets"):          # Gemma: the norms scale by 1 + weight (see the header)
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if pname.endswith("norm.weight"):
                    p.sub_(1.0)
    model.save_pretrained(d, safe_serialization=True)
    del model
    cfg = json.load(open(os.path.join(d, "config.json")))
    tensors = {"input_ids": ids.int(), "attention_mask": mask.int(), "labels": labels.int()}

    m = mmf.load(d)
    t, n_targets = mmf.base_pass(m, ids, mask, labels)
    tensors.update({k: v for k, v in t.items() if k in ("logits", "loss")})
    long_ids = torch.randint(3, 256, (1, LONG_T), generator=mmf.gen(mmf.SEED + 77))
    with torch.no_grad():
        tensors["long.input_ids"] = long_ids.int()
        tensors["long.logits"] = m(input_ids=long_ids).logits.float().clone()

    pm = get_peft_model(m, LoraConfig(**mmf.LORA))
    lora_vals = mmf.lora_values(pm)
    params = mmf.set_lora(pm, lora_vals)
    target_modules = sorted(pm.peft_config["default"].target_modules)
    tensors.update(lora_vals)
    tensors.update(mmf.lora_pass(pm, params, ids, mask, labels, "lora", "grad"))
    pc = pm.peft_config["default"]
    pc.base_model_name_or_path = "tests/fixtures/archs/" + name
    pc.target_modules = sorted(pc.target_modules)
    ad = os.path.join(d, "adapter")
    pm.save_pretrained(ad)
    if os.path.exists(os.path.join(ad, "README.md")):
        os.remove(os.path.join(ad, "README.md"))
    saved = load_file(os.path.join(ad, "adapter_model.safetensors"))
    assert sorted(saved) == sorted(lora_vals)
    del pm, m

    bnb_cfg = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                                 bnb_4bit_compute_dtype=torch.float32)
    q = mmf.load(d, quantization_config=bnb_cfg, device_map="cpu")
    n4 = mmf.no_avx512_repack(q)
    with torch.no_grad():
        out = q(input_ids=ids, attention_mask=mask, labels=labels)
    tensors["nf4.logits"] = out.logits.float().clone()
    tensors["nf4.loss"] = out.loss.reshape(1).float().clone()
    pm = get_peft_model(q, LoraConfig(**mmf.LORA))
    params = mmf.set_lora(pm, lora_vals)
    tensors.update(mmf.lora_pass(pm, params, ids, mask, labels, "nf4.lora", "nf4.grad"))
    del pm, q

    meta = {"versions": json.dumps(mmf.versions()), "writer": WRITER, "attn_implementation": mmf.ATTN, "quantized_on": "cpu"}
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_safetensors(tensors, os.path.join(d, "expected.safetensors"), meta)
    doc = {
        "writer": WRITER, "versions": mmf.versions(), "model": name, "architecture": cfg["architectures"][0],
        "config": cfg,
        "weights_init": "every parameter, sorted by name, from torch.Generator seed %d: matrices randn*0.05, "
                        "*norm.weight 1+0.1*randn, biases randn*0.05 (make_model_fixtures.py's build)" % (spec["seed"] + 100),
        "inputs": "make_model_fixtures.py's batch: 2 rows of 7, right padding (7 and 5 real tokens), -100 labels on padding",
        "loss": {"value": float(tensors["loss"][0]), "lora": float(tensors["lora.loss"][0]), "nf4": float(tensors["nf4.loss"][0]),
                 "nf4_lora": float(tensors["nf4.lora.loss"][0]), "n_targets": n_targets},
        "lora": {"r": mmf.LORA["r"], "lora_alpha": mmf.LORA["lora_alpha"], "target_modules": target_modules,
                 "values": "randn*%g from torch.Generator seed %d, keys in sorted order" % (mmf.LORA_STD, mmf.SEED + 1000),
                 "adapter_dir": "adapter (PEFT's save_pretrained of these values)"},
        "nf4": {"how": "from_pretrained(quantization_config=BitsAndBytesConfig(nf4, no double quant, compute float32), "
                       "device_map='cpu'); avx512 repacking off", "linear4bit_modules": n4},
        "tensors": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in sorted(tensors.items())},
    }
    with open(os.path.join(d, "expected.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    trl = trl_run(d, lora_vals)
    trl.update({"writer": WRITER, "versions": mmf.versions()})
    with open(os.path.join(d, "trl.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(trl, separators=(",", ":")).replace("},{", "},\n{") + "\n")
    doc["trl_losses"] = [e["loss_unrounded"] for e in trl["steps"]]
    mmf.normalise_dir(d)
    return doc


def main(argv):
    torch.set_num_threads(1)
    specs = configs()
    names = argv or list(specs)
    unknown = [n for n in names if n not in specs]
    if unknown:
        print("unknown model(s) %s; the models are %s" % (unknown, list(specs)))
        return 2
    if not argv and os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT, exist_ok=True)
    ids, mask, labels = mmf.inputs()
    for name in names:
        spec = specs[name]
        if os.path.isdir(os.path.join(OUT, name)):
            shutil.rmtree(os.path.join(OUT, name))
        doc = make(name, spec, ids, mask, labels)
        l = doc["loss"]
        print(f"{name}: loss {l['value']:.6f}, lora {l['lora']:.6f}, nf4 {l['nf4']:.6f}, nf4 lora {l['nf4_lora']:.6f}, "
              f"{len(doc['lora']['target_modules'])} target modules, {doc['nf4']['linear4bit_modules']} Linear4bit; "
              f"TRL steps {['%.5f' % x for x in doc['trl_losses']]}")
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total} bytes")
    print("versions:", json.dumps(mmf.versions()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
