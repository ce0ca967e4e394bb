/*
 * test_policy_gate.c — the daemon passes the project's policy before every
 * generation. A real kvasird (stub generator, temporary XDG dirs) serves a
 * temporary repository whose .kvasir/policy.yaml refuses asks touching
 * infra/, sends think-max asks to a hosted tier (a mock OpenAI-compatible
 * endpoint on loopback, from tests/policy/mock_openai.c) and never sends
 * secrets/. Checked on the wire and in the answers:
 *   - a plain ask is answered locally (tier flash, rule default);
 *   - an ask whose context holds infra/ is refused, naming the rule;
 *   - a think-max ask streams the mock's tokens in order, and the body the
 *     mock received holds neither the never_send file's canary nor the
 *     planted API key, while the key reached the Authorization header;
 *   - a password typed into a think-max question reaches the mock redacted;
 *   - the hosted endpoint failing (500) falls back to local, said in the
 *     result;
 *   - the daemon caches the parsed policy and pooled audit connections
 *     (cache.stats counts hits and reuses), yet an edited policy applies to
 *     the very next ask; a broken edit keeps the last good policy in force
 *     (still refusing infra/), says so in the result and logs file:line:col
 *     once; SIGHUP re-reads it at once; a repo whose policy never loaded
 *     refuses asks, naming the file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "itest.h"
#include "mock_openai.h"

#define CANARY "CANARY_7f3a9_DO_NOT_SEND"
#define API_KEY "sk-test-PLANTED0123456789abcdefABCDEF"

static char root[64], repo[128], repo2[128];
static pid_t daemon_pid;
static mock m;
static const char *const TOKENS[] = {"Hosted", " answer", " in", " order", "."};
static const char *const POLICY = "default: flash\n"
                                  "rules:\n"
                                  "  - name: infra-refused\n"
                                  "    paths: [\"infra/**\"]\n"
                                  "    tier: refuse\n"
                                  "  - name: complete-hosted\n"
                                  "    kind: complete\n"
                                  "    tier: hosted-large\n"
                                  "  - name: deep-planning\n"
                                  "    depth: think-max\n"
                                  "    tier: hosted-large\n"
                                  "never_send: [\"secrets/**\"]\n";

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static int start_daemon(void) {
  daemon_pid = itest_spawn_daemon(root, "--stub-generator", "1", (char *)NULL);
  return itest_wait_daemon();
}

static int setup(void **st) {
  if (itest_xdg_root(root, sizeof root, "/tmp/kvasir-gate-XXXXXX")) return 1;
  if (mock_start(&m, MOCK_STREAM, TOKENS, 5)) return 1;
  char cfg[4096];
  snprintf(cfg, sizeof cfg, "%s/cfg/kvasir", root);
  kv_mkdirs(cfg, 0700, NULL);
  strcat(cfg, "/config.yaml");
  char yaml[1024];
  snprintf(yaml, sizeof yaml,
           "tiers:\n"
           "  hosted-large:\n"
           "    base_url: http://127.0.0.1:%d/v1\n"
           "    model: mock-large\n"
           "    api_key_env: KVASIR_TEST_GATE_KEY\n"
           "    timeout_ms: 3000\n"
           "    retries: 0\n",
           m.port);
  FILE *f = fopen(cfg, "w");
  if (!f) return 1;
  fputs(yaml, f);
  fclose(f);
  setenv("KVASIR_TEST_GATE_KEY", API_KEY, 1);

  snprintf(repo, sizeof repo, "%s/repo", root);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "mkdir -p %s/src %s/infra %s/secrets %s/.kvasir", repo, repo, repo, repo);
  itest_sh(cmd);
  char p[256];
  snprintf(p, sizeof p, "%s/src/ledger.c", repo);
  write_file(p, "/* Sum the ledger entries. */\nint reconcile_ledger(const int *v, int n) {\n  int s = 0;\n"
                "  for (int i = 0; i < n; i++) s += v[i];\n  return s;\n}\n");
  snprintf(p, sizeof p, "%s/infra/deploy.sh", repo);
  write_file(p, "#!/bin/sh\n# provision the cluster\nprovision_cluster_nodes() {\n  echo provisioning\n}\n");
  snprintf(p, sizeof p, "%s/secrets/rotate.c", repo);
  write_file(p, "/* rotate the master key */\nconst char *rotate_master_key(void) {\n  return \"" CANARY "\";\n}\n");
  snprintf(p, sizeof p, "%s/.kvasir/policy.yaml", repo);
  write_file(p, POLICY);
  snprintf(cmd, sizeof cmd,
           "cd %s && git init -q . && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo);
  itest_sh(cmd);
  /* a second repo whose policy is broken from the start */
  snprintf(repo2, sizeof repo2, "%s/repo2", root);
  snprintf(cmd, sizeof cmd, "mkdir -p %s/src %s/.kvasir", repo2, repo2);
  itest_sh(cmd);
  snprintf(p, sizeof p, "%s/src/ledger.c", repo2);
  write_file(p, "int reconcile_ledger(void) { return 0; }\n");
  snprintf(p, sizeof p, "%s/.kvasir/policy.yaml", repo2);
  write_file(p, "default: flash\nrules: [name: oops\n");
  snprintf(cmd, sizeof cmd,
           "cd %s && git init -q . && git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo2);
  itest_sh(cmd);
  if (start_daemon()) return 1;
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return 1;
  int rc = 0;
  for (int i = 0; i < 2 && !rc; i++) {
    cJSON *prm = cJSON_CreateObject(), *r = NULL;
    cJSON_AddStringToObject(prm, "path", i ? repo2 : repo);
    cJSON_AddBoolToObject(prm, "wait", 1);
    rc = ipc_client_call(c, "repo.add", prm, NULL, NULL, 120000, &r, &e);
    cJSON_Delete(prm);
    cJSON_Delete(r);
  }
  ipc_client_close(c);
  return rc ? 1 : 0;
}

static int teardown(void **st) {
  itest_stop_daemon(&daemon_pid);
  mock_stop(&m);
  mock_free(&m);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  return system(cmd) != 0;
}

typedef struct seen {
  char text[4096];
} seen;

static int on_note(void *ud, const char *method, const cJSON *params) {
  seen *s = ud;
  const cJSON *kind = cJSON_GetObjectItem(params, "kind");
  if (!strcmp(method, "ask.token") && !(cJSON_IsString(kind) && !strcmp(kind->valuestring, "facts"))) {
    const cJSON *t = cJSON_GetObjectItem(params, "text");
    if (cJSON_IsString(t) && strlen(s->text) + strlen(t->valuestring) < sizeof s->text)
      strcat(s->text, t->valuestring);
  }
  return 0;
}

/* ask on repo r; returns the call's rc, the result in *out (caller frees). */
static int ask_in(const char *r, const char *question, const char *depth, seen *s, cJSON **out, kv_err *e) {
  ipc_client *c;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, e), 0);
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "question", question);
  cJSON_AddStringToObject(p, "repo", r);
  cJSON_AddNumberToObject(p, "max_tokens", 4);
  cJSON_AddNumberToObject(p, "k", 8);
  if (depth) cJSON_AddStringToObject(p, "depth", depth);
  memset(s, 0, sizeof *s);
  *out = NULL;
  int rc = ipc_client_call(c, "ask", p, on_note, s, 60000, out, e);
  cJSON_Delete(p);
  ipc_client_close(c);
  return rc;
}

