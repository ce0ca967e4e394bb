/*
 * daemon — kvasird: one libuv loop that accepts encrypted connections
 * (ipc/), routes msgpack-rpc requests, and runs long work (indexing,
 * generation, log ingestion) on worker threads behind a priority job queue
 * with cancellation and progress notifications. Prefix: dmn_.
 *
 * The server is a library (kv_daemon) so tests and benches can run one
 * in-process on a thread; daemon/main.c is the `kvasird` executable.
 */
#ifndef KVASIR_DAEMON_H
#define KVASIR_DAEMON_H

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dmn_config {
  const char *runtime_dir;  /* NULL: kv_xdg_dir("runtime"); holds the socket and the lock */
  const char *secret_path;  /* NULL: ipc_secret_path(); created (0600) when missing */
  const char *data_dir;     /* NULL: kv_xdg_dir("data"); holds repos.json */
  const char *model_path;   /* NULL: $KVASIR_MODEL, else the engine's default if it exists */
  uint64_t model_memory;    /* cap on loaded local models (files + KV), bytes; 0: model_memory_frac */
  double model_memory_frac; /* ... as a fraction of RAM; both 0: config.yaml model_memory, else 0.75 */
  int workers;              /* worker threads; 0 = 3 (one always kept for interactive jobs) */
  int stub_token_ms;        /* > 0: no model; a built-in generator streams the retrieved
                               citations as tokens, one every stub_token_ms (tests) */
  int handle_signals;       /* SIGTERM/SIGINT drain and exit, SIGHUP reloads */
  int watch;                /* re-index registered repos on HEAD moves / saves (default 1) */
  int verbose;              /* debug-level logs */
  int max_unauth;           /* unauthenticated connections at once; 0 = 64. One more drops
                               the one that has sent nothing for longest */
  int idle_timeout_ms;      /* authenticated connections with no request in flight and no
                               traffic for this long are closed; 0 = 10 min, < 0 = never */
} dmn_config;

void dmn_config_default(dmn_config *c);

typedef struct dmn_server dmn_server;

/* Takes the single-instance lock (flock on <runtime>/kvasird.lock: KV_EBUSY
 * when another daemon holds it), loads or creates the user's secret, binds
 * <runtime>/kvasird.sock (dir 0700, socket 0600) and loads the repo
 * registry. Nothing runs until dmn_server_run. */
int dmn_server_new(dmn_server **out, const dmn_config *cfg, kv_err *err);
/* Runs the loop on the calling thread until shutdown (request, signal or
 * dmn_server_stop); then drains jobs and closes every connection. */
int dmn_server_run(dmn_server *s, kv_err *err);
/* Asks the loop to drain and stop; safe from any thread or signal context. */
void dmn_server_stop(dmn_server *s);
/* Removes the socket, releases the lock, frees everything. */
void dmn_server_free(dmn_server *s);
const char *dmn_server_socket(const dmn_server *s);

/* The kvasird command line (--foreground, --help, ...). */
int dmn_main(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
