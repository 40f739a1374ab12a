#!/usr/bin/env python3
"""make_peft_fixtures.py - PEFT LoRA / DoRA reference fixtures for sft.h.

Writes tests/fixtures/peft/peft.safetensors and tests/fixtures/peft/cases.json.
Tests read these files; they never run Python.

    tools/.venv/bin/python tools/make_peft_fixtures.py

One linear layer, in_features K=96, out_features N=80, bias, all f32 on the CPU.
The base is a seeded nn.Linear (dense), the same weight quantized by bitsandbytes
as NF4 (blocksize 64, double quant, as Linear4bit/QLoRA does) or FP4 (blocksize
128, no double quant).  PEFT wraps it (get_peft_model on a one-layer module whose
layer is called `proj`, target_modules=["proj"]); the tiny module carries
is_loaded_in_4bit=True for the 4-bit bases, which is what makes PEFT pick its
bitsandbytes Linear4bit LoRA layer (as transformers' 4-bit models do).  After PEFT
creates an adapter, lora_A and lora_B are overwritten with seeded randn * 0.1 so
outputs and gradients are non-trivial; a DoRA magnitude keeps the value PEFT gave
it at creation (the row norms of the base weight, B being zero then).
Every case's loss is (y * g).sum(); gradients come from loss.backward().
The 4-bit bases are quantized by bitsandbytes' CPU path (see make_quant_fixtures.py
for how that differs from the CUDA rule); the fixtures record bitsandbytes' own
bytes, so a test compares against them, not against a re-quantization.

----------------------------------------------------------------------------------
PEFT 0.21.2 facts (read from the installed peft/tuners/lora/{layer,dora,variants,
bnb}.py and peft/utils/integrations.py)
----------------------------------------------------------------------------------
- init_lora_weights=True (default): nn.init.kaiming_uniform_(lora_A.weight,
  a=math.sqrt(5)) -> U(-1/sqrt(in_features), 1/sqrt(in_features)); lora_B zeros.
  init_lora_weights="gaussian": nn.init.normal_(lora_A.weight, std=1/r) (the
  standard deviation is 1/r, not the variance); lora_B zeros.
- scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora.
- DoRA magnitude at creation: torch.linalg.norm(W + scaling * (B @ A), dim=1),
  W dequantized for a 4-bit base (a copy of the layer is dequantized); B is zero
  then, so it is the row norm of W.
- DoRA forward: lora_weight = lora_B(lora_A(eye(in))).T, DETACHED; weight_norm =
  ||W + scaling * lora_weight|| per output row (dim 1), and DETACHED again, so it
  is a constant in backward (DoRA paper sec. 4.3); mag_norm_scale = m / weight_norm;
  result += (mag_norm_scale - 1) * base_result + mag_norm_scale * lora_B(lora_A(x)) * scaling
  where base_result = the running result minus the base bias.  With dropout active
  (training and not Identity) x is replaced by dropout(x) and base_result is
  recomputed as F.linear(dropout(x), W) (no bias) on the dropped-out input.
- Several active adapters are applied in order (layer.py Linear.forward, bnb.py
  Linear4bit.forward: `for active_adapter in self.active_adapters`), each adding
  to the running result: a LoRA adds lora_B(lora_A(dropout(x))) * scaling; a DoRA
  (variants.py DoraLinearVariant.forward) is given base_result = the running
  result, from which DoraLinearLayer.forward subtracts base_layer.bias, so a DoRA
  adapter sees every earlier adapter's output in its base term
  ((m2/n2 - 1) * (xW^T + delta_1)), unless its dropout is active (then base_result
  is None and it recomputes x W^T on its own dropped-out x).  Its weight norm uses
  the base weight and its own B A only.  Backward is torch's autograd through that
  chain: a DoRA term without dropout scales the gradient reaching the result
  before it by m/n (g + g (m/n - 1)), the norm being detached.  Checked
  numerically at the end of this script (dense base, two DoRA adapters); the
  cases lora_dora_nf4, dora_lora_nf4, dora_dora_nf4, dora_lora_dora_dense and
  stack_dropout_nf4 store outputs and gradients of such stacks.
- Merging into a 4-bit base (lora.bnb.Linear4bit.merge): W = dequantize_4bit(weight,
  quant_state); LoRA: W + scaling * B @ A; DoRA: (m / ||W + s B A||) * (W + s B A),
  the norm taken from the unmerged weight; then bnb.nn.Params4bit(W', **weight.__dict__)
  .to(device) re-quantizes with the SAME blocksize, compress_statistics, quant_type
  and quant_storage (the old parameter's attributes are passed on; only
  bnb_quantized is reset).  Unmerge dequantizes the merged 4-bit weight, subtracts
  (LoRA) or divides by the cached DoRA factor and subtracts, and re-quantizes
  again, so merge+unmerge does not give back the original bytes.
- Mixed batch (adapter_names=[...] per sample, "__base__" = none): the base output
  is computed once and each adapter's LoRA output is added in place into its rows
  (result[rows] += ...); PeftModel refuses adapter_names in training mode.
----------------------------------------------------------------------------------
"""

