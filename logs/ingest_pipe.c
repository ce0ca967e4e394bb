/*
 * ingest_pipe.c — the mining and writer stages of an ingest (see
 * internal.h for the flow, ingest.c for the reading side).
 *
 * Mining stage: mines each record's message (the miner is this thread's
 * alone while an ingest runs), gives components ids, fills blocks of
 * records (block.c) and at each RR_COMMIT closes the block in progress,
 * merges the miner and hands the writer one wbatch: the blocks,
 * pattern/template rows that changed, the miner blob (when it changed),
 * new component names and the resume point.
 * Writer stage: compresses the blocks and writes the whole wbatch in one
 * transaction, so a crash leaves the store at a commit point: the records
 * before the resume point, nothing after.
 * Each stage is a thread with a queue of at most two items, which bounds
 * memory; a stage that fails keeps failing (drops what it is given) and
 * its error reaches the reading side at its next push or drain.
 */
#define _GNU_SOURCE
#include "logs/internal.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PARAMS 32

/* ---- record batches ------------------------------------------------------------ */

log_rbatch *log_rbatch_new(void) { return calloc(1, sizeof(log_rbatch)); }

void log_rbatch_free(log_rbatch *b) {
  if (!b) return;
  free(b->r);
  kv_buf_free(&b->arena);
  free(b);
}

log_rrec *log_rbatch_add(log_rbatch *b, int kind) {
  if (b->n == b->cap && KV_GROW(b->r, b->cap, b->n + 1)) return NULL;
  log_rrec *r = &b->r[b->n++];
  memset(r, 0, sizeof *r);
  r->kind = (uint8_t)kind;
  return r;
}

/* ---- pools: buffers go back to the stage that fills them ------------------------ */

typedef struct pool {
  pthread_mutex_t mu;
  void *it[64];
  int n;
} pool;

static void *pool_get(pool *p) {
  pthread_mutex_lock(&p->mu);
  void *v = p->n ? p->it[--p->n] : NULL;
  pthread_mutex_unlock(&p->mu);
  return v;
}

/* 0 if the pool is full (the caller frees v) */
static int pool_put(pool *p, void *v) {
  pthread_mutex_lock(&p->mu);
  int ok = p->n < (int)(sizeof p->it / sizeof p->it[0]);
  if (ok) p->it[p->n++] = v;
  pthread_mutex_unlock(&p->mu);
  return ok;
}

/* ---- a stage: one thread, a queue of at most two items (plus the one in work) ---- */

typedef struct stage {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  void *q[2];
  int head, n, busy, stop, started, rc;
  kv_err err;
  int (*work)(void *ctx, void *item, kv_err *err); /* processes and frees item */
  void (*drop)(void *item);                         /* frees it unprocessed */
  void *ctx;
} stage;

static void *stage_main(void *arg) {
  stage *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->n && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    if (!s->n) break;
    void *it = s->q[s->head];
    s->head = (s->head + 1) % 2;
    s->n--;
    s->busy = 1;
    int failed = s->rc;
    pthread_mutex_unlock(&s->mu);
    kv_err e = {0};
    int rc = 0;
    if (failed) s->drop(it);
    else rc = s->work(s->ctx, it, &e);
    pthread_mutex_lock(&s->mu);
    if (rc && !s->rc) s->rc = rc, s->err = e;
    s->busy = 0;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int stage_start(stage *s, int (*work)(void *, void *, kv_err *), void (*drop)(void *), void *ctx, kv_err *err) {
  memset(s, 0, sizeof *s);
  s->work = work, s->drop = drop, s->ctx = ctx;
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  if (pthread_create(&s->th, NULL, stage_main, s)) {
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    return kv_err_set(err, KV_EIO, "logs: cannot start an ingest thread");
  }
  s->started = 1;
  return 0;
}

static int stage_push(stage *s, void *it, kv_err *err) {
  pthread_mutex_lock(&s->mu);
  while (s->n >= 2 && !s->rc) pthread_cond_wait(&s->cv, &s->mu);
  int rc = s->rc;
  if (!rc) {
    s->q[(s->head + s->n) % 2] = it;
    s->n++;
    pthread_cond_broadcast(&s->cv);
  } else if (err) {
    *err = s->err;
  }
  pthread_mutex_unlock(&s->mu);
  if (rc) s->drop(it);
  return rc;
}

static int stage_drain(stage *s, kv_err *err) {
  if (!s->started) return 0;
  pthread_mutex_lock(&s->mu);
  while (s->n > 0 || s->busy) pthread_cond_wait(&s->cv, &s->mu);
  int rc = s->rc;
  if (rc && err) *err = s->err;
  pthread_mutex_unlock(&s->mu);
  return rc;
}

static int stage_stop(stage *s, kv_err *err) {
  if (!s->started) return 0;
  int rc = stage_drain(s, err);
  pthread_mutex_lock(&s->mu);
  s->stop = 1;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->th, NULL);
  pthread_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  s->started = 0;
  return rc;
}

