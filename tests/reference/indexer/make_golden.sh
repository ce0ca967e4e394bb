#!/usr/bin/env bash
# make_golden.sh — expected definitions for tests/indexer/data/sample.*,
# produced by implementations independent of ours: universal-ctags (Debian
# package universal-ctags; 5.9.0 when these were made) for every language
# and Python's own `ast` module for Python. Output: tests/indexer/data/golden.tsv
#   lang <TAB> file <TAB> name <TAB> line
# The test requires, for every row, a definition of ours with that name whose
# line range contains `line` (ctags reports the line of the name; we report
# the whole definition), and for Python the exact set of (name, first line)
# of functions and classes. JavaScript/TypeScript constructors are dropped:
# the upstream tags queries skip them on purpose (#not-eq? @name "constructor").
#
# usage: tests/reference/indexer/make_golden.sh   (from anywhere)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
data="$here/../../indexer/data"
out="$data/golden.tsv"
cd "$data"
{
  # lang  file  ctags-language  kinds
  while read -r lang file clang kinds; do
    ctags -x --sort=no --languages="$clang" --kinds-"$clang"="$kinds" "$file" |
      awk -v l="$lang" -v f="$file" '{ print l "\t" f "\t" $1 "\t" $3 }'
  done <<'LIST'
c sample.c C fs
cpp sample.cpp C++ fcn
javascript sample.js JavaScript fc
typescript sample.ts TypeScript fcim
go sample.go Go fts
rust sample.rs Rust sfgin
java Sample.java Java cim
bash sample.sh Sh f
ruby sample.rb Ruby cfmS
LIST
  python3 - <<'PY'
import ast
src = open("sample.py").read()
for node in ast.walk(ast.parse(src)):
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        print(f"python\tsample.py\t{node.name}\t{node.lineno}")
PY
} | awk -F'\t' '!($1 ~ /^(javascript|typescript)$/ && $3 == "constructor")' | sort -t$'\t' -k1,1 -k4,4n -k3,3 > "$out"
echo "wrote $(wc -l < "$out") rows to $out" >&2