import json
import os
import platform
import struct
import sys
import warnings

import numpy as np
import torch
from torch import nn

import bitsandbytes
import bitsandbytes as bnb
import bitsandbytes.functional as F
import peft
import safetensors
from safetensors.torch import load_file, save

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fixture_io import save_safetensors  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "peft")
WRITER = "tools/make_peft_fixtures.py"
SEED = 20261129
K, N = 96, 80

warnings.filterwarnings("ignore", message=".*4-bit linear.*")




def versions():
    return {"torch": torch.__version__, "bitsandbytes": bitsandbytes.__version__,
            "peft": peft.__version__, "safetensors": safetensors.__version__,
            "numpy": np.__version__, "python": platform.python_version()}


def rnd(shape, seed, kind="randn"):
    g = torch.Generator().manual_seed(seed)
    if kind == "randn":
        return torch.randn(*shape, generator=g)
    return torch.rand(*shape, generator=g)


class Holder(nn.Module):
    """The smallest model PEFT can wrap: one linear layer called proj."""

    def __init__(self, proj, in4bit):
        super().__init__()
        self.proj = proj
        if in4bit:
            self.is_loaded_in_4bit = True   # what transformers sets; selects peft's bnb layer

    def forward(self, x):
        return self.proj(x)


class MaskDropout(nn.Module):
    """Dropout with a fixed, recorded mask (already scaled by 1/(1-p))."""

    def __init__(self, mask):
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, x):
        return x * self.mask


# ---------------------------------------------------------------------------
# Bases
# ---------------------------------------------------------------------------

def dense_base(W, b):
    lin = nn.Linear(K, N, bias=True)
    with torch.no_grad():
        lin.weight.copy_(W)
        lin.bias.copy_(b)
    lin.weight.requires_grad_(False)
    lin.bias.requires_grad_(False)
    return lin


def fourbit_base(W, b, quant_type, blocksize, double_quant):
    lin = bnb.nn.Linear4bit(K, N, bias=True, compute_dtype=torch.float32,
                            compress_statistics=double_quant, quant_type=quant_type)
    lin.weight = bnb.nn.Params4bit(W.clone(), requires_grad=False, blocksize=blocksize,
                                   compress_statistics=double_quant, quant_type=quant_type, module=lin)
    lin.bias = nn.Parameter(b.clone(), requires_grad=False)
    lin = lin.to("cpu")          # Params4bit.to(device) quantizes (on the CPU here)
    w = lin.weight
    assert w.bnb_quantized and w.quant_state.blocksize == blocksize and w.quant_state.nested == double_quant
    return lin