static int ask(const char *question, const char *depth, seen *s, cJSON **out, kv_err *e) {
  return ask_in(repo, question, depth, s, out, e);
}

static const char *str(const cJSON *o, const char *k) {
  const cJSON *v = cJSON_GetObjectItem(o, k);
  return cJSON_IsString(v) ? v->valuestring : "";
}

/* What the mock received from request `from` on, copied out under its lock:
 * a failed check must not leave the lock held, or teardown's mock_stop
 * waits on it until ctest's timeout instead of the test failing. */
typedef struct got {
  int n_req, n;         /* requests in all; copied from `from` on */
  char *body[MOCK_MAX_REQ];
  char auth[MOCK_MAX_REQ][512];
} got;

static void got_copy(got *g, int from) {
  memset(g, 0, sizeof *g);
  pthread_mutex_lock(&m.mu);
  g->n_req = m.n_req;
  for (int i = from; i < m.n_req && i < MOCK_MAX_REQ; i++, g->n++) {
    g->body[g->n] = strdup(m.body[i] ? m.body[i] : "");
    memcpy(g->auth[g->n], m.auth[i], sizeof g->auth[g->n]);
  }
  pthread_mutex_unlock(&m.mu);
}

static void got_free(got *g) {
  for (int i = 0; i < g->n; i++) free(g->body[i]);
  g->n = 0;
}

