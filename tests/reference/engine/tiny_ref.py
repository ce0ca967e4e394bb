#!/usr/bin/env python3
"""tiny_ref.py — reference logits for the tiny models of tests/engine
(tiny_gguf.h, TG_CASES), computed in numpy (float64) from the very GGUF
files tests/engine/tiny_write writes, into golden_tiny_arch.json.

This is the reference for the rows llama.cpp was not run on here: qwen3,
Llama 3's rope_freqs, and rope.scaling (linear, YaRN: ggml's rope_yarn with
llama.cpp's defaults, ext_factor 1 for yarn, beta_fast 32, beta_slow 1,
attn_factor times rope.scaling.attn_factor). It is written from llama.cpp's graph builders
(llm_build_llama, llm_build_qwen2, llm_build_qwen3 in src/llama-model.cpp;
ggml_rope_ext with freq_factors in ggml-cpu ops.cpp):
  x = token_embd[tokens]
  per layer: h = rmsnorm(x) * attn_norm
             q, k, v = h·Wqᵀ (+ bq), h·Wkᵀ (+ bk), h·Wvᵀ (+ bv)
             qwen3: each head of q and k RMS-normed times attn_{q,k}_norm
             RoPE: pair (2i, 2i+1) (llama) or (i, i + d/2) (NeoX: qwen2,
               qwen3), angle pos * base^(-2i/d) / rope_freqs[i] (rope_freqs
               when the file has it, else 1)
             causal softmax(q·kᵀ / sqrt(head_dim)) · v, grouped KV heads
             x += attn·Woᵀ;  h = rmsnorm(x) * ffn_norm
             x += (silu(h·Wgᵀ) * (h·Wuᵀ))·Wdᵀ
  logits = (rmsnorm(x) * output_norm)·Wᵀ (output, or token_embd if absent)
The attention rounds as llama.cpp's f16 KV cache does (q, k, v and the
softmax weights rounded to IEEE half), so kvasir can be held to about 1e-4
instead of the 1e-2 the rounding alone would allow. The llama and qwen2
cases, whose kvasir paths are already held bit-for-bit to llama.cpp
(SmolLM2, tiny_qwen2), check this script itself.

usage: tests/reference/engine/tiny_ref.py BUILD_DIR   (writes golden_tiny_arch.json)
"""
import json, os, re, struct, subprocess, sys, tempfile

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", ".."))


def read_gguf(path):
    """Metadata and F32 tensors of a GGUF v3 file (what tiny_gguf.h writes)."""
    b = open(path, "rb").read()
    o = 0

    def take(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, b, o)
        o += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def string():
        nonlocal o
        n = take("Q")
        s = b[o : o + n].decode("utf-8")
        o += n
        return s

    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            return [value(et) for _ in range(n)]
        return take(scalar[t])

    assert take("I") == 0x46554747 and take("I") == 3
    n_t, n_kv = take("Q"), take("Q")
    meta = {}
    for _ in range(n_kv):
        k = string()
        meta[k] = value(take("I"))
    infos = []
    for _ in range(n_t):
        name = string()
        nd = take("I")
        ne = [take("Q") for _ in range(nd)]
        typ, off = take("I"), take("Q")
        assert typ == 0, "F32 only"
        infos.append((name, ne, off))
    align = meta.get("general.alignment", 32)
    base = (o + align - 1) // align * align
    t = {}
    for name, ne, off in infos:
        n = int(np.prod(ne))
        a = np.frombuffer(b, dtype="<f4", count=n, offset=base + off).astype(np.float64)
        t[name] = a.reshape(ne[::-1]) if len(ne) == 2 else a  # [ne1][ne0]: rows of ne0
    return meta, t


def h16(x):
    return x.astype(np.float16).astype(np.float64)


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def yarn_corr_dims(d, n_ctx_orig, base, beta_fast=32.0, beta_slow=1.0):
    cd = lambda n_rot: d * np.log(n_ctx_orig / (n_rot * 2 * np.pi)) / (2 * np.log(base))
    return max(0.0, np.floor(cd(beta_fast))), min(d - 1.0, np.ceil(cd(beta_slow)))


