#!/usr/bin/env python3
"""make_tokenizer_fixtures.py - reference fixtures for sft.h's tokenizer.

Writes tests/fixtures/tokenizers/<family>/{tokenizer.json, tokenizer_config.json,
expected.json} for six families: gpt2, llama3, qwen2, smollm2, llama2 (also
TinyLlama's) and mistral.  Tests read these files; they never run Python.

    python3 -m venv tools/.venv && tools/.venv/bin/pip install -r tools/requirements.txt \
        && tools/.venv/bin/python tools/make_tokenizer_fixtures.py

No real model tokenizer is downloaded.  For each family the script trains a SMALL
BPE model (about 1,000 tokens) with Hugging Face `tokenizers` on the corpus below
and gives it the exact pipeline (normalizer, pre-tokenizer, model flags, decoder,
post-processor) and added-token flags that the real model's tokenizer.json has, as
found below.  expected.json records what `tokenizers` itself produces on a fixed
set of texts, so the C side must reproduce it id for id.  The output is
deterministic: rerunning writes the same bytes (only the recorded versions vary
with the pinned stack).

----------------------------------------------------------------------------------
What the real tokenizer.json files use, and where that was found
----------------------------------------------------------------------------------
(Found with code search over public GitHub copies; "src" names the file/excerpt.)

gpt2  (openai-community/gpt2)
  normalizer: null
  pre_tokenizer: {"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true}
      (file predates use_regex; the missing key means use_regex=true, GPT-2's own
       pattern 's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+)
  post_processor: ByteLevel add_prefix_space=true trim_offsets=false
  decoder: ByteLevel add_prefix_space=true trim_offsets=true
  model: BPE, unk_token null, continuing_subword_prefix "", end_of_word_suffix "",
         fuse_unk false (no byte_fallback key: false)
  added_tokens: <|endoftext|> (50256, also in the vocab) special=true normalized=true
  tokenizer_config: bos=eos=unk="<|endoftext|>", no pad, add_prefix_space false
  src: a Rust GGUF loader's verified table "openai-community/gpt2 -- verified 0 of
       130 cases against that checkpoint's own tokenizer.json" (pre_tokenizer
       string verbatim); a tokenizer-test crate: "gpt2's exact serialization
       shape ... use_regex absent in older artifacts"; transformers
       convert_slow_tokenizer.GPT2Converter (ByteLevel decoder, ByteLevel
       post-processor trim_offsets=False).  The post_processor/decoder flags and
       normalized=true on <|endoftext|> are from memory of the hub file and
       the converter, not seen verbatim in a copy of the file.

llama3  (meta-llama/Meta-Llama-3-8B, Llama-3.x)
  normalizer: null
  pre_tokenizer: Sequence[
     Split{Regex "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
           behavior Isolated, invert false},
     ByteLevel{add_prefix_space false, trim_offsets true, use_regex false}]
  post_processor: Sequence[ByteLevel{add_prefix_space true, trim_offsets false, use_regex true},
     TemplateProcessing{single "<|begin_of_text|> $A", pair "<|begin_of_text|> $A <|begin_of_text|>:1 $B:1"}]
  decoder: ByteLevel{add_prefix_space true, trim_offsets true, use_regex true}
  model: BPE, unk null, continuing_subword_prefix null, end_of_word_suffix null,
         fuse_unk false, byte_fallback false, ignore_merges TRUE
  added_tokens: 256 specials after the 128000-token vocab (<|begin_of_text|>,
         <|end_of_text|>, <|start_header_id|>, <|end_header_id|>, <|eot_id|>,
         <|reserved_special_token_N|>...), special=true normalized=false
  tokenizer_config: bos "<|begin_of_text|>", eos "<|end_of_text|>" (base) /
         "<|eot_id|>" (Instruct), tokenizer_class PreTrainedTokenizerFast
  src: a notes file quoting ".../models--meta-llama--Meta-Llama-3-8B/snapshots/
       8cde5ca8.../tokenizer.json" verbatim (normalizer, pre_tokenizer,
       post_processor, decoder, model flags incl. ignore_merges true); a second
       verbatim copy with the pair template; jtokkit/llama.cpp copies of the regex.

qwen2  (Qwen/Qwen2-*, Qwen2.5-*; Qwen3 has the same pipeline)
  normalizer: {"type":"NFC"}
  pre_tokenizer: Sequence[
     Split{Regex "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
           behavior Isolated, invert false},
     ByteLevel{add_prefix_space false, trim_offsets false, use_regex false}]
  post_processor: ByteLevel{add_prefix_space false, trim_offsets false, use_regex false}
  decoder:        ByteLevel{add_prefix_space false, trim_offsets false, use_regex false}
  model: BPE, unk null, continuing_subword_prefix "", end_of_word_suffix "",
         fuse_unk false, byte_fallback false, ignore_merges false
  added_tokens: <|endoftext|> 151643, <|im_start|> 151644, <|im_end|> 151645
         (special=true, normalized=false), later ones incl. NON-special ones
         (<tool_call>, <|fim_prefix|>... special=false normalized=false)
  tokenizer_config: bos null, eos "<|endoftext|>" (base) / "<|im_end|>"
         (Instruct), pad "<|endoftext|>", unk null, add_prefix_space false,
         errors "replace", split_special_tokens false, tokenizer_class Qwen2Tokenizer
  src: transformers src/transformers/models/qwen2/tokenization_qwen2.py
       (PRETOKENIZE_REGEX, NFC in prepare_for_tokenization); transformers
       convert_slow_tokenizer.Qwen2Converter; a verbatim Qwen3 tokenizer.json in
       a notes file (the whole pipeline above); a GGUF loader table: "Qwen/Qwen2-7B
       -- verified ... against that checkpoint's own tokenizer.json" with the same
       pre_tokenizer and {"type":"NFC"}.

smollm2  (HuggingFaceTB/SmolLM2-135M/360M/1.7B[-Instruct])
  normalizer: null
  pre_tokenizer: Sequence[Digits{individual_digits true},
     ByteLevel{add_prefix_space false, trim_offsets true, use_regex true}]
     (i.e. GPT-2's split pattern after splitting every digit)
  post_processor: ByteLevel{add_prefix_space true, trim_offsets false, use_regex true}
  decoder: ByteLevel{add_prefix_space true, trim_offsets true, use_regex true}
  model: BPE, unk null, prefix/suffix null, fuse_unk false, byte_fallback false
  added_tokens: ids 0..16 at the START of the vocab: <|endoftext|>, <|im_start|>,
         <|im_end|>, <repo_name>, <reponame>, <file_sep>, <filename>, <gh_stars>,
         <issue_start>, <issue_comment>, <issue_closed>, <jupyter_start>,
         <jupyter_text>, <jupyter_code>, <jupyter_output>, <jupyter_script>,
         <empty_output> -- all special=true normalized=false
  tokenizer_config: bos/eos/unk "<|endoftext|>" (base; Instruct: bos
         "<|im_start|>", eos "<|im_end|>", pad "<|im_end|>"), add_prefix_space
         false, tokenizer_class GPT2Tokenizer
  src: GGUF loader table: "Verified against SmolLM2-360M-Instruct/tokenizer.json"
       (pre_tokenizer verbatim, normalizer null); llama.cpp convert_hf_to_gguf
       ("starcoder" pre-tokenizer == the same Sequence); a SmolLM2 training
       script's added_tokens_decoder (ids 0..16, flags).  NOT confirmed from a
       copy of the file: the post_processor (ByteLevel as written here, as in
       StarCoder-family files; it does not change ids) and the decoder flags.

llama2  (meta-llama/Llama-2-7b-hf; TinyLlama/TinyLlama-1.1B-* uses the same file)
  normalizer: Sequence[Prepend{"▁"}, Replace{String " " -> "▁"}]
  pre_tokenizer: null
  post_processor: TemplateProcessing{single "<s> $A", pair "<s> $A <s>:1 $B:1"}
  decoder: Sequence[Replace{String "▁" -> " "}, ByteFallback, Fuse,
                    Strip{content " ", start 1, stop 0}]
  model: BPE, unk_token "<unk>", prefix/suffix null, fuse_unk TRUE,
         byte_fallback TRUE; vocab: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258
  added_tokens: <unk>, <s>, </s> special=true (normalized=false as
         transformers' LlamaConverter adds them; hf-internal-testing/
         llama-tokenizer's copy says normalized=true)
  tokenizer_config: add_bos_token true, add_eos_token false, legacy,
         bos "<s>", eos "</s>", unk "<unk>", pad null, tokenizer_class LlamaTokenizer
  src: a verbatim dump of hf-internal-testing/llama-tokenizer's tokenizer.json
       (sugarme/tokenizer tests); transformers convert_slow_tokenizer
       LlamaConverter (normalizer/decoder/AddedToken flags).

mistral  (mistralai/Mistral-7B-v0.3; v0.1 used the llama2 form above)
  normalizer: null
  pre_tokenizer: Metaspace{replacement "▁", prepend_scheme "first", split false}
  post_processor: TemplateProcessing{single "<s> $A", pair "<s> $A <s>:1 $B:1"}
  decoder: Sequence[Replace{"▁" -> " "}, ByteFallback, Fuse, Strip{" ", 1, 0}]
  model: BPE, unk_token "<unk>", fuse_unk true, byte_fallback true;
         <unk> 0, <s> 1, </s> 2, control tokens [INST] 3, [/INST] 4, ... (special)
  tokenizer_config: add_bos_token true, add_eos_token false, bos "<s>",
         eos "</s>", unk "<unk>", tokenizer_class LlamaTokenizer
  src: a Rust tokenizer's tests "measured against tokenizers 0.22.1 on
       mistral-7b-v0.3/tokenizer.json" (Metaspace first/split false,
       byte_fallback, unk <unk>, "[INST] is special: true") and a Python test
       "Mistral's own decoder chain, verbatim from its tokenizer.json";
       mistralai/cookbook tokenization/templates.md (v0.1 = tokenizer V1,
       v0.3 = V3).  The normalizer null and post_processor are from
       transformers' non-legacy LlamaConverter, not seen verbatim.

Versions.  tools/requirements.txt pins tokenizers 0.22.2 + transformers 4.57.6 (the
last 4.x, whose tokenizer_config.json has added_tokens_decoder/add_bos_token like
published models; 5.x writes tokenizer_class "TokenizersBackend" and drops
add_bos_token).  Encodings are the same under tokenizers 0.23.3, but DECODING
differs: for llama2's normalized added token matched as "▁<tool_call>",
0.22.2 decodes "call<tool_call>", 0.23.3 "call <tool_call>".  The fixtures
follow the pinned version and record it.  tokenizer_class in every
tokenizer_config.json is "PreTrainedTokenizerFast" (what the generic class
writes; Llama-3's real file has the same; the others name GPT2Tokenizer,
Qwen2Tokenizer or LlamaTokenizer).

Added tokens beyond each family's own (so that the C side's flag handling is
exercised; the flags are what transformers' add_tokens/AddedToken write):
  "<tool_call>"  special=false normalized=true   (add_tokens default for user tokens)
  "<mask>"       special=true  lstrip=true normalized=false (RoBERTa-style)
  "[ACT]"        special=false single_word=true normalized=false
  "<|pad|>"      special=true  rstrip=true normalized=false
"""
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile

