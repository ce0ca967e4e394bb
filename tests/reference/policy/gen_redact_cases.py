#!/usr/bin/env python3
"""Golden cases for policy/redact.c.

    .venv-pol/bin/pip install detect-secrets==1.5.0
    .venv-pol/bin/python tests/reference/policy/gen_redact_cases.py > tests/reference/policy/redact_cases.json

Lines with one planted secret of a known kind (random, seeded) and lines with
none. Every planted line is checked here against Yelp's detect-secrets
(an independent detector): its plugin for that kind must flag the line, or
the case is not written. Negative lines are ordinary code and identifiers
(git SHAs, UUIDs, long names, paths) that must survive untouched. Also the
Shannon entropy (bits/char) of sample strings, computed with math.log2, as
golden values for the entropy measure."""
import base64
import json
import math
import random
import string
import sys
from collections import Counter

from detect_secrets.core.scan import scan_line
from detect_secrets.settings import default_settings

rng = random.Random(9)
A = string.ascii_letters + string.digits


def rs(n, alphabet=A):
    return "".join(rng.choice(alphabet) for _ in range(n))


def b64u(b):
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def jwt():
    h = b64u(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64u(json.dumps({"sub": rs(8), "iat": rng.randint(10**9, 2 * 10**9)}).encode())
    return f"{h}.{p}.{b64u(rng.randbytes(32))}"


def pem():
    body = "\n".join(base64.b64encode(rng.randbytes(48)).decode() for _ in range(4))
    kind = rng.choice(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


GEN = {
    "aws": (lambda: rng.choice(["AKIA", "ASIA"]) + rs(16, string.ascii_uppercase + string.digits), "AWS Access Key"),
    "github": (lambda: rng.choice(["ghp_", "gho_", "ghs_"]) + rs(36), "GitHub Token"),
    "slack": (lambda: rng.choice(["xoxb-", "xoxp-"]) + "-".join(str(rng.randint(10**11, 10**12)) for _ in range(2)) + "-" + rs(24), "Slack Token"),
    "openai": (lambda: "sk-proj-" + rs(20) + "T3BlbkFJ" + rs(20), "OpenAI Token"),
    "jwt": (jwt, "JSON Web Token"),
    "private_key": (pem, "Private Key"),
    "url_password": (lambda: rs(12, string.ascii_letters + string.digits + "!$%"), "Basic Auth Credentials"),
    "high_entropy": (lambda: base64.b64encode(rng.randbytes(rng.choice([24, 30, 33, 45]))).decode(), "Base64 High Entropy String"),
    "gcp": (lambda: "AIza" + rs(35, A + "-_"), None),
}
TEMPLATES = {
    "url_password": ['DATABASE_URL = "postgres://admin:{s}@db.internal:5432/app"', 'remote = "https://deploy:{s}@git.example.com/repo.git"'],
    "private_key": ['key = """{s}"""', "{s}"],
}
DEFAULT_T = ['api_key = "{s}"', 'export TOKEN="{s}"', 'headers["Authorization"] = "Bearer {s}"', "    client.login(token='{s}')"]

NEGATIVE = [
    "commit 3f786850e387550fdab836ed7e6dc881de23001b fixed the parser",
    'id = "123e4567-e89b-12d3-a456-426614174000"',
    "def ThisIsAVeryLongCamelCaseIdentifierName(self): return None",
    "static int kvm_window_compress_blocks_into_summary(void);",
    'url = "https://example.com/docs/getting-started/install"',
    "for (size_t i = 0; i < n_elements_in_the_buffer; i++) sum += v[i];",
    "# TODO(alice): handle the case where the key is missing",
    'sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"',
    "password = get_password_from_vault(user_id)",
    "SELECT name, created_at FROM users WHERE id = 42 ORDER BY created_at;",
    'const char *path = "src/components/navigation/HeaderMenu.tsx";',
    "sk-learn is a nickname; see https://scikit-learn.org/stable/",
    "https://user@example.com/path has a user but no password",
    "version_2024_11_23_release_candidate_final",
    "uint8_t tag = final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;",
    'snprintf(path, sizeof path, "%s/models/DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", dir);',
    "`-m` defaults to `$XDG_CACHE_HOME/kvasir/models/SmolLM2-135M-Instruct.Q4_1.gguf`.",
    '"integrity": "sha512-Fy4iLvBgGXmFZnDP8ClchaY0Em4NIlyi17xVEEi9zGbRTNDIGiP6pCRuqQ5hWRnEX6xUBBfr8nq1cWHFDFSlLQ==",',
]

with default_settings():
    lines = []
    for kind, (gen, plugin) in GEN.items():
        made = 0
        while made < 12:
            s = gen()
            t = rng.choice(TEMPLATES.get(kind, DEFAULT_T))
            text = t.format(s=s)
            if plugin:
                types = set()
                for ln in text.split("\n"):
                    types |= {x.type for x in scan_line(ln)}
                if plugin not in types:
                    continue  # the independent detector disagrees: not a golden case
            lines.append({"text": text, "kind": kind, "secret": s, "detect_secrets": plugin})
            made += 1
    for t in NEGATIVE:
        lines.append({"text": t, "kind": "none", "secret": "", "detect_secrets": None})

# Recall sample for the high-entropy detector: random base64 / base64url
# tokens of 24-64 characters, kept only when detect-secrets' Base64 plugin
# flags them too.
random_tokens = []
with default_settings():
    while len(random_tokens) < 400:
        raw = rng.randbytes(rng.choice([18, 21, 24, 30, 36, 48]))
        tok = base64.b64encode(raw).decode() if rng.random() < 0.5 else b64u(raw)
        if "Base64 High Entropy String" in {x.type for x in scan_line(f'secret = "{tok}"')}:
            random_tokens.append(tok)

samples = ["", "a", "aaaa", "ab", "abcd", "hello world", "3f786850e387550fdab836ed7e6dc881de23001b",
           "ThisIsAVeryLongCamelCaseIdentifierName"] + [base64.b64encode(rng.randbytes(n)).decode() for n in (8, 24, 48)]
ent = []
for s in samples:
    c = Counter(s)
    h = -sum(v / len(s) * math.log2(v / len(s)) for v in c.values()) if s else 0.0
    ent.append({"s": s, "bits": h})
json.dump({"generator": "gen_redact_cases.py + detect-secrets 1.5.0", "lines": lines, "entropy": ent,
           "random_tokens": random_tokens}, sys.stdout, indent=0)
