#!/usr/bin/env python3
"""make_quant_fixtures.py - bitsandbytes NF4/FP4 reference fixtures for sft.h.

Writes tests/fixtures/quant/quant.safetensors and tests/fixtures/quant/cases.json.
Tests read these files; they never run Python.

    tools/.venv/bin/python tools/make_quant_fixtures.py

Everything is quantized by bitsandbytes on the CPU (no GPU here), then compared
with a numpy re-implementation of the CUDA rule (what users' checkpoints were made
with).  The output is deterministic: rerunning writes the same bytes.

----------------------------------------------------------------------------------
Which code path bitsandbytes 0.50.2 takes on the CPU (read from the installed
package: bitsandbytes/backends/cpu/ops.py, backends/default/ops.py, functional.py,
and the symbols of libbitsandbytes_cpu.so; C source of the same era read from the
bitsandbytes repository, csrc/cpu_ops.cpp and csrc/kernels.cu)
----------------------------------------------------------------------------------
quantize_4bit (NF4/FP4): NO CPU kernel is registered (backends/cpu/ops.py has
  none; the compiled CPU library of 0.50.2 exports no 4-bit quantizer), so the
  op falls to the pure-PyTorch "default" kernel (backends/default/ops.py):
    absmax = max|x| per block (f32); full blocks: v = clamp(x * (1.0/absmax), -1, 1)
    with 1.0/absmax an f32 reciprocal (absmax clamped to >= 1e-38 for the
    reciprocal only); the LAST, PARTIAL block instead uses v = x / absmax (a true
    division) and stores the CLAMPED absmax (1e-38 if that block is all zero);
    code index = torch.bucketize(v, midpoints) with midpoints = (c[i]+c[i+1])/2 in
    f32 over the code sorted by value (right=False: a value exactly on a midpoint
    goes to the lower code, as on CUDA).  For FP4 the sorted order is then mapped
    back to bit patterns.
  Differences from the CUDA rule, by construction:
    * all-zero block: CPU v = 0 -> NF4 index 7 (0x77 bytes), FP4 index 0; CUDA
      v = 0 * inf = NaN -> index 0 for both (NF4 0x00 bytes).  Both dequantize to
      zero (NF4 CUDA gives -0.0).
    * NF4: the CPU midpoints are (c[i]+c[i+1])/2 in f32; the CUDA tree's literals
      (e.g. -0.8480964004993439f) are the f64 midpoints printed to 16 digits, which
      the compiler rounds straight to f32.  The exact midpoint of two f32 codes is
      an f32 tie; the f32 sum rounds it to even, the literal rounds by its printed
      digits: thresholds 0, 8, 12 and 14 differ by 1 ulp (CUDA - CPU in bits: +1,
      +1, -1, -1; threshold 0 is negative, so there the CUDA one is lower).  Values
      in between go to different codes.  Also the partial last block (division
      instead of reciprocal-multiply, 1 ulp) can differ.
      (np.float32(0.86...) also rounds twice and gets the CPU value, not the
      literal's: f32_literal() below rounds once, as a C compiler does.)
    * FP4: the CUDA pivots are rounded decimal literals (0.29166667f, 0.583333f,
      0.8333333f, 0.4166667f, 0.0859375f, 0.20833333f, 0.00260417f) and differ from
      the f32 midpoints of the code by -1, -6, -1, 0, 0, -1, +14 ulps; values
      between the two go to different codes.  The CUDA sign is "v < 0" then a tree
      on |v| (a tie at -pivot goes to the smaller magnitude), the CPU order is by
      signed value.  For |v| <= 0.0026 the CPU gives +0 code (0b0000) to small
      NEGATIVE values and -0 code (0b1000) to small POSITIVE ones, the CUDA rule
      the reverse (CUDA: x == 0 and -0.0 -> 0b0000; CPU: 0 -> 0b0000).
    * odd element count: the low nibble of the last byte codes a padding 0.0 of the
      last block on both (NF4 7, FP4 0; CUDA 0 if that block is all zero);
      cases.json records it as pad_nibble.
    * blocksize 32 on CUDA runs a separate kernel (kQuantizeBlockwise32, two
      blocks per warp); it is assumed here to use the same decision functions.
quantize_blockwise (the nested 8-bit quantization of absmax - offset, blocks of
  256, signed dynamic map): a CPU kernel IS registered and the compiled library
  libbitsandbytes_cpu.so is used (cquantize_blockwise_cpu_fp32 -> quantize_cpu).
  In 0.50.2 that is a 65536-entry LOOKUP TABLE, not a search (symbols
  build_quantize_lut / g_lut_cache in the .so): v = x * (1.0f/absmax); lut index
  = (uint16)((clamp(v,-1,1) + 1) * 0.5 * 65535 + 0.5); the table maps each of the
  65536 evenly spaced points in [-1, 1] to the first code whose upper midpoint is
  >= the point.  The resolution (3.05e-5) is coarser than the dynamic map's
  spacing near zero, so small |v| get a neighbouring code, not the nearest one.
  An all-zero 8-bit block is written as index 0.  On CUDA (kQuantizeBlockwise +
  dQuantize<0>): v = x * (1.0f/absmax), a 7-step binary search over the 256 sorted
  code values from pivot 127, then nearest of (pivot, neighbour) by comparing with
  the f32 midpoint (upper+val)*0.5f, a tie going to the pivot.
nested offset: offset = absmax.mean() (torch f32 mean; on CUDA the same call on
  the GPU, whose reduction order differs).
dequantize_4bit on CPU: columns odd -> default PyTorch path code[idx] * absmax;
  columns even -> the C library (dDequantizeNF4/FP4 constant trees) * absmax.
  With double quant: absmax = f32(f32(code8[q] * nested_absmax) + offset), two
  roundings, no FMA.  The recorded dequant equals code[idx] * absmax (f32) exactly
  for every case (checked below).

Measured on these fixture inputs (the script prints the same numbers):
  (a) 4-bit codes, CPU path vs the CUDA rule in f32:
      NF4: 96 of 86,169 differ: 64 in the all-zero block (CPU 7, CUDA 0) and 32
      planted (4 per f32 case: the CUDA literal at threshold 8 and the CPU
      midpoints at thresholds 0, 12, 14, each a tie on one side only).  Exact ties
      otherwise go to the lower code on both; no natural (unplanted) value and no
      partial last block (division on the CPU) changed a code.
      FP4: 966 of 42,957 differ; 867 only in the sign of a zero code (|v| <= 0.0026,
      both dequantize to +-0); 99 change the value: 88 are planted (CUDA pivots,
      CPU midpoints, -pivot ties; 11 per f32 case), 1 natural value in the f32
      bs256 cases (v between 0.583333f and the CPU midpoint 0.58333337) and 7
      natural values in the bf16 case (bf16 ratios land between pivot and midpoint).
  (b) nested offset: the CPU torch mean of the f32 absmax equals f32(double mean)
      in 6 of 11 double-quant cases; it is +2 ulps off (bs64 37x129 f32, nf4 and
      fp4), -1 ulp (bs256 37x129, nf4 and fp4) and -1 ulp (bs64 130x257).
  (c) nested 8-bit codes, CPU lookup table vs the CUDA dQuantize<0> rule given the
      same offset: 7 of 1,165 differ, all in the 523-block case (neighbouring
      codes, from the table's resolution); none in the 37x129 cases.  The numpy
      model of the CPU table (cpu_lut_quantize_blockwise) reproduces the library's
      codes exactly (0 mismatches), and the CUDA-rule model always picks a nearest
      code (checked on 500,000 random values).
  Raw absmax: CPU == CUDA rule in every case (the partial-block clamp to 1e-38
  only shows when a last block is all zero, not the case here).
----------------------------------------------------------------------------------

Tensors in quant.safetensors (metadata: versions, writer, quantized_on):
  dynamic_map                    f32[256]  create_dynamic_map(signed=True)
  <case>.input                   the input, its own dtype, [rows, cols]
  <case>.packed                  u8[(n+1)/2]  bitsandbytes CPU output, high nibble = even element
  <case>.code                    f32[16]  quant_state.code
  <case>.absmax                  f32[n_blocks]                (double_quant 0)
  <case>.absmax_q                u8[n_blocks]                 (double_quant 1)
  <case>.nested_absmax           f32[n_nested]                (double_quant 1)
  <case>.nested_offset           f32[1]                       (double_quant 1)
  <case>.nested_code             f32[256] state2.code         (double_quant 1)
  <case>.dequant                 f32[rows, cols] dequantize_4bit with the state's dtype forced to f32
  <case>.cuda_rule.packed        u8[(n+1)/2]  the CUDA rule (numpy model below) on the same input,
                                 padding nibble included
  <case>.cuda_rule.absmax_q      u8[n_blocks]  the CUDA rule's 8-bit codes of absmax - offset, with
                                 bitsandbytes' (CPU) offset          (double_quant 1)
cases.json lists the cases and, per case, the CPU code paths taken and where the
CPU output differs from the CUDA rule: cuda_rule.code_diffs = [[element index,
CPU 4-bit code, CUDA-rule code], ...] and, with double quant,
cuda_rule.nested_code_diffs = [[absmax block index, CPU 8-bit code, CUDA-rule code
given the same offset], ...]; pad_nibble / cuda_rule_pad_nibble for odd counts.
"""

