/*
 * test_policy_redact.c — redaction against golden cases
 * (tests/reference/policy/gen_redact_cases.py → redact_cases.json): every
 * planted secret (each confirmed by detect-secrets when written) is removed
 * and counted under its kind, ordinary code survives byte for byte, and the
 * entropy measure matches Python's. Also never_send stripping in
 * pol_payload_prepare and a bounded run on hostile input.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "policy/internal.h"

static cJSON *load(void) {
  char *buf;
  size_t len;
  kv_err err;
  assert_int_equal(kv_read_file(KVASIR_SOURCE_DIR "/tests/reference/policy/redact_cases.json", 4u << 20, &buf, &len, &err), 0);
  cJSON *root = cJSON_Parse(buf);
  free(buf);
  assert_non_null(root);
  return root;
}

static int kind_index(const char *name) {
  for (int k = 0; k < POL_RED__COUNT; k++)
    if (!strcmp(pol_redaction_name(k), name)) return k;
  return -1;
}

static void golden_lines(void **state) {
  (void)state;
  cJSON *root = load(), *l;
  int n = 0, bad = 0, pos = 0;
  cJSON_ArrayForEach(l, cJSON_GetObjectItem(root, "lines")) {
    const char *text = cJSON_GetObjectItem(l, "text")->valuestring;
    const char *kind = cJSON_GetObjectItem(l, "kind")->valuestring;
    const char *secret = cJSON_GetObjectItem(l, "secret")->valuestring;
    pol_redactions c = {{0}, 0};
    char *out;
    size_t olen;
    kv_err err;
    assert_int_equal(pol_redact(text, strlen(text), &out, &olen, &c, &err), 0);
    assert_int_equal(strlen(out), olen);
    int ok;
    if (!strcmp(kind, "none")) {
      ok = c.total == 0 && !strcmp(out, text);
    } else {
      int k = kind_index(kind);
      assert_true(k >= 0);
      ok = c.total == 1 && c.counts[k] == 1 && !strstr(out, secret);
      pos++;
    }
    if (!ok) {
      fprintf(stderr, "case %d (%s): total=%u\n  in:  %s\n  out: %s\n", n, kind, c.total, text, out);
      bad++;
    }
    free(out);
    n++;
  }
  cJSON_Delete(root);
  fprintf(stderr, "%d lines (%d with a secret), %d wrong\n", n, pos, bad);
  assert_true(pos >= 100);
  assert_int_equal(bad, 0);
}

static void golden_entropy(void **state) {
  (void)state;
  cJSON *root = load(), *e;
  int n = 0;
  cJSON_ArrayForEach(e, cJSON_GetObjectItem(root, "entropy")) {
    const char *s = cJSON_GetObjectItem(e, "s")->valuestring;
    double want = cJSON_GetObjectItem(e, "bits")->valuedouble;
    double got = strlen(s) ? pol_entropy(s, strlen(s)) : 0.0;
    assert_true(fabs(got - want) < 1e-9);
    n++;
  }
  assert_true(n >= 10);
  cJSON_Delete(root);
}

/* Recall of the high-entropy detector on random tokens that detect-secrets
 * also flags (its own rate on this sample is 100% by construction). */
static void entropy_recall(void **state) {
  (void)state;
  cJSON *root = load(), *t;
  int n = 0, hit = 0;
  cJSON_ArrayForEach(t, cJSON_GetObjectItem(root, "random_tokens")) {
    char line[512];
    snprintf(line, sizeof line, "secret = \"%s\"", t->valuestring);
    pol_redactions c = {{0}, 0};
    char *out;
    kv_err err;
    assert_int_equal(pol_redact(line, strlen(line), &out, NULL, &c, &err), 0);
    hit += c.counts[POL_RED_ENTROPY] == 1 && !strstr(out, t->valuestring);
    free(out);
    n++;
  }
  cJSON_Delete(root);
  fprintf(stderr, "high-entropy recall: %d of %d (%.1f%%)\n", hit, n, 100.0 * hit / n);
  assert_true(n >= 400);
  assert_true(hit * 100 >= n * 90);
}

/* False positives on real code: this repository's own base/ and policy/
 * sources must pass through untouched. */