def base_of(kind, W, b):
    if kind == "dense":
        return dense_base(W, b)
    if kind == "nf4":
        return fourbit_base(W, b, "nf4", 64, True)
    return fourbit_base(W, b, "fp4", 128, False)


def fourbit_tensors(prefix, weight):
    """packed / absmax(-q) / nested / code / dequant of a quantized Params4bit."""
    qs = weight.quant_state
    t = {f"{prefix}.packed": weight.data.reshape(-1).contiguous().clone()}
    assert t[f"{prefix}.packed"].dtype == torch.uint8
    if qs.nested:
        t[f"{prefix}.absmax_q"] = qs.absmax.reshape(-1).clone()
        t[f"{prefix}.nested_absmax"] = qs.state2.absmax.reshape(-1).float().clone()
        t[f"{prefix}.nested_offset"] = qs.offset.reshape(1).float().clone()
    else:
        t[f"{prefix}.absmax"] = qs.absmax.reshape(-1).float().clone()
    qs.dtype = torch.float32
    t[f"{prefix}.dequant"] = F.dequantize_4bit(weight.data, qs).reshape(N, K).contiguous().clone()
    return t


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

def adapter_spec(name, r, alpha, dropout=0.0, rslora=False, dora=False):
    return {"name": name, "r": r, "lora_alpha": alpha, "lora_dropout": dropout,
            "use_rslora": rslora, "use_dora": dora}


def wrap(base, kind, specs):
    model = Holder(base, kind != "dense")
    first = True
    pm = None
    for s in specs:
        cfg = peft.LoraConfig(r=s["r"], lora_alpha=s["lora_alpha"], lora_dropout=s["lora_dropout"],
                              use_rslora=s["use_rslora"], use_dora=s["use_dora"], target_modules=["proj"])
        if first:
            pm = peft.get_peft_model(model, cfg, adapter_name=s["name"])
            first = False
        else:
            pm.add_adapter(s["name"], cfg)
    layer = pm.base_model.model.proj
    want = "Linear" if kind == "dense" else "Linear4bit"
    assert type(layer).__name__ == want, type(layer)
    return pm, layer


