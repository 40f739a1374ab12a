#!/usr/bin/env python3
"""make_ptuning_fixtures.py - PEFT's P-tuning (PromptEncoder) reference fixtures for sft.h.

Writes tests/fixtures/peft/ptuning/ (the whole folder is replaced):

    ptuning.safetensors   the batch, and per encoder (mlp, lstm): its weights, the
                          encoded prompts, logits, loss and every weight's gradient
    ptuning.json          configs, losses, versions, what PEFT's reload reproduced
    mlp/, lstm/           what PeftModel.save_pretrained wrote: adapter_config.json,
                          adapter_model.safetensors (README.md dropped)

    tools/.venv/bin/python tools/make_ptuning_fixtures.py

Everything runs on the CPU, one thread, f32, eager attention, on the llama model
of tests/fixtures/models/llama and make_model_fixtures.py's padded batch [2, 7].

----------------------------------------------------------------------------------
PEFT 0.21.2's P-tuning (tuners/p_tuning/model.py, peft_model.py)
----------------------------------------------------------------------------------
- PromptEncoder: embedding = nn.Embedding(P, token_dim) (P = num_virtual_tokens;
  token_dim = hidden_size, filled in by PEFT), encoder_hidden_size default None
  -> token_dim (utils/other.py).
  MLP: mlp_head = Sequential(Linear(D, H), ReLU, Linear(H, H), ReLU, Linear(H, D))
  (keys mlp_head.0/2/4.{weight,bias}); encoder_num_layers is ignored (a warning
  if it is not the default 2).
  LSTM: lstm_head = nn.LSTM(D, H, num_layers=encoder_num_layers,
  dropout=encoder_dropout, bidirectional=True, batch_first=True) (keys
  lstm_head.{weight_ih,weight_hh,bias_ih,bias_hh}_l{k}[_reverse]; gates i, f, g,
  o in that order, h0 = c0 = 0), then mlp_head = Sequential(Linear(2H, 2H), ReLU,
  Linear(2H, D)) (keys mlp_head.0/2); the LSTM's dropout applies between layers,
  in training only.  encoder_dropout is not used by the MLP.
- forward(indices) = head(embedding(indices)); get_prompt runs it on the single
  row arange(P) every forward (train mode) and repeats the [P, D] result over the
  batch: prompts = encoder(arange(P)) -> prepended as in prompt tuning (ones in
  the attention mask, -100 in the labels, positions 0..P+T-1).
- Init: torch's defaults (Embedding N(0, 1); Linear weight and bias U(+-1/sqrt(in));
  LSTM every tensor U(+-1/sqrt(H))) from torch's RNG (torch.manual_seed below).
- save_pretrained: adapter_model.safetensors holds ONE tensor, "prompt_embeddings"
  = get_prompt_embedding_to_save = the ENCODED prompts [P, D] (the encoder's
  output, not its embedding weight), and adapter_config.json says P_TUNING with
  inference_mode true.  from_pretrained builds a PromptEncoder in inference mode
  (no heads) whose embedding.weight is those prompts, and get_prompt then uses
  embedding.weight as is: the reload reproduces the trained model's logits
  (checked; ptuning.json "reload_max_abs_diff").  The encoder weights themselves
  are not in PEFT's adapter files.

Tensors (prefix k = "mlp" or "lstm"):
  input_ids, attention_mask, labels    i32 [2, 7] (make_model_fixtures.inputs())
  k.w.<name>      the encoder's weights under the PromptEncoder module's names
                  (embedding.weight, mlp_head.0.weight, lstm_head.weight_ih_l0, ...)
  k.prompts       encoder(arange(P)) [P, 64], no_grad (save_pretrained's own call
                  differs by up to 3e-8: ptuning.json saved_vs_prompts_max_abs_diff)
  k.logits        [2, P + 7, 256] (train mode; no dropout anywhere)
  k.loss          [1]
  k.grad.<name>   d loss / d weight for every encoder weight
"""

import json
import os
import platform
import shutil
import sys
import warnings

import peft
import safetensors
import torch
import transformers
from peft import PeftModel, PromptEncoderConfig, get_peft_model

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_safetensors  # noqa: E402
from make_model_fixtures import inputs  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
MODEL = "tests/fixtures/models/llama"        # relative: base_model_name_or_path in the saved config
OUT = os.path.join(ROOT, "tests/fixtures/peft/ptuning")
P = 4
SEED = 2121
CASES = {
    "mlp": dict(encoder_reparameterization_type="MLP", encoder_hidden_size=32),
    "lstm": dict(encoder_reparameterization_type="LSTM", encoder_hidden_size=16, encoder_num_layers=2),
}

