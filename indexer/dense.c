/*
 * dense.c — optional dense retrieval: a vector per code chunk from an
 * embedding function the caller supplies (the indexer links no model; the
 * bench and a daemon pass the engine's eng_embed), fused with idx_search's
 * ranking by reciprocal rank fusion.
 *
 * Storage (docs/index.md): the tables chunk_vecs(chunk, blob, line0, model,
 * vec) and def_vecs(sym, blob, line0, model, vec) (idx_dense.unit: a vector
 * per chunk, or per definition, a chunk then scoring its best definition),
 * made here on first use and outside the schema version, because they are
 * a cache: a vector is valid while a chunk (symbol) with that id, blob and
 * line0 exists and `model` names the embedding function in use. idx_dense_sync
 * first drops every vector that is not valid, then embeds the chunks of the
 * current view (files with worktree < 2, not skipped, with a grammar) that
 * have none, so a sync re-embeds only the chunks of blobs it parsed. vec is
 * dim little-endian f32, unit length.
 *
 * What is embedded (the "embedding text"): per chunk, the file path, the
 * sub-words of the chunk's definition names, then the chunk's text, cut to
 * 1,500 bytes (the encoder cuts again at its own token limit); per
 * definition (def_text), the path, scope and name with their sub-words, the
 * signature, the doc comment and the first DEF_LINES lines.
 *
 * Fusion (idx_search_fused): idx_search's top FUSE_DEPTH and the
 * FUSE_DEPTH chunks of highest cosine with the query's embedding, each chunk
 * scored 1/(k + rank_lexical) + w/(k + rank_dense) (k, w from idx_dense;
 * defaults FUSE_K 5 and FUSE_W 0.3); a chunk absent from one list gets
 * nothing from it.
 * The scan is brute force over the view's vectors (a few thousand per repo
 * here).
 */
#include "internal.h"
#include "parse_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FUSE_DEPTH 100
/* Chosen on the answer bench's tune split (docs/dense.md): RRF's usual
 * k = 60 flattens the lexical ranking so much that any dense vote reorders
 * its top (tune sym@5 0.735 -> 0.529 at w 1); a small k keeps BM25's head
 * apart and a weight of 0.3 lets the dense list break near-ties. */
#define FUSE_K 5
#define FUSE_W 0.3
#define EMBED_TEXT_MAX 1500

#define VIEW_EXISTS \
  " EXISTS(SELECT 1 FROM files f WHERE f.oid = b.oid AND f.worktree < 2 AND f.skip = 0)"

static const char TABLES[] =
    "CREATE TABLE IF NOT EXISTS chunk_vecs(chunk INTEGER PRIMARY KEY, blob INTEGER NOT NULL, line0 INTEGER,"
    " model TEXT NOT NULL, vec BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS def_vecs(sym INTEGER PRIMARY KEY, blob INTEGER NOT NULL, line0 INTEGER,"
    " model TEXT NOT NULL, vec BLOB NOT NULL);";

/* Per unit (IDX_DENSE_CHUNKS, IDX_DENSE_DEFS): drop invalid vectors; the
 * rows to embed (id, blob, line0, then the text columns: embed_text's or
 * def_text's); insert; the query scan (chunk id, vector). */
static const char *const CLEANUP[2] = {
    "DELETE FROM chunk_vecs WHERE model != ?1 OR NOT EXISTS(SELECT 1 FROM chunks c WHERE"
    " c.id = chunk_vecs.chunk AND c.blob = chunk_vecs.blob AND c.line0 IS chunk_vecs.line0)",
    "DELETE FROM def_vecs WHERE model != ?1 OR NOT EXISTS(SELECT 1 FROM symbols s WHERE"
    " s.id = def_vecs.sym AND s.blob = def_vecs.blob AND s.line0 IS def_vecs.line0)"};
