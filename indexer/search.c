/*
 * search.c — retrieval over the index: idx_search (ranked chunks for a
 * free-text or identifier query), idx_grep (literal substring: identifiers
 * holding it from the trigram table of distinct identifiers, their chunks
 * from chunks_fts, checked with instr()) and idx_symbols.
 *
 * Ranking (idx_search), all computed on the reader connection:
 *   pool   the 500 best chunks by -bm25(chunks_fts; text 1, sub-words 0.5,
 *          names of the chunk's definitions and their parts 6) over the
 *          query's words and their camelCase/snake_case parts, OR-ed, plus
 *          every chunk holding a definition named exactly like a query word,
 *          and the chunks defining what a pooled chunk declares (a C
 *          prototype's function: rank.c gives it the prototype's doc);
 *   base   the best score among the definitions in the chunk, each scored
 *          as its own document (rank.c: name, class, body, synonyms, name
 *          coverage); the first-stage BM25 when rank.c is unavailable;
 *   + 2    per query word that names a definition in the chunk exactly;
 *   x 0.5  for prose (files without a grammar);
 *   + 1.5  per query word (3+ chars) found in the file's path;
 *   + 0.5 * recency of the file among the candidates (0 oldest .. 1 newest);
 *   x 0.85 for test files (idx_is_test_path) unless the query asks for tests;
 *   x 0.8  for declaration files (.h, .hpp, .d.ts, .pyi: idx_is_decl_path);
 *   hits   of the 8k best, a chunk continuing a definition begun in the
 *          chunk right before it joins that chunk (one hit from the
 *          definition's first line); further pieces of one definition
 *          count once (join_heads).
 * Only chunks of blobs in the current view (files with worktree < 2) count.
 * The weights were chosen on bench/retrieval (Django and lodash, seed 42,
 * tune half / held-out half) and bench/answers (the tune split); see
 * docs/index.md.
 */
#define _GNU_SOURCE /* strcasestr */
#include "internal.h"
#include "rank_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const stop[] = {
    "the", "a", "an", "of", "to", "in", "for", "and", "or", "is", "are", "be", "by", "with",
    "that", "this", "it", "its", "on", "as", "at", "from", "if", "into", "which", "when", "was",
    "all", "not", "no", "can", "will", "then", "than", "so", "we", "do", "does", "has", "have"};

#define POOL 500 /* first-stage candidates re-ranked by rank.c */

static int is_stop(const char *w) {
  for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++)
    if (strcasecmp(w, stop[i]) == 0) return 1;
  return 0;
}

typedef struct words {
  char *v[64];
  size_t n;
} words;

static void words_add(words *W, const char *s, size_t n) {
  if (W->n >= 64 || n == 0 || n > 100) return;
  char buf[128];
  memcpy(buf, s, n);
  buf[n] = 0;
  if (is_stop(buf)) return;
  for (size_t i = 0; i < W->n; i++)
    if (strcasecmp(W->v[i], buf) == 0) return;
  W->v[W->n] = strdup(buf);
  if (W->v[W->n]) W->n++;
}

/* Query words: identifiers as typed, then their lower-case parts. */
static void split_query(const char *q, words *W) {
  size_t n = strlen(q);
  for (size_t i = 0; i < n;) {
    while (i < n && !(isalnum((unsigned char)q[i]) || q[i] == '_' || (unsigned char)q[i] >= 0x80)) i++;
    size_t a = i;
    while (i < n && (isalnum((unsigned char)q[i]) || q[i] == '_' || (unsigned char)q[i] >= 0x80)) i++;
    if (i > a) words_add(W, q + a, i - a);
  }
  size_t orig = W->n;
  for (size_t k = 0; k < orig; k++) {
    char *sub = NULL;
    size_t len = 0, cap = 0;
    if (idx_subwords(W->v[k], strlen(W->v[k]), &sub, &len, &cap) == 0 && sub) {
      for (char *t = strtok(sub, " "); t; t = strtok(NULL, " ")) words_add(W, t, strlen(t));
    }
    free(sub);
  }
}

static void words_free(words *W) {
  for (size_t i = 0; i < W->n; i++) free(W->v[i]);
  W->n = 0;
}

void idx_hits_free(idx_hits *h) {
  if (!h) return;
  for (size_t i = 0; i < h->n; i++) {
    free(h->v[i].path);
    free(h->v[i].symbol);
    free(h->v[i].text);
  }
  free(h->v);
  h->v = NULL;
  h->n = 0;
}

