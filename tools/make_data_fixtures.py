#!/usr/bin/env python3
"""make_data_fixtures.py - TRL SFTTrainer data-preparation fixtures for sft.h.

Writes tests/fixtures/data/cases.json.  Tests read it; they never run Python.

    tools/.venv/bin/python tools/make_data_fixtures.py

Every case is one real `trl.SFTTrainer(...)` construction (TRL 1.16.0, CPU, a
throw-away 1-layer random Llama whose vocabulary covers the tokenizer) on a 3-5 row
`datasets.Dataset`; the trainer's own `_prepare_dataset` and its own data collator
produce what is stored.  `datasets.Dataset.map` / `.filter` are wrapped while the
trainer is built so the intermediate stages are captured as TRL produced them:

  text_in       the string TRL tokenizes (text / prompt-completion formats, after
                its EOS step)
  tokenized     rows right after TRL's tokenize map: input_ids and, where TRL
                makes them, completion_mask / assistant_masks
  prepared      the final train_dataset rows (input_ids, labels, and seq_lengths
                when packed), i.e. after labels, truncation, dropping, packing
  batch         trainer.data_collator(all prepared rows, in dataset order)
  rendered      tokenizer.apply_chat_template(..., tokenize=False) with the kwargs
                TRL passes (conversational rows; prompt alone with
                add_generation_prompt=True and prompt+completion for the
                prompt-completion format), and trl.apply_chat_template's output

The script asserts that tokenizing each rendered string with
add_special_tokens=False gives TRL's input_ids, and that a plain-Python BFD packer
(the algorithm as documented in tools/README.md / the report) gives TRL's packing.

----------------------------------------------------------------------------------
TRL 1.16.0 SFT data preparation (read from trl/trainer/sft_trainer.py,
trl/data_utils.py, trl/chat_template_utils.py; transformers 4.57.6
tokenization_utils_base.apply_chat_template)
----------------------------------------------------------------------------------
SFTTrainer.__init__ (before preparation):
- pad token = args.pad_token or tokenizer.pad_token or tokenizer.eos_token
  (llama2/llama3/mistral/gpt2 fixtures have none -> EOS is the pad).
- completion_only_loss None -> True iff the first row has both "prompt" and
  "completion".
- padding_free = args.padding_free or (packing and strategy in {bfd, bfd_split}).
- assistant_only_loss: if the tokenizer's template has no {% generation %} marker,
  get_training_chat_template() swaps in TRL's *_training.jinja, found by EXACT
  string equality of the template with one of TRL's shipped originals
  (qwen2_5.jinja, llama3.jinja, gemma.jinja, ...); otherwise ValueError.
_prepare_dataset (datasets.map, one row at a time):
 1. formatting_func -> {"text": f(row)} (not used here).
 2. first row has "conversations" whose first item has "from" and "value" ->
    maybe_convert_to_chatml: keys from->role, value->content, column
    conversations->messages.  Role VALUES are kept (human/gpt are NOT mapped).
 3. first row not conversational -> add EOS: if text field present and the string
    does not end with tokenizer.eos_token, append eos_token (the string);
    else if "completion" present and it does not end with eos_token, append it.
    Conversational rows get nothing (the template decides).
 4. tokenize:
    - text: tokenizer(text) -> add_special_tokens=True (post-processor BOS).
    - messages: tokenizer.apply_chat_template(messages, tokenize=True,
      return_dict=True, chat_template=<swapped or None>, tools=row.tools,
      return_assistant_tokens_mask=assistant_only_loss); transformers renders
      and then calls tokenizer(rendered, add_special_tokens=False).
    - prompt-completion strings: p = tokenizer(prompt), pc = tokenizer(prompt +
      completion) (both add_special_tokens=True); conversational: p =
      template(prompt, add_generation_prompt=True), pc = template(prompt +
      completion).  prompt_len = length of the common prefix of p and pc;
      completion_mask = [0]*prompt_len + [1]*(len(pc)-prompt_len); input_ids = pc.
    - assistant_only_loss and a row with no 1 in assistant_masks -> RuntimeError.
 5. labels (unless the dataset already has "labels"): mask columns =
    completion_mask if completion_only_loss, plus assistant_masks if present;
    label = token id where every mask is 1, else -100.
 6. max_length set and NOT packing: keep_start slices input_ids/labels to
    [:max_length] (keep_end: [-max_length:], deprecated); then rows whose labels
    are all -100 are dropped.
 7. packing: select_columns([input_ids, labels]); pack_dataset(max_length,
    strategy) as a batched map (datasets' default batch_size 1000: each block of
    1000 consecutive rows is packed on its own).  bfd: drop empty rows, truncate
    each row to max_length (bfd_split: cut into max_length pieces), sort by length
    descending (stable: equal lengths keep row order), best fit = the bin with the
    smallest remaining space >= length (several bins with that space: the one that
    got that space first), else a new bin; output = bins in creation order, rows
    concatenated in insertion order, seq_lengths = their lengths.  No drop of
    fully masked rows when packing.
Collator (DataCollatorForLanguageModeling): labels default to input_ids; not
padding-free: right-pad input_ids with pad id, labels with -100, attention_mask
1/0.  Padding-free (bfd packing or padding_free=True): concatenate all rows of the
batch into ONE row; position_ids restart at 0 at each packed sequence (from
seq_lengths) or each row; every label whose position_id is 0 is set to -100;
no attention_mask; cu_seq_lens_q/k, max_length_q/k, seq_idx also returned.
----------------------------------------------------------------------------------

Templates not in the tokenizer fixtures (stored verbatim in cases.json "templates"):
- gemma: trl/chat_templates/gemma.jinja, which TRL documents as the original
  template shipped by Gemma (v1) and Gemma2 (google/gemma-*-it).  It rejects a
  system message and non-alternating roles.
- zephyr: HuggingFaceH4/zephyr-7b-beta tokenizer_config.json chat_template,
  written here from knowledge of that file (the same string is reproduced in many
  public repositories, e.g. llama.cpp-style template detectors labelling it
  zephyr); rendered with trim_blocks/lstrip_blocks as transformers does, so its
  newlines between tags vanish.
- qwen2_5 / llama3_trl (TRL's copies of the real Qwen2.5 and Llama-3 templates) and
  TRL's gemma_training / qwen2_5_training / llama3_training (generation-marked)
  versions, which SFTTrainer swaps in itself for assistant_only_loss.
- chatml_generation: the qwen2 fixture's ChatML template with {% generation %}
  markers placed the way TRL's qwen2_5_training.jinja places them (header
  '<|im_start|>assistant' outside; '\\n' + content + '<|im_end|>\\n' inside).
Zephyr and Gemma are rendered with the qwen2 tokenizer object (its eos_token
'<|im_end|>' is substituted for eos_token; it has no bos_token, so bos_token
renders as ''); the template's own markers tokenize as plain text.
"""

