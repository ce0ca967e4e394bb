#!/usr/bin/env python3
"""select_eval.py - offline measurements on bench_kvm_select_dump files (real
keys, values and last-token queries of needle prompts, full f16 memory):

  values: relative squared error of the block values, per coding, on every
  block after the calibration prefix (held out: the PCA basis and variances
  come from the first `calib` positions only, as the cache would compute them
  at its first spill);
  keys/selection: for every layer and query head, the rank of the block that
  holds the needle and of the block with the most exact attention mass under
  the block-choice rules (gauss estimate from per-channel ranges, as
  kvmem/cache.c; the same in other bases), and recall@k of those blocks.

usage: select_eval.py FILE.bin [--calib N] [--topk-frac F] [--no-values]
"""
import sys
import numpy as np

S, W, B = 4, 64, 64  # kvm_config_default


def load(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"KVMSEL1\0", path
        L, H, KV, D, N, ns, nl, _ = np.frombuffer(f.read(32), "<i4")
        kvd = KV * D
        K = np.frombuffer(f.read(4 * L * N * kvd), "<f4").reshape(L, N, KV, D)
        V = np.frombuffer(f.read(4 * L * N * kvd), "<f4").reshape(L, N, KV, D)
        Q = np.frombuffer(f.read(4 * L * H * D), "<f4").reshape(L, H, D)
    return dict(L=L, H=H, KV=KV, D=D, N=N, needle=(ns, nl), K=K, V=V, Q=Q)


def quant_rows(X, bits, clip=True):
    """kvm_quant_group_mse per row of X (asymmetric, range shrunk toward its
    centre by the factor with least squared error); returns the reconstruction."""
    lv = (1 << bits) - 1
    lo0, hi0 = X.min(1, keepdims=True), X.max(1, keepdims=True)
    best, besterr = None, None
    for f in ([1.0] + [1.0 - 0.05 * i for i in range(1, 11)] if clip else [1.0]):
        c, hw = (lo0 + hi0) / 2, (hi0 - lo0) / 2 * f
        lo, hi = c - hw, c + hw
        s = np.where(hi > lo, (hi - lo) / lv, 1.0)
        R = lo + np.clip(np.rint((X - lo) / s), 0, lv) * s
        e = ((R - X) ** 2).sum(1, keepdims=True)
        if best is None:
            best, besterr = R, e
        else:
            m = e < besterr
            best = np.where(m, R, best)
            besterr = np.minimum(e, besterr)
    return best


def hadamard(n):
    h = np.array([[1.0]])
    while h.shape[0] < n:
        h = np.block([[h, h], [h, -h]])
    return h / np.sqrt(n)


def waterfill(var, total_bits, alphabet=(0, 2, 4, 8)):
    """Reverse water-filling rounded to the alphabet: component c gets
    max(0, 1/2 log2(var_c/theta)) bits; theta set so the bits sum to
    total_bits; then each rounded to the nearest allowed width, greedily
    fixed up to the budget by the largest distortion reduction per bit."""
    var = np.maximum(var, 1e-12)
    bits = np.zeros(len(var), int)
    # greedy: distortion of a component at b bits ~ var * 2^(-2b); spend bits
    # where the reduction per bit is largest
    steps = sorted(alphabet)
    spent = 0
    while True:
        best, bc, bn = 0, -1, 0
        for c in range(len(var)):
            i = steps.index(bits[c])
            if i + 1 == len(steps):
                continue
            nb = steps[i + 1]
            cost = nb - bits[c]
            if spent + cost > total_bits:
                continue
            gain = (var[c] * 2.0 ** (-2 * bits[c]) - var[c] * 2.0 ** (-2 * nb)) / cost
            if gain > best:
                best, bc, bn = gain, c, nb
        if bc < 0:
            break
        spent += bn - bits[bc]
        bits[bc] = bn
    return bits


def value_study(d, calib):
    L, KV, D, N = d["L"], d["KV"], d["D"], d["N"]
    nb = (N - S - calib) // B
    H = hadamard(D)
    res = {}
    for l in range(L):
        for h in range(KV):
            Vv = d["V"][l, :, h, :].astype(np.float64)
            cal = Vv[:calib]
            mu = cal.mean(0)
            C = np.cov((cal - mu).T)
            ev, U = np.linalg.eigh(C)
            U = U[:, ::-1]
            ev = ev[::-1]
            X = Vv[calib: calib + nb * B]
            tot = ((X - X.mean(0)) ** 2).sum()
            def err(R):
                return ((R - X) ** 2).sum() / tot
            out = {}
            out["hadamard v2 (now)"] = err(quant_rows(X @ H, 2) @ H)
            out["hadamard v4"] = err(quant_rows(X @ H, 4) @ H)
            Z = (X - mu) @ U
            for dd, b in ((48, 2), (32, 4), (40, 3)):
                if b == 3:
                    continue
                Zq = np.zeros_like(Z)
                Zq[:, :dd] = quant_rows(Z[:, :dd], b)
                out[f"pca top{dd} v{b}"] = err(Zq @ U.T + mu)
            # water-filling: per-component bits, per-component range per block (ideal reference)
            bits = waterfill(np.maximum(ev, 1e-12), 2 * D)
            Zq = np.zeros_like(Z)
            for c in range(D):
                if bits[c] == 0:
                    continue
                for b0 in range(0, len(Z), B):
                    col = Z[b0:b0 + B, c:c + 1].T
                    Zq[b0:b0 + B, c] = quant_rows(col, bits[c], clip=False)[0]
            out["pca waterfill 2b avg, per-comp block range"] = err(Zq @ U.T + mu)
            out["_energy top32"] = ev[:32].sum() / ev.sum()
            out["_energy top48"] = ev[:48].sum() / ev.sum()
            for k, v in out.items():
                res.setdefault(k, []).append(v)
    print(f"values: {L} layers x {KV} heads, calib {calib} positions, {nb} held-out blocks each")
    for k, v in res.items():
        v = np.array(v)
        print(f"  {k:45s} mean {v.mean():.4f}  median {np.median(v):.4f}  max {v.max():.4f}")


def selection_study(d, topk_frac):
    L, H, KV, D, N = d["L"], d["H"], d["KV"], d["D"], d["N"]
    g = H // KV
    ns, nl = d["needle"]
    nb = (N - S - W) // B  # blocks a cold run holds (window W..W+B-1 rows)
    nb = (N - S - W) // B if N - S >= W + B else 0
    k = max(1, int(round(topk_frac * nb)))
    needle_blocks = sorted({(p - S) // B for p in range(ns, ns + nl) if S <= p < S + nb * B})
    rules = {}
    for l in range(L):
        for h in range(KV):
            Kb = d["K"][l, S:S + nb * B, h, :].astype(np.float64).reshape(nb, B, D)
            lo, hi = Kb.min(1), Kb.max(1)
            ctr, hw = (lo + hi) / 2, (hi - lo) / 2
            mean = Kb.mean(1)
            std = Kb.std(1)
            # the same index entry (per-component ranges) in other bases: a
            # per-head PCA basis of the calibration prefix (the positions
            # before the first block's end, as at the first spill), and the
            # Walsh-Hadamard basis; the query is rotated alike
            cal = d["K"][l, :S + W + B, h, :].astype(np.float64)
            _, U = np.linalg.eigh(cal.T @ cal)
            Hd = hadamard(D)
            alt = {}
            for bname, M in (("pca", U), ("hadamard", Hd)):
                Z = Kb @ M
                zl, zh = Z.min(1), Z.max(1)
                alt[bname] = (M, (zl + zh) / 2, (zh - zl) / 2, zl, zh)
            for j in range(g):
                q = d["Q"][l, h * g + j].astype(np.float64)
                logits = np.einsum("btd,d->bt", Kb, q) / np.sqrt(D)
                mx = logits.max()
                mass = np.exp(logits - mx).sum(1)
                top_mass = int(mass.argmax())
                sc = {
                    "gauss (now)": q @ ctr.T + np.sqrt(((q * hw) ** 2).sum(1)),
                    "bound": np.maximum(q * lo, q * hi).sum(1),
                    "mean + L2 std x2.4": q @ mean.T + 2.4 * np.sqrt(((q * std) ** 2).sum(1)),
                    "exact max q.k (oracle)": (logits.max(1)),
                }
                for bname, (M, c2, h2, zl, zh) in alt.items():
                    qz = q @ M
                    sc[f"gauss, {bname} basis"] = qz @ c2.T + np.sqrt(((qz * h2) ** 2).sum(1))
                    sc[f"bound, {bname} basis"] = np.maximum(qz * zl, qz * zh).sum(1)
                for name, s in sc.items():
                    order = np.argsort(-s, kind="stable")
                    rank = np.empty(nb, int)
                    rank[order] = np.arange(nb)
                    r = rules.setdefault(name, {"needle": [], "mass": [], "massfrac": [], "needle_heads": []})
                    if needle_blocks:
                        r["needle"].append(min(rank[b] for b in needle_blocks))
                        # heads that read the needle: its blocks hold >= 10% of the blocks' exact mass
                        if sum(mass[b] for b in needle_blocks) >= 0.1 * mass.sum():
                            r["needle_heads"].append(min(rank[b] for b in needle_blocks))
                    r["mass"].append(rank[top_mass])
                    r["massfrac"].append(mass[order[:k]].sum() / mass.sum())
    print(f"selection: {nb} blocks, top-k {k}, needle in blocks {needle_blocks}, {L}x{H} query heads")
    for name, r in rules.items():
        nd, ms, mf = np.array(r["needle"]), np.array(r["mass"]), np.array(r["massfrac"])
        line = f"  {name:26s} top-mass block recall@k {np.mean(ms < k):.3f}  mass captured {mf.mean():.4f}"
        if len(nd):
            line += f"  needle block recall@k {np.mean(nd < k):.3f} (median rank {np.median(nd):.0f})"
        nh = np.array(r["needle_heads"])
        if len(nh):
            line += f"  in the {len(nh)} heads reading it: {np.mean(nh < k):.3f}"
        print(line)


if __name__ == "__main__":
    path = sys.argv[1]
    calib = int(sys.argv[sys.argv.index("--calib") + 1]) if "--calib" in sys.argv else S + W + B
    frac = float(sys.argv[sys.argv.index("--topk-frac") + 1]) if "--topk-frac" in sys.argv else 64 / 125
    d = load(path)
    selection_study(d, frac)
    if "--no-values" not in sys.argv:
        value_study(d, calib)
