/*
 * backend.c — the daemon's side of the other modules: loading the model
 * once, syncing a repository's index with progress notifications, log
 * ingestion / queries / triage, and policy explanations. Asks and
 * completions live in ask.c.
 *
 * Invariants: the model is opened at most once (under mu) and is immutable
 * afterwards, so any worker may use it; index handles are opened per job
 * (the indexer's SQLite WAL lets readers run beside the one writer); log
 * stores stay open between queries (dmn_logstores below), one job per
 * handle at a time.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/backend.h"
#if DMN_HAVE_LOGS
#include "logs/logs.h"
#endif
#if DMN_HAVE_POLICY
#include "policy/policy.h"
#endif
#include "daemon/gate.h"

static int logstores_new(struct dmn_logstores **out, kv_err *err);
static void logstores_free(struct dmn_logstores *ls);
static void logstores_stats(struct dmn_logstores *ls, cJSON *out);

/* The model path: --model, else $KVASIR_MODEL, else the engine's default
 * when that file exists (else empty). Called with b->mu held or before use. */
static void resolve_model_path(dmn_backend *b) {
  const dmn_config *c = dmn_server_config(b->srv);
  const char *env = getenv("KVASIR_MODEL");
  if (c->model_path) snprintf(b->model_path, sizeof b->model_path, "%s", c->model_path);
  else if (env && *env) snprintf(b->model_path, sizeof b->model_path, "%s", env);
#if DMN_HAVE_ENGINE
  else if (eng_default_model_path(b->model_path, sizeof b->model_path) || access(b->model_path, R_OK) != 0)
    b->model_path[0] = 0;
#endif
}

int dmn_backend_new(dmn_backend **out, dmn_server *s, kv_err *err) {
  dmn_backend *b = calloc(1, sizeof *b);
  if (!b) return kv_err_set(err, KV_ENOMEM, "backend: out of memory");
  b->srv = s;
  pthread_mutex_init(&b->mu, NULL);
  resolve_model_path(b);
  int rc = dmn_gate_new(&b->gate, s, err);
  if (!rc) rc = logstores_new(&b->logstores, err);
  if (rc) {
    dmn_backend_free(b);
    return rc;
  }
  *out = b;
  return 0;
}

void dmn_backend_reload(dmn_backend *b) {
  pthread_mutex_lock(&b->mu);
  if (b->model_state < 0) { /* e.g. the model was fetched after the daemon started */
    b->model_state = 0;
    resolve_model_path(b);
    dmn_log(b->srv, DMN_INFO, "daemon.reload", "model will be loaded again on the next ask (%s)",
            b->model_path[0] ? b->model_path : "no model found");
  }
  pthread_mutex_unlock(&b->mu);
  dmn_gate_reload(b->gate); /* the policy files of every cached repo, read now */
}