import json
import os
import platform
import sys
import tempfile
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKDIR = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
OUTDIR = os.path.join(ROOT, "tests", "fixtures", "data")
WRITER = "tools/make_data_fixtures.py"

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from datasets import Dataset  # noqa: E402
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402
from trl import chat_template_utils as ctu  # noqa: E402
from trl.data_utils import apply_chat_template as trl_apply_chat_template  # noqa: E402
from trl.data_utils import pack_dataset  # noqa: E402

datasets.disable_progress_bars()
transformers.logging.set_verbosity_error()
datasets.logging.set_verbosity_error()
warnings.filterwarnings("ignore")

# --------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------
ZEPHYR_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)

CHATML_GENERATION_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant' }}"
    "{% generation %}{{ '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TEMPLATES = {
    "zephyr": ZEPHYR_TEMPLATE,
    "gemma": ctu.gemma_chat_template,
    "gemma_training": ctu.gemma_training_chat_template,
    "qwen2_5": ctu.qwen2_5_chat_template,
    "qwen2_5_training": ctu.qwen2_5_training_chat_template,
    "llama3_trl": ctu.llama3_chat_template,
    "llama3_training": ctu.llama3_training_chat_template,
    "chatml_generation": CHATML_GENERATION_TEMPLATE,
}


def template_name_of(s):
    for k, v in TEMPLATES.items():
        if s == v:
            return k
    return None


