/*
 * test_ask_e2e.c — the whole path: start the real kvasird (a subprocess)
 * in temporary XDG directories, register a temporary git repository made of
 * real code from this project (repo.add, waiting for the index), ask about a
 * function, and check that the citations point at that function's file and
 * lines — the lines found independently here by scanning the file for the
 * definition. Then the same through the `kvasir ask` CLI, and a clean
 * `kvasir shutdown`.
 *
 * The model: $KVASIR_MODEL when set (the answer is generated and streamed);
 * otherwise the daemon's stub generator, so the test needs no model.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "itest.h"

static char root[64], repo[128];
static pid_t daemon_pid;

/* [l0, l1] of the C function whose definition line starts with `sig`. */
static void find_function(const char *path, const char *sig, int *l0, int *l1) {
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[4096];
  int n = 0;
  *l0 = *l1 = 0;
  while (fgets(line, sizeof line, f)) {
    n++;
    if (!*l0 && !strncmp(line, sig, strlen(sig))) *l0 = n;
    else if (*l0 && !*l1 && !strcmp(line, "}\n")) *l1 = n;
  }
  fclose(f);
  assert_true(*l0 > 0 && *l1 > *l0);
}

static int setup(void **st) {
  if (itest_xdg_root(root, sizeof root, "/tmp/kvasir-e2e-XXXXXX")) return 1;
  snprintf(repo, sizeof repo, "%s/repo", root);
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s && cd %s && git init -q . && cp %s/ipc/crypto.c %s/ipc/frame.c %s/ipc/rpc.c %s/base/base.c . "
           "&& git add -A && git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo, repo, KVASIR_SOURCE_DIR, KVASIR_SOURCE_DIR, KVASIR_SOURCE_DIR, KVASIR_SOURCE_DIR);
  itest_sh(cmd);
  const char *model = getenv("KVASIR_MODEL");
  int use_model = model && *model && access(model, R_OK) == 0;
  daemon_pid = use_model ? itest_spawn_daemon(root, "--model", model, (char *)NULL)
                         : itest_spawn_daemon(root, "--stub-generator", "1", (char *)NULL);
  return itest_wait_daemon();
}

static int teardown(void **st) {
  itest_stop_daemon(&daemon_pid);
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf %s", root);
  if (system(cmd) != 0) return 1;
  return 0;
}

typedef struct seen {
  int tokens, progress, context;
} seen;

static int on_note(void *ud, const char *method, const cJSON *params) {
  seen *s = ud;
  if (!strcmp(method, "ask.token")) s->tokens++;
  else if (!strcmp(method, "progress")) s->progress++;
  else if (!strcmp(method, "ask.context")) s->context++;
  return 0;
}

/* 1 when one citation is in `file` and overlaps [l0, l1]. */
static int cites(const cJSON *r, const char *file, int l0, int l1) {
  const cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(r, "citations")) {
    const char *p = cJSON_GetObjectItem(c, "path")->valuestring;
    int a = cJSON_GetObjectItem(c, "start_line")->valueint, b = cJSON_GetObjectItem(c, "end_line")->valueint;
    if (!strcmp(p, file) && a <= l1 && b >= l0) return 1;
  }
  return 0;
}

