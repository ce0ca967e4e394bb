/*
 * fuzz_policy_yaml.c — the policy parser from a buffer. The first byte picks
 * the file: odd = config.yaml (tiers), even = .kvasir/policy.yaml (rules)
 * under a fixed config. A policy that parses is then exercised: decide and
 * explain on a fixed request (fuzzed globs, tiers and limits meet real
 * paths). Any crash, leak or sanitizer report is a bug; errors are fine.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

static const char CONFIG[] =
    "tiers:\n  flash: {model: m, context: 100}\n  pro: {context: 1000}\n"
    "  hosted-large: {base_url: 'http://127.0.0.1:9/v1', model: x, api_key_env: NOPE, fallback: pro}\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int is_config = data[0] & 1;
  const char *buf = (const char *)data + 1;
  size_t len = size - 1;
  pol_policy *p = NULL;
  kv_err err;
  int rc = is_config ? pol_policy_from_buffers(&p, buf, len, "config.yaml", NULL, 0, NULL, NULL, &err)
                     : pol_policy_from_buffers(&p, CONFIG, strlen(CONFIG), "config.yaml", buf, len, "policy.yaml", NULL, &err);
  if (rc != 0) return 0;
  pol_file files[] = {{"infra/main.tf", "resource {}", 11, NULL},
                      {"secrets/a.txt", "AKIAABCDEFGHIJKLMNOP", 20, NULL},
                      {"src/deep/x/y/lib.rs", "fn main() {}", 12, NULL}};
  const char *labels[] = {"confidential"};
  for (int k = 0; k < POL_KIND__COUNT; k++) {
    pol_request r = {.kind = (pol_kind)k, .depth = (pol_depth)(k % POL_DEPTH__COUNT), .question = "q",
                     .files = files, .n_files = 3, .labels = labels, .n_labels = (size_t)(k & 1),
                     .has_draft = k == 2, .draft_logprob = -1.5};
    pol_decision d;
    pol_decide(p, &r, &d, &err);
    char *out = NULL;
    if (pol_explain(p, &r, k & 1, &out, &err) == 0) free(out);
  }
  pol_policy_free(p);
  return 0;
}