/* ---- the writer stage ------------------------------------------------------------- */

/* One transaction's worth of work for the writer. */
typedef struct batch {
  log_block **blk;
  size_t nblk, cblk;
  log_tpl_ops ops;
  void *miner;
  size_t miner_len;
  uint32_t *comp_id;
  char **comp_name;
  size_t ncomp, ccomp, ccomp_name;
  int64_t file_id, resume_line;
  uint64_t resume_off;
} batch;

typedef struct writer {
  log_db *db;
  pool *blocks;     /* written blocks, for the mining stage to fill again */
  sqlite3_stmt *bsum, *bdata, *upd, *cins;
  ZSTD_CCtx *cc;
} writer;

/* component name -> id (open addressing) */
typedef struct compmap {
  char **name;
  uint32_t *id;
  uint64_t *h;
  size_t cap, n;
  uint32_t next;
} compmap;


/* The mining stage. */
typedef struct miner_st {
  log_db *db;
  stage *ws;        /* the writer stage */
  pool *blocks, *rbs;
  batch *b;         /* batch being filled */
  log_block *cur;      /* block being filled */
  int64_t next_id;  /* id of the next record */
  int64_t file_id;
  compmap comps;
  char params[8192];
} miner_st;

struct log_pipe {
  log_db *db;
  writer w;
  miner_st m;
  stage ws, ms;
  pool blocks, rbs;
};

static void batch_free(batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->nblk; i++) {
    if (!b->blk[i]) continue;
    log_blk_free(b->blk[i]);
    free(b->blk[i]);
  }
  free(b->blk);
  log_tpl_ops_free(&b->ops);
  free(b->miner);
  for (size_t i = 0; i < b->ncomp; i++) free(b->comp_name[i]);
  free(b->comp_id), free(b->comp_name);
  free(b);
}

static int wstep(writer *w, sqlite3_stmt *st, const char *what, kv_err *err) {
  int rc = 0;
  if (sqlite3_step(st) != SQLITE_DONE) rc = kv_err_set(err, KV_EIO, "%s: %s: %s", w->db->path, what, sqlite3_errmsg(w->db->db));
  sqlite3_reset(st);
  return rc;
}

