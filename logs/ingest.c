/*
 * ingest.c — streaming ingest of files, directories, globs, .gz/.zst and
 * stdin into a log store.
 *
 * Two threads. The calling thread reads, splits lines, learns each file's
 * header from its first 2000 lines, joins continuation lines (stack
 * traces, indented lines) to the record above, mines templates, and fills
 * blocks of records (block.c); every `batch` records it closes the block
 * in progress, merges the miner and hands the writer thread one batch:
 * the blocks, pattern/template rows that changed, the miner blob (when it
 * changed), new component names and the file's resume point = offset of
 * the first line of the record still being assembled. The writer
 * compresses the blocks and writes the whole batch in one transaction, so
 * after kill -9 the store holds exactly the records before its resume
 * point and the next ingest starts there: nothing lost, nothing twice. At
 * most two batches wait, which bounds memory. The SQLite connection is
 * used by the writer only, except at the start of each file, when the
 * reader waits for the writer to finish and reads/updates the files row
 * itself.
 *
 * A file is recognised by (dev, inode) and a hash of its first head_len
 * (<= 4096) bytes; if those changed (rotated, rewritten), it is read again
 * from the start. Bad bytes are counted, never fatal: NUL/control-heavy
 * (binary) lines, invalid UTF-8 (replaced by '?'), over-long lines (cut),
 * records without a timestamp (take the previous one), clock jumps, and
 * truncated compressed streams.
 */
#define _GNU_SOURCE
#include "logs/source.h"
#include "logs/store_int.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HEAD_MAX 4096
#define LEARN_LINES 2000
#define MAX_PARAMS 32
#define RECORD_MAX ((1u << 20) + 2)

/* One transaction's worth of work for the writer. */
typedef struct batch {
  lblock **blk;
  size_t nblk, cblk;
  log_tpl_ops ops;
  void *miner;
  size_t miner_len;
  uint32_t *comp_id;
  char **comp_name;
  size_t ncomp, ccomp;
  int64_t file_id, resume_line;
  uint64_t resume_off;
  struct batch *next;
} batch;

/* The writer thread and its queue. */
typedef struct writer {
  log_db *db;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  batch *head, *tail;
  int queued, busy, stop, started, rc;
  kv_err err;
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

typedef struct ing {
  log_db *db;
  const log_ingest_opts *o;
  log_ingest_stats *st;
  writer *w;
  batch *b;        /* batch being filled */
  lblock *cur;     /* block being filled */
  int64_t next_id; /* id of the next record */
  compmap comps;
  uint64_t total_bytes, done_bytes;
  /* current file */
  int64_t file_id;
  log_fmt *fmt;
  int year;
  int64_t last_ts;
  /* pending record */
  char *rec;
  size_t rlen, rcap;
  size_t first_len;  /* bytes of the first line in rec */
  uint64_t rstart;   /* decoded offset of its first line */
  int64_t rline;     /* its line number (1-based) */
  int have;
  log_line pl; /* parsed first line of the pending record; offsets below */
  size_t pl_content, pl_comp, pl_thread;
  size_t since_commit;
  char *clean;
  size_t cleancap;
  char params[8192];
} ing;

static uint64_t hash_bytes(const void *p, size_t n) {
  const unsigned char *s = p;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ULL;
  return h & 0x7fffffffffffffffULL;
}

/* Copy with invalid UTF-8 and control bytes replaced by '?'; returns the
 * number of replacements; *binary set if the line looks like binary data. */
static size_t sanitize(const char *s, size_t n, char *o, int *binary) {
  size_t bad = 0, ctl = 0;
  for (size_t i = 0; i < n;) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
      if (c < 0x20 && c != '\t') {
        ctl++;
        o[i++] = '?';
      } else {
        o[i] = (char)c;
        i++;
      }
      continue;
    }
    size_t need = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
    int ok = need && i + need <= n;
    for (size_t k = 1; ok && k < need; k++)
      if (((unsigned char)s[i + k] & 0xc0) != 0x80) ok = 0;
    if (ok && need == 3 && c == 0xe0 && (unsigned char)s[i + 1] < 0xa0) ok = 0;
    if (ok && need == 3 && c == 0xed && (unsigned char)s[i + 1] >= 0xa0) ok = 0;
    if (ok && need == 4 && c == 0xf0 && (unsigned char)s[i + 1] < 0x90) ok = 0;
    if (ok && need == 4 && c == 0xf4 && (unsigned char)s[i + 1] >= 0x90) ok = 0;
    if (!ok) {
      bad++;
      o[i++] = '?';
      continue;
    }
    memcpy(o + i, s + i, need);
    i += need;
  }
  *binary = n > 0 && (ctl + bad) * 4 > n;
  return bad;
}

