#!/usr/bin/env python3
"""minilm_ref.py — the independent reference for the bert row (engine/bert.c,
engine/wordpiece.c): token ids from the Hugging Face `tokenizers` library
(tokenizer.json as shipped), embeddings from a numpy port of transformers'
BertModel + sentence-transformers' mean pooling, run on the original f32
safetensors (not on kvasir's GGUF), so a conversion error shows too.

usage: tests/reference/engine/minilm_ref.py [OUT.json]
       (default: tests/reference/engine/golden_minilm.json)

Sources: scripts/convert-minilm --extract (sha256-checked). Needs numpy,
safetensors and tokenizers (pip-installed when missing).
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

# Embedded (text, max_tokens): short questions, code, a long text cut at 128.
EMBED = [
    ("How does the compressor measure how many bytes a match runs on forward?", 128),
    ("static unsigned LZ4_count(const BYTE* pIn, const BYTE* pMatch, const BYTE* pInLimit)", 128),
    ("def get_terminal_size(fallback=(80, 24)):\n    \"\"\"Returns the terminal size.\"\"\"", 128),
    ("Parse options from argv; unknown options are errors unless allowUnknownOption() was called.", 128),
    ("", 128),
    (" ".join(["the option parser reads each argument and the value that follows it"] * 30), 128),
]
# Tokenized only: the normalizer's corners.
TOKENIZE = [
    "Crème brûlée à la carte, naïve café, Ångström, Œuvre, Łódź",
    "ΆΈΉ Ωμέγα ΪΫ, Ёлка Йод ЎЇ",
    "中文字符 and かな カナ 한국어",
    "tabs\tand\nnew lines\r\nand\u00a0no-break\u2003em space",
    "snake_case camelCase LZ4_compress_fast(ctx, src, dst) -> int; a--b...c",
    "ctrl \x01\x02\x7f\u200b zero-width \ufeff bom \ufffd",
    "\u201csmart quotes\u201d \u2018single\u2019 \u2014 dash \u2026 \u00bfque? \u00a1si! \u00ab\u00bb",
    "x" * 120 + " unbelievably_long_identifier_" + "y" * 90,
    "emoji \U0001F600 math \u2211 \u00d7 \u00f7 \u00b1 \u00b0 \u00a9 \u00ae currency $\u20ac\u00a3\u00a5",
    "UPPER lower MiXeD 12345 3.14159 0xFF 1e-12",
]


def need(*mods):
    missing = []
    for m in mods:
        try:
            __import__(m)
        except ImportError:
            missing.append(m)
    if missing:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + missing)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "golden_minilm.json")
    need("numpy", "safetensors", "tokenizers")
    import numpy as np
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "kvasir")
    src = subprocess.check_output([os.path.join(ROOT, "scripts", "convert-minilm"), "--extract",
                                   os.path.join(cache, "src", "all-MiniLM-L6-v2")], text=True).strip()
    cfg = json.load(open(os.path.join(src, "config.json")))
    tok = Tokenizer.from_file(os.path.join(src, "tokenizer.json"))
    tok.no_padding()  # the shipped tokenizer.json pads to 128
    w = {k: v.astype(np.float64) for k, v in load_file(os.path.join(src, "model.safetensors")).items()}
    eps = cfg["layer_norm_eps"]
    nh = cfg["num_attention_heads"]

    def ln(x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * w[p + ".weight"] + w[p + ".bias"]

    def lin(x, p):
        return x @ w[p + ".weight"].T + w[p + ".bias"]

    from math import erf
    verf = np.vectorize(erf)

    def embed(ids):
        n = len(ids)
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n] + \
            w["embeddings.token_type_embeddings.weight"][0]
        x = ln(x, "embeddings.LayerNorm")
        d = x.shape[1]
        hd = d // nh
        for il in range(cfg["num_hidden_layers"]):
            p = "encoder.layer.%d." % il
            q = lin(x, p + "attention.self.query").reshape(n, nh, hd).transpose(1, 0, 2)
            k = lin(x, p + "attention.self.key").reshape(n, nh, hd).transpose(1, 0, 2)
            v = lin(x, p + "attention.self.value").reshape(n, nh, hd).transpose(1, 0, 2)
            s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            a = (s @ v).transpose(1, 0, 2).reshape(n, d)
            x = ln(x + lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
            h = lin(x, p + "intermediate.dense")
            h = 0.5 * h * (1 + verf(h / np.sqrt(2)))
            x = ln(x + lin(h, p + "output.dense"), p + "output.LayerNorm")
        e = x.mean(0)
        return e / np.linalg.norm(e)

    res = {"model": "all-MiniLM-L6-v2", "embed": [], "tokenize": []}
    for text, mt in EMBED:
        tok.enable_truncation(mt)
        ids = tok.encode(text).ids
        res["embed"].append({"text": text, "max_tokens": mt, "ids": ids,
                             "embedding": [round(float(v), 7) for v in embed(ids)]})
    tok.no_truncation()
    for text in TOKENIZE:
        res["tokenize"].append({"text": text, "ids": tok.encode(text).ids})
    with open(out, "w") as f:
        json.dump(res, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main()
