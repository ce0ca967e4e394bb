#!/usr/bin/env python3
"""make_goldens.py — golden values for tests/engine from llama.cpp, built
from source on this machine by scripts/build-llama-ref (pinned version).

For each model (smollm2: GPT-2 BPE / llama arch; gemma3: SentencePiece /
gemma3 arch) it records, into golden_<model>.json:
  - tokens: llama-tokenize ids (BOS per the model, special tokens parsed)
    for every string of tokenizer_corpus.json;
  - ppl: llama-perplexity on ppl_text.txt with -c 128 (first CHUNKS chunks
    for the default test, all chunks for the record), plus per scored token
    llama.cpp's NLL and top-1 id (from --kl-divergence-base, quantized to
    1/65535 of the logit range by llama.cpp) for paired comparisons;
  - greedy: llama-simple's 64-token greedy continuation of each prompt of
    prompts.json (the text after the echoed prompt).
usage: tests/reference/engine/make_goldens.py   (from anywhere)
"""
import json, os, re, subprocess, sys, tempfile

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", ".."))
CTX, CHUNKS, NGEN = 128, 4, 64

def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout

bin_dir = sh(os.path.join(root, "scripts", "build-llama-ref")).strip().splitlines()[-1]
pin = open(os.path.join(root, "build-llama-ref", "PIN")).read().strip()
corpus = json.load(open(os.path.join(here, "tokenizer_corpus.json")))
prompts = json.load(open(os.path.join(here, "prompts.json")))
ppl_text = os.path.join(here, "ppl_text.txt")

def per_token(model, chunks):
    """llama.cpp's log-probabilities of the scored tokens (second half of each
    chunk), read back from --kl-divergence-base: per token the NLL of the
    actual next token and the id of the most likely one."""
    import struct
    with tempfile.TemporaryDirectory() as d:
        base = os.path.join(d, "base.bin")
        subprocess.run([os.path.join(bin_dir, "llama-perplexity"), "-m", model, "-f", ppl_text, "-c", str(CTX),
                        "--chunks", str(chunks), "-t", "2", "--kl-divergence-base", base],
                       capture_output=True, check=True)
        b = open(base, "rb").read()
    assert b[:8] == b"_logits_"
    n_ctx, n_vocab, n_chunk = struct.unpack_from("<iii", b, 8)
    off = 20
    toks = struct.unpack_from("<%di" % (n_chunk * n_ctx), b, off)
    off += 4 * n_chunk * n_ctx
    nv = 2 * ((n_vocab + 1) // 2) + 4
    nll, top = [], []
    for c in range(n_chunk):
        for i in range(n_ctx // 2, n_ctx - 1):
            scale, min_lp = struct.unpack_from("<ff", b, off)
            q = struct.unpack_from("<%dH" % n_vocab, b, off + 8)
            off += 2 * nv
            nll.append(-(q[toks[c * n_ctx + i + 1]] * scale + min_lp))
            top.append(max(range(n_vocab), key=q.__getitem__))
    return nll, top

def ppl(model, chunks):
    args = [os.path.join(bin_dir, "llama-perplexity"), "-m", model, "-f", ppl_text, "-c", str(CTX), "-t", "2"]
    if chunks:
        args += ["--chunks", str(chunks)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
    return float(m.group(1))

def tiny_qwen2():
    """The qwen2 code path on a tiny random model (tests/engine/tiny_qwen2.c,
    built in $KVASIR_BUILD_DIR, default build/): Qwen2 pre-tokenizer ids,
    greedy continuations (as hex bytes: random models emit partial UTF-8)
    and perplexity with per-token values."""
    build = os.environ.get("KVASIR_BUILD_DIR", os.path.join(root, "build"))
    exe = os.path.join(build, "tests", "engine", "tiny_qwen2")
    smollm = sh(os.path.join(root, "scripts", "fetch-model"), "--path", "smollm2").strip()
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "tiny-qwen2.gguf")
        subprocess.run([exe, model, smollm], check=True)
        g = {"reference": f"llama.cpp vendored in llama-cpp-python=={pin}", "model": "tiny_qwen2 (tests/engine/tiny_qwen2.c)"}
        toks = []
        for text in corpus:
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", delete=False) as f:
                f.write(text)
            try:
                out = sh(os.path.join(bin_dir, "llama-tokenize"), "-m", model, "-f", f.name, "--no-escape", "--ids",
                         "--log-disable")
            finally:
                os.unlink(f.name)
            toks.append({"text": text, "ids": json.loads(out.strip().splitlines()[-1])})
        g["tokens"] = toks
        nll, top = per_token(model, CHUNKS)
        g["ppl"] = {"ctx": CTX, "chunks": CHUNKS, "value": ppl(model, CHUNKS), "token_nll": [round(x, 5) for x in nll],
                    "token_top": top}
        greedy = []
        for p in prompts:
            out = subprocess.run([os.path.join(bin_dir, "llama-simple"), "-m", model, "-n", "32", p],
                                 capture_output=True, check=True).stdout
            assert out.startswith(p.encode()), (p, out[:80])
            cont = out[len(p.encode()):]
            if cont.endswith(b"\n"):
                cont = cont[:-1]
            greedy.append({"prompt": p, "continuation_hex": cont.hex()})
        g["greedy"] = greedy
    with open(os.path.join(here, "golden_tiny_qwen2.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, indent=1)
    print("tiny_qwen2", g["ppl"]["value"], file=sys.stderr)

names = sys.argv[1:] or ["smollm2", "gemma3", "tiny_qwen2"]
if "tiny_qwen2" in names:
    names.remove("tiny_qwen2")
    tiny_qwen2()
for name in names:
    model = sh(os.path.join(root, "scripts", "fetch-model"), "--path", name).strip()
    g = {"reference": f"llama.cpp vendored in llama-cpp-python=={pin}", "model": os.path.basename(model)}
    toks = []
    for text in corpus:
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", delete=False) as f:
            f.write(text)
        try:
            out = sh(os.path.join(bin_dir, "llama-tokenize"), "-m", model, "-f", f.name, "--no-escape", "--ids",
                     "--log-disable")
        finally:
            os.unlink(f.name)
        toks.append({"text": text, "ids": json.loads(out.strip().splitlines()[-1])})
    g["tokens"] = toks
    nll, top = per_token(model, CHUNKS)
    g["ppl"] = {"ctx": CTX, "chunks": CHUNKS, "value": ppl(model, CHUNKS), "all_chunks": ppl(model, 0),
                "token_nll": [round(x, 5) for x in nll], "token_top": top}
    bos = "<bos>" if name == "gemma3" else ""
    greedy = []
    for p in prompts:
        out = sh(os.path.join(bin_dir, "llama-simple"), "-m", model, "-n", str(NGEN), p)
        assert out.startswith(bos + p), (name, p, out[:80])
        cont = out[len(bos + p):]
        if cont.endswith("\n"):
            cont = cont[:-1]
        greedy.append({"prompt": p, "continuation": cont})
    g["greedy"] = greedy
    with open(os.path.join(here, f"golden_{name}.json"), "w", encoding="utf-8") as f:
        json.dump(g, f, ensure_ascii=False, indent=1)
    print(name, g["ppl"], file=sys.stderr)