# --------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------
def text_rows(eos, field="text", bos=None):
    rows = [
        "Hello world.",
        "The quick brown fox jumps over the lazy dog.",
        "Grüße aus Köln: 日本語 café ✓",
        "Already done." + eos,
        "Hi there.",
    ]
    if bos is not None:
        rows[4] = bos + "Starts with BOS."
    return [{field: r} for r in rows]


PC_STR = [
    {"prompt": "What is 2+2?", "completion": " 4."},
    {"prompt": "Say hi in Japanese:", "completion": " こんにちは"},
    {"prompt": "The weather is ni", "completion": "ce today"},
    {"prompt": "Already terminated:", "completion": " yes<|im_end|>"},
]

PC_CONV = [
    {"prompt": [{"role": "system", "content": "You are terse."},
                {"role": "user", "content": "What is 2+2?"}],
     "completion": [{"role": "assistant", "content": "4."}]},
    {"prompt": [{"role": "user", "content": "Say hi in Japanese."}],
     "completion": [{"role": "assistant", "content": "こんにちは 👋"}]},
    {"prompt": [{"role": "user", "content": "Hi."},
                {"role": "assistant", "content": "Hello!"},
                {"role": "user", "content": "Bye."}],
     "completion": [{"role": "assistant", "content": "Goodbye."}]},
]


def messages_rows(eos, system=True):
    r = [
        {"messages": [{"role": "system", "content": "You are terse."},
                      {"role": "user", "content": "What is 2+2?"},
                      {"role": "assistant", "content": "4."}]},
        {"messages": [{"role": "user", "content": "Hi."},
                      {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "How are you?"},
                      {"role": "assistant", "content": "Fine, thanks."}]},
        {"messages": [{"role": "user", "content": "Grüße? 日本語"},
                      {"role": "assistant", "content": "café ✓ 👋"}]},
        {"messages": [{"role": "user", "content": "Stop."},
                      {"role": "assistant", "content": "Done." + eos}]},
    ]
    if not system:
        r[0] = {"messages": r[0]["messages"][1:]}
    return r


SHAREGPT = [
    {"conversations": [{"from": "system", "value": "You are terse."},
                       {"from": "human", "value": "What is 2+2?"},
                       {"from": "gpt", "value": "4."}]},
    {"conversations": [{"from": "human", "value": "Hi."},
                       {"from": "gpt", "value": "Hello!"},
                       {"from": "human", "value": "Grüße 日本語?"},
                       {"from": "gpt", "value": "café ✓"}]},
    {"conversations": [{"from": "human", "value": "Stop."},
                       {"from": "gpt", "value": "Done.<|im_end|>"}]},
]
SHAREGPT_ROLE_MAP = {"human": "user", "gpt": "assistant", "system": "system"}


def sharegpt_mapped():
    return [{"conversations": [{"from": SHAREGPT_ROLE_MAP[m["from"]], "value": m["value"]}
                               for m in r["conversations"]]} for r in SHAREGPT]