def run_case(name, kind, specs, W, b, x, g, seed, training=True, adapter_names=None, masks=None):
    """Builds the case, runs forward/backward, returns (tensors, record, pm, layer)."""
    t = {}
    base = base_of(kind, W, b)
    if not specs:
        base.train(training)
        xx = x.clone().requires_grad_(True)
        y = base(xx)
        (y * g).sum().backward()
        t[f"{name}.y"] = y.detach().clone()
        t[f"{name}.dx"] = xx.grad.clone()
        rec = {"name": name, "base": kind, "adapters": [], "training": training}
        return t, rec, None, base

    pm, layer = wrap(base, kind, specs)
    names = [s["name"] for s in specs]
    if len(names) > 1:
        pm.base_model.set_adapter(names)
    single = len(names) == 1
    pre = (lambda s: f"{name}.") if single else (lambda s: f"{name}.{s}.")
    for i, s in enumerate(specs):
        a = s["name"]
        s["scaling"] = float(layer.scaling[a])
        if s["use_dora"]:
            t[pre(a) + "magnitude"] = layer.lora_magnitude_vector[a].weight.detach().clone()
        with torch.no_grad():
            layer.lora_A[a].weight.copy_(rnd((s["r"], K), seed + 10 * i + 1) * 0.1)
            layer.lora_B[a].weight.copy_(rnd((N, s["r"]), seed + 10 * i + 2) * 0.1)
        t[pre(a) + "A"] = layer.lora_A[a].weight.detach().clone()
        t[pre(a) + "B"] = layer.lora_B[a].weight.detach().clone()
        if masks is not None and s["lora_dropout"] > 0:
            assert isinstance(layer.lora_dropout[a], nn.Dropout)
            layer.lora_dropout[a] = MaskDropout(masks)
            t[f"{name}.dropout_mask"] = masks.clone()      # one mask, every adapter with dropout
    pm.train(training)
    for a in names:
        assert layer.lora_A[a].weight.requires_grad and layer.lora_B[a].weight.requires_grad
    assert list(layer.active_adapters) == names

    xx = x.clone().requires_grad_(True)
    if adapter_names is not None:
        y = pm(xx, adapter_names=adapter_names)
    else:
        y = pm(xx)
    t[f"{name}.y"] = y.detach().clone()
    backward_ok = True
    try:
        (y * g).sum().backward()
    except RuntimeError as e:                    # mixed batch may not support backward
        backward_ok = False
        print(f"{name}: backward failed: {e}")
    if backward_ok:
        t[f"{name}.dx"] = xx.grad.clone()
        for a in names:
            t[pre(a) + "dA"] = layer.lora_A[a].weight.grad.clone()
            t[pre(a) + "dB"] = layer.lora_B[a].weight.grad.clone()
            if layer.use_dora.get(a):
                t[pre(a) + "dmagnitude"] = layer.lora_magnitude_vector[a].weight.grad.clone()
    rec = {"name": name, "base": kind, "adapters": specs, "training": training,
           "backward": backward_ok}
    if adapter_names is not None:
        rec["adapter_names"] = adapter_names
    return t, rec, pm, layer


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    dense = nn.Linear(K, N, bias=True)            # seeded default init (kaiming uniform)
    W = dense.weight.detach().clone()
    b = dense.bias.detach().clone()
    x = torch.randn(2, 5, K)
    g = torch.randn(2, 5, N)
    x3 = torch.randn(3, 5, K)
    g3 = torch.randn(3, 5, N)
    mask = (torch.rand(x.shape) >= 0.1).float() / 0.9

    tensors = {"base_dense.weight": W.clone(), "base.bias": b.clone(), "x": x.clone(), "g": g.clone(),
               "x3": x3.clone(), "g3": g3.clone()}
    nf4 = base_of("nf4", W, b)
    tensors.update(fourbit_tensors("base_nf4", nf4.weight))
    tensors["base_nf4.code"] = nf4.weight.quant_state.code.float().clone()
    tensors["base_nf4.nested_code"] = nf4.weight.quant_state.state2.code.float().clone()
    fp4 = base_of("fp4", W, b)
    tensors.update(fourbit_tensors("base_fp4", fp4.weight))
    tensors["base_fp4.code"] = fp4.weight.quant_state.code.float().clone()
    # every base built later quantizes the same way
    assert torch.equal(base_of("nf4", W, b).weight.data.reshape(-1), tensors["base_nf4.packed"])

    records = []

    def add(t, rec):
        rec["tensors"] = sorted(t.keys())
        tensors.update(t)
        records.append(rec)

    S = adapter_spec
    for kind in ("nf4", "fp4"):
        t, rec, _, _ = run_case(f"linear4bit_{kind}", kind, [], W, b, x, g, 0)
        add(t, rec)

    # lora_nf4, then merge / unmerge (re-quantized 4-bit base)
    t, rec, pm, layer = run_case("lora_nf4", "nf4", [S("default", 8, 16)], W, b, x, g, 100)
    layer.merge()
    t.update(fourbit_tensors("lora_nf4.merged", layer.get_base_layer().weight))
    layer.unmerge()
    t.update(fourbit_tensors("lora_nf4.unmerged", layer.get_base_layer().weight))
    add(t, rec)

    t, rec, _, _ = run_case("rslora_nf4", "nf4", [S("default", 8, 16, rslora=True)], W, b, x, g, 200)
    add(t, rec)
    t, rec, _, _ = run_case("lora_nf4_dropout", "nf4", [S("default", 8, 16, dropout=0.1)], W, b, x, g, 300,
                            masks=mask)
    add(t, rec)

    t, rec, pm, layer = run_case("dora_nf4", "nf4", [S("default", 4, 8, dora=True)], W, b, x, g, 400)
    layer.merge()
    t.update(fourbit_tensors("dora_nf4.merged", layer.get_base_layer().weight))
    add(t, rec)

    t, rec, _, _ = run_case("dora_nf4_dropout", "nf4", [S("default", 4, 8, dropout=0.1, dora=True)], W, b, x, g,
                            500, masks=mask)
    add(t, rec)

    t, rec, _, _ = run_case("two_adapters_nf4", "nf4", [S("a", 8, 16), S("b", 4, 4)], W, b, x, g, 600)
    add(t, rec)

    t, rec, _, _ = run_case("mixed_batch_nf4", "nf4", [S("a", 8, 16), S("b", 4, 4)], W, b, x3, g3, 700,
                            training=False, adapter_names=["a", "__base__", "b"])
    add(t, rec)

    t, rec, pm, layer = run_case("lora_dense", "dense", [S("default", 8, 16)], W, b, x, g, 800)
    layer.merge()
    t["lora_dense.merged_weight"] = layer.get_base_layer().weight.detach().clone()
    layer.unmerge()
    t["lora_dense.unmerged_weight"] = layer.get_base_layer().weight.detach().clone()
    add(t, rec)

    t, rec, pm, layer = run_case("dora_dense", "dense", [S("default", 4, 8, dora=True)], W, b, x, g, 900)
    layer.merge()
    t["dora_dense.merged_weight"] = layer.get_base_layer().weight.detach().clone()
    layer.unmerge()
    t["dora_dense.unmerged_weight"] = layer.get_base_layer().weight.detach().clone()
    add(t, rec)

    # several active adapters mixing LoRA and DoRA, applied in order
    t, rec, _, _ = run_case("lora_dora_nf4", "nf4", [S("a", 8, 16), S("b", 4, 8, dora=True)], W, b, x, g, 1000)
    add(t, rec)
    t, rec, _, _ = run_case("dora_lora_nf4", "nf4", [S("a", 4, 8, dora=True), S("b", 8, 16)], W, b, x, g, 1100)
    add(t, rec)
    t, rec, _, _ = run_case("dora_dora_nf4", "nf4", [S("a", 4, 8, dora=True), S("b", 6, 12, dora=True)], W, b, x, g, 1200)
    add(t, rec)
    t, rec, _, _ = run_case("dora_lora_dora_dense", "dense",
                            [S("a", 4, 8, dora=True), S("b", 8, 16), S("c", 4, 4, rslora=True, dora=True)], W, b, x, g, 1300)
    add(t, rec)
    # dropout: the LoRA and the first DoRA see the dropped-out x (that DoRA recomputes
    # x W^T on it); the last DoRA has none, so its base term is the running result
    t, rec, _, _ = run_case("stack_dropout_nf4", "nf4",
                            [S("a", 8, 16, dropout=0.1), S("b", 4, 8, dropout=0.1, dora=True), S("c", 4, 8, dora=True)],
                            W, b, x, g, 1400, masks=mask)
    add(t, rec)

    # ---- checks of the facts in the comment above (not stored) ----
    checks = self_checks(W, b, x, tensors)

    tensors = {k: v.contiguous() for k, v in tensors.items()}
    names = [r["name"] for r in records]
    assert len(names) == len(set(names))
    meta = {"versions": json.dumps(versions()), "writer": WRITER, "quantized_on": "cpu"}
    st_path = os.path.join(OUT, "peft.safetensors")
    save_safetensors(tensors, st_path, meta)
    globals_ = sorted(k for k in tensors if not any(k.startswith(r["name"] + ".") for r in records))
    doc = {"versions": versions(), "writer": WRITER, "quantized_on": "cpu",
           "in_features": K, "out_features": N, "loss": "(y * g).sum()",
           "bases": {"dense": "base_dense.weight + base.bias",
                     "nf4": "bitsandbytes Linear4bit nf4, blocksize 64, compress_statistics (nested 256)",
                     "fp4": "bitsandbytes Linear4bit fp4, blocksize 128, no double quant"},
           "global_tensors": globals_, "checks": checks, "cases": records}
    with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
        f.write(dumps(doc))

    back = load_file(st_path)
    assert set(back) == set(tensors)
    for k, v in tensors.items():
        assert torch.equal(back[k], v), k

    print(f"cases: {len(records)}, tensors: {len(tensors)}")
    for r in records:
        sc = ", ".join(f"{a['name']} r={a['r']} s={a['scaling']:.6g}" for a in r["adapters"])
        print(f"  {r['name']:18s} base={r['base']:5s} train={r['training']!s:5s} {sc}  "
              f"({len(r['tensors'])} tensors)")
    for k, v in checks.items():
        print(f"  check {k}: {v}")
    for fn in sorted(os.listdir(OUT)):
        print(f"  {fn}: {os.path.getsize(os.path.join(OUT, fn))} bytes")
    print("versions:", json.dumps(versions()))


