#!/usr/bin/env python3
"""make_golden.py — golden msgpack-rpc encodings for tests/ipc/test_rpc.c,
produced by the reference Python implementation (pip `msgpack`), independent
of msgpack-c. Writes golden.txt: one `name hex` per line. Run:
    python3 -m venv .venv && .venv/bin/pip install msgpack
    .venv/bin/python tests/reference/ipc/make_golden.py > tests/reference/ipc/golden.txt
"""
import msgpack

cases = [
    ("req_status", [0, 7, "status", []]),
    ("req_ask", [0, 4294967295, "ask",
                 {"question": "where is main?", "file": "a.c", "cursor": {"line": 3, "col": -1}}]),
    ("resp_ok", [1, 7, None, {"ok": True, "n": 1.5, "list": [1, -2, 300, 70000, -40000, 5000000000]}]),
    ("resp_err", [1, 9, {"code": -4, "message": "bad params: field 'question'"}, None]),
    ("notify_token", [2, "ask.token", {"id": 3, "text": "h\u00e9llo \u2603"}]),
    ("notify_cancel", [2, "$/cancel", {"id": 12}]),
]
for name, obj in cases:
    print(name, msgpack.packb(obj, use_bin_type=True).hex())
