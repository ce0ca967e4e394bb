#!/usr/bin/env python3
"""log_code_pypi.py — `kvasir logs triage --repo` on a real program's logs.

Fetches the sdist of urllib3 (PyPI, `pip download --no-binary :all:`),
indexes it as a git repository (`kvasir index`), runs a script that drives
urllib3 against a local HTTP server with logging at DEBUG (redirects,
retries on 500, a read timeout, a refused connection, a full pool, chunked
and streamed bodies: a few seconds, offline once fetched), ingests the log
(`kvasir logs ingest`), triages it with --repo and measures, per template,
whether its first code link is the literal that printed it.

The truth comes from the run, not the matcher: a logging handler writes,
for every record in the order of the log's lines, the record's pathname and
lineno; Python's ast gives the logger call holding that line, and the line
its first argument (the format literal) starts on. A template's sites are
those of its records (`kvasir logs query --template`).

Prints templates / with a site in the repository / linked / correct /
wrong / not linked, and exits 1 when a link is wrong or fewer than
--min-share of the templates with a site are linked correctly; 77 (skipped)
when the package cannot be fetched. Usage:
  log_code_pypi.py KVASIR_BINARY [--work DIR] [--version 2.2.3] [--keep]
"""
import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

DRIVER = r'''
import http.server, json, logging, socket, sys, threading, time
import urllib3
from urllib3.util.retry import Retry

class OneLine(logging.Formatter):
    def format(self, r):
        return super().format(r).replace("\n", " | ")

class Truth(logging.Handler):
    def __init__(self, path):
        super().__init__()
        self.f = open(path, "w")
    def emit(self, r):
        self.f.write(json.dumps({"path": r.pathname, "line": r.lineno, "msg": str(r.msg)}) + "\n")
        self.f.flush()

log_path, truth_path = sys.argv[1], sys.argv[2]
h = logging.FileHandler(log_path)
h.setFormatter(OneLine("%(asctime)s %(levelname)s %(name)s: %(message)s"))
root = logging.getLogger("urllib3")
root.setLevel(logging.DEBUG)
root.addHandler(h)
root.addHandler(Truth(truth_path))

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    fails = {}
    def log_message(self, *a):
        pass
    def _send(self, code, body=b"ok", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        p = self.path
        if p.startswith("/redirect"):
            self._send(301, b"", [("Location", "/ok")])
        elif p.startswith("/fail"):
            self._send(500, b"no")
        elif p.startswith("/flaky"):
            n = H.fails.get(p, 0)
            H.fails[p] = n + 1
            self._send(503 if n < 2 else 200, b"x", [("Retry-After", "0")])
        elif p.startswith("/slow"):
            time.sleep(0.5)
            self._send(200)
        elif p.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"ab", b"cd"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self._send(200, b"hello" * 10)
    do_POST = do_GET

srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % srv.server_address[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); dead = s.getsockname()[1]; s.close()

pm = urllib3.PoolManager(retries=Retry(total=3, backoff_factor=0, status_forcelist=[500, 503]))
for i in range(3):
    pm.request("GET", base + "/ok?i=%d" % i)
pm.request("GET", base + "/redirect")
pm.request("POST", base + "/ok", fields={"a": "b"})
try:
    pm.request("GET", base + "/fail")
except urllib3.exceptions.MaxRetryError:
    pass
pm.request("GET", base + "/flaky")
try:
    pm.request("GET", base + "/slow", timeout=0.1, retries=Retry(1, read=1))
except urllib3.exceptions.MaxRetryError:
    pass
try:
    pm.request("GET", "http://127.0.0.1:%d/x" % dead, retries=Retry(2, backoff_factor=0))
except urllib3.exceptions.MaxRetryError:
    pass
r = pm.request("GET", base + "/chunked", preload_content=False)
r.read(); r.release_conn()
pool = urllib3.HTTPConnectionPool("127.0.0.1", srv.server_address[1], maxsize=1, block=False)
rs = [pool.urlopen("GET", "/ok", preload_content=False) for _ in range(3)]
for x in rs:
    x.read(); x.release_conn()
pool.close()
pm.clear()
srv.shutdown()
'''


def run(cmd, env=None, **kw):
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, **kw)


