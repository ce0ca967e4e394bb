#!/usr/bin/env python3
"""Canary corpus for policy/redact.c (issue 18): secrets planted in files of
many formats, the way they appear in real repositories, for
tests/policy/test_policy_canary.c.

    python3 tests/reference/policy/gen_canary.py tests/reference/policy/canary

Writes one file per format into the directory and canary.json there:
{"files": [{"path", "secrets": [values], "decoys": [values]}], "questions":
[{"text", "secrets": [...]}]}. Every secret is random (seeded, so the corpus
is the same on every run), at least 12 characters long, and distinct; a
PEM key's value is its base64 body (its lines joined with '\\n'; the test
checks each line, which may sit indented in YAML or as "\\n" escapes in JSON). Decoys are
what must survive redaction byte for byte: git commit ids, UUIDs, digests
under hash names, ordinary settings. Python standard library only."""
import base64
import json
import os
import random
import string
import sys

rng = random.Random(18)
AL = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
SYM = "!@#^*-_+=.~%"
seen = set()


def uniq(f):
    def g(*a):
        while True:
            v = f(*a)
            if v not in seen:
                seen.add(v)
                return v
    return g


@uniq
def rs(n, alphabet=AL):
    return "".join(rng.choice(alphabet) for _ in range(n))


@uniq
def password():
    if rng.random() < 0.3:  # a passphrase
        words = ["correct", "horse", "battery", "staple", "orange", "river", "candle", "window", "summit", "lantern"]
        return "-".join(rng.sample(words, 3)) + str(rng.randint(10, 99))
    first = rng.choice(AL)  # unquoted in .env/INI/YAML a value cannot start with '$', '#' or a quote
    return first + "".join(rng.choice(AL + SYM) for _ in range(rng.randint(13, 21)))


@uniq
def hexs(n):
    return "".join(rng.choice(HEX) for _ in range(n))


@uniq
def b64(nbytes, url=False):
    raw = rng.randbytes(nbytes)
    return (base64.urlsafe_b64encode(raw).decode().rstrip("=") if url else base64.b64encode(raw).decode())


@uniq
def aws_id():
    return "AKIA" + "".join(rng.choice(string.ascii_uppercase + string.digits) for _ in range(16))


@uniq
def aws_secret():
    return "".join(rng.choice(AL + "/+") for _ in range(40))


@uniq
def github():
    return rng.choice(["ghp_", "gho_", "ghs_"]) + rs(36)


@uniq
def slack():
    return "xoxb-" + str(rng.randint(10**11, 10**12)) + "-" + str(rng.randint(10**11, 10**12)) + "-" + rs(24)


@uniq
def openai():
    return "sk-proj-" + rs(20) + "T3BlbkFJ" + rs(20)


@uniq
def jwt():
    h = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    p = base64.urlsafe_b64encode(json.dumps({"sub": rs(8), "iat": rng.randint(10**9, 2 * 10**9)}).encode()).decode()
    return h + "." + p.rstrip("=") + "." + b64(32, True)


def pem_body(nbytes, width=64):
    s = base64.b64encode(rng.randbytes(nbytes)).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width))


def pem(label, nbytes, width=64):
    body = pem_body(nbytes, width)
    seen.add(body)
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----", body


