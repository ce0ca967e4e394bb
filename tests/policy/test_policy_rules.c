/*
 * test_policy_rules.c — configuration and rules: every matcher, first-match
 * order, the default, refuse, offline downgrade, calibrated max_context,
 * label_paths, schema errors with file:line:column, reload keeping the last
 * good policy, project discovery, and the explain output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "policy/policy.h"

static const char CONFIG[] =
    "tiers:\n"
    "  flash: {model: smollm2-135m, context: 2048}\n"
    "  pro: {model: qwen2.5-7b.gguf, context: 16384}\n"
    "  hosted-large:\n"
    "    base_url: http://127.0.0.1:9/v1\n"
    "    model: gpt-test\n"
    "    api_key_env: KVASIR_TEST_KEY\n";

static const char POLICY[] =
    "default: flash\n"
    "rules:\n"
    "  - name: infra-stays-local\n"
    "    paths: [\"infra/**\", \"*.tfstate\"]\n"
    "    tier: flash\n"
    "  - name: deep-planning\n"
    "    depth: think-max\n"
    "    tier: hosted-large      # a tier declared in config.yaml\n"
    "  - name: no-secrets-out\n"
    "    labels: [confidential]\n"
    "    tier: refuse\n"
    "  - name: triage-pro\n"
    "    kind: triage\n"
    "    tier: pro\n"
    "  - name: rust-pro\n"
    "    languages: [rust]\n"
    "    tier: pro\n"
    "  - name: big-context\n"
    "    kind: [ask, complete]\n"
    "    max_context: local\n"
    "    tier: pro\n"
    "  - name: unsure\n"
    "    confidence_below: -2.0\n"
    "    tier: hosted-large\n"
    "never_send: [\"secrets/**\"]\n"
    "label_paths:\n"
    "  confidential: [\"hr/**\"]\n"
    "offline: false\n";

static char tmpdir[256];

static pol_policy *load(const char *cfg, const char *pol) {
  pol_policy *p = NULL;
  kv_err err;
  int rc = pol_policy_from_buffers(&p, cfg, cfg ? strlen(cfg) : 0, "config.yaml", pol, pol ? strlen(pol) : 0,
                                   "policy.yaml", "/proj", &err);
  if (rc) fprintf(stderr, "load: %s\n", err.msg);
  assert_int_equal(rc, 0);
  return p;
}

static void decide(const pol_policy *p, const pol_request *r, pol_decision *d) {
  kv_err err;
  assert_int_equal(pol_decide(p, r, d, &err), 0);
}

static void matchers(void **state) {
  (void)state;
  pol_policy *p = load(CONFIG, POLICY);
  pol_decision d;
  pol_file infra = {"infra/main.tf", "x", 1, NULL}, tf = {"envs/prod/terraform.tfstate", "{}", 2, NULL};
  pol_file rs = {"src/lib.rs", "fn main(){}", 11, NULL}, c = {"src/main.c", "int x;", 6, NULL};
  pol_file hr = {"hr/salaries.csv", "a,b", 3, NULL};

  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_FAST, .files = &c, .n_files = 1};
  decide(p, &r, &d); /* nothing matches */
  assert_string_equal(d.rule, "default");
  assert_string_equal(d.tier, "flash");
  assert_int_equal(d.tier_kind, POL_TIER_LOCAL);
  assert_string_equal(d.model, "smollm2-135m");

  r.files = &infra; /* paths */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "infra-stays-local");
  r.files = &tf;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "infra-stays-local");

  r.files = &c, r.depth = POL_DEPTH_THINK_MAX; /* depth */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "deep-planning");
  assert_string_equal(d.tier, "hosted-large");
  assert_int_equal(d.tier_kind, POL_TIER_HOSTED);

  r.files = &infra; /* first match wins: infra before deep-planning */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "infra-stays-local");

  const char *conf[] = {"confidential"};
  r.files = &c, r.depth = POL_DEPTH_THINK, r.labels = conf, r.n_labels = 1; /* labels → refuse */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "no-secrets-out");
  assert_int_equal(d.tier_kind, POL_TIER_REFUSE);
  assert_string_equal(d.tier, "refuse");
  r.labels = NULL, r.n_labels = 0, r.files = &hr; /* label from label_paths */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "no-secrets-out");

  r.files = &c, r.kind = POL_KIND_TRIAGE; /* kind */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "triage-pro");
  assert_string_equal(d.tier, "pro");

  r.kind = POL_KIND_COMPLETE, r.files = &rs; /* languages (from the extension) */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "rust-pro");
  pol_file tagged = {"BUILD", "x", 1, "rust"}; /* explicit language */
  r.files = &tagged;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "rust-pro");

  r.files = &c, r.context_tokens = 2049; /* max_context: local (flash handles 2048) */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "big-context");
  r.context_tokens = 2048;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "default");
  r.kind = POL_KIND_ASK, r.context_tokens = 0; /* estimate from bytes: 9000 bytes ~ 2250 tokens */
  char *big = malloc(9000);
  memset(big, 'x', 9000);
  pol_file bigf = {"src/big.c", big, 9000, NULL};
  r.files = &bigf;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "big-context");
  assert_int_equal(d.context_tokens, 2250);
  free(big);

  r.files = &c; /* confidence: only with a draft */
  decide(p, &r, &d);
  assert_string_equal(d.rule, "default");
  int saw = 0;
  for (size_t i = 0; i < d.n_reasons; i++) saw |= strstr(d.reasons[i], "no local draft") != NULL;
  assert_true(saw);
  r.has_draft = 1, r.draft_logprob = -2.5;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "unsure");
  r.draft_logprob = -1.2;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "default");
  pol_policy_free(p);
}

