/*
 * test_signals.c — kvasird as users run it: `kvasir daemon` detaches and
 * returns once the socket listens; a second `kvasir daemon` finds it running;
 * SIGHUP reloads (and it keeps serving); SIGTERM drains: an ask that is
 * streaming finishes with its full answer, then the daemon exits cleanly,
 * removing its socket. Logs are logfmt lines in the runtime dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "itest.h"

static char root[64], repo[128];
static pid_t daemon_pid; /* killed by teardown if a check failed midway */

static cJSON *call(const char *method, cJSON *params, kv_err *e) { return itest_call(method, params, 30000, e); }

static int log_has(const char *needle) {
  char path[256], *text;
  size_t n;
  kv_err e;
  snprintf(path, sizeof path, "%s/run/kvasir/kvasird.log", root);
  if (kv_read_file(path, 1 << 22, &text, &n, &e)) return 0;
  int found = strstr(text, needle) != NULL;
  free(text);
  return found;
}

typedef struct ask_res {
  int rc, tokens;
  char msg[512];
} ask_res;

static int on_tok(void *ud, const char *m, const cJSON *p) {
  const cJSON *kind = cJSON_GetObjectItem(p, "kind");
  if (!strcmp(m, "ask.token") && !(cJSON_IsString(kind) && !strcmp(kind->valuestring, "facts")))
    ((ask_res *)ud)->tokens++; /* generated tokens, not the grounded lead */
  return 0;
}

static void *long_ask(void *arg) {
  ask_res *a = arg;
  ipc_client *c;
  kv_err e;
  if ((a->rc = ipc_client_connect(&c, NULL, NULL, &e))) return NULL;
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "question", "kv_mkdirs");
  cJSON_AddStringToObject(p, "repo", repo);
  cJSON_AddNumberToObject(p, "max_tokens", 300); /* 300 x 5 ms = 1.5 s, under the 5 s drain */
  a->rc = ipc_client_call(c, "ask", p, on_tok, a, 30000, &r, &e);
  snprintf(a->msg, sizeof a->msg, "%s", e.msg);
  cJSON_Delete(p);
  cJSON_Delete(r);
  ipc_client_close(c);
  return NULL;
}

static void test_daemon_lifecycle(void **st) {
  assert_int_equal(itest_xdg_root(root, sizeof root, "/tmp/kvasir-sig-XXXXXX"), 0);
  snprintf(repo, sizeof repo, "%s/repo", root);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s && cd %s && git init -q . && cp %s/base/base.c . && git add -A && "
           "git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo, repo, KVASIR_SOURCE_DIR);
  itest_sh(cmd);
  /* detached start: returns once listening */
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir daemon --no-watch --stub-generator 5", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  kv_err e;
  cJSON *st0 = call("status", NULL, &e);
  assert_non_null(st0);
  pid_t pid = (pid_t)cJSON_GetObjectItem(st0, "pid")->valuedouble;
  cJSON_Delete(st0);
  assert_true(pid > 0 && pid != getpid());
  daemon_pid = pid;
  /* a second start finds it */
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir daemon 2>&1 | grep -q 'already running'", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  /* register the repo through the CLI, with progress and the index summary */
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir repo add %s | grep -q 'indexed'", KVASIR_BINARY_DIR, repo);
  itest_sh(cmd);
  /* SIGHUP: reload, keep serving */
  assert_int_equal(kill(pid, SIGHUP), 0);
  for (int i = 0; i < 100 && !log_has("event=daemon.reload"); i++) itest_nap(20);
  assert_true(log_has("event=daemon.reload"));
  cJSON *st1 = call("status", NULL, &e);
  assert_non_null(st1);
  assert_true(cJSON_GetObjectItem(st1, "repos")->valueint == 1);
  cJSON_Delete(st1);
  /* SIGTERM while an ask streams: the ask completes, then the daemon exits */
  ask_res a = {0};
  pthread_t t;
  pthread_create(&t, NULL, long_ask, &a);
  for (int i = 0; i < 200 && a.tokens < 5; i++) itest_nap(10);
  assert_true(a.tokens >= 5);
  assert_int_equal(kill(pid, SIGTERM), 0);
  pthread_join(t, NULL);
  if (a.rc) fail_msg("ask during drain: %s", a.msg);
  assert_int_equal(a.tokens, 300);
  int gone = 0;
  for (int i = 0; i < 300 && !gone; i++) {
    gone = kill(pid, 0) != 0;
    if (!gone) itest_nap(20);
  }
  assert_true(gone);
  daemon_pid = 0;
  char sock[256];
  ipc_socket_path(sock, sizeof sock);
  assert_int_not_equal(access(sock, F_OK), 0);
  assert_true(log_has("event=daemon.stop"));
  assert_true(log_has("stopped cleanly"));
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  itest_sh(cmd);
}

static int teardown(void **st) {
  if (daemon_pid > 0) kill(daemon_pid, SIGKILL);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_daemon_lifecycle, teardown)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