typedef struct cand {
  int64_t id, blob, changed;
  int prose, exact, gone; /* gone: joined into the hit of its definition's first chunk */
  idx_hit h;
} cand;

typedef struct cands {
  cand *v;
  size_t n, cap;
} cands;

static cand *cand_find(cands *C, int64_t id) {
  for (size_t i = 0; i < C->n; i++)
    if (C->v[i].id == id) return &C->v[i];
  return NULL;
}

/* Row: c.id, c.blob, c.line0, c.line1, c.symbol, c.text, f.path, f.changed, b.lang [, score] */
static int cand_add(cands *C, sqlite3_stmt *st, double score) {
  int64_t id = sqlite3_column_int64(st, 0);
  cand *c = cand_find(C, id);
  if (c) {
    if (score > c->h.score) c->h.score = score;
    return 0;
  }
  if (KV_GROW(C->v, C->cap, C->n + 1)) return KV_ENOMEM;
  c = &C->v[C->n];
  memset(c, 0, sizeof *c);
  c->id = id;
  c->blob = sqlite3_column_int64(st, 1);
  c->h.line0 = sqlite3_column_int(st, 2);
  c->h.line1 = sqlite3_column_int(st, 3);
  c->h.symbol = idx_strdup0((const char *)sqlite3_column_text(st, 4));
  c->h.text = idx_strdup0((const char *)sqlite3_column_text(st, 5));
  c->h.path = idx_strdup0((const char *)sqlite3_column_text(st, 6));
  c->changed = sqlite3_column_int64(st, 7);
  const unsigned char *lang = sqlite3_column_text(st, 8);
  c->prose = !lang || !*lang;
  c->h.score = score;
  C->n++;
  if (!c->h.symbol || !c->h.text || !c->h.path) return KV_ENOMEM;
  return 0;
}

static void cands_free(cands *C) {
  for (size_t i = 0; i < C->n; i++) {
    free(C->v[i].h.path);
    free(C->v[i].h.symbol);
    free(C->v[i].h.text);
  }
  free(C->v);
}

static int cmp_hit(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->h.score != y->h.score) return x->h.score > y->h.score ? -1 : 1;
  int c = strcmp(x->h.path, y->h.path);
  return c ? c : x->h.line0 - y->h.line0;
}

#define CHUNK_COLS "c.id, c.blob, c.line0, c.line1, c.symbol, c.text, f.path, f.changed, b.lang"
#define VIEW_JOIN " JOIN blobs b ON b.id = c.blob JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0 "

static int hand_out(cands *C, size_t k, idx_hits *out) {
  if (C->n > 1) qsort(C->v, C->n, sizeof *C->v, cmp_hit);
  out->v = calloc(k < C->n ? k : C->n ? C->n : 1, sizeof *out->v);
  if (!out->v) return KV_ENOMEM;
  size_t m = 0;
  for (size_t i = 0; i < C->n && m < k; i++) {
    if (C->v[i].gone) continue;
    out->v[m++] = C->v[i].h;
    memset(&C->v[i].h, 0, sizeof C->v[i].h);
  }
  out->n = m;
  return 0;
}

/* Does the query ask for tests ("where is X tested", "which tests ...")? A
 * "test runner" or "test client" is code that serves tests: the noun
 * alone does not count. */
static int asks_for_tests(const words *W) {
  for (size_t i = 0; i < W->n; i++)
    if (!strcasecmp(W->v[i], "tests") || !strcasecmp(W->v[i], "tested") || !strcasecmp(W->v[i], "testcase") ||
        !strcasecmp(W->v[i], "unittest") || !strcasecmp(W->v[i], "spec") || !strcasecmp(W->v[i], "specs"))
      return 1;
  return 0;
}

/* A test file's score, unless the query asks for tests. 0.5 lifted the
 * answer bench most but cost bench_retrieval (whose Django queries are
 * mostly test docstrings) half its recall: 0.85 keeps both (docs/index.md). */
#define TEST_FACTOR 0.85

#define DECL_FACTOR 0.8 /* a declaration file's score */

/* Second stage (rank.c): each pooled chunk gets the score of its best
 * definition. Without FTS5's tokenizer API the first-stage scores stand. */