os.environ["TOKENIZERS_PARALLELISM"] = "false"   # before importing tokenizers
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
WRITER = "tools/make_tokenizer_fixtures.py"

# ---------------------------------------------------------------------------
# Training corpus (embedded; a few KB of varied text)
# ---------------------------------------------------------------------------
CORPUS = r"""The quick brown fox jumps over the lazy dog. The dog did not mind; it was asleep.
It was a bright cold day in April, and the clocks were striking thirteen.
Tokenizers split text into pieces that a language model can learn from. A good tokenizer
keeps common words whole and breaks rare words into smaller, reusable parts.
We train the model, then we evaluate the model, and then we train it again with more data.
Fine-tuning a small model on a single machine is cheaper than training a large one from scratch.
The weather today is sunny with a chance of rain in the evening. Temperatures will reach 21 degrees.
She said: "I'm not sure we'll make it, but they've promised to wait." He'd already left; it's late.
DON'T PANIC. I'M FINE. YOU'RE RIGHT. WE'LL SEE. THEY'VE GONE. HE'D KNOW. IT'S OK.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 42 100 256 1024 2048 4096 65536 3.14159 2.71828 1e-5
Dates and versions: 2024-01-15, 2025-06-30, 2026-11-28, v1.2.3, Python 3.11, C99, ISO 8601.
Prices: $19.99, €5,00, £100, ¥1000; phone +1 (555) 123-4567; 50% off; 24/7 support.
Le café est au coin de la rue. Une idée naïve, un garçon, la façade, où est l'hôtel ?
Ærøskøbing er en lille by på Ærø. Smørrebrød og rødgrød med fløde. Åbenrå, Øresund.
Die Straße ist groß, die Größe passt. Fußgänger müssen über die Brücke gehen. Schöne Grüße!
El niño comió piñata en España. ¿Dónde está la estación? ¡Qué bueno! São Paulo, coração.
Zażółć gęślą jaźń. Příliš žluťoučký kůň úpěl ďábelské ódy. Şişli, İstanbul, ağaç.
Русский текст: привет, мир! Ελληνικά: γειά σου κόσμε. Українська мова.
日本語のテキストを分割します。東京は日本の首都です。こんにちは、世界！
中文测试：你好，世界。我们今天学习分词器。机器学习和自然语言处理。
한국어 텍스트: 안녕하세요 세계. 서울은 한국의 수도입니다.
مرحبا بالعالم. اللغة العربية جميلة. شكرا جزيلا.
שלום עולם. नमस्ते दुनिया। สวัสดีชาวโลก
Emoji: 😀 😃 😄 🎉 🚀 👍 👍🏽 👩‍👩‍👧‍👦 🇫🇷 🇯🇵 ❤️ ✨ 🔥 ✅
def train(model, data, epochs=3):
    for epoch in range(epochs):
        loss = 0.0
        for x, y in data:
            loss += model.step(x, y)
        print(f"epoch {epoch}: loss={loss / len(data):.4f}")
    return {"loss": loss, "epochs": epochs}

class Tokenizer:
    def __init__(self, vocab):
        self.vocab = dict(vocab)

    def encode(self, text):
        return [self.vocab[t] for t in text.split() if t in self.vocab]

#include <stdio.h>
#include <stdlib.h>

static int add(int a, int b) { return a + b; }

int main(int argc, char **argv) {
    int total = 0;
    for (int i = 0; i < argc; i++) {
        total = add(total, atoi(argv[i]));
    }
    printf("total = %d\n", total);
    return 0;
}

function greet(name) {
	return `Hello, ${name}!`;
}
SELECT id, name FROM users WHERE age >= 18 ORDER BY name;
{"key": "value", "list": [1, 2, 3], "nested": {"a": true, "b": null}}
<html><body><p class="note">Hello &amp; welcome</p></body></html>
https://example.com/path?query=1&lang=en#section  user@example.org
    Indented line with four spaces.
		Two tabs here.
Trailing spaces here   
Windows line ending here
Multiple


blank lines above.
A long sentence that goes on and on, with commas, semicolons; colons: dashes - and more
words, because the training corpus should contain enough repeated pairs for merges to form.
The people who make the things that people use are the people who use the things they make.
Learning rates, batch sizes, warmup steps, gradient clipping, weight decay and optimizers.
""".replace("Windows line ending here\n", "Windows line ending here\r\n")

