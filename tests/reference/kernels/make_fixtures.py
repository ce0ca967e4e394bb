#!/usr/bin/env python3
"""make_fixtures.py — golden values for tests/kernels/test_kernels_golden.c.

Independent references:
  * weights: the PyPI `gguf` package (gguf.quants), llama.cpp's own Python
    port of the block formats: quantize() random data where gguf supports it
    (BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0), dequantize() random-byte blocks for every
    type (K-quants have no quantizer in gguf-py), and, when the default
    models are in the cache, dequantize() a few real blocks from them.
  * activation quantizers (Q8_0 / Q8_1 / Q8_K): written here in numpy from
    llama.cpp's x86 quantize_row_q8_0/q8_1 (scale 127/amax, round half to
    even, s = fp16(d * sum)) and quantize_row_q8_K_ref (signed max,
    iscale = -127/max, nearest_int, 16-element sums).

File format (little-endian), one file per case in fixtures/:
  "KRNW" u32 version=1 u32 ggml_type u32 n_elems u32 n_bytes
         n_bytes quantized bytes, then n_elems f32 expected dequantized values
  "KRNA" u32 version=1 u32 act_type u32 n_elems u32 n_bytes
         n_elems f32 inputs, then n_bytes expected quantized bytes

usage: python -m venv .venv-krn && .venv-krn/bin/pip install gguf numpy
       .venv-krn/bin/python tests/reference/kernels/make_fixtures.py
Deterministic (fixed seeds); the model blocks are skipped if the models are
not in $XDG_CACHE_HOME/kvasir/models (then those fixtures are not rewritten).
"""
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")

# Byte offsets of the f16 scale fields in each block (d, and m/dmin), which
# random-byte blocks get overwritten with finite values.
F16_FIELDS = {
    T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2], T.Q8_0: [0],
    T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208],
}


def write_w(name, qtype, qbytes, expect):
    qbytes = np.ascontiguousarray(qbytes).view(np.uint8).reshape(-1)
    expect = np.ascontiguousarray(expect, dtype=np.float32).reshape(-1)
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(b"KRNW" + struct.pack("<IIII", 1, int(qtype), expect.size, qbytes.size))
        f.write(qbytes.tobytes())
        f.write(expect.tobytes())


def write_a(name, act_type, x, qbytes):
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(b"KRNA" + struct.pack("<IIII", 1, int(act_type), x.size, len(qbytes)))
        f.write(x.tobytes())
        f.write(qbytes)


def random_values(rng, n):
    # A mix of scales per 32-element run, a few exact zeros and outliers.
    x = rng.standard_normal(n).astype(np.float32)
    x *= np.repeat(rng.uniform(0.01, 3.0, n // 32).astype(np.float32), 32)
    x[rng.integers(0, n, n // 64)] = 0.0
    x[rng.integers(0, n, n // 128)] *= 20.0
    return x


def quantized_cases(rng):
    n = 512
    for qt in (T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.BF16):
        x = random_values(rng, n).reshape(2, n // 2)
        q = quantize(x, qt)
        write_w(f"{qt.name.lower()}_quant", qt, q, dequantize(q, qt))
    x = random_values(rng, 256)
    h = x.astype(np.float16)
    # f16 specials: subnormals, max, inf, -0
    h[:6] = np.array([6e-8, -6e-8, 65504, -65504, np.inf, -0.0], dtype=np.float16)
    write_w("f16_quant", T.F16, h, dequantize(h.view(np.uint8), T.F16))


def random_byte_cases(rng):
    for qt, nblk in ((T.Q4_0, 16), (T.Q4_1, 16), (T.Q5_0, 16), (T.Q5_1, 16), (T.Q8_0, 16),
                     (T.Q4_K, 4), (T.Q5_K, 4), (T.Q6_K, 4)):
        bs, ts = GGML_QUANT_SIZES[qt]
        b = rng.integers(0, 256, (nblk, ts), dtype=np.uint8)
        for off in F16_FIELDS[qt]:
            v = rng.uniform(-0.05, 0.05, nblk).astype(np.float16)
            b[:, off:off + 2] = v.view(np.uint8).reshape(nblk, 2)
        write_w(f"{qt.name.lower()}_rand", qt, b, dequantize(b, qt))


def model_cases():
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    models = os.path.join(cache, "kvasir", "models")
    picks = {"SmolLM2-135M-Instruct.Q4_1.gguf": (T.Q4_1, T.Q8_0),
             "gemma-3-270m-q4_k_m.gguf": (T.Q4_K, T.Q6_K, T.Q5_0)}
    for fname, types in picks.items():
        path = os.path.join(models, fname)
        if not os.path.exists(path):
            print(f"skip model blocks: {path} not found", file=sys.stderr)
            continue
        r = GGUFReader(path)
        for qt in types:
            t = next(t for t in r.tensors if t.tensor_type == qt and "blk.1." in t.name
                     or t.tensor_type == qt and t.name == "token_embd.weight")
            bs, ts = GGML_QUANT_SIZES[qt]
            nblk = 8 if bs == 32 else 2
            raw = np.asarray(t.data).view(np.uint8).reshape(-1)[:nblk * ts].reshape(nblk, ts)
            tag = fname.split("-")[0].lower()
            write_w(f"{qt.name.lower()}_model_{tag}", qt, raw, dequantize(raw, qt))


def f16(v):
    return np.float16(v).tobytes()


def act_q8_0(x, with_sum):
    out = bytearray()
    for blk in x.reshape(-1, 32):
        amax = np.float32(np.max(np.abs(blk)))
        d = np.float32(amax / np.float32(127))
        idv = np.float32(np.float32(127) / amax) if amax != 0 else np.float32(0)
        q = np.rint(blk * idv).astype(np.int8)  # np.rint: half to even
        out += f16(d)
        if with_sum:
            out += f16(np.float32(d * np.float32(int(q.astype(np.int32).sum()))))
        out += q.tobytes()
    return bytes(out)


def act_q8_k(x):
    out = bytearray()
    for blk in x.reshape(-1, 256):
        ax = np.abs(blk)
        j = int(np.argmax(ax))  # first index of the largest |x|, like the C loop
        if ax[j] == 0:
            out += bytes(292)
            continue
        iscale = np.float32(np.float32(-127.0) / blk[j])
        q = np.minimum(127, np.rint(iscale * blk)).astype(np.int8)
        bsums = q.astype(np.int32).reshape(16, 16).sum(axis=1).astype(np.int16)
        out += np.float32(np.float32(1.0) / iscale).tobytes() + q.tobytes() + bsums.tobytes()
    return bytes(out)


def activation_cases(rng):
    x = random_values(rng, 1024)
    x[256:288] = 0.0                       # an all-zero Q8_0 block
    x[512:768] = 0.0                       # an all-zero Q8_K block
    x[300] = -50.0                         # negative extreme
    # values that land exactly on .5 after scaling by 127/amax (ties)
    x[320:352] = np.arange(32, dtype=np.float32) - 15.5
    x[320] = 127.0
    x[321:327] = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5], dtype=np.float32)
    write_a("act_q8_0", T.Q8_0, x, act_q8_0(x, False))
    write_a("act_q8_1", T.Q8_1, x, act_q8_0(x, True))
    write_a("act_q8_k", T.Q8_K, x, act_q8_k(x))


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261123)
    quantized_cases(rng)
    random_byte_cases(rng)
    activation_cases(rng)
    model_cases()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} fixtures, {total} bytes, to {OUT}")


if __name__ == "__main__":
    main()