static void rerank(idx_index *ix, const words *W, cands *C) {
  if (!ix->ranker && !ix->ranker_failed && idx_ranker_new(&ix->ranker, idx_store_db(ix->r)) != 0)
    ix->ranker_failed = 1;
  if (!ix->ranker || C->n == 0) return;
  double *sc = malloc(C->n * sizeof *sc);
  if (!sc) return;
  int rc = idx_rank_begin(ix->ranker, W->v, W->n);
  for (size_t i = 0; i < C->n && !rc; i++) {
    sc[i] = -HUGE_VAL;
    rc = idx_rank_add(ix->ranker, i, C->v[i].blob, C->v[i].h.line0, C->v[i].h.line1, C->v[i].h.text);
  }
  if (!rc) {
    idx_rank_scores(ix->ranker, sc, C->n);
    for (size_t i = 0; i < C->n; i++) C->v[i].h.score = sc[i] > -HUGE_VAL ? sc[i] : 0;
  }
  idx_rank_end(ix->ranker);
  free(sc);
}

#define HEADS_SCAN 8 /* x k best candidates looked at by join_heads */

/* Appends chunk t (lines t0..t1) to hit h, which ends at h->line1 < t0: the
 * lines between (blank: the chunks cover every other line) as newlines. */
static int hit_extend(idx_hit *h, const char *t, int t1, int t0) {
  size_t a = strlen(h->text), b = strlen(t), gap = (size_t)(t0 - h->line1 - 1) + (a && h->text[a - 1] != '\n');
  char *s = realloc(h->text, a + gap + b + 1);
  if (!s) return KV_ENOMEM;
  memset(s + a, '\n', gap);
  memcpy(s + a + gap, t, b + 1);
  h->text = s;
  h->line1 = t1;
  return 0;
}

/* A chunk that continues a definition (no definition starts in it): right
 * after the chunk where the definition starts, it joins that chunk — one
 * hit from the definition's first line, with the score of the better half
 * — so the hit covers the definition that matched; further on, only the
 * best of the definition's continuing chunks stays. Either way one
 * definition takes one place among the hits. Looks at the HEADS_SCAN x k
 * best candidates. */
static int join_heads(sqlite3 *db, cands *C, size_t k) {
  if (C->n > 1) qsort(C->v, C->n, sizeof *C->v, cmp_hit);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT " CHUNK_COLS ", s.line0, NOT EXISTS (SELECT 1 FROM chunks m WHERE m.blob = c.blob"
                         " AND m.line0 > c.line1 AND m.line0 < ?2) FROM symbols s JOIN chunks c ON c.blob = s.blob"
                         " AND s.line0 BETWEEN c.line0 AND c.line1" VIEW_JOIN
                         "WHERE s.blob = ?1 AND s.line0 < ?2 AND s.line1 >= ?2 AND c.line1 < ?2"
                         " ORDER BY s.line0 DESC LIMIT 1",
                         -1, &st, NULL) != SQLITE_OK)
    return 0; /* the chunks stand as they are */
  int rc = 0;
  size_t scan = C->n < HEADS_SCAN * k ? C->n : HEADS_SCAN * k, nseen = 0;
  int64_t(*seen)[2] = calloc(scan ? scan : 1, sizeof *seen); /* blob, first line of a definition kept */
  if (!seen) rc = KV_ENOMEM;
  for (size_t i = 0; i < scan && !rc; i++) {
    cand *t = &C->v[i];
    if (t->h.symbol[0] || t->gone) continue;
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, t->blob);
    sqlite3_bind_int(st, 2, t->h.line0);
    if (sqlite3_step(st) != SQLITE_ROW) continue;
    int64_t defline = sqlite3_column_int64(st, 9);
    size_t j = 0;
    while (j < nseen && !(seen[j][0] == t->blob && seen[j][1] == defline)) j++;
    if (j < nseen) { /* a better chunk of the same definition is a hit already */
      t->gone = 1;
      continue;
    }
    seen[nseen][0] = t->blob;
    seen[nseen++][1] = defline;
    if (!sqlite3_column_int(st, 10)) continue; /* not right after its first chunk */
    int64_t hid = sqlite3_column_int64(st, 0);
    cand *h = cand_find(C, hid);
    if (h && (h->gone || h->h.line1 >= t->h.line0)) continue; /* already joined */
    if (!h) {
      if ((rc = cand_add(C, st, t->h.score))) break;
      h = &C->v[C->n - 1];
      t = &C->v[i]; /* cand_add may move the array */
    }
    if ((rc = hit_extend(&h->h, t->h.text, t->h.line1, t->h.line0))) break;
    if (h->h.score < t->h.score) h->h.score = t->h.score;
    t->gone = 1;
  }
  free(seen);
  sqlite3_finalize(st);
  return rc;
}