warnings.filterwarnings("ignore")
transformers.logging.set_verbosity_error()
torch.set_num_threads(1)


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def load():
    m = transformers.AutoModelForCausalLM.from_pretrained(MODEL, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


def case(name, kw, ids, mask, labels, tensors, doc):
    torch.manual_seed(SEED + len(name))
    pm = get_peft_model(load(), PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=P, **kw))
    enc = pm.prompt_encoder["default"]
    params = dict(enc.named_parameters())
    trained = sorted(n for n, p in pm.named_parameters() if p.requires_grad)
    assert trained == sorted("prompt_encoder.default." + n for n in params), trained
    for n, p in params.items():
        tensors[f"{name}.w.{n}"] = p.detach().clone()
    pm.train()
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    out.loss.backward()
    with torch.no_grad():
        prompts = enc(torch.arange(P).unsqueeze(0))[0]
    tensors[f"{name}.prompts"] = prompts.clone()
    tensors[f"{name}.logits"] = out.logits.detach().float().clone()
    tensors[f"{name}.loss"] = out.loss.detach().reshape(1).float().clone()
    for n, p in params.items():
        tensors[f"{name}.grad.{n}"] = p.grad.detach().clone()
    # the same forward by hand: the encoded prompts prepended (as prompt tuning)
    m = pm.get_base_model()
    with torch.no_grad():
        x = torch.cat([prompts.unsqueeze(0).expand(2, -1, -1), m.model.embed_tokens(ids)], 1)
        mk = torch.cat([torch.ones(2, P, dtype=torch.long), mask], 1)
        by_hand = m(inputs_embeds=x, attention_mask=mk).logits
    hand_err = float((by_hand - out.logits.detach()).abs().max())
    assert hand_err < 1e-5, hand_err

    d = os.path.join(OUT, name)
    pm.save_pretrained(d)
    os.remove(os.path.join(d, "README.md"))
    for fn in os.listdir(d):
        os.chmod(os.path.join(d, fn), 0o644)
    saved = safetensors.torch.load_file(os.path.join(d, "adapter_model.safetensors"))
    assert list(saved) == ["prompt_embeddings"], list(saved)
    save_err = float((saved["prompt_embeddings"] - prompts).abs().max())
    assert save_err < 1e-6, save_err
    re = PeftModel.from_pretrained(load(), d)
    re.eval()
    with torch.no_grad():
        rl = re(input_ids=ids, attention_mask=mask).logits
    reload_err = float((rl - out.logits.detach()).abs().max())
    assert reload_err < 1e-5, reload_err
    doc[name] = {
        "config": dict(task_type="CAUSAL_LM", num_virtual_tokens=P, **kw),
        "weights": {n: list(p.shape) for n, p in params.items()},
        "init": "torch defaults after torch.manual_seed(%d)" % (SEED + len(name)),
        "loss": float(out.loss), "mode": "train (dropout 0 everywhere)",
        "max_abs_diff_vs_by_hand_forward": hand_err,
        "saved": "adapter_model.safetensors: prompt_embeddings = %s.prompts (up to saved_vs_prompts_max_abs_diff: "
                 "save_pretrained's own encoder call); PeftModel.from_pretrained reproduces the logits" % name,
        "saved_vs_prompts_max_abs_diff": save_err,
        "reload_max_abs_diff": reload_err,
    }


def main():
    os.chdir(ROOT)
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    ids, mask, labels = inputs()
    tensors = {"input_ids": ids.int(), "attention_mask": mask.int(), "labels": labels.int()}
    doc = {"versions": versions(), "model": MODEL, "num_virtual_tokens": P}
    for name, kw in CASES.items():
        case(name, kw, ids, mask, labels, tensors, doc)
    tensors = {k: v.contiguous() for k, v in sorted(tensors.items())}
    save_safetensors(tensors, os.path.join(OUT, "ptuning.safetensors"), {"writer": "tools/make_ptuning_fixtures.py"})
    with open(os.path.join(OUT, "ptuning.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True)
        f.write("\n")
    for fn in ("ptuning.safetensors", "ptuning.json"):
        os.chmod(os.path.join(OUT, fn), 0o644)


if __name__ == "__main__":
    main()
