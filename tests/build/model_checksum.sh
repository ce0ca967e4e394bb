#!/usr/bin/env bash
# A model file whose sha256 differs from scripts/models.tsv is an error, not
# a silent re-use; the error says how to recover.
set -euo pipefail
src="$1"; tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
dest="$(XDG_CACHE_HOME="$tmp" "$src/scripts/fetch-model" --path smollm2)"
mkdir -p "$(dirname "$dest")"; echo "not a model" > "$dest"
if XDG_CACHE_HOME="$tmp" "$src/scripts/fetch-model" smollm2 >"$tmp/out" 2>"$tmp/err"; then
  echo "FAIL: corrupt model accepted"; exit 1
fi
grep -q "checksum mismatch" "$tmp/err" || { echo "FAIL: no checksum message"; cat "$tmp/err"; exit 1; }
XDG_CACHE_HOME="$tmp" "$src/scripts/fetch-model" nosuchmodel 2>/dev/null && { echo "FAIL: unknown model accepted"; exit 1; }
echo ok
