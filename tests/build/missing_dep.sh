#!/usr/bin/env bash
# Configure with a pkg-config search path that hides libsodium: the configure
# must fail and name the Debian package that provides it.
set -euo pipefail
src="$1"; tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pc"
for d in $(pkg-config --variable pc_path pkg-config | tr : ' '); do
  [[ -d "$d" ]] && for f in "$d"/*.pc; do [[ -e "$f" ]] && ln -sf "$f" "$tmp/pc/"; done
done
rm -f "$tmp/pc/libsodium.pc"
if PKG_CONFIG_LIBDIR="$tmp/pc" PKG_CONFIG_PATH= cmake -S "$src" -B "$tmp/b" >"$tmp/log" 2>&1; then
  echo "FAIL: configure succeeded without libsodium"; exit 1
fi
grep -q "libsodium-dev" "$tmp/log" || { echo "FAIL: error does not name libsodium-dev"; cat "$tmp/log"; exit 1; }
echo "ok: $(grep -m1 -o "missing dependency.*" "$tmp/log")"
