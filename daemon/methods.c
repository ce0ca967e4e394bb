/*
 * methods.c — the router: one table from method name to an inline handler
 * (answered on the loop thread, for cheap calls such as `status`) or a job
 * (run on a worker: asks, completions, syncs, log work). The method list and
 * each method's params and result are specified in docs/protocol.md.
 *
 * Invariants: every request gets exactly one response (error or result);
 * params are read only through dmn_param_* which tolerate any shape.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/internal.h"

/* params may be a map, [map] (rpcrequest-style argument lists) or positional
 * [a, b, ...] where `index` names the position (-1: no positional form). */
static const cJSON *param(const cJSON *params, const char *key, int index) {
  if (cJSON_IsObject(params)) return cJSON_GetObjectItemCaseSensitive(params, key);
  if (!cJSON_IsArray(params)) return NULL;
  const cJSON *first = cJSON_GetArrayItem(params, 0);
  if (cJSON_IsObject(first)) return cJSON_GetObjectItemCaseSensitive(first, key);
  return index >= 0 ? cJSON_GetArrayItem(params, index) : NULL;
}

const char *dmn_param_str(const cJSON *params, const char *key, int index) {
  const cJSON *v = param(params, key, index);
  return cJSON_IsString(v) ? v->valuestring : NULL;
}

int dmn_param_int(const cJSON *params, const char *key, int index, int def) {
  const cJSON *v = param(params, key, index);
  if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
  if (!cJSON_IsNumber(v) || v->valuedouble < -2e9 || v->valuedouble > 2e9) return def;
  return (int)v->valuedouble;
}

typedef int (*inline_fn)(dmn_request *r, cJSON **result, kv_err *err);

static int m_status(dmn_request *r, cJSON **result, kv_err *err) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return kv_err_set(err, KV_ENOMEM, "status: out of memory");
  dmn_server_status(r->srv, o);
  cJSON_AddNumberToObject(o, "repos", dmn_repos_count(dmn_server_repos(r->srv)));
  dmn_backend_status(dmn_server_backend(r->srv), o);
  *result = o;
  return 0;
}

static int m_shutdown(dmn_request *r, cJSON **result, kv_err *err) {
  *result = cJSON_CreateObject();
  cJSON_AddBoolToObject(*result, "stopping", 1);
  dmn_server_stop(r->srv);
  return 0;
}

static int m_cache_stats(dmn_request *r, cJSON **result, kv_err *err) {
  *result = dmn_backend_cache_stats(dmn_server_backend(r->srv));
  return *result ? 0 : kv_err_set(err, KV_ENOMEM, "cache.stats: out of memory");
}

static int m_repo_list(dmn_request *r, cJSON **result, kv_err *err) {
  *result = dmn_repos_list(dmn_server_repos(r->srv));
  return *result ? 0 : kv_err_set(err, KV_ENOMEM, "repo.list: out of memory");
}

static int m_repo_remove(dmn_request *r, cJSON **result, kv_err *err) {
  const char *path = dmn_param_str(r->params, "path", 0);
  if (!path) return kv_err_set(err, IPC_ERR_PARAMS, "repo.remove: missing string param 'path'");
  int rc = dmn_repos_remove(dmn_server_repos(r->srv), path, err);
  if (rc) return rc;
  *result = cJSON_CreateObject();
  cJSON_AddStringToObject(*result, "removed", path);
  return 0;
}

static int m_policy_explain(dmn_request *r, cJSON **result, kv_err *err) {
  return dmn_policy_explain(r->srv, r->params, result, err);
}

/* repo.add and repo.sync: register / resolve on the loop thread, then either
 * answer now (the sync runs in the background) or, with "wait": true, run
 * the sync as this request's job and stream progress. */