/* ---- the writer thread ----------------------------------------------------- */

static void batch_free(batch *b) {
  if (!b) return;
  for (size_t i = 0; i < b->nblk; i++) {
    blk_free(b->blk[i]);
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
  static double tenc, tins, tcom;
  double t0 = kv_now();
  for (size_t i = 0; i < b->nblk && !rc; i++) {
    lblock *k = b->blk[i];
    double a = kv_now();
    if ((rc = blk_encode(k, w->cc, err))) break;
    tenc += kv_now() - a;
    a = kv_now();
    sqlite3_bind_int64(w->bsum, 1, k->id);
    sqlite3_bind_int64(w->bsum, 2, k->file_id);
    sqlite3_bind_int64(w->bsum, 3, k->c.n);
    sqlite3_bind_int64(w->bsum, 4, k->ts_min);
    sqlite3_bind_int64(w->bsum, 5, k->ts_max);
    sqlite3_bind_int64(w->bsum, 6, k->lvl_mask);
    sqlite3_bind_blob(w->bsum, 7, k->summ.p, (int)k->summ.n, SQLITE_STATIC);
    if ((rc = wstep(w, w->bsum, "writing a block summary", err))) break;
    sqlite3_bind_int64(w->bdata, 1, k->id);
    sqlite3_bind_blob(w->bdata, 2, k->meta.p, (int)k->meta.n, SQLITE_STATIC);
    sqlite3_bind_blob(w->bdata, 3, k->data.p, (int)k->data.n, SQLITE_STATIC);
    if ((rc = wstep(w, w->bdata, "writing a block", err))) break;
    tins += kv_now() - a;
  }
  double tc = kv_now();
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
  tcom += kv_now() - tc;
  if (getenv("KV_IDEBUG")) fprintf(stderr, "writer: enc %.2f ins %.2f rest+commit %.2f (batch %.3f)\n", tenc, tins, tcom, kv_now() - t0);
  return rc;
}

static void *writer_main(void *arg) {
  writer *w = arg;
  pthread_mutex_lock(&w->mu);
  for (;;) {
    while (!w->head && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
    if (!w->head) break;
    batch *b = w->head;
    w->head = b->next;
    if (!w->head) w->tail = NULL;
    w->busy = 1;
    int failed = w->rc;
    pthread_mutex_unlock(&w->mu);
    kv_err e = {0};
    int rc = failed ? 0 : write_batch(w, b, &e);
    batch_free(b);
    pthread_mutex_lock(&w->mu);
    if (rc && !w->rc) w->rc = rc, w->err = e;
    w->queued--;
    w->busy = 0;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

static int writer_fail(writer *w, kv_err *err) {
  if (err) *err = w->err;
  return w->rc;
}

/* Hand a batch over; waits while two are queued. Returns the writer's
 * error, if it has failed (the batch is then dropped). */
static int writer_push(writer *w, batch *b, kv_err *err) {
  pthread_mutex_lock(&w->mu);
  while (w->queued >= 2 && !w->rc) pthread_cond_wait(&w->cv, &w->mu);
  int rc = w->rc;
  if (!rc) {
    b->next = NULL;
    if (w->tail) w->tail->next = b;
    else w->head = b;
    w->tail = b;
    w->queued++;
    pthread_cond_broadcast(&w->cv);
  }
  pthread_mutex_unlock(&w->mu);
  if (rc) {
    batch_free(b);
    return writer_fail(w, err);
  }
  return 0;
}

/* Wait until everything handed over is written; the caller may then use
 * the connection until its next writer_push. */
static int writer_drain(writer *w, kv_err *err) {
  pthread_mutex_lock(&w->mu);
  while (w->queued > 0 || w->busy) pthread_cond_wait(&w->cv, &w->mu);
  int rc = w->rc;
  pthread_mutex_unlock(&w->mu);
  return rc ? writer_fail(w, err) : 0;
}

static int writer_start(writer *w, log_db *db, kv_err *err) {
  memset(w, 0, sizeof *w);
  w->db = db;
  int rc = log_db_prepare(db, &w->bsum,
                          "INSERT INTO bsum(id, file_id, n, ts_min, ts_max, lvl_mask, summ) VALUES(?,?,?,?,?,?,?)", err);
  if (!rc) rc = log_db_prepare(db, &w->bdata, "INSERT INTO bdata(id, meta, data) VALUES(?,?,?)", err);
  if (!rc) rc = log_db_prepare(db, &w->upd, "UPDATE files SET offset=?, line_no=?, updated_ms=? WHERE id=?", err);
  if (!rc) rc = log_db_prepare(db, &w->cins, "INSERT OR REPLACE INTO comps(id, name) VALUES(?, ?)", err);
  if (!rc && !(w->cc = ZSTD_createCCtx())) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  if (!rc) {
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, writer_main, w)) {
      rc = kv_err_set(err, KV_EIO, "logs: cannot start the writer thread");
      pthread_mutex_destroy(&w->mu);
      pthread_cond_destroy(&w->cv);
    } else {
      w->started = 1;
    }
  }
  return rc;
}

/* Drain, stop and free the writer; returns its error if it failed. */
static int writer_stop(writer *w, kv_err *err) {
  int rc = 0;
  if (w->started) {
    rc = writer_drain(w, err);
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
  }
  sqlite3_finalize(w->bsum);
  sqlite3_finalize(w->bdata);
  sqlite3_finalize(w->upd);
  sqlite3_finalize(w->cins);
  ZSTD_freeCCtx(w->cc);
  return rc;
}

/* ---- components ------------------------------------------------------------- */

static uint64_t hash_str(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
  return h | 1;
}

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

static int comp_load(ing *g, kv_err *err) {
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
static int comp_id(ing *g, const char *s, size_t n, uint32_t *out) {
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
  if (b->ncomp == b->ccomp) {
    size_t nc = b->ccomp ? b->ccomp * 2 : 16;
    uint32_t *ni = realloc(b->comp_id, nc * sizeof *ni);
    if (!ni) return KV_ENOMEM;
    b->comp_id = ni;
    char **nn = realloc(b->comp_name, nc * sizeof *nn);
    if (!nn) return KV_ENOMEM;
    b->comp_name = nn, b->ccomp = nc;
  }
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

/* ---- the reading side ------------------------------------------------------- */

static int close_block(ing *g) {
  lblock *k = g->cur;
  if (!k) return 0;
  g->cur = NULL;
  if (k->c.n == 0) {
    blk_free(k);
    free(k);
    return 0;
  }
  batch *b = g->b;
  if (b->nblk == b->cblk) {
    size_t nc = b->cblk ? b->cblk * 2 : 64;
    lblock **nb = realloc(b->blk, nc * sizeof *nb);
    if (!nb) {
      blk_free(k);
      free(k);
      return KV_ENOMEM;
    }
    b->blk = nb, b->cblk = nc;
  }
  b->blk[b->nblk++] = k;
  return 0;
}

static int new_batch(ing *g, kv_err *err) {
  if (g->b) return 0;
  g->b = calloc(1, sizeof *g->b);
  return g->b ? 0 : kv_err_set(err, KV_ENOMEM, "logs: out of memory");
}

/* Close the batch at a record boundary: merge the miner, collect what
 * changed and hand it all to the writer with the resume point. */
static int commit(ing *g, kv_err *err, uint64_t resume_off, int64_t resume_line) {
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
  b->resume_off = resume_off;
  b->resume_line = resume_line;
  g->b = NULL;
  if ((rc = writer_push(g->w, b, err))) return rc;
  g->since_commit = 0;
  if (g->o && g->o->progress) g->o->progress(g->o->progress_ud, g->done_bytes, g->total_bytes, g->st->records);
  return 0;
}

/* Add the pending record to the block in progress. */
static int emit(ing *g, kv_err *err) {
  if (!g->have) return 0;
  g->have = 0;
  int rc = new_batch(g, err);
  if (rc) return rc;
  if (!g->cur) {
    if (!(g->cur = calloc(1, sizeof *g->cur))) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    blk_reset(g->cur, g->next_id, g->file_id);
  }
  lblock *k = g->cur;
  /* the first line's fields, parsed when it was read, rebased onto rec */
  log_line ln = g->pl;
  ln.content = g->rec + g->pl_content;
  if (ln.comp) ln.comp = g->rec + g->pl_comp;
  if (ln.thread) ln.thread = g->rec + g->pl_thread;
  int64_t ts = ln.ts_ms;
  if (ts == INT64_MIN) {
    g->st->no_timestamp++;
    ts = g->last_ts;
  } else if (g->last_ts != INT64_MIN && (ts < g->last_ts - 3600000LL || ts > g->last_ts + 30LL * 86400000LL)) {
    g->st->clock_jumps++;
  }
  if (ts != INT64_MIN) g->last_ts = ts;
  uint32_t pat, comp = 0;
  log_param pr[MAX_PARAMS];
  int np = 0;
  if ((rc = log_miner_add(g->db->miner, ln.content, ln.content_len, &pat, pr, MAX_PARAMS, &np, err))) return rc;
  if (ln.comp && ln.comp_len && comp_id(g, ln.comp, ln.comp_len, &comp))
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  size_t pk = 0;
  g->params[pk++] = '\x1f';
  for (int i = 0; i < np; i++) {
    if (pk + pr[i].len + 2 >= sizeof g->params) break;
    memcpy(g->params + pk, pr[i].val, pr[i].len);
    pk += pr[i].len;
    g->params[pk++] = '\x1f';
  }
  uint32_t i = k->c.n;
  k->c.ts[i] = ts;
  k->c.lvl[i] = (uint8_t)(ln.level & 7);
  k->c.comp[i] = comp;
  k->c.pid[i] = ln.pid >= 0 ? ln.pid : -1;
  k->c.pat[i] = pat;
  k->c.line[i] = g->rline;
  k->c.tlen[i] = (uint32_t)g->rlen;
  k->c.plen[i] = (uint32_t)pk;
  if (lbuf_put(&k->text, g->rec, g->rlen) || lbuf_put(&k->par, g->params, pk))
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  /* Identifier-like values (ip, hex, uuid, path, ids, words) go to the
   * parameter index; plain numbers, durations and times do not (too many,
   * rarely looked up; a query for one scans instead). */
  for (int j = 0; j < np; j++) {
    int t = pr[j].type;
    if (t == LOG_P_NUM || t == LOG_P_DURATION || t == LOG_P_TIME) continue;
    if ((k->fts.n && lbuf_put(&k->fts, "\x1f", 1)) || lbuf_put(&k->fts, pr[j].val, pr[j].len))
      return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  }
  k->c.n++;
  g->next_id++;
  g->st->records++;
  g->since_commit++;
  if (k->c.n == BLK_MAX || k->text.n >= BLK_TEXT_MAX)
    if (close_block(g)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  return 0;
}

static int append(ing *g, const char *p, size_t n) {
  if (g->rlen + 2 > RECORD_MAX) return 0; /* record full: the rest is dropped */
  if (g->rlen + n + 2 > RECORD_MAX) n = RECORD_MAX - g->rlen - 2;
  if (g->rlen + n + 1 > g->rcap) {
    size_t nc = g->rcap ? g->rcap : 4096;
    while (nc < g->rlen + n + 1) nc *= 2;
    char *nr = realloc(g->rec, nc);
    if (!nr) return KV_ENOMEM;
    g->rec = nr, g->rcap = nc;
  }
  if (g->rlen) g->rec[g->rlen++] = '\n';
  memcpy(g->rec + g->rlen, p, n);
  g->rlen += n;
  return 0;
}

/* Learn the header from the first lines of the file (a separate read). */
static int learn(ing *g, const char *path, lines *main, int from_main, kv_err *err) {
  const char *lp[LEARN_LINES];
  size_t ll[LEARN_LINES];
  size_t n = 0;
  src hs;
  lines H;
  lines *L = main;
  int rc;
  if (!from_main) {
    if ((rc = src_open(&hs, path, err))) return rc;
    if ((rc = lines_init(&H, &hs, 1u << 16, 0, err))) {
      src_close(&hs);
      return rc;
    }
    L = &H;
  }
  lines_fill(L);
  size_t i = L->beg;
  while (n < LEARN_LINES && i < L->end) {
    char *nl = memchr(L->buf + i, '\n', L->end - i);
    if (!nl) break;
    lp[n] = L->buf + i;
    ll[n] = (size_t)(nl - (L->buf + i));
    n++;
    i = (size_t)(nl - L->buf) + 1;
  }
  if (n == 0 && L->end > L->beg) lp[0] = L->buf + L->beg, ll[0] = L->end - L->beg, n = 1;
  rc = log_fmt_learn(&g->fmt, lp, ll, n, err);
  if (!from_main) {
    lines_free(&H);
    src_close(&hs);
  }
  return rc;
}

static int ingest_file(ing *g, const char *path, kv_err *err) {
  struct stat sb;
  int is_stdin = !strcmp(path, "-");
  char rpath[4096];
  if (is_stdin) snprintf(rpath, sizeof rpath, "<stdin>");
  else if (!realpath(path, rpath)) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  if (!is_stdin && stat(rpath, &sb)) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  src s;
  int rc = src_open(&s, path, err);
  if (rc) return rc;
  /* head of the raw file, for recognising it next time */
  unsigned char head[HEAD_MAX];
  ssize_t hl = is_stdin ? 0 : pread(s.fd, head, HEAD_MAX, 0);
  if (hl < 0) hl = 0;
  struct tm tmv;
  time_t mt = is_stdin ? time(NULL) : sb.st_mtime;
  gmtime_r(&mt, &tmv);
  g->year = tmv.tm_year + 1900;
  uint64_t off = 0;
  int64_t line = 0;
  sqlite3_stmt *q;
  /* the connection is the writer's while it works: wait for it */
  if ((rc = writer_drain(g->w, err))) goto out_src;
  if ((rc = log_db_prepare(g->db, &q,
                           "SELECT id, dev, inode, offset, head_len, head_hash, line_no FROM files WHERE path = ?",
                           err)))
    goto out_src;
  sqlite3_bind_text(q, 1, rpath, -1, SQLITE_TRANSIENT);
  g->file_id = 0;
  if (sqlite3_step(q) == SQLITE_ROW && !is_stdin) {
    g->file_id = sqlite3_column_int64(q, 0);
    int64_t dev = sqlite3_column_int64(q, 1), ino = sqlite3_column_int64(q, 2);
    int64_t ohl = sqlite3_column_int64(q, 4), ohh = sqlite3_column_int64(q, 5);
    int same = dev == (int64_t)sb.st_dev && ino == (int64_t)sb.st_ino && ohl <= hl &&
               (int64_t)hash_bytes(head, (size_t)ohl) == ohh;
    if (same) {
      off = (uint64_t)sqlite3_column_int64(q, 3);
      line = sqlite3_column_int64(q, 6);
    }
  }
  sqlite3_finalize(q);
  if ((rc = log_db_exec(g->db, "BEGIN IMMEDIATE", err))) goto out_src;
  if (!g->file_id || is_stdin) {
    sqlite3_stmt *ins;
    if ((rc = log_db_prepare(g->db, &ins, "INSERT OR REPLACE INTO files(path) VALUES(?)", err))) goto out_src;
    char tag[64];
    if (is_stdin) snprintf(tag, sizeof tag, "<stdin %lld>", (long long)time(NULL));
    sqlite3_bind_text(ins, 1, is_stdin ? tag : rpath, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(ins) != SQLITE_DONE)
      rc = kv_err_set(err, KV_EIO, "%s: files: %s", g->db->path, sqlite3_errmsg(g->db->db));
    sqlite3_finalize(ins);
    if (rc) goto out_txn;
    g->file_id = sqlite3_last_insert_rowid(g->db->db);
  }
  {
    sqlite3_stmt *u;
    /* the resume point is written with the identity it belongs to: a
     * replaced file starts over at 0 even if no batch commits */
    if ((rc = log_db_prepare(g->db, &u,
                             "UPDATE files SET dev=?, inode=?, head_len=?, head_hash=?, year=?, offset=?, line_no=? "
                             "WHERE id=?",
                             err)))
      goto out_txn;
    sqlite3_bind_int64(u, 1, is_stdin ? 0 : (int64_t)sb.st_dev);
    sqlite3_bind_int64(u, 2, is_stdin ? 0 : (int64_t)sb.st_ino);
    sqlite3_bind_int64(u, 3, hl);
    sqlite3_bind_int64(u, 4, (int64_t)hash_bytes(head, (size_t)hl));
    sqlite3_bind_int(u, 5, g->year);
    sqlite3_bind_int64(u, 6, (int64_t)off);
    sqlite3_bind_int64(u, 7, line);
    sqlite3_bind_int64(u, 8, g->file_id);
    if (sqlite3_step(u) != SQLITE_DONE)
      rc = kv_err_set(err, KV_EIO, "%s: files: %s", g->db->path, sqlite3_errmsg(g->db->db));
    sqlite3_finalize(u);
  }
out_txn:
  if (rc) {
    log_db_exec(g->db, "ROLLBACK", NULL);
    goto out_src;
  }
  if ((rc = log_db_exec(g->db, "COMMIT", err))) goto out_src;
  if (!is_stdin && off > 0 && off == (uint64_t)sb.st_size && s.kind == SRC_PLAIN) {
    g->st->files_skipped++; /* nothing new */
    goto out_src;
  }
  lines L;
  size_t max_line = g->o && g->o->max_line ? g->o->max_line : (1u << 20);
  if ((rc = lines_init(&L, &s, max_line, off, err))) goto out_src;
  if (off > 0) {
    if ((rc = learn(g, path, NULL, 0, err))) goto out_lines;
    if (src_skip(&s, off)) {
      /* shorter than the resume point: the file was truncated, start over */
      src_close(&s);
      if ((rc = src_open(&s, path, err))) goto out_lines;
      L.s = &s, L.off = 0, L.eof = 0, L.beg = L.end = 0;
      off = 0, line = 0;
    }
  } else if ((rc = learn(g, path, &L, 1, err))) {
    goto out_lines;
  }
  int headered = log_fmt_columns(g->fmt) > 0;
  g->last_ts = INT64_MIN;
  g->have = 0;
  const char *p;
  size_t n;
  uint64_t start;
  int cut;
  size_t batch = g->o && g->o->batch ? g->o->batch : 20000;
  while (lines_next(&L, &p, &n, &start, &cut)) {
    line++;
    g->st->lines++;
    g->st->bytes += n + 1;
    g->done_bytes += n + 1;
    if (cut) g->st->long_lines++;
    while (n > 0 && p[n - 1] == '\r') n--;
    if (n + 1 > g->cleancap) {
      size_t nc = n + 4096;
      char *c = realloc(g->clean, nc);
      if (!c) {
        rc = kv_err_set(err, KV_ENOMEM, "%s: line %lld: out of memory", path, (long long)line);
        break;
      }
      g->clean = c, g->cleancap = nc;
    }
    int binary;
    if (sanitize(p, n, g->clean, &binary)) g->st->invalid_utf8++;
    if (binary) g->st->binary_lines++;
    log_line ln;
    int cont = 0;
    log_line_parse(g->fmt, g->clean, n, g->year, &ln);
    if (g->have) {
      if (headered) {
        cont = !ln.has_header && log_is_continuation(g->clean, n);
        if (!ln.has_header && !cont && n > 0 && (g->clean[0] == ' ' || g->clean[0] == '\t')) cont = 1;
      } else {
        cont = log_is_continuation(g->clean, n) && n > 0;
      }
    }
    if (cont) {
      if ((rc = append(g, g->clean, n))) break;
      continue;
    }
    if (g->have && g->since_commit + 1 >= batch) {
      /* commit before this line: the resume point is the pending record */
      if ((rc = emit(g, err))) break;
      if ((rc = commit(g, err, start, line - 1))) break;
      if (g->o && g->o->cancel && *g->o->cancel) {
        rc = kv_err_set(err, KV_ECANCELED, "%s: ingest canceled at line %lld", path, (long long)line);
        break;
      }
    } else if ((rc = emit(g, err))) {
      break;
    }
    g->rlen = 0;
    if ((rc = append(g, g->clean, n))) break;
    g->first_len = g->rlen;
    g->pl = ln;
    g->pl_content = (size_t)(ln.content - g->clean);
    if (g->pl_content > g->rlen) g->pl_content = g->rlen; /* a cut record */
    if (ln.content_len > g->rlen - g->pl_content) g->pl.content_len = g->rlen - g->pl_content;
    if (ln.comp && (size_t)(ln.comp - g->clean) + ln.comp_len > g->rlen) g->pl.comp = NULL, g->pl.comp_len = 0;
    if (ln.thread && (size_t)(ln.thread - g->clean) + ln.thread_len > g->rlen) g->pl.thread = NULL;
    g->pl_comp = ln.comp ? (size_t)(ln.comp - g->clean) : 0;
    g->pl_thread = ln.thread ? (size_t)(ln.thread - g->clean) : 0;
    g->rstart = start;
    g->rline = line;
    g->have = 1;
  }
  if (!rc) rc = emit(g, err);
  if (!rc) rc = commit(g, err, L.off, line);
  if (s.truncated) g->st->truncated++;
  if (!rc) g->st->files++;
out_lines:
  lines_free(&L);
out_src:
  /* what was not handed over is dropped, as a rolled back transaction */
  if (g->cur) blk_free(g->cur);
  free(g->cur);
  g->cur = NULL;
  batch_free(g->b);
  g->b = NULL;
  g->have = 0;
  g->since_commit = 0;
  log_fmt_free(g->fmt);
  g->fmt = NULL;
  src_close(&s);
  return rc;
}

static int has_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int walk(ing *g, const char *path, int depth, kv_err *err);

static int walk_dir(ing *g, const char *path, int depth, kv_err *err) {
  DIR *d = opendir(path);
  if (!d) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  int rc = 0;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 64;
      char **nn = realloc(names, cap * sizeof *nn);
      if (!nn) {
        rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory listing", path);
        break;
      }
      names = nn;
    }
    names[n] = malloc(strlen(path) + strlen(e->d_name) + 2);
    if (!names[n]) {
      rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory listing", path);
      break;
    }
    sprintf(names[n], "%s/%s", path, e->d_name);
    n++;
  }
  closedir(d);
  if (!rc) qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n && !rc; i++) rc = walk(g, names[i], depth + 1, err);
  for (size_t i = 0; i < n; i++) free(names[i]);
  free(names);
  return rc;
}

static int walk(ing *g, const char *path, int depth, kv_err *err) {
  struct stat sb;
  if (!strcmp(path, "-")) return ingest_file(g, path, err);
  if (stat(path, &sb) == 0) {
    if (S_ISDIR(sb.st_mode)) return depth < 32 ? walk_dir(g, path, depth, err) : 0;
    if (!S_ISREG(sb.st_mode)) {
      g->st->files_skipped++;
      return 0;
    }
    int rc = ingest_file(g, path, err);
    if (rc && rc != KV_ECANCELED && rc != KV_ENOMEM) {
      /* one unreadable file does not stop the others */
      fprintf(stderr, "kvasir logs: %s\n", err ? err->msg : path);
      g->st->files_skipped++;
      return 0;
    }
    return rc;
  }
  if (has_glob(path)) {
    glob_t gl;
    int r = glob(path, 0, NULL, &gl);
    if (r == GLOB_NOMATCH) return kv_err_set(err, KV_ENOTFOUND, "%s: no file matches", path);
    if (r) return kv_err_set(err, KV_EIO, "%s: glob failed", path);
    int rc = 0;
    for (size_t i = 0; i < gl.gl_pathc && !rc; i++) rc = walk(g, gl.gl_pathv[i], depth + 1, err);
    globfree(&gl);
    return rc;
  }
  return kv_err_set(err, KV_ENOTFOUND, "%s: %s", path, strerror(errno));
}

static void total_size(const char *path, uint64_t *tot, int depth) {
  struct stat sb;
  if (depth > 32 || stat(path, &sb)) return;
  if (S_ISREG(sb.st_mode)) *tot += (uint64_t)sb.st_size;
  else if (S_ISDIR(sb.st_mode)) {
    DIR *d = opendir(path);
    if (!d) return;
    struct dirent *e;
    char sub[4096];
    while ((e = readdir(d)))
      if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
        snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        total_size(sub, tot, depth + 1);
      }
    closedir(d);
  }
}

int log_ingest(log_db *db, const char *const *paths, int npaths, const log_ingest_opts *opts,
               log_ingest_stats *stats, kv_err *err) {
  log_ingest_stats local;
  if (!stats) stats = &local;
  memset(stats, 0, sizeof *stats);
  double t0 = kv_now();
  int rc = log_db_miner(db, err);
  if (rc) return rc;
  ing g;
  writer w;
  memset(&g, 0, sizeof g);
  g.db = db;
  g.o = opts;
  g.st = stats;
  g.w = &w;
  uint32_t nt0 = log_miner_count(db->miner);
  for (int i = 0; i < npaths; i++) total_size(paths[i], &g.total_bytes, 0);
  rc = log_db_exec(db, "PRAGMA cache_size=-65536", err);
  if (!rc) rc = comp_load(&g, err);
  if (!rc) {
    sqlite3_stmt *st;
    if (!(rc = log_db_prepare(db, &st, "SELECT coalesce(max(id + n), 1) FROM bsum", err))) {
      g.next_id = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 1;
      sqlite3_finalize(st);
    }
  }
  int wrc = 0;
  if (!rc) rc = writer_start(&w, db, err);
  else memset(&w, 0, sizeof w);
  for (int i = 0; i < npaths && !rc; i++) rc = walk(&g, paths[i], 0, err);
  kv_err werr = {0};
  wrc = writer_stop(&w, &werr);
  if (wrc && (!rc || rc == KV_ECANCELED)) {
    rc = wrc;
    if (err) *err = werr;
  }
  if (rc && rc != KV_ECANCELED) log_db_forget(db);
  free(g.rec);
  free(g.clean);
  comp_free(&g.comps);
  stats->new_templates = db->miner ? log_miner_count(db->miner) - nt0 : 0;
  stats->seconds = kv_now() - t0;
  return rc;
}