int idx_search(idx_index *ix, const char *query, size_t k, idx_hits *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  if (!query) return kv_err_set(err, KV_EINVAL, "search: no query");
  if (k == 0) k = 10;
  words W = {0};
  split_query(query, &W);
  if (W.n == 0) return 0;
  /* the FTS query: every word quoted (and '"' doubled), OR-ed */
  size_t qcap = 16;
  for (size_t i = 0; i < W.n; i++) qcap += 2 * strlen(W.v[i]) + 8;
  char *fq = malloc(qcap);
  if (!fq) {
    words_free(&W);
    return kv_err_set(err, KV_ENOMEM, "search: out of memory");
  }
  size_t fl = 0;
  for (size_t i = 0; i < W.n; i++) {
    if (i) fl += (size_t)sprintf(fq + fl, " OR ");
    fq[fl++] = '"';
    for (const char *p = W.v[i]; *p; p++) {
      if (*p == '"') fq[fl++] = '"';
      fq[fl++] = *p;
    }
    fq[fl++] = '"';
  }
  fq[fl] = 0;
  cands C = {0};
  int rc = 0;
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  sqlite3_stmt *st = NULL;
  int lim = (int)(k * 8 < POOL ? POOL : k * 8);
  if (sqlite3_prepare_v2(db,
                         "SELECT " CHUNK_COLS ", -bm25(chunks_fts, 1.0, 0.5, 6.0) FROM chunks_fts"
                         " JOIN chunks c ON c.id = chunks_fts.rowid" VIEW_JOIN
                         "WHERE chunks_fts MATCH ?1 ORDER BY bm25(chunks_fts, 1.0, 0.5, 6.0) LIMIT ?2",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = kv_err_set(err, KV_EIO, "%s: search: %s", ix->db_path, sqlite3_errmsg(db));
    goto out;
  }
  sqlite3_bind_text(st, 1, fq, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 2, lim);
  const double sb = 2.0; /* exact definition name */
  int s;
  while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) rc = cand_add(&C, st, sqlite3_column_double(st, 9));
  sqlite3_finalize(st);
  st = NULL;
  /* exact definitions: add their chunks, boost them */
  if (!rc && sqlite3_prepare_v2(db,
                                "SELECT " CHUNK_COLS " FROM symbols s JOIN chunks c ON c.blob = s.blob"
                                " AND s.line0 BETWEEN c.line0 AND c.line1" VIEW_JOIN
                                "WHERE s.name = ?1 LIMIT 64",
                                -1, &st, NULL) == SQLITE_OK) {
    for (size_t i = 0; i < W.n && !rc; i++) {
      if (strlen(W.v[i]) < 3) continue;
      sqlite3_reset(st);
      sqlite3_bind_text(st, 1, W.v[i], -1, SQLITE_STATIC);
      while (!rc && sqlite3_step(st) == SQLITE_ROW) {
        cand *c = cand_find(&C, sqlite3_column_int64(st, 0));
        if (!c && !(rc = cand_add(&C, st, 0))) c = &C.v[C.n - 1];
        if (c) c->exact++;
      }
    }
    sqlite3_finalize(st);
    st = NULL;
  }
  /* the definitions of the pooled declarations (a header's prototypes):
   * C documents a function at its prototype, and the question is after the
   * definition, whose own text may share no word with it */
  if (!rc && sqlite3_prepare_v2(db,
                                "SELECT " CHUNK_COLS " FROM chunks p JOIN symbols ps ON ps.blob = p.blob"
                                " AND ps.line0 BETWEEN p.line0 AND p.line1 AND ps.kind = 'prototype'"
                                " JOIN symbols s ON s.name = ps.name AND s.kind != 'prototype' AND s.blob != p.blob"
                                " JOIN chunks c ON c.blob = s.blob AND s.line0 BETWEEN c.line0 AND c.line1" VIEW_JOIN
                                "WHERE p.id = ?1 LIMIT 16",
                                -1, &st, NULL) == SQLITE_OK) {
    for (size_t i = 0, n0 = C.n; i < n0 && !rc; i++) {
      sqlite3_reset(st);
      sqlite3_bind_int64(st, 1, C.v[i].id);
      while (!rc && sqlite3_step(st) == SQLITE_ROW) rc = cand_add(&C, st, 0);
    }
    sqlite3_finalize(st);
    st = NULL;
  }
  if (rc) {
    kv_err_set(err, rc, "search: out of memory");
    goto out;
  }
  rerank(ix, &W, &C);
  /* prose (files without a grammar: docs, text) counts half: a query is
   * usually after code, and prose shares a docstring's vocabulary */
  int want_tests = asks_for_tests(&W);
  for (size_t i = 0; i < C.n; i++) {
    C.v[i].h.score += sb * C.v[i].exact;
    if (C.v[i].prose) C.v[i].h.score *= 0.5;
  }
  /* path and recency */
  int64_t tmin = INT64_MAX, tmax = INT64_MIN;
  for (size_t i = 0; i < C.n; i++) {
    if (C.v[i].changed < tmin) tmin = C.v[i].changed;
    if (C.v[i].changed > tmax) tmax = C.v[i].changed;
  }
  for (size_t i = 0; i < C.n; i++) {
    for (size_t w = 0; w < W.n; w++)
      if (strlen(W.v[w]) >= 3 && strcasestr(C.v[i].h.path, W.v[w])) C.v[i].h.score += 1.5;
    if (tmax > tmin) C.v[i].h.score += 0.5 * (double)(C.v[i].changed - tmin) / (double)(tmax - tmin);
    if (!want_tests && idx_is_test_path(C.v[i].h.path)) C.v[i].h.score *= TEST_FACTOR;
    if (idx_is_decl_path(C.v[i].h.path)) C.v[i].h.score *= DECL_FACTOR;
  }
  if ((rc = join_heads(db, &C, k))) kv_err_set(err, rc, "search: out of memory");
  if (!rc && hand_out(&C, k, out)) rc = kv_err_set(err, KV_ENOMEM, "search: out of memory");
out:
  pthread_mutex_unlock(&ix->rlock);
  cands_free(&C);
  free(fq);
  words_free(&W);
  return rc;
}

