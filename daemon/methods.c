/*
 * methods.c — the router: one table, METHODS, from method name to either an
 * inline handler (run on the loop thread: cheap calls such as `status`, or
 * a handler that decides on the loop thread and then queues a job itself,
 * as repo.add does) or a job body (run on a worker at the row's priority:
 * asks, completions, log work). Each handler lives in the file of the
 * module it drives (index_jobs.c, log_jobs.c, model.c / ask.c, policy.c);
 * the daemon's own methods (status, shutdown, cache.stats) are here. The
 * method list and each method's params and result are specified in
 * docs/protocol.md.
 *
 * Adding a request: one row here and one handler in the driven module's
 * file; nothing else routes.
 *
 * Invariants: every request gets exactly one response (error or result):
 * from here, or from the job / the deferring handler's job; params are read
 * only through dmn_param_* (params.c), which tolerate any shape.
 */
#include <string.h>

#include "daemon/internal.h"

static int m_status(const dmn_request *r, cJSON **result, kv_err *err) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return kv_err_set(err, KV_ENOMEM, "status: out of memory");
  dmn_server_status(r->srv, o);
  dmn_job_counts c;
  dmn_jobs_counts(dmn_server_jobs(r->srv), &c);
  cJSON *j = cJSON_AddObjectToObject(o, "jobs");
  if (j) {
    cJSON_AddNumberToObject(j, "queued_interactive", c.queued_interactive);
    cJSON_AddNumberToObject(j, "queued_background", c.queued_background);
    cJSON_AddNumberToObject(j, "running_interactive", c.running_interactive);
    cJSON_AddNumberToObject(j, "running_background", c.running_background);
    cJSON_AddNumberToObject(j, "active", c.queued_interactive + c.queued_background + c.running_interactive +
                                             c.running_background);
    cJSON_AddNumberToObject(j, "done", (double)c.done);
    cJSON_AddNumberToObject(j, "canceled", (double)c.canceled);
  }
  cJSON_AddNumberToObject(o, "repos", dmn_repos_count(dmn_server_repos(r->srv)));
  dmn_backend_status(dmn_server_backend(r->srv), o);
  *result = o;
  return 0;
}

static int m_shutdown(const dmn_request *r, cJSON **result, kv_err *err) {
  *result = cJSON_CreateObject();
  cJSON_AddBoolToObject(*result, "stopping", 1);
  dmn_server_stop(r->srv);
  return 0;
}

static int m_cache_stats(const dmn_request *r, cJSON **result, kv_err *err) {
  cJSON *o = dmn_backend_cache_stats(dmn_server_backend(r->srv));
  if (!o) return kv_err_set(err, KV_ENOMEM, "cache.stats: out of memory");
  dmn_gate_stats(dmn_server_gate(r->srv), o);
  dmn_logstores_stats(dmn_server_logstores(r->srv), o);
  *result = o;
  return 0;
}

static const struct {
  const char *name;
  dmn_inline_fn fn; /* inline handler, or NULL */
  dmn_job_fn job;   /* job body (when fn is NULL) */
  int prio;         /* of the job */
} METHODS[] = {
    {"status", m_status, NULL, 0},
    {"shutdown", m_shutdown, NULL, 0},
    {"cache.stats", m_cache_stats, NULL, 0},
    /* index_jobs.c */
    {"repo.add", dmn_repo_add, NULL, 0},   /* queues a background sync, or with wait runs it as its job */
    {"repo.sync", dmn_repo_sync, NULL, 0}, /* likewise */
    {"repo.remove", dmn_repo_remove, NULL, 0},
    {"repo.list", dmn_repo_list, NULL, 0},
    /* policy.c */
    {"policy.explain", dmn_policy_explain, NULL, 0},
    /* model.c */
    {"models.list", dmn_models_list, NULL, 0},
    /* ask.c */
    {"ask", NULL, dmn_job_ask, DMN_PRIO_INTERACTIVE},
    {"complete", NULL, dmn_job_complete, DMN_PRIO_INTERACTIVE},
    /* log_jobs.c */
    {"logs.ingest", NULL, dmn_job_logs_ingest, DMN_PRIO_BACKGROUND},
    {"logs.query", NULL, dmn_job_logs_query, DMN_PRIO_INTERACTIVE},
    {"logs.triage", NULL, dmn_job_logs_triage, DMN_PRIO_INTERACTIVE},
};

void dmn_route(dmn_server *s, const dmn_request *r) {
  cJSON *result = NULL;
  kv_err err = {0};
  int rc = 0;
  size_t i = 0, n = sizeof METHODS / sizeof METHODS[0];
  while (i < n && strcmp(METHODS[i].name, r->method)) i++;
  if (i == n) {
    rc = kv_err_set(&err, IPC_ERR_METHOD, "unknown method '%s'", r->method);
  } else if (METHODS[i].fn) {
    rc = METHODS[i].fn(r, &result, &err);
  } else {
    dmn_job *j = dmn_job_new(s, r->conn_id, r->id, r->method, METHODS[i].prio, cJSON_Duplicate(r->params, 1),
                             METHODS[i].job);
    if (!j) rc = kv_err_set(&err, KV_ENOMEM, "out of memory");
    else if (!(rc = dmn_jobs_submit(dmn_server_jobs(s), j, &err))) rc = DMN_DEFERRED;
  }
  if (rc == DMN_DEFERRED) return; /* the job answers */
  if (rc) {
    cJSON_Delete(result);
    result = NULL;
    dmn_log(s, DMN_INFO, "rpc.error", "conn=%llu request=%u method=%s code=%d %s", (unsigned long long)r->conn_id,
            r->id, r->method, rc, err.msg);
  }
  dmn_post_response(s, r->conn_id, r->id, rc, rc ? err.msg : NULL, result);
  cJSON_Delete(result);
}
