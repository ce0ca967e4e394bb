#!/usr/bin/env bash
# cli_models.sh KVASIR TINY_WRITE — `kvasir models list|add|remove` end to
# end on tiny GGUFs (tiny_write): add prints the sha256 that sha256sum
# computes, list --json shows the entry, a taken name and an unsupported
# architecture fail (exit 1) naming the cause, remove empties the registry,
# usage errors exit 2.
set -u
K="$1"
W="$2"
T=$(mktemp -d /tmp/kvasir-cli-models-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export XDG_DATA_HOME="$T/data"
"$W" "$T" >/dev/null || fail "tiny_write"
M="$T/tiny-llama.gguf"
[ -f "$M" ] || fail "no $M"
out=$("$K" models list) || fail "list on an empty registry"
echo "$out" | grep -q "no models registered" || fail "empty list says: $out"
out=$("$K" models add "$M") || fail "add: $out"
sum=$(sha256sum "$M" | cut -d' ' -f1)
echo "$out" | grep -q "registered tiny-llama (llama" || fail "add says: $out"
echo "$out" | grep -q "$sum" || fail "add's sha256 is not sha256sum's $sum: $out"
"$K" models add "$T/tiny-qwen2.gguf" --name pro-model --json | grep -q '"arch":.*"qwen2"' || fail "add --json"
js=$("$K" models list --json) || fail "list --json"
echo "$js" | grep -q "\"sha256\":.*\"$sum\"" || fail "list --json lacks the sha256: $js"
echo "$js" | grep -q '"name":.*"pro-model"' || fail "list --json lacks pro-model: $js"
grep -q "^kvasir-models	1$" "$T/data/kvasir/models.tsv" || fail "registry header"
err=$("$K" models add "$M" 2>&1) && fail "a taken name was accepted"
echo "$err" | grep -q "already registered" || fail "taken name says: $err"
python3 - "$M" "$T/mamba.gguf" <<'P' || fail "patching the architecture"
import sys
b = open(sys.argv[1], "rb").read()
i = b.index(b"llama")  # general.architecture's value, the first string "llama" in the file
open(sys.argv[2], "wb").write(b[:i] + b"mamba" + b[i + 5:])
P
err=$("$K" models add "$T/mamba.gguf" 2>&1) && fail "an unsupported architecture was accepted"
echo "$err" | grep -q "architecture 'mamba' is not supported (supported: llama, qwen2, qwen3, gemma3, bert)" || fail "says: $err"
"$K" models remove tiny-llama >/dev/null || fail "remove"
"$K" models remove tiny-llama 2>/dev/null && fail "removed twice"
"$K" models list | grep -q "pro-model" || fail "remove took the other entry"
"$K" models list | grep -q "tiny-llama" && fail "remove left the entry"
"$K" models add 2>/dev/null; [ $? -eq 2 ] || fail "add without a path is a usage error"
"$K" models frob 2>/dev/null; [ $? -eq 2 ] || fail "unknown subcommand is a usage error"
"$K" models --help | grep -q "kvasir models add PATH" || fail "--help"
echo "cli_models: ok"
