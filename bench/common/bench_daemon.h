/*
 * bench_daemon.h — what a bench program needs to drive a real kvasird: the
 * server run in-process on a thread, inside fresh temporary XDG directories
 * (runtime, config, data, cache), a small git repository of this project's
 * own files for it to index, and a read of `status`. Bench programs include
 * this instead of the daemon tests' harness, so no bench depends on tests/.
 *
 * Header-only (static inline), so a program that uses a part of it gets no
 * unused-function warning. Invariants: bd_env points the four XDG variables
 * at directories under one fresh /tmp root (bd_cleanup removes it); bd_stop
 * joins the loop thread and frees the server, and is a no-op once done.
 */
#ifndef KVASIR_BENCH_COMMON_BENCH_DAEMON_H
#define KVASIR_BENCH_COMMON_BENCH_DAEMON_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "ipc/ipc.h"

typedef struct bd_daemon {
  char root[64];  /* the temporary XDG root */
  char repo[128]; /* the git repository made by bd_make_repo */
  dmn_server *s;
  pthread_t t;
} bd_daemon;

static inline void *bd_run(void *arg) {
  bd_daemon *h = arg;
  kv_err e;
  prctl(PR_SET_NAME, "dmn-loop"); /* the loop thread, for perf / top -H */
  dmn_server_run(h->s, &e);
  return NULL;
}

/* Points the XDG variables at fresh directories under /tmp. */
static inline void bd_env(bd_daemon *h) {
  snprintf(h->root, sizeof h->root, "/tmp/kvasir-bench-XXXXXX");
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

/* Starts the server (stub generator, one token per stub_ms) on a thread. */
static inline int bd_start(bd_daemon *h, int stub_ms, int workers, kv_err *e) {
  dmn_config c;
  dmn_config_default(&c);
  c.stub_token_ms = stub_ms;
  c.workers = workers;
  c.watch = 0;
  int rc = dmn_server_new(&h->s, &c, e);
  if (rc) return rc;
  return pthread_create(&h->t, NULL, bd_run, h) == 0 ? 0 : KV_EIO;
}

static inline void bd_stop(bd_daemon *h) {
  if (h->s) {
    dmn_server_stop(h->s);
    pthread_join(h->t, NULL);
    dmn_server_free(h->s);
    h->s = NULL;
  }
}

static inline void bd_cleanup(bd_daemon *h) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", h->root);
  if (system(cmd) != 0) fprintf(stderr, "cleanup of %s failed\n", h->root);
}

/* Copies files of this project (paths from its root) into a fresh git
 * repository (h->repo) with one commit. Returns 0 on success. */
static inline int bd_make_repo(bd_daemon *h, const char *source_dir, const char *const *files, int n) {
  snprintf(h->repo, sizeof h->repo, "%s/repo", h->root);
  kv_buf cmd = KV_BUF_INIT;
  kv_buf_printf(&cmd, "mkdir -p '%s' && cd '%s' && git init -q . ", h->repo, h->repo);
  for (int i = 0; i < n; i++) kv_buf_printf(&cmd, "&& cp '%s/%s' . ", source_dir, files[i]);
  kv_buf_puts(&cmd, "&& git add -A && git -c user.name=bench -c user.email=bench@example.com commit -qm init >/dev/null");
  int rc = kv_buf_ok(&cmd) ? system(kv_buf_str(&cmd)) : -1;
  kv_buf_free(&cmd);
  return rc;
}

/* `status` as a tree (caller frees), or NULL. */
static inline cJSON *bd_status(void) {
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return NULL;
  cJSON *r = NULL;
  ipc_client_call(c, "status", NULL, NULL, NULL, 5000, &r, &e);
  ipc_client_close(c);
  return r;
}

/* The number at a dotted path of a tree ("jobs.running"), or -1. */
static inline double bd_num(const cJSON *o, const char *path) {
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