import json
import os
import platform
import struct
import sys
from fractions import Fraction

import numpy as np
import torch

import bitsandbytes
import bitsandbytes.functional as F
import peft
import safetensors
from safetensors.torch import load_file, save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "quant")
WRITER = "tools/make_quant_fixtures.py"
SEED = 20261128


def f32_literal(text):
    """The float a C/CUDA literal like 0.8614784181118011f denotes: the decimal rounded
    once, straight to f32 (nearest, ties to even).  np.float32(0.86...) rounds twice
    (decimal -> f64 -> f32) and is 1 ulp off for 4 of the 15 NF4 thresholds below,
    whose decimals are the f64 midpoints of two f32 codes, i.e. f32 ties."""
    exact = Fraction(text)
    guess = np.float32(float(exact))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]

    def key(c):
        return (abs(Fraction(float(c)) - exact), int(np.array([c], dtype=np.float32).view(np.uint32)[0]) & 1)
    return min(cands, key=key)


# CUDA kernel constants (csrc/kernels.cu dQuantizeNF4 / dQuantizeFP4), as the f32 the
# compiler makes of the literals.
NF4_CUDA_MIDPOINTS = np.array([f32_literal(t) for t in (
    "-0.8480964004993439", "-0.6106329262256622", "-0.4599952697753906", "-0.33967943489551544",
    "-0.23460740596055984", "-0.13791173323988914", "-0.045525018125772476", "0.03979014977812767",
    "0.1202552504837513", "0.2035212516784668", "0.2920137718319893", "0.3893125355243683",
    "0.5016634166240692", "0.6427869200706482", "0.8614784181118011")], dtype=np.float32)
