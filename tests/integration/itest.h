/*
 * itest.h — what the integration tests share: a temporary root holding
 * private XDG runtime/config/data/cache directories (so a test's daemon,
 * keys and indexes never touch the user's), starting and stopping the
 * build's kvasird, waiting until it accepts an authenticated connection,
 * and the small steps every test takes (a shell command that must succeed,
 * a nap, one call on a fresh connection). Include it after <cmocka.h>.
 */
#ifndef KVASIR_ITEST_H
#define KVASIR_ITEST_H
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"

/* mkdtemp(tmpl) into root (size n) and point XDG_* below it. 0 on success. */
static inline int itest_xdg_root(char *root, size_t n, const char *tmpl) {
  snprintf(root, n, "%s", tmpl);
  if (!mkdtemp(root)) return 1;
  const char *kinds[][2] = {{"XDG_RUNTIME_DIR", "run"}, {"XDG_CONFIG_HOME", "cfg"}, {"XDG_DATA_HOME", "data"},
                            {"XDG_CACHE_HOME", "cache"}};
  for (int i = 0; i < 4; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, kinds[i][1]);
    if (kv_mkdirs(p, 0700, NULL)) return 1;
    setenv(kinds[i][0], p, 1);
  }
  return 0;
}

/* Runs cmd with system(); a failure fails the test, naming cmd. */
static inline void itest_sh(const char *cmd) {
  if (system(cmd) != 0) fail_msg("command failed: %s", cmd);
}

static inline void itest_nap(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One call of method on a new connection: the result (caller frees), or
 * NULL with *e set. */
static inline cJSON *itest_call(const char *method, cJSON *params, int timeout_ms, kv_err *e) {
  ipc_client *c;
  if (ipc_client_connect(&c, NULL, NULL, e)) return NULL;
  cJSON *r = NULL;
  ipc_client_call(c, method, params, NULL, NULL, timeout_ms, &r, e);
  ipc_client_close(c);
  return r;
}

/* Poll (25 ms steps, up to ~5 s) until the daemon completes a handshake. */
static inline int itest_wait_daemon(void) {
  for (int i = 0; i < 200; i++) {
    ipc_client *c;
    kv_err e;
    if (ipc_client_connect(&c, NULL, NULL, &e) == 0) {
      ipc_client_close(c);
      return 0;
    }
    struct timespec ts = {0, 25 * 1000000L};
    nanosleep(&ts, NULL);
  }
  return 1;
}

/* Start the build's kvasird --foreground --no-watch, then the NULL-ended
 * extra arguments, its stderr appended to root/kvasird.log. The child's
 * pid, or -1 when fork failed; wait for it with itest_wait_daemon. */
static inline pid_t itest_spawn_daemon(const char *root, ...) {
  char exe[512];
  snprintf(exe, sizeof exe, "%s/daemon/kvasird", KVASIR_BINARY_DIR);
  const char *argv[32] = {exe, "--foreground", "--no-watch"};
  int n = 3;
  va_list ap;
  va_start(ap, root);
  for (const char *a; n < 31 && (a = va_arg(ap, const char *));) argv[n++] = a;
  va_end(ap);
  argv[n] = NULL;
  pid_t pid = fork();
  if (pid == 0) {
    char log[4200];
    snprintf(log, sizeof log, "%s/kvasird.log", root);
    if (!freopen(log, "a", stderr)) _exit(127);
    execv(exe, (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* SIGTERM the daemon *pid (if any) and reap it; *pid becomes 0. */
static inline void itest_stop_daemon(pid_t *pid) {
  if (*pid <= 0) return;
  kill(*pid, SIGTERM);
  int status;
  waitpid(*pid, &status, 0);
  *pid = 0;
}
#endif