static void test_local_default(void **st) {
  seen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e), 0);
  assert_string_equal(str(r, "tier"), "flash");
  assert_string_equal(str(r, "rule"), "default");
  assert_string_equal(str(r, "generator"), "stub");
  cJSON_Delete(r);
  assert_int_equal(mock_connections(&m), 0); /* nothing left the machine */
}

static void test_infra_refused(void **st) {
  seen s;
  cJSON *r;
  kv_err e;
  int rc = ask("provision_cluster_nodes provision the cluster", NULL, &s, &r, &e);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(e.msg, "infra-refused"));
  assert_string_equal(s.text, ""); /* nothing generated */
  cJSON_Delete(r);
  assert_int_equal(mock_connections(&m), 0);
}

static void test_hosted_strips_and_streams(void **st) {
  seen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(ask("how does rotate_master_key rotate the master key and reconcile_ledger", "think-max", &s, &r, &e),
                   0);
  assert_string_equal(str(r, "tier"), "hosted-large");
  assert_string_equal(str(r, "rule"), "deep-planning");
  assert_string_equal(str(r, "generator"), "hosted");
  assert_string_equal(s.text, "Hosted answer in order.");
  /* the answer: the local facts lead (never sent), then the hosted text, verified */
  const char *ans = str(r, "answer");
  assert_true(strlen(ans) > 23 && !strcmp(ans + strlen(ans) - 23, "Hosted answer in order."));
  assert_non_null(strstr(ans, "`rotate_master_key` (secrets/rotate.c:"));
  got g;
  got_copy(&g, 0);
  assert_int_equal(g.n_req, 1);
  assert_null(strstr(g.body[0], CANARY));          /* never_send file stripped */
  assert_null(strstr(g.body[0], API_KEY));         /* the key is not in the body */
  assert_non_null(strstr(g.body[0], "reconcile_ledger")); /* the allowed context was sent */
  assert_non_null(strstr(g.auth[0], API_KEY));     /* it went where it belongs */
  got_free(&g);
  cJSON_Delete(r);
}

static void test_hosted_failure_falls_back(void **st) {
  m.mode = MOCK_500;
  seen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(ask("plan how reconcile_ledger should change", "think-max", &s, &r, &e), 0);
  assert_string_equal(str(r, "generator"), "stub"); /* answered locally */
  assert_string_equal(str(r, "tier"), "flash");
  assert_true(strlen(str(r, "fallback")) > 0);
  cJSON_Delete(r);
  m.mode = MOCK_STREAM;
}

/* The daemon's log (malloc'd), or NULL when it cannot be read yet. */
static char *read_log(void) {
  char path[160], *text;
  size_t n;
  kv_err e;
  snprintf(path, sizeof path, "%s/kvasird.log", root);
  return kv_read_file(path, 1 << 22, &text, &n, &e) ? NULL : text;
}

/* Occurrences of needle in the daemon's log. */
static int log_count(const char *needle) {
  char *text = read_log();
  if (!text) return 0;
  int c = 0;
  for (const char *t = text; (t = strstr(t, needle)); t++) c++;
  free(text);
  return c;
}

