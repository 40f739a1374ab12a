#!/usr/bin/env python3
"""make_gguf_fixtures.py - reference fixtures for sft.h's GGUF reader, writer and loaders.

Writes tests/fixtures/gguf/:
  dequant.gguf + dequant.safetensors  one tensor of every type sft.h reads (F32, F16,
      BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K), 4 rows of 256 values, made of
      random blocks (scales set to finite halves), and the f32 values gguf-py's
      gguf.quants.dequantize gives for each (ggml's reference dequantization, numpy)
  tiny/ + tiny_f32.gguf + tiny_q8_0.gguf  a tiny Llama saved by transformers, and the same
      model as GGUF the way llama.cpp's convert_hf_to_gguf.py writes it (names, q/k rows
      permuted, tokenizer.ggml.* from tests/fixtures/tokenizers/smollm2's vocabulary);
      logits.safetensors: the logits transformers gives for one batch ("ids") from the folder
      and from each GGUF file (from_pretrained(..., gguf_file=...)), which checks the files too
  tok_gpt2.gguf, tok_llama.gguf, tok_qwen2.gguf + tokenizers.json  tokenizer-only GGUF files
      (gpt2 vocabulary with the llama and qwen2 architectures, a SentencePiece "llama"
      vocabulary with scores and no merges) and the ids transformers' GGUF tokenizer gives
      for the smollm2 and llama2 tokenizer fixtures' texts
  adapter/ + lora.gguf + lora_readback.json  a PEFT LoRA on the tiny model (B not zero);
      lora.gguf is what `build/sft export` wrote for it (run `make build/sft` first), read
      back here with gguf-py: names, shapes, alpha and values against PEFT's A and B

    tools/.venv/bin/python tools/make_gguf_fixtures.py      (after make build/sft)
"""
import json
import os
import subprocess
import sys

import numpy as np
import torch
import gguf
import transformers
from gguf import GGMLQuantizationType as Q

sys.path.insert(0, os.path.dirname(__file__))
from fixture_io import save_safetensors  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "gguf")
VERSIONS = {"gguf": gguf.__dict__.get("__version__", "0.19.0"), "transformers": transformers.__version__, "torch": torch.__version__}


