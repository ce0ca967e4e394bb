/*
 * rank.c — second stage of idx_search: score each definition of the pooled
 * chunks as a document of its own (rank.h).
 *
 * Why: a chunk holds up to 60 lines, often a dozen small functions, so BM25
 * over the whole chunk mixes the vocabulary of all of them; a question about
 * one function ("Return the year for which this view should display data")
 * is best matched by that function's own name, class and body. On
 * bench/retrieval (Django) this lifts recall@5 from 0.49 to about 0.6.
 *
 * A definition's document has four fields, all in the index's own terms
 * (FTS5's porter+unicode61 tokenizer, so "returns" and "return" meet):
 *   body     the definition's lines inside the chunk, identifiers whole,
 *            the doc comment right above it (idx_doc_top: comment lines or
 *            whole block comments; C, JS, Go... keep it outside the
 *            definition's node), and for a definition declared elsewhere
 *            (a C prototype in a header) that declaration's doc comment x1
 *   parts    the camelCase/snake_case parts of those identifiers          x0.5
 *   name     the definition's name and its parts                          x6
 *   scope    the enclosing definition's (class) name and its parts        x2
 * scored with BM25 (k1 1.2, b 0.75; term frequencies summed with the field
 * weights; IDF from the chunk table's document counts via fts5vocab; the
 * average length over the pool), plus 4 x the share of the name's parts the
 * query names (as a term, or as the start of a query word: "decr" in
 * "decremented"; a test's leading "test" counts as named), so `get_year`
 * wins for "return the year" once "return" brings in "get". A chunk without
 * definitions is one document without name. A declaration (a C prototype)
 * scores x0.7, so the definition it declares comes first. Query words also
 * bring in the code's abbreviations of them (environment -> env, number ->
 * num/nb/count, ...; the synonyms table). The weights were chosen on
 * bench/retrieval seed 42 (tune half / held-out half, docs/index.md).
 */
#include "rank_internal.h"

#include <sqlite3.h> /* includes the FTS5 extension API (fts5_api, fts5_tokenizer) */
#include "parse_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define W_BODY 1.0
#define W_PARTS 0.5
#define W_NAME 6.0
#define W_SCOPE 2.0
#define NAME_COVER 4.0
#define PROTO_FACTOR 0.7 /* a declaration (C prototype) scores below its definition */
#define BM25_K1 1.2
#define BM25_B 0.75
#define MAX_TERMS 96
#define TERM_MAX 63
#define HSLOTS 256 /* term hash table, > 2 * MAX_TERMS */

typedef struct term {
  char s[TERM_MAX + 1];
  size_t n;
  int syn;
  double idf;
} term;

typedef struct doc {
  size_t slot;
  double len, bonus, mul; /* mul: PROTO_FACTOR for a declaration, else 1 */
  size_t f; /* offset of its MAX_TERMS-wide row in fbuf */
} doc;

struct idx_ranker {
  sqlite3 *db;
  fts5_tokenizer tk;
  Fts5Tokenizer *tok;
  sqlite3_stmt *vocab, *syms, *decl;
  int have_vocab;
  term t[MAX_TERMS];
  size_t nt;
  char raw[MAX_TERMS][TERM_MAX + 1]; /* the query words, lower case, unstemmed */
  size_t nraw;
  int16_t hash[HSLOTS]; /* term index + 1, 0 = empty */
  double nrows;
  doc *d;
  size_t nd, capd;
  double *fbuf;
  size_t nf, capf;
  /* scratch for one chunk */
  int *cnt;      /* [line][nt + 1]: per-term counts, last column = all tokens */
  size_t capcnt;
  char *parts;
  size_t nparts, capparts;
};

/* Docstring verbs and the words code uses for them, then the usual
 * abbreviations of identifiers (porter stems on the left, as the tokenizer
 * produces them; the right-hand side is matched against stemmed tokens
 * too, so it is written as the stem: "strip", "env"). */
