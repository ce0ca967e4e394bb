/*
 * itest.h — what the integration tests share: a temporary root holding
 * private XDG runtime/config/data/cache directories (so a test's daemon,
 * keys and indexes never touch the user's), and waiting until a started
 * kvasird accepts an authenticated connection.
 */
#ifndef KVASIR_ITEST_H
#define KVASIR_ITEST_H
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

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
#endif
