/*
 * test_policy_remote.c — the hosted path against a mock OpenAI-compatible
 * endpoint on 127.0.0.1 (mock_openai.c): what the mock receives on the wire
 * never contains never_send content or planted keys; budgets stop the
 * N+1th request before it connects; a 500 or a hang falls back to the local
 * tier within the configured timeout; streamed tokens arrive in order;
 * offline makes no connection at all; audit rows match the received bytes
 * (length and sha256).
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
#include <sodium.h>
#include <sqlite3.h>

#include "mock_openai.h"
#include "policy/policy.h"

#define API_KEY "sk-kvasir-test-0123456789abcdefghijklmnop"

static char tmpdir[256];
static int dbn;

static pol_policy *make_policy(int port, const char *extra_tier, const char *policy) {
  char cfg[1024];
  snprintf(cfg, sizeof cfg,
           "tiers:\n  flash: {model: small}\n  hosted-large:\n    base_url: http://127.0.0.1:%d/v1\n"
           "    model: gpt-mock\n    api_key_env: KVASIR_MOCK_KEY\n    price_in: 1.0\n    price_out: 2.0\n%s",
           port, extra_tier ? extra_tier : "    timeout_ms: 5000\n    retries: 0\n");
  pol_policy *p = NULL;
  kv_err err;
  int rc = pol_policy_from_buffers(&p, cfg, strlen(cfg), "config.yaml", policy, strlen(policy), "policy.yaml",
                                   "/proj/test", &err);
  if (rc) fprintf(stderr, "%s\n", err.msg);
  assert_int_equal(rc, 0);
  return p;
}

static pol_audit *fresh_audit(void) {
  char path[400];
  snprintf(path, sizeof path, "%s/audit-%d.db", tmpdir, dbn++);
  pol_audit *a;
  kv_err err;
  assert_int_equal(pol_audit_open(&a, path, &err), 0);
  return a;
}

typedef struct collect { char text[4096]; size_t n; int calls; } collect;
static int on_tok(const char *t, size_t n, void *ud) {
  collect *c = ud;
  if (c->n + n < sizeof c->text) memcpy(c->text + c->n, t, n), c->n += n, c->text[c->n] = 0;
  c->calls++;
  return 0;
}

typedef struct rows { int n; pol_audit_row last[8]; char sha[8][65]; } rows;
static int on_row(const pol_audit_row *r, void *ud) {
  rows *rs = ud;
  if (rs->n < 8) {
    rs->last[rs->n] = *r;
    memcpy(rs->sha[rs->n], r->sha256, 65);
    rs->last[rs->n].project = rs->last[rs->n].rule = rs->last[rs->n].tier = NULL; /* point into sqlite memory */
    rs->last[rs->n].endpoint = rs->last[rs->n].status = rs->last[rs->n].redaction_detail = NULL;
  }
  rs->n++;
  return 0;
}

static void hex_sha(const char *b, size_t n, char out[65]) {
  unsigned char h[32];
  crypto_hash_sha256(h, (const unsigned char *)b, n);
  sodium_bin2hex(out, 65, h, 32);
}

static const char *const TOKENS[] = {"Hel", "lo", ",", " wor", "ld", "!", " \\u00e9t\\u00e9", " 42"};

static void decide_hosted(const pol_policy *p, pol_decision *d) {
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX};
  kv_err err;
  assert_int_equal(pol_decide(p, &r, d, &err), 0);
  assert_int_equal(d->tier_kind, POL_TIER_HOSTED);
}

static const char HOSTED_POLICY[] =
    "rules:\n  - name: deep-planning\n    depth: think-max\n    tier: hosted-large\nnever_send: [\"secrets/**\"]\n";