# ---------------------------------------------------------------------------
# Real pipelines (JSON components exactly as in the real tokenizer.json files)
# ---------------------------------------------------------------------------
GPT2_PATTERN = None  # ByteLevel's built-in pattern (use_regex=true)
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level(aps, trim, regex):
    return {"type": "ByteLevel", "add_prefix_space": aps, "trim_offsets": trim, "use_regex": regex}


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def template(bos):
    return {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": None, "tokens": [bos]}},  # ids filled in later
    }


SP_DECODER = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
    {"type": "ByteFallback"},
    {"type": "Fuse"},
    {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                   "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>",
                   "<|reserved_special_token_2|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"]
SMOLLM2_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<reponame>",
                    "<file_sep>", "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>",
                    "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>",
                    "<jupyter_output>", "<jupyter_script>", "<empty_output>"]
MISTRAL_CONTROLS = ["[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                    "[TOOL_RESULTS]", "[/TOOL_RESULTS]"]

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

FAMILIES = {
    "gpt2": dict(
        kind="byte", vocab_size=1100,
        normalizer=None,
        pre_tokenizer={"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        post_processor={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        decoder={"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        model_flags=dict(dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                         fuse_unk=False, byte_fallback=False, ignore_merges=False),
        specials_front=[],
        specials_in_vocab_end=["<|endoftext|>"],   # 50256: in the vocab AND added
        specials_added_end=[],
        special_normalized=True,
        config=dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>",
                    add_prefix_space=False, chat_template=None),
        template_bos=None,
    ),
    "llama3": dict(
        kind="byte", vocab_size=1100,
        normalizer=None,
        pre_tokenizer={"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(False, True, False)]},
        post_processor={"type": "Sequence", "processors": [byte_level(True, False, True), template("<|begin_of_text|>")]},
        decoder=byte_level(True, True, True),
        model_flags=dict(dropout=None, unk_token=None, continuing_subword_prefix=None, end_of_word_suffix=None,
                         fuse_unk=False, byte_fallback=False, ignore_merges=True),
        specials_front=[], specials_in_vocab_end=[], specials_added_end=LLAMA3_SPECIALS,
        special_normalized=False,
        config=dict(bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                    chat_template=("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
                                   "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
                                   "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
                                   "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}")),
        template_bos="<|begin_of_text|>",
    ),
    "qwen2": dict(
        kind="byte", vocab_size=1100,
        normalizer={"type": "NFC"},
        pre_tokenizer={"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(False, False, False)]},
        post_processor=byte_level(False, False, False),
        decoder=byte_level(False, False, False),
        model_flags=dict(dropout=None, unk_token=None, continuing_subword_prefix="", end_of_word_suffix="",
                         fuse_unk=False, byte_fallback=False, ignore_merges=False),
        specials_front=[], specials_in_vocab_end=[],
        specials_added_end=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        special_normalized=False,
        config=dict(eos_token="<|im_end|>", pad_token="<|endoftext|>", add_prefix_space=False,
                    errors="replace", split_special_tokens=False, chat_template=CHATML),
        template_bos=None,
    ),
    "smollm2": dict(
        kind="byte", vocab_size=1100,
        normalizer=None,
        pre_tokenizer={"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True},
                                                             byte_level(False, True, True)]},
        post_processor=byte_level(True, False, True),
        decoder=byte_level(True, True, True),
        model_flags=dict(dropout=None, unk_token=None, continuing_subword_prefix=None, end_of_word_suffix=None,
                         fuse_unk=False, byte_fallback=False, ignore_merges=False),
        specials_front=SMOLLM2_SPECIALS, specials_in_vocab_end=[], specials_added_end=[],
        special_normalized=False,
        config=dict(bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
                    unk_token="<|endoftext|>", add_prefix_space=False, chat_template=CHATML),
        template_bos=None,
    ),
    "llama2": dict(
        kind="sp", vocab_size=1000,
        normalizer={"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        pre_tokenizer=None,
        post_processor=template("<s>"),
        decoder=SP_DECODER,
        model_flags=dict(dropout=None, unk_token="<unk>", continuing_subword_prefix=None, end_of_word_suffix=None,
                         fuse_unk=True, byte_fallback=True, ignore_merges=False),
        specials_front=["<unk>", "<s>", "</s>"], specials_in_vocab_end=[], specials_added_end=[],
        special_normalized=False,
        config=dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True,
                    add_eos_token=False, legacy=True,
                    chat_template=("{% for message in messages %}{% if message['role'] == 'user' %}"
                                   "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}"
                                   "{% else %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}")),
        template_bos="<s>",
    ),
    "mistral": dict(
        kind="sp", vocab_size=1000,
        normalizer=None,
        pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        post_processor=template("<s>"),
        decoder=SP_DECODER,
        model_flags=dict(dropout=None, unk_token="<unk>", continuing_subword_prefix=None, end_of_word_suffix=None,
                         fuse_unk=True, byte_fallback=True, ignore_merges=False),
        specials_front=["<unk>", "<s>", "</s>"] + MISTRAL_CONTROLS, specials_in_vocab_end=[], specials_added_end=[],
        special_normalized=False,
        config=dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>", add_bos_token=True,
                    add_eos_token=False, legacy=False,
                    chat_template=("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                                   "{{ '[INST] ' + message['content'] + '[/INST]' }}{% else %}"
                                   "{{ ' ' + message['content'] + eos_token }}{% endif %}{% endfor %}")),
        template_bos="<s>",
    ),
}

# Added tokens common to every family, exercising the AddedToken flags.
EXTRA_ADDED = [
    dict(content="<tool_call>", special=False, normalized=True, lstrip=False, rstrip=False, single_word=False),
    dict(content="<mask>", special=True, normalized=False, lstrip=True, rstrip=False, single_word=False),
    dict(content="[ACT]", special=False, normalized=False, lstrip=False, rstrip=False, single_word=True),
    dict(content="<|pad|>", special=True, normalized=False, lstrip=False, rstrip=True, single_word=False),
]


# ---------------------------------------------------------------------------
# Test texts (same for every family; the family's own special tokens are
# spliced into the "special_*" cases)
# ---------------------------------------------------------------------------
LONG = (
    "In 2026, a small team fine-tuned a 1.7B-parameter model on 12,345 examples; the loss fell from 2.31 "
    "to 0.87 in 3 epochs. \"It's not magic,\" they wrote, \"it's careful engineering.\" The café next door "
    "served crème brûlée while the servers hummed at 35°C. Le modèle a appris le français, el español y "
    "un poco de Deutsch (Größe, Straße). 日本語も少し、中文也一点点，还有 مرحبا 👋🏽.\n\n"
    "Code snippet:\n    for (i = 0; i < n; ++i) { sum += a[i] * b[i]; }\n"
    "Results:\tacc=0.912\tf1=0.887\r\n"
    "Visit https://example.com/docs?page=2&lang=en or mail team@example.org. Prices: $1,299.00, €49.95. "
    "We'll ship v2.0.1 on 2026-11-28 — or maybe not; they've said that before. DON'T hold your breath! "
    "Spaces   between    words,\ttabs,\t\tand trailing spaces   \n"
    "Emoji soup: 🎉🚀👩‍💻🇫🇷🇯🇵❤️‍🔥 and Unicode lookalikes: Ａ Ｂ Ｃ, ﬁ ligature, Ⅻ numeral, ½ fraction, "
    "x² y³, combining e\u0301 vs precomposed é. The end."
)
assert 900 <= len(LONG.encode("utf-8")) <= 1400, len(LONG.encode("utf-8"))

PYTHON = ("def fib(n: int) -> int:\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
          "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\n"
          "cfg = {\"lr\": 3e-4, \"layers\": [1, 2, 3]}\nif __name__ == \"__main__\":\n"
          "    print(fib(10), cfg['lr'])\n")
C_CODE = ("#include <stdio.h>\n\nint main(void) {\n\tconst char *s = \"hi\\n\";\n"
          "\tfor (int i = 0; i < 10; ++i) {\n\t\tif (i % 2 == 0) printf(\"%d %s\", i, s);\n\t}\n"
          "\treturn 0; // done\n}\n")


def base_cases():
    return [
        ("plain_english", "The quick brown fox jumps over the lazy dog. It was a bright cold day in April."),
        ("latin_accents", "Le café était naïve; Ærøskøbing er en by. Straße, Größe, ß and ẞ, façade, señor, "
                          "Zażółć gęślą jaźń."),
        ("nfc_vs_nfd", "precomposed caf\u00e9 vs decomposed cafe\u0301, \u00c5 vs A\u030a vs \u212b, ﬁ ½ x²"),
        ("cjk", "日本語のテキスト 中文测试 한국어"),
        ("arabic", "مرحبا بالعالم"),
        ("emoji", "Family 👩‍👩‍👧‍👦, thumbs 👍🏽, flags 🇫🇷🇯🇵, faces 😀😃, heart ❤️ and 🚀."),
        ("spaces_runs", "one two  three     five"),
        ("leading_trailing_spaces", "   leading and trailing   "),
        ("whitespace_mix", "a\tb\nc\r\nd\n\n\ne   \nf \t \n  g\n"),
        ("digits", "1 12 123 1234 1234567 3.14159 2026-11-28 007 1,000,000 x86_64"),
        ("contractions", "I'm you're they've we'll he'd it's DON'T I'M You'RE isn't o'clock 's"),
        ("python_code", PYTHON),
        ("c_code", C_CODE),
        ("empty", ""),
        ("single_space", " "),
        ("single_newline", "\n"),
        ("long_mixed", LONG),
    ]


ALL_SPECIAL_STRINGS = ["<|begin_of_text|>", "<|eot_id|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
                       "<s>", "</s>", "<unk>", "[INST]"]


def special_cases(fam):
    """Cases that embed the family's own special tokens and the extra added tokens."""
    own = {
        "gpt2": ["<|endoftext|>"],
        "llama3": ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
        "qwen2": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        "smollm2": ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        "llama2": ["<s>", "</s>", "<unk>"],
        "mistral": ["<s>", "</s>", "[INST]", "[/INST]"],
    }[fam]
    a, b = own[0], own[1 % len(own)]
    c = own[-1]
    return [
        ("special_own_mid_sentence", f"Hello {a}world{b} and {c} again"),
        ("special_own_adjacent", f"{a}{b}{c}{a}x{b}  {c}\n{a}"),
        ("special_own_at_edges", f"{a}start middle end{c}"),
        ("special_chat_like", f"{a}user\nWhat is 2+2?{b}\n{c} assistant: 4"),
        ("special_all_families", "tokens: " + " ".join(ALL_SPECIAL_STRINGS) + " " + "".join(ALL_SPECIAL_STRINGS)),
        ("added_non_special_normalized", "call <tool_call>{\"name\": \"f\"}<tool_call> and  <tool_call>x"),
        ("added_lstrip_mask", "fill the   <mask> here and<mask>there <mask>"),
        ("added_rstrip_pad", "pad<|pad|>   after and <|pad|>\nend<|pad|>"),
        ("added_single_word", "[ACT] go [ACT]now x[ACT] ([ACT]) [ACT]."),
        ("added_mixed", f"{a}<tool_call> <mask>[ACT]<|pad|> {b}"),
    ]


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------
def corpus_lines():
    # Line by line (keeping the newline) so that whitespace-only pieces are seen too.
    return [ln for ln in CORPUS.splitlines(keepends=True)]


MIN_FREQUENCY = 1
SP_ALPHABET_SIZE = 110


def sp_alphabet():
    """The SP_ALPHABET_SIZE most frequent non-whitespace characters of the corpus
    (ties broken by code point), as a set."""
    counts = {}
    for ch in CORPUS:
        if not ch.isspace():
            counts[ch] = counts.get(ch, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], ord(kv[0])))
    return {ch for ch, _ in ranked[:SP_ALPHABET_SIZE]}


