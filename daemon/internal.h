/*
 * internal.h — what the daemon's files share and nothing outside daemon/
 * may include: the server and connection structs, the job queue, the repo
 * registry and the structured logger.
 *
 * Threads: the loop thread owns connections, sessions, handles and the repo
 * watchers. Worker threads own the job they run; they talk back only through
 * dmn_post() (outbox + uv_async) and read shared state under its mutex.
 */
#ifndef KVASIR_DAEMON_INTERNAL_H
#define KVASIR_DAEMON_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "ipc/ipc.h"

typedef struct dmn_conn dmn_conn;
typedef struct dmn_job dmn_job;
typedef struct dmn_jobs dmn_jobs;
typedef struct dmn_repos dmn_repos;
typedef struct dmn_backend dmn_backend;

/* ---------------------------------------------------------------- logging */
enum { DMN_DEBUG = 0, DMN_INFO, DMN_WARN, DMN_ERROR };
/* One logfmt line on stderr: ts=... level=... event=... then the message. */
void dmn_log(const dmn_server *s, int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------- jobs */
enum { DMN_PRIO_INTERACTIVE = 0, DMN_PRIO_BACKGROUND = 1 };

/* Runs on a worker. Returns 0 with *result set, or a KV_E* code with err.
 * Should poll dmn_job_canceled() between units of work. */
typedef int (*dmn_job_fn)(dmn_job *j, cJSON **result, kv_err *err);

struct dmn_job {
  dmn_server *srv;
  uint64_t conn_id;      /* 0: internal job, no response is sent */
  uint32_t req_id;
  int prio;
  char method[48];
  cJSON *params;         /* owned */
  dmn_job_fn fn;
  volatile int cancel;   /* set with __atomic_store_n; polled by the job */
  int running;
  double t_queued;
  char repo[1024];       /* for repo jobs: the repository path */
  dmn_job *next;
};

int dmn_jobs_new(dmn_jobs **out, dmn_server *s, int workers, kv_err *err);
/* Cancels everything and joins the workers. */
void dmn_jobs_free(dmn_jobs *q);
dmn_job *dmn_job_new(dmn_server *s, uint64_t conn_id, uint32_t req_id, const char *method, int prio,
                     cJSON *params, dmn_job_fn fn);
/* Queues j (taking it). KV_EBUSY when the queue is full or stopping. */
int dmn_jobs_submit(dmn_jobs *q, dmn_job *j, kv_err *err);
/* Cancels the job for (conn, req): 1 if found. Queued jobs end at once. */
int dmn_jobs_cancel(dmn_jobs *q, uint64_t conn_id, uint32_t req_id);
/* Cancels every job of a connection (it went away): their results are dropped. */
int dmn_jobs_cancel_conn(dmn_jobs *q, uint64_t conn_id);
/* Cancels every job (only the background ones with only_background). */
void dmn_jobs_cancel_all(dmn_jobs *q, int only_background);
typedef struct dmn_job_counts {
  int queued_interactive, queued_background, running_interactive, running_background;
  uint64_t done, canceled;
} dmn_job_counts;
void dmn_jobs_counts(dmn_jobs *q, dmn_job_counts *c);
/* Whether a job with this method and repo is queued (not running): dedups syncs. */
int dmn_jobs_has_repo(dmn_jobs *q, const char *method, const char *repo);

static inline int dmn_job_canceled(const dmn_job *j) { return __atomic_load_n(&j->cancel, __ATOMIC_ACQUIRE); }
/* Sends a notification to the job's connection (params taken). */
void dmn_job_notify(dmn_job *j, const char *method, cJSON *params);

/* ----------------------------------------------------------------- server */
/* Queues msgpack bytes (taken) for connection conn_id; any thread. Messages
 * for a connection that is gone are dropped. */
void dmn_post(dmn_server *s, uint64_t conn_id, uint8_t *msg, size_t n);
void dmn_post_response(dmn_server *s, uint64_t conn_id, uint32_t req_id, int rc, const char *errmsg,
                       const cJSON *result);
dmn_jobs *dmn_server_jobs(dmn_server *s);
dmn_repos *dmn_server_repos(dmn_server *s);
dmn_backend *dmn_server_backend(dmn_server *s);
const dmn_config *dmn_server_config(const dmn_server *s);
uv_loop_t *dmn_server_loop(dmn_server *s);
/* The fields of `status` owned by the server (connections, counters). */
void dmn_server_status(dmn_server *s, cJSON *out);

/* ---------------------------------------------------------------- methods */
enum { DMN_INLINE = 0, DMN_JOB = 1 };
typedef struct dmn_request {
  dmn_server *srv;
  uint64_t conn_id;
  uint32_t id;
  const char *method;
  const cJSON *params;
} dmn_request;
/* Routes one request: answers inline methods at once and queues the rest.
 * Returns 0 when a response was (or will be) sent. */
int dmn_route(dmn_request *r);

/* ------------------------------------------------------------------ repos */
int dmn_repos_new(dmn_repos **out, dmn_server *s, const char *data_dir, kv_err *err);
void dmn_repos_free(dmn_repos *r);
/* Registered paths (absolute) as a cJSON array of objects. Any thread. */
cJSON *dmn_repos_list(dmn_repos *r);
int dmn_repos_count(dmn_repos *r);
/* Loop thread: register (persisted), start watching. *abs receives the path. */
int dmn_repos_add(dmn_repos *r, const char *path, char *abs, size_t n, kv_err *err);
int dmn_repos_remove(dmn_repos *r, const char *path, kv_err *err);
/* The registered repo containing path (or the only one when path is NULL). */
int dmn_repos_resolve(dmn_repos *r, const char *path, char *abs, size_t n, kv_err *err);
/* Loop thread: queue a background sync (deduplicated). */
int dmn_repos_queue_sync(dmn_repos *r, const char *abs, kv_err *err);
/* Loop thread: re-read repos.json (SIGHUP). */
int dmn_repos_reload(dmn_repos *r, kv_err *err);
/* Completed syncs of a registered repo (0: not indexed yet, or unknown). Any thread. */
uint64_t dmn_repos_syncs(dmn_repos *r, const char *abs);
/* Worker: record the outcome of a sync. */
void dmn_repos_synced(dmn_repos *r, const char *abs, const cJSON *stats);
/* Loop thread: stop watchers (shutdown). */
void dmn_repos_close_watchers(dmn_repos *r);
/* Job body of repo.sync (also used by repo.add with wait). */
int dmn_job_repo_sync(dmn_job *j, cJSON **result, kv_err *err);

/* --------------------------------------------------------------- backends */
/* The daemon's side of engine, indexer, logs and policy: model loading,
 * per-repo index handles and resident prompt prefixes. */
int dmn_backend_new(dmn_backend **out, dmn_server *s, kv_err *err);
void dmn_backend_free(dmn_backend *b);
void dmn_backend_status(dmn_backend *b, cJSON *out);
/* SIGHUP: retry a model that failed to load (path resolved again). */
void dmn_backend_reload(dmn_backend *b);
cJSON *dmn_backend_cache_stats(dmn_backend *b);
int dmn_job_ask(dmn_job *j, cJSON **result, kv_err *err);
int dmn_job_complete(dmn_job *j, cJSON **result, kv_err *err);
int dmn_job_logs(dmn_job *j, cJSON **result, kv_err *err);
int dmn_policy_explain(dmn_server *s, const cJSON *params, cJSON **result, kv_err *err);
/* Sync the index of repo abs (progress via job notifications). */
int dmn_backend_sync(dmn_backend *b, dmn_job *j, const char *abs, cJSON **stats, kv_err *err);

/* ------------------------------------------------------------ json params */
const char *dmn_param_str(const cJSON *params, const char *key, int index);
int dmn_param_int(const cJSON *params, const char *key, int index, int def);

#endif