static void no_false_positives_on_code(void **state) {
  (void)state;
  static const char *const files[] = {"base/base.c", "base/base.h", "policy/config.c", "policy/rules.c", "policy/glob.c",
                                      "policy/audit.c", "policy/remote.c", "policy/explain.c", "policy/policy.h",
                                      "policy/yaml.c", "cli/cmd_policy.c", "CMakeLists.txt", "docs/architecture.md"};
  for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
    char path[1024], *buf, *out;
    size_t len, olen;
    kv_err err;
    snprintf(path, sizeof path, "%s/%s", KVASIR_SOURCE_DIR, files[i]);
    assert_int_equal(kv_read_file(path, 4u << 20, &buf, &len, &err), 0);
    pol_redactions c = {{0}, 0};
    assert_int_equal(pol_redact_file(files[i], buf, len, &out, &olen, &c, &err), 0);
    if (c.total) fprintf(stderr, "%s: %u redactions\n%s\n", files[i], c.total, out);
    assert_int_equal(c.total, 0);
    assert_int_equal(olen, len);
    assert_memory_equal(out, buf, len);
    free(buf), free(out);
  }
}

static void counts_accumulate(void **state) {
  (void)state;
  const char *t = "a=AKIAABCDEFGHIJKLMNOP b=AKIAQRSTUVWXYZ234567 c=https://u:pw@h/x d=ghp_0123456789abcdefghijklmnopqrstuvwxyz";
  pol_redactions c = {{0}, 0};
  char *out;
  kv_err err;
  assert_int_equal(pol_redact(t, strlen(t), &out, NULL, &c, &err), 0);
  assert_int_equal(c.counts[POL_RED_AWS], 2);
  assert_int_equal(c.counts[POL_RED_URL_PASSWORD], 1);
  assert_int_equal(c.counts[POL_RED_GITHUB], 1);
  assert_int_equal(c.total, 4);
  assert_string_equal(out, "a=[REDACTED:aws] b=[REDACTED:aws] c=https://u:[REDACTED:url_password]@h/x d=[REDACTED:github]");
  free(out);
  const char *pgp = "a\n-----BEGIN PGP PRIVATE KEY BLOCK-----\nlQOYBF\n-----END PGP PRIVATE KEY BLOCK-----\nb";
  assert_int_equal(pol_redact(pgp, strlen(pgp), &out, NULL, NULL, &err), 0);
  assert_string_equal(out, "a\n[REDACTED:private_key]\n\n\nb"); /* the block's lines stay, emptied */
  free(out);
  /* An unterminated key block is redacted to the end, not leaked. */
  const char *k = "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow...\nno end";
  assert_int_equal(pol_redact(k, strlen(k), &out, NULL, NULL, &err), 0);
  assert_string_equal(out, "x\n[REDACTED:private_key]\n\n");
  free(out);
}

static void hostile_input(void **state) {
  (void)state;
  size_t n = 4u << 20;
  char *big = malloc(n);
  assert_non_null(big);
  for (size_t i = 0; i < n; i++) big[i] = "-----BEGIN ://ab:@eyJ.sk-AKIA"[i % 29];
  char *out;
  kv_err err;
  clock_t t0 = clock(); /* CPU time: the machine may be shared, the bound is on the work */
  assert_int_equal(pol_redact(big, n, &out, NULL, NULL, &err), 0);
  double cpu = (double)(clock() - t0) / CLOCKS_PER_SEC;
  fprintf(stderr, "hostile 4 MiB: %.2f s CPU\n", cpu);
  assert_true(cpu < 20.0);
  free(out);
  free(big);
}

static void never_send_stripped(void **state) {
  (void)state;
  const char *py = "never_send: [\"secrets/**\"]\n";
  pol_policy *p;
  kv_err err;
  assert_int_equal(pol_policy_from_buffers(&p, NULL, 0, NULL, py, strlen(py), "policy.yaml", NULL, &err), 0);
  pol_file f[] = {{"secrets/canary.txt", "CANARY-7731", 11, NULL},
                  {".env.local", "DB_PASS=CANARY-8842", 19, NULL},
                  {"deploy/id_rsa", "CANARY-9953", 11, NULL},
                  {"src/main.c", "int main(void) { return 0; }", 28, NULL}};
  pol_request req = {.kind = POL_KIND_ASK, .question = "why?", .files = f, .n_files = 4};
  pol_payload *pl;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 64, &pl, &err), 0);
  assert_int_equal(pl->n_stripped, 3);
  assert_null(strstr(pl->body, "CANARY"));
  assert_non_null(strstr(pl->body, "int main(void)"));
  assert_non_null(strstr(pl->body, "\"stream\":true"));
  pol_payload_free(pl);
  pol_policy_free(p);
}

/* The findings of issue 18, each as it was reported, plus the look-alikes
 * that must stay. */
