/*
 * query.c — record queries and their JSON rendering.
 *
 * Filters combine with AND; values are bound, never spliced into SQL. The
 * records live in blocks (block.c); a query works on the in-memory block
 * summaries:
 *   1. filters become sets: a template (and/or the templates whose text
 *      the trigram FTS5 index matches) -> the set of patterns mapped to
 *      them; a component -> its id; a parameter value -> the blocks whose
 *      bloom filter may hold it (identifier-like values: the filter in the
 *      summary; numbers and durations: bsum.nbloom, read for the query);
 *   2. every block that can hold a match gets a lower bound on the time of
 *      its first match (the earliest ts of a matching level, pattern and
 *      component in its summary, and `since`);
 *   3. blocks are decoded in order of that bound, each record is checked
 *      exactly, and the `limit` earliest (ts, id) are kept; the scan stops
 *      at the first block whose bound is past the last kept record.
 * Text search asks the template index first; if no template matches, the
 * record texts are scanned (a substring), so a value inside a parameter is
 * still found. A parameter filter matches one variable value exactly (the
 * bloom filters only narrow the blocks to read). Results are
 * ordered by (ts, id), records without a timestamp first.
 */
#define _GNU_SOURCE
#include "logs/mine_internal.h"
#include "logs/internal.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dupcol(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : strdup("");
}

void log_result_free(log_result *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) {
    free(r->rows[i].file);
    free(r->rows[i].component);
    free(r->rows[i].text);
    free(r->rows[i].template_text);
  }
  free(r->rows);
  memset(r, 0, sizeof *r);
}

/* FTS5 phrase: the text in double quotes, inner quotes doubled. */
static char *fts_phrase(const char *s) {
  size_t n = strlen(s), k = 0;
  char *o = malloc(2 * n + 3);
  if (!o) return NULL;
  o[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"') o[k++] = '"';
    o[k++] = s[i];
  }
  o[k++] = '"';
  o[k] = 0;
  return o;
}

/* A bitmap over pattern ids. */
typedef struct pset {
  uint64_t *w;
  size_t nbits;
} pset;

static int pset_has(const pset *s, uint32_t p) { return p < s->nbits && (s->w[p >> 6] >> (p & 63)) & 1; }

/* Patterns of the templates a SELECT of template ids returns. */
static int pset_from(log_db *db, pset *s, const char *tsql, const char *bind_text, int64_t bind_id, kv_err *err) {
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, "SELECT coalesce(max(id), 0) FROM patterns", err);
  if (rc) return rc;
  int64_t mx = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  s->nbits = (size_t)(mx > 0 ? mx : 0) + 1;
  s->w = calloc((s->nbits + 63) / 64, sizeof *s->w);
  if (!s->w) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT id FROM patterns WHERE template_id IN (%s)", tsql);
  if ((rc = log_db_prepare(db, &st, sql, err))) return rc;
  if (bind_text) sqlite3_bind_text(st, 1, bind_text, -1, SQLITE_STATIC);
  else sqlite3_bind_int64(st, 1, bind_id);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t p = sqlite3_column_int64(st, 0);
    if (p >= 0 && (size_t)p < s->nbits) s->w[p >> 6] |= 1ULL << (p & 63);
  }
  sqlite3_finalize(st);
  return 0;
}

/* A kept record: (ts, id) orders; blk/rec say where it is. */
typedef struct hit {
  int64_t ts, id;
  uint32_t blk, rec;
} hit;

static int hit_lt(const hit *a, const hit *b) { return a->ts < b->ts || (a->ts == b->ts && a->id < b->id); }

