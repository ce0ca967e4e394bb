#!/usr/bin/env python3
"""make_queries.py — turn doc comments of a real codebase into retrieval queries.

usage: make_queries.py TREE python|js OUT.tsv [MAX] [SEED]

Every doc comment in TREE is removed in place (its lines become blank, so line
numbers do not move; a Python body left empty gets `pass`), and for a
deterministic sample (SEED, default 42) of at most MAX (default 300) documented
functions it writes `query <TAB> path <TAB> line <TAB> name`: the comment's
description (first paragraph, markup and @tags dropped), where the function is
defined and its name (a hit elsewhere that defines the same name also counts:
lodash defines each function twice, in lodash.js and in its own module).
Python docstrings are found with the `ast` module; JavaScript JSDoc blocks
(/** ... */) directly above `function name(` / `name = function` /
`name: function` with a regular expression.
"""
import ast
import os
import random
import re
import sys


def clean(text):
    text = re.sub(r"[`*_]{1,2}|:[a-z]+:|\{@link ([^}]*)\}", r"\1", text)
    return " ".join(text.split())


def first_paragraph(lines):
    out = []
    for ln in lines:
        s = ln.strip()
        if not s:
            if out:
                break
            continue
        if s.startswith("@") or s.startswith(":param") or s.startswith(">>>"):
            break
        out.append(s)
    return clean(" ".join(out))


def do_python(tree, found):
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d != ".git"]
        for fn in files:
            if not fn.endswith(".py"):
                continue
            path = os.path.join(root, fn)
            try:
                src = open(path, encoding="utf-8").read()
                mod = ast.parse(src)
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            lines = src.split("\n")
            edits = []
            for node in ast.walk(mod):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
                    continue
                body = node.body
                if not body or not isinstance(body[0], ast.Expr) or not isinstance(getattr(body[0], "value", None), ast.Constant) \
                        or not isinstance(body[0].value.value, str):
                    continue
                ds = body[0]
                edits.append((ds.lineno, ds.end_lineno, len(body) == 1, ds.col_offset))
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    q = first_paragraph(body[0].value.value.split("\n"))
                    if len(q.split()) >= 3:
                        found.append((q, os.path.relpath(path, tree), node.lineno, node.name))
            for a, b, only, col in edits:
                for i in range(a - 1, b):
                    lines[i] = ""
                if only:
                    lines[a - 1] = " " * col + "pass"
            open(path, "w", encoding="utf-8").write("\n".join(lines))


JSDOC = re.compile(r"/\*\*(.*?)\*/", re.S)
DEF = re.compile(r"^\s*(?:(?:export\s+)?(?:async\s+)?function\s*\*?\s*([A-Za-z_$][\w$]*)\s*\(|"
                 r"(?:var|let|const)\s+([A-Za-z_$][\w$]*)\s*=\s*(?:async\s+)?function\b|"
                 r"([A-Za-z_$][\w$]*)\s*:\s*(?:async\s+)?function\b)")


def do_js(tree, found):
    for root, dirs, files in os.walk(tree):
        dirs[:] = [d for d in dirs if d not in (".git", "node_modules")]
        for fn in files:
            if not fn.endswith(".js") or fn.endswith(".min.js"):
                continue
            path = os.path.join(root, fn)
            try:
                src = open(path, encoding="utf-8").read()
            except UnicodeDecodeError:
                continue
            out = []
            pos = 0
            for m in JSDOC.finditer(src):
                body = m.group(1)
                start_line = src.count("\n", 0, m.start()) + 1
                end_line = src.count("\n", 0, m.end()) + 1
                rest = src[m.end():].split("\n")
                nxt = None
                for k, ln in enumerate(rest[1:] if rest and not rest[0].strip() else rest):
                    if ln.strip():
                        nxt = (ln, end_line + k + (1 if rest and not rest[0].strip() else 0))
                        break
                dm = DEF.match(nxt[0]) if nxt else None
                if dm:
                    q = first_paragraph([re.sub(r"^\s*\*\s?", "", ln) for ln in body.split("\n")])
                    if len(q.split()) >= 3:
                        found.append((q, os.path.relpath(path, tree), nxt[1], next(g for g in dm.groups() if g)))
                out.append(src[pos:m.start()])
                out.append("\n" * (end_line - start_line))
                pos = m.end()
            out.append(src[pos:])
            open(path, "w", encoding="utf-8").write("".join(out))


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    tree, lang, out = sys.argv[1], sys.argv[2], sys.argv[3]
    mx = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    seed = int(sys.argv[5]) if len(sys.argv) > 5 else 42
    found = []
    (do_python if lang == "python" else do_js)(tree, found)
    found.sort(key=lambda t: (t[1], t[2]))
    random.Random(seed).shuffle(found)
    with open(out, "w", encoding="utf-8") as f:
        for q, p, ln, name in found[:mx]:
            f.write(f"{q.replace(chr(9), ' ')}\t{p}\t{ln}\t{name}\n")
    print(f"{min(mx, len(found))} of {len(found)} documented functions -> {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