#define SYN_W 5
static const char *const synonyms[][SYN_W] = {
    {"return", "get", NULL},         {"retriev", "get", NULL},
    {"fetch", "get", NULL},          {"check", "is", "has", NULL},
    {"whether", "is", "has", NULL},  {"creat", "make", "new", "build"},
    {"construct", "make", "build", "new"}, {"remov", "delete", "del", "strip"},
    {"delet", "remove", "del", NULL}, {"initi", "init", NULL},
    {"initialis", "init", NULL},     {"set", "setup", NULL},
    {"convert", "to", NULL},         {"valid", "check", "clean", NULL},
    {"determin", "is", "get", NULL}, {"list", "all", NULL},
    /* abbreviations */
    {"environ", "env", NULL},        {"variabl", "var", NULL},
    {"number", "num", "nb", "count"}, {"mani", "count", NULL},
    {"length", "len", NULL},         {"buffer", "buf", NULL},
    {"context", "ctx", NULL},        {"destin", "dst", "dest", NULL},
    {"sourc", "src", NULL},          {"dictionari", "dict", NULL},
    {"messag", "msg", NULL},         {"argument", "arg", NULL},
    {"paramet", "param", NULL},      {"pointer", "ptr", NULL},
    {"temporari", "tmp", "temp", NULL}, {"maximum", "max", NULL},
    {"minimum", "min", NULL},        {"previou", "prev", NULL},
    {"posit", "pos", NULL},          {"refer", "ref", NULL},
    {"attribut", "attr", NULL},      {"charact", "char", "ch", NULL},
    {"sequenc", "seq", NULL},        {"directori", "dir", NULL},
    {"configur", "config", "cfg", NULL}, {"worst", "bound", "max", NULL},
};

static sqlite3_stmt *prep(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
  return st;
}

int idx_ranker_new(idx_ranker **out, sqlite3 *db) {
  *out = NULL;
  fts5_api *api = NULL;
  sqlite3_stmt *st = prep(db, "SELECT fts5(?1)");
  if (!st) return KV_EUNSUPPORTED;
  sqlite3_bind_pointer(st, 1, (void *)&api, "fts5_api_ptr", NULL);
  sqlite3_step(st);
  sqlite3_finalize(st);
  if (!api || api->iVersion < 2) return KV_EUNSUPPORTED;
  idx_ranker *r = calloc(1, sizeof *r);
  if (!r) return KV_ENOMEM;
  r->db = db;
  void *ud = NULL;
  const char *args[] = {"unicode61", "tokenchars", "_"};
  if (api->xFindTokenizer(api, "porter", &ud, &r->tk) != SQLITE_OK ||
      r->tk.xCreate(ud, args, 3, &r->tok) != SQLITE_OK) {
    free(r);
    return KV_EUNSUPPORTED;
  }
  /* the vocabulary lives in the temp schema: the reader's connection may be
   * read-only, temp is not */
  r->have_vocab =
      sqlite3_exec(db, "CREATE VIRTUAL TABLE IF NOT EXISTS temp.kv_chunks_vocab USING fts5vocab(main, chunks_fts, row)",
                   NULL, NULL, NULL) == SQLITE_OK &&
      (r->vocab = prep(db, "SELECT doc FROM temp.kv_chunks_vocab WHERE term = ?1")) != NULL;
  r->syms = prep(db, "SELECT name, scope, line0, line1, kind = 'prototype' FROM symbols WHERE blob = ?1 AND line0 BETWEEN ?2 AND ?3"
                     " ORDER BY line0");
  /* the declaration of a definition elsewhere (a C prototype in a header):
   * the chunk holding it, for its doc comment */
  r->decl = prep(db, "SELECT c.text, s.line0 - c.line0 FROM symbols s JOIN chunks c ON c.blob = s.blob"
                     " AND s.line0 BETWEEN c.line0 AND c.line1 JOIN blobs b ON b.id = s.blob"
                     " JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0"
                     " WHERE s.name = ?1 AND s.kind = 'prototype' AND s.blob != ?2 LIMIT 1");
  if (!r->syms || !r->decl) {
    idx_ranker_free(r);
    return KV_EIO;
  }
  *out = r;
  return 0;
}

