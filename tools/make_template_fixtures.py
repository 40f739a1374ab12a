#!/usr/bin/env python3
"""make_template_fixtures.py - chat template fixtures for sft.h's Jinja engine.

Writes tests/fixtures/templates/:

  trl/*.jinja          every chat template TRL ships in trl/chat_templates/
                       (originals and *_training variants), byte for byte
                       (TRL is Apache-2.0; the templates come from the model
                       repositories named in TRL's chat_templates/README.md)
  tokenizer/           the qwen2 tokenizer fixture with the special tokens a
                       chat template reads (bos_token "<|endoftext|>", eos
                       "<|im_end|>", pad, additional_special_tokens) and no
                       template of its own
  cases.json           per template and conversation: what transformers'
                       apply_chat_template renders (or the error it raises),
                       and for templates with {% generation %} blocks the
                       assistant mask TRL trains with
                       (apply_chat_template(tokenize=True,
                       return_assistant_tokens_mask=True)); per template, what
                       TRL's SFTTrainer does with it under assistant_only_loss
                       (the template has markers / TRL swaps in X_training /
                       TRL's ValueError)

    tools/.venv/bin/python tools/make_template_fixtures.py

Every conversation runs through every template (a template that cannot take
one raises, and the error is recorded: the C test expects an error there
too, and for raise_exception the same message). strftime_now is fixed to
2026-01-15 12:00 UTC (passed as a keyword argument, which shadows
transformers' global), so dates are reproducible; the C test passes the same
clock. Token ids are recorded as a 64-bit FNV-1a hash of their 4-byte little
endian values (the mask is compared token by token, the ids by hash).

It also prints the table of TRL's originals that sft.h recognises
(sft__trl_originals: FNV-1a 64 and length of each X.jinja that has an
X_training.jinja).
"""

import copy
import datetime
import json
import os
import platform
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "templates")
SRC_TOK = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "qwen2")
WRITER = "tools/make_template_fixtures.py"

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jinja2  # noqa: E402
import tokenizers  # noqa: E402
import transformers  # noqa: E402
import trl  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402
from transformers.utils.chat_template_utils import _compile_jinja_template as ctu_compile  # noqa: E402
from trl import chat_template_utils as ctu  # noqa: E402

transformers.logging.set_verbosity_error()

NOW = 1768478400   # 2026-01-15 12:00:00 UTC


def strftime_now(fmt):
    return datetime.datetime.fromtimestamp(NOW).strftime(fmt)


# --------------------------------------------------------------------------------
# conversations

SYS = {"role": "system", "content": "You are a terse assistant.\nAnswer in one line."}
U1 = {"role": "user", "content": "What is 2 + 2?  "}
A1 = {"role": "assistant", "content": " 4.\n"}
U2 = {"role": "user", "content": "And in French? Écris « quatre » 😀"}
A2 = {"role": "assistant", "content": "Quatre — {{ not a tag }} {% neither %} ✓"}
UW = {"role": "user", "content": "What's the weather in Paris?"}
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "The city name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "get_time", "description": "Get the local time.",
        "parameters": {"type": "object", "properties": {
            "timezone": {"type": "string", "description": "An IANA time zone"},
            "hour24": {"type": "boolean", "description": "24-hour clock"},
            "precision": {"type": "integer", "description": "Digits of seconds"}},
            "required": ["timezone"]}}},
]
CALL = {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}
A_TC = {"role": "assistant", "content": "", "tool_calls": [CALL]}
T1 = {"role": "tool", "name": "get_weather", "content": "{\"temperature\": 21, \"unit\": \"celsius\"}"}
A3 = {"role": "assistant", "content": "It is 21 °C in Paris."}
A_R = {"role": "assistant", "content": "4.", "reasoning_content": "Two plus two\nis four.", "thinking": "Two plus two\nis four."}