def uuid():
    h = hexs(32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


files = []


def add(path, text, secrets, decoys):
    for s in secrets:
        assert len(s) >= 12, (path, s)
        for piece in s.replace("\\n", "\n").split("\n"):  # a key body: each of its lines
            assert piece in text, (path, piece)
    for d in decoys:
        assert d in text, (path, d)
    files.append({"path": path, "text": text, "secrets": secrets, "decoys": decoys})


def corpus(pre):
    """One file per format, every secret fresh."""
    # .env
    s = [password(), password(), "sk_live_" + rs(24), hexs(128), github(), b64(32), password(), aws_secret()]
    commit = hexs(40)
    add(pre + "app/.env.production",
        f"# deployed from commit {commit}\n"
        f"DB_HOST=db.internal\nDB_PORT=5432\nDB_USER=app\nDB_PASSWORD={s[0]}\n"
        f"REDIS_PASSWORD=\"{s[1]}\"\nSTRIPE_SECRET_KEY={s[2]}\nSECRET_KEY_BASE={s[3]}\n"
        f"GITHUB_TOKEN={s[4]}\nSESSION_SECRET='{s[5]}'\nexport SMTP_PASS={s[6]}\n"
        f"AWS_SECRET_ACCESS_KEY={s[7]}\nLOG_LEVEL=info\n",
        s, [commit, "DB_HOST=db.internal", "LOG_LEVEL=info"])

    # YAML
    k1, body1 = pem("RSA PRIVATE KEY", 1190)
    s = [password(), password(), hexs(40), b64(24), "postgrespw" + rs(6), jwt(), body1, rs(32)]
    u = uuid()
    add(pre + "deploy/values.yaml",
        f"service:\n  name: billing\n  uuid: {u}\n  replicas: 3\n"
        f"database:\n  host: db.internal\n  user: billing\n  password: {s[0]}\n"
        f"  admin_password: \"{s[1]}\"\n"
        f"api:\n  api_secret: {s[2]}\n  token: '{s[3]}'\n"
        f"  url: postgres://billing:{s[4]}@db.internal:5432/billing\n"
        f"  auth_token: {s[5]}\n"
        f"tls:\n  private_key: |\n" + "\n".join("    " + l for l in k1.split("\n")) + "\n"
        f"  client_secret: {s[7]}\n  enabled: true\n",
        s, [u, "replicas: 3", "host: db.internal"])

    # INI
    s = [password(), hexs(40), password(), rs(28), password()]
    add(pre + "conf/app.ini",
        f"[database]\nhost = 10.0.0.12\nuser = svc\npassword = {s[0]}\n\n"
        f"[api]\napi_secret={s[1]}\napi_key_env = BILLING_API_KEY\n\n[mail]\nsmtp_password = {s[2]}  ; rotated monthly\n"
        f"\n[oauth]\nclient_secret = \"{s[3]}\"\n[ldap]\nbind_pw = {s[4]}\n",
        s, ["api_key_env = BILLING_API_KEY", "host = 10.0.0.12"])

    # JSON
    k2, body2 = pem("PRIVATE KEY", 1216)
    s = [body2, hexs(40), password(), rs(40), b64(32, True), openai()]
    sha = hexs(64)
    add(pre + "secrets/service-account.json",
        "{\n  \"type\": \"service_account\",\n  \"project_id\": \"billing-prod\",\n"
        f"  \"private_key_id\": \"{hexs(40)}\",\n"
        f"  \"private_key\": \"{k2.replace(chr(10), chr(92) + 'n')}\\n\",\n"
        f"  \"api_secret\": \"{s[1]}\",\n  \"password\": \"{s[2]}\",\n  \"client_secret\": \"{s[3]}\",\n"
        f"  \"refresh_token\": \"{s[4]}\",\n  \"openai\": {{\"apiKey\": \"{s[5]}\"}},\n"
        f"  \"sha256\": \"{sha}\",\n  \"client_email\": \"svc@billing-prod.iam.example.com\"\n}}\n",
        s, [sha, "\"project_id\": \"billing-prod\""])
    files[-1]["secrets"][0] = body2.replace("\n", "\\n")  # in JSON the body's line breaks are "\n" escapes

    # TOML
    s = [password(), rs(32), hexs(64), password()]
    add(pre + "config/settings.toml",
        f"[server]\nport = 8080\n\n[database]\nurl = \"postgres://db.internal/app\"\npassword = \"{s[0]}\"\n\n"
        f"[github]\ntoken = \"{s[1]}\"\nwebhook_secret = '{s[2]}'\n\n[admin]\npasswd = \"{s[3]}\"\n",
        s, ["port = 8080", "url = \"postgres://db.internal/app\""])

    # XML
    s = [password(), password(), rs(32), hexs(40)]
    add(pre + "src/main/resources/datasource.xml",
        "<?xml version=\"1.0\"?>\n<config>\n"
        f"  <datasource url=\"jdbc:postgresql://db/app\" user=\"app\" password=\"{s[0]}\"/>\n"
        f"  <mail host=\"smtp.internal\">\n    <password>{s[1]}</password>\n  </mail>\n"
        f"  <oauth clientId=\"billing\" clientSecret=\"{s[2]}\"/>\n  <apiSecret>{s[3]}</apiSecret>\n</config>\n",
        s, ["user=\"app\"", "clientId=\"billing\""])

    # Python
    k3, body3 = pem("OPENSSH PRIVATE KEY", 1000, 70)
    s = [password(), aws_id(), aws_secret(), github(), password(), body3, slack()]
    c2 = hexs(40)
    add(pre + "tools/deploy.py",
        f'"""Deploy helper (pinned at commit {c2})."""\nimport os\n\n'
        f'DB_PASSWORD = "{s[0]}"\nAWS_ACCESS_KEY_ID = "{s[1]}"\naws_secret_access_key = \'{s[2]}\'\n'
        f'GITHUB = {{"token": "{s[3]}"}}\n\n\ndef login(client):\n    return client.login(user="ops", password=\'{s[4]}\')\n\n'
        f'DEPLOY_KEY = """{k3}\n"""\nSLACK_BOT = "{s[6]}"\ntimeout = 30\n',
        s, [c2, "timeout = 30", 'user="ops"'])

    # JavaScript
    s = [rs(32), password(), jwt(), github(), hexs(40)]
    add(pre + "web/src/config.js",
        f"export const config = {{\n  apiUrl: 'https://api.example.com',\n  apiKey: '{s[0]}',\n"
        f"  db: {{ user: 'web', password: \"{s[1]}\" }},\n}};\n"
        f"const sessionToken = `{s[2]}`;\nfetch(url, {{ headers: {{ Authorization: 'Bearer {s[3]}' }} }});\n"
        f"const API_SECRET = \"{s[4]}\";\nconst retries = 3;\n",
        s, ["apiUrl: 'https://api.example.com'", "const retries = 3;"])

    # Go
    s = [password(), rs(40), hexs(40), password()]
    u2 = uuid()
    add(pre + "internal/store/conn.go",
        "package store\n\nconst requestID = \"" + u2 + "\"\n\n"
        f"const dbPassword = \"{s[0]}\"\n\nvar Client = Config{{\n\tHost:     \"db.internal\",\n\tAPIKey:   \"{s[1]}\",\n"
        f"\tSecret:   \"{s[2]}\",\n}}\n\nfunc dsn() string {{\n\tpassword := \"{s[3]}\"\n\treturn \"app:\" + password\n}}\n",
        s, [u2, "Host:     \"db.internal\""])

    # C
    s = [openai(), password(), hexs(40), b64(32)]
    add(pre + "src/auth.c",
        "#include <stdio.h>\n\n"
        f"#define API_TOKEN \"{s[0]}\"\nstatic const char *db_password = \"{s[1]}\";\n"
        f"static const struct cfg c = {{.host = \"db\", .client_secret = \"{s[2]}\"}};\n"
        f"const char *hmac_key = \"{s[3]}\";\nint main(void) {{ return printf(\"%s\\n\", API_TOKEN) < 0; }}\n",
        s, ['.host = "db"', "#include <stdio.h>"])

    # shell
    s = [password(), github(), password(), aws_secret()]
    add(pre + "scripts/release.sh",
        "#!/bin/sh\nset -e\n"
        f"export PGPASSWORD='{s[0]}'\nGH_TOKEN=\"{s[1]}\" gh release create v1.2.3\n"
        f"curl -s https://deploy:{s[2]}@ci.example.com/hook\nexport AWS_SECRET_ACCESS_KEY={s[3]}\necho done\n",
        s, ["gh release create v1.2.3", "echo done"])

    # Java properties
    s = [password(), rs(32), password()]
    add(pre + "src/main/resources/application.properties",
        f"spring.datasource.url=jdbc:postgresql://db/app\nspring.datasource.username=app\n"
        f"spring.datasource.password={s[0]}\napp.api.key={s[1]}\nmail.smtp.password = {s[2]}\nserver.port=8080\n",
        s, ["server.port=8080", "spring.datasource.username=app"])

    # PEM files, and a key pasted into notes
    k4, body4 = pem("EC PRIVATE KEY", 121)
    k5, body5 = pem("RSA PRIVATE KEY", 2350)
    add(pre + "deploy/keys/server.pem", k5 + "\n", [body5], [])
    add(pre + "docs/ops-notes.md",
        f"# Rotation\n\nThe staging key (do not reuse):\n\n```\n{k4}\n```\n\nAsk #ops for the new one.\n",
        [body4], ["# Rotation", "Ask #ops for the new one."])

    # Terraform
    s = [password(), rs(32)]
    add(pre + "infra/main.tf",
        f"resource \"aws_db_instance\" \"main\" {{\n  engine   = \"postgres\"\n  username = \"app\"\n"
        f"  password = \"{s[0]}\"\n}}\n\nprovider \"datadog\" {{\n  api_key = \"{s[1]}\"\n}}\n",
        s, ['engine   = "postgres"'])


# two services' worth: the same formats, different secrets and layouts of names
corpus("")
corpus("legacy/")

# Secrets typed into the question
questions = []
for form in ["my password is {s}, why does login fail?", "the db password: {s} is rejected by postgres",
             "I set DB_PASSWORD={s} and the app still says access denied", "token={s} returns 401, why?",
             "why does `export API_TOKEN={s}` not work in fish?", "the api_secret is {s}, is it too short?",
             "curl -u admin:{s} https://ci.example.com/ fails", "our passphrase is {s} (staging only)"]:
    s = password() if "token" not in form.lower() else rs(32)
    if "api_secret" in form:
        s = hexs(40)
    questions.append({"text": form.format(s=s), "secrets": [s]})

out = sys.argv[1] if len(sys.argv) > 1 else "canary"
os.makedirs(out, exist_ok=True)
for f in files:
    name = f["path"].replace("/", "__")
    with open(os.path.join(out, name), "w") as fh:
        fh.write(f["text"])
    f["file"] = name
    del f["text"]
n = sum(len(f["secrets"]) for f in files) + len(questions)
formats = len({os.path.splitext(f["path"])[1] or f["path"] for f in files})
with open(os.path.join(out, "canary.json"), "w") as fh:
    json.dump({"generator": "tests/reference/policy/gen_canary.py (seed 18)", "secrets": n, "formats": formats,
               "files": files, "questions": questions}, fh, indent=1)
print(f"{n} secrets in {len(files)} files ({formats} formats) and {len(questions)} questions", file=sys.stderr)