/* max-heap of the best k */
static void heap_push(hit *h, size_t *n, size_t k, hit x) {
  if (*n == k) {
    if (!hit_lt(&x, &h[0])) return;
    size_t i = 0;
    for (;;) {
      size_t l = 2 * i + 1, r = l + 1, m = i;
      if (l < k && hit_lt(&x, &h[l])) m = l;
      if (r < k && hit_lt(m == i ? &x : &h[m], &h[r])) m = r;
      if (m == i) break;
      h[i] = h[m];
      i = m;
    }
    h[i] = x;
    return;
  }
  size_t i = (*n)++;
  while (i > 0 && hit_lt(&h[(i - 1) / 2], &x)) {
    h[i] = h[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  h[i] = x;
}

static int cmp_hit(const void *a, const void *b) {
  const hit *x = a, *y = b;
  return hit_lt(x, y) ? -1 : hit_lt(y, x) ? 1 : 0;
}

typedef struct cand {
  int64_t lb, id;
  uint32_t blk;
} cand;

static int cmp_cand(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->lb != y->lb) return x->lb < y->lb ? -1 : 1;
  return (x->id > y->id) - (x->id < y->id);
}

/* Block reader: the columns of one block, and on demand one text frame. */
typedef struct breader {
  log_db *db;
  sqlite3_stmt *qm;
  sqlite3_blob *blob; /* bdata.data, read a frame at a time */
  kv_buf z;             /* a compressed frame */
  log_blk_cols *c;
  kv_buf data;
  size_t toff[BLK_FRAME], poff[BLK_FRAME];
  uint32_t r0, r1; /* records of the frame in data */
  int64_t id;      /* block whose columns are in c */
  int64_t did;     /* block whose frame is in data */
} breader;

static int br_open(breader *r, log_db *db, kv_err *err) {
  memset(r, 0, sizeof *r);
  r->db = db;
  r->id = r->did = -1;
  r->c = calloc(1, sizeof *r->c);
  if (!r->c) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  return log_db_prepare(db, &r->qm, "SELECT meta FROM bdata WHERE id = ?", err);
}

static void br_close(breader *r) {
  sqlite3_finalize(r->qm);
  if (r->blob) sqlite3_blob_close(r->blob);
  kv_buf_free(&r->z);
  if (r->c) log_blk_cols_free(r->c);
  free(r->c);
  kv_buf_free(&r->data);
}

static int br_meta(breader *r, int64_t id, kv_err *err) {
  if (r->id == id) return 0;
  r->id = -1;
  sqlite3_bind_int64(r->qm, 1, id);
  int rc;
  if (sqlite3_step(r->qm) != SQLITE_ROW)
    rc = kv_err_set(err, KV_EFORMAT, "%s: block %lld has no data row", r->db->path, (long long)id);
  else
    rc = log_blk_meta_decode(r->c, sqlite3_column_blob(r->qm, 0), (size_t)sqlite3_column_bytes(r->qm, 0), r->db->dc, id, err);
  sqlite3_reset(r->qm);
  if (!rc) r->id = id;
  return rc;
}

/* Text and params of record i of block id (after br_meta(id)): only the
 * frame table and the one compressed frame are read from the blob. */
static int br_rec(breader *r, int64_t id, uint32_t i, const uint8_t **text, const uint8_t **par, kv_err *err) {
  if (r->did != id || i < r->r0 || i >= r->r1) {
    r->did = -1;
    int s = r->blob ? sqlite3_blob_reopen(r->blob, id)
                    : sqlite3_blob_open(r->db->db, "main", "bdata", "data", id, 0, &r->blob);
    if (s != SQLITE_OK)
      return kv_err_set(err, KV_EFORMAT, "%s: block %lld: cannot read its texts: %s", r->db->path, (long long)id,
                        sqlite3_errmsg(r->db->db));
    size_t total = (size_t)sqlite3_blob_bytes(r->blob), hn = total < 64 ? total : 64, off = 0, zlen = 0;
    int rc;
    for (;;) {
      if (kv_buf_reserve(&r->z, hn)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
      if (sqlite3_blob_read(r->blob, r->z.data, (int)hn, 0) != SQLITE_OK)
        return kv_err_set(err, KV_EIO, "%s: block %lld: reading texts: %s", r->db->path, (long long)id,
                          sqlite3_errmsg(r->db->db));
      rc = log_blk_frame_find(r->c, r->z.data, hn, total, i, &r->r0, &r->r1, &off, &zlen, id, err);
      if (rc != 1) break;
      hn = total; /* a long frame table: read it all */
    }
    if (rc) return rc;
    kv_buf_reset(&r->z);
    if (kv_buf_reserve(&r->z, zlen + 1)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    if (sqlite3_blob_read(r->blob, r->z.data, (int)zlen, (int)off) != SQLITE_OK)
      return kv_err_set(err, KV_EIO, "%s: block %lld: reading texts: %s", r->db->path, (long long)id,
                        sqlite3_errmsg(r->db->db));
    if ((rc = log_blk_frame_unpack(r->c, r->z.data, zlen, r->r0, r->r1, r->db->dc, &r->data, r->toff, r->poff, id, err)))
      return rc;
    r->did = id;
  }
  *text = (const uint8_t *)r->data.data + r->toff[i - r->r0];
  *par = (const uint8_t *)r->data.data + r->poff[i - r->r0];
  return 0;
}

static int cmp_hit_pos(const void *a, const void *b) {
  const hit *x = a, *y = b;
  if (x->blk != y->blk) return x->blk < y->blk ? -1 : 1;
  return (x->rec > y->rec) - (x->rec < y->rec);
}

static int has_sub(const uint8_t *h, size_t hn, const char *n, size_t nn) {
  return nn == 0 || (nn <= hn && memmem(h, hn, n, nn) != NULL);
}

static int query_run(log_db *db, const log_query *q, log_result *out, kv_err *err);

int log_query_run(log_db *db, const log_query *q, log_result *out, kv_err *err) {
  int began = log_db_read_begin(db);
  int rc = query_run(db, q, out, err);
  log_db_read_end(db, began);
  return rc;
}

static int query_run(log_db *db, const log_query *q, log_result *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  int rc = log_db_sums(db, err);
  if (rc) return rc;
  size_t k = q->limit > 0 ? (size_t)q->limit : 100;
  pset ps = {0}, ps2 = {0};
  int use_ps = 0, textscan = 0, none = 0, use_bloom = 0;
  int64_t *nblk = NULL; /* numbers: candidate blocks (sorted ids) */
  size_t nnb = 0, nbi = 0;
  uint32_t comp = 0;
  char *pv = NULL, *ph = NULL;
  size_t pvn = 0;
  cand *cs = NULL;
  hit *heap = NULL;
  size_t nh = 0;
  breader br;
  memset(&br, 0, sizeof br);
  if (q->template_id) {
    if ((rc = pset_from(db, &ps, "?", NULL, q->template_id, err))) goto done;
    use_ps = 1;
  }
  if (q->text) {
    int hits = 0;
    if (strlen(q->text) >= 3) { /* the trigram index needs 3 characters */
      if (!(ph = fts_phrase(q->text))) {
        rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
        goto done;
      }
      sqlite3_stmt *st;
      if ((rc = log_db_prepare(db, &st, "SELECT count(*) FROM templates_fts WHERE templates_fts MATCH ?", err))) goto done;
      sqlite3_bind_text(st, 1, ph, -1, SQLITE_STATIC);
      if (sqlite3_step(st) == SQLITE_ROW) hits = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
    }
    if (hits) {
      if ((rc = pset_from(db, use_ps ? &ps2 : &ps, "SELECT rowid FROM templates_fts WHERE templates_fts MATCH ?", ph, 0,
                          err)))
        goto done;
      if (use_ps)
        for (size_t i = 0; i < (ps.nbits + 63) / 64; i++) ps.w[i] &= i < (ps2.nbits + 63) / 64 ? ps2.w[i] : 0;
      use_ps = 1;
    } else {
      textscan = 1;
    }
  }
  if (q->component) {
    sqlite3_stmt *st;
    if ((rc = log_db_prepare(db, &st, "SELECT id FROM comps WHERE name = ?", err))) goto done;
    sqlite3_bind_text(st, 1, q->component, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) comp = (uint32_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (!comp) none = 1;
  }
  if (q->param) {
    size_t l = strlen(q->param);
    if (!(pv = malloc(l + 3))) {
      rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
      goto done;
    }
    pv[0] = '\x1f';
    memcpy(pv + 1, q->param, l);
    pv[l + 1] = '\x1f';
    pv[l + 2] = 0;
    pvn = l + 2;
    /* numbers and durations are not in the parameter index (see
     * ingest_pipe.c): scan for them */
    int ty = log_m_type(q->param, l);
    use_bloom = ty != LOG_P_NUM && ty != LOG_P_DURATION;
    if (!use_bloom) {
      /* numbers: the blocks whose numbers filter may hold the value */
      sqlite3_stmt *st;
      if ((rc = log_db_prepare(db, &st, "SELECT id, nbloom FROM bsum WHERE nbloom IS NOT NULL ORDER BY id", err))) goto done;
      size_t cap = 0;
      while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        if (!log_blk_bloom_test(sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), q->param, l)) continue;
        if (KV_GROW(nblk, cap, nnb + 1)) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
        if (!rc) nblk[nnb++] = sqlite3_column_int64(st, 0);
      }
      sqlite3_finalize(st);
      if (rc) goto done;
    }
  }
  if (none || db->nsums == 0) goto done;
  /* candidate blocks with the lower bound of their first match */
  if (!(cs = malloc(db->nsums * sizeof *cs)) || !(heap = malloc(k * sizeof *heap))) {
    rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    goto done;
  }
  size_t nc = 0;
  int lmin = q->min_level > 0 ? (q->min_level > 7 ? 7 : q->min_level) : 0;
  for (size_t i = 0; i < db->nsums; i++) {
    const log_blk_sum *b = &db->sums[i];
    if (q->since_ms && b->ts_max < q->since_ms) continue;
    if (q->until_ms && b->ts_min >= q->until_ms) continue;
    if (q->param) {
      /* a value the tokenizer typed otherwise (an epoch stamp is a time)
       * is in the other filter: a number is looked up in both */
      int in = log_blk_bloom_has(b, pv + 1, pvn - 2);
      if (!in && !use_bloom) {
        while (nbi < nnb && nblk[nbi] < b->id) nbi++;
        in = nbi < nnb && nblk[nbi] == b->id;
      }
      if (!in) continue;
    }
    int64_t lb = b->ts_min;
    if (lmin) {
      int64_t m = INT64_MAX;
      for (int l = lmin; l < 8; l++)
        if (b->lvl_min[l] < m) m = b->lvl_min[l];
      if (m == INT64_MAX) continue;
      if (m > lb) lb = m;
    }
    if (use_ps) {
      int64_t m = INT64_MAX;
      for (uint32_t j = 0; j < b->npat; j++)
        if (b->pat_min[j] < m && pset_has(&ps, b->pat[j])) m = b->pat_min[j];
      if (m == INT64_MAX) continue;
      if (m > lb) lb = m;
    }
    if (comp) {
      int64_t m = INT64_MAX;
      for (uint32_t j = 0; j < b->ncomp; j++)
        if (b->comp[j] == comp) m = b->comp_min[j];
      if (m == INT64_MAX) continue;
      if (m > lb) lb = m;
    }
    if (q->since_ms && lb < q->since_ms) lb = q->since_ms;
    if (q->until_ms && lb >= q->until_ms) continue;
    cs[nc].lb = lb, cs[nc].id = b->id, cs[nc].blk = (uint32_t)i;
    nc++;
  }
  qsort(cs, nc, sizeof *cs, cmp_cand);
  if ((rc = br_open(&br, db, err))) goto done;
  int need_data = textscan || q->param;
  size_t tl = q->text ? strlen(q->text) : 0;
  for (size_t ci = 0; ci < nc && !rc; ci++) {
    if (nh == k && (cs[ci].lb > heap[0].ts || (cs[ci].lb == heap[0].ts && cs[ci].id > heap[0].id))) break;
    const log_blk_sum *b = &db->sums[cs[ci].blk];
    if ((rc = br_meta(&br, b->id, err))) break;
    const log_blk_cols *c = br.c;
    for (uint32_t i = 0; i < c->n && !rc; i++) {
      int64_t ts = c->ts[i];
      if (q->since_ms && (ts == INT64_MIN || ts < q->since_ms)) continue;
      if (q->until_ms && (ts == INT64_MIN || ts >= q->until_ms)) continue;
      if (lmin && c->lvl[i] < lmin) continue;
      if (use_ps && !pset_has(&ps, c->pat[i])) continue;
      if (comp && c->comp[i] != comp) continue;
      hit h = {ts, b->id + i, cs[ci].blk, i};
      if (nh == k && !hit_lt(&h, &heap[0])) continue;
      if (need_data) {
        const uint8_t *tx, *pa;
        if ((rc = br_rec(&br, b->id, i, &tx, &pa, err))) break;
        if (textscan && !has_sub(tx, c->tlen[i], q->text, tl)) continue;
        if (q->param && !has_sub(pa, c->plen[i], pv, pvn)) continue;
      }
      heap_push(heap, &nh, k, h);
    }
  }
  if (rc) goto done;
  qsort(heap, nh, sizeof *heap, cmp_hit);
  if (nh && !(out->rows = calloc(nh, sizeof *out->rows))) {
    rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    goto done;
  }
  out->n = nh;
  /* rows: texts from their blocks (each block read once), file paths,
   * component names and template texts */
  for (size_t i = 0; i < nh; i++) {
    long bi = log_db_block_of(db, heap[i].id);
    heap[i].blk = (uint32_t)(bi < 0 ? 0 : bi);
    heap[i].rec = (uint32_t)(heap[i].id - db->sums[heap[i].blk].id);
    heap[i].ts = (int64_t)i; /* position in the result */
  }
  qsort(heap, nh, sizeof *heap, cmp_hit_pos);
  sqlite3_stmt *tq = NULL, *cq = NULL;
  if ((rc = log_db_prepare(db, &tq,
                           "SELECT p.template_id, coalesce(t.text, '') FROM patterns p LEFT JOIN templates t "
                           "ON t.id = p.template_id WHERE p.id = ?",
                           err)) ||
      (rc = log_db_prepare(db, &cq, "SELECT name FROM comps WHERE id = ?", err))) {
    sqlite3_finalize(tq);
    goto done;
  }
  int64_t fid = -1;
  char fpath[4096] = "";
  for (size_t i = 0; i < nh && !rc; i++) {
    const log_blk_sum *b = &db->sums[heap[i].blk];
    if ((rc = br_meta(&br, b->id, err))) break;
    uint32_t j = heap[i].rec;
    const uint8_t *tx, *pa;
    if ((rc = br_rec(&br, b->id, j, &tx, &pa, err))) break;
    log_row *r = &out->rows[heap[i].ts];
    r->id = heap[i].id;
    r->ts_ms = br.c->ts[j];
    r->line_no = br.c->line[j];
    r->level = br.c->lvl[j];
    if (b->file_id != fid) log_db_file_path(db, fid = b->file_id, fpath, sizeof fpath);
    r->file = strdup(fpath);
    r->text = strndup((const char *)tx, br.c->tlen[j]);
    if (br.c->comp[j]) {
      sqlite3_bind_int64(cq, 1, br.c->comp[j]);
      if (sqlite3_step(cq) == SQLITE_ROW) r->component = dupcol(cq, 0);
      sqlite3_reset(cq);
    }
    if (!r->component) r->component = strdup("");
    sqlite3_bind_int64(tq, 1, br.c->pat[j]);
    if (sqlite3_step(tq) == SQLITE_ROW) {
      r->template_id = sqlite3_column_int64(tq, 0);
      r->template_text = dupcol(tq, 1);
    } else {
      r->template_text = strdup("");
    }
    sqlite3_reset(tq);
    if (!r->file || !r->text || !r->component || !r->template_text) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  }
  sqlite3_finalize(tq);
  sqlite3_finalize(cq);
done:
  br_close(&br);
  free(ps.w), free(ps2.w), free(pv), free(ph), free(cs), free(heap), free(nblk);
  if (rc) log_result_free(out);
  return rc;
}

static void add_ts(cJSON *o, const char *k, int64_t ms) {
  if (ms == INT64_MIN) cJSON_AddNullToObject(o, k);
  else cJSON_AddNumberToObject(o, k, (double)ms);
}

cJSON *log_result_json(const log_result *r) {
  cJSON *a = cJSON_CreateArray();
  if (!a) return NULL;
  for (size_t i = 0; i < r->n; i++) {
    const log_row *w = &r->rows[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) break;
    cJSON_AddNumberToObject(o, "id", (double)w->id);
    add_ts(o, "ts_ms", w->ts_ms);
    cJSON_AddStringToObject(o, "level", log_level_name(w->level));
    cJSON_AddNumberToObject(o, "template_id", (double)w->template_id);
    cJSON_AddStringToObject(o, "template", w->template_text);
    cJSON_AddStringToObject(o, "file", w->file);
    cJSON_AddNumberToObject(o, "line", (double)w->line_no);
    cJSON_AddStringToObject(o, "component", w->component);
    cJSON_AddStringToObject(o, "text", w->text);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

cJSON *log_ingest_stats_json(const log_ingest_stats *s) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
#define N(f) cJSON_AddNumberToObject(o, #f, (double)s->f)
  N(files), N(files_skipped), N(bytes), N(lines), N(records), N(new_templates), N(binary_lines), N(invalid_utf8),
      N(long_lines), N(no_timestamp), N(clock_jumps), N(truncated), N(seconds);
#undef N
  return o;
}