def train_model(fam, spec):
    """Train the BPE vocab and merges with the family's own splitting (SentencePiece
    families train on ▁-prefixed words, like SentencePiece's split_by_whitespace)."""
    skeleton = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": spec["normalizer"] if spec["kind"] == "byte" else None,
        "pre_tokenizer": spec["pre_tokenizer"] if spec["kind"] == "byte" else
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": {}, "merges": []},
    }
    tok = Tokenizer.from_str(json.dumps(skeleton))
    lines = corpus_lines()
    if spec["kind"] == "byte":
        trainer = trainers.BpeTrainer(
            vocab_size=spec["vocab_size"], min_frequency=MIN_FREQUENCY, show_progress=False,
            special_tokens=spec["specials_front"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    else:
        # Keep rare characters (most emoji and CJK, \t \n \r) out of the vocab so
        # that byte fallback is exercised, as with the real 32k vocabularies.  The
        # trainer's own limit_alphabet breaks ties between equally frequent
        # characters in hash order, so the choice is made here, deterministically.
        keep = sp_alphabet()
        lines = ["".join(ch if ch in keep else " " for ch in ln) for ln in lines]
        n_front = len(spec["specials_front"]) + 256
        trainer = trainers.BpeTrainer(
            vocab_size=spec["vocab_size"] - n_front, min_frequency=MIN_FREQUENCY, show_progress=False,
            special_tokens=[])
    tok.train_from_iterator(lines, trainer=trainer)
    j = json.loads(tok.to_str())
    return j["model"]["vocab"], j["model"]["merges"]


def build(fam, spec):
    vocab, merges = train_model(fam, spec)
    if spec["kind"] == "sp":
        # <unk> <s> </s> [controls] <0x00>..<0xFF> first, as in the real vocabularies
        # (Mistral v0.3 puts its control tokens between </s> and the bytes).
        ordered = list(spec["specials_front"]) + ["<0x%02X>" % i for i in range(256)]
        trained = sorted(vocab.items(), key=lambda kv: kv[1])
        new = {t: i for i, t in enumerate(ordered)}
        for t, _ in trained:
            if t not in new:
                new[t] = len(new)
        vocab = new
    else:
        for t in spec["specials_in_vocab_end"]:
            vocab[t] = len(vocab)
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": spec["normalizer"], "pre_tokenizer": spec["pre_tokenizer"],
        "post_processor": None, "decoder": spec["decoder"],
        "model": dict(type="BPE", **spec["model_flags"], vocab=vocab, merges=merges),
    }
    tok = Tokenizer.from_str(json.dumps(tj, ensure_ascii=False))
    # Family special tokens (ids: existing vocab entries, or appended after the vocab).
    norm = spec["special_normalized"]
    specials = spec["specials_front"] + spec["specials_in_vocab_end"] + spec["specials_added_end"]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=norm, lstrip=False, rstrip=False,
                                       single_word=False) for s in specials])
    for e in EXTRA_ADDED:
        t = AddedToken(e["content"], special=e["special"], normalized=e["normalized"], lstrip=e["lstrip"],
                       rstrip=e["rstrip"], single_word=e["single_word"])
        if e["special"]:
            tok.add_special_tokens([t])
        else:
            tok.add_tokens([t])
    # Post-processor last: TemplateProcessing needs the BOS id.
    tj = json.loads(tok.to_str())
    pp = json.loads(json.dumps(spec["post_processor"]))
    if spec["template_bos"]:
        bos = spec["template_bos"]
        bos_id = tok.token_to_id(bos)
        tp = pp if pp["type"] == "TemplateProcessing" else pp["processors"][-1]
        tp["special_tokens"][bos]["ids"] = [bos_id]
    tj["post_processor"] = pp
    tok = Tokenizer.from_str(json.dumps(tj, ensure_ascii=False))
    check_flags(fam, spec, json.loads(tok.to_str()))
    return tok