void dmn_backend_free(dmn_backend *b) {
  if (!b) return;
  dmn_prefix *p = b->prefixes;
  while (p) {
    dmn_prefix *n = p->next;
#if DMN_HAVE_ENGINE
    if (p->ctx) eng_ctx_free(p->ctx);
#endif
    pthread_mutex_destroy(&p->mu);
    free(p->text);
    cJSON_Delete(p->stable);
    free(p);
    p = n;
  }
#if DMN_HAVE_ENGINE
  if (b->model) eng_model_free(b->model);
#endif
  dmn_gate_free(b->gate);
  logstores_free(b->logstores);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

int dmn_backend_model(dmn_backend *b, eng_model **out, kv_err *err) {
  *out = NULL;
  if (dmn_server_config(b->srv)->stub_token_ms > 0)
    return kv_err_set(err, KV_EUNSUPPORTED, "stub generator configured (no model)");
  pthread_mutex_lock(&b->mu);
  int rc = 0;
  if (b->model_state == 0) {
    if (!b->model_path[0]) {
      b->model_state = -1;
      snprintf(b->model_err, sizeof b->model_err,
               "no model: set KVASIR_MODEL or run `scripts/fetch-model smollm2`");
    } else {
#if DMN_HAVE_ENGINE
      kv_err e;
      double t0 = kv_now();
      if (eng_model_open(&b->model, b->model_path, &e) == 0) {
        b->model_state = 1;
        dmn_log(b->srv, DMN_INFO, "model.load", "%s loaded in %.2f s", b->model_path, kv_now() - t0);
      } else {
        b->model_state = -1;
        snprintf(b->model_err, sizeof b->model_err, "%s", e.msg);
        dmn_log(b->srv, DMN_ERROR, "model.load", "%s", e.msg);
      }
#else
      b->model_state = -1;
      snprintf(b->model_err, sizeof b->model_err, "the engine is not built into this daemon yet");
#endif
    }
  }
  if (b->model_state == 1) *out = b->model;
  else rc = kv_err_set(err, KV_EUNSUPPORTED, "%s", b->model_err);
  pthread_mutex_unlock(&b->mu);
  return rc;
}

void dmn_backend_status(dmn_backend *b, cJSON *o) {
  pthread_mutex_lock(&b->mu);
  const dmn_config *c = dmn_server_config(b->srv);
  cJSON *m = cJSON_AddObjectToObject(o, "model");
  if (m) {
    cJSON_AddStringToObject(m, "path", b->model_path);
    cJSON_AddStringToObject(m, "state", c->stub_token_ms > 0 ? "stub"
                                        : b->model_state == 1 ? "loaded"
                                        : b->model_state < 0  ? "failed"
                                                              : "not loaded yet");
    if (b->model_state < 0) cJSON_AddStringToObject(m, "error", b->model_err);
  }
  pthread_mutex_unlock(&b->mu);
}

cJSON *dmn_backend_cache_stats(dmn_backend *b) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  pthread_mutex_lock(&b->mu);
  size_t n = 0, bytes = 0;
  cJSON *arr = cJSON_CreateArray();
  for (dmn_prefix *p = b->prefixes; p; p = p->next) {
    n++;
    bytes += p->text ? strlen(p->text) : 0;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "repo", p->repo);
    cJSON_AddNumberToObject(e, "bytes", p->text ? (double)strlen(p->text) : 0);
    cJSON_AddNumberToObject(e, "tokens", (double)p->tokens);
    cJSON_AddNumberToObject(e, "uses", (double)p->uses);
    cJSON_AddBoolToObject(e, "resident_kv", p->ctx != NULL);
    cJSON_AddItemToObject(e, "stable_files", p->stable ? cJSON_Duplicate(p->stable, 1) : cJSON_CreateArray());
    cJSON_AddItemToArray(arr, e);
  }
  cJSON_AddNumberToObject(o, "prefixes", (double)n);
  cJSON_AddNumberToObject(o, "prefix_bytes", (double)bytes);
  cJSON_AddNumberToObject(o, "prefix_hits", (double)b->prefix_hits);
  cJSON_AddNumberToObject(o, "prefix_builds", (double)b->prefix_builds);
  cJSON_AddNumberToObject(o, "asks", (double)b->asks);
  cJSON_AddNumberToObject(o, "completes", (double)b->completes);
  cJSON_AddNumberToObject(o, "tokens_prompt", (double)b->tokens_prompt);
  cJSON_AddNumberToObject(o, "tokens_reused", (double)b->tokens_reused);
  cJSON_AddNumberToObject(o, "tokens_generated", (double)b->tokens_gen);
  cJSON_AddItemToObject(o, "entries", arr);
  pthread_mutex_unlock(&b->mu);
  dmn_gate_stats(b->gate, o);
  logstores_stats(b->logstores, o);
  return o;
}

/* ------------------------------------------------------------------ sync */

#if DMN_HAVE_INDEXER
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
#endif

