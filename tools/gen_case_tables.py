#!/usr/bin/env python3
"""gen_case_tables.py - Python's str.lower() / str.upper() case mappings, as C.

Chat templates call | lower, | upper, .lower(), .upper() and | capitalize on
text; transformers runs them in Python, so sft.h's template engine maps case as
the Python that renders the reference fixtures does (3.11: Unicode 14.0):

    tools/.venv/bin/python tools/gen_case_tables.py > /tmp/case.h   # then paste into sft.h

Single-code-point mappings are runs {first, last, delta, stride}: every code
point first, first + stride, ..., last maps to itself + delta (stride 1 or 2).
Mappings to several code points (str.upper('ß') == 'SS') are listed one by one.
"""
import sys
import unicodedata

def mappings(f):
    single, multi = [], []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        m = f(chr(cp))
        if m == chr(cp):
            continue
        if len(m) == 1:
            single.append((cp, ord(m) - cp))
        else:
            multi.append((cp, [ord(x) for x in m]))
    runs = []
    for cp, d in single:
        if runs:
            first, last, delta, stride = runs[-1]
            step = cp - last
            if delta == d and step in (1, 2) and (first == last or step == stride):
                runs[-1] = (first, cp, delta, step)
                continue
        runs.append((cp, cp, d, 1))
    return runs, multi

def emit(name, rows, width):
    print("static const int32_t %s[][%d] = {" % (name, width))
    line = "   "
    for row in rows:
        item = " {" + ", ".join(("0x%X" % v) if v >= 0 else str(v) for v in row) + "},"
        if len(line) + len(item) > 118:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")

print("/* Python %s str.lower/str.upper (Unicode %s), tools/gen_case_tables.py */"
      % (sys.version.split()[0], unicodedata.unidata_version))
for what, f in (("lower", str.lower), ("upper", str.upper)):
    runs, multi = mappings(f)
    emit("sft__case_%s_runs" % what, runs, 4)
    assert max(len(m) for _, m in multi) <= 3
    emit("sft__case_%s_multi" % what, [[cp] + m + [0] * (3 - len(m)) for cp, m in multi], 4)