static void default_and_offline(void **state) {
  (void)state;
  pol_policy *p = load(CONFIG, "default: hosted-large\noffline: true\n");
  pol_request r = {.kind = POL_KIND_ASK};
  pol_decision d;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "default");
  assert_string_equal(d.tier, "flash");
  assert_int_equal(d.offline_downgraded, 1);
  pol_policy_free(p);
  p = load(CONFIG, "default: refuse\n");
  decide(p, &r, &d);
  assert_int_equal(d.tier_kind, POL_TIER_REFUSE);
  pol_policy_free(p);
  p = load(NULL, NULL); /* no files at all: built-in flash */
  decide(p, &r, &d);
  assert_string_equal(d.tier, "flash");
  pol_policy_free(p);
}

static void calibrated(void **state) {
  (void)state;
  kv_err err;
  const char *proj = "/proj";
  assert_int_equal(pol_calibration_record("smollm2-135m", proj, 1024, 0.95, &err), 0);
  assert_int_equal(pol_calibration_record("smollm2-135m", proj, 2048, 0.90, &err), 0);
  assert_int_equal(pol_calibration_record("smollm2-135m", proj, 4096, 0.60, &err), 0);
  assert_int_equal(pol_calibration_record("smollm2-135m", proj, 8192, 0.85, &err), 0); /* past the first failure */
  assert_int_equal(pol_calibration_record("smollm2-135m", "/other", 8192, 0.99, &err), 0);
  uint64_t lim;
  assert_int_equal(pol_calibration_limit("smollm2-135m", proj, 0.8, &lim, &err), 0);
  assert_int_equal(lim, 2048);
  assert_int_equal(pol_calibration_limit("smollm2-135m", proj, 0.5, &lim, &err), 0);
  assert_int_equal(lim, 8192);
  assert_int_equal(pol_calibration_limit("smollm2-135m", proj, 0.99, &lim, &err), KV_ENOTFOUND);
  assert_int_equal(pol_calibration_record("smollm2-135m", proj, 4096, 0.88, &err), 0); /* re-measured */
  assert_int_equal(pol_calibration_limit("smollm2-135m", proj, 0.8, &lim, &err), 0);
  assert_int_equal(lim, 8192);
  assert_int_equal(pol_calibration_record("smollm2-135m", proj, 4096, 0.60, &err), 0);

  pol_policy *p = load(CONFIG, "rules:\n  - name: long\n    max_context: calibrated\n    min_accuracy: 0.8\n    tier: pro\n");
  pol_request r = {.kind = POL_KIND_ASK, .context_tokens = 2100};
  pol_decision d;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "long");
  assert_non_null(strstr(d.reasons[0], "calibrated"));
  r.context_tokens = 2000;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "default");
  pol_policy_free(p);
}