void idx_ranker_free(idx_ranker *r) {
  if (!r) return;
  if (r->tok) r->tk.xDelete(r->tok);
  sqlite3_finalize(r->vocab);
  sqlite3_finalize(r->syms);
  sqlite3_finalize(r->decl);
  free(r->d);
  free(r->fbuf);
  free(r->cnt);
  free(r->parts);
  free(r);
}

/* ---- terms ---------------------------------------------------------------- */

static size_t hslot(const char *s, size_t n) { return (size_t)(kv_hash64(s, n) & (HSLOTS - 1)); }

static int term_find(const idx_ranker *r, const char *s, size_t n) {
  if (n == 0 || n > TERM_MAX) return -1;
  for (size_t h = hslot(s, n);; h = (h + 1) & (HSLOTS - 1)) {
    int k = r->hash[h] - 1;
    if (k < 0) return -1;
    if (r->t[k].n == n && memcmp(r->t[k].s, s, n) == 0) return k;
  }
}

static void term_add(idx_ranker *r, const char *s, size_t n, int syn) {
  if (n == 0 || n > TERM_MAX || r->nt >= MAX_TERMS || term_find(r, s, n) >= 0) return;
  term *t = &r->t[r->nt];
  memcpy(t->s, s, n);
  t->s[n] = 0;
  t->n = n;
  t->syn = syn;
  t->idf = 0;
  size_t h = hslot(s, n);
  while (r->hash[h]) h = (h + 1) & (HSLOTS - 1);
  r->hash[h] = (int16_t)(++r->nt);
}

static int on_query_token(void *ctx, int tflags, const char *tok, int n, int a, int b) {
  (void)tflags, (void)a, (void)b;
  term_add(ctx, tok, (size_t)n, 0);
  return SQLITE_OK;
}

int idx_rank_begin(idx_ranker *r, char *const *words, size_t nwords) {
  r->nt = r->nraw = 0;
  r->nd = r->nf = 0;
  memset(r->hash, 0, sizeof r->hash);
  for (size_t i = 0; i < nwords && r->nraw < MAX_TERMS; i++) {
    size_t n = strlen(words[i]);
    if (n > TERM_MAX) continue;
    for (size_t j = 0; j <= n; j++) r->raw[r->nraw][j] = (char)tolower((unsigned char)words[i][j]);
    r->nraw++;
  }
  for (size_t i = 0; i < nwords; i++)
    r->tk.xTokenize(r->tok, r, FTS5_TOKENIZE_QUERY, words[i], (int)strlen(words[i]), on_query_token);
  size_t base = r->nt;
  for (size_t i = 0; i < base; i++)
    for (size_t k = 0; k < sizeof synonyms / sizeof synonyms[0]; k++)
      if (strcmp(r->t[i].s, synonyms[k][0]) == 0)
        for (size_t j = 1; j < SYN_W && synonyms[k][j]; j++) term_add(r, synonyms[k][j], strlen(synonyms[k][j]), 1);
  /* IDF as FTS5's bm25 computes it, over the chunk table */
  r->nrows = 0;
  sqlite3_stmt *st = prep(r->db, "SELECT count(*) FROM chunks");
  if (st && sqlite3_step(st) == SQLITE_ROW) r->nrows = (double)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  for (size_t i = 0; i < r->nt; i++) {
    double df = 1;
    if (r->have_vocab) {
      sqlite3_reset(r->vocab);
      sqlite3_bind_text(r->vocab, 1, r->t[i].s, (int)r->t[i].n, SQLITE_STATIC);
      df = sqlite3_step(r->vocab) == SQLITE_ROW ? (double)sqlite3_column_int64(r->vocab, 0) : 0;
      sqlite3_reset(r->vocab);
    }
    double idf = df > 0 ? log((r->nrows - df + 0.5) / (df + 0.5)) : 0;
    r->t[i].idf = df > 0 && idf <= 0 ? 1e-6 : idf;
  }
  return 0;
}