static void stream_in_order_and_audit_matches_wire(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 8), 0);
  pol_policy *p = make_policy(m.port, NULL, HOSTED_POLICY);
  pol_audit *a = fresh_audit();
  pol_decision d;
  decide_hosted(p, &d);
  pol_file f[] = {{"src/main.c", "int main(void) { return 0; }\n", 29, NULL}};
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "what does main do?", .files = f, .n_files = 1};
  pol_payload *pl;
  kv_err err;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 256, &pl, &err), 0);
  collect c = {0};
  pol_send_result res;
  int rc = pol_hosted_send(p, a, &d, pl, on_tok, &c, &res, &err);
  if (rc) fprintf(stderr, "send: %s\n", err.msg);
  assert_int_equal(rc, 0);
  assert_int_equal(res.fallback, 0);
  assert_int_equal(res.attempts, 1);
  assert_int_equal(res.http_status, 200);
  assert_int_equal(c.calls, 8);
  assert_string_equal(c.text, "Hello, world! \xc3\xa9t\xc3\xa9 42");
  mock_stop(&m);
  assert_int_equal(m.n_req, 1);
  assert_string_equal(m.path[0], "/v1/chat/completions");
  assert_string_equal(m.auth[0], "Bearer " API_KEY);
  assert_int_equal(m.body_len[0], pl->body_len);
  /* the audit row describes exactly what the mock received */
  rows rs = {0};
  assert_int_equal(pol_audit_list(a, NULL, 0, on_row, &rs, &err), 0);
  assert_int_equal(rs.n, 1);
  char want[65];
  hex_sha(m.body[0], m.body_len[0], want);
  assert_int_equal(rs.last[0].bytes, m.body_len[0]);
  assert_string_equal(rs.sha[0], want);
  assert_int_equal(rs.last[0].http_status, 200);
  assert_int_equal(rs.last[0].tokens, (pl->body_len + 3) / 4 + 8);
  pol_payload_free(pl);
  pol_audit_close(a);
  pol_policy_free(p);
  mock_free(&m);
}

static void no_secret_on_the_wire(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 2), 0);
  pol_policy *p = make_policy(m.port, NULL, HOSTED_POLICY);
  pol_audit *a = fresh_audit();
  pol_decision d;
  decide_hosted(p, &d);
  const char *cfg_py = "OPENAI_API_KEY = 'sk-proj-PLANTEDplantedPLANTED0123456789abcd'\n"
                       "AWS = 'AKIAPLANTED123456789X'\nDB = 'postgres://app:PlantedPw99@db/app'\n";
  const char *pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n";
  pol_file f[] = {{"secrets/canary.txt", "CANARY-d41d8cd98f", 17, NULL},
                  {".env", "TOKEN=CANARY-env-77", 19, NULL},
                  {"certs/server.pem", pem, strlen(pem), NULL},
                  {"app/config.py", cfg_py, strlen(cfg_py), NULL},
                  {"app/main.py", "print('hi')\n", 12, NULL}};
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "review", .files = f, .n_files = 5};
  pol_payload *pl;
  kv_err err;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 0, &pl, &err), 0);
  assert_int_equal(pl->n_stripped, 3);
  pol_send_result res;
  assert_int_equal(pol_hosted_send(p, a, &d, pl, NULL, NULL, &res, &err), 0);
  mock_stop(&m);
  assert_int_equal(m.n_req, 1);
  const char *body = m.body[0];
  assert_null(strstr(body, "CANARY"));
  assert_null(strstr(body, "PLANTED"));
  assert_null(strstr(body, "PlantedPw99"));
  assert_null(strstr(body, "MIIEvQIBADAN"));
  assert_null(strstr(body, API_KEY)); /* the tier's own key travels only in the header */
  assert_non_null(strstr(body, "[REDACTED:openai]"));
  assert_non_null(strstr(body, "[REDACTED:aws]"));
  assert_non_null(strstr(body, "[REDACTED:url_password]"));
  assert_non_null(strstr(body, "print('hi')"));
  rows rs = {0};
  assert_int_equal(pol_audit_list(a, "/proj/test", 0, on_row, &rs, &err), 0);
  assert_int_equal(rs.n, 1);
  assert_int_equal(rs.last[0].redactions, 3);
  pol_payload_free(pl);
  pol_audit_close(a);
  pol_policy_free(p);
  mock_free(&m);
}