def blocks(m):
    """content as a list of text blocks (the form VLM templates read)"""
    m = dict(m)
    m["content"] = [{"type": "text", "text": m["content"]}]
    return m


def string_args(m):
    m = copy.deepcopy(m)
    for tc in m["tool_calls"]:
        tc["function"]["arguments"] = json.dumps(tc["function"]["arguments"])
    return m


# (name, messages, add_generation_prompt, tools, kwargs)
CONVERSATIONS = [
    ("gen_prompt", [U1], True, None, {}),
    ("no_gen_prompt", [U1], False, None, {}),
    ("one_turn", [U1, A1], False, None, {}),
    ("system", [SYS, U1, A1], False, None, {}),
    ("multi_turn", [U1, A1, U2, A2], False, None, {}),
    ("multi_turn_gen", [SYS, U1, A1, U2], True, None, {}),
    ("tools", [UW, A_TC, T1, A3], False, TOOLS, {}),
    ("tools_gen", [SYS, UW], True, TOOLS, {}),
    ("tools_string_args", [UW, string_args(A_TC), T1, A3], False, TOOLS, {}),
    ("reasoning", [U1, A_R, U2, A2], False, None, {}),
    ("thinking_on", [U1, A1], False, None, {"enable_thinking": True}),
    ("thinking_on_gen", [U1], True, None, {"enable_thinking": True}),
    ("thinking_off", [U1, A1], False, None, {"enable_thinking": False}),
    ("thinking_off_gen", [U1], True, None, {"enable_thinking": False}),
    ("content_blocks", [blocks(SYS), blocks(U1), blocks(A1)], False, None, {}),
]


# Engine cases: small templates, each rendered by transformers' Jinja environment
# (the compiled template's render with these variables). "unsupported": Python
# renders it, sft.h refuses it on purpose (SFT_ERR_UNSUPPORTED: Python's
# final-sigma rule, the repr of characters outside the ranges sft.h knows
# Python prints as they are).
EM = [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi  there\n"},
      {"role": "assistant", "content": " Hello! ß é 日本"}]