const char *idx_rank_term(const idx_ranker *r, size_t i, int *is_synonym) {
  if (i >= r->nt) return NULL;
  if (is_synonym) *is_synonym = r->t[i].syn;
  return r->t[i].s;
}

/* ---- one chunk ------------------------------------------------------------ */

typedef struct tokctx {
  idx_ranker *r;
  const char *text;
  int *cnt;     /* rows of nt + 1 */
  int nlines, line, pos;
} tokctx;

/* Counts a token in the row of its line (lines found by the newlines passed). */
static int on_text_token(void *ctx, int tflags, const char *tok, int n, int a, int b) {
  (void)tflags, (void)b;
  tokctx *c = ctx;
  for (; c->pos < a; c->pos++)
    if (c->text[c->pos] == '\n' && c->line + 1 < c->nlines) c->line++;
  int *row = c->cnt + (size_t)c->line * (c->r->nt + 1);
  row[c->r->nt]++;
  int k = term_find(c->r, tok, (size_t)n);
  if (k >= 0) row[k]++;
  return SQLITE_OK;
}

static void count_lines(idx_ranker *r, const char *text, size_t len, int *cnt, int nlines) {
  tokctx c = {r, text, cnt, nlines, 0, 0};
  r->tk.xTokenize(r->tok, &c, FTS5_TOKENIZE_DOCUMENT, text, (int)len, on_text_token);
}

typedef struct namectx {
  idx_ranker *r;
  double *f;    /* per-term weighted counts of the doc */
  double w, len;
  /* distinct stems of the name's parts: hashes, and how many the query has */
  uint64_t seen[16];
  int nseen, matched, test;
} namectx;

static int on_name_token(void *ctx, int tflags, const char *tok, int n, int a, int b) {
  (void)tflags, (void)a, (void)b;
  namectx *c = ctx;
  c->len += 1;
  int k = term_find(c->r, tok, (size_t)n);
  if (k >= 0) c->f[k] += c->w;
  return SQLITE_OK;
}

static int on_part_token(void *ctx, int tflags, const char *tok, int n, int a, int b) {
  (void)tflags, (void)a, (void)b;
  namectx *c = ctx;
  uint64_t h = kv_hash64(tok, (size_t)n);
  for (int i = 0; i < c->nseen; i++)
    if (c->seen[i] == h) return SQLITE_OK;
  if (c->nseen >= 16) return SQLITE_OK;
  c->seen[c->nseen++] = h;
  if (term_find(c->r, tok, (size_t)n) >= 0) {
    c->matched++;
    return SQLITE_OK;
  }
  /* a part the query spells out longer: decr/decremented, autoinc/auto-incrementing */
  for (size_t i = 0; n >= 3 && i < c->r->nraw; i++)
    if (strncmp(c->r->raw[i], tok, (size_t)n) == 0) {
      c->matched++;
      return SQLITE_OK;
    }
  if (n == 4 && memcmp(tok, "test", 4) == 0) c->test = 1;
  return SQLITE_OK;
}

/* Adds a name (or scope) with weight w: the whole identifier and its parts. */
static int add_name(idx_ranker *r, namectx *c, const char *name, double w, int coverage) {
  size_t n = strlen(name);
  if (!n) return 0;
  char *sub = NULL;
  size_t len = 0, cap = 0;
  if (idx_subwords(name, n, &sub, &len, &cap)) return KV_ENOMEM;
  double len0 = c->len;
  c->w = w;
  r->tk.xTokenize(r->tok, c, FTS5_TOKENIZE_DOCUMENT, name, (int)n, on_name_token);
  if (sub) r->tk.xTokenize(r->tok, c, FTS5_TOKENIZE_DOCUMENT, sub, (int)len, on_name_token);
  if (coverage) {
    if (sub) r->tk.xTokenize(r->tok, c, FTS5_TOKENIZE_DOCUMENT, sub, (int)len, on_part_token);
    else r->tk.xTokenize(r->tok, c, FTS5_TOKENIZE_DOCUMENT, name, (int)n, on_part_token);
  } else {
    c->len = len0; /* the scope is context, not length */
  }
  free(sub);
  return 0;
}