static const char *const TODO[2] = {
    "SELECT c.id, c.blob, c.line0, ifnull(c.defs, ''), ifnull(c.text, ''),"
    " (SELECT min(f.path) FROM files f WHERE f.oid = b.oid AND f.worktree < 2 AND f.skip = 0)"
    " FROM chunks c JOIN blobs b ON b.id = c.blob WHERE b.lang IS NOT NULL AND b.lang != ''"
    " AND" VIEW_EXISTS " AND NOT EXISTS(SELECT 1 FROM chunk_vecs v WHERE v.chunk = c.id) ORDER BY c.id",
    "SELECT s.id, s.blob, s.line0, s.name, ifnull(c.text, ''),"
    " (SELECT min(f.path) FROM files f WHERE f.oid = b.oid AND f.worktree < 2 AND f.skip = 0),"
    " ifnull(s.scope, ''), ifnull(s.sig, ''), c.line0"
    " FROM symbols s JOIN chunks c ON c.blob = s.blob AND s.line0 BETWEEN c.line0 AND c.line1"
    " JOIN blobs b ON b.id = s.blob WHERE b.lang IS NOT NULL AND b.lang != ''"
    " AND" VIEW_EXISTS " AND NOT EXISTS(SELECT 1 FROM def_vecs v WHERE v.sym = s.id) GROUP BY s.id ORDER BY s.id"};
static const char *const INSERT[2] = {
    "INSERT OR REPLACE INTO chunk_vecs(chunk, blob, line0, model, vec) VALUES(?1,?2,?3,?4,?5)",
    "INSERT OR REPLACE INTO def_vecs(sym, blob, line0, model, vec) VALUES(?1,?2,?3,?4,?5)"};
static const char *const SCAN[2] = {
    "SELECT v.chunk, v.vec FROM chunk_vecs v JOIN chunks c ON c.id = v.chunk AND c.blob = v.blob"
    " JOIN blobs b ON b.id = c.blob WHERE v.model = ?1 AND" VIEW_EXISTS,
    "SELECT c.id, v.vec FROM def_vecs v JOIN symbols s ON s.id = v.sym AND s.blob = v.blob"
    " JOIN chunks c ON c.blob = s.blob AND s.line0 BETWEEN c.line0 AND c.line1"
    " JOIN blobs b ON b.id = c.blob WHERE v.model = ?1 AND" VIEW_EXISTS};

static int dberr(idx_index *ix, sqlite3 *db, kv_err *err, const char *what) {
  return kv_err_set(err, KV_EIO, "%s: dense %s: %s", ix->db_path, what, sqlite3_errmsg(db));
}

/* The embedding text of a chunk into *buf. */
static int embed_text(const char *path, const char *defs, const char *text, char **buf, size_t *len, size_t *cap) {
  *len = 0;
  size_t np = strlen(path), nd = strlen(defs), nt = strlen(text);
  if (nt > EMBED_TEXT_MAX) nt = EMBED_TEXT_MAX;
  if (KV_GROW(*buf, *cap, np + 2 * nd + nt + 8)) return KV_ENOMEM;
  memcpy(*buf, path, np);
  *len = np;
  (*buf)[(*len)++] = '\n';
  if (nd) {
    char *sub = NULL;
    size_t sl = 0, sc = 0;
    if (idx_subwords(defs, nd, &sub, &sl, &sc)) return KV_ENOMEM;
    const char *s = sl ? sub : defs;
    size_t n = sl ? sl : nd;
    if (KV_GROW(*buf, *cap, *len + n + nt + 4)) { free(sub); return KV_ENOMEM; }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    free(sub);
  }
  memcpy(*buf + *len, text, nt);
  *len += nt;
  return 0;
}

/* A definition's embedding text: path, scope and name sub-words, signature,
 * then its doc comment (comment lines right above it in its chunk) and its
 * first lines, DEF_LINES at most. */
#define DEF_LINES 12
static int def_text(const char *path, const char *scope, const char *name, const char *sig, const char *ctext,
                    int cline0, int line0, char **buf, size_t *len, size_t *cap) {
  /* the chunk's lines: find the definition's first line, then walk up over comments */
  const char *p = ctext;
  for (int l = cline0; l < line0 && *p; l++) {
    const char *nl = strchr(p, '\n');
    p = nl ? nl + 1 : p + strlen(p);
  }
  const char *start = p;
  while (start > ctext) {
    const char *e = start - 1, *b = e; /* e at the '\n' ending the line above */
    while (b > ctext && b[-1] != '\n') b--;
    if (!idx_comment_line(b, (size_t)(e - b))) break;
    start = b;
  }
  const char *end = p;
  for (int k = 0; k < DEF_LINES && *end; k++) {
    const char *nl = strchr(end, '\n');
    end = nl ? nl + 1 : end + strlen(end);
  }
  size_t body = (size_t)(end - start);
  if (body > EMBED_TEXT_MAX) body = EMBED_TEXT_MAX;
  char *sub = NULL;
  size_t sl = 0, sc = 0;
  char nm[600];
  snprintf(nm, sizeof nm, "%s %s", scope, name);
  if (idx_subwords(nm, strlen(nm), &sub, &sl, &sc)) return KV_ENOMEM;
  size_t need = strlen(path) + strlen(nm) + sl + strlen(sig) + body + 8;
  if (KV_GROW(*buf, *cap, need)) { free(sub); return KV_ENOMEM; }
  int n = snprintf(*buf, *cap, "%s\n%s %s\n%s\n", path, nm, sl ? sub : "", sig);
  free(sub);
  *len = n < 0 ? 0 : (size_t)n < *cap ? (size_t)n : *cap - 1;
  if (*len + body + 1 > *cap) body = *cap - *len - 1;
  memcpy(*buf + *len, start, body);
  *len += body;
  return 0;
}

