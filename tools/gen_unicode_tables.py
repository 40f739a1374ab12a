#!/usr/bin/env python3
"""gen_unicode_tables.py - the Unicode tables sft.h's tokenizer needs, as C.

The pre-tokenizer patterns of GPT-2, Llama-3, Qwen2 and SmolLM2 use \\p{L}
(letters), \\p{N} (numbers) and \\s (white space); an added token's single_word
flag uses the regex \\w (word characters). Hugging Face tokenizers 0.22 matches
them with an Oniguruma that follows Unicode 16.0, so the tables come from
unicodedata2 16.0.0 (pip install unicodedata2==16.0.0), and so do the NFC tables
(Hugging Face's own NFC uses older Unicode data: the combining classes of about
a hundred marks added since differ):

    python3 tools/gen_unicode_tables.py > /tmp/tables.h   # then paste into sft.h

Each table is a sorted list of inclusive code point ranges.
"""
import sys
import unicodedata2 as ud

def ranges(pred):
    out, start = [], None
    for cp in range(0x110000):
        if pred(cp):
            if start is None:
                start = cp
        elif start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out

def emit(name, rows, what):
    """A C table of rows of code points (ranges or triples)."""
    print("/* %s: %d entries (Unicode %s) */" % (what, len(rows), ud.unidata_version))
    print("static const uint32_t %s[][%d] = {" % (name, len(rows[0])))
    line = "   "
    for row in rows:
        item = " {" + ", ".join("0x%X" % v for v in row) + "},"
        if len(line) + len(item) > 118:
            print(line)
            line = "   "
        line += item
    print(line)
    print("};")

# White_Space (Oniguruma's \s with Unicode): the PropList property.
WHITE = [(0x9, 0xD), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
         (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000)]

emit("sft__uni_letter", ranges(lambda c: ud.category(chr(c)).startswith("L")), "\\p{L}: general category L*")
emit("sft__uni_number", ranges(lambda c: ud.category(chr(c)).startswith("N")), "\\p{N}: general category N*")
emit("sft__uni_space", WHITE, "\\s: the White_Space property")
WORD_CATS = ("Lu", "Ll", "Lt", "Lm", "Lo", "Nl", "Mn", "Mc", "Me", "Nd", "Pc")
emit("sft__uni_word", ranges(lambda c: ud.category(chr(c)) in WORD_CATS or c in (0x200C, 0x200D)),
     "\\w: letters, letter numbers, marks, decimal digits, connector punctuation, joiners")

# NFC: canonical decompositions (one level; Hangul syllables are algorithmic),
# with bit 31 of the second code point set when the pair composes back (a
# primary composite), and canonical combining classes as ranges.
def nfc_tables():
    dec = []
    for cp in range(0x110000):
        c = chr(cp)
        if 0xAC00 <= cp <= 0xD7A3:
            continue
        d = ud.decomposition(c)
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        d0, d1 = (parts[0], 0) if len(parts) == 1 else parts
        prim = len(parts) == 2 and ud.normalize("NFC", chr(d0) + chr(d1)) == c
        dec.append((cp, d0, d1 | (0x80000000 if prim else 0)))
    ccc, prev = [], None
    for cp in range(0x110000):
        k = ud.combining(chr(cp))
        if k and prev and prev[1] == cp - 1 and prev[2] == k:
            prev[1] = cp
        elif k:
            prev = [cp, cp, k]
            ccc.append(prev)
        else:
            prev = None
    return dec, ccc

dec, ccc = nfc_tables()
emit("sft__uni_decomp", dec, "canonical decompositions {cp, first, second | 1<<31 if they compose}")
emit("sft__uni_ccc", ccc, "canonical combining classes {first, last, class}")