/* Occurrences of "policy.yaml:<line>:<col>:" (an error's location) in the log. */
static int log_count_loc(void) {
  char *text = read_log();
  if (!text) return 0;
  int c = 0;
  for (const char *t = text; (t = strstr(t, "policy.yaml:")); t++) {
    const char *q = t + 12;
    size_t a = strspn(q, "0123456789");
    if (!a || q[a] != ':') continue;
    size_t b = strspn(q + a + 1, "0123456789");
    if (b && q[a + 1 + b] == ':') c++;
  }
  free(text);
  return c;
}

static double stat_num(const char *group, const char *key) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *r = NULL;
  assert_int_equal(ipc_client_call(c, "cache.stats", NULL, NULL, NULL, 10000, &r, &e), 0);
  ipc_client_close(c);
  const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(r, group), key);
  double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
  cJSON_Delete(r);
  return x;
}

static void policy_path(const char *r, char *p, size_t n) { snprintf(p, n, "%s/.kvasir/policy.yaml", r); }

/* The parsed policy and the audit connections are reused between asks once
 * the policy file is older than the racy window (2 s). */
static void test_policy_cached(void **st) {
  itest_nap(2100);
  seen s;
  cJSON *r;
  kv_err e;
  double hits0 = stat_num("policy", "hits"), loads0 = stat_num("policy", "loads");
  double reuses0 = stat_num("policy", "audit_reuses");
  for (int i = 0; i < 3; i++) {
    assert_int_equal(ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e), 0);
    assert_string_equal(str(r, "rule"), "default");
    cJSON_Delete(r);
  }
  assert_true(stat_num("policy", "loads") <= loads0 + 1); /* at most one read of the aged file */
  assert_true(stat_num("policy", "hits") >= hits0 + 2);
  assert_true(stat_num("policy", "audit_reuses") >= reuses0 + 3);
}

/* An edit applies to the next ask, even one of the same size made right
 * after the last read (same timestamp tick). */
static void test_edit_applies_without_restart(void **st) {
  char p[256];
  policy_path(repo, p, sizeof p);
  seen s;
  cJSON *r;
  kv_err e;
  const char *allow = "default: flash\nrules:\n  - name: ledger-accepted\n    paths: [\"src/**\"]\n    tier: flash\n";
  const char *deny = "default: flash\nrules:\n  - name: ledger-refused\n    paths: [\"src/**\"]\n    tier: refuse\n";
  assert_int_equal(strlen(allow), strlen(deny));
  write_file(p, allow);
  assert_int_equal(ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e), 0);
  assert_string_equal(str(r, "rule"), "ledger-accepted");
  cJSON_Delete(r);
  write_file(p, deny);
  int rc = ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e);
  cJSON_Delete(r);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(e.msg, "ledger-refused"));
  assert_string_equal(s.text, "");
  write_file(p, POLICY);
  assert_int_equal(ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e), 0);
  assert_string_equal(str(r, "rule"), "default");
  assert_null(cJSON_GetObjectItem(r, "policy_warning"));
  cJSON_Delete(r);
}

/* A broken edit keeps the last good policy: infra/ is still refused, the
 * result says the policy is broken, and the error (file:line:col) is
 * logged once however many asks see it. */
static void test_broken_edit_keeps_last_good(void **st) {
  char p[256];
  policy_path(repo, p, sizeof p);
  int errs0 = log_count("last good policy stays in force"), locs0 = log_count_loc();
  write_file(p, "default: flash\nrules: [name: oops\n");
  seen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e), 0);
  assert_string_equal(str(r, "tier"), "flash");
  assert_non_null(strstr(str(r, "policy_warning"), "policy.yaml:"));
  cJSON_Delete(r);
  int rc = ask("provision_cluster_nodes provision the cluster", NULL, &s, &r, &e);
  cJSON_Delete(r);
  assert_int_not_equal(rc, 0);
  assert_non_null(strstr(e.msg, "infra-refused")); /* the last good policy still refuses */
  assert_int_equal(log_count("last good policy stays in force"), errs0 + 1);
  assert_int_equal(log_count_loc(), locs0 + 1); /* file:line:col of the error */
}