int idx_dense_sync(idx_index *ix, const idx_dense *d, const volatile int *cancel, idx_dense_stats *st,
                   kv_err *err) {
  idx_dense_stats S = {0};
  double t0 = kv_now();
  if (!d || !d->embed || d->dim <= 0 || !d->model) return kv_err_set(err, KV_EINVAL, "dense: no embedding function");
  const int u = d->unit == IDX_DENSE_DEFS;
  pthread_mutex_lock(&ix->wlock);
  sqlite3 *db = idx_store_db(ix->w);
  sqlite3_stmt *sel = NULL, *ins = NULL;
  float *vec = malloc((size_t)d->dim * sizeof *vec);
  char *buf = NULL;
  size_t len = 0, cap = 0;
  int rc = 0, in_tx = 0;
  if (!vec) { rc = kv_err_set(err, KV_ENOMEM, "dense: out of memory"); goto out; }
  if (sqlite3_exec(db, TABLES, NULL, NULL, NULL) != SQLITE_OK) { rc = dberr(ix, db, err, "table"); goto out; }
  /* drop what is no longer valid: chunk gone or re-used, or another model */
  if (sqlite3_prepare_v2(db, CLEANUP[u], -1, &sel, NULL) != SQLITE_OK) {
    rc = dberr(ix, db, err, "cleanup");
    goto out;
  }
  sqlite3_bind_text(sel, 1, d->model, -1, SQLITE_STATIC);
  if (sqlite3_step(sel) != SQLITE_DONE) { rc = dberr(ix, db, err, "cleanup"); goto out; }
  S.dropped = (uint64_t)sqlite3_changes(db);
  sqlite3_finalize(sel);
  sel = NULL;
  if (sqlite3_prepare_v2(db, TODO[u], -1, &sel, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db, INSERT[u], -1, &ins, NULL) != SQLITE_OK) {
    rc = dberr(ix, db, err, "select");
    goto out;
  }
  /* the rows are read first: the writes go to the same table the select joins */
  typedef struct row { int64_t id, blob; int line0, has_line; char *text; size_t len; } row;
  row *R = NULL;
  size_t nr = 0, rcap = 0;
  int s;
  while (!rc && (s = sqlite3_step(sel)) == SQLITE_ROW) {
    const char *path = (const char *)sqlite3_column_text(sel, 5);
    int e = u ? def_text(path ? path : "", (const char *)sqlite3_column_text(sel, 6),
                         (const char *)sqlite3_column_text(sel, 3), (const char *)sqlite3_column_text(sel, 7),
                         (const char *)sqlite3_column_text(sel, 4), sqlite3_column_int(sel, 8),
                         sqlite3_column_int(sel, 2), &buf, &len, &cap)
              : embed_text(path ? path : "", (const char *)sqlite3_column_text(sel, 3),
                           (const char *)sqlite3_column_text(sel, 4), &buf, &len, &cap);
    if (e ||
        KV_GROW(R, rcap, nr + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "dense: out of memory");
      break;
    }
    row *r = &R[nr];
    r->id = sqlite3_column_int64(sel, 0);
    r->blob = sqlite3_column_int64(sel, 1);
    r->has_line = sqlite3_column_type(sel, 2) != SQLITE_NULL;
    r->line0 = sqlite3_column_int(sel, 2);
    if (!(r->text = malloc(len + 1))) { rc = kv_err_set(err, KV_ENOMEM, "dense: out of memory"); break; }
    memcpy(r->text, buf, len);
    r->text[len] = 0;
    r->len = len;
    nr++;
  }
  sqlite3_finalize(sel);
  sel = NULL;
  double tc = kv_now();
  for (size_t i = 0; i < nr && !rc; i++) {
    if (cancel && *cancel) { rc = kv_err_set(err, KV_ECANCELED, "dense: cancelled"); break; }
    if (!in_tx) {
      if ((rc = idx_store_begin(ix->w, err))) break;
      in_tx = 1;
      tc = kv_now();
    }
    if ((rc = d->embed(d->ud, R[i].text, R[i].len, vec, err))) break;
    sqlite3_reset(ins);
    sqlite3_bind_int64(ins, 1, R[i].id);
    sqlite3_bind_int64(ins, 2, R[i].blob);
    if (R[i].has_line) sqlite3_bind_int(ins, 3, R[i].line0);
    else sqlite3_bind_null(ins, 3);
    sqlite3_bind_text(ins, 4, d->model, -1, SQLITE_STATIC);
    sqlite3_bind_blob(ins, 5, vec, d->dim * (int)sizeof *vec, SQLITE_STATIC);
    if (sqlite3_step(ins) != SQLITE_DONE) { rc = dberr(ix, db, err, "insert"); break; }
    S.embedded++;
    if (kv_now() - tc > 2.0) { /* commit every 2 s: a kill loses at most that */
      if ((rc = idx_store_commit(ix->w, err))) break;
      in_tx = 0;
    }
  }
  if (in_tx) {
    int rc2 = rc ? (sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), 0) : idx_store_commit(ix->w, err);
    if (!rc) rc = rc2;
  }
  for (size_t i = 0; i < nr; i++) free(R[i].text);
  free(R);