def rope(x, pos, base, neox, ff, sc=None):
    """x: [T, H, d]; rotate in place by position (llama.cpp's ggml_rope_ext).
    sc: None, or (freq_scale, ext_factor, attn_factor, n_ctx_orig)."""
    d = x.shape[-1]
    i = np.arange(d // 2)
    ang = pos[:, None] * base ** (-2.0 * i / d) / ff[None, :]  # [T, d/2]
    mscale = 1.0
    if sc is not None:
        freq_scale, ext, attn_factor, n_ctx_orig = sc
        interp = freq_scale * ang
        mscale = attn_factor
        if ext != 0:
            lo, hi = yarn_corr_dims(d, n_ctx_orig, base)
            ramp = 1 - np.clip((i - lo) / max(0.001, hi - lo), 0, 1)
            mix = ramp * ext
            interp = interp * (1 - mix) + ang * mix
            mscale *= 1 + 0.1 * np.log(1 / freq_scale)
        ang = interp
    c, s = mscale * np.cos(ang)[:, None, :], mscale * np.sin(ang)[:, None, :]
    a, b = (x[..., : d // 2], x[..., d // 2 :]) if neox else (x[..., 0::2], x[..., 1::2])
    ra, rb = a * c - b * s, a * s + b * c
    y = np.empty_like(x)
    if neox:
        y[..., : d // 2], y[..., d // 2 :] = ra, rb
    else:
        y[..., 0::2], y[..., 1::2] = ra, rb
    return y


def forward(meta, t, tokens):
    arch = meta["general.architecture"]
    g = lambda k, d=None: meta.get(f"{arch}.{k}", d)
    nl, nh = g("block_count"), g("attention.head_count")
    nkv = g("attention.head_count_kv", nh)
    hd = g("attention.key_length", g("embedding_length") // nh)
    eps, base = g("attention.layer_norm_rms_epsilon", 1e-5), g("rope.freq_base", 10000.0)
    neox = arch != "llama"
    ff = t.get("rope_freqs.weight", np.ones(hd // 2)) if arch == "llama" else np.ones(hd // 2)
    kind, factor = g("rope.scaling.type", "linear"), g("rope.scaling.factor", 0.0)
    sc = None
    if kind != "none" and factor:
        sc = (1.0 / factor, 1.0 if kind == "yarn" else 0.0, g("rope.scaling.attn_factor", 1.0),
              g("rope.scaling.original_context_length", g("context_length")))
    T = len(tokens)
    pos = np.arange(T, dtype=np.float64)
    x = t["token_embd.weight"][tokens]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for il in range(nl):
        L = lambda n: t.get(f"blk.{il}.{n}")
        h = rmsnorm(x, L("attn_norm.weight"), eps)
        q, k, v = h @ L("attn_q.weight").T, h @ L("attn_k.weight").T, h @ L("attn_v.weight").T
        if L("attn_q.bias") is not None:
            q, k, v = q + L("attn_q.bias"), k + L("attn_k.bias"), v + L("attn_v.bias")
        q, k, v = q.reshape(T, nh, hd), k.reshape(T, nkv, hd), v.reshape(T, nkv, hd)
        if L("attn_q_norm.weight") is not None:
            q, k = rmsnorm(q, L("attn_q_norm.weight"), eps), rmsnorm(k, L("attn_k_norm.weight"), eps)
        q, k = rope(q, pos, base, neox, ff, sc), rope(k, pos, base, neox, ff, sc)
        q, k, v = h16(q), h16(k), h16(v)
        att = np.empty((T, nh, hd))
        for hh in range(nh):
            kv = hh // (nh // nkv)
            s = q[:, hh, :] @ k[:, kv, :].T / np.sqrt(hd) + mask
            p = np.exp(s - s.max(axis=1, keepdims=True))
            p = h16(p / p.sum(axis=1, keepdims=True))
            att[:, hh, :] = p @ v[:, kv, :]
        x = x + att.reshape(T, nh * hd) @ L("attn_output.weight").T
        h = rmsnorm(x, L("ffn_norm.weight"), eps)
        gt, up = h @ L("ffn_gate.weight").T, h @ L("ffn_up.weight").T
        x = x + (gt / (1 + np.exp(-gt)) * up) @ L("ffn_down.weight").T
    out = t.get("output.weight", t["token_embd.weight"])
    return rmsnorm(x, t["output_norm.weight"], eps) @ out.T


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    writer = os.path.join(sys.argv[1], "tests", "engine", "tiny_write")
    hdr = open(os.path.join(root, "tests", "engine", "tiny_gguf.h")).read()
    toks = [int(x) for x in re.search(r"TG_REF_TOKENS\[\] = \{([^}]*)\}", hdr).group(1).split(",")]
    res = {"tokens": toks, "cases": {}}
    with tempfile.TemporaryDirectory() as d:
        for path in subprocess.run([writer, d], check=True, capture_output=True, text=True).stdout.split():
            name = os.path.basename(path)[len("tiny-") : -len(".gguf")]
            meta, t = read_gguf(path)
            res["cases"][name] = np.round(forward(meta, t, toks), 7).tolist()
    out = os.path.join(here, "golden_tiny_arch.json")
    with open(out, "w") as f:
        json.dump(res, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out}: {', '.join(res['cases'])}")


if __name__ == "__main__":
    main()