/* Write one batch in one transaction. */
static int write_batch(writer *w, batch *b, kv_err *err) {
  log_db *db = w->db;
  int rc = log_db_exec(db, "BEGIN IMMEDIATE", err);
  if (rc) return rc;
  for (size_t i = 0; i < b->nblk && !rc; i++) {
    log_block *k = b->blk[i];
    if ((rc = log_blk_encode(k, w->cc, err))) break;
    sqlite3_bind_int64(w->bsum, 1, k->id);
    sqlite3_bind_int64(w->bsum, 2, k->file_id);
    sqlite3_bind_int64(w->bsum, 3, k->c.n);
    sqlite3_bind_int64(w->bsum, 4, k->ts_min);
    sqlite3_bind_int64(w->bsum, 5, k->ts_max);
    sqlite3_bind_int64(w->bsum, 6, k->lvl_mask);
    sqlite3_bind_blob(w->bsum, 7, k->summ.data, (int)k->summ.len, SQLITE_STATIC);
    if (k->nbloom.len) sqlite3_bind_blob(w->bsum, 8, k->nbloom.data, (int)k->nbloom.len, SQLITE_STATIC);
    else sqlite3_bind_null(w->bsum, 8);
    if ((rc = wstep(w, w->bsum, "writing a block summary", err))) break;
    sqlite3_bind_int64(w->bdata, 1, k->id);
    sqlite3_bind_blob(w->bdata, 2, k->meta.data, (int)k->meta.len, SQLITE_STATIC);
    sqlite3_bind_blob(w->bdata, 3, k->data.data, (int)k->data.len, SQLITE_STATIC);
    if ((rc = wstep(w, w->bdata, "writing a block", err))) break;
  }
  for (size_t i = 0; i < b->ncomp && !rc; i++) {
    sqlite3_bind_int64(w->cins, 1, b->comp_id[i]);
    sqlite3_bind_text(w->cins, 2, b->comp_name[i], -1, SQLITE_STATIC);
    rc = wstep(w, w->cins, "writing a component", err);
  }
  if (!rc) rc = log_db_write_template_ops(db, &b->ops, err);
  if (!rc && b->miner) rc = log_db_write_miner(db, b->miner, b->miner_len, err);
  if (!rc && b->file_id) {
    sqlite3_bind_int64(w->upd, 1, (sqlite3_int64)b->resume_off);
    sqlite3_bind_int64(w->upd, 2, b->resume_line);
    sqlite3_bind_int64(w->upd, 3, (sqlite3_int64)time(NULL) * 1000);
    sqlite3_bind_int64(w->upd, 4, b->file_id);
    rc = wstep(w, w->upd, "updating the resume point", err);
  }
  if (!rc) rc = log_db_exec(db, "COMMIT", err);
  else log_db_exec(db, "ROLLBACK", NULL);
  return rc;
}

static int writer_work(void *ctx, void *item, kv_err *err) {
  writer *w = ctx;
  batch *b = item;
  int rc = write_batch(w, b, err);
  for (size_t i = 0; i < b->nblk; i++)
    if (pool_put(w->blocks, b->blk[i])) b->blk[i] = NULL;
  batch_free(b);
  return rc;
}

static void writer_drop(void *item) { batch_free(item); }

/* ---- components ---------------------------------------------------------------- */

static uint64_t hash_str(const char *s, size_t n) { return kv_hash64(s, n) | 1; }

static int comp_insert(compmap *m, const char *s, size_t n, uint32_t id, uint64_t h) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 256;
    char **nn = calloc(nc, sizeof *nn);
    uint32_t *ni = calloc(nc, sizeof *ni);
    uint64_t *nh = calloc(nc, sizeof *nh);
    if (!nn || !ni || !nh) {
      free(nn), free(ni), free(nh);
      return KV_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
      if (!m->h[i]) continue;
      size_t j = m->h[i] & (nc - 1);
      while (nh[j]) j = (j + 1) & (nc - 1);
      nh[j] = m->h[i], nn[j] = m->name[i], ni[j] = m->id[i];
    }
    free(m->name), free(m->id), free(m->h);
    m->name = nn, m->id = ni, m->h = nh, m->cap = nc;
  }
  size_t j = h & (m->cap - 1);
  while (m->h[j]) j = (j + 1) & (m->cap - 1);
  char *c = malloc(n + 1);
  if (!c) return KV_ENOMEM;
  memcpy(c, s, n);
  c[n] = 0;
  m->h[j] = h, m->name[j] = c, m->id[j] = id;
  m->n++;
  if (id >= m->next) m->next = id + 1;
  return 0;
}