# --------------------------------------------------------------------------------
# Case list.  Each entry: one SFTTrainer construction.
# --------------------------------------------------------------------------------
def build_cases():
    C = []

    def add(name, tok, fmt, records, template=None, **opts):
        C.append(dict(name=name, tokenizer=tok, format=fmt, records=records, template=template, opts=opts))

    # 1. text
    t = text_rows("<|im_end|>")
    add("text_qwen2", "qwen2", "text", t)
    add("text_qwen2_trunc12", "qwen2", "text", t, max_length=12)
    add("text_qwen2_pack32", "qwen2", "text", t, max_length=32, packing=True)
    add("text_qwen2_pack16", "qwen2", "text", t, max_length=16, packing=True)
    add("text_qwen2_padding_free", "qwen2", "text", t, max_length=None, padding_free=True)
    t2 = text_rows("</s>", bos="<s>")
    add("text_llama2", "llama2", "text", t2)
    add("text_llama2_pack32", "llama2", "text", t2, max_length=32, packing=True)
    add("text_qwen2_field_content", "qwen2", "text", text_rows("<|im_end|>", field="content")[:3],
        dataset_text_field="content")

    # 2. prompt-completion, strings
    add("pc_qwen2", "qwen2", "prompt_completion", PC_STR)
    add("pc_qwen2_no_col", "qwen2", "prompt_completion", PC_STR, completion_only_loss=False)
    add("pc_qwen2_trunc12", "qwen2", "prompt_completion", PC_STR, max_length=12)
    add("pc_qwen2_pack32", "qwen2", "prompt_completion", PC_STR, max_length=32, packing=True)

    # 3. prompt-completion, conversational
    add("pcconv_qwen2", "qwen2", "prompt_completion_conversational", PC_CONV)
    add("pcconv_qwen2_no_col", "qwen2", "prompt_completion_conversational", PC_CONV,
        completion_only_loss=False)
    add("pcconv_qwen2_aol", "qwen2", "prompt_completion_conversational", PC_CONV,
        template="chatml_generation", assistant_only_loss=True)

    # 4. messages, per template family
    m_qwen = messages_rows("<|im_end|>")
    add("msg_chatml_qwen2", "qwen2", "messages", m_qwen)
    add("msg_chatml_qwen2_trunc24", "qwen2", "messages", m_qwen, max_length=24)
    add("msg_chatml_qwen2_pack64", "qwen2", "messages", m_qwen, max_length=64, packing=True)
    add("msg_chatml_smollm2", "smollm2", "messages", messages_rows("<|im_end|>"))
    add("msg_llama3", "llama3", "messages", messages_rows("<|eot_id|>"))
    add("msg_llama2", "llama2", "messages", messages_rows("</s>"))
    add("msg_mistral", "mistral", "messages", messages_rows("</s>"))
    add("msg_zephyr_qwen2tok", "qwen2", "messages", m_qwen, template="zephyr")
    add("msg_gemma_qwen2tok", "qwen2", "messages", messages_rows("<|im_end|>", system=False),
        template="gemma")

    # 5. assistant_only_loss
    add("aol_qwen2_5", "qwen2", "messages", m_qwen + [
        {"messages": [{"role": "user", "content": "No system here."},
                      {"role": "assistant", "content": "Default one."}]}],
        template="qwen2_5", assistant_only_loss=True)
    add("aol_qwen2_5_trunc40", "qwen2", "messages", m_qwen + [
        {"messages": [{"role": "user", "content": "No system here."},
                      {"role": "assistant", "content": "Default one."}]}],
        template="qwen2_5", assistant_only_loss=True, max_length=40)
    add("aol_qwen2_5_pack64", "qwen2", "messages", m_qwen,
        template="qwen2_5", assistant_only_loss=True, max_length=64, packing=True)
    add("aol_llama3", "llama3", "messages", messages_rows("<|eot_id|>"),
        template="llama3_trl", assistant_only_loss=True)
    add("aol_gemma_qwen2tok", "qwen2", "messages", messages_rows("<|im_end|>", system=False),
        template="gemma", assistant_only_loss=True)
    add("aol_chatml_generation", "qwen2", "messages", m_qwen,
        template="chatml_generation", assistant_only_loss=True)

    # 6. ShareGPT
    add("sharegpt_qwen2_trl", "qwen2", "sharegpt", SHAREGPT)
    add("sharegpt_qwen2_mapped", "qwen2", "sharegpt_roles_mapped", sharegpt_mapped())
    return C


# --------------------------------------------------------------------------------
# Running TRL
# --------------------------------------------------------------------------------
class Capture:
    """Wrap Dataset.map / Dataset.filter to record each stage by its `desc`."""

    def __init__(self):
        self.stages = []

    def __enter__(self):
        self._map, self._filter = Dataset.map, Dataset.filter
        cap = self

        def map_(ds, *a, **k):
            out = cap._map(ds, *a, **k)
            cap.stages.append((k.get("desc") or "", out))
            return out

        def filter_(ds, *a, **k):
            out = cap._filter(ds, *a, **k)
            cap.stages.append((k.get("desc") or "", out))
            return out

        Dataset.map, Dataset.filter = map_, filter_
        return self

    def __exit__(self, *exc):
        Dataset.map, Dataset.filter = self._map, self._filter

    def stage(self, prefix):
        hits = [d for desc, d in self.stages if desc.startswith(prefix)]
        return hits[-1] if hits else None


