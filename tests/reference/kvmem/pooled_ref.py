#!/usr/bin/env python3
"""Independent numpy reference for a compressed block's pooled summary
(kvmem/cache.c spill_block, format v3): the block's mean key and mean value,
4 bits per channel each.

Writes pooled_golden.bin next to this script; tests/kvmem/test_kvmem_pooled.c
appends the same rows to a cache (one layer, one KV head, D = B = 64, no
sinks), lets the window spill one block, and checks the block's stored codes
bit for bit and the decoded rows (kvm_pooled_row) to 1e-6 relative.

Contract (all arithmetic in f32 unless noted; rows are first rounded to f16,
as the cache stores them before it compresses them):
  key channel c: lo_c = min_t k_tc rounded down to f16, hi_c = max_t k_tc
    rounded up (the block's key range), m_c = mean_t k_tc (sum in f64, then
    f32); code = clip(rint((m_c - lo_c) / (hi_c - lo_c) * 15), 0, 15)
    (0 when hi_c == lo_c); decoded lo_c + (hi_c - lo_c) * (code / 15).
  value channel c: m_c = mean_t v_tc; s = f16(max_c |m_c| / 7) (nearest
    even); code = clip(rint(m_c / s), -7, 7) + 8 (8 when s == 0); decoded
    s * (code - 8).
  codes packed two per byte, low nibble first (channel 2i low, 2i+1 high).
So |decoded key - m_c| <= (hi_c - lo_c)/30 and |decoded value - m_c| <= s/2
(+ f32 rounding); the test checks those bounds too.

Format (little-endian): b"KVMPREF1", u32 n_cases, u32 D, u32 B, then per case
f16 K[B][D], f16 V[B][D], u8 kcodes[D/2], u8 vcodes[D/2],
u16 vscale, f32 kdec[D], f32 vdec[D].  Run: python3 pooled_ref.py (numpy only).
"""
import os
import struct

import numpy as np

rng = np.random.default_rng(20261203)
D, B = 64, 64


def f16_dir(v, up):
    h = np.float16(v)
    if np.isinf(h):
        h = np.float16(65504.0 if v > 0 else -65504.0)
    if up and np.float32(h) < v:
        h = np.nextafter(h, np.float16(np.inf))
    if not up and np.float32(h) > v:
        h = np.nextafter(h, np.float16(-np.inf))
    return h


def pack4(codes):
    c = codes.astype(np.uint8)
    return (c[0::2] | (c[1::2] << 4)).astype(np.uint8)


def pooled(K, V):
    kc = np.zeros(D, np.uint8)
    kdec = np.zeros(D, np.float32)
    for c in range(D):
        lo = np.float32(f16_dir(np.float32(K[:, c].min()), False))
        hi = np.float32(f16_dir(np.float32(K[:, c].max()), True))
        m = np.float32(K[:, c].astype(np.float64).sum() / B)
        if hi > lo:
            q = int(np.clip(np.rint(np.float32(np.float32(m - lo) / np.float32(hi - lo)) * np.float32(15.0)), 0, 15))
        else:
            q = 0
        kc[c] = q
        kdec[c] = np.float32(lo + np.float32(hi - lo) * np.float32(np.float32(q) * np.float32(1.0 / 15.0)))
    vm = (V.astype(np.float64).sum(0) / B).astype(np.float32)
    s16 = np.float16(np.float32(np.abs(vm).max()) / np.float32(7.0))
    sf = np.float32(s16)
    if sf > 0:
        vq = np.clip(np.rint(vm / sf), -7, 7).astype(np.int32) + 8
    else:
        vq = np.full(D, 8, np.int32)
    vdec = (sf * (vq - 8).astype(np.float32)).astype(np.float32)
    return pack4(kc), pack4(vq), s16, kdec, vdec


def case(kind):
    if kind == 0:
        K = rng.normal(0, 1, (B, D))
        V = rng.normal(0, 1, (B, D))
    elif kind == 1:  # outlier key channels, offset values
        K = rng.normal(0, 1, (B, D))
        K[:, 3] *= 20
        K[:, 40] += 15
        V = rng.normal(0.5, 0.2, (B, D))
    elif kind == 2:  # a constant key channel (hi == lo), all-zero values
        K = rng.uniform(-3, 3, (B, D))
        K[:, 7] = 1.25
        V = np.zeros((B, D))
    else:  # heavy tails
        K = rng.standard_t(2, (B, D))
        V = rng.standard_t(3, (B, D)) * 4
    K = K.astype(np.float16).astype(np.float32)
    V = V.astype(np.float16).astype(np.float32)
    return K, V


def main():
    out = bytearray(b"KVMPREF1")
    cases = [case(i) for i in range(4)]
    out += struct.pack("<III", len(cases), D, B)
    for K, V in cases:
        kc, vc, s16, kdec, vdec = pooled(K, V)
        out += K.astype("<f2").tobytes() + V.astype("<f2").tobytes()
        out += kc.tobytes() + vc.tobytes() + struct.pack("<H", int(s16.view(np.uint16)))
        out += kdec.astype("<f4").tobytes() + vdec.astype("<f4").tobytes()
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pooled_golden.bin")
    with open(path, "wb") as f:
        f.write(out)
    print(f"wrote {path}: {len(cases)} cases, {len(out)} bytes")


if __name__ == "__main__":
    main()
