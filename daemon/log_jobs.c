/*
 * log_jobs.c — the daemon's side of logs/: logs.ingest (with progress
 * notifications and cancellation), logs.query and logs.triage, each a job
 * on a worker. Results are the logs module's own JSON (log_ingest_stats_json,
 * log_result_json, log_triage_json), the same fields `kvasir logs ... --json`
 * prints, plus "db", the store's path. logs.triage with `repo` (a path in a
 * registered repository) also links each item to the code that prints its
 * template: a `code` array [{path, line, score}] from idx_log_sites on the
 * repository's index (the join of logs/ and indexer/ happens here and in
 * cli/cmd_logs.c; neither module knows the other).
 *
 * Log stores stay open between logs.query / logs.triage requests: opening
 * one and loading its block summaries costs ~0.2 s at 8 M records, a query
 * on a warm handle a few ms. A log_db is not thread-safe, so a handle is
 * checked out by one job at a time (a concurrent query on the same store
 * opens another) and up to LOGSTORE_IDLE idle handles are kept, the least
 * recently used closed first. Reuse stays correct across ingests (ours or
 * another process's): a store only ever appends blocks, and each query
 * loads the summaries of blocks written since its handle's last one
 * (log_db_sums). A handle whose file was removed or replaced (another inode)
 * is closed instead. logs.ingest opens its own handle: the template miner
 * it loads must be the store's latest.
 *
 * Invariants: the idle set is guarded by its mutex; a handle that saw an
 * error other than bad params is closed, not kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon/internal.h"
#include "indexer/indexer.h"
#include "logs/logs.h"

#define LOGSTORE_IDLE 4

typedef struct logstore {
  log_db *db;
  char path[4096];
  dev_t dev;
  ino_t ino;
  double used;
} logstore;

struct dmn_logstores {
  pthread_mutex_t mu;
  logstore idle[LOGSTORE_IDLE];
  size_t n;
  uint64_t opens, reuses;
};

int dmn_logstores_new(dmn_logstores **out, kv_err *err) {
  dmn_logstores *ls = calloc(1, sizeof *ls);
  if (!ls) return kv_err_set(err, KV_ENOMEM, "log stores: out of memory");
  pthread_mutex_init(&ls->mu, NULL);
  *out = ls;
  return 0;
}

void dmn_logstores_free(dmn_logstores *ls) {
  if (!ls) return;
  for (size_t i = 0; i < ls->n; i++) log_db_close(ls->idle[i].db);
  pthread_mutex_destroy(&ls->mu);
  free(ls);
}

void dmn_logstores_stats(dmn_logstores *ls, cJSON *out) {
  cJSON *o = cJSON_AddObjectToObject(out, "log_stores");
  if (!o) return;
  pthread_mutex_lock(&ls->mu);
  cJSON_AddNumberToObject(o, "idle", (double)ls->n);
  cJSON_AddNumberToObject(o, "opens", (double)ls->opens);
  cJSON_AddNumberToObject(o, "reuses", (double)ls->reuses);
  pthread_mutex_unlock(&ls->mu);
}

/* A handle on the store at path for this job alone (*h), from the idle ones
 * when one is open on the same file, else opened now. */
static int logstore_get(dmn_logstores *ls, const char *path, logstore *h, kv_err *err) {
  memset(h, 0, sizeof *h);
  struct stat st;
  int exists = stat(path, &st) == 0;
  pthread_mutex_lock(&ls->mu);
  for (size_t i = 0; i < ls->n && !h->db;) {
    logstore *c = &ls->idle[i];
    if (strcmp(c->path, path)) {
      i++;
      continue;
    }
    if (exists && c->dev == st.st_dev && c->ino == st.st_ino) {
      *h = *c;
      ls->reuses++;
    } else {
      log_db_close(c->db); /* the file was removed or replaced */
    }
    ls->idle[i] = ls->idle[--ls->n];
  }
  pthread_mutex_unlock(&ls->mu);
  if (h->db) return 0;
  int rc = log_db_open(&h->db, path, err);
  if (rc) return rc;
  snprintf(h->path, sizeof h->path, "%s", path);
  if (stat(path, &st) == 0) h->dev = st.st_dev, h->ino = st.st_ino;
  pthread_mutex_lock(&ls->mu);
  ls->opens++;
  pthread_mutex_unlock(&ls->mu);
  return 0;
}

