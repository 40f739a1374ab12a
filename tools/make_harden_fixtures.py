"""Writes the crafted files of issue 19's regression tests (tests/fixtures/harden/)
and the fuzz harnesses' seed corpora (tests/fuzz/corpus/NAME/), from nothing but
the Python standard library (no reference stack needed: these files are made to
be wrong, or to be small starting points).

    python3 tools/make_harden_fixtures.py          (from the repository root)

tests/fixtures/harden/
  adapter_r65536/        adapter_config.json saying r 65536 over a 2 KB adapter
                         whose q_proj tensors are r 4 (the tiny Llama fixture's
                         widths): it once cost 1.3 GB before any shape was checked
  shape_overflow.safetensors
                         one tensor of shape [0, 2^63-1]: no bytes, so the
                         reference reader takes it, but the dims overflow any
                         element count
  sft_state_*.json       the sft_state.json a checkpoint of test_harden's run
                         holds (its fingerprint), with one counter out of range:
                         global_step 1e300, plateau_bad 1e10, epoch -1e19
  trainer_state_step.json
                         its trainer_state.json with a log entry of step 1e300

Deterministic: the same bytes on every run."""
import json
import os
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "harden")
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)] in order -> file bytes"""
    header, offset, body = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        body += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + body


def f32(values):
    return struct.pack("<%df" % len(values), *values)


# --- the regression fixtures -------------------------------------------------------

PEFT = "base_model.model.model.layers.%d.self_attn.q_proj.%s"


def adapter(r, r_in_config):
    config = {"base_model_name_or_path": "tests/fixtures/models/llama", "bias": "none", "fan_in_fan_out": False,
              "inference_mode": True, "init_lora_weights": True, "lora_alpha": 8, "lora_dropout": 0.0,
              "modules_to_save": None, "peft_type": "LORA", "r": r_in_config, "target_modules": ["q_proj"],
              "task_type": "CAUSAL_LM", "use_dora": False, "use_rslora": False}
    a = [((i * 7) % 13 - 6) / 64.0 for i in range(r * 64)]
    tensors = [(PEFT % (0, "lora_A.weight"), "F32", [r, 64], f32(a)), (PEFT % (0, "lora_B.weight"), "F32", [64, r], f32([0.0] * 64 * r))]
    return json.dumps(config, indent=2) + "\n", safetensors(tensors, {"format": "pt"})


def harden_fixtures():
    cfg, weights = adapter(2, 65536)
    write(os.path.join(FIX, "adapter_r65536", "adapter_config.json"), cfg)
    write(os.path.join(FIX, "adapter_r65536", "adapter_model.safetensors"), weights)
    write(os.path.join(FIX, "shape_overflow.safetensors"), safetensors([("x", "F32", [0, 2**63 - 1], b"")]))
    state = {
        "format": "sft.h trainer state 1",
        "run": "model hidden 64 layers 2 heads 4/2 intermediate 128 vocab 256; adapter default r 2 alpha 4 dora 0 rslora 0; "
               "8 trained tensors",
        "global_step": 1, "epoch": 0, "micro": 1, "num_tokens": 9, "steps_since_log": 0, "last_logged": 1, "acc_tokens": 0,
        "best_step": 0, "total_flos": 5479680.0, "total_loss": 4.650946140289307, "loss_since_log": 0.0, "acc_sum": 0.0,
        "ent_sum": 0.0, "last_grad_norm": 1.1599015636345986, "last_lr": 0.001, "best_metric": 0.0, "plateau_lr": 0.001,
        "plateau_best": 0.0, "plateau_bad": 0, "plateau_started": 0, "seed": "42", "sequential": 0,
        "per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "train_rows": 4}
    for key, value in (("global_step", 1e300), ("plateau_bad", 1e10), ("epoch", -1e19)):
        crafted = dict(state)
        crafted[key] = value
        write(os.path.join(FIX, "sft_state_%s.json" % key), json.dumps(crafted, indent=2) + "\n")
    trainer = {"best_global_step": None, "best_metric": None, "best_model_checkpoint": None, "epoch": 0.5, "eval_steps": 500,
               "global_step": 1, "is_hyper_param_search": False, "is_local_process_zero": True, "is_world_process_zero": True,
               "log_history": [{"epoch": 0.5, "grad_norm": 1.16, "learning_rate": 0.001, "loss": 4.6509, "num_tokens": 9,
                                "step": 1e300}],
               "logging_steps": 1, "max_steps": 4, "num_input_tokens_seen": 9, "num_train_epochs": 2, "save_steps": 500,
               "total_flos": 5479680.0, "train_batch_size": 2, "trial_name": None, "trial_params": None}
    write(os.path.join(FIX, "trainer_state_step.json"), json.dumps(trainer, indent=2) + "\n")
    return state, trainer


# --- the seed corpora --------------------------------------------------------------

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def added(i, content):
    return {"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
            "special": True}


def byte_level_tokenizer():
    alphabet = bytes_to_unicode()
    vocab = {alphabet[b]: b for b in range(256)}
    merges = []
    for a, b in (("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"), ("e", "r"), ("Ġ", "Ġ"), ("ĠĠ", "ĠĠ"), ("Ċ", "Ċ")):
        vocab[a + b] = len(vocab)
        merges.append([a, b])
    toks = [added(len(vocab), "<|endoftext|>"), added(len(vocab) + 1, "<|im_start|>"), added(len(vocab) + 2, "<|im_end|>")]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": toks, "normalizer": {"type": "NFC"},
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
                 "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None, "end_of_word_suffix": None,
                      "fuse_unk": False, "byte_fallback": False, "ignore_merges": False, "vocab": vocab, "merges": merges}}


def sentencepiece_tokenizer():
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab["<0x%02X>" % b] = len(vocab)
    for piece in ["▁", "e", "t", "a", "h", "▁t", "he", "▁the", "l", "o", "lo", "▁h", "▁hel", "▁hello"]:
        vocab.setdefault(piece, len(vocab))
    merges = [["▁", "t"], ["h", "e"], ["▁t", "he"], ["l", "o"], ["▁", "h"], ["▁h", "e"]]
    merges = [m for m in merges if "".join(m) in vocab]
    toks = [dict(added(0, "<unk>"), special=True), added(1, "<s>"), added(2, "</s>")]
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": toks,
            "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                               {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
            "pre_tokenizer": None,
            "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                                                                        {"Sequence": {"id": "A", "type_id": 0}}],
                               "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                               "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
            "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                                                         {"type": "ByteFallback"}, {"type": "Fuse"},
                                                         {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
            "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                      "vocab": vocab, "merges": merges}}


def seeds(state, trainer):
    def seed(target, name, data):
        write(os.path.join(CORPUS, target, name), data)

    seed("json", "object", '{"a": [1, -2.5e-3, true, false, null], "b": {"c": "\\u00e9\\ud83d\\ude00\\n"}, "d": ""}')
    seed("json", "nested", "[[[[{}]]], [], {\"k\": [1e308, -0, 0.1]}]")
    seed("json", "nonfinite", '{"x": NaN, "y": -Infinity, "z": 12345678901234567890}')
    with open(os.path.join(ROOT, "tests", "fixtures", "models", "llama", "config.json"), "rb") as f:
        llama_config = f.read()
    seed("json", "config", llama_config)

    seed("safetensors", "two", safetensors([("w", "F32", [2, 3], f32([1, 2, 3, 4, 5, 6])),
                                            ("b", "BF16", [4], struct.pack("<4H", 0x3F80, 0xC000, 0x7F80, 0x0001))],
                                           {"format": "pt"}))
    seed("safetensors", "ints", safetensors([("i", "I64", [2], struct.pack("<2q", -1, 2**40)), ("u", "U8", [3], b"\x00\x7f\xff"),
                                             ("h", "F16", [1, 1], struct.pack("<H", 0x3C00)), ("e", "F32", [0, 5], b"")]))

    seed("tokenizer", "byte_level", json.dumps(byte_level_tokenizer(), ensure_ascii=False))
    seed("tokenizer", "sentencepiece", json.dumps(sentencepiece_tokenizer(), ensure_ascii=False))

    for i, text in enumerate([b"\x00Hello world! The   quick\n\n\nfox", b"\x04<|im_start|>user\nhi \xc3\xa9<|im_end|>",
                              b"\x07  \t\n  caf\xc3\xa9 \xe4\xb8\xad\xf0\x9f\x98\x80 12345", b"\x02\xff\xfe\xc3 \xed\xa0\x80 bad",
                              b"\x09<s>[INST] what [/INST] ok</s>    "]):
        seed("encode", "text%d" % i, text)

    rows = {
        "text": ['{"text": "The cat sat."}', '{"text": "A dog ran."}'],
        "prompt_completion": ['{"prompt": "2+2=", "completion": "4"}', '{"prompt": "Hi", "completion": " there"}'],
        "conv_prompt_completion": ['{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello"}]}'],
        "messages": ['{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, '
                     '{"role": "assistant", "content": "Hello!"}]}',
                     '{"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}], '
                     '"tools": [{"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}]}'],
        "sharegpt": ['{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}'],
        "tokens": ['{"input_ids": [5, 6, 7, 8], "completion_mask": [0, 0, 1, 1]}', '{"input_ids": [9, 10], "assistant_masks": [1, 1]}'],
    }
    for k, (name, lines) in enumerate(sorted(rows.items())):
        for opt in (0, 0x29, 0xB3):
            seed("dataset", "%s_%02x" % (name, opt), bytes([opt, (opt * 7 + k) & 0xFF]) + ("\n".join(lines) + "\n").encode())

    seed("config", "llama", llama_config)
    qwen = json.loads(llama_config)
    qwen.update({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "tie_word_embeddings": True, "rope_scaling": None})
    seed("config", "qwen2_tied", json.dumps(qwen, indent=2))

    cfg, weights = adapter(2, 2)
    seed("adapter", "r2", cfg.encode() + b"\n----\n" + weights)

    seed("resume", "checkpoint", json.dumps(state, indent=2) + "\n----\n" + json.dumps(
        dict(trainer, log_history=[dict(trainer["log_history"][0], step=1)]), indent=2) + "\n")

    templates = os.path.join(ROOT, "tests", "fixtures", "templates", "trl")
    for name in ("llama3.jinja", "phi3.jinja", "qwen2_5.jinja"):
        with open(os.path.join(templates, name), "rb") as f:
            seed("template", name, f.read())
    seed("template", "small", "{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}{% if not loop.last %}\n"
                              "{% endif %}{% endfor %}{% if add_generation_prompt %}{% generation %}A:{% endgeneration %}{% endif %}"
                              "{{ tools | tojson }}{{ n * 2 }}{{ 'x' ~ (x is none) }}{{ raise_exception('stop') if n > 9 }}")


if __name__ == "__main__":
    seeds(*harden_fixtures())
