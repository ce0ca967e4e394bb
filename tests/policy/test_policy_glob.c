/*
 * test_policy_glob.c — policy/glob.c against golden answers from Python's
 * pathspec (tests/reference/policy/gen_glob_cases.py → glob_cases.json):
 * every (pattern list, path) pair must get the same match verdict.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "policy/policy.h"

static void golden_cases(void **state) {
  (void)state;
  char *buf;
  size_t len;
  kv_err err;
  assert_int_equal(kv_read_file(KVASIR_SOURCE_DIR "/tests/reference/policy/glob_cases.json", 4u << 20, &buf, &len, &err), 0);
  cJSON *root = cJSON_Parse(buf);
  free(buf);
  assert_non_null(root);
  cJSON *cases = cJSON_GetObjectItem(root, "cases"), *c;
  int n = 0, bad = 0, positives = 0;
  cJSON_ArrayForEach(c, cases) {
    cJSON *pats = cJSON_GetObjectItem(c, "patterns"), *pj;
    const char *v[16];
    size_t np = 0;
    cJSON_ArrayForEach(pj, pats) if (np < 16) v[np++] = pj->valuestring;
    const char *path = cJSON_GetObjectItem(c, "path")->valuestring;
    int want = cJSON_IsTrue(cJSON_GetObjectItem(c, "match"));
    int got = pol_globs_match(v, np, path);
    positives += want;
    if (got != want) {
      if (bad < 20) fprintf(stderr, "mismatch: patterns[0]='%s' (n=%zu) path='%s' want %d got %d\n", v[0], np, path, want, got);
      bad++;
    }
    n++;
  }
  cJSON_Delete(root);
  fprintf(stderr, "%d cases, %d positive, %d mismatches\n", n, positives, bad);
  assert_true(n > 2000);
  assert_true(positives > 100);
  assert_int_equal(bad, 0);
}

/* Cases the issue names, spelled out so a reader sees the semantics. */
static void issue_examples(void **state) {
  (void)state;
  assert_true(pol_glob_match("infra/**", "infra/modules/main.tf"));
  assert_false(pol_glob_match("infra/**", "src/infra.c"));
  assert_true(pol_glob_match("*.tfstate", "envs/prod/terraform.tfstate"));
  assert_true(pol_glob_match("secrets/**", "secrets/canary.txt"));
  assert_false(pol_glob_match("secrets/**", "src/secrets.c"));
  const char *l[] = {"secrets/**", "!secrets/README.md"};
  assert_false(pol_globs_match(l, 2, "secrets/README.md"));
  assert_true(pol_globs_match(l, 2, "secrets/key.txt"));
}

/* Many '**' segments must not take exponential time. */
static void pathological(void **state) {
  (void)state;
  char pat[512] = "", path[512] = "";
  for (int i = 0; i < 30; i++) strcat(pat, "**/a/");
  strcat(pat, "zz");
  for (int i = 0; i < 60; i++) strcat(path, "a/");
  strcat(path, "b");
  double t0 = kv_now();
  assert_false(pol_glob_match(pat, path));
  assert_true(kv_now() - t0 < 1.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(golden_cases),
      cmocka_unit_test(issue_examples),
      cmocka_unit_test(pathological),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