/* Back to the idle set (closing the least recently used when it is full). */
static void logstore_put(dmn_logstores *ls, logstore *h) {
  log_db *drop = NULL;
  h->used = kv_now();
  pthread_mutex_lock(&ls->mu);
  if (ls->n == LOGSTORE_IDLE) {
    size_t lru = 0;
    for (size_t i = 1; i < ls->n; i++)
      if (ls->idle[i].used < ls->idle[lru].used) lru = i;
    drop = ls->idle[lru].db;
    ls->idle[lru] = ls->idle[--ls->n];
  }
  ls->idle[ls->n++] = *h;
  pthread_mutex_unlock(&ls->mu);
  if (drop) log_db_close(drop);
}

typedef struct logs_ud {
  dmn_job *j;
  double last;
} logs_ud;

static void on_ingest_progress(void *ud, uint64_t done, uint64_t total, uint64_t records) {
  logs_ud *l = ud;
  double now = kv_now();
  if (now - l->last < 0.1) return;
  l->last = now;
  cJSON *o = cJSON_CreateObject();
  if (!o) return;
  cJSON_AddNumberToObject(o, "id", l->j->req_id);
  cJSON_AddStringToObject(o, "label", "ingest");
  cJSON_AddNumberToObject(o, "done", (double)done);
  cJSON_AddNumberToObject(o, "total", (double)total);
  cJSON_AddNumberToObject(o, "records", (double)records);
  dmn_job_notify(l->j, "progress", o);
}

static int logs_ingest(dmn_job *j, log_db *db, cJSON **res, kv_err *err) {
  const cJSON *paths = cJSON_IsObject(j->params) ? cJSON_GetObjectItemCaseSensitive(j->params, "paths") : NULL;
  int n = cJSON_GetArraySize(paths);
  if (!cJSON_IsArray(paths) || n < 1 || n > 4096)
    return kv_err_set(err, IPC_ERR_PARAMS, "logs.ingest: param 'paths' must be an array of 1..4096 absolute paths");
  const char **v = calloc((size_t)n, sizeof *v);
  if (!v) return kv_err_set(err, KV_ENOMEM, "out of memory");
  for (int i = 0; i < n; i++) {
    const cJSON *p = cJSON_GetArrayItem(paths, i);
    if (!cJSON_IsString(p) || p->valuestring[0] != '/') {
      free(v);
      return kv_err_set(err, IPC_ERR_PARAMS, "logs.ingest: paths[%d] is not an absolute path (stdin is not supported through the daemon)", i);
    }
    v[i] = p->valuestring;
  }
  logs_ud ud = {j, 0};
  log_ingest_opts o;
  memset(&o, 0, sizeof o);
  o.progress = on_ingest_progress;
  o.progress_ud = &ud;
  o.cancel = &j->cancel;
  log_ingest_stats st;
  memset(&st, 0, sizeof st);
  int rc = log_ingest(db, v, n, &o, &st, err);
  free(v);
  if (rc) return rc;
  *res = log_ingest_stats_json(&st);
  return 0;
}

static int logs_query(dmn_job *j, log_db *db, cJSON **res, kv_err *err) {
  log_query q;
  memset(&q, 0, sizeof q);
  q.since_ms = dmn_param_i64(j->params, "since_ms");
  q.until_ms = dmn_param_i64(j->params, "until_ms");
  q.template_id = dmn_param_i64(j->params, "template_id");
  q.limit = dmn_param_int(j->params, "limit", -1, 100);
  q.text = dmn_param_str(j->params, "text", -1);
  q.component = dmn_param_str(j->params, "component", -1);
  q.param = dmn_param_str(j->params, "param", -1);
  const char *lvl = dmn_param_str(j->params, "level", -1);
  if (lvl) q.min_level = log_level_word(lvl, strlen(lvl));
  log_result r;
  memset(&r, 0, sizeof r);
  int rc = log_query_run(db, &q, &r, err);
  if (rc) return rc;
  cJSON *rows = log_result_json(&r);
  log_result_free(&r);
  if (!rows || !(*res = cJSON_CreateObject())) {
    cJSON_Delete(rows);
    return kv_err_set(err, KV_ENOMEM, "logs.query: out of memory");
  }
  cJSON_AddItemToObject(*res, "rows", rows);
  return 0;
}