int dmn_backend_sync(dmn_backend *b, dmn_job *j, const char *abs, cJSON **stats, kv_err *err) {
  *stats = NULL;
#if DMN_HAVE_INDEXER
  idx_index *ix;
  int rc = idx_open(&ix, abs, NULL, err);
  if (rc) return rc;
  idx_sync_stats st;
  memset(&st, 0, sizeof st);
  sync_ud ud = {j, 0};
  rc = idx_sync(ix, 0, on_sync_progress, &ud, &j->cancel, &st, err);
  idx_close(ix);
  if (rc) return rc;
  cJSON *o = cJSON_CreateObject();
  if (!o) return kv_err_set(err, KV_ENOMEM, "out of memory");
  cJSON_AddNumberToObject(o, "files", (double)st.files);
  cJSON_AddNumberToObject(o, "files_indexed", (double)st.files_indexed);
  cJSON_AddNumberToObject(o, "bytes_indexed", (double)st.bytes_indexed);
  cJSON_AddNumberToObject(o, "blobs_parsed", (double)st.blobs_parsed);
  cJSON_AddNumberToObject(o, "blobs_reused", (double)st.blobs_reused);
  cJSON_AddNumberToObject(o, "symbols", (double)st.symbols);
  cJSON_AddNumberToObject(o, "chunks", (double)st.chunks);
  cJSON_AddBoolToObject(o, "head_moved", st.head_moved);
  cJSON_AddNumberToObject(o, "seconds", st.seconds);
  *stats = o;
  return 0;
#else
  return kv_err_set(err, KV_EUNSUPPORTED, "%s: the indexer is not built into this daemon yet", abs);
#endif
}

/* ------------------------------------------------------------------ logs */

#if DMN_HAVE_LOGS
/* Log stores kept open between logs.query / logs.triage requests: opening
 * one and loading its block summaries costs ~0.2 s at 8 M records, a query
 * on a warm handle a few ms. A log_db is not thread-safe, so a handle is
 * checked out by one job at a time (a concurrent query on the same store
 * opens another) and up to LOGSTORE_IDLE idle handles are kept, the least
 * recently used closed first. Reuse stays correct across ingests (ours or
 * another process's): a store only ever appends blocks, and each query
 * loads the summaries of blocks written since its handle's last one
 * (log_db_sums). A handle whose file was removed or replaced (another inode)
 * is closed instead. logs.ingest opens its own handle: the template miner
 * it loads must be the store's latest. */
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

static int logstores_new(struct dmn_logstores **out, kv_err *err) {
  struct dmn_logstores *ls = calloc(1, sizeof *ls);
  if (!ls) return kv_err_set(err, KV_ENOMEM, "backend: out of memory");
  pthread_mutex_init(&ls->mu, NULL);
  *out = ls;
  return 0;
}

static void logstores_free(struct dmn_logstores *ls) {
  if (!ls) return;
  for (size_t i = 0; i < ls->n; i++) log_db_close(ls->idle[i].db);
  pthread_mutex_destroy(&ls->mu);
  free(ls);
}

