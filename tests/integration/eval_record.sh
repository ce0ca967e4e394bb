#!/usr/bin/env bash
# `kvasir eval needle --record` feeds the policy's `max_context: calibrated`:
# before any measurement the rule falls back to the tier's context (8192) and
# does not fire for a ~1.5k-token request; after measuring 512 tokens on this
# project the limit is 512 and the same request goes to `pro`.
set -euo pipefail
kvasir="$1"; src="$2"
model="$("$src/scripts/fetch-model" --path smollm2)"
[[ -f "$model" ]] || { echo "FAIL: model missing: $model (run scripts/setup-deps)"; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/cfg" XDG_CACHE_HOME="$tmp/cache"
proj="$tmp/proj"; mkdir -p "$proj/.kvasir"
cat > "$proj/.kvasir/policy.yaml" <<'Y'
default: flash
rules:
  - name: too-long-for-flash
    max_context: calibrated
    min_accuracy: 0.5
    tier: pro
Y
cat "$src"/docs/architecture.md "$src"/docs/index.md > "$proj/haystack.md"
head -c 6000 "$src/docs/protocol.md" > "$proj/big.md"
cd "$proj"
tier() { "$kvasir" policy explain --json --file big.md "summarise this" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tier"])'; }
before="$(tier)"
[[ "$before" == "flash" ]] || { echo "FAIL: before calibration tier=$before (want flash)"; exit 1; }
out="$("$kvasir" eval needle -m "$model" --data haystack.md --ctx 512 --min-ctx 512 --depths 1 --mode full --record -t 2)"
echo "$out"
grep -q "recorded: flash @ $proj ctx 512" <<<"$out" || { echo "FAIL: nothing recorded"; exit 1; }
after="$(tier)"
[[ "$after" == "pro" ]] || { echo "FAIL: after calibration tier=$after (want pro)"; "$kvasir" policy explain --file big.md "summarise this"; exit 1; }
echo "ok: flash before, pro after calibrating 512 tokens"