out:
  if (sel) sqlite3_finalize(sel);
  if (ins) sqlite3_finalize(ins);
  if (!rc) {
    sqlite3_stmt *c;
    if (sqlite3_prepare_v2(db, u ? "SELECT count(*) FROM def_vecs" : "SELECT count(*) FROM chunk_vecs", -1, &c,
                           NULL) == SQLITE_OK) {
      if (sqlite3_step(c) == SQLITE_ROW) S.vectors = (uint64_t)sqlite3_column_int64(c, 0);
      sqlite3_finalize(c);
    }
  }
  pthread_mutex_unlock(&ix->wlock);
  free(vec);
  free(buf);
  S.seconds = kv_now() - t0;
  if (st) *st = S;
  return rc;
}

typedef struct dcand {
  int64_t id;
  float cos;
} dcand;

static int cmp_dcand(const void *a, const void *b) {
  const dcand *x = a, *y = b;
  if (x->cos != y->cos) return x->cos > y->cos ? -1 : 1;
  return x->id < y->id ? -1 : x->id > y->id;
}

/* The FUSE_DEPTH chunks of highest cosine with q, best first, with their hits. */
static int dense_top(idx_index *ix, const idx_dense *d, const float *q, idx_hits *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  sqlite3_stmt *st = NULL;
  dcand *C = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  if (sqlite3_prepare_v2(db, SCAN[d->unit == IDX_DENSE_DEFS],
                         -1, &st, NULL) != SQLITE_OK) {
    /* no table yet: no dense candidates */
    pthread_mutex_unlock(&ix->rlock);
    return 0;
  }
  sqlite3_bind_text(st, 1, d->model, -1, SQLITE_STATIC);
  while (sqlite3_step(st) == SQLITE_ROW) {
    const float *v = sqlite3_column_blob(st, 1);
    if (sqlite3_column_bytes(st, 1) != d->dim * (int)sizeof(float) || !v) continue;
    double dot = 0;
    for (int i = 0; i < d->dim; i++) dot += (double)q[i] * v[i];
    if (KV_GROW(C, cap, n + 1)) { rc = KV_ENOMEM; break; }
    C[n].id = sqlite3_column_int64(st, 0);
    C[n].cos = (float)dot;
    n++;
  }
  sqlite3_finalize(st);
  if (!rc && n) {
    qsort(C, n, sizeof *C, cmp_dcand);
    size_t m = 0; /* a chunk's score is its best definition's: keep its first (best) row */
    for (size_t i = 0; i < n && m < FUSE_DEPTH; i++) {
      size_t j = 0;
      while (j < m && C[j].id != C[i].id) j++;
      if (j == m) C[m++] = C[i];
    }
    n = m;
    if (!(out->v = calloc(n, sizeof *out->v))) rc = KV_ENOMEM;
    if (!rc && sqlite3_prepare_v2(db,
                                  "SELECT c.line0, c.line1, ifnull(c.symbol, ''), ifnull(c.text, ''),"
                                  " (SELECT min(f.path) FROM files f WHERE f.oid = b.oid AND f.worktree < 2 AND"
                                  " f.skip = 0) FROM chunks c JOIN blobs b ON b.id = c.blob WHERE c.id = ?1",
                                  -1, &st, NULL) != SQLITE_OK)
      rc = dberr(ix, db, err, "chunk");
    for (size_t i = 0; i < n && !rc; i++) {
      sqlite3_reset(st);
      sqlite3_bind_int64(st, 1, C[i].id);
      if (sqlite3_step(st) != SQLITE_ROW) continue;
      idx_hit *h = &out->v[out->n];
      h->line0 = sqlite3_column_int(st, 0);
      h->line1 = sqlite3_column_int(st, 1);
      h->symbol = idx_strdup0((const char *)sqlite3_column_text(st, 2));
      h->text = idx_strdup0((const char *)sqlite3_column_text(st, 3));
      h->path = idx_strdup0((const char *)sqlite3_column_text(st, 4));
      h->score = C[i].cos;
      out->n++;
      if (!h->symbol || !h->text || !h->path) rc = KV_ENOMEM;
    }
    if (st) sqlite3_finalize(st);
  }
  pthread_mutex_unlock(&ix->rlock);
  free(C);
  if (rc == KV_ENOMEM) return kv_err_set(err, rc, "dense: out of memory");
  return rc;
}