def self_checks(W, b, x, tensors):
    """Numerical checks of the documented PEFT behaviour."""
    out = {}
    # merge of lora_nf4 re-quantized with blocksize 64 and double quant (absmax_q present, 120 blocks)
    out["nf4_merge_keeps_blocksize_64_and_double_quant"] = bool(
        tensors["lora_nf4.merged.absmax_q"].numel() == N * K // 64
        and "lora_nf4.merged.nested_absmax" in tensors)
    out["nf4_merge_unmerge_returns_original_bytes"] = bool(
        torch.equal(tensors["lora_nf4.unmerged.packed"], tensors["base_nf4.packed"]))
    n_diff = int((tensors["lora_nf4.unmerged.packed"] != tensors["base_nf4.packed"]).sum())
    out["nf4_merge_unmerge_packed_bytes_changed"] = n_diff

    # two DoRA adapters on a dense base: the second sees the first's output in base_result
    pm, layer = wrap(dense_base(W, b), "dense",
                     [adapter_spec("p", 4, 8, dora=True), adapter_spec("q", 4, 4, dora=True)])
    pm.base_model.set_adapter(["p", "q"])
    for i, a in enumerate(("p", "q")):
        with torch.no_grad():
            layer.lora_A[a].weight.copy_(rnd((4, K), 5000 + i) * 0.1)
            layer.lora_B[a].weight.copy_(rnd((N, 4), 6000 + i) * 0.1)
    pm.eval()
    with torch.no_grad():
        y = pm(x)
        base = x @ W.T
        terms = []
        running = base.clone()
        for a in ("p", "q"):
            A = layer.lora_A[a].weight
            B = layer.lora_B[a].weight
            s = layer.scaling[a]
            m = layer.lora_magnitude_vector[a].weight
            nrm = torch.linalg.norm(W + s * (B @ A), dim=1)
            f = (m / nrm).view(1, -1)
            terms.append((f, (x @ A.T) @ B.T * s))
        (f1, l1), (f2, l2) = terms
        d1 = (f1 - 1) * base + f1 * l1
        chained = base + b + d1 + (f2 - 1) * (base + d1) + f2 * l2
        independent = base + b + d1 + (f2 - 1) * base + f2 * l2
    out["dora_two_adapters_max_err_if_chained"] = float((y - chained).abs().max())
    out["dora_two_adapters_max_err_if_independent"] = float((y - independent).abs().max())
    return out


def dumps(obj):
    """JSON with one line per case record (short lists stay on one line)."""
    head = {k: v for k, v in obj.items() if k != "cases"}
    s = json.dumps(head, ensure_ascii=False, indent=1)
    cases = ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in obj["cases"])
    return s[:-2] + ',\n "cases": [\n' + cases + "\n ]\n}\n"


if __name__ == "__main__":
    sys.exit(main())