static void budget_stops_next_request(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 1), 0);
  char pol[512];
  snprintf(pol, sizeof pol, "%sbudget: {requests_per_day: 3}\n", HOSTED_POLICY);
  pol_policy *p = make_policy(m.port, NULL, pol);
  pol_audit *a = fresh_audit();
  pol_decision d;
  decide_hosted(p, &d);
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "q"};
  pol_payload *pl;
  kv_err err;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 0, &pl, &err), 0);
  pol_send_result res;
  for (int i = 0; i < 3; i++) assert_int_equal(pol_hosted_send(p, a, &d, pl, NULL, NULL, &res, &err), 0);
  assert_int_equal(pol_hosted_send(p, a, &d, pl, NULL, NULL, &res, &err), KV_ELIMIT);
  assert_non_null(strstr(err.msg, "budget.requests_per_day"));
  assert_int_equal(res.fallback, 1);
  assert_int_equal(res.attempts, 0);
  assert_string_equal(res.fallback_tier, "flash");
  assert_int_equal(mock_connections(&m), 3);
  pol_usage u;
  assert_int_equal(pol_budget_usage(a, "/proj/test", &u, &err), 0);
  assert_int_equal(u.requests, 3);
  mock_stop(&m);
  mock_free(&m);
  pol_policy_free(p);
  /* token and cost budgets: the request is refused before connecting */
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 1), 0);
  snprintf(pol, sizeof pol, "%sbudget: {tokens_per_day: 10}\n", HOSTED_POLICY);
  p = make_policy(m.port, NULL, pol);
  pol_audit *a2 = fresh_audit();
  assert_int_equal(pol_hosted_send(p, a2, &d, pl, NULL, NULL, &res, &err), KV_ELIMIT);
  assert_non_null(strstr(err.msg, "budget.tokens_per_day"));
  pol_policy_free(p);
  snprintf(pol, sizeof pol, "%sbudget: {cost_per_day: 0.00001}\n", HOSTED_POLICY);
  p = make_policy(m.port, NULL, pol);
  assert_int_equal(pol_hosted_send(p, a2, &d, pl, NULL, NULL, &res, &err), KV_ELIMIT);
  assert_non_null(strstr(err.msg, "budget.cost_per_day"));
  mock_stop(&m);
  assert_int_equal(m.connections, 0);
  pol_payload_free(pl);
  pol_audit_close(a);
  pol_audit_close(a2);
  pol_policy_free(p);
  mock_free(&m);
}

static void failure_falls_back(int mode, const char *tier_opts, unsigned want_attempts, double max_s, double min_s) {
  mock m;
  assert_int_equal(mock_start(&m, mode, TOKENS, 2), 0);
  pol_policy *p = make_policy(m.port, tier_opts, HOSTED_POLICY);
  pol_audit *a = fresh_audit();
  pol_decision d;
  decide_hosted(p, &d);
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "q"};
  pol_payload *pl;
  kv_err err;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 0, &pl, &err), 0);
  collect c = {0};
  pol_send_result res;
  double t0 = kv_now();
  int rc = pol_hosted_send(p, a, &d, pl, on_tok, &c, &res, &err);
  double dt = kv_now() - t0;
  fprintf(stderr, "mode %d: rc=%d after %.3f s, attempts %u: %s\n  note: %s\n", mode, rc, dt, res.attempts, err.msg, res.note);
  assert_int_equal(rc, KV_EIO);
  assert_int_equal(res.fallback, 1);
  assert_string_equal(res.fallback_tier, "flash");
  assert_non_null(strstr(res.note, "answered by local tier 'flash'"));
  assert_int_equal(res.attempts, want_attempts);
  assert_int_equal(c.calls, 0);
  assert_true(dt < max_s);
  assert_true(dt >= min_s);
  mock_stop(&m);
  assert_int_equal(m.connections, (int)want_attempts);
  rows rs = {0};
  assert_int_equal(pol_audit_list(a, NULL, 0, on_row, &rs, &err), 0);
  assert_int_equal(rs.n, (int)want_attempts);
  for (int i = 0; i < rs.n && i < 8; i++) assert_int_equal(rs.last[i].http_status, mode == MOCK_500 ? 500 : 0);
  pol_payload_free(pl);
  pol_audit_close(a);
  pol_policy_free(p);
  mock_free(&m);
}

static void http_500_falls_back(void **state) {
  (void)state;
  /* 3 attempts, backoff 20 + 40 ms */
  failure_falls_back(MOCK_500, "    timeout_ms: 2000\n    retries: 2\n    backoff_ms: 20\n", 3, 1.5, 0.06);
}