/* Error text must name file:line:column and the field. */
static void expect_error(const char *cfg, const char *pol, const char *want) {
  pol_policy *p = NULL;
  kv_err err;
  kv_err_clear(&err);
  int rc = pol_policy_from_buffers(&p, cfg, cfg ? strlen(cfg) : 0, "config.yaml", pol, pol ? strlen(pol) : 0,
                                   "policy.yaml", NULL, &err);
  if (rc == 0 || !strstr(err.msg, want)) fprintf(stderr, "want '%s', got rc=%d '%s'\n", want, rc, err.msg);
  assert_int_equal(rc, KV_EFORMAT);
  assert_null(p);
  assert_non_null(strstr(err.msg, want));
}

static void errors(void **state) {
  (void)state;
  expect_error(CONFIG, "default: flash\nrules:\n  - name: a\n    tier: hosted-xl\n",
               "policy.yaml:4:11: rules[0].tier: unknown tier 'hosted-xl'");
  expect_error(CONFIG, "default: nowhere\n", "policy.yaml:1:10: default: unknown tier 'nowhere'");
  expect_error(CONFIG, "rules:\n  - name: a\n    tier: flash\n   bad: [\n", "policy.yaml:4:");
  expect_error(CONFIG, "rules: [\n", "policy.yaml:2:1");
  expect_error(CONFIG, "rules:\n  - name: a\n    tier: flash\n    pathz: [x]\n", "policy.yaml:4:5: rules[0]: unknown key 'pathz'");
  expect_error(CONFIG, "rules:\n  - name: a\n    depth: deep\n    tier: flash\n", "policy.yaml:3:12: rules[0].depth: unknown value 'deep'");
  expect_error(CONFIG, "rules:\n  - tier: flash\n", "policy.yaml:2:5: rules[0]: a rule needs a name");
  expect_error(CONFIG, "offline: maybe\n", "policy.yaml:1:10: offline: expected true or false");
  expect_error(CONFIG, "budget: {requests_per_day: -3}\n", "policy.yaml:1:28: budget.requests_per_day");
  expect_error(CONFIG, "rules:\n  - name: a\n    max_context: lots\n    tier: pro\n", "policy.yaml:3:18: rules[0].max_context");
  expect_error(CONFIG, "a: &x [1]\nb: *x\n", "policy.yaml:2:4: aliases are not allowed");
  expect_error("tiers:\n  h:\n    base_url: https://x/v1\n    model: m\n    api_key: sk-123\n", NULL,
               "config.yaml:5:5: tiers.h.api_key: keys are never stored in config");
  expect_error("tiers:\n  h:\n    base_url: https://x/v1\n    model: m\n", NULL, "config.yaml:2:3: tiers.h: a hosted tier needs api_key_env");
  expect_error("tiers:\n  flash: {base_url: https://x/v1, model: m, api_key_env: K}\n", NULL,
               "config.yaml:2:3: tiers.flash: 'flash' is a local tier");
  expect_error("tiers:\n  flash: {context: ten}\n", NULL, "config.yaml:2:20: tiers.flash.context");
  expect_error("tiers: [1, 2]\n", NULL, "config.yaml:1:8: tiers: expected a mapping");
  expect_error("tiers:\n  h:\n    model: a\n    model: b\n", NULL, "config.yaml:4:5: duplicate key 'model' (first at line 3)");
  expect_error(CONFIG, "default: flash\noffline: true\ndefault: hosted-large\n", "policy.yaml:3:1: duplicate key 'default'");
}

/* config.yaml's local tiers name models (pol_tier_local) and model_memory
 * caps them; a bad size names file:line:col, an unknown top-level key
 * lists model_memory among the known ones. */
