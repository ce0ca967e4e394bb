#!/usr/bin/env python3
"""make_fuzz_seeds.py — small GGUF files for tests/fuzz/corpus/fuzz_engine_gguf/:
a valid v3 file (string, string-array, u32, f32 keys; F32 and Q8_0 tensors),
and variants a fuzzer would take long to reach: custom alignment, v2, empty,
truncated, overlapping tensors, huge counts. Written with struct, by hand,
from the GGUF spec (independent of the C reader)."""
import os, struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fuzz", "corpus", "fuzz_engine_gguf")
os.makedirs(out, exist_ok=True)

def s(x): b = x.encode(); return struct.pack("<Q", len(b)) + b
def kv_str(k, v): return s(k) + struct.pack("<I", 8) + s(v)
def kv_u32(k, v): return s(k) + struct.pack("<II", 4, v)
def kv_f32(k, v): return s(k) + struct.pack("<If", 6, v)
def kv_strarr(k, vs): return s(k) + struct.pack("<IIQ", 9, 8, len(vs)) + b"".join(s(v) for v in vs)
def tinfo(name, dims, typ, off): return s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", typ, off)

def gguf(kvs, tensors, data, version=3, align=32):
    head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs)) + b"".join(kvs) + b"".join(tensors)
    pad = (-len(head)) % align
    return head + b"\0" * pad + data

kvs = [kv_str("general.architecture", "llama"), kv_u32("llama.block_count", 1), kv_f32("llama.rope.freq_base", 10000.0),
       kv_strarr("tokenizer.ggml.tokens", ["<s>", "a", "b", "ab"])]
f32 = struct.pack("<4f", 1, 2, 3, 4)
q8 = (struct.pack("<H", 0x3c00) + bytes(range(32))) * 2
data = f32 + b"\0" * 16 + q8
ts = [tinfo("a.weight", [4], 0, 0), tinfo("b.weight", [32, 2], 8, 32)]
files = {
    "valid_v3.seed": gguf(kvs, ts, data),
    "valid_v2.seed": gguf(kvs, ts, data, version=2),
    "align64.seed": gguf(kvs + [kv_u32("general.alignment", 64)], [tinfo("a.weight", [4], 0, 0), tinfo("b.weight", [32, 2], 8, 64)], f32 + b"\0" * 48 + q8, align=64),
    "empty.seed": gguf([], [], b""),
    "truncated.seed": gguf(kvs, ts, data)[:-10],
    "overlap.seed": gguf(kvs, [tinfo("a.weight", [4], 0, 0), tinfo("b.weight", [32, 2], 8, 0)], data),
    "hugecount.seed": b"GGUF" + struct.pack("<IQQ", 3, 1 << 62, 1 << 62),
    "badtype.seed": gguf(kvs, [tinfo("a.weight", [4], 99, 0)], data),
    "badmagic.seed": b"GGUX" + gguf(kvs, ts, data)[4:],
}
for name, b in files.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(b)
print(len(files), "seeds in", os.path.normpath(out))