/* SIGHUP reads cached policies again at once (no ask needed): the standing
 * error is logged again; once fixed, the reload is logged and the warning
 * is gone. */
static void test_sighup_reloads(void **st) {
  int errs0 = log_count("last good policy stays in force"), locs0 = log_count_loc();
  int ok0 = log_count("policy reloaded");
  assert_int_equal(kill(daemon_pid, SIGHUP), 0);
  for (int i = 0; i < 100 && log_count("last good policy stays in force") == errs0; i++) itest_nap(20);
  assert_int_equal(log_count("last good policy stays in force"), errs0 + 1);
  assert_int_equal(log_count_loc(), locs0 + 1);
  char p[256];
  policy_path(repo, p, sizeof p);
  write_file(p, POLICY);
  assert_int_equal(kill(daemon_pid, SIGHUP), 0);
  for (int i = 0; i < 100 && log_count("policy reloaded") == ok0; i++) itest_nap(20);
  assert_int_equal(log_count("policy reloaded"), ok0 + 1);
  seen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(ask("how does reconcile_ledger sum the ledger", NULL, &s, &r, &e), 0);
  assert_null(cJSON_GetObjectItem(r, "policy_warning"));
  cJSON_Delete(r);
}

/* A policy that never loaded refuses the ask (never widens what may be
 * sent), every time, and the error names the file. */
static void test_broken_policy_refuses(void **st) {
  for (int i = 0; i < 2; i++) {
    seen s;
    cJSON *r;
    kv_err e;
    int rc = ask_in(repo2, "how does reconcile_ledger work", NULL, &s, &r, &e);
    cJSON_Delete(r);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(e.msg, "repo2/.kvasir/policy.yaml"));
    assert_string_equal(s.text, "");
  }
}


/* ask with the editor's file and a cursor line, think-max (the hosted tier) */
static int ask_file(const char *file, seen *s, cJSON **out, kv_err *e) {
  ipc_client *c;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, e), 0);
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "question", "what does this code return");
  cJSON_AddStringToObject(p, "repo", repo);
  cJSON_AddStringToObject(p, "file", file);
  cJSON_AddNumberToObject(p, "line", 2);
  cJSON_AddNumberToObject(p, "max_tokens", 4);
  cJSON_AddStringToObject(p, "depth", "think-max");
  memset(s, 0, sizeof *s);
  *out = NULL;
  int rc = ipc_client_call(c, "ask", p, on_note, s, 60000, out, e);
  cJSON_Delete(p);
  ipc_client_close(c);
  return rc;
}

/* Issue 18: the gate matches the file itself, not the path string the
 * editor sent: "..", "./", a symlink into a never_send directory, and a
 * file outside the repository. No body the mock received may hold the
 * never_send canary or the outside file's. */
static void test_path_bypasses(void **st) {
  char p[512], target[512];
  snprintf(p, sizeof p, "%s/src/link.txt", repo);
  snprintf(target, sizeof target, "../secrets/rotate.c");
  unlink(p);
  assert_int_equal(symlink(target, p), 0);
  snprintf(p, sizeof p, "%s/outside.c", root);
  write_file(p, "const char *outside(void) {\n  return \"OUTSIDE_CANARY_51c2\";\n}\n");
  const char *inside[] = {"/src/../secrets/rotate.c", "/./secrets/rotate.c", "/src//../secrets/./rotate.c",
                          "/src/link.txt"};
  for (size_t i = 0; i < sizeof inside / sizeof *inside; i++) {
    seen s;
    cJSON *r;
    kv_err e;
    snprintf(p, sizeof p, "%s%s", repo, inside[i]);
    ask_file(p, &s, &r, &e); /* answered or refused: either way nothing secret leaves */
    cJSON_Delete(r);
  }
  seen s;
  cJSON *r;
  kv_err e;
  snprintf(p, sizeof p, "%s/outside.c", root);
  int rc = ask_file(p, &s, &r, &e);
  cJSON_Delete(r);
  assert_int_not_equal(rc, 0); /* a file outside the repository is refused */
  assert_non_null(strstr(e.msg, "outside.c"));
  got g;
  got_copy(&g, 0);
  for (int i = 0; i < g.n; i++) {
    if (strstr(g.body[i], CANARY)) fail_msg("request %d carried the never_send canary:\n%s", i, g.body[i]);
    if (strstr(g.body[i], "OUTSIDE_CANARY_51c2")) fail_msg("request %d carried the outside file", i);
  }
  got_free(&g);
  snprintf(p, sizeof p, "%s/src/link.txt", repo);
  unlink(p);
}