static void tier_models_and_memory(void **state) {
  (void)state;
  pol_policy *p = NULL;
  kv_err err;
  const char *cfg = "tiers:\n  pro:\n    model: tiny-pro\n    context: 4096\nmodel_memory: 60%\n";
  assert_int_equal(pol_policy_from_buffers(&p, cfg, strlen(cfg), "config.yaml", NULL, 0, NULL, NULL, &err), 0);
  pol_local_tier lt;
  assert_int_equal(pol_tier_local(p, "pro", &lt), 0);
  assert_string_equal(lt.model, "tiny-pro");
  assert_int_equal(lt.context, 4096);
  assert_int_equal(lt.line, 2);
  assert_int_equal(lt.col, 3);
  assert_int_equal(pol_tier_local(p, "flash", &lt), 0); /* built in: the daemon's default model */
  assert_null(lt.model);
  assert_int_equal(pol_tier_local(p, "nope", &lt), KV_ENOTFOUND);
  uint64_t bytes;
  double frac;
  pol_policy_model_memory(p, &bytes, &frac);
  assert_int_equal(bytes, 0);
  assert_true(frac > 0.599 && frac < 0.601);
  pol_policy_free(p);
  assert_int_equal(pol_parse_size("8GiB", &bytes, &frac), 0);
  assert_int_equal(bytes, 8ull << 30);
  assert_int_equal(pol_parse_size("512MiB", &bytes, &frac), 0);
  assert_int_equal(bytes, 512ull << 20);
  assert_int_equal(pol_parse_size("1234", &bytes, &frac), 0);
  assert_int_equal(bytes, 1234);
  assert_int_equal(pol_parse_size("2GB", &bytes, &frac), 0);
  assert_int_equal(bytes, 2000000000ull);
  assert_int_equal(pol_parse_size("150%", &bytes, &frac), KV_EINVAL);
  assert_int_equal(pol_parse_size("-1GiB", &bytes, &frac), KV_EINVAL);
  assert_int_equal(pol_parse_size("lots", &bytes, &frac), KV_EINVAL);
  assert_int_equal(pol_parse_size("0", &bytes, &frac), KV_EINVAL);
  expect_error("model_memory: lots\n", NULL, "config.yaml:1:15: model_memory: expected a size such as 75%, 8GiB");
  expect_error("model_memory: [1]\n", NULL, "config.yaml:1:15: model_memory");
  expect_error("modle_memory: 1GiB\n", NULL, "config.yaml:1:1: (top level): unknown key 'modle_memory' (tiers, budget, model_memory)");
  expect_error("tiers:\n  pro: {model: x, contxt: 5}\n", NULL, "config.yaml:2:19: tiers.pro: unknown key 'contxt'");
}

static int loads(const char *cfg) {
  pol_policy *p = NULL;
  kv_err err;
  int rc = pol_policy_from_buffers(&p, cfg, strlen(cfg), "config.yaml", NULL, 0, NULL, NULL, &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  pol_policy_free(p);
  return rc == 0;
}

/* http:// is refused off loopback unless the tier says allow_plaintext: true;
 * the error names config.yaml:line:column and tiers.<name>.base_url. */
static void plaintext_only_on_loopback(void **state) {
  (void)state;
  static const char *const ok[] = {"http://127.0.0.1:8080/v1", "http://127.3.4.5/v1", "http://localhost:11434/v1",
                                   "HTTP://LOCALHOST/v1", "http://[::1]:8000/v1", "http://u:p@127.0.0.1/v1",
                                   "https://api.example.com/v1", "http://localhost"};
  static const char *const bad[] = {"http://api.example.com/v1", "http://10.0.0.5:8000/v1", "http://128.0.0.1/v1",
                                    "http://127.0.0.1.evil.example/v1", "http://localhost.evil.example/v1",
                                    "http://[::2]/v1", "http://127.0.0.1@evil.example/v1", "http://[::ffff:8.8.8.8]/v1",
                                    "http:///v1", "http://localhostx/v1"};
  char cfg[512], want[256];
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    snprintf(cfg, sizeof cfg, "tiers:\n  h:\n    base_url: \"%s\"\n    model: m\n    api_key_env: K\n", ok[i]);
    if (!loads(cfg)) fprintf(stderr, "should load: %s\n", ok[i]);
    assert_true(loads(cfg));
  }
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    snprintf(cfg, sizeof cfg, "tiers:\n  h:\n    base_url: \"%s\"\n    model: m\n    api_key_env: K\n", bad[i]);
    snprintf(want, sizeof want, "config.yaml:3:15: tiers.h.base_url: http:// off loopback");
    expect_error(cfg, NULL, want);
    /* the same URL with the explicit opt-in loads */
    snprintf(cfg, sizeof cfg,
             "tiers:\n  h:\n    base_url: \"%s\"\n    model: m\n    api_key_env: K\n    allow_plaintext: true\n", bad[i]);
    assert_true(loads(cfg));
  }
  expect_error("tiers:\n  h: {base_url: ftp://x/v1, model: m, api_key_env: K}\n", NULL,
               "config.yaml:2:17: tiers.h.base_url: must start with https://");
  expect_error("tiers:\n  h: {base_url: http://x/v1, model: m, api_key_env: K, allow_plaintext: maybe}\n", NULL,
               "tiers.h.allow_plaintext: expected true or false");
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void reload_keeps_last_good(void **state) {
  (void)state;
  char proj[512], dir[600], file[700], sub[700], found[1024];
  snprintf(proj, sizeof proj, "%s/proj", tmpdir);
  snprintf(dir, sizeof dir, "%s/.kvasir", proj);
  snprintf(file, sizeof file, "%s/policy.yaml", dir);
  snprintf(sub, sizeof sub, "%s/src/deep", proj);
  kv_err err;
  assert_int_equal(kv_mkdirs(dir, 0700, &err), 0);
  assert_int_equal(kv_mkdirs(sub, 0700, &err), 0);
  write_file(file, "rules:\n  - name: everything-pro\n    tier: pro\n");
  assert_int_equal(pol_find_project(sub, found, sizeof found, &err), 0);
  assert_string_equal(found, proj);
  assert_int_equal(pol_find_project("/", found, sizeof found, &err), KV_ENOTFOUND);
  pol_policy *p;
  assert_int_equal(pol_policy_open(&p, found, &err), 0);
  pol_request r = {.kind = POL_KIND_ASK};
  pol_decision d;
  decide(p, &r, &d);
  assert_string_equal(d.rule, "everything-pro");
  write_file(file, "rules:\n  - name: broken\n    tier: [\n");
  assert_int_equal(pol_policy_reload(p, &err), KV_EFORMAT);
  assert_non_null(strstr(err.msg, "policy.yaml:"));
  decide(p, &r, &d);
  assert_string_equal(d.rule, "everything-pro"); /* last good policy in force */
  write_file(file, "rules:\n  - name: now-refuse\n    tier: refuse\n");
  assert_int_equal(pol_policy_reload(p, &err), 0);
  decide(p, &r, &d);
  assert_string_equal(d.rule, "now-refuse");
  pol_policy_free(p);
}