static void hang_falls_back_within_timeout(void **state) {
  (void)state;
  /* 2 attempts of 300 ms each + 50 ms backoff = 0.65 s of configured time */
  failure_falls_back(MOCK_HANG, "    timeout_ms: 300\n    retries: 1\n    backoff_ms: 50\n", 2, 1.2, 0.6);
}

static void offline_makes_no_connection(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 1), 0);
  char pol[512];
  snprintf(pol, sizeof pol, "%soffline: true\n", HOSTED_POLICY);
  pol_policy *p = make_policy(m.port, NULL, pol);
  pol_audit *a = fresh_audit();
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "q"};
  pol_decision d;
  kv_err err;
  assert_int_equal(pol_decide(p, &r, &d, &err), 0);
  assert_int_equal(d.tier_kind, POL_TIER_LOCAL); /* downgraded by the rules */
  assert_int_equal(d.offline_downgraded, 1);
  pol_payload *pl;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 0, &pl, &err), 0);
  pol_send_result res;
  assert_int_equal(pol_hosted_send(p, a, &d, pl, NULL, NULL, &res, &err), KV_EDENIED);
  /* even a caller that forges a hosted decision gets nothing out */
  pol_decision forged = d;
  strcpy(forged.tier, "hosted-large");
  forged.tier_kind = POL_TIER_HOSTED;
  assert_int_equal(pol_hosted_send(p, a, &forged, pl, NULL, NULL, &res, &err), KV_EDENIED);
  assert_non_null(strstr(err.msg, "offline"));
  assert_int_equal(res.fallback, 1);
  assert_int_equal(res.attempts, 0);
  usleep(100000);
  mock_stop(&m);
  assert_int_equal(m.connections, 0);
  rows rs = {0};
  assert_int_equal(pol_audit_list(a, NULL, 0, on_row, &rs, &err), 0);
  assert_int_equal(rs.n, 0);
  pol_payload_free(pl);
  pol_audit_close(a);
  pol_policy_free(p);
  mock_free(&m);
}

static void plain_json_completion(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_JSON, NULL, 0), 0);
  pol_policy *p = make_policy(m.port, NULL, HOSTED_POLICY);
  pol_decision d;
  decide_hosted(p, &d);
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "q"};
  pol_payload *pl;
  kv_err err;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 0, &pl, &err), 0);
  collect c = {0};
  pol_send_result res;
  assert_int_equal(pol_hosted_send(p, NULL, &d, pl, on_tok, &c, &res, &err), 0);
  assert_string_equal(c.text, "whole answer");
  assert_int_equal(res.attempts, 1);
  mock_stop(&m);
  pol_payload_free(pl);
  pol_policy_free(p);
  mock_free(&m);
}

static void key_file_rules(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 1), 0);
  char keyf[400], opts[600];
  snprintf(keyf, sizeof keyf, "%s/key", tmpdir);
  FILE *f = fopen(keyf, "w");
  fputs("sk-from-file-0123456789\n", f);
  fclose(f);
  chmod(keyf, 0644);
  snprintf(opts, sizeof opts, "    api_key_file: %s\n    retries: 0\n", keyf);
  unsetenv("KVASIR_MOCK_KEY");
  pol_policy *p = make_policy(m.port, opts, HOSTED_POLICY);
  pol_decision d;
  decide_hosted(p, &d);
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "q"};
  pol_payload *pl;
  kv_err err;
  assert_int_equal(pol_payload_prepare(p, &r, "gpt-mock", 0, &pl, &err), 0);
  pol_send_result res;
  assert_int_equal(pol_hosted_send(p, NULL, &d, pl, NULL, NULL, &res, &err), KV_ECRYPTO);
  assert_non_null(strstr(err.msg, "must be 0600"));
  assert_int_equal(mock_connections(&m), 0);
  chmod(keyf, 0600);
  assert_int_equal(pol_hosted_send(p, NULL, &d, pl, NULL, NULL, &res, &err), 0);
  mock_stop(&m);
  assert_string_equal(m.auth[0], "Bearer sk-from-file-0123456789");
  setenv("KVASIR_MOCK_KEY", API_KEY, 1);
  pol_payload_free(pl);
  pol_policy_free(p);
  mock_free(&m);
}

