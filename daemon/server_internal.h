/*
 * server.h — the daemon's bottom layer (server.c): the event loop and its
 * connections, the outbox through which any thread replies, the logger, and
 * the hooks through which the server reaches the layers above it. Internal
 * to the daemon; the files above include it through daemon/internal.h.
 */
#ifndef KVASIR_DAEMON_SERVER_H
#define KVASIR_DAEMON_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "ipc/ipc.h"

/* The layers above, opaque here. */
typedef struct dmn_jobs dmn_jobs;
typedef struct dmn_repos dmn_repos;
typedef struct dmn_backend dmn_backend;     /* model.c: the engine's side */
typedef struct dmn_gate dmn_gate;           /* policy.c: policy + audit caches */
typedef struct dmn_logstores dmn_logstores; /* log_jobs.c: open log stores */

/* ------------------------------------------------------- server.c: logging */
enum { DMN_DEBUG = 0, DMN_INFO, DMN_WARN, DMN_ERROR };
/* One logfmt line on stderr: ts=... level=... event=... then the message. */
void dmn_log(const dmn_server *s, int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* -------------------------------------------------------- server.c: requests */
typedef struct dmn_request {
  dmn_server *srv;
  uint64_t conn_id;
  uint32_t id;
  const char *method;
  const cJSON *params;
} dmn_request;

/* What the server calls above it (app.c fills these in). Every hook runs
 * on the loop thread. */
typedef struct dmn_hooks {
  /* A request: answered exactly once, now or later (dmn_post_response). */
  void (*request)(dmn_server *s, const dmn_request *r);
  /* $/cancel: 1 when a job of (conn, id) was found. */
  int (*cancel)(dmn_server *s, uint64_t conn_id, uint32_t id);
  /* A connection went away: cancel its jobs (their replies are dropped);
   * returns how many. */
  int (*conn_gone)(dmn_server *s, uint64_t conn_id);
  /* Jobs the drain waits for (interactive ones and everything running). */
  int (*active)(dmn_server *s);
  /* The drain begins: background work stops. */
  void (*stopping)(dmn_server *s);
  /* The drain is over: cancel and join everything, close watchers. Called
   * once, before the connections are closed (the last replies go out). */
  void (*closing)(dmn_server *s);
  /* SIGHUP. */
  void (*reload)(dmn_server *s);
} dmn_hooks;

/* The state of the layers above the server, one slot per file that owns
 * some; the server only holds it. */
typedef struct dmn_app {
  dmn_jobs *jobs;
  dmn_repos *repos;
  dmn_backend *backend;
  dmn_gate *gate;
  dmn_logstores *logstores;
} dmn_app;

/* Takes the lock, binds the socket, sets up the loop, timers and signals;
 * no connection is accepted before dmn_server_run. */
int dmn_server_open(dmn_server **out, const dmn_config *cfg, const dmn_hooks *hooks, kv_err *err);
/* Closes every handle (hooks.closing first) and runs the loop until they
 * are gone; then the loop is closed. Idempotent. */
void dmn_server_shutdown(dmn_server *s);
/* Removes the socket, releases the lock, frees the server (after shutdown). */
void dmn_server_close(dmn_server *s);

/* Queues msgpack bytes (taken) for connection conn_id; any thread. Messages
 * for a connection that is gone are dropped. */
void dmn_post(dmn_server *s, uint64_t conn_id, uint8_t *msg, size_t n);
void dmn_post_response(dmn_server *s, uint64_t conn_id, uint32_t req_id, int rc, const char *errmsg,
                       const cJSON *result);
dmn_app *dmn_server_app(dmn_server *s);
const dmn_config *dmn_server_config(const dmn_server *s);
uv_loop_t *dmn_server_loop(dmn_server *s);
/* The fields of `status` owned by the server (connections, counters). */
void dmn_server_status(dmn_server *s, cJSON *out);

#endif