def dequant_fixture():
    rng = np.random.default_rng(7)
    types = [Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1, Q.Q5_0, Q.Q5_1, Q.Q4_K, Q.Q5_K, Q.Q6_K]
    w = gguf.GGUFWriter(os.path.join(OUT, "dequant.gguf"), "llama")
    expected = {}
    for t in types:
        rows, cols = 4, 256
        bs, ts = gguf.GGML_QUANT_SIZES[t]
        if t == Q.F32:
            raw = rng.standard_normal((rows, cols)).astype(np.float32)
            raw[0, :4] = [0.0, -0.0, 1e-40, 3.4e38]
            data = raw.view(np.uint8)
        elif t == Q.F16:
            data = rng.standard_normal((rows, cols)).astype(np.float16).view(np.uint8)
            data.view(np.uint16)[0, :3] = [0x0001, 0x8000, 0x7bff]   # a subnormal, -0, the largest
        elif t == Q.BF16:
            data = (rng.standard_normal((rows, cols)).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16).view(np.uint8)
        else:
            data = rng.integers(0, 256, size=(rows, cols // bs * ts), dtype=np.uint8)
            blocks = data.reshape(rows, cols // bs, ts)
            halfs = lambda n: rng.uniform(0.001, 0.1, size=(rows, cols // bs, n)).astype(np.float16).view(np.uint8)  # noqa: E731
            if t in (Q.Q8_0, Q.Q4_0, Q.Q5_0):
                blocks[..., 0:2] = halfs(1)
            elif t in (Q.Q4_1, Q.Q5_1, Q.Q4_K, Q.Q5_K):
                blocks[..., 0:4] = halfs(2)
            elif t == Q.Q6_K:
                blocks[..., 208:210] = halfs(1)
        name = "t_" + t.name.lower()
        w.add_tensor(name, data, raw_shape=data.shape, raw_dtype=t)
        expected[name] = torch.from_numpy(np.ascontiguousarray(gguf.quants.dequantize(data, t).astype(np.float32)).reshape(rows, cols))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    save_safetensors(expected, os.path.join(OUT, "dequant.safetensors"), {"writer": "tools/make_gguf_fixtures.py", **VERSIONS})


def hf_permute(w, n_head):
    """convert_hf_to_gguf.py's LlamaModel.permute"""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def tokenizer_kv(w, fixture, model="gpt2"):
    tj = json.load(open(os.path.join(ROOT, "tests", "fixtures", "tokenizers", fixture, "tokenizer.json")))
    vocab = dict(tj["model"]["vocab"])
    for a in tj["added_tokens"]:
        vocab[a["content"]] = a["id"]
    tokens = [None] * (max(vocab.values()) + 1)
    for k, v in vocab.items():
        tokens[v] = k
    specials = {a["id"] for a in tj["added_tokens"] if a.get("special")}
    types = [3 if i in specials else 1 for i in range(len(tokens))]
    w.add_tokenizer_model(model)
    w.add_token_list(tokens)
    w.add_token_types(types)
    if model == "gpt2":
        w.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]])
    else:
        w.add_token_scores([float(-i) for i in range(len(tokens))])
    return tokens


def tiny_model():
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    tj = json.load(open(os.path.join(ROOT, "tests", "fixtures", "tokenizers", "smollm2", "tokenizer.json")))
    n_vocab = max(max(tj["model"]["vocab"].values()), max(a["id"] for a in tj["added_tokens"])) + 1
    cfg = LlamaConfig(vocab_size=n_vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, rope_theta=10000.0,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)
    model = LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.08)
        for n, p in model.named_parameters():
            if "norm" in n:
                p.uniform_(0.8, 1.2)
    tiny = os.path.join(OUT, "tiny")
    model.save_pretrained(tiny, safe_serialization=True)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
    sub = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
           "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
           "mlp.down_proj": "ffn_down"}
    ids = torch.tensor([[5, 77, 300, 12, 9, 410], [1, 33, 34, 35, 600, 17]])
    logits = {"ids": ids.to(torch.int32)}
    with torch.no_grad():
        logits["transformers"] = model(ids).logits
    for qt in ("f32", "q8_0"):
        path = os.path.join(OUT, f"tiny_{qt}.gguf")
        w = gguf.GGUFWriter(path, "llama")
        w.add_name("tiny")
        w.add_block_count(2)
        w.add_context_length(128)
        w.add_embedding_length(64)
        w.add_feed_forward_length(128)
        w.add_head_count(4)
        w.add_head_count_kv(2)
        w.add_rope_freq_base(10000.0)
        w.add_layer_norm_rms_eps(1e-5)
        w.add_vocab_size(n_vocab)
        w.add_rope_dimension_count(16)
        tokenizer_kv(w, "smollm2")
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_pad_token_id(2)
        w.add_add_bos_token(False)
        w.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}")
        for n, p in model.state_dict().items():
            if n == "lm_head.weight":
                continue          # tied: llama.cpp writes no output.weight
            x = p.detach().numpy().astype(np.float32)
            if n in names:
                gn = names[n]
            else:
                layer = n.split(".")[2]
                rest = ".".join(n.split(".")[3:-1])
                gn = f"blk.{layer}.{sub[rest]}.weight"
                if rest == "self_attn.q_proj":
                    x = hf_permute(x, 4)
                if rest == "self_attn.k_proj":
                    x = hf_permute(x, 2)
            if qt == "q8_0" and x.ndim == 2:
                w.add_tensor(gn, gguf.quants.quantize(x, Q.Q8_0), raw_shape=gguf.quants.quant_shape_to_byte_shape(x.shape, Q.Q8_0), raw_dtype=Q.Q8_0)
            else:
                w.add_tensor(gn, np.ascontiguousarray(x))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        g = AutoModelForCausalLM.from_pretrained(OUT, gguf_file=os.path.basename(path), torch_dtype=torch.float32).eval()
        with torch.no_grad():
            logits[f"transformers_gguf_{qt}"] = g(ids).logits
    err = float((logits["transformers"] - logits["transformers_gguf_f32"]).abs().max())
    assert err < 1e-5, err
    save_safetensors({k: v.contiguous() for k, v in logits.items()}, os.path.join(OUT, "logits.safetensors"),
                     {"writer": "tools/make_gguf_fixtures.py", **VERSIONS})
    return model