/* A PEM key in a source file whose excerpt (the editor's selection) holds
 * only body lines: redaction runs on the whole file, so no body line goes
 * to the hosted tier (issue 18: the BEGIN marker was in the other chunk). */
static void test_key_body_without_marker(void **st) {
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  char body[20][65];
  uint64_t x = 0x9e3779b97f4a7c15ULL;
  for (int l = 0; l < 20; l++) {
    for (int c = 0; c < 64; c++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      body[l][c] = b64[x % 64];
    }
    body[l][64] = 0;
  }
  char text[4096] = "/* TLS setup for the ledger service. */\nstatic const char *key_pem =\n"
                    "  \"-----BEGIN RSA PRIVATE KEY-----\\n\"\n";
  for (int l = 0; l < 20; l++) {
    strcat(text, "  \"");
    strcat(text, body[l]);
    strcat(text, "\\n\"\n");
  }
  strcat(text, "  \"-----END RSA PRIVATE KEY-----\\n\";\n");
  char p[512];
  snprintf(p, sizeof p, "%s/src/tls_setup.c", repo);
  write_file(p, text);
  pthread_mutex_lock(&m.mu);
  int before = m.n_req;
  pthread_mutex_unlock(&m.mu);
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *prm = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(prm, "question", "what is in this part of the setup");
  cJSON_AddStringToObject(prm, "repo", repo);
  cJSON_AddStringToObject(prm, "file", p);
  cJSON *sel = cJSON_AddObjectToObject(prm, "selection");
  cJSON_AddNumberToObject(sel, "start_line", 8); /* body lines 5..24 of the key: well past BEGIN */
  cJSON_AddNumberToObject(sel, "end_line", 20);
  cJSON_AddNumberToObject(prm, "max_tokens", 4);
  cJSON_AddStringToObject(prm, "depth", "think-max");
  seen s;
  memset(&s, 0, sizeof s);
  int rc = ipc_client_call(c, "ask", prm, on_note, &s, 60000, &r, &e);
  cJSON_Delete(prm);
  cJSON_Delete(r);
  ipc_client_close(c);
  assert_int_equal(rc, 0);
  got g;
  got_copy(&g, before);
  assert_true(g.n > 0); /* it went to the hosted tier */
  for (int i = 0; i < g.n; i++)
    for (int l = 0; l < 20; l++) {
      char piece[17];
      memcpy(piece, body[l] + 24, 16);
      piece[16] = 0;
      if (strstr(g.body[i], piece)) fail_msg("key body line %d left the machine:\n%s", l, g.body[i]);
    }
  got_free(&g);
  unlink(p);
}

/* A secret typed into the question itself (not in any file) is redacted
 * before the question goes to the hosted tier (issue 18). */
static void test_secret_in_question(void **st) {
  pthread_mutex_lock(&m.mu);
  int before = m.n_req;
  pthread_mutex_unlock(&m.mu);
  seen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(ask("why does reconcile_ledger fail to log in with password=Sup3rS3cret!2024 on staging", "think-max",
                       &s, &r, &e),
                   0);
  assert_string_equal(str(r, "generator"), "hosted");
  got g;
  got_copy(&g, before);
  assert_int_equal(g.n, 1);
  if (strstr(g.body[0], "Sup3rS3cret")) fail_msg("the typed password left the machine:\n%s", g.body[0]);
  assert_non_null(strstr(g.body[0], "reconcile_ledger fail to log in")); /* the rest of the question was sent */
  got_free(&g);
  const cJSON *red = cJSON_GetObjectItem(r, "redactions");
  assert_true(cJSON_IsNumber(red) && red->valuedouble >= 1); /* and the result says so */
  cJSON_Delete(r);
}