#define GREP_MAX_IDENTS 1000 /* more identifiers hold the needle: scan the chunks instead */

/* The chunks_fts query for grep: the identifiers of the index that contain
 * the needle's longest identifier piece (trigrams of idents, then instr),
 * as `text : ("a" OR "b" ...)`. *fq = NULL when the needle has no piece of
 * 3+ bytes or too many identifiers hold it (the caller scans); "" when no
 * identifier holds it (no hit possible). */
static int grep_query(sqlite3 *db, const char *needle, size_t n, char **fq) {
  *fq = NULL;
  size_t pa = 0, pn = 0;
  for (size_t i = 0; i < n;) {
    while (i < n && !(isalnum((unsigned char)needle[i]) || needle[i] == '_' || (unsigned char)needle[i] >= 0x80)) i++;
    size_t a = i;
    while (i < n && (isalnum((unsigned char)needle[i]) || needle[i] == '_' || (unsigned char)needle[i] >= 0x80)) i++;
    if (i - a > pn) pa = a, pn = i - a;
  }
  if (pn < 3 || pn > 200) return 0;
  char *tq = malloc(pn * 12 + 16), *piece = malloc(pn + 1);
  if (!tq || !piece) {
    free(tq);
    free(piece);
    return KV_ENOMEM;
  }
  memcpy(piece, needle + pa, pn);
  piece[pn] = 0;
  size_t tl = 0;
  for (size_t j = 0; j + 3 <= pn; j++) {
    if (tl) tl += (size_t)sprintf(tq + tl, " AND ");
    tq[tl++] = '"';
    memcpy(tq + tl, piece + j, 3);
    tl += 3;
    tq[tl++] = '"';
  }
  tq[tl] = 0;
  sqlite3_stmt *st;
  int rc = 0;
  size_t cap = 64, len = 0, count = 0;
  char *q = malloc(cap);
  if (!q) rc = KV_ENOMEM;
  else if (sqlite3_prepare_v2(db, "SELECT i.name FROM idents_tri JOIN idents i ON i.id = idents_tri.rowid"
                                  " WHERE idents_tri MATCH ?1 AND instr(i.name, ?2) > 0 LIMIT ?3",
                              -1, &st, NULL) != SQLITE_OK) {
    rc = KV_EIO;
  } else {
    sqlite3_bind_text(st, 1, tq, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, piece, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 3, GREP_MAX_IDENTS + 1);
    len = (size_t)sprintf(q, "text : (");
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
      const char *nm = (const char *)sqlite3_column_text(st, 0);
      size_t nl = nm ? strlen(nm) : 0;
      if (!nl || strchr(nm, '"')) continue;
      if (KV_GROW(q, cap, len + nl + 8)) {
        rc = KV_ENOMEM;
        break;
      }
      len += (size_t)sprintf(q + len, "%s\"%s\"", count ? " OR " : "", nm);
      count++;
    }
    sqlite3_finalize(st);
  }
  free(tq);
  free(piece);
  if (rc || count > GREP_MAX_IDENTS) {
    free(q);
    return rc;
  }
  if (count == 0) {
    q[0] = 0;
  } else {
    q[len++] = ')';
    q[len] = 0;
  }
  *fq = q;
  return 0;
}