FP4_CUDA_PIVOTS = np.array([f32_literal(t) for t in (
    "0.00260417", "0.0859375", "0.20833333", "0.29166667", "0.4166667", "0.583333", "0.8333333")],
    dtype=np.float32)
# magnitude bit patterns for 0..7 pivots passed (dQuantizeFP4's tree, flattened)
FP4_MAG_BITS = np.array([0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011], dtype=np.uint8)




def versions():
    return {"torch": torch.__version__, "bitsandbytes": bitsandbytes.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def dumps(obj):
    """JSON with one line per case record (the diff lists are long)."""
    head = {k: v for k, v in obj.items() if k != "cases"}
    s = json.dumps(head, ensure_ascii=False, indent=1)
    cases = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in obj["cases"])
    return s[:-2] + ',\n "cases": [\n' + cases + "\n ]\n}\n"


def f32(x):
    return np.asarray(x, dtype=np.float32)


# ---------------------------------------------------------------------------
# CUDA rule, re-implemented in float32 numpy
# ---------------------------------------------------------------------------

def cuda_quantize_4bit(x_flat, blocksize, quant_type):
    """Returns (codes u8[n], absmax f32[n_blocks]) by the CUDA kernel's rule."""
    n = x_flat.size
    nb = (n + blocksize - 1) // blocksize
    codes = np.zeros(n, dtype=np.uint8)
    absmax = np.zeros(nb, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in range(nb):
            blk = x_flat[b * blocksize:(b + 1) * blocksize]
            am = np.max(np.abs(blk)).astype(np.float32)
            absmax[b] = am
            scale = np.float32(1.0) / am                    # 1.0f / absmax
            v = (blk * scale).astype(np.float32)              # f32 multiply; 0*inf = NaN
            if quant_type == "nf4":
                # the tree is a binary search with '>': index = number of midpoints below v;
                # NaN compares false everywhere -> 0
                idx = (v[:, None] > NF4_CUDA_MIDPOINTS[None, :]).sum(axis=1)
                codes[b * blocksize:b * blocksize + blk.size] = idx
            else:
                sign = np.where(v < 0, 0b1000, 0).astype(np.uint8)
                a = np.abs(v)
                m = (a[:, None] > FP4_CUDA_PIVOTS[None, :]).sum(axis=1)
                codes[b * blocksize:b * blocksize + blk.size] = FP4_MAG_BITS[m] + sign
    return codes, absmax


def cuda_dquantize8(x, code):
    """dQuantize<0> (csrc/kernels.cu) on f32 values already scaled to [-1, 1]."""
    x = f32(x)
    code = f32(code)
    pivot = np.full(x.shape, 127, dtype=np.int64)
    upper_pivot = np.full(x.shape, 255, dtype=np.int64)
    lower_pivot = np.zeros(x.shape, dtype=np.int64)
    lower = np.full(x.shape, -1.0, dtype=np.float32)
    upper = np.full(x.shape, 1.0, dtype=np.float32)
    val = code[pivot]
    i = 64
    while i > 0:
        gt = x > val
        lower_pivot = np.where(gt, pivot, lower_pivot)
        lower = np.where(gt, val, lower)
        upper_pivot = np.where(gt, upper_pivot, pivot)
        upper = np.where(gt, upper, val)
        pivot = np.where(gt, pivot + i, pivot - i)
        val = code[pivot]
        i >>= 1
    upper = np.where(upper_pivot == 255, code[255], upper).astype(np.float32)
    lower = np.where(lower_pivot == 0, code[0], lower).astype(np.float32)
    gt = x > val
    mid_up = ((upper + val) * np.float32(0.5)).astype(np.float32)
    mid_lo = ((lower + val) * np.float32(0.5)).astype(np.float32)
    up_choice = np.where(x > mid_up, upper_pivot, pivot)
    lo_choice = np.where(x < mid_lo, lower_pivot, pivot)
    return np.where(gt, up_choice, lo_choice).astype(np.uint8)


def cuda_quantize_blockwise(a, code, blocksize=256):
    """kQuantizeBlockwise<General8bit>: returns (q u8, absmax f32)."""
    a = f32(a)
    n = a.size
    nb = (n + blocksize - 1) // blocksize
    q = np.zeros(n, dtype=np.uint8)
    am = np.zeros(nb, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        for b in range(nb):
            blk = a[b * blocksize:(b + 1) * blocksize]
            m = np.max(np.abs(blk)).astype(np.float32)
            am[b] = m
            v = (blk * (np.float32(1.0) / m)).astype(np.float32)
            q[b * blocksize:b * blocksize + blk.size] = cuda_dquantize8(v, code)
    return q, am


def cpu_lut_quantize_blockwise(a, code, blocksize=256, fma=False):
    """The 0.50.2 CPU library's lookup-table rule, as read from its source, for checking."""
    a = f32(a)
    code = f32(code)
    mids = (np.float32(0.5) * (code[:-1] + code[1:])).astype(np.float32)
    i = np.arange(65536)
    pts = (np.float32(-1.0) + (np.float32(2.0) * i.astype(np.float32)) / np.float32(65535)).astype(np.float32)
    lut = np.searchsorted(mids, pts, side="left").astype(np.uint8)   # first midpoint >= point
    n = a.size
    nb = (n + blocksize - 1) // blocksize
    q = np.zeros(n, dtype=np.uint8)
    for b in range(nb):
        blk = a[b * blocksize:(b + 1) * blocksize]
        m = np.max(np.abs(blk)).astype(np.float32)
        if m == 0:
            continue
        v = np.clip((blk * (np.float32(1.0) / m)).astype(np.float32), -1, 1)
        t = ((v + np.float32(1.0)) * np.float32(0.5)).astype(np.float32)
        if fma:
            idx = (t.astype(np.float64) * 65535.0 + 0.5).astype(np.float32)
        else:
            idx = ((t * np.float32(65535.0)).astype(np.float32) + np.float32(0.5)).astype(np.float32)
        q[b * blocksize:b * blocksize + blk.size] = lut[idx.astype(np.int64)]
    return q


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def make_inputs():
    torch.manual_seed(SEED)
    x37 = torch.randn(37, 129) * 0.05
    x130 = torch.randn(130, 257) * 0.05
    z4 = torch.randn(4, 64) * 0.05

    fl = x37.view(-1)
    fl[0] = 1.0                                       # absmax 1 for block 0 (every blocksize)
    fl[1:16] = torch.from_numpy(NF4_CUDA_MIDPOINTS)   # exact ties with the CUDA NF4 thresholds
    fl[16:23] = torch.from_numpy(FP4_CUDA_PIVOTS)     # exact FP4 CUDA ties, +
    fl[23:30] = -torch.from_numpy(FP4_CUDA_PIVOTS)    # and -
    fl[30] = 1e-3                                     # tiny +/-: FP4 signed zero codes
    fl[31] = -1e-3
    fl[32] = -1.0                                     # absmax 1 for the second 32-block
    cpu_mid = ((F.get_4bit_type("fp4", device="cpu").sort().values[:-1] +
                F.get_4bit_type("fp4", device="cpu").sort().values[1:]) / 2)
    cpu_mid_pos = cpu_mid[cpu_mid > 0]
    fl[33:40] = cpu_mid_pos                           # FP4 midpoints as the CPU computes them
    fl[40:47] = -cpu_mid_pos
    nf4 = F.get_4bit_type("nf4", device="cpu")
    fl[47:62] = (nf4[:-1] + nf4[1:]) / 2              # NF4 midpoints as the CPU computes them
    fl[100] = 0.0                                     # exact zeros and a denormal-free tiny value
    fl[101] = -0.0
    fl[102] = 1e-30
    fl[1000] = 0.9                                    # a few planted extremes
    fl[2000] = -0.75
    fl[3000] = 0.6
    fl[4500] = -3.0                                   # largest: in bs4096's partial last block
    fl[4772] = 0.35                                   # last element

    fb = x130.view(-1)
    fb[777] = 1.2
    fb[20000] = -2.0
    fb[33409] = 0.5                                   # 33410 % 64 == 2: a two-element last block

    z4[1].zero_()                                     # an all-zero block
    z4[2].zero_()
    z4[2, 5] = -0.37                                  # a block with one nonzero
    return x37, x130, z4


def case_list(x37, x130, z4):
    cases = []
    for qt in ("nf4", "fp4"):
        for bs in (32, 64, 256, 4096):
            for dq in (0, 1):
                cases.append((qt, bs, dq, x37))
    cases.append(("nf4", 64, 1, x130))
    cases.append(("nf4", 64, 0, x37.to(torch.bfloat16)))
    cases.append(("nf4", 64, 1, x37.to(torch.bfloat16)))
    cases.append(("nf4", 64, 0, x37.to(torch.float16)))
    cases.append(("fp4", 64, 1, x37.to(torch.bfloat16)))
    cases.append(("nf4", 64, 0, z4))
    return cases


DTYPE_NAME = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}


def diff_list(cpu, cuda):
    idx = np.nonzero(cpu != cuda)[0]
    return [[int(i), int(cpu[i]), int(cuda[i])] for i in idx]


def unpack(packed, n):
    p = packed.reshape(-1)
    codes = np.empty(p.size * 2, dtype=np.uint8)
    codes[0::2] = p >> 4
    codes[1::2] = p & 0xF
    return codes[:n]


def pack(codes, pad=0):
    if codes.size % 2:
        codes = np.concatenate([codes, np.array([pad], dtype=np.uint8)])
    return ((codes[0::2] << 4) | codes[1::2]).astype(np.uint8)


def ulps(a, b):
    ia = np.array([a], dtype=np.float32).view(np.int32)[0]
    ib = np.array([b], dtype=np.float32).view(np.int32)[0]
    return int(ia) - int(ib)


def main():
    os.makedirs(OUT, exist_ok=True)
    x37, x130, z4 = make_inputs()
    dynamic_map = F.create_dynamic_map(signed=True)
    tensors = {"dynamic_map": dynamic_map.clone()}
    records = []
    stats = {"nf4_code_diffs": 0, "fp4_code_diffs": 0, "nf4_codes": 0, "fp4_codes": 0,
             "nested_code_diffs": 0, "nested_codes": 0, "offsets": [], "lut_rule_mismatch": 0,
             "lut_fma_rule_mismatch": 0, "absmax_mismatch": 0}

    for qt, bs, dq, inp in case_list(x37, x130, z4):
        rows, cols = inp.shape
        name = f"{qt}_bs{bs}_dq{dq}_{DTYPE_NAME[inp.dtype]}_{rows}x{cols}"
        inp = inp.contiguous()
        packed, qs = F.quantize_4bit(inp, blocksize=bs, compress_statistics=bool(dq), quant_type=qt)
        qs.dtype = torch.float32            # plain f32 product code * absmax
        dequant = F.dequantize_4bit(packed, qs)
        assert dequant.dtype == torch.float32 and tuple(dequant.shape) == (rows, cols)
        n = rows * cols
        n_blocks = (n + bs - 1) // bs
        packed_u8 = packed.reshape(-1).contiguous()
        assert packed_u8.dtype == torch.uint8 and packed_u8.numel() == (n + 1) // 2

        t = {f"{name}.input": inp.clone(), f"{name}.packed": packed_u8.clone(),
             f"{name}.code": qs.code.float().clone(), f"{name}.dequant": dequant.contiguous()}
        rec = {"name": name, "quant_type": qt, "blocksize": bs, "double_quant": dq, "rows": rows,
               "cols": cols, "input_dtype": DTYPE_NAME[inp.dtype], "n_blocks": n_blocks}

        # effective absmax, as dequantize_4bit uses it
        if dq:
            assert qs.state2.blocksize == 256 and qs.absmax.dtype == torch.uint8
            absmax_q = qs.absmax.reshape(-1)
            nested_absmax = qs.state2.absmax.reshape(-1).float()
            offset = qs.offset.reshape(1).float()
            nested_code = qs.state2.code.float()
            t[f"{name}.absmax_q"] = absmax_q.clone()
            t[f"{name}.nested_absmax"] = nested_absmax.clone()
            t[f"{name}.nested_offset"] = offset.clone()
            t[f"{name}.nested_code"] = nested_code.clone()
            assert torch.equal(nested_code, dynamic_map)
            nc = nested_code.numpy()
            na = nested_absmax.numpy()
            off = np.float32(offset.item())
            blk = np.arange(n_blocks) // 256
            am_eff = ((nc[absmax_q.numpy()] * na[blk]).astype(np.float32) + off).astype(np.float32)
            rec["n_nested"] = int(na.size)
        else:
            assert qs.absmax.dtype == torch.float32
            t[f"{name}.absmax"] = qs.absmax.reshape(-1).clone()
            am_eff = qs.absmax.reshape(-1).numpy()

        # dequant == code[idx] * absmax, exactly
        codes_cpu = unpack(packed_u8.numpy(), n)
        pad = int(packed_u8[-1].item() & 0xF) if n % 2 else None
        assert np.array_equal(pack(codes_cpu, pad or 0), packed_u8.numpy()), "nibble order"  # even element high
        code4 = qs.code.float().numpy()
        expect = (code4[codes_cpu] * am_eff[np.arange(n) // bs]).astype(np.float32)
        got = dequant.reshape(-1).numpy()
        same = np.array_equal(expect.view(np.uint32), got.view(np.uint32))
        rec["dequant_is_code_times_absmax"] = bool(same)
        if not same:
            bad = np.nonzero(expect.view(np.uint32) != got.view(np.uint32))[0]
            print(f"{name}: dequant differs from code*absmax at {len(bad)} elements, e.g. {bad[:5]}"
                  f" {expect[bad[:5]]} {got[bad[:5]]}")

        # CUDA rule on the same input; an odd count is padded with a 0.0 in the last
        # block (the kernel loads missing items as 0 and codes them with the block)
        x_np = inp.float().reshape(-1).numpy()
        x_pad = np.concatenate([x_np, np.zeros(n % 2, dtype=np.float32)])
        codes_cuda_pad, absmax_cuda = cuda_quantize_4bit(x_pad, bs, qt)
        assert absmax_cuda.size == n_blocks
        codes_cuda = codes_cuda_pad[:n]
        t[f"{name}.cuda_rule.packed"] = torch.from_numpy(pack(codes_cuda_pad))
        d4 = diff_list(codes_cpu, codes_cuda)
        stats[f"{qt}_code_diffs"] += len(d4)
        stats[f"{qt}_codes"] += n
        if n % 2:
            rec["pad_nibble"] = pad      # low nibble of the last byte: the code of a padding 0.0
            rec["cuda_rule_pad_nibble"] = int(codes_cuda_pad[-1])
        rec["cpu_paths"] = {"quantize_4bit": "default (PyTorch)",
                            "dequantize_4bit": "default (PyTorch)" if cols % 2 else "cpu library"}
        if dq:
            rec["cpu_paths"]["nested_quantize_blockwise"] = "cpu library (lookup table)"
        zero_sign = sum(1 for _, a, c in d4 if {a, c} <= {0, 8}) if qt == "fp4" else 0
        rec["cuda_rule"] = {"n_code_diffs": len(d4), "n_fp4_signed_zero_only": zero_sign, "code_diffs": d4}

        if dq:
            # the raw (pre-nesting) absmax the CPU path computed: same rule as CUDA, check it
            _, absmax_raw = torch.ops.bitsandbytes.quantize_4bit.default(inp, bs, qt, torch.uint8)
            absmax_cpu_raw = absmax_raw.numpy()
            if not np.array_equal(absmax_cpu_raw, absmax_cuda):
                stats["absmax_mismatch"] += 1
            mean64 = np.float32(np.mean(absmax_cpu_raw.astype(np.float64)))
            u = ulps(off, mean64)
            stats["offsets"].append([name, float(off), float(mean64), u])
            rec["cuda_rule"]["offset_f32_of_f64_mean"] = float(mean64)
            rec["cuda_rule"]["offset_ulps_cpu_minus_f64mean"] = u
            centered = (absmax_cpu_raw - off).astype(np.float32)
            q_cuda, nabs_cuda = cuda_quantize_blockwise(centered, nc, 256)
            assert np.array_equal(nabs_cuda, na), "nested absmax differs from max|absmax - offset|"
            q_cpu = absmax_q.numpy()
            d8 = diff_list(q_cpu, q_cuda)
            stats["nested_code_diffs"] += len(d8)
            stats["nested_codes"] += q_cpu.size
            rec["cuda_rule"]["nested_code_diffs"] = d8
            t[f"{name}.cuda_rule.absmax_q"] = torch.from_numpy(q_cuda)
            if not np.array_equal(cpu_lut_quantize_blockwise(centered, nc), q_cpu):
                stats["lut_rule_mismatch"] += 1
            if not np.array_equal(cpu_lut_quantize_blockwise(centered, nc, fma=True), q_cpu):
                stats["lut_fma_rule_mismatch"] += 1
        else:
            if not np.array_equal(am_eff, absmax_cuda):
                # the CPU clamps the partial last block's absmax to >= 1e-38
                rec["cuda_rule"]["absmax_diffs"] = [[int(i), float(am_eff[i]), float(absmax_cuda[i])]
                                                    for i in np.nonzero(am_eff != absmax_cuda)[0]]
        tensors.update(t)
        records.append(rec)

    names = [r["name"] for r in records]
    assert len(names) == len(set(names))
    meta = {"versions": json.dumps(versions()), "writer": WRITER, "quantized_on": "cpu"}
    st_path = os.path.join(OUT, "quant.safetensors")
    save_safetensors({k: v.contiguous() for k, v in tensors.items()}, st_path, meta)
    doc = {"versions": versions(), "writer": WRITER, "quantized_on": "cpu",
           "cuda_rule": "the CUDA kernels' rule re-implemented in float32 numpy (see the comment at the top "
                        "of the writer); code_diffs: [element index, CPU 4-bit code, CUDA-rule code]; "
                        "nested_code_diffs: [absmax index, CPU 8-bit code, CUDA-rule code, same offset]; "
                        "<case>.cuda_rule.packed / .cuda_rule.absmax_q hold the CUDA-rule bytes",
           "cases": records}
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        f.write(dumps(doc))

    # reload check
    back = load_file(st_path)
    for k, v in tensors.items():
        assert torch.equal(back[k], v.contiguous()), k

    print(f"cases: {len(records)}, tensors: {len(tensors)}")
    print(f"NF4 codes differing CPU vs CUDA rule: {stats['nf4_code_diffs']} of {stats['nf4_codes']}")
    print(f"FP4 codes differing CPU vs CUDA rule: {stats['fp4_code_diffs']} of {stats['fp4_codes']}, of which "
          f"{sum(r['cuda_rule']['n_fp4_signed_zero_only'] for r in records)} only in the sign of a zero code")
    for r in records:
        d = r["cuda_rule"]["code_diffs"]
        if d:
            print(f"  {r['name']}: {len(d)} 4-bit diffs, first {d[:6]}")
    print(f"nested 8-bit codes differing CPU vs CUDA rule (same offset): "
          f"{stats['nested_code_diffs']} of {stats['nested_codes']}")
    for r in records:
        d = r["cuda_rule"].get("nested_code_diffs")
        if d:
            print(f"  {r['name']}: {len(d)} nested diffs, first {d[:6]}")
    for name, off, m64, u in stats["offsets"]:
        print(f"  offset {name}: cpu {off!r} f32(f64 mean) {m64!r} ulps {u}")
    print(f"raw absmax CPU != CUDA rule in {stats['absmax_mismatch']} dq cases")
    print(f"LUT-rule emulation mismatches: plain {stats['lut_rule_mismatch']}, "
          f"fma {stats['lut_fma_rule_mismatch']} (of dq cases)")
    print(f"dequant == code*absmax in all cases: {all(r['dequant_is_code_times_absmax'] for r in records)}")
    for fn in sorted(os.listdir(OUT)):
        print(f"  {fn}: {os.path.getsize(os.path.join(OUT, fn))} bytes")
    print("versions:", json.dumps(versions()))


if __name__ == "__main__":
    sys.exit(main())