def tiny_model(vocab):
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=256)
    return LlamaForCausalLM(cfg)


def tolist(x):
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x


def run_case(case, tmp):
    tok = AutoTokenizer.from_pretrained(os.path.join(TOKDIR, case["tokenizer"]))
    fixture_template = tok.chat_template
    if case["template"] is not None:
        tok.chat_template = TEMPLATES[case["template"]]
    opts = dict(case["opts"])
    records = case["records"]
    cfg_kwargs = dict(output_dir=tmp, report_to=[], bf16=False, use_cpu=True, gradient_checkpointing=False,
                      per_device_train_batch_size=len(records), seed=42)
    cfg_kwargs.update(opts)
    args = SFTConfig(**cfg_kwargs)
    ds = Dataset.from_list([json.loads(json.dumps(r)) for r in records])
    with Capture() as cap:
        trainer = SFTTrainer(model=tiny_model(len(tok)), args=args, train_dataset=ds, processing_class=tok)

    out = {"name": case["name"], "tokenizer": "tests/fixtures/tokenizers/" + case["tokenizer"],
           "format": case["format"]}
    tpl_used = trainer.chat_template if trainer.chat_template is not None else tok.chat_template
    out["options"] = {
        "max_length": args.max_length,
        "packing": args.packing,
        "packing_strategy": args.packing_strategy if args.packing else None,
        "padding_free": trainer.padding_free,
        "truncation_mode": args.truncation_mode,
        "completion_only_loss": args.completion_only_loss,
        "completion_only_loss_effective": trainer.completion_only_loss,
        "assistant_only_loss": args.assistant_only_loss,
        "dataset_text_field": args.dataset_text_field,
        "per_device_train_batch_size": args.per_device_train_batch_size,
        # template set on the tokenizer: "fixture" = tokenizer_config.json's, else a key of "templates"
        "template": (None if case["format"] in ("text", "prompt_completion")
                     else "fixture" if case["template"] is None else case["template"]),
        # template TRL actually rendered with (differs when assistant_only_loss swapped one in)
        "template_used": (None if case["format"] in ("text", "prompt_completion")
                          else "fixture" if tpl_used == fixture_template else template_name_of(tpl_used)),
    }
    out["special_tokens"] = {"bos_token": tok.bos_token, "eos_token": tok.eos_token, "pad_token": tok.pad_token,
                             "pad_token_id": tok.pad_token_id, "eos_token_id": tok.eos_token_id,
                             "bos_token_id": tok.bos_token_id}
    out["records"] = records

    # Stage snapshots
    conv = cap.stage("Converting")
    eos = cap.stage("Adding EOS")
    tokd = cap.stage("Tokenizing")
    assert tokd is not None
    if conv is not None:
        out["converted_messages"] = [r["messages"] for r in conv]
    if eos is not None:
        field = args.dataset_text_field
        out["text_in"] = [({"text": r[field]} if field in r else {"prompt": r["prompt"], "completion": r["completion"]})
                          for r in eos]
    rows = []
    for r in tokd:
        row = {"input_ids": r["input_ids"]}
        for k in ("completion_mask", "assistant_masks"):
            if k in r and r[k] is not None:
                row[k] = r[k]
        rows.append(row)
    out["tokenized"] = rows

    # Rendered chat text (conversational formats), as TRL's tokenize step renders it
    src = conv if conv is not None else ds
    first = src[0]
    if "messages" in first:
        rendered = []
        for r in src:
            s = tok.apply_chat_template(r["messages"], tokenize=False, chat_template=trainer.chat_template,
                                        tools=None)
            rendered.append({"text": s})
        out["rendered"] = rendered
        out["trl_apply_chat_template"] = [trl_apply_chat_template({"messages": r["messages"]}, tok)
                                          if trainer.chat_template is None else None for r in src]
        for rr, tr in zip(rendered, rows):
            ids = tok(rr["text"], add_special_tokens=False)["input_ids"]
            assert ids == tr["input_ids"], (case["name"], ids, tr["input_ids"])
    elif "prompt" in first and isinstance(first["prompt"], list):
        rendered = []
        for r in src:
            p = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True,
                                        chat_template=trainer.chat_template, tools=None)
            pc = tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False,
                                         chat_template=trainer.chat_template, tools=None)
            rendered.append({"prompt": p, "prompt_completion": pc})
        out["rendered"] = rendered
        out["trl_apply_chat_template"] = [trl_apply_chat_template({"prompt": r["prompt"],
                                                                   "completion": r["completion"]}, tok)
                                          if trainer.chat_template is None else None for r in src]
        for rr, tr in zip(rendered, rows):
            ids = tok(rr["prompt_completion"], add_special_tokens=False)["input_ids"]
            assert ids == tr["input_ids"], case["name"]

    # Final prepared rows
    final = trainer.train_dataset
    keep = ("input_ids", "labels", "seq_lengths")
    prepared = [{k: r[k] for k in keep if k in r} for r in final]
    out["prepared"] = prepared

    # Collated batch (all rows, dataset order)
    batch = trainer.data_collator([dict(r) for r in prepared])
    out["batch"] = {k: tolist(v) for k, v in batch.items()}

    # Independent checks of the documented algorithm
    check_documented(case, out, tok, trainer, args)
    return out