/* ---- complete: routed by the policy like an ask ---------------------------- */

typedef struct cseen {
  char text[1024];
} cseen;

static int on_ctoken(void *ud, const char *method, const cJSON *params) {
  cseen *s = ud;
  const cJSON *t = cJSON_GetObjectItem(params, "text");
  if (!strcmp(method, "complete.token") && cJSON_IsString(t) && strlen(s->text) + strlen(t->valuestring) < sizeof s->text)
    strcat(s->text, t->valuestring);
  return 0;
}

/* complete in repo file rel with the unsaved buffer text, cursor at line:col (1-based line, byte col). */
static int complete_at(const char *rel, const char *text, int line, int col, cseen *s, cJSON **out, kv_err *e) {
  ipc_client *c;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, e), 0);
  char file[512];
  snprintf(file, sizeof file, "%s/%s", repo, rel);
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "file", file);
  cJSON_AddStringToObject(p, "text", text);
  cJSON_AddNumberToObject(p, "line", line);
  cJSON_AddNumberToObject(p, "col", col);
  cJSON_AddNumberToObject(p, "max_tokens", 8);
  memset(s, 0, sizeof *s);
  *out = NULL;
  int rc = ipc_client_call(c, "complete", p, on_ctoken, s, 60000, out, e);
  cJSON_Delete(p);
  ipc_client_close(c);
  return rc;
}

/* The buffer: a secret assigned far above the cursor (outside the window
 * the daemon sends), a secret inside the window, filler, then the cursor. */
static char *completion_buffer(int *line, int *col) {
  kv_buf b = KV_BUF_INIT;
  kv_buf_puts(&b, "/* ledger tools */\nstatic const char *db_password = \"" CANARY "\";\n");
  for (int i = 0; i < 150; i++) kv_buf_printf(&b, "int ledger_pad_%03d(void) { return %d; }\n", i, i);
  kv_buf_puts(&b, "static const char *api_token = \"" API_KEY "\";\n");
  for (int i = 0; i < 3; i++) kv_buf_printf(&b, "int ledger_tail_%d(void) { return %d; }\n", i, i);
  int l = 1;
  for (size_t i = 0; i < b.len; i++) l += b.data[i] == '\n';
  kv_buf_puts(&b, "int reconcile_total(void) { return SUFFIX_MARK_1; }\nint after_cursor_2(void);\n");
  *line = l;
  *col = (int)strlen("int reconcile_total(void) { return ");
  return kv_buf_detach(&b, NULL);
}

static void test_complete_hosted(void **st) {
  int line, col;
  char *buf = completion_buffer(&line, &col);
  got g0;
  got_copy(&g0, 0);
  cseen s;
  cJSON *r;
  kv_err e;
  assert_int_equal(complete_at("src/ledger.c", buf, line, col, &s, &r, &e), 0);
  assert_string_equal(str(r, "tier"), "hosted-large");
  assert_string_equal(str(r, "rule"), "complete-hosted");
  assert_string_equal(str(r, "generator"), "hosted");
  assert_string_equal(str(r, "text"), "Hosted answer in order.");
  assert_string_equal(s.text, "Hosted answer in order.");
  got g;
  got_copy(&g, g0.n_req);
  assert_int_equal(g.n, 1);
  pthread_mutex_lock(&m.mu);
  char path[128];
  snprintf(path, sizeof path, "%s", m.path[g0.n_req]);
  pthread_mutex_unlock(&m.mu);
  assert_string_equal(path, "/v1/completions");
  cJSON *body = cJSON_Parse(g.body[0]);
  assert_non_null(body);
  const char *prompt = str(body, "prompt"), *suffix = str(body, "suffix");
  /* cut at the cursor */
  assert_true(strlen(prompt) > 35 && !strcmp(prompt + strlen(prompt) - 35, "int reconcile_total(void) { return "));
  assert_int_equal(strncmp(suffix, "SUFFIX_MARK_1; }\nint after_cursor_2(", 36), 0);
  assert_null(strstr(g.body[0], API_KEY));   /* the secret in the window is redacted */
  assert_non_null(strstr(prompt, "[REDACTED:"));
  assert_null(strstr(g.body[0], CANARY));    /* the one far above is not in the window */
  assert_null(strstr(prompt, "ledger_pad_000")); /* only the window around the cursor */
  assert_non_null(strstr(prompt, "ledger_pad_149"));
  assert_non_null(strstr(g.auth[0], API_KEY));
  assert_int_equal(cJSON_GetObjectItem(body, "max_tokens")->valueint, 8); /* the editor's, not a default */
  assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "stop"), 0)->valuestring, "\n\n");
  cJSON_Delete(body);
  got_free(&g);
  got_free(&g0);
  cJSON_Delete(r);
  free(buf);
}

