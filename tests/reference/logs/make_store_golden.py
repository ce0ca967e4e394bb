#!/usr/bin/env python3
"""make_store_golden.py — golden values for tests/logs/test_logs_golden.c.

The store persists hashes that must not change across refactors (a store
written by one build is read and resumed by the next):
  files.head_hash  FNV-1a 64 with kvasir's basis (1469598103934665603, the
                   published basis with its last digit lost; base/hash.h)
                   over the file's first min(4096, size) bytes, masked to 63
                   bits so it fits SQLite's signed integer (logs/ingest.c).
It also prints kv_hash64 of the strings the test checks directly.

The fixture file is generated here and in the test by the same rule (keep
fixture() in both in step). Run: python3 make_store_golden.py
"""

BASIS = 1469598103934665603
PRIME = 1099511628211
MASK64 = (1 << 64) - 1


def fnv1a(data: bytes, h: int = BASIS) -> int:
    for b in data:
        h = ((h ^ b) * PRIME) & MASK64
    return h


def fixture() -> bytes:
    users = ["root", "alice", "bob"]
    out = []
    for i in range(300):
        mm, ss = i // 60, i % 60
        k = i % 3
        if k == 0:
            out.append("2026-01-02 03:%02d:%02d INFO auth: user %s logged in from 10.0.%d.%d"
                       % (mm, ss, users[(i // 3) % 3], i % 7, i % 251))
        elif k == 1:
            out.append("2026-01-02 03:%02d:%02d WARN net: connection %d closed after %d ms"
                       % (mm, ss, 1000 + i, (i * 37) % 5000))
        else:
            out.append("2026-01-02 03:%02d:%02d ERROR disk: write failed on /dev/sd%s: code %d"
                       % (mm, ss, "abc"[i % 3], -(i % 5)))
    return ("\n".join(out) + "\n").encode()


if __name__ == "__main__":
    data = fixture()
    print("fixture bytes", len(data))
    print("head_hash %d" % (fnv1a(data[:4096]) & 0x7FFFFFFFFFFFFFFF))
    for s in [b"", b"a", b"foobar", b"<*>"]:
        print("kv_hash64(%r) = 0x%016xULL" % (s, fnv1a(s)))