/* The first line (0-based, >= floor) of the run of comment lines that ends
 * right above line a of the chunk: a definition's doc comment, which the
 * parse leaves outside the definition's node in C, C++, JS, Go, Rust... */
static int doc_start(const char *text, size_t len, int a, int floor) {
  if (a <= floor) return a;
  size_t *st = malloc(((size_t)a + 1) * sizeof *st);
  if (!st) return a;
  int line = 0;
  st[0] = 0;
  for (size_t off = 0; off < len && line < a; off++)
    if (text[off] == '\n') st[++line] = off + 1;
  int top = line < a ? a : idx_doc_top(text, st, a, floor);
  free(st);
  return top;
}

/* The doc comment of name's declaration in another blob (a C prototype in
 * a header, where C keeps the documentation of the function a .c file
 * defines), counted into the document as body words and their parts. */
static int add_decl_doc(idx_ranker *r, namectx *c, const char *name, int64_t blob) {
  sqlite3_stmt *st = r->decl;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, blob);
  int rc = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const char *text = (const char *)sqlite3_column_text(st, 0);
    int at = sqlite3_column_int(st, 1);
    size_t len = text ? strlen(text) : 0;
    int top = text ? doc_start(text, len, at, 0) : at;
    if (top < at) {
      size_t s0 = 0, s1 = 0;
      int line = 0;
      for (size_t off = 0; off < len && line < at; off++)
        if (text[off] == '\n') {
          line++;
          if (line == top) s0 = off + 1;
          if (line == at) s1 = off;
        }
      if (s1 > s0) {
        double w = c->w;
        c->w = W_BODY;
        r->tk.xTokenize(r->tok, c, FTS5_TOKENIZE_DOCUMENT, text + s0, (int)(s1 - s0), on_name_token);
        char *sub = NULL;
        size_t sl = 0, sc = 0;
        if (idx_subwords(text + s0, s1 - s0, &sub, &sl, &sc)) rc = KV_ENOMEM;
        c->w = W_PARTS;
        if (sub) r->tk.xTokenize(r->tok, c, FTS5_TOKENIZE_DOCUMENT, sub, (int)sl, on_name_token);
        free(sub);
        c->w = w;
      }
    }
  }
  sqlite3_reset(st);
  return rc;
}

/* One document: lines [a, b] of the chunk (0-based), name and scope. */
static int add_doc(idx_ranker *r, size_t slot, int64_t blob, const int *cb, const int *cs, int a, int b,
                   const char *name, const char *scope, int proto) {
  size_t nt = r->nt;
  if (KV_GROW(r->d, r->capd, r->nd + 1) || KV_GROW(r->fbuf, r->capf, r->nf + nt + 1)) return KV_ENOMEM;
  doc *d = &r->d[r->nd];
  d->slot = slot;
  d->f = r->nf;
  double *f = r->fbuf + r->nf;
  memset(f, 0, (nt + 1) * sizeof *f);
  double len = 0;
  for (int l = a; l <= b; l++) {
    const int *rb = cb + (size_t)l * (nt + 1), *rs = cs + (size_t)l * (nt + 1);
    for (size_t k = 0; k < nt; k++) f[k] += W_BODY * rb[k] + W_PARTS * rs[k];
    len += rb[nt] + rs[nt];
  }
  namectx c = {.r = r, .f = f};
  int rc = 0;
  if (name && *name) rc = add_name(r, &c, name, W_NAME, 1);
  if (!rc && scope && *scope) rc = add_name(r, &c, scope, W_SCOPE, 0);
  if (!rc && name && *name && !proto) rc = add_decl_doc(r, &c, name, blob);
  if (rc) return rc;
  d->len = len + c.len;
  d->bonus = 0;
  d->mul = proto ? PROTO_FACTOR : 1.0;
  if (c.matched > 0 && c.nseen > 0) {
    double cov = (double)(c.matched + c.test) / c.nseen;
    d->bonus = NAME_COVER * (cov > 1 ? 1 : cov);
  }
  r->nf += nt + 1;
  r->nd++;
  return 0;
}