/* A secret on the cursor's line, or a never_send file: nothing is sent,
 * the local tier completes (here: no model, so a note), and the result says why. */
static void test_complete_withheld(void **st) {
  got g0;
  got_copy(&g0, 0);
  int n0 = g0.n_req;
  got_free(&g0);
  cseen s;
  cJSON *r;
  kv_err e;
  const char *text = "int a(void);\nstatic const char *token = \"" API_KEY "\"; int b = \n";
  assert_int_equal(complete_at("src/ledger.c", text, 2, (int)strlen("static const char *token = \"" API_KEY "\"; int b = "),
                               &s, &r, &e), 0);
  assert_string_equal(str(r, "tier"), "flash");
  assert_non_null(strstr(str(r, "fallback"), "cursor's line"));
  cJSON_Delete(r);
  assert_int_equal(complete_at("secrets/rotate.c", "const char *rotate_master_key(void) {\n  return ", 2, 9, &s, &r, &e), 0);
  assert_string_equal(str(r, "tier"), "flash");
  assert_non_null(strstr(str(r, "fallback"), "never_send"));
  cJSON_Delete(r);
  /* a one-line config: the secret's name lies more than 4000 bytes before
   * the cursor, on the cursor's own line: never cut off from its value */
  kv_buf b = KV_BUF_INIT;
  kv_buf_puts(&b, "{\"db_password\": \"" CANARY "\", \"pad\": \"");
  const size_t value_at = strlen("{\"db_password\": \""), tail = strlen("\", \"last\": ");
  while (b.len + tail < value_at + 3 + 4000) kv_buf_append(&b, "a", 1); /* 4000 bytes before the cursor: inside the value */
  kv_buf_puts(&b, "\", \"last\": ");
  char *one = kv_buf_detach(&b, NULL);
  assert_int_equal(complete_at("src/settings.json", one, 1, (int)strlen(one), &s, &r, &e), 0);
  assert_string_equal(str(r, "tier"), "flash");
  assert_true(strlen(str(r, "fallback")) > 0);
  cJSON_Delete(r);
  free(one);
  got g;
  got_copy(&g, 0);
  assert_int_equal(g.n_req, n0); /* nothing left the machine */
  got_free(&g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_local_default),
      cmocka_unit_test(test_infra_refused),
      cmocka_unit_test(test_hosted_strips_and_streams),
      cmocka_unit_test(test_path_bypasses),
      cmocka_unit_test(test_key_body_without_marker),
      cmocka_unit_test(test_secret_in_question),
      cmocka_unit_test(test_complete_hosted),
      cmocka_unit_test(test_complete_withheld),
      cmocka_unit_test(test_hosted_failure_falls_back),
      cmocka_unit_test(test_policy_cached),
      cmocka_unit_test(test_edit_applies_without_restart),
      cmocka_unit_test(test_broken_edit_keeps_last_good),
      cmocka_unit_test(test_sighup_reloads),
      cmocka_unit_test(test_broken_policy_refuses),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