# --------------------------------------------------------------------------------
# The algorithm as documented, re-implemented; must reproduce TRL's output
# --------------------------------------------------------------------------------
def bfd(rows, L):
    rows = [r for r in rows if len(r["input_ids"]) > 0]
    rows = [{"input_ids": r["input_ids"][:L], "labels": r["labels"][:L]} for r in rows]
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["input_ids"]))  # stable
    bins = []  # [space, [idx...], step at which the bin reached this space]
    for step, i in enumerate(order):
        n = len(rows[i]["input_ids"])
        best = None
        for b in bins:  # smallest space >= n; among equal spaces the one that reached it first
            if b[0] >= n and (best is None or b[0] < best[0] or (b[0] == best[0] and b[2] < best[2])):
                best = b
        if best is None:
            best = [L, [], 0]
            bins.append(best)
        best[1].append(i)
        best[0] -= n
        best[2] = step
    out = []
    for b in bins:
        out.append({"input_ids": sum((rows[i]["input_ids"] for i in b[1]), []),
                    "labels": sum((rows[i]["labels"] for i in b[1]), []),
                    "seq_lengths": [len(rows[i]["input_ids"]) for i in b[1]]})
    return out


def check_documented(case, out, tok, trainer, args):
    rows = out["tokenized"]
    col = trainer.completion_only_loss
    labelled = []
    for r in rows:
        masks = []
        if col and "completion_mask" in r:
            masks.append(r["completion_mask"])
        if "assistant_masks" in r:
            masks.append(r["assistant_masks"])
        lab = [t if all(m[j] for m in masks) else -100 for j, t in enumerate(r["input_ids"])]
        labelled.append({"input_ids": r["input_ids"], "labels": lab})
    if args.packing:
        expect = bfd(labelled, args.max_length)
    elif args.max_length is not None:
        L = args.max_length
        expect = [{"input_ids": r["input_ids"][:L], "labels": r["labels"][:L]} for r in labelled]
        expect = [r for r in expect if any(x != -100 for x in r["labels"])]
    else:
        expect = labelled
    assert expect == out["prepared"], (case["name"], expect, out["prepared"])

    # collator
    b = out["batch"]
    pad = tok.pad_token_id
    if trainer.padding_free:
        ids, labs, pos = [], [], []
        for r in expect:
            ids += r["input_ids"]
            labs += r["labels"]
            for n in r.get("seq_lengths", [len(r["input_ids"])]):
                pos += list(range(n))
        labs = [-100 if p == 0 else x for x, p in zip(labs, pos)]
        assert b["input_ids"] == [ids] and b["labels"] == [labs] and b["position_ids"] == [pos], case["name"]
        assert "attention_mask" not in b
    else:
        T = max(len(r["input_ids"]) for r in expect)
        assert b["input_ids"] == [r["input_ids"] + [pad] * (T - len(r["input_ids"])) for r in expect]
        assert b["labels"] == [r["labels"] + [-100] * (T - len(r["labels"])) for r in expect]
        assert b["attention_mask"] == [[1] * len(r["input_ids"]) + [0] * (T - len(r["input_ids"])) for r in expect]

    # text/prompt-completion tokenization as documented
    if case["format"] == "text":
        for ti, r in zip(out["text_in"], rows):
            assert tok(ti["text"])["input_ids"] == r["input_ids"]
    if case["format"] == "prompt_completion":
        for ti, r in zip(out["text_in"], rows):
            p = tok(ti["prompt"])["input_ids"]
            pc = tok(ti["prompt"] + ti["completion"])["input_ids"]
            n = 0
            while n < min(len(p), len(pc)) and p[n] == pc[n]:
                n += 1
            assert pc == r["input_ids"] and r["completion_mask"] == [0] * n + [1] * (len(pc) - n)