static void comp_free(compmap *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->name[i]);
  free(m->name), free(m->id), free(m->h);
  memset(m, 0, sizeof *m);
}

static int comp_load(miner_st *g, kv_err *err) {
  sqlite3_stmt *st;
  int rc = log_db_prepare(g->db, &st, "SELECT id, name FROM comps", err);
  if (rc) return rc;
  g->comps.next = 1;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    const char *s = (const char *)sqlite3_column_text(st, 1);
    int64_t id = sqlite3_column_int64(st, 0);
    if (!s || id < 1 || id > UINT32_MAX - 1) continue;
    size_t n = strlen(s);
    if (comp_insert(&g->comps, s, n, (uint32_t)id, hash_str(s, n))) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  }
  sqlite3_finalize(st);
  return rc;
}

/* id of a component name, adding it (and a row for the batch) if new */
static int comp_id(miner_st *g, const char *s, size_t n, uint32_t *out) {
  compmap *m = &g->comps;
  uint64_t h = hash_str(s, n);
  if (m->cap) {
    size_t j = h & (m->cap - 1);
    while (m->h[j]) {
      if (m->h[j] == h && !strncmp(m->name[j], s, n) && m->name[j][n] == 0) {
        *out = m->id[j];
        return 0;
      }
      j = (j + 1) & (m->cap - 1);
    }
  }
  uint32_t id = m->next;
  batch *b = g->b;
  if (KV_GROW(b->comp_id, b->ccomp, b->ncomp + 1) || KV_GROW(b->comp_name, b->ccomp_name, b->ncomp + 1)) return KV_ENOMEM;
  char *c = malloc(n + 1);
  if (!c) return KV_ENOMEM;
  memcpy(c, s, n);
  c[n] = 0;
  if (comp_insert(m, s, n, id, h)) {
    free(c);
    return KV_ENOMEM;
  }
  b->comp_id[b->ncomp] = id, b->comp_name[b->ncomp++] = c;
  *out = id;
  return 0;
}

/* ---- the mining stage ------------------------------------------------------------ */

static int close_block(miner_st *g) {
  log_block *k = g->cur;
  if (!k) return 0;
  g->cur = NULL;
  if (k->c.n == 0) {
    log_blk_free(k);
    free(k);
    return 0;
  }
  batch *b = g->b;
  if (KV_GROW(b->blk, b->cblk, b->nblk + 1)) {
    log_blk_free(k);
    free(k);
    return KV_ENOMEM;
  }
  b->blk[b->nblk++] = k;
  return 0;
}

static int new_batch(miner_st *g, kv_err *err) {
  if (g->b) return 0;
  g->b = calloc(1, sizeof *g->b);
  return g->b ? 0 : kv_err_set(err, KV_ENOMEM, "logs: out of memory");
}

/* RR_COMMIT: close the batch at a record boundary: merge the miner, collect
 * what changed and hand it all to the writer with the resume point. */