int idx_grep(idx_index *ix, const char *needle, size_t k, idx_hits *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  size_t n = needle ? strlen(needle) : 0;
  if (n < 3) return kv_err_set(err, KV_EINVAL, "grep: the needle needs at least 3 bytes");
  if (k == 0) k = 10;
  cands C = {0};
  int rc = 0;
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  /* Candidates: chunks holding an identifier that contains the needle's
   * longest identifier piece (idents + idents_tri, then chunks_fts), checked
   * with instr() for the exact needle; without a usable piece, a scan. */
  char *fq = NULL;
  if ((rc = grep_query(db, needle, n, &fq))) {
    rc = rc == KV_ENOMEM ? kv_err_set(err, rc, "grep: out of memory")
                         : kv_err_set(err, rc, "%s: grep: %s", ix->db_path, sqlite3_errmsg(db));
    goto out;
  }
  if (fq && !fq[0]) goto out; /* no identifier holds it */
  sqlite3_stmt *st;
  const char *sql = fq ? "SELECT " CHUNK_COLS " FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
                         VIEW_JOIN "WHERE chunks_fts MATCH ?1 AND instr(c.text, ?2) > 0"
                         " ORDER BY f.path, c.line0 LIMIT ?3"
                       : "SELECT " CHUNK_COLS " FROM chunks c" VIEW_JOIN
                         "WHERE ?1 = '' AND instr(c.text, ?2) > 0 ORDER BY f.path, c.line0 LIMIT ?3";
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    rc = kv_err_set(err, KV_EIO, "%s: grep: %s", ix->db_path, sqlite3_errmsg(db));
  } else {
    sqlite3_bind_text(st, 1, fq ? fq : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, needle, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)k);
    double sc = 1e9;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) rc = cand_add(&C, st, sc--);
    sqlite3_finalize(st);
    /* point the hit at the first matching line */
    for (size_t i = 0; i < C.n; i++) {
      const char *p = strstr(C.v[i].h.text, needle);
      if (!p) continue;
      int line = C.v[i].h.line0;
      for (const char *q = C.v[i].h.text; q < p; q++) line += *q == '\n';
      C.v[i].h.line0 = line;
    }
    if (rc) kv_err_set(err, rc, "grep: out of memory");
  }
out:
  if (!rc && hand_out(&C, k, out)) rc = kv_err_set(err, KV_ENOMEM, "grep: out of memory");
  pthread_mutex_unlock(&ix->rlock);
  cands_free(&C);
  free(fq);
  return rc;
}

#define QUOTE_SCAN 256 /* candidate chunks (holding the line's longest identifier) checked for it */

/* s[0..n) with its white space runs collapsed to one space and trimmed,
 * into out (cap >= n + 1); the length. */
static size_t ws_collapse(const char *s, size_t n, char *out) {
  size_t m = 0;
  int sp = 0;
  for (size_t i = 0; i < n; i++) {
    if (isspace((unsigned char)s[i])) {
      sp = m > 0;
      continue;
    }
    if (sp) out[m++] = ' ';
    sp = 0;
    out[m++] = s[i];
  }
  out[m] = 0;
  return m;
}

/* Does a line of text, white space collapsed, hold needle (collapsed)? */
static int text_holds(const char *text, const char *needle, size_t nn, char *buf) {
  for (const char *p = text; *p;) {
    const char *e = strchr(p, '\n');
    size_t l = e ? (size_t)(e - p) : strlen(p);
    if (l >= nn && l < 8192) {
      ws_collapse(p, l, buf);
      if (strstr(buf, needle)) return 1;
    }
    if (!e) break;
    p = e + 1;
  }
  return 0;
}

