/*
 * internal.h — what the daemon's files above the server share and nothing
 * outside daemon/ may include. The files form layers, each calling only the
 * ones below it:
 *
 *   app.c                       builds the daemon, wires the server's hooks
 *   methods.c                   the METHODS table and the router
 *   ask.c model.c index_jobs.c  one file per module the daemon drives
 *   log_jobs.c policy.c         (engine, indexer, logs, policy)
 *   repos.c                     the registry of repositories and its watchers
 *   jobs.c                      the job queue and its workers
 *   server.c (server.h)         the loop, connections, outbox, logging
 *   params.c (params.h)         reading request params of any shape
 *
 * server.c reaches the layers above it only through the dmn_hooks that
 * app.c gives it; the repo watchers reach index jobs through a callback.
 *
 * Threads: the loop thread owns connections, sessions, handles and the repo
 * watchers. Worker threads own the job they run; they talk back only through
 * dmn_post() (outbox + uv_async) and read shared state under its mutex.
 */
#ifndef KVASIR_DAEMON_INTERNAL_H
#define KVASIR_DAEMON_INTERNAL_H

#include "daemon/params_internal.h"
#include "daemon/server_internal.h"

typedef struct dmn_job dmn_job;

/* The parts' state, as the server holds it (dmn_app in server.h). */
static inline dmn_jobs *dmn_server_jobs(dmn_server *s) { return dmn_server_app(s)->jobs; }
static inline dmn_repos *dmn_server_repos(dmn_server *s) { return dmn_server_app(s)->repos; }
static inline dmn_backend *dmn_server_backend(dmn_server *s) { return dmn_server_app(s)->backend; }
static inline dmn_gate *dmn_server_gate(dmn_server *s) { return dmn_server_app(s)->gate; }
static inline dmn_logstores *dmn_server_logstores(dmn_server *s) { return dmn_server_app(s)->logstores; }

/* ----------------------------------------------------------------- jobs.c */
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

/* ---------------------------------------------------------------- repos.c */
/* Called on the loop thread when a registered repo needs a sync: at load,
 * and when its watchers saw a change (debounced). */
typedef void (*dmn_repo_changed_fn)(dmn_server *s, const char *abs);
int dmn_repos_new(dmn_repos **out, dmn_server *s, const char *data_dir, dmn_repo_changed_fn changed, kv_err *err);
void dmn_repos_free(dmn_repos *r);
/* Registered paths (absolute) as a cJSON array of objects. Any thread. */
cJSON *dmn_repos_list(dmn_repos *r);
int dmn_repos_count(dmn_repos *r);
/* Loop thread: register (persisted), start watching. *abs receives the path. */
int dmn_repos_add(dmn_repos *r, const char *path, char *abs, size_t n, kv_err *err);
int dmn_repos_remove(dmn_repos *r, const char *path, kv_err *err);
/* The registered repo containing path (or the only one when path is NULL). */
int dmn_repos_resolve(dmn_repos *r, const char *path, char *abs, size_t n, kv_err *err);
/* Loop thread: re-read repos.json (SIGHUP). */
int dmn_repos_reload(dmn_repos *r, kv_err *err);
/* Completed syncs of a registered repo (0: not indexed yet, or unknown). Any thread. */
uint64_t dmn_repos_syncs(dmn_repos *r, const char *abs);
/* Worker: record the outcome of a sync. */
void dmn_repos_synced(dmn_repos *r, const char *abs, const cJSON *stats);
/* Loop thread: stop watchers (shutdown). */
void dmn_repos_close_watchers(dmn_repos *r);

/* ------------------------------------------- the driven modules' handlers */
/* An inline handler runs on the loop thread. It returns 0 with *result (the
 * router answers), a KV_E* code with err (the router answers the error), or
 * DMN_DEFERRED when it queued a job that will answer. */
#define DMN_DEFERRED 1
typedef int (*dmn_inline_fn)(const dmn_request *r, cJSON **result, kv_err *err);

/* index_jobs.c (indexer) */
int dmn_repo_add(const dmn_request *r, cJSON **result, kv_err *err);
int dmn_repo_sync(const dmn_request *r, cJSON **result, kv_err *err);
int dmn_repo_remove(const dmn_request *r, cJSON **result, kv_err *err);
int dmn_repo_list(const dmn_request *r, cJSON **result, kv_err *err);
/* Worker: sync the index of abs as part of job j (its progress goes to j's
 * connection; j's cancel flag stops it); *stats: what the indexer did. */
int dmn_index_sync(dmn_job *j, const char *abs, cJSON **stats, kv_err *err);
/* Loop thread: queue a background sync of abs (deduplicated). */
int dmn_index_queue_sync(dmn_server *s, const char *abs, kv_err *err);
/* The dmn_repo_changed_fn given to the registry. */
void dmn_index_changed(dmn_server *s, const char *abs);

/* log_jobs.c (logs): logs.ingest, logs.query, logs.triage. */
int dmn_logstores_new(dmn_logstores **out, kv_err *err);
void dmn_logstores_free(dmn_logstores *ls);
/* Adds "log_stores": {idle, opens, reuses}. */
void dmn_logstores_stats(dmn_logstores *ls, cJSON *out);
int dmn_job_logs_ingest(dmn_job *j, cJSON **result, kv_err *err);
int dmn_job_logs_query(dmn_job *j, cJSON **result, kv_err *err);
int dmn_job_logs_triage(dmn_job *j, cJSON **result, kv_err *err);

/* policy.c (policy): policy.explain; the gate itself is in daemon/policy_internal.h. */
int dmn_policy_explain(const dmn_request *r, cJSON **result, kv_err *err);
int dmn_gate_new(dmn_gate **out, dmn_server *s, kv_err *err);
void dmn_gate_free(dmn_gate *g);
/* SIGHUP: read every cached policy again now (an error is logged and the
 * last good policy stays) and reopen audit.db. */
void dmn_gate_reload(dmn_gate *g);
/* Adds "policy": {cached, hits, loads, load_errors, audit_opens, audit_reuses}. */
void dmn_gate_stats(dmn_gate *g, cJSON *out);

/* model.c (engine: loading, status, cache statistics) and ask.c (ask,
 * complete); the shared structs are in daemon/model_internal.h. */
int dmn_backend_new(dmn_backend **out, dmn_server *s, kv_err *err);
void dmn_backend_free(dmn_backend *b);
/* Adds "model": {path, state, error?, tier?, model?} (the default model;
 * tier/model: who answered last) and "models" (cap, loaded, last). */
void dmn_backend_status(dmn_backend *b, cJSON *out);
/* SIGHUP: retry a model that failed to load (path resolved again). */
void dmn_backend_reload(dmn_backend *b);
/* models.list: the registry (models.tsv) with each entry's tiers and state,
 * what is loaded, the memory cap. */
int dmn_models_list(const dmn_request *r, cJSON **result, kv_err *err);
/* The prefix cache's part of cache.stats. */
cJSON *dmn_backend_cache_stats(dmn_backend *b);
int dmn_job_ask(dmn_job *j, cJSON **result, kv_err *err);
int dmn_job_complete(dmn_job *j, cJSON **result, kv_err *err);

/* -------------------------------------------------------------- methods.c */
/* Routes one request through METHODS: answers inline methods at once and
 * queues the rest; every request gets exactly one response. */
void dmn_route(dmn_server *s, const dmn_request *r);

#endif