static void logstores_stats(struct dmn_logstores *ls, cJSON *out) {
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
static int logstore_get(struct dmn_logstores *ls, const char *path, logstore *h, kv_err *err) {
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
static void logstore_put(struct dmn_logstores *ls, logstore *h) {
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

static int64_t param_i64(const cJSON *p, const char *k) {
  const cJSON *v = cJSON_IsObject(p) ? cJSON_GetObjectItemCaseSensitive(p, k) : NULL;
  return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static int logs_ingest(dmn_job *j, log_db *db, cJSON *res, kv_err *err) {
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
  cJSON_AddNumberToObject(res, "files", (double)st.files);
  cJSON_AddNumberToObject(res, "bytes", (double)st.bytes);
  cJSON_AddNumberToObject(res, "lines", (double)st.lines);
  cJSON_AddNumberToObject(res, "records", (double)st.records);
  cJSON_AddNumberToObject(res, "new_templates", (double)st.new_templates);
  cJSON_AddNumberToObject(res, "seconds", st.seconds);
  return 0;
}

static int logs_query(dmn_job *j, log_db *db, cJSON *res, kv_err *err) {
  log_query q;
  memset(&q, 0, sizeof q);
  q.since_ms = param_i64(j->params, "since_ms");
  q.until_ms = param_i64(j->params, "until_ms");
  q.template_id = param_i64(j->params, "template_id");
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
  cJSON *rows = cJSON_AddArrayToObject(res, "rows");
  for (size_t i = 0; i < r.n; i++) {
    log_row *w = &r.rows[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)w->id);
    cJSON_AddNumberToObject(o, "ts_ms", (double)w->ts_ms);
    cJSON_AddStringToObject(o, "level", log_level_name(w->level));
    cJSON_AddNumberToObject(o, "template_id", (double)w->template_id);
    cJSON_AddStringToObject(o, "file", w->file ? w->file : "");
    cJSON_AddNumberToObject(o, "line", (double)w->line_no);
    if (w->component) cJSON_AddStringToObject(o, "component", w->component);
    cJSON_AddStringToObject(o, "text", w->text ? w->text : "");
    if (w->template_text) cJSON_AddStringToObject(o, "template", w->template_text);
    cJSON_AddItemToArray(rows, o);
  }
  log_result_free(&r);
  return 0;
}

static int logs_triage(dmn_job *j, log_db *db, cJSON *res, kv_err *err) {
  log_triage_opts o;
  memset(&o, 0, sizeof o);
  o.since_ms = param_i64(j->params, "since_ms");
  o.until_ms = param_i64(j->params, "until_ms");
  o.limit = dmn_param_int(j->params, "limit", -1, 20);
  o.nbins = dmn_param_int(j->params, "nbins", -1, 24);
  log_triage t;
  memset(&t, 0, sizeof t);
  int rc = log_triage_run(db, &o, &t, err);
  if (rc) return rc;
  cJSON *items = cJSON_AddArrayToObject(res, "items");
  for (size_t i = 0; i < t.n; i++) {
    log_triage_item *it = &t.items[i];
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "kind", log_triage_kind(it->kind));
    cJSON_AddNumberToObject(x, "score", it->score);
    cJSON_AddNumberToObject(x, "template_id", (double)it->template_id);
    cJSON_AddStringToObject(x, "template", it->template_text ? it->template_text : "");
    cJSON_AddStringToObject(x, "level", log_level_name(it->level));
    cJSON_AddNumberToObject(x, "count", (double)it->count);
    cJSON_AddNumberToObject(x, "first_ts", (double)it->first_ts);
    cJSON_AddNumberToObject(x, "last_ts", (double)it->last_ts);
    cJSON_AddStringToObject(x, "file", it->first_file ? it->first_file : "");
    cJSON_AddNumberToObject(x, "line", (double)it->first_line);
    char spark[256];
    log_sparkline(it->bins, it->nbins, spark, sizeof spark);
    cJSON_AddStringToObject(x, "sparkline", spark);
    cJSON_AddStringToObject(x, "why", it->why ? it->why : "");
    cJSON_AddItemToArray(items, x);
  }
  log_triage_free(&t);
  return 0;
}
#else
static int logstores_new(struct dmn_logstores **out, kv_err *err) {
  (void)err;
  *out = NULL;
  return 0;
}
static void logstores_free(struct dmn_logstores *ls) { (void)ls; }
static void logstores_stats(struct dmn_logstores *ls, cJSON *out) { (void)ls, (void)out; }
#endif

int dmn_job_logs(dmn_job *j, cJSON **result, kv_err *err) {
#if DMN_HAVE_LOGS
  const char *name = dmn_param_str(j->params, "name", -1);
  const char *store = dmn_param_str(j->params, "db", -1);
  if (!name) name = "default";
  if (strchr(name, '/') || name[0] == '.' || strlen(name) > 64)
    return kv_err_set(err, IPC_ERR_PARAMS, "%s: param 'name' must be a plain store name", j->method);
  char path[4096];
  int rc = 0;
  if (store) snprintf(path, sizeof path, "%s", store);
  else if ((rc = log_db_path(path, sizeof path, name, err))) return rc;
  int ingest = !strcmp(j->method, "logs.ingest");
  struct dmn_logstores *ls = dmn_server_backend(j->srv)->logstores;
  logstore h;
  memset(&h, 0, sizeof h);
  if (ingest) rc = log_db_open(&h.db, path, err);
  else rc = logstore_get(ls, path, &h, err);
  if (rc) return rc;
  cJSON *res = cJSON_CreateObject();
  if (!res) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  else if (ingest) rc = logs_ingest(j, h.db, res, err);
  else if (!strcmp(j->method, "logs.query")) rc = logs_query(j, h.db, res, err);
  else rc = logs_triage(j, h.db, res, err);
  if (ingest || (rc && rc != IPC_ERR_PARAMS)) log_db_close(h.db); /* after an error: a fresh one next time */
  else logstore_put(ls, &h);
  if (rc) {
    cJSON_Delete(res);
    return rc;
  }
  cJSON_AddStringToObject(res, "db", path);
  *result = res;
  return 0;
#else
  return kv_err_set(err, KV_EUNSUPPORTED, "%s: the logs store is not available in the daemon yet; use `kvasir logs` offline",
                    j->method);
#endif
}

/* ---------------------------------------------------------------- policy */

int dmn_policy_explain(dmn_server *s, const cJSON *params, cJSON **result, kv_err *err) {
#if DMN_HAVE_POLICY
  const char *dir = dmn_param_str(params, "repo", 0);
  char abs[1024];
  if (!dir) {
    if (dmn_repos_resolve(dmn_server_repos(s), NULL, abs, sizeof abs, err) == 0) dir = abs;
    else return kv_err_set(err, IPC_ERR_PARAMS, "policy.explain: param 'repo' (a project directory) is required");
  }
  const char *kind = dmn_param_str(params, "kind", 1);
  const char *depth = dmn_param_str(params, "depth", 2);
  pol_request req;
  memset(&req, 0, sizeof req);
  int k = kind ? pol_kind_parse(kind) : POL_KIND_ASK;
  int d = depth ? pol_depth_parse(depth) : POL_DEPTH_FAST;
  if (k < 0) return kv_err_set(err, IPC_ERR_PARAMS, "policy.explain: unknown kind '%s'", kind);
  if (d < 0) return kv_err_set(err, IPC_ERR_PARAMS, "policy.explain: unknown depth '%s'", depth);
  req.kind = (pol_kind)k;
  req.depth = (pol_depth)d;
  req.question = dmn_param_str(params, "question", 3);
  const char *file = dmn_param_str(params, "file", 4);
  pol_file pf;
  char *content = NULL;
  if (file) {
    size_t len;
    kv_err fe;
    memset(&pf, 0, sizeof pf);
    pf.path = file;
    if (kv_read_file(file, 16 << 20, &content, &len, &fe) == 0) {
      pf.content = content;
      pf.len = len;
    }
    req.files = &pf;
    req.n_files = 1;
  }
  pol_policy *p;
  int rc = pol_policy_open(&p, dir, err);
  if (rc) {
    free(content);
    return rc;
  }
  char *out = NULL;
  rc = pol_explain(p, &req, 1, &out, err);
  pol_policy_free(p);
  free(content);
  if (rc) return rc;
  cJSON *o = cJSON_Parse(out);
  if (!o) {
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", out);
  }
  free(out);
  *result = o;
  return 0;
#else
  return kv_err_set(err, KV_EUNSUPPORTED, "policy.explain: the policy module is not built into this daemon yet");
#endif
}