static void expect_file(const char *path, const char *in, const char *want) {
  char *out;
  kv_err err;
  assert_int_equal(pol_redact_file(path, in, strlen(in), &out, NULL, NULL, &err), 0);
  if (strcmp(out, want)) fprintf(stderr, "%s:\n  in:   %s\n  out:  %s\n  want: %s\n", path, in, out, want);
  assert_string_equal(out, want);
  free(out);
}

static void issue_findings(void **state) {
  (void)state;
  expect_file("settings.py", "DB_PASSWORD = \"Sup3rS3cretPassw0rd!\"\n", "DB_PASSWORD = \"[REDACTED:secret_value]\"\n");
  expect_file("config.yaml", "password: correcthorsebatterystaple\n", "password: [REDACTED:secret_value]\n");
  expect_file("app.ini", "password = plaintextpassword123 ; old\n", "password = [REDACTED:secret_value] ; old\n");
  expect_file("app.ini", "api_secret = 0123456789abcdef0123456789abcdef01234567\n", "api_secret = [REDACTED:secret_value]\n");
  expect_file("client.py", "api_secret = '0123456789abcdef0123456789abcdef01234567'\n",
              "api_secret = '[REDACTED:secret_value]'\n");
  /* a value named by its sibling: Kubernetes env entries, .NET appSettings, JSON pairs */
  expect_file("deploy.yaml", "env:\n  - name: DB_PASSWORD\n    value: Xk9pQ2mN7vL4zz\n  - name: LOG_LEVEL\n    value: debug\n",
              "env:\n  - name: DB_PASSWORD\n    value: [REDACTED:secret_value]\n  - name: LOG_LEVEL\n    value: debug\n");
  expect_file("web.config", "<add key=\"DbPassword\" value=\"Xk9pQ2mN7vL4zz\"/>\n<add key=\"Theme\" value=\"dark\"/>\n",
              "<add key=\"DbPassword\" value=\"[REDACTED:secret_value]\"/>\n<add key=\"Theme\" value=\"dark\"/>\n");
  expect_file("vars.json", "[{\"name\": \"API_TOKEN\", \"value\": \"Xk9pQ2mN7vL4zz\"}]\n",
              "[{\"name\": \"API_TOKEN\", \"value\": \"[REDACTED:secret_value]\"}]\n");
  /* stays: hashes and ids by their context, names that are not the secret, code expressions */
  static const char *const keep[][2] = {
      {"notes.txt", "commit 0123456789abcdef0123456789abcdef01234567 fixed it\n"},
      {"deploy.yaml", "uuid: 123e4567-e89b-12d3-a456-426614174000\n"},
      {"deploy.yaml", "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"},
      {"config.yaml", "api_key_env: OPENAI_API_KEY\n"},
      {"config.yaml", "api_key_file: ~/.config/kvasir/keys/openai\n"},
      {"main.c", "size_t max_tokens = 512;\n"},
      {"main.c", "token = next_token(p, &len);\n"},
      {"main.c", "printf(\"%s\\n\", ok ? \"PASS\" : \"MISS\");\n"},
      {"main.py", "password = get_password_from_vault(user_id)\n"},
      {"README.md", "the next token: it is sampled from the logits\n"},
      {"app.ini", "password =\n"},
      {"conf.yaml", "token: ${{ secrets.GITHUB_TOKEN }}\n"},
  };
  for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) expect_file(keep[i][0], keep[i][1], keep[i][1]);
  /* a PEM key cut into two chunks: the chunk without the BEGIN marker must not send its body */
  char body[64 * 4 + 4 + 1];
  for (int l = 0, k = 0; l < 4; l++) {
    for (int c = 0; c < 64; c++) body[k++] = "AbCdEfGh0123456789+/xYzW"[(l * 7 + c * 5) % 24];
    body[k++] = '\n';
    body[k] = 0;
  }
  char file[512];
  snprintf(file, sizeof file, "-----BEGIN RSA PRIVATE KEY-----\n%s-----END RSA PRIVATE KEY-----\n", body);
  const char *second = strchr(strchr(file, '\n') + 1, '\n') + 1; /* from the body's second line on */
  char *out;
  pol_redactions c = {{0}, 0};
  kv_err err;
  assert_int_equal(pol_redact_file("deploy/notes.txt", second, strlen(second), &out, NULL, &c, &err), 0);
  assert_int_equal(c.counts[POL_RED_PRIVATE_KEY], 1);
  assert_null(strstr(out, "AbCdEf"));
  assert_string_equal(out, "[REDACTED:private_key]\n\n\n-----END RSA PRIVATE KEY-----\n");
  free(out);
  /* and the whole file keeps its five lines */
  assert_int_equal(pol_redact_file("deploy/notes.txt", file, strlen(file), &out, NULL, NULL, &err), 0);
  assert_string_equal(out, "[REDACTED:private_key]\n\n\n\n\n\n");
  free(out);
  /* secrets typed into the question */
  pol_policy *p;
  assert_int_equal(pol_policy_from_buffers(&p, NULL, 0, NULL, NULL, 0, NULL, NULL, &err), 0);
  pol_request req = {.kind = POL_KIND_ASK, .question = "my password is Hunter2Hunter2!, and why does DB_PASSWORD=Xk9pQ2mN7vL4 fail?"};
  pol_payload *pl;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 0, &pl, &err), 0);
  assert_null(strstr(pl->body, "Hunter2Hunter2"));
  assert_null(strstr(pl->body, "Xk9pQ2mN7vL4"));
  assert_non_null(strstr(pl->body, "my password is [REDACTED:secret_value], and why does DB_PASSWORD=[REDACTED:secret_value] fail?"));
  pol_payload_free(pl);
  pol_policy_free(p);
}