static int same_chunk(const idx_hit *a, const idx_hit *b) { return a->line0 == b->line0 && !strcmp(a->path, b->path); }

typedef struct fused {
  idx_hit *h; /* into the lexical or the dense list */
  double score;
  int lex_rank;
} fused;

static int cmp_fused(const void *a, const void *b) {
  const fused *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  return x->lex_rank - y->lex_rank;
}

int idx_search_fused(idx_index *ix, const idx_dense *d, const char *query, size_t k, idx_hits *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  if (k == 0) k = 10;
  if (!d || !d->embed) return idx_search(ix, query, k, out, err);
  idx_hits L = {0}, D = {0};
  int rc = idx_search(ix, query, FUSE_DEPTH, &L, err);
  if (rc) return rc;
  float *q = malloc((size_t)d->dim * sizeof *q);
  if (!q) { idx_hits_free(&L); return kv_err_set(err, KV_ENOMEM, "dense: out of memory"); }
  if (!(rc = d->embed(d->ud, query, strlen(query), q, err))) rc = dense_top(ix, d, q, &D, err);
  free(q);
  fused *F = rc ? NULL : calloc(L.n + D.n + 1, sizeof *F);
  if (!rc && !F) rc = kv_err_set(err, KV_ENOMEM, "dense: out of memory");
  if (rc) {
    idx_hits_free(&L);
    idx_hits_free(&D);
    return rc;
  }
  const double K = d->rrf_k > 0 ? d->rrf_k : FUSE_K, w = d->weight > 0 ? d->weight : FUSE_W;
  size_t nf = 0;
  for (size_t i = 0; i < L.n; i++) F[nf++] = (fused){&L.v[i], 1.0 / (K + (double)i + 1), (int)i};
  for (size_t j = 0; j < D.n; j++) {
    size_t i = 0;
    while (i < L.n && !same_chunk(&L.v[i], &D.v[j])) i++;
    double s = w / (K + (double)j + 1);
    if (i < L.n) F[i].score += s;
    else F[nf++] = (fused){&D.v[j], s, (int)(L.n + j)};
  }
  qsort(F, nf, sizeof *F, cmp_fused);
  size_t m = nf < k ? nf : k;
  out->v = calloc(m ? m : 1, sizeof *out->v);
  if (!out->v) rc = kv_err_set(err, KV_ENOMEM, "dense: out of memory");
  for (size_t i = 0; !rc && i < m; i++) {
    out->v[i] = *F[i].h;
    out->v[i].score = F[i].score;
    memset(F[i].h, 0, sizeof *F[i].h); /* moved */
  }
  if (!rc) out->n = m;
  free(F);
  idx_hits_free(&L);
  idx_hits_free(&D);
  return rc;
}