def tokenizer_files():
    from transformers import AutoTokenizer
    texts = []
    for fam in ("smollm2", "llama2"):
        texts += [c["text"] for c in json.load(open(os.path.join(ROOT, "tests", "fixtures", "tokenizers", fam, "expected.json")))["cases"]]
    out = {"writer": "tools/make_gguf_fixtures.py", "versions": VERSIONS, "files": {}}
    for name, arch, fam, model in (("tok_gpt2", "llama", "smollm2", "gpt2"), ("tok_qwen2", "qwen2", "smollm2", "gpt2"),
                                   ("tok_llama", "llama", "llama2", "llama")):
        path = os.path.join(OUT, name + ".gguf")
        w = gguf.GGUFWriter(path, arch)
        tokens = tokenizer_kv(w, fam, model)
        bos = tokens.index("<s>") if "<s>" in tokens else 1
        eos = tokens.index("</s>") if "</s>" in tokens else 2
        w.add_bos_token_id(bos)
        w.add_eos_token_id(eos)
        w.add_unk_token_id(0)
        w.add_tensor("token_embd.weight", np.zeros((len(tokens), 1), dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        tok = AutoTokenizer.from_pretrained(OUT, gguf_file=name + ".gguf")
        out["files"][name] = [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]
    json.dump(out, open(os.path.join(OUT, "tokenizers.json"), "w"), ensure_ascii=False)


def lora(model):
    from peft import LoraConfig, get_peft_model
    torch.manual_seed(1)
    pm = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                                          lora_dropout=0.0))
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    ad = os.path.join(OUT, "adapter")
    pm.save_pretrained(ad)
    if os.path.exists(os.path.join(ad, "README.md")):
        os.remove(os.path.join(ad, "README.md"))     # PEFT's model card template
    cfgp = os.path.join(ad, "adapter_config.json")
    c = json.load(open(cfgp))
    c["base_model_name_or_path"] = "tests/fixtures/gguf/tiny"
    c["target_modules"] = sorted(c["target_modules"])   # PEFT writes a set in hash order
    json.dump(c, open(cfgp, "w"), indent=2, sort_keys=True)
    out = os.path.join(OUT, "lora.gguf")
    subprocess.run([os.path.join(ROOT, "build", "sft"), "export", "--model_name_or_path", os.path.join(OUT, "tiny_f32.gguf"), "--adapter", ad,
                    "--gguf", out], check=True)
    r = gguf.GGUFReader(out)
    meta = {k: r.fields[k].contents() for k in ("general.architecture", "general.type", "adapter.type", "adapter.lora.alpha")}
    sd = {k: v for k, v in pm.state_dict().items() if "lora_" in k}
    worst = 0.0
    tensors = []
    for t in r.tensors:
        layer, proj = t.name.split(".")[1], t.name.split(".")[2]
        hf = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
              "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}[proj]
        part = "lora_A" if t.name.endswith("lora_a") else "lora_B"
        ref = sd[f"base_model.model.model.layers.{layer}.{hf}.{part}.default.weight"].numpy()
        if part == "lora_B" and proj in ("attn_q", "attn_k"):
            ref = hf_permute(ref, 4 if proj == "attn_q" else 2)
        got = np.array(t.data).reshape(ref.shape)
        worst = max(worst, float(np.abs(got - ref).max()))
        tensors.append({"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape]})
    json.dump({"writer": "tools/make_gguf_fixtures.py", "versions": VERSIONS, "metadata": meta, "tensors": tensors, "max_abs_error": worst},
              open(os.path.join(OUT, "lora_readback.json"), "w"), indent=1)
    assert worst == 0.0, worst
    print("lora readback: %d tensors, alpha %s, max error %g" % (len(tensors), meta["adapter.lora.alpha"], worst))


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    dequant_fixture()
    m = tiny_model()
    tokenizer_files()
    lora(m)
