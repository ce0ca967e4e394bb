#!/usr/bin/env python3
"""pyclient.py — an independent client of the kvasir protocol (version 1),
written from docs/protocol.md alone: PyNaCl's bundled libsodium for crypto_kx
and crypto_secretstream, Python's hashlib for keyed BLAKE2b, and the `msgpack`
package for messages. tests/daemon/test_pyref.c runs it against a live
daemon; it exits 0 when every check passes.

    python3 -m venv .venv && .venv/bin/pip install pynacl msgpack
    .venv/bin/python tests/reference/ipc/pyclient.py [SOCKET] [SECRET]
"""
import hashlib
import os
import socket
import struct
import sys

import msgpack
import nacl.bindings as nb


def xdg(var, fallback):
    v = os.environ.get(var)
    return os.path.join(v, "kvasir") if v else os.path.expanduser(fallback)


def h(label, *parts, key=None):
    m = hashlib.blake2b(digest_size=32, key=key or b"")
    m.update(label)
    for p in parts:
        m.update(p)
    return m.digest()


class Conn:
    def __init__(self, path, secret):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b""
        pk, sk = nb.crypto_kx_keypair()
        hello = b"KVh1" + bytes([1]) + pk
        self.send_frame(hello)
        reply = self.recv_frame()
        assert len(reply) == 93 and reply[:4] == b"KVr1" and reply[4] == 1, "bad REPLY"
        spk, hdr_s2c, mac_s = reply[5:37], reply[37:61], reply[61:93]
        rx, tx = nb.crypto_kx_client_session_keys(pk, sk, spk)  # c2s = tx, s2c = rx
        th = h(b"kvasir-hs-v1", hello, spk)
        k_c2s = h(b"c2s", tx, th, key=secret)
        k_s2c = h(b"s2c", rx, th, key=secret)
        k_mac = h(b"mac", tx + rx, th, key=secret)
        assert h(b"server", th, hdr_s2c, key=k_mac) == mac_s, "server MAC mismatch"
        self.rx = nb.crypto_secretstream_xchacha20poly1305_state()
        nb.crypto_secretstream_xchacha20poly1305_init_pull(self.rx, hdr_s2c, k_s2c)
        self.tx = nb.crypto_secretstream_xchacha20poly1305_state()
        hdr_c2s = nb.crypto_secretstream_xchacha20poly1305_init_push(self.tx, k_c2s)
        self.send_frame(b"KVf1" + hdr_c2s + h(b"client", th, hdr_s2c, hdr_c2s, key=k_mac))

    def send_frame(self, b):
        self.s.sendall(struct.pack(">I", len(b)) + b)

    def recv_frame(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) >= 4 + n:
                    f, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
                    return f
            d = self.s.recv(65536)
            if not d:
                raise EOFError("daemon closed the connection")
            self.buf += d

    def send(self, obj, final=False):
        tag = (nb.crypto_secretstream_xchacha20poly1305_TAG_FINAL if final
               else nb.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE)
        self.send_frame(nb.crypto_secretstream_xchacha20poly1305_push(self.tx, msgpack.packb(obj), None, tag))

    def recv(self):
        m, _tag = nb.crypto_secretstream_xchacha20poly1305_pull(self.rx, self.recv_frame(), None)
        return msgpack.unpackb(m, raw=False)

    def call(self, msgid, method, params):
        self.send([0, msgid, method, params])
        notes = []
        while True:
            m = self.recv()
            if m[0] == 2:
                notes.append(m)
            elif m[0] == 1 and m[1] == msgid:
                return m[2], m[3], notes


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        xdg("XDG_RUNTIME_DIR", "/tmp/kvasir-%d" % os.getuid()), "kvasird.sock")
    secret_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        xdg("XDG_CONFIG_HOME", "~/.config"), "keys", "secret")
    secret = open(secret_path, "rb").read()
    c = Conn(path, secret)
    err, res, _ = c.call(1, "status", {})
    assert err is None and res["protocol"] == 1, (err, res)
    err, res, _ = c.call(2, "no.such", [])
    assert err["code"] == -32601, err
    err, res, _ = c.call(3, "repo.list", {})
    assert err is None and isinstance(res, list), (err, res)
    c.send(b"", final=True)  # clean close
    # a wrong secret: the client must detect that the daemon does not hold it
    try:
        Conn(path, bytes(32))
        raise SystemExit("a wrong secret was accepted")
    except AssertionError as e:
        assert "server MAC" in str(e)
    print("pyclient: handshake, status, unknown method, repo.list, wrong secret: ok")


if __name__ == "__main__":
    main()