def check_flags(fam, spec, tj):
    """The saved JSON must carry the real family's pipeline and model flags."""
    for key in ("normalizer", "pre_tokenizer", "decoder", "post_processor"):
        want = spec[key]
        if key == "post_processor" and spec["template_bos"]:
            continue  # ids filled in; compared structurally below
        if tj[key] != want:
            raise SystemExit(f"{fam}: {key} serialised as {tj[key]!r}, want {want!r}")
    for k, v in spec["model_flags"].items():
        if tj["model"].get(k) != v:
            raise SystemExit(f"{fam}: model.{k} = {tj['model'].get(k)!r}, want {v!r}")


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def write_tokenizer_config(tok, spec, famdir):
    from transformers import PreTrainedTokenizerFast
    cfg = dict(spec["config"])
    chat = cfg.pop("chat_template", None)
    kwargs = {k: v for k, v in cfg.items()}
    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(tok.to_str()), **kwargs)
    if chat:
        fast.chat_template = chat
    with tempfile.TemporaryDirectory() as tmp:
        fast.save_pretrained(tmp)
        with open(os.path.join(tmp, "tokenizer_config.json"), encoding="utf-8") as f:
            tc = json.load(f)
        if chat and "chat_template" not in tc:
            # Newer transformers write the template to chat_template.jinja;
            # keep it in tokenizer_config.json, where older files have it.
            jinja = os.path.join(tmp, "chat_template.jinja")
            if os.path.exists(jinja):
                with open(jinja, encoding="utf-8") as f:
                    tc["chat_template"] = f.read()
    with open(os.path.join(famdir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(tc, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


def case_record(tok, name, text):
    enc = tok.encode(text, add_special_tokens=False)
    ids = list(enc.ids)
    return {
        "name": name,
        "text": text,
        "ids": ids,
        "tokens": list(enc.tokens),
        "decoded": tok.decode(ids, skip_special_tokens=False),
        "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        "ids_with_special": list(tok.encode(text, add_special_tokens=True).ids),
    }


def versions():
    return {"tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def main():
    os.makedirs(OUT, exist_ok=True)
    summary = []
    for fam, spec in FAMILIES.items():
        famdir = os.path.join(OUT, fam)
        if os.path.isdir(famdir):
            shutil.rmtree(famdir)
        os.makedirs(famdir)
        tok = build(fam, spec)
        tok_path = os.path.join(famdir, "tokenizer.json")
        # Tokenizer.save writes pretty JSON with the keys in the library's order.
        tok.save(tok_path, pretty=True)
        write_tokenizer_config(tok, spec, famdir)

        cases = [case_record(tok, n, t) for n, t in base_cases() + special_cases(fam)]
        names = [c["name"] for c in cases]
        assert len(names) == len(set(names))
        expected = {"writer": WRITER, "versions": versions(), "family": fam, "cases": cases}
        with open(os.path.join(famdir, "expected.json"), "w", encoding="utf-8") as f:
            f.write(dumps(expected))

        # Determinism / round trip: the saved file alone reproduces every case.
        again = Tokenizer.from_file(tok_path)
        for c in cases:
            r = case_record(again, c["name"], c["text"])
            if r != c:
                raise SystemExit(f"{fam}/{c['name']}: reloaded tokenizer.json disagrees: {r} vs {c}")

        tj = json.loads(open(tok_path, encoding="utf-8").read())
        sizes = {n: os.path.getsize(os.path.join(famdir, n)) for n in sorted(os.listdir(famdir))}
        summary.append((fam, len(tj["model"]["vocab"]), len(tj["model"]["merges"]), len(tj["added_tokens"]),
                        tok.get_vocab_size(with_added_tokens=True), len(cases), sizes))

    total = 0
    print("family    vocab merges added total cases  files (bytes)")
    for fam, nv, nm, na, nt, nc, sizes in summary:
        total += sum(sizes.values())
        files = ", ".join(f"{n} {s}" for n, s in sizes.items())
        print(f"{fam:9s} {nv:5d} {nm:6d} {na:5d} {nt:5d} {nc:5d}  {files}")
    print(f"total {total} bytes in {OUT}")
    h = hashlib.sha256()
    for fam in FAMILIES:
        for n in sorted(os.listdir(os.path.join(OUT, fam))):
            with open(os.path.join(OUT, fam, n), "rb") as f:
                h.update(f.read())
    print("sha256 of all fixture files:", h.hexdigest())
    print("versions:", json.dumps(versions()))


if __name__ == "__main__":
    sys.exit(main())