# --------------------------------------------------------------------------------
# TRL's pack_dataset alone, on synthetic rows (ties, overflow, empty rows)
# --------------------------------------------------------------------------------
PACK_UNIT = [
    # lengths 6,6,4,4,3,3,2,7 into 10: two bins reach space 4, the first to get there takes the next 4
    (10, [6, 6, 4, 4, 3, 3, 2, 7]),
    # overflow (13 > 8), an empty row, equal lengths
    (8, [13, 5, 0, 3, 3, 8, 1, 2]),
]


def pack_unit_cases():
    out = []
    for L, lengths in PACK_UNIT:
        rows, nxt = [], 1
        for n in lengths:
            ids = list(range(nxt, nxt + n))
            nxt += n
            rows.append({"input_ids": ids, "labels": [x if x % 3 else -100 for x in ids]})
        for strategy in ("bfd", "bfd_split"):
            ds = Dataset.from_list(rows)
            packed = pack_dataset(ds, L, strategy)
            res = [{"input_ids": r["input_ids"], "labels": r["labels"], "seq_lengths": r["seq_lengths"]}
                   for r in packed]
            if strategy == "bfd":
                assert res == bfd(rows, L), (L, lengths, res, bfd(rows, L))
            out.append({"seq_length": L, "strategy": strategy, "rows": rows, "packed": res})
    return out


# --------------------------------------------------------------------------------
def versions():
    return {"trl": trl.__version__, "transformers": transformers.__version__,
            "tokenizers": tokenizers.__version__, "datasets": datasets.__version__,
            "torch": torch.__version__, "python": platform.python_version()}


def dumps(obj):
    """JSON with one line per case (readable diffs), UTF-8, no NaN."""
    head = {k: v for k, v in obj.items() if k not in ("cases", "pack_dataset_unit")}
    s = json.dumps(head, ensure_ascii=False, indent=1, allow_nan=False)
    cases = ",\n".join("  " + json.dumps(c, ensure_ascii=False, allow_nan=False) for c in obj["cases"])
    units = ",\n".join("  " + json.dumps(c, allow_nan=False) for c in obj["pack_dataset_unit"])
    return s[:-2] + ',\n "pack_dataset_unit": [\n' + units + '\n ],\n "cases": [\n' + cases + "\n ]\n}\n"


def main():
    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        for case in build_cases():
            out = run_case(case, tmp)
            cases.append(out)
            b = out["batch"]
            print(f"{out['name']:28s} rows {len(out['tokenized'])} -> {len(out['prepared'])} "
                  f"batch {list(torch.tensor(b['input_ids']).shape)} "
                  f"{'position_ids' if 'position_ids' in b else 'attention_mask'}")
    doc = {
        "versions": versions(),
        "writer": WRITER,
        "notes": ("Each case = one trl.SFTTrainer construction; 'tokenized' = rows after TRL's tokenize map, "
                  "'prepared' = train_dataset rows, 'batch' = trainer.data_collator(prepared rows in order). "
                  "See the header comment of tools/make_data_fixtures.py for the algorithm."),
        "templates": TEMPLATES,
        "sharegpt_role_map_used_by_mapped_case": SHAREGPT_ROLE_MAP,
        "pack_dataset_unit": pack_unit_cases(),
        "cases": cases,
    }
    os.makedirs(OUTDIR, exist_ok=True)
    text = dumps(doc)
    json.loads(text)
    path = os.path.join(OUTDIR, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}: {len(text.encode())} bytes, {len(cases)} cases")
    print("versions:", json.dumps(versions()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