static int logs_triage(dmn_job *j, log_db *db, cJSON **res, kv_err *err) {
  log_triage_opts o;
  memset(&o, 0, sizeof o);
  o.since_ms = dmn_param_i64(j->params, "since_ms");
  o.until_ms = dmn_param_i64(j->params, "until_ms");
  o.limit = dmn_param_int(j->params, "limit", -1, 20);
  o.nbins = dmn_param_int(j->params, "nbins", -1, 24);
  log_triage t;
  memset(&t, 0, sizeof t);
  const char *repo = dmn_param_str(j->params, "repo", -1);
  char abs[1024] = "";
  idx_index *ix = NULL;
  int rc = 0;
  if (repo) { /* before the triage: a bad repo is a params error, the store handle stays */
    kv_err re = {0};
    if (dmn_repos_resolve(dmn_server_repos(j->srv), repo, abs, sizeof abs, &re))
      return kv_err_set(err, IPC_ERR_PARAMS, "logs.triage: param 'repo': %s", re.msg);
    if ((rc = idx_open(&ix, abs, NULL, err))) return rc;
  }
  rc = log_triage_run(db, &o, &t, err);
  if (rc) {
    if (ix) idx_close(ix);
    return rc;
  }
  *res = log_triage_json(&t);
  cJSON *items = *res ? cJSON_GetObjectItemCaseSensitive(*res, "items") : NULL;
  for (size_t i = 0; ix && items && i < t.n && !rc; i++) {
    if (dmn_job_canceled(j)) {
      rc = kv_err_set(err, KV_ECANCELED, "logs.triage: canceled");
      break;
    }
    idx_sites s;
    if ((rc = idx_log_sites(ix, t.items[i].template_text ? t.items[i].template_text : "", "<*>",
                            log_level_name(t.items[i].level), 3, &s, err))) break;
    cJSON *code = cJSON_AddArrayToObject(cJSON_GetArrayItem(items, (int)i), "code");
    for (size_t k = 0; code && k < s.n; k++) {
      cJSON *c = cJSON_CreateObject();
      cJSON_AddStringToObject(c, "path", s.v[k].path);
      cJSON_AddNumberToObject(c, "line", s.v[k].line);
      cJSON_AddNumberToObject(c, "score", s.v[k].score);
      cJSON_AddItemToArray(code, c);
    }
    idx_sites_free(&s);
  }
  if (ix) {
    if (*res) cJSON_AddStringToObject(*res, "repo", abs);
    idx_close(ix);
  }
  log_triage_free(&t);
  if (rc) {
    cJSON_Delete(*res);
    *res = NULL;
  }
  return rc;
}

typedef int (*logs_fn)(dmn_job *j, log_db *db, cJSON **res, kv_err *err);

/* The store named by params "name" ("default") or "db" (a path), opened
 * for this job (ingest) or taken from the idle set, then fn. */
static int with_store(dmn_job *j, int ingest, logs_fn fn, cJSON **result, kv_err *err) {
  const char *name = dmn_param_str(j->params, "name", -1);
  const char *store = dmn_param_str(j->params, "db", -1);
  if (!name) name = "default";
  if (strchr(name, '/') || name[0] == '.' || strlen(name) > 64)
    return kv_err_set(err, IPC_ERR_PARAMS, "%s: param 'name' must be a plain store name", j->method);
  char path[4096];
  int rc = 0;
  if (store) snprintf(path, sizeof path, "%s", store);
  else if ((rc = log_db_path(path, sizeof path, name, err))) return rc;
  dmn_logstores *ls = dmn_server_logstores(j->srv);
  logstore h;
  memset(&h, 0, sizeof h);
  if (ingest) rc = log_db_open(&h.db, path, err);
  else rc = logstore_get(ls, path, &h, err);
  if (rc) return rc;
  cJSON *res = NULL;
  rc = fn(j, h.db, &res, err);
  if (rc == 0 && !res) rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory", j->method);
  if (ingest || (rc && rc != IPC_ERR_PARAMS)) log_db_close(h.db); /* after an error: a fresh one next time */
  else logstore_put(ls, &h);
  if (rc) {
    cJSON_Delete(res);
    return rc;
  }
  cJSON_AddStringToObject(res, "db", path);
  *result = res;
  return 0;
}

int dmn_job_logs_ingest(dmn_job *j, cJSON **result, kv_err *err) { return with_store(j, 1, logs_ingest, result, err); }
int dmn_job_logs_query(dmn_job *j, cJSON **result, kv_err *err) { return with_store(j, 0, logs_query, result, err); }
int dmn_job_logs_triage(dmn_job *j, cJSON **result, kv_err *err) { return with_store(j, 0, logs_triage, result, err); }