def literal_line(tree_cache, path, line):
    """The line the first argument of the call holding `line` starts on."""
    if path not in tree_cache:
        try:
            with open(path, encoding="utf-8") as f:
                tree_cache[path] = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError):
            tree_cache[path] = None
    tree = tree_cache[path]
    if tree is None:
        return None
    best = None
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and n.args and n.lineno <= line <= (n.end_lineno or n.lineno):
            a = n.args[0]
            if isinstance(a, (ast.Constant, ast.JoinedStr, ast.BinOp)):
                if best is None or n.lineno >= best.lineno:
                    best = n
    return best.args[0].lineno if best else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kvasir")
    ap.add_argument("--work")
    ap.add_argument("--version", default="2.2.3")
    ap.add_argument("--min-share", type=float, default=0.5)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="kvasir-logcode-pypi-")
    os.makedirs(work, exist_ok=True)
    env = dict(os.environ, XDG_DATA_HOME=os.path.join(work, "data"), XDG_CACHE_HOME=os.path.join(work, "cache"),
               XDG_CONFIG_HOME=os.path.join(work, "cfg"), XDG_RUNTIME_DIR=os.path.join(work, "run"))
    for k in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"):
        os.makedirs(env[k], mode=0o700, exist_ok=True)
    try:
        dl = os.path.join(work, "dl")
        sdist = [f for f in os.listdir(dl)] if os.path.isdir(dl) else []
        if not sdist:
            try:
                run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                     "urllib3==" + a.version, "-d", dl], timeout=180)
            except (subprocess.SubprocessError, OSError) as e:
                print("skipped: cannot fetch urllib3 %s from PyPI (%s)" % (a.version, str(e).strip()[:200]))
                return 77
            sdist = os.listdir(dl)
        tgz = [f for f in sdist if f.endswith(".tar.gz")]
        if not tgz:
            print("skipped: no sdist of urllib3 %s" % a.version)
            return 77
        src = os.path.join(work, "urllib3")
        if not os.path.isdir(src):
            with tarfile.open(os.path.join(dl, tgz[0])) as t:
                t.extractall(work, filter="data")
            os.rename(os.path.join(work, "urllib3-" + a.version), src)
            run(["git", "init", "-q", "."], cwd=src)
            run(["git", "add", "-A"], cwd=src)
            run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "sdist"], cwd=src)
        run([a.kvasir, "index", src], env=env)
        log, truth = os.path.join(work, "urllib3.log"), os.path.join(work, "truth.jsonl")
        drv = os.path.join(work, "drive.py")
        with open(drv, "w") as f:
            f.write(DRIVER)
        denv = dict(env, PYTHONPATH=os.path.join(src, "src"))
        for p in (log, truth):
            if os.path.exists(p):
                os.remove(p)
        run([sys.executable, drv, log, truth], env=denv, timeout=120)
        db = os.path.join(work, "logs.db")
        if os.path.exists(db):
            os.remove(db)
        run([a.kvasir, "logs", "ingest", "--db", db, log], env=env)
        tri = json.loads(run([a.kvasir, "logs", "triage", "--db", db, "--repo", src, "--limit", "1000", "--json"],
                             env=env).stdout)
        recs = [json.loads(l) for l in open(truth)]
        cache = {}
        srcabs = os.path.realpath(src) + "/"
        sites = []
        for r in recs:
            p = os.path.realpath(r["path"])
            if not p.startswith(srcabs):
                sites.append(None)
                continue
            ln = literal_line(cache, p, r["line"])
            sites.append((p[len(srcabs):], ln) if ln else None)
        n = with_site = linked = correct = wrong = 0
        for it in tri["items"]:
            n += 1
            rows = json.loads(run([a.kvasir, "logs", "query", "--db", db, "--template", str(it["template_id"]),
                                   "--limit", "100000", "--json"], env=env).stdout)
            truth_sites = {sites[r["line"] - 1] for r in rows if 1 <= r["line"] <= len(sites)} - {None}
            code = it.get("code", [])
            has = bool(truth_sites)
            with_site += has
            if code:
                linked += 1
                top = (code[0]["path"], code[0]["line"])
                ok = top in truth_sites
                correct += ok
                wrong += not ok
                mark = "ok" if ok else "WRONG (truth %s)" % sorted(truth_sites)
                print("  %-72.72s -> %s:%d %s" % (it["template"], top[0], top[1], mark))
            else:
                print("  %-72.72s -> (none)%s" % (it["template"], "" if not has else "  truth %s" % sorted(truth_sites)))
        print("urllib3 %s: %d records, %d templates, %d with a site in the repository; linked %d, correct %d, "
              "wrong %d, not linked %d (share correct of those with a site: %.0f%%)"
              % (a.version, len(recs), n, with_site, linked, correct, wrong, with_site - correct,
                 100.0 * correct / with_site if with_site else 0))
        if wrong or (with_site and correct < a.min_share * with_site):
            return 1
        return 0
    finally:
        if not a.keep and not a.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
