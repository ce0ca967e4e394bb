/*
 * index_jobs.c — the daemon's side of indexer/: the repo.* methods and the
 * sync job. repo.add and repo.sync register or resolve the repository on
 * the loop thread, then either answer at once (the sync runs in the
 * background) or, with "wait": true, run the sync as the request's own job
 * and stream `progress` notifications. Background syncs (at start, after a
 * watcher saw a change, after repo.add) are deduplicated: one queued sync
 * of a repo covers every change seen until it starts.
 *
 * Invariants: an index handle is opened per sync job and closed by it (the
 * indexer's SQLite WAL lets ask's readers run beside the one writer); the
 * job queue never runs two syncs of one repo at once (dmn_job.repo).
 */
#include <stdio.h>
#include <string.h>

#include "daemon/internal.h"
#include "indexer/indexer.h"

typedef struct sync_ud {
  dmn_job *j;
  double last;
} sync_ud;

static void on_sync_progress(const idx_progress *p, void *ud) {
  sync_ud *s = ud;
  double now = kv_now();
  if (now - s->last < 0.1 && p->files_done != p->files_total) return;
  s->last = now;
  cJSON *o = cJSON_CreateObject();
  if (!o) return;
  cJSON_AddNumberToObject(o, "id", s->j->req_id);
  cJSON_AddStringToObject(o, "label", "index");
  cJSON_AddStringToObject(o, "repo", s->j->repo);
  cJSON_AddNumberToObject(o, "done", (double)p->files_done);
  cJSON_AddNumberToObject(o, "total", (double)p->files_total);
  if (p->path) cJSON_AddStringToObject(o, "path", p->path);
  dmn_job_notify(s->j, "progress", o);
}

int dmn_index_sync(dmn_job *j, const char *abs, cJSON **stats, kv_err *err) {
  *stats = NULL;
  idx_index *ix;
  int rc = idx_open(&ix, abs, NULL, err);
  if (rc) return rc;
  idx_sync_stats st;
  memset(&st, 0, sizeof st);
  sync_ud ud = {j, 0};
  rc = idx_sync(ix, 0, on_sync_progress, &ud, &j->cancel, &st, err);
  idx_close(ix);
  if (rc) return rc;
  cJSON *o = idx_sync_stats_json(&st);
  if (!o) return kv_err_set(err, KV_ENOMEM, "out of memory");
  *stats = o;
  return 0;
}

/* The job body of every sync (background, or repo.add / repo.sync with wait). */
static int job_sync(dmn_job *j, cJSON **result, kv_err *err) {
  cJSON *stats = NULL;
  int rc = dmn_index_sync(j, j->repo, &stats, err);
  if (rc) {
    cJSON_Delete(stats);
    if (rc != KV_ECANCELED) dmn_log(j->srv, DMN_WARN, "repo.sync", "%s: %s", j->repo, err->msg);
    return rc;
  }
  dmn_repos_synced(dmn_server_repos(j->srv), j->repo, stats);
  dmn_log(j->srv, DMN_INFO, "repo.synced", "%s", j->repo);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "path", j->repo);
  if (stats) cJSON_AddItemToObject(o, "index", stats);
  *result = o;
  return 0;
}

int dmn_index_queue_sync(dmn_server *s, const char *abs, kv_err *err) {
  dmn_jobs *q = dmn_server_jobs(s);
  if (dmn_jobs_has_repo(q, "repo.sync", abs)) return 0; /* one queued sync covers all changes so far */
  dmn_job *j = dmn_job_new(s, 0, 0, "repo.sync", DMN_PRIO_BACKGROUND, NULL, job_sync);
  if (!j) return kv_err_set(err, KV_ENOMEM, "out of memory");
  snprintf(j->repo, sizeof j->repo, "%s", abs);
  return dmn_jobs_submit(q, j, err);
}

void dmn_index_changed(dmn_server *s, const char *abs) {
  kv_err e;
  if (dmn_index_queue_sync(s, abs, &e)) dmn_log(s, DMN_WARN, "repo.sync", "%s", e.msg);
}

/* repo.add and repo.sync once the repo is known (abs): with "wait" the sync
 * is this request's job, else a background one and the answer is now. */
static int sync_request(const dmn_request *r, const char *abs, cJSON **result, kv_err *err) {
  int rc;
  if (dmn_param_int(r->params, "wait", 1, 0)) {
    dmn_job *j = dmn_job_new(r->srv, r->conn_id, r->id, r->method, DMN_PRIO_BACKGROUND,
                             cJSON_Duplicate(r->params, 1), job_sync);
    if (!j) return kv_err_set(err, KV_ENOMEM, "out of memory");
    snprintf(j->repo, sizeof j->repo, "%s", abs);
    if ((rc = dmn_jobs_submit(dmn_server_jobs(r->srv), j, err))) return rc;
    return DMN_DEFERRED;
  }
  if ((rc = dmn_index_queue_sync(r->srv, abs, err))) return rc;
  *result = cJSON_CreateObject();
  cJSON_AddStringToObject(*result, "path", abs);
  cJSON_AddBoolToObject(*result, "sync_queued", 1);
  return 0;
}

int dmn_repo_add(const dmn_request *r, cJSON **result, kv_err *err) {
  const char *path = dmn_param_str(r->params, "path", 0);
  char abs[1024];
  if (!path) return kv_err_set(err, IPC_ERR_PARAMS, "repo.add: missing string param 'path'");
  int rc = dmn_repos_add(dmn_server_repos(r->srv), path, abs, sizeof abs, err);
  return rc ? rc : sync_request(r, abs, result, err);
}

int dmn_repo_sync(const dmn_request *r, cJSON **result, kv_err *err) {
  char abs[1024];
  int rc = dmn_repos_resolve(dmn_server_repos(r->srv), dmn_param_str(r->params, "path", 0), abs, sizeof abs, err);
  return rc ? rc : sync_request(r, abs, result, err);
}

int dmn_repo_remove(const dmn_request *r, cJSON **result, kv_err *err) {
  const char *path = dmn_param_str(r->params, "path", 0);
  if (!path) return kv_err_set(err, IPC_ERR_PARAMS, "repo.remove: missing string param 'path'");
  int rc = dmn_repos_remove(dmn_server_repos(r->srv), path, err);
  if (rc) return rc;
  *result = cJSON_CreateObject();
  cJSON_AddStringToObject(*result, "removed", path);
  return 0;
}

int dmn_repo_list(const dmn_request *r, cJSON **result, kv_err *err) {
  *result = dmn_repos_list(dmn_server_repos(r->srv));
  return *result ? 0 : kv_err_set(err, KV_ENOMEM, "repo.list: out of memory");
}
