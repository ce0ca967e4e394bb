/*
 * harness.h — runs a kvasird server in-process on a thread, inside fresh
 * temporary XDG directories (runtime, config, data, cache), for the daemon
 * tests and bench_ipc. Also makes a small git repository of real code.
 */
#ifndef KVASIR_TESTS_DAEMON_HARNESS_H
#define KVASIR_TESTS_DAEMON_HARNESS_H

#include <pthread.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "ipc/ipc.h"

typedef struct th {
  char root[64];
  char repo[128];
  dmn_server *s;
  pthread_t t;
} th;

static void *th_run(void *arg) {
  th *h = arg;
  kv_err e;
  prctl(PR_SET_NAME, "dmn-loop"); /* the loop thread, for perf / top -H */
  dmn_server_run(h->s, &e);
  return NULL;
}

/* Points the XDG variables at fresh directories under /tmp. */
static void th_env(th *h) {
  snprintf(h->root, sizeof h->root, "/tmp/kvasir-dmn-XXXXXX");
  if (!mkdtemp(h->root)) abort();
  const char *kinds[][2] = {{"XDG_RUNTIME_DIR", "run"}, {"XDG_CONFIG_HOME", "cfg"}, {"XDG_DATA_HOME", "data"},
                            {"XDG_CACHE_HOME", "cache"}};
  for (int i = 0; i < 4; i++) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", h->root, kinds[i][1]);
    kv_mkdirs(p, 0700, NULL);
    setenv(kinds[i][0], p, 1);
  }
}

static __attribute__((unused)) int th_start(th *h, int stub_ms, int workers, kv_err *e) {
  dmn_config c;
  dmn_config_default(&c);
  c.stub_token_ms = stub_ms;
  c.workers = workers;
  c.watch = 0;
  int rc = dmn_server_new(&h->s, &c, e);
  if (rc) return rc;
  return pthread_create(&h->t, NULL, th_run, h) == 0 ? 0 : KV_EIO;
}

static void th_stop(th *h) {
  if (h->s) {
    dmn_server_stop(h->s);
    pthread_join(h->t, NULL);
    dmn_server_free(h->s);
    h->s = NULL;
  }
}

static void th_cleanup(th *h) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->root);
  if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", h->root);
}

/* Copies real source files of this project into a fresh git repository
 * (h->repo) with one commit. Returns 0 on success. */
static __attribute__((unused)) int th_make_repo(th *h, const char *const *files, int n) {
  snprintf(h->repo, sizeof h->repo, "%s/repo", h->root);
  char cmd[4096];
  int w = snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cd '%s' && git init -q . ", h->repo, h->repo);
  for (int i = 0; i < n; i++)
    w += snprintf(cmd + w, sizeof cmd - (size_t)w, "&& cp '%s/%s' . ", KVASIR_SOURCE_DIR, files[i]);
  snprintf(cmd + w, sizeof cmd - (size_t)w,
           "&& git add -A && git -c user.name=test -c user.email=test@example.com commit -qm init >/dev/null");
  return system(cmd);
}

/* status as a tree (caller frees), or NULL. */
static __attribute__((unused)) cJSON *th_status(void) {
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return NULL;
  cJSON *r = NULL;
  ipc_client_call(c, "status", NULL, NULL, NULL, 5000, &r, &e);
  ipc_client_close(c);
  return r;
}

static __attribute__((unused)) double th_num(const cJSON *o, const char *path) {
  char key[64];
  const cJSON *v = o;
  while (v && *path) {
    size_t n = strcspn(path, ".");
    snprintf(key, sizeof key, "%.*s", (int)n, path);
    v = cJSON_GetObjectItemCaseSensitive(v, key);
    path += n + (path[n] == '.');
  }
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

#endif