/* Documentation, not code: a quote of it is not a quote of the code. */
#define DOC_FILE \
  "(f.path LIKE '%.md' OR f.path LIKE '%.rst' OR f.path LIKE '%.txt' OR f.path LIKE '%.adoc' OR b.lang IS NULL" \
  " AND (f.path LIKE '%README%' OR f.path LIKE '%CHANGES%' OR f.path LIKE '%CHANGELOG%' OR f.path LIKE '%NEWS%'))"

int idx_quoted(idx_index *ix, const char *line, size_t n) {
  if (!line) return 0;
  while (n && isspace((unsigned char)*line)) line++, n--;
  while (n && isspace((unsigned char)line[n - 1])) n--;
  if (n < 3 || n > 4000) return 1; /* a brace, or too long to compare: not judged */
  char *needle = malloc(2 * n + 8192 + 2);
  if (!needle) return -1;
  char *buf = needle + n + 1;
  size_t nn = ws_collapse(line, n, needle);
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  char *fq = NULL;
  int rc = grep_query(db, needle, nn, &fq), found = 0;
  if (!rc && !fq) {
    found = 1; /* no identifier of 3+ bytes, or one too common to look up: nothing distinctive to judge */
  } else if (!rc && fq[0]) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT c.text FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid" VIEW_JOIN
                           "WHERE chunks_fts MATCH ?1 AND NOT " DOC_FILE " LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK) {
      rc = KV_EIO;
    } else {
      sqlite3_bind_text(st, 1, fq, -1, SQLITE_STATIC);
      sqlite3_bind_int(st, 2, QUOTE_SCAN);
      while (!found && sqlite3_step(st) == SQLITE_ROW) {
        const char *t = (const char *)sqlite3_column_text(st, 0);
        found = t && text_holds(t, needle, nn, buf);
      }
      sqlite3_finalize(st);
    }
  }
  pthread_mutex_unlock(&ix->rlock);
  free(fq);
  free(needle);
  return rc ? -1 : found;
}

void idx_symbol_list_free(idx_symbol_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].name);
    free(l->v[i].kind);
    free(l->v[i].scope);
    free(l->v[i].signature);
    free(l->v[i].path);
  }
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

int idx_symbols(idx_index *ix, const char *name, size_t limit, idx_symbol_list *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  int all = !name || !*name;
  char sql[512];
  snprintf(sql, sizeof sql,
           "SELECT s.name, s.kind, s.scope, s.sig, f.path, b.lang, s.line0, s.line1 FROM symbols s"
           " JOIN blobs b ON b.id = s.blob JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0"
           " %s ORDER BY f.path, s.line0, s.name LIMIT ?2",
           all ? "" : "WHERE s.name = ?1");
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  sqlite3_stmt *st;
  int rc = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    rc = kv_err_set(err, KV_EIO, "%s: symbols: %s", ix->db_path, sqlite3_errmsg(db));
    pthread_mutex_unlock(&ix->rlock);
    return rc;
  }
  if (!all) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
  size_t cap = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    if (KV_GROW(out->v, cap, out->n + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "symbols: out of memory");
      break;
    }
    idx_symbol *y = &out->v[out->n++];
    memset(y, 0, sizeof *y);
    y->name = idx_strdup0((const char *)sqlite3_column_text(st, 0));
    y->kind = idx_strdup0((const char *)sqlite3_column_text(st, 1));
    y->scope = idx_strdup0((const char *)sqlite3_column_text(st, 2));
    y->signature = idx_strdup0((const char *)sqlite3_column_text(st, 3));
    y->path = idx_strdup0((const char *)sqlite3_column_text(st, 4));
    const unsigned char *l = sqlite3_column_text(st, 5);
    snprintf(y->lang, sizeof y->lang, "%s", l ? (const char *)l : "");
    y->line0 = sqlite3_column_int(st, 6);
    y->line1 = sqlite3_column_int(st, 7);
    if (!y->name || !y->kind || !y->scope || !y->signature || !y->path)
      rc = kv_err_set(err, KV_ENOMEM, "symbols: out of memory");
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&ix->rlock);
  if (rc) idx_symbol_list_free(out);
  return rc;
}
