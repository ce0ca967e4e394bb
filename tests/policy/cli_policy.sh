#!/usr/bin/env bash
# cli_policy.sh KVASIR — `kvasir policy explain|check` and `kvasir audit` end
# to end in a throwaway project: explain finds .kvasir/policy.yaml from a
# subdirectory, names the rule and its inputs, shows the stripped file and
# the redaction without the secrets; a broken policy is reported with
# file:line:column and a non-zero exit; audit starts empty.
set -u
K="$1"
T=$(mktemp -d /tmp/kvasir-cli-policy-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
export XDG_CONFIG_HOME="$T/config" XDG_DATA_HOME="$T/data"
mkdir -p "$T/config/kvasir" "$T/p/.kvasir" "$T/p/src/sub" "$T/p/secrets" "$T/p/infra"
cat > "$T/config/kvasir/config.yaml" <<'Y'
tiers:
  flash: {model: small, context: 4096}
  hosted-large: {base_url: "https://api.example.com/v1", model: big, api_key_env: KVASIR_NO_SUCH_KEY}
Y
cat > "$T/p/.kvasir/policy.yaml" <<'Y'
default: flash
rules:
  - name: infra-stays-local
    paths: ["infra/**", "*.tfstate"]
    tier: flash
  - name: deep-planning
    depth: think-max
    tier: hosted-large
never_send: ["secrets/**"]
Y
echo "CANARY-5150" > "$T/p/secrets/c.txt"
printf 'token = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"\n' > "$T/p/src/app.py"
echo 'resource "x" "y" {}' > "$T/p/infra/main.tf"
cd "$T/p/src/sub" || fail cd
out=$("$K" policy explain --depth think-max --file ../app.py --file ../../secrets/c.txt "plan it") || fail "explain exit $?"
echo "$out" | grep -q "fired:    deep-planning" || fail "rule not named: $out"
echo "$out" | grep -q "depth=think-max" || fail "inputs not shown"
echo "$out" | grep -q "stripped (never_send): secrets/c.txt" || fail "stripping not shown"
echo "$out" | grep -q "github=1" || fail "redaction count not shown"
echo "$out" | grep -q "CANARY-5150" && fail "canary in explain output"
echo "$out" | grep -q "ghp_0123" && fail "token in explain output"
out=$("$K" policy explain --json --depth think-max --file ../../infra/main.tf "q") || fail "explain --json"
echo "$out" | grep -q '"rule":	"infra-stays-local"' || fail "json rule: $out"
[ "$("$K" audit --json)" = "[]" ] || fail "audit not empty"
printf 'rules:\n  - name: x\n    tier: hosted-xl\n' > "$T/p/.kvasir/policy.yaml"
err=$("$K" policy check 2>&1) && fail "broken policy accepted"
echo "$err" | grep -q "policy.yaml:3:11: rules\[0\].tier: unknown tier 'hosted-xl'" || fail "error text: $err"
"$K" policy --help >/dev/null || fail "--help"
"$K" audit --help >/dev/null || fail "audit --help"
echo "ok"