int idx_rank_add(idx_ranker *r, size_t slot, int64_t blob, int line0, int line1, const char *text) {
  if (r->nt == 0 || line1 < line0) return 0;
  int nlines = line1 - line0 + 1;
  size_t row = r->nt + 1, need = 2 * (size_t)nlines * row;
  if (KV_GROW(r->cnt, r->capcnt, need)) return KV_ENOMEM;
  int *cb = r->cnt, *cs = r->cnt + (size_t)nlines * row;
  memset(r->cnt, 0, need * sizeof *r->cnt);
  size_t len = strlen(text);
  count_lines(r, text, len, cb, nlines);
  /* the identifier parts, line by line (one '\n' per line keeps the rows) */
  r->nparts = 0;
  for (size_t i = 0; i < len;) {
    size_t e = i;
    while (e < len && text[e] != '\n') e++;
    if (idx_subwords(text + i, e - i, &r->parts, &r->nparts, &r->capparts)) return KV_ENOMEM;
    if (KV_GROW(r->parts, r->capparts, r->nparts + 2)) return KV_ENOMEM;
    r->parts[r->nparts++] = '\n';
    r->parts[r->nparts] = 0;
    i = e + 1;
  }
  if (r->nparts) count_lines(r, r->parts, r->nparts, cs, nlines);
  sqlite3_stmt *st = r->syms;
  sqlite3_reset(st);
  sqlite3_bind_int64(st, 1, blob);
  sqlite3_bind_int(st, 2, line0);
  sqlite3_bind_int(st, 3, line1);
  int rc = 0, any = 0, s, prev_end = -1;
  while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    const char *scope = (const char *)sqlite3_column_text(st, 1);
    int a = sqlite3_column_int(st, 2) - line0, b = sqlite3_column_int(st, 3) - line0;
    if (b >= nlines) b = nlines - 1;
    if (a < 0 || b < a) continue;
    /* its doc comment, when one sits right above it (not inside the one before) */
    int top = doc_start(text, len, a, prev_end + 1);
    if (b > prev_end) prev_end = b;
    rc = add_doc(r, slot, blob, cb, cs, top, b, name, scope, sqlite3_column_int(st, 4));
    any = 1;
  }
  sqlite3_reset(st);
  if (!rc && !any) rc = add_doc(r, slot, blob, cb, cs, 0, nlines - 1, NULL, NULL, 0);
  return rc;
}

void idx_rank_scores(idx_ranker *r, double *scores, size_t nslots) {
  if (r->nd == 0) return;
  double avg = 0;
  for (size_t i = 0; i < r->nd; i++) avg += r->d[i].len;
  avg /= (double)r->nd;
  if (avg <= 0) avg = 1;
  for (size_t i = 0; i < r->nd; i++) {
    const doc *d = &r->d[i];
    if (d->slot >= nslots) continue;
    const double *f = r->fbuf + d->f;
    double norm = BM25_K1 * (1 - BM25_B + BM25_B * d->len / avg), s = d->bonus;
    for (size_t k = 0; k < r->nt; k++)
      if (f[k] > 0) s += r->t[k].idf * f[k] * (BM25_K1 + 1) / (f[k] + norm);
    s *= d->mul;
    if (s > scores[d->slot]) scores[d->slot] = s;
  }
}

void idx_rank_end(idx_ranker *r) {
  r->nd = r->nf = 0;
}
