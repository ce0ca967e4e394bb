#!/usr/bin/env python3
"""Independent numpy reference for kvmem's number formats (kvmem/quant.c).

Writes quant_golden.bin next to this script; tests/kvmem/test_kvmem_quant.c
reads it and checks the C code against it bit for bit (f16, ranges, codes)
and within 1 ulp (dequantized values).

Format (little-endian):
  b"KVMQREF1", u32 n_f16, then n_f16 x (f32 input, u16 nearest-even half),
  u32 n_cases, then per case: u32 bits, u32 n, f32 x[n], u16 lo, u16 hi,
  u8 codes[n] (unpacked), f32 deq[n].

Formulas (the contract): lo = min(x) rounded down to f16, hi = max(x) rounded
up to f16, s = (hi - lo) / (2^bits - 1) in f32, code = clip(rint((x - lo) / s)),
deq = lo + s * code, all in f32.  Run: python3 quant_ref.py  (numpy only).
"""
import os
import struct

import numpy as np

rng = np.random.default_rng(20261123)


def f16_dir(v, up):
    h = np.float16(v)
    if np.isinf(h):
        h = np.float16(65504.0 if v > 0 else -65504.0)
    if up and np.float32(h) < v:
        h = np.nextafter(h, np.float16(np.inf))
    if not up and np.float32(h) > v:
        h = np.nextafter(h, np.float16(-np.inf))
    return h


def quant(x, bits):
    x = x.astype(np.float32)
    lo = f16_dir(np.float32(x.min()), False)
    hi = f16_dir(np.float32(x.max()), True)
    lof, hif = np.float32(lo), np.float32(hi)
    qmax = (1 << bits) - 1
    s = np.float32((hif - lof) / np.float32(qmax))
    if s > 0:
        codes = np.clip(np.rint((x - lof) / s), 0, qmax).astype(np.uint8)
    else:
        codes = np.zeros(x.shape, np.uint8)
    deq = (lof + s * codes.astype(np.float32)).astype(np.float32)
    return lo, hi, codes, deq


def main():
    out = bytearray(b"KVMQREF1")
    # f16 nearest-even: normals, subnormals, ties, large values
    vals = np.concatenate([
        rng.standard_normal(300).astype(np.float32) * 3,
        (rng.standard_normal(100) * 1e-5).astype(np.float32),
        (rng.standard_normal(50) * 2e4).astype(np.float32),
        np.array([0.0, -0.0, 1.0, 65504.0, 6.1035156e-05, 5.9604645e-08, 2.9802322e-08,
                  1.00048828125, 1.00146484375, -2.5], np.float32),
    ]).astype(np.float32)
    out += struct.pack("<I", len(vals))
    for v in vals:
        out += struct.pack("<fH", float(v), int(np.float16(v).view(np.uint16)))
    cases = []
    for bits in (8, 4, 2):
        for kind in range(6):
            n = 64 if kind < 5 else 37
            if kind == 0:
                x = rng.standard_normal(n)
            elif kind == 1:
                x = rng.standard_normal(n) * 0.01 + 5.0
            elif kind == 2:
                x = rng.standard_normal(n); x[rng.integers(n)] = 40.0   # an outlier channel value
            elif kind == 3:
                x = np.full(n, 0.75)                                   # constant group: s = 0
            elif kind == 4:
                x = rng.uniform(-300, 300, n)
            else:
                x = rng.standard_normal(n) * 2
            cases.append((bits, x.astype(np.float32)))
    out += struct.pack("<I", len(cases))
    for bits, x in cases:
        lo, hi, codes, deq = quant(x, bits)
        out += struct.pack("<II", bits, len(x))
        out += x.astype("<f4").tobytes()
        out += struct.pack("<HH", int(lo.view(np.uint16)), int(hi.view(np.uint16)))
        out += codes.tobytes()
        out += deq.astype("<f4").tobytes()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant_golden.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path}: {len(vals)} f16 values, {len(cases)} quantization cases")


if __name__ == "__main__":
    main()