static void explain_names_rule_and_inputs(void **state) {
  (void)state;
  setenv("KVASIR_TEST_KEY", "sk-test-planted-key-0123456789abcdef", 1);
  pol_policy *p = load(CONFIG, POLICY);
  pol_file f[] = {{"src/plan.md", "Plan the migration. AWS key AKIAABCDEFGHIJKLMNOP", 48, NULL},
                  {"secrets/canary.txt", "CANARY-31337", 12, NULL}};
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "how do we migrate?", .files = f, .n_files = 2};
  char *out;
  kv_err err;
  assert_int_equal(pol_explain(p, &r, 0, &out, &err), 0);
  assert_non_null(strstr(out, "fired:    deep-planning"));
  assert_non_null(strstr(out, "depth=think-max"));
  assert_non_null(strstr(out, "rule 'infra-stays-local' (line 3) skipped: no context file matches paths"));
  assert_non_null(strstr(out, "file secrets/canary.txt (unknown, 12 bytes) [never_send]"));
  assert_non_null(strstr(out, "stripped (never_send): secrets/canary.txt"));
  assert_non_null(strstr(out, "aws=1"));
  assert_null(strstr(out, "CANARY-31337"));
  assert_null(strstr(out, "AKIAABCDEFGHIJKLMNOP"));
  free(out);
  assert_int_equal(pol_explain(p, &r, 1, &out, &err), 0);
  assert_non_null(strstr(out, "\"rule\":\t\"deep-planning\""));
  assert_non_null(strstr(out, "\"depth\":\t\"think-max\""));
  assert_null(strstr(out, "CANARY-31337"));
  free(out);
  r.depth = POL_DEPTH_FAST;
  assert_int_equal(pol_explain(p, &r, 0, &out, &err), 0);
  assert_non_null(strstr(out, "fired:    default"));
  assert_non_null(strstr(out, "nothing leaves the machine"));
  free(out);
  pol_policy_free(p);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/kvasir-test-policy-XXXXXX");
  if (!mkdtemp(tmpdir)) return -1;
  char data[300];
  snprintf(data, sizeof data, "%s/data", tmpdir);
  setenv("XDG_DATA_HOME", data, 1);
  setenv("XDG_CONFIG_HOME", tmpdir, 1); /* no kvasir/config.yaml there */
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(matchers),   cmocka_unit_test(default_and_offline),    cmocka_unit_test(calibrated),
      cmocka_unit_test(errors),     cmocka_unit_test(tier_models_and_memory),     cmocka_unit_test(plaintext_only_on_loopback),     cmocka_unit_test(reload_keeps_last_good), cmocka_unit_test(explain_names_rule_and_inputs),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