static int m_commit(miner_st *g, const log_rrec *r, kv_err *err) {
  log_db *db = g->db;
  int rc = new_batch(g, err);
  if (rc) return rc;
  if (close_block(g)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  batch *b = g->b;
  uint32_t np = log_miner_patterns(db->miner);
  log_miner_merge(db->miner);
  if ((rc = log_db_template_ops(db, &b->ops, err))) return rc;
  /* The miner changes only when new patterns arrived (merge is a no-op
   * otherwise); then it is saved in the same transaction as the records. */
  if (np != db->saved_patterns) {
    if ((rc = log_miner_save(db->miner, &b->miner, &b->miner_len, err))) return rc;
    db->saved_patterns = np;
  }
  b->file_id = g->file_id;
  b->resume_off = r->off;
  b->resume_line = r->line;
  g->b = NULL;
  return stage_push(g->ws, b, err);
}

/* RR_REC: mine the message, add the record to the block in progress. */
static int m_record(miner_st *g, const log_rbatch *rb, const log_rrec *r, kv_err *err) {
  int rc = new_batch(g, err);
  if (rc) return rc;
  if (!g->cur) {
    if (!(g->cur = pool_get(g->blocks)) && !(g->cur = calloc(1, sizeof *g->cur)))
      return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    log_blk_reset(g->cur, g->next_id, g->file_id);
  }
  log_block *k = g->cur;
  const char *a = (const char *)rb->arena.data;
  uint32_t pat, comp = 0;
  log_param pr[MAX_PARAMS];
  int np = 0;
  if ((rc = log_miner_add(g->db->miner, a + r->content, r->clen, &pat, pr, MAX_PARAMS, &np, err))) return rc;
  if (r->complen && comp_id(g, a + r->comp, r->complen, &comp)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  size_t pk = 0;
  g->params[pk++] = '\x1f';
  for (int i = 0; i < np; i++) {
    if (pk + pr[i].len + 2 >= sizeof g->params) break;
    memcpy(g->params + pk, pr[i].val, pr[i].len);
    pk += pr[i].len;
    g->params[pk++] = '\x1f';
  }
  uint32_t i = k->c.n;
  k->c.ts[i] = r->ts;
  k->c.lvl[i] = (uint8_t)(r->level & 7);
  k->c.comp[i] = comp;
  k->c.pid[i] = r->pid;
  k->c.pat[i] = pat;
  k->c.line[i] = r->line;
  k->c.tlen[i] = r->tlen;
  k->c.plen[i] = (uint32_t)pk;
  if (kv_buf_append(&k->text, a + r->text, r->tlen) || kv_buf_append(&k->par, g->params, pk))
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  /* Identifier-like values (ip, hex, uuid, path, ids, words, times) go to
   * the in-memory parameter index; plain numbers and durations, too many
   * to keep in memory, to the second filter the query reads from the table.
   * The query side decides with the same context-free typing (log_m_type). */
  for (int j = 0; j < np; j++) {
    int t = pr[j].type;
    kv_buf *to = t == LOG_P_NUM || t == LOG_P_DURATION ? &k->nums : &k->fts;
    if ((to->len && kv_buf_append(to, "\x1f", 1)) || kv_buf_append(to, pr[j].val, pr[j].len))
      return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  }
  k->c.n++;
  g->next_id++;
  if (k->c.n == BLK_MAX || k->text.len >= BLK_TEXT_MAX)
    if (close_block(g)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  return 0;
}

static void miner_drop(void *item) { log_rbatch_free(item); }

static int miner_work(void *ctx, void *item, kv_err *err) {
  miner_st *g = ctx;
  log_rbatch *rb = item;
  int rc = 0;
  for (size_t i = 0; i < rb->n && !rc; i++) {
    const log_rrec *r = &rb->r[i];
    if (r->kind == RR_REC) {
      rc = m_record(g, rb, r, err);
    } else if (r->kind == RR_COMMIT) {
      rc = m_commit(g, r, err);
    } else if (r->kind == RR_ABORT) {
      /* the reading side failed in a file: what was not committed is
       * dropped, and since the dropped batch may have carried pattern and
       * template rows, all of them are written again at the next commit */
      if (g->cur) log_blk_free(g->cur);
      free(g->cur);
      g->cur = NULL;
      batch_free(g->b);
      g->b = NULL;
      log_db *db = g->db;
      if (db->known) memset(db->known, 0, db->known_cap * sizeof *db->known);
      if (db->thash) memset(db->thash, 0, db->thash_cap * sizeof *db->thash);
      db->saved_patterns = 0;
    } else {
      /* a new file: what is pending belongs to the previous one (a commit
       * marker always comes first, so nothing is) */
      if (g->cur && g->cur->c.n && close_block(g)) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
      g->file_id = r->line;
    }
  }
  rb->n = 0, rb->arena.len = 0;
  if (!pool_put(g->rbs, rb)) log_rbatch_free(rb);
  return rc;
}

/* ---- the pipe ---------------------------------------------------------------------- */

int log_pipe_start(log_pipe **out, log_db *db, kv_err *err) {
  log_pipe *p = calloc(1, sizeof *p);
  if (!p) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  p->db = db;
  pthread_mutex_init(&p->blocks.mu, NULL);
  pthread_mutex_init(&p->rbs.mu, NULL);
  writer *w = &p->w;
  w->db = db;
  w->blocks = &p->blocks;
  int rc = log_db_prepare(db, &w->bsum,
                          "INSERT INTO bsum(id, file_id, n, ts_min, ts_max, lvl_mask, summ, nbloom) VALUES(?,?,?,?,?,?,?,?)", err);
  if (!rc) rc = log_db_prepare(db, &w->bdata, "INSERT INTO bdata(id, meta, data) VALUES(?,?,?)", err);
  if (!rc) rc = log_db_prepare(db, &w->upd, "UPDATE files SET offset=?, line_no=?, updated_ms=? WHERE id=?", err);
  if (!rc) rc = log_db_prepare(db, &w->cins, "INSERT OR REPLACE INTO comps(id, name) VALUES(?, ?)", err);
  if (!rc && !(w->cc = ZSTD_createCCtx())) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  miner_st *m = &p->m;
  m->db = db;
  m->ws = &p->ws;
  m->blocks = &p->blocks;
  m->rbs = &p->rbs;
  if (!rc) rc = comp_load(m, err);
  if (!rc) {
    sqlite3_stmt *st;
    if (!(rc = log_db_prepare(db, &st, "SELECT coalesce(max(id + n), 1) FROM bsum", err))) {
      m->next_id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
      sqlite3_finalize(st);
    }
  }
  if (!rc) rc = stage_start(&p->ws, writer_work, writer_drop, w, err);
  if (!rc) rc = stage_start(&p->ms, miner_work, miner_drop, m, err);
  if (rc) {
    log_pipe_stop(p, NULL);
    return rc;
  }
  *out = p;
  return 0;
}

log_rbatch *log_pipe_rbatch(log_pipe *p) {
  log_rbatch *b = pool_get(&p->rbs);
  return b ? b : log_rbatch_new();
}

int log_pipe_push(log_pipe *p, log_rbatch *b, kv_err *err) {
  int rc = stage_push(&p->ms, b, err);
  if (rc) return rc;
  /* a failed writer shows here too (the miner stage may not have seen it yet) */
  pthread_mutex_lock(&p->ws.mu);
  rc = p->ws.rc;
  if (rc && err) *err = p->ws.err;
  pthread_mutex_unlock(&p->ws.mu);
  return rc;
}

int log_pipe_drain(log_pipe *p, kv_err *err) {
  int rc = stage_drain(&p->ms, err);
  int wrc = stage_drain(&p->ws, rc ? NULL : err);
  return rc ? rc : wrc;
}

int log_pipe_stop(log_pipe *p, kv_err *err) {
  if (!p) return 0;
  int rc = stage_stop(&p->ms, err);
  int wrc = stage_stop(&p->ws, rc ? NULL : err);
  miner_st *m = &p->m;
  if (m->cur) log_blk_free(m->cur);
  free(m->cur);
  batch_free(m->b);
  comp_free(&m->comps);
  writer *w = &p->w;
  sqlite3_finalize(w->bsum);
  sqlite3_finalize(w->bdata);
  sqlite3_finalize(w->upd);
  sqlite3_finalize(w->cins);
  ZSTD_freeCCtx(w->cc);
  for (int i = 0; i < p->blocks.n; i++) {
    log_blk_free(p->blocks.it[i]);
    free(p->blocks.it[i]);
  }
  for (int i = 0; i < p->rbs.n; i++) log_rbatch_free(p->rbs.it[i]);
  pthread_mutex_destroy(&p->blocks.mu);
  pthread_mutex_destroy(&p->rbs.mu);
  free(p);
  return rc ? rc : wrc;
}