static int repo_request(dmn_request *r, int add, cJSON **result, kv_err *err, int *queued) {
  const char *path = dmn_param_str(r->params, "path", 0);
  char abs[1024];
  dmn_repos *repos = dmn_server_repos(r->srv);
  int rc;
  if (add) {
    if (!path) return kv_err_set(err, IPC_ERR_PARAMS, "repo.add: missing string param 'path'");
    rc = dmn_repos_add(repos, path, abs, sizeof abs, err);
  } else {
    rc = dmn_repos_resolve(repos, path, abs, sizeof abs, err);
  }
  if (rc) return rc;
  if (dmn_param_int(r->params, "wait", 1, 0)) {
    dmn_job *j = dmn_job_new(r->srv, r->conn_id, r->id, add ? "repo.add" : "repo.sync", DMN_PRIO_BACKGROUND,
                             cJSON_Duplicate(r->params, 1), dmn_job_repo_sync);
    if (!j) return kv_err_set(err, KV_ENOMEM, "out of memory");
    snprintf(j->repo, sizeof j->repo, "%s", abs);
    if ((rc = dmn_jobs_submit(dmn_server_jobs(r->srv), j, err))) return rc;
    *queued = 1;
    return 0;
  }
  if ((rc = dmn_repos_queue_sync(repos, abs, err))) return rc;
  *result = cJSON_CreateObject();
  cJSON_AddStringToObject(*result, "path", abs);
  cJSON_AddBoolToObject(*result, "sync_queued", 1);
  return 0;
}

static const struct {
  const char *name;
  inline_fn fn;       /* inline handler, or NULL */
  dmn_job_fn job;     /* job body, or NULL */
  int prio;
} METHODS[] = {
    {"status", m_status, NULL, 0},
    {"shutdown", m_shutdown, NULL, 0},
    {"cache.stats", m_cache_stats, NULL, 0},
    {"repo.list", m_repo_list, NULL, 0},
    {"repo.remove", m_repo_remove, NULL, 0},
    {"repo.add", NULL, NULL, DMN_PRIO_BACKGROUND},  /* special-cased: repo_request */
    {"repo.sync", NULL, NULL, DMN_PRIO_BACKGROUND}, /* special-cased: repo_request */
    {"policy.explain", m_policy_explain, NULL, 0},
    {"ask", NULL, dmn_job_ask, DMN_PRIO_INTERACTIVE},
    {"complete", NULL, dmn_job_complete, DMN_PRIO_INTERACTIVE},
    {"logs.ingest", NULL, dmn_job_logs, DMN_PRIO_BACKGROUND},
    {"logs.query", NULL, dmn_job_logs, DMN_PRIO_INTERACTIVE},
    {"logs.triage", NULL, dmn_job_logs, DMN_PRIO_INTERACTIVE},
};

int dmn_route(dmn_request *r) {
  cJSON *result = NULL;
  kv_err err = {0};
  int rc = 0, queued = 0;
  size_t i = 0, n = sizeof METHODS / sizeof METHODS[0];
  while (i < n && strcmp(METHODS[i].name, r->method)) i++;
  if (i == n) {
    rc = kv_err_set(&err, IPC_ERR_METHOD, "unknown method '%s'", r->method);
  } else if (!strcmp(r->method, "repo.add") || !strcmp(r->method, "repo.sync")) {
    rc = repo_request(r, !strcmp(r->method, "repo.add"), &result, &err, &queued);
  } else if (METHODS[i].fn) {
    rc = METHODS[i].fn(r, &result, &err);
  } else {
    dmn_job *j = dmn_job_new(r->srv, r->conn_id, r->id, r->method, METHODS[i].prio, cJSON_Duplicate(r->params, 1),
                             METHODS[i].job);
    if (!j) rc = kv_err_set(&err, KV_ENOMEM, "out of memory");
    else if (!(rc = dmn_jobs_submit(dmn_server_jobs(r->srv), j, &err))) queued = 1;
  }
  if (queued) return 0;
  if (rc) {
    cJSON_Delete(result);
    result = NULL;
    dmn_log(r->srv, DMN_INFO, "rpc.error", "conn=%llu request=%u method=%s code=%d %s",
            (unsigned long long)r->conn_id, r->id, r->method, rc, err.msg);
  }
  dmn_post_response(r->srv, r->conn_id, r->id, rc, rc ? err.msg : NULL, result);
  cJSON_Delete(result);
  return 0;
}