/* An excerpt cut from a key body holds a short last line with no digit:
 * alone it proves nothing, so only the whole file (its BEGIN marker) shows
 * it is key material. With a pol_file_origin the payload is cut from the
 * whole file's redaction; without one the line goes out. */
static void excerpt_from_whole_file(void **state) {
  (void)state;
  const char *file = "notes\n-----BEGIN PRIVATE KEY-----\n"
                     "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\n"
                     "tnFXshyTrmOjnXrAbcQ\n"
                     "-----END PRIVATE KEY-----\nmore notes\n";
  const char *excerpt = "tnFXshyTrmOjnXrAbcQ\n"; /* line 4 */
  pol_policy *p;
  kv_err err;
  assert_int_equal(pol_policy_from_buffers(&p, NULL, 0, NULL, NULL, 0, NULL, NULL, &err), 0);
  pol_file f = {"docs/notes.txt", excerpt, strlen(excerpt), NULL};
  pol_request req = {.kind = POL_KIND_ASK, .question = "q", .files = &f, .n_files = 1};
  pol_payload *pl;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 0, &pl, &err), 0);
  assert_non_null(strstr(pl->body, "tnFXshyTrmOj")); /* alone: not recognisable */
  pol_payload_free(pl);
  pol_file_origin o = {file, strlen(file), 4};
  req.origins = &o;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 0, &pl, &err), 0);
  assert_null(strstr(pl->body, "tnFXshyTrmOj"));
  assert_non_null(strstr(pl->prompt, "--- file: docs/notes.txt ---\n\n")); /* the line, emptied, stays a line */
  assert_int_equal(pl->redactions.total, 0); /* the marker itself is on line 2, outside the excerpt */
  pol_payload_free(pl);
  /* lines 1-3 of the same file: the marker line is in the excerpt and counted */
  const char *head = "notes\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj";
  pol_file h = {"docs/notes.txt", head, strlen(head), NULL}; /* cut mid-line, no final newline */
  pol_file_origin o1 = {file, strlen(file), 1};
  req.files = &h, req.origins = &o1;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 0, &pl, &err), 0);
  assert_non_null(strstr(pl->prompt, "--- file: docs/notes.txt ---\nnotes\n[REDACTED:private_key]\n"));
  assert_null(strstr(pl->prompt, "MIIEvQ"));
  assert_int_equal(pl->redactions.counts[POL_RED_PRIVATE_KEY], 1);
  pol_payload_free(pl);
  /* a stale origin (the excerpt is not at line0) falls back to the excerpt alone */
  pol_file_origin stale = {file, strlen(file), 2};
  req.files = &f, req.origins = &stale;
  assert_int_equal(pol_payload_prepare(p, &req, "m", 0, &pl, &err), 0);
  assert_non_null(strstr(pl->body, "tnFXshyTrmOj"));
  assert_null(strstr(pl->body, "MIIEvQ"));
  pol_payload_free(pl);
  pol_policy_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(golden_lines),      cmocka_unit_test(golden_entropy), cmocka_unit_test(entropy_recall),
      cmocka_unit_test(no_false_positives_on_code),    cmocka_unit_test(counts_accumulate),
      cmocka_unit_test(hostile_input),     cmocka_unit_test(never_send_stripped), cmocka_unit_test(issue_findings), cmocka_unit_test(excerpt_from_whole_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