/* A key file inside the project would be committed with it: refused. */
static void key_in_project_refused(void **state) {
  (void)state;
  mock m;
  assert_int_equal(mock_start(&m, MOCK_STREAM, TOKENS, 1), 0);
  char keyf[400], cfg[1024];
  snprintf(keyf, sizeof keyf, "%s/inproj.key", tmpdir);
  FILE *f = fopen(keyf, "w");
  fputs("sk-committed-by-mistake-0123\n", f);
  fclose(f);
  chmod(keyf, 0600);
  snprintf(cfg, sizeof cfg, "tiers:\n  hosted-large:\n    base_url: http://127.0.0.1:%d/v1\n    model: m\n    api_key_file: %s\n",
           m.port, keyf);
  pol_policy *p;
  kv_err err;
  assert_int_equal(pol_policy_from_buffers(&p, cfg, strlen(cfg), "config.yaml", HOSTED_POLICY, strlen(HOSTED_POLICY),
                                           "policy.yaml", tmpdir, &err), 0);
  pol_decision d;
  decide_hosted(p, &d);
  pol_request r = {.kind = POL_KIND_ASK, .depth = POL_DEPTH_THINK_MAX, .question = "q"};
  pol_payload *pl;
  assert_int_equal(pol_payload_prepare(p, &r, "m", 0, &pl, &err), 0);
  pol_send_result res;
  assert_int_equal(pol_hosted_send(p, NULL, &d, pl, NULL, NULL, &res, &err), KV_EDENIED);
  assert_non_null(strstr(err.msg, "inside the project"));
  assert_int_equal(res.fallback, 1);
  mock_stop(&m);
  assert_int_equal(m.connections, 0);
  pol_payload_free(pl);
  pol_policy_free(p);
  mock_free(&m);
}

/* Decisions are audited too (the daemon records every one). */
static void decisions_audited(void **state) {
  (void)state;
  char path[400];
  snprintf(path, sizeof path, "%s/decisions.db", tmpdir);
  pol_audit *a;
  kv_err err;
  assert_int_equal(pol_audit_open(&a, path, &err), 0);
  pol_policy *p = make_policy(9, NULL, HOSTED_POLICY);
  pol_request r = {.kind = POL_KIND_TRIAGE, .depth = POL_DEPTH_THINK_MAX, .context_tokens = 777};
  pol_decision d;
  assert_int_equal(pol_decide(p, &r, &d, &err), 0);
  assert_int_equal(pol_audit_decision(a, "/proj/test", &r, &d, &err), 0);
  pol_audit_close(a);
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "SELECT project, kind, depth, rule, tier, context_tokens FROM decisions", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "/proj/test");
  assert_string_equal((const char *)sqlite3_column_text(st, 1), "triage");
  assert_string_equal((const char *)sqlite3_column_text(st, 2), "think-max");
  assert_string_equal((const char *)sqlite3_column_text(st, 3), "deep-planning");
  assert_string_equal((const char *)sqlite3_column_text(st, 4), "hosted-large");
  assert_int_equal(sqlite3_column_int64(st, 5), 777);
  assert_int_equal(sqlite3_step(st), SQLITE_DONE);
  sqlite3_finalize(st);
  sqlite3_close(db);
  pol_policy_free(p);
}

static int setup(void **state) {
  (void)state;
  snprintf(tmpdir, sizeof tmpdir, "/tmp/kvasir-test-remote-XXXXXX");
  if (!mkdtemp(tmpdir)) return -1;
  setenv("XDG_DATA_HOME", tmpdir, 1);
  setenv("KVASIR_MOCK_KEY", API_KEY, 1);
  return sodium_init() < 0 ? -1 : 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(stream_in_order_and_audit_matches_wire),
      cmocka_unit_test(no_secret_on_the_wire),
      cmocka_unit_test(budget_stops_next_request),
      cmocka_unit_test(http_500_falls_back),
      cmocka_unit_test(hang_falls_back_within_timeout),
      cmocka_unit_test(offline_makes_no_connection),
      cmocka_unit_test(plain_json_completion),
      cmocka_unit_test(key_file_rules),
      cmocka_unit_test(key_in_project_refused),
      cmocka_unit_test(decisions_audited),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
