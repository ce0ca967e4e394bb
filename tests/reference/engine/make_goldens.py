#!/usr/bin/env python3
"""make_goldens.py — golden values for tests/engine from llama.cpp, built
from source on this machine by scripts/build-llama-ref (pinned version).

For each model (smollm2: GPT-2 BPE / llama arch; gemma3: SentencePiece /
gemma3 arch) it records, into golden_<model>.json:
  - tokens: llama-tokenize ids (BOS per the model, special tokens parsed)
    for every string of tokenizer_corpus.json;
  - ppl: llama-perplexity on ppl_text.txt with -c 128 (first CHUNKS chunks
    for the default test, all chunks for the slow one);
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

def ppl(model, chunks):
    args = [os.path.join(bin_dir, "llama-perplexity"), "-m", model, "-f", ppl_text, "-c", str(CTX), "-t", "2"]
    if chunks:
        args += ["--chunks", str(chunks)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    m = re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr)
    return float(m.group(1))

for name in ("smollm2", "gemma3"):
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
    g["ppl"] = {"ctx": CTX, "chunks": CHUNKS, "value": ppl(model, CHUNKS), "all_chunks": ppl(model, 0)}
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