ENGINE = [
("{% set x = 1 %}{% for m in [1,2] %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}", {}),
("{% macro f() %}{{ y }}{% endmacro %}{% set y = 1 %}{{ f() }}{% set y = 2 %}{{ f() }}", {}),
("{% if true %}{% set z = 5 %}{% endif %}{{ z }}", {}),
("{% for a in [1] %}{% for b in [2] %}{% set c = 3 %}{% endfor %}{{ c }}{% endfor %}", {}),
("{% set x = 1 %}{% generation %}{% set x = 2 %}{{ x }}{% endgeneration %}{{ x }}", {}),
("a{% set x = 1 %}{% generation %}{% set x = 2 %}{{ x }}{% endgeneration %}{{ x }}", {}),
("{% for a in [1,2] %}{{ loop.previtem }}|{{ loop.nextitem }};{% endfor %}", {}),
("{{ [1,'a',None,True,1.5,{'k':'v'}] }}", {}),
("{{ 'a' ~ 1.0 ~ None }}", {}),
("{{ x.y }}", {}),
("{{ x is sequence }}{{ x is iterable }}{{ x|length }}", {}),
("{{ messages[5] }}|{{ {'a':1}['b'] }}|{{ 'abc'['x'] }}", {"messages":[1]}),
("{{ 1/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 1e16 }} {{ 0.00001 }} {{ 1e15 }} {{ 7 % -3 }} {{ -7 // 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
("{% set a, b = [1, 2] %}{{ a }}{{ b }}", {}),
("{% for k, v in {'b':1,'A':2}|dictsort %}{{k}}{% endfor %}", {}),
("{{ 'a b  c'.split() }}{{ ' x '.strip() }}{{ 'a,b,,c'.split(',') }}{{ 'a,b,c'.split(',', 1) }}{{ '  a b '.split(None, 1) }}{{ 'a,b,c'.rsplit(',', 1) }}", {}),
("{% macro f(a, b=2) %}{{a}}{{b}}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1) }}{{ f(1, 3, 4) }}{{ f(1, c=5) }}", {}),
("{% macro f(a, b=2) %}{{a}}{{b}}{% endmacro %}{{ f(1, 3, 4) }}", {}),
("{% for m in messages %}{{ m.role | upper }}: {{ m['content'] | trim }}|{% endfor %}", {"messages": EM}),
("{% for m in messages %}{{ loop.index }}/{{ loop.length }} {{ loop.first }} {{ loop.last }} {{ loop.revindex }}{% endfor %}", {"messages": EM}),
("{% for m in messages if m.role != 'system' %}{{ loop.index0 }}{{ m.role }}{% else %}none{% endfor %}", {"messages": EM}),
("{% for m in [] %}x{% else %}empty{% endfor %}", {}),
("{{ messages | tojson }}\n{{ messages[1] | tojson(indent=2) }}\n{{ {'b': 1, 'a': [1, 2.5, None, True]} | tojson(sort_keys=True) }}", {"messages": EM}),
("{{ 'é\"\\\\\n\t' | tojson }} {{ 'é😀' | tojson(ensure_ascii=True) }}", {}),
("  {% if true %}\n    x\n  {% endif %}\n  {{ 'y' }}\n{# c #}\n  z {%- if true -%}  w  {%- endif %} \n", {}),
("{%- for m in messages -%}\n  <{{ m.role }}>\n{%- endfor %}\n\n", {"messages": EM}),
("{% raw %}{{ not }}{% endraw %} {%+ if true %}a{% endif %}", {}),
("{{ raise_exception('Boom: ' ~ 3) }}", {}),
("{% set ns = namespace(a=1, b=[]) %}{% for i in range(3) %}{% set ns.a = ns.a + i %}{% endfor %}{{ ns.a }}", {}),
("{{ range(5) | list }}{{ range(1, 10, 3) | list }}{{ range(5, 0, -2) | list }}", {}),
("{{ x | default('d') }}{{ '' | default('e', true) }}{{ none | default('f') }}", {}),
("{{ [3,1,2] | sort }}{{ ['b','A','c'] | sort }}{{ [3,1,2] | sort(reverse=true) }}{{ [1,2,2,1] | unique | list }}", {}),
("{{ messages | map(attribute='role') | join(', ') }}|{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'in', ['user']) | map(attribute='role') | list }}", {"messages": EM}),
("{{ ['a','b'] | map('upper') | list }}{{ [1,None,2] | select | list }}{{ [1,2,3,4] | reject('odd') | list }}", {}),
("{{ 'Hello World'.lower() }}{{ 'hello'.capitalize() }}{{ 'ab'.upper() }}{{ 'ßx'.upper() }}{{ 'ÄÖ'.lower() }}", {}),
("{{ 'abc'.startswith('a') }}{{ 'abc'.endswith(('x','c')) }}{{ 'a-b'.replace('-', '+') }}{{ 'aaa'.replace('a', 'b', 2) }}", {}),
("{{ '{} and {name}'.format(1, name='x') }}", {}),
("{{ 'abcdef'[1:4] }}{{ 'abcdef'[::-1] }}{{ 'abcdef'[-2:] }}{{ [1,2,3][::2] }}{{ 'é日本'[1] }}{{ 'é日本'|length }}", {}),
("{{ messages[-1].content }}{{ messages[::-1] | map(attribute='role') | list }}", {"messages": EM}),
("{{ 1 if x else 2 }}{{ 'a' if false }}{{ (1, 2) }}{{ (1,) }}{{ () }}", {}),
("{{ 1 < 2 < 3 }}{{ 'a' in 'cat' }}{{ 3 not in [1,2] }}{{ 'k' in {'k': 1} }}{{ 1 == 1.0 }}{{ true == 1 }}", {}),
("{{ x > 1 }}", {}),
("{{ 'a' + 1 }}", {}),
("{{ none + 1 }}", {}),
("{{ [1] + [2] }}{{ 'ab' * 3 }}", {}),
("{{ x.y.z }}", {}),
("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}{{ {'a':1}.get('a') }}{{ {'a':1}.get('b', 'no') }}{{ {'a':1}.get('b') }}", {}),
("{{ 'x' is string }}{{ 1 is number }}{{ {} is mapping }}{{ [] is sequence }}{{ 'a' is iterable }}{{ none is none }}{{ true is boolean }}{{ 1 is integer }}{{ 1.0 is float }}{{ x is undefined }}{{ 3 is divisibleby 3 }}{{ 2 is even }}", {}),
("{{ tools | length if tools else 0 }}{{ tools is none }}", {"tools": None}),
("{% set x %}inner {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}abc{% endset %}{{ y }}", {}),
("{% filter upper %}hello {{ 'x' }}{% endfilter %}", {}),
("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a }}", {}),
("{% for i in range(10) %}{% if i == 3 %}{% break %}{% endif %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% endfor %}", {}),
("{{ strftime_now('%Y-%m-%d %d %b %Y') }}", {}),
("{{ 'a\\u00e9\\x41\\101' }} {{ \"q'\" }} {{ 'it''s' }}", {}),
("{{ 0x1F }} {{ 1_000 }} {{ 1.5e3 }} {{ 0.1 + 0.2 }} {{ 10 / 3 }} {{ 2 ** -1 }} {{ -0.0 }} {{ 1e100 }}", {}),
("{{ [1, 2] == [1, 2] }}{{ {'a': 1} == {'a': 1} }}{{ (1,) == [1] }}{{ x == y }}", {}),
("{{ 'a' | tojson }}{{ 1.0 | tojson }}{{ 10**20 if false else 5 }}", {}),
("{%- generation %}X{% endgeneration -%}Y{% generation %}Z{% endgeneration %}", {}),
("{{ 'ab' }}{% generation %}X{% endgeneration %}{% macro m() %}{% generation %}in{% endgeneration %}{% endmacro %}{{ m() }}Q", {}),
("{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}", {"messages": EM}),
("{{ x | items | list }}{{ {'a': 1} | items | list }}", {}),
("{{ messages | length }}{{ messages[0] | length }}{{ 'abc' | list }}{{ {'a':1,'b':2} | list }}{{ [1,[2]] | first }}{{ [1,2] | last }}", {"messages": EM}),
("{{ 'a b' | replace(' ', '_') }}{{ 1.9 | int }}{{ '3' | int }}{{ '3.5' | int }}{{ 'x' | int(7) }}{{ '2.5' | float }}{{ 3 | float }}{{ -3 | abs }}", {}),
("{{ '  a\n\n b\n' | indent(2) }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent('>', blank=true) }}", {}),
("{{ [1,2,3] | sum }}{{ [3,1,2] | min }}{{ [3,1,2] | max }}{{ ['a','B'] | max }}", {}),
("{{ 'x' | e }}{{ '<a>' | e }}{{ '<b>' | safe }}{{ ('<b>' | safe) + '<i>' }}{{ '<i>' + ('<b>' | safe) }}", {}),
("{% set s = 'a' | safe %}{{ s ~ '<' }}{{ [s, '<'] | join }}", {}),
("{{ 'hello world' | title }}", {}),
("{{ x | tojson }}", {}),
("{% for x in 5 %}{% endfor %}", {}),
("{% include 'x' %}", {}),
("{{ 'a' | nosuchfilter }}", {}),
("{% if x %}", {}),
("{% for x in y %}{% endif %}", {}),
("{{ (1 }}", {}),
("{% set x = [] %}{{ x.append(1) }}", {}),
("{{ messages[0].get('role') }}{{ messages[0].items() | list | length }}{{ messages[0].keys() | list }}", {"messages": EM}),
("{{ {'a': 1}.items() }}", {}),
("{% set g = [1,2] | select %}{{ g | list }}{{ g | list }}{% if g %}T{% endif %}", {}),
("{{ ['a','b'] | reverse | list }}{{ 'abc' | reverse }}", {}),
("{{ [1,2] | select | length }}", {}),
("{% for i in range(200000) %}{% endfor %}", {}),
("{{ 'a' is lower }}{{ 'A' is upper }}{{ 'é'.upper() }}", {}),
("{{ 'Σa'.lower() }}", {}),
("{{ 1 is sameas 1 }}{{ none is sameas none }}{{ true is sameas true }}", {}),
("{{ loop.index }}", {}),
("{{ x }}", {"x": [1, "a\nb", {"k": None}, 2.5, True]}),
("{{ x }}", {"x": "日本"}),
("{{ [x] }}", {"x": "日本"}),
("{{ [x] }}", {"x": "\u2028"}),
]
UNSUPPORTED = {"{{ 'Σa'.lower() }}"}


def engine_case(template, variables):
    blocks, spans = [], []
    try:
        ct = ctu_compile(template)
        with ct.environment.activate_tracker(blocks, spans):
            for b in ct.generate(**dict(variables, strftime_now=strftime_now)):
                blocks.append(b)
        text = "".join(blocks)
        out = {"text": text, "spans": [[len(text[:a].encode()), len(text[:b].encode())] for a, b in spans]}
    except Exception as e:  # noqa: BLE001
        out = {"error": error_of(e)}
    unsupported = template in UNSUPPORTED or ("[x]" in template and variables.get("x") == "\u2028")
    return dict({"template": template, "variables": variables, "unsupported": unsupported}, **out)


# --------------------------------------------------------------------------------

def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def ids_hash(ids):
    return "%016x" % fnv1a64(b"".join(int(i).to_bytes(4, "little", signed=True) for i in ids))


def runs(mask):
    out, start = [], None
    for i, m in enumerate(list(mask) + [0]):
        if m and start is None:
            start = i
        elif not m and start is not None:
            out.append([start, i])
            start = None
    return out


def error_of(e):
    return {"type": type(e).__name__, "message": str(e)}


def make_tokenizer():
    dst = os.path.join(OUT, "tokenizer")
    os.makedirs(dst, exist_ok=True)
    shutil.copyfile(os.path.join(SRC_TOK, "tokenizer.json"), os.path.join(dst, "tokenizer.json"))
    cfg = json.load(open(os.path.join(SRC_TOK, "tokenizer_config.json"), encoding="utf-8"))
    cfg.pop("chat_template", None)
    cfg["bos_token"] = "<|endoftext|>"
    cfg["additional_special_tokens"] = ["<|im_start|>", "<|im_end|>"]
    with open(os.path.join(dst, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
    return AutoTokenizer.from_pretrained(dst)


def render(tok, template, conv):
    name, messages, agp, tools, kwargs = conv
    try:
        text = tok.apply_chat_template(copy.deepcopy(messages), tools=copy.deepcopy(tools), chat_template=template, tokenize=False,
                                       add_generation_prompt=agp, strftime_now=strftime_now, **kwargs)
    except Exception as e:  # noqa: BLE001 - every failure is recorded as the template's answer
        return {"error": error_of(e)}
    out = {"text": text}
    if ctu.has_generation_markers(template) and not agp:
        try:
            enc = tok.apply_chat_template(copy.deepcopy(messages), tools=copy.deepcopy(tools), chat_template=template, tokenize=True,
                                          return_dict=True, return_assistant_tokens_mask=True, strftime_now=strftime_now, **kwargs)
            assert tok.decode(enc["input_ids"]) == text
            out["n_tokens"] = len(enc["input_ids"])
            out["ids_fnv"] = ids_hash(enc["input_ids"])
            out["mask"] = runs(enc["assistant_masks"])
        except Exception as e:  # noqa: BLE001
            out["mask_error"] = error_of(e)
    return out


def trl_rule(tok, name, template):
    """what SFTTrainer(assistant_only_loss=True) does with this template"""
    if ctu.has_generation_markers(template):
        return {"markers": True}
    tok = copy.copy(tok)
    tok.chat_template = template
    try:
        t = ctu.get_training_chat_template(tok)
    except ValueError as e:
        return {"markers": False, "error": str(e)}
    if t is None:
        return {"markers": False, "training": None}
    d = os.path.join(os.path.dirname(trl.__file__), "chat_templates")
    found = [f[:-6] for f in sorted(os.listdir(d)) if f.endswith(".jinja") and open(os.path.join(d, f), encoding="utf-8").read() == t]
    assert len(found) == 1, (name, found)
    return {"markers": False, "training": found[0]}


def versions():
    return {"trl": trl.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__,
            "jinja2": jinja2.__version__, "python": platform.python_version()}


def main():
    src = os.path.join(os.path.dirname(trl.__file__), "chat_templates")
    names = sorted(f[:-6] for f in os.listdir(src) if f.endswith(".jinja"))
    trl_dir = os.path.join(OUT, "trl")
    if os.path.isdir(trl_dir):
        shutil.rmtree(trl_dir)
    os.makedirs(trl_dir)
    for n in names:
        shutil.copyfile(os.path.join(src, n + ".jinja"), os.path.join(trl_dir, n + ".jinja"))
    tok = make_tokenizer()
    templates = []
    n_ok = n_err = n_masks = 0
    for n in names:
        text = open(os.path.join(src, n + ".jinja"), encoding="utf-8").read()   # as TRL reads it (universal newlines)
        cases = []
        for conv in CONVERSATIONS:
            r = render(tok, text, conv)
            cases.append(dict({"conversation": conv[0]}, **r))
            n_ok += "text" in r
            n_err += "error" in r
            n_masks += "mask" in r
        templates.append({"name": n, "trl": trl_rule(tok, n, text), "cases": cases})
        print("%-38s %2d rendered, %2d errors, %2d masks" % (n, sum("text" in c for c in cases), sum("error" in c for c in cases),
                                                             sum("mask" in c for c in cases)))
    doc = {
        "versions": versions(),
        "writer": WRITER,
        "now": NOW,
        "tokenizer": "tests/fixtures/templates/tokenizer",
        "notes": ("templates[i].cases[j]: conversations[j] through trl/<name>.jinja by transformers' apply_chat_template; "
                  "text, or error {type, message}; mask: [start, end) token runs of TRL's assistant mask"),
        "conversations": [{"name": c[0], "messages": c[1], "add_generation_prompt": c[2], "tools": c[3], "kwargs": c[4]}
                          for c in CONVERSATIONS],
        "templates": templates,
        "engine": [engine_case(t, v) for t, v in ENGINE],
    }
    text = json.dumps(doc, ensure_ascii=False, indent=None, separators=(",", ":"), allow_nan=False)
    text = text.replace('{"name":"', '\n{"name":"').replace('{"conversation":"', '\n {"conversation":"').replace('{"template":"', '\n {"template":"') + "\n"
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        f.write(text)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print("%d templates x %d conversations: %d rendered, %d errors, %d masks; %d bytes in %s" %
          (len(names), len(CONVERSATIONS), n_ok, n_err, n_masks, size, OUT))
    print("versions:", json.dumps(versions()))
    print("/* sft__trl_originals */")
    for n in names:
        if n + "_training" in names:
            b = open(os.path.join(src, n + ".jinja"), encoding="utf-8").read().encode()
            print('    {0x%016xull, %d, "%s"},' % (fnv1a64(b), len(b), n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
