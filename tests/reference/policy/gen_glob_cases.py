#!/usr/bin/env python3
"""Golden values for policy/glob.c: gitignore-style matching as Python's
`pathspec` (GitWildMatch, PyPI pathspec==1.1.1) decides it.

    python3 -m venv .venv-pol && .venv-pol/bin/pip install pathspec==1.1.1
    .venv-pol/bin/python tests/reference/policy/gen_glob_cases.py > tests/reference/policy/glob_cases.json

Each case: a pattern list (last match wins, '!' negates), a path relative to
the project root, and pathspec's answer. The paths are files (never ending
in '/')."""
import itertools
import json
import pathspec

SINGLE = [
    "infra/**", "*.tfstate", "secrets/**", ".env*", "*.pem", "id_rsa*", "foo", "foo/", "/foo", "foo/bar",
    "**/foo", "**/foo/bar", "a/**/b", "a/**", "**", "*", "?", "a?c", "*.c", "src/*.c", "src/**/*.c",
    "doc/frotz/", "/doc/frotz", "[abc].txt", "[a-c]*.md", "[!a]*.py", "x[0-9]y", "logs/private/", ".ssh/",
    "**/build/", "build/**/*.o", "*/main.c", "a/*/c", "*.tar.gz", "private-logs/", "*.key", "\\#hash",
    "#comment", "", "deep/**/x/**/y", "**/*.env", "config/*.yaml", "a*b*c", "**/a/**",
]
PATHS = [
    "infra", "infra/main.tf", "infra/modules/vpc/main.tf", "x/infra/main.tf", "state.tfstate",
    "a/b/state.tfstate", "b.tfstate/c", "secrets/db.txt", "app/secrets/db.txt", ".env", ".env.local",
    "sub/.env.prod", "cert.pem", "keys/server.pem", "id_rsa", "home/.ssh/id_rsa.pub", ".ssh/config",
    "foo", "foo/x", "x/foo", "x/foo/y", "foo/bar", "x/foo/bar", "foo/bar/baz", "foobar", "a/b", "a/x/b",
    "a/x/y/b", "a/b/c", "a/c", "abc", "axc", "ac", "main.c", "src/main.c", "src/lib/util.c", "src/main.h",
    "doc/frotz/a", "x/doc/frotz/a", "a.txt", "d.txt", "bz.md", "cz.md", "a.py", "b.py", "x5y", "xay",
    "logs/private/app.log", "logs/public/app.log", "build/x.o", "build/sub/x.o", "src/build/y.o",
    "src/x/main.c", "pkg.tar.gz", "private-logs/2026.log", "server.key", "#hash", "deep/x/y",
    "deep/1/x/2/y/z", "config/app.yaml", "config/sub/app.yaml", "aXbYc", "ab", "q/a/r",
]
LISTS = [
    ["secrets/**", "!secrets/public.txt"],
    ["*.log", "!keep.log"],
    ["!*.c", "*.c"],
    ["build/", "!build/keep.o"],
    ["*.pem", "!certs/", "certs/*.pem"],
]
LIST_PATHS = ["secrets/public.txt", "secrets/db.txt", "keep.log", "x/keep.log", "a.log", "main.c",
              "build/keep.o", "build/x.o", "certs/a.pem", "a.pem", "certs/sub/a.pem"]

cases = []
for pat, path in itertools.product(SINGLE, PATHS):
    spec = pathspec.PathSpec.from_lines("gitwildmatch", [pat])
    cases.append({"patterns": [pat], "path": path, "match": bool(spec.match_file(path))})
for pats, path in itertools.product(LISTS, LIST_PATHS + PATHS[:20]):
    spec = pathspec.PathSpec.from_lines("gitwildmatch", pats)
    cases.append({"patterns": pats, "path": path, "match": bool(spec.match_file(path))})
json.dump({"generator": "pathspec " + pathspec.__version__, "cases": cases}, __import__("sys").stdout, indent=0)