static void test_ask_cites_the_function(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "path", repo);
  cJSON_AddBoolToObject(p, "wait", 1);
  seen s = {0};
  assert_int_equal(ipc_client_call(c, "repo.add", p, on_note, &s, 120000, &r, &e), 0);
  assert_true(cJSON_GetObjectItem(cJSON_GetObjectItem(r, "index"), "files_indexed")->valueint == 4);
  cJSON_Delete(p);
  cJSON_Delete(r);

  struct {
    const char *question, *file, *sig;
  } cases[] = {
      {"How does ipc_secret_load check the permissions of the secret key file?", "crypto.c", "int ipc_secret_load("},
      {"What does kv_mkdirs do when creating directories?", "base.c", "int kv_mkdirs("},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char path[256];
    int l0, l1;
    snprintf(path, sizeof path, "%s/%s", repo, cases[i].file);
    find_function(path, cases[i].sig, &l0, &l1);
    p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "question", cases[i].question);
    cJSON_AddStringToObject(p, "repo", repo);
    cJSON_AddNumberToObject(p, "max_tokens", 24);
    memset(&s, 0, sizeof s);
    int rc = ipc_client_call(c, "ask", p, on_note, &s, 240000, &r, &e);
    if (rc) fail_msg("ask: %s", e.msg);
    if (!cites(r, cases[i].file, l0, l1)) {
      char *t = cJSON_Print(cJSON_GetObjectItem(r, "citations"));
      fail_msg("no citation of %s:%d-%d in %s", cases[i].file, l0, l1, t);
    }
    assert_int_equal(s.context, 1);
    assert_true(s.tokens > 0); /* the answer streamed */
    assert_true(strlen(cJSON_GetObjectItem(r, "answer")->valuestring) > 0);
    cJSON_Delete(p);
    cJSON_Delete(r);
  }
  /* The resident prefix: repo map + stable files, each one of the repo's. */
  assert_int_equal(ipc_client_call(c, "cache.stats", NULL, NULL, NULL, 30000, &r, &e), 0);
  const cJSON *pe, *f;
  int found = 0;
  cJSON_ArrayForEach(pe, cJSON_GetObjectItem(r, "entries")) {
    if (strcmp(cJSON_GetObjectItem(pe, "repo")->valuestring, repo)) continue;
    found = 1;
    int n = 0;
    cJSON_ArrayForEach(f, cJSON_GetObjectItem(pe, "stable_files")) {
      const char *fp = f->valuestring;
      assert_true(!strcmp(fp, "crypto.c") || !strcmp(fp, "frame.c") || !strcmp(fp, "rpc.c") || !strcmp(fp, "base.c"));
      n++;
    }
    assert_true(n >= 1);
  }
  assert_true(found);
  assert_true(cJSON_GetObjectItem(r, "prefix_builds")->valueint == 1); /* built once, */
  assert_true(cJSON_GetObjectItem(r, "prefix_hits")->valueint >= 1);   /* reused by the second ask */
  cJSON_Delete(r);
  ipc_client_close(c);
}

static void test_cli_ask_and_shutdown(void **st) {
  char cmd[1024], out[8192] = "";
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir ask --repo %s --max-tokens 8 'where is kv_mkdirs defined' 2>&1",
           KVASIR_BINARY_DIR, repo);
  FILE *f = popen(cmd, "r");
  assert_non_null(f);
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = 0;
  assert_int_equal(pclose(f), 0);
  assert_non_null(strstr(out, "Sources"));
  assert_non_null(strstr(out, "base.c:"));
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir status --json > /dev/null", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  /* the editor bridge: plain msgpack-rpc in, plain msgpack-rpc out */
  char bout[256];
  snprintf(bout, sizeof bout, "%s/bridge.out", root);
  snprintf(cmd, sizeof cmd, "(printf '\\224\\000\\007\\246status\\220'; sleep 1) | %s/cli/kvasir bridge > %s",
           KVASIR_BINARY_DIR, bout);
  itest_sh(cmd);
  char *raw;
  size_t rn;
  kv_err e;
  assert_int_equal(kv_read_file(bout, 1 << 20, &raw, &rn, &e), 0);
  ipc_msg m;
  if (ipc_msg_decode((const uint8_t *)raw, rn, &m, &e)) fail_msg("bridge output: %s", e.msg);
  assert_int_equal(m.type, IPC_RESPONSE);
  assert_int_equal(m.id, 7);
  assert_null(m.error);
  assert_true(cJSON_GetObjectItem(m.result, "protocol")->valueint == IPC_PROTOCOL_VERSION);
  ipc_msg_clear(&m);
  free(raw);
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir shutdown > /dev/null", KVASIR_BINARY_DIR);
  itest_sh(cmd);
  int status;
  assert_int_equal(waitpid(daemon_pid, &status, 0), daemon_pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  daemon_pid = 0;
  /* and the CLI says so clearly afterwards */
  snprintf(cmd, sizeof cmd, "%s/cli/kvasir status 2>&1", KVASIR_BINARY_DIR);
  f = popen(cmd, "r");
  n = fread(out, 1, sizeof out - 1, f);
  out[n] = 0;
  assert_int_not_equal(pclose(f), 0);
  assert_non_null(strstr(out, "not running"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_ask_cites_the_function),
      cmocka_unit_test(test_cli_ask_and_shutdown),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
