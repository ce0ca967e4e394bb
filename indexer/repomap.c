/*
 * repomap.c — the repo map for the engine's resident prefix, after Aider:
 * files are nodes; a file that references a name defined in another file
 * gets an edge to it, weighted sqrt(#references) x a name factor (long
 * camelCase/snake_case names count 10x, _private names and names defined
 * in more than 5 files 0.1x, names defined in more than 50 files not at
 * all; a stand-in — a C prototype, a definition in a declaration file
 * (.h, .d.ts, .pyi) or in a test file — only stands for a name nothing else
 * defines, and code's references never reach a test file's definitions);
 * PageRank (damping 0.85) ranks the files; each edge then hands its
 * share of the referencing file's rank to the definition it points at. The
 * map lists the best definitions (signature lines, grouped by file) — as
 * many as fit in the token budget, found by binary search on the count.
 *
 * Left out: self-aliases (`str = str`, a compat module re-exporting a
 * builtin), which are no definition a reader would list and drew every call
 * of the builtin.
 *
 * Deterministic: ties are broken by path and line, so the same index gives
 * the same map (the prefix cache depends on it).
 */
#define _GNU_SOURCE /* qsort_r */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct def {
  int file, line, proto; /* proto: a stand-in (see load), not the definition itself */
  char *sig;
  int name;
  double rank;
} def;

typedef struct name_map {
  char **k;
  int *v;
  size_t cap, n;
} name_map;

static int nm_find(name_map *m, const char *s, int add) {
  if (add && (m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 1024;
    char **nk = calloc(nc, sizeof *nk);
    int *nv = calloc(nc, sizeof *nv);
    if (!nk || !nv) {
      free(nk);
      free(nv);
      return -2;
    }
    for (size_t i = 0; i < m->cap; i++)
      if (m->k[i]) {
        size_t h = kv_hash64(m->k[i], strlen(m->k[i])) & (nc - 1);
        while (nk[h]) h = (h + 1) & (nc - 1);
        nk[h] = m->k[i];
        nv[h] = m->v[i];
      }
    free(m->k);
    free(m->v);
    m->k = nk;
    m->v = nv;
    m->cap = nc;
  }
  if (!m->cap) return -1;
  size_t h = kv_hash64(s, strlen(s)) & (m->cap - 1);
  while (m->k[h]) {
    if (strcmp(m->k[h], s) == 0) return m->v[h];
    h = (h + 1) & (m->cap - 1);
  }
  if (!add) return -1;
  if (!(m->k[h] = strdup(s))) return -2;
  m->v[h] = (int)m->n++;
  return m->v[h];
}

static void nm_free(name_map *m) {
  for (size_t i = 0; i < m->cap; i++) free(m->k[i]);
  free(m->k);
  free(m->v);
}

typedef struct edge {
  uint64_t key;  /* file << 32 | def */
  double n;
} edge;

typedef struct emap {
  edge *v;
  size_t cap, n;
} emap;

static int em_add(emap *m, uint64_t key) {
  if ((m->n + 1) * 2 > m->cap) {
    size_t nc = m->cap ? m->cap * 2 : 4096;
    edge *nv = calloc(nc, sizeof *nv);
    if (!nv) return KV_ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
      if (m->v[i].n > 0) {
        size_t h = (m->v[i].key * 0x9E3779B97F4A7C15ull >> 17) & (nc - 1);
        while (nv[h].n > 0) h = (h + 1) & (nc - 1);
        nv[h] = m->v[i];
      }
    free(m->v);
    m->v = nv;
    m->cap = nc;
  }
  size_t h = (key * 0x9E3779B97F4A7C15ull >> 17) & (m->cap - 1);
  while (m->v[h].n > 0 && m->v[h].key != key) h = (h + 1) & (m->cap - 1);
  if (m->v[h].n == 0) {
    m->v[h].key = key;
    m->n++;
  }
  m->v[h].n += 1;
  return 0;
}

static double name_factor(const char *s, int ndefs) {
  double f = 1.0;
  size_t n = strlen(s);
  int camel = 0, snake = strchr(s, '_') != NULL && s[0] != '_';
  for (size_t i = 1; i < n; i++)
    if (s[i - 1] >= 'a' && s[i - 1] <= 'z' && s[i] >= 'A' && s[i] <= 'Z') camel = 1;
  if ((camel || snake) && n >= 8) f *= 10;
  if (s[0] == '_') f *= 0.1;
  if (ndefs > 5) f *= 0.1;
  return f;
}

typedef struct mapctx {
  char **paths;
  char *test;  /* per file: a test file (idx_is_test_path) */
  size_t nfiles;
  def *defs;
  size_t ndefs, capdefs;
  int *order;  /* defs by rank */
} mapctx;

static int cmp_rank(const void *a, const void *b, void *ud) {
  const def *D = ud;
  const def *x = &D[*(const int *)a], *y = &D[*(const int *)b];
  if (x->rank != y->rank) return x->rank > y->rank ? -1 : 1;
  if (x->file != y->file) return x->file - y->file;
  return x->line - y->line;
}


typedef struct sortctx {
  const def *D;
  const int *filepos;
} sortctx;

static int cmp_layout(const void *a, const void *b, void *ud) {
  const sortctx *c = ud;
  const def *x = &c->D[*(const int *)a], *y = &c->D[*(const int *)b];
  if (x->file != y->file) return c->filepos[x->file] - c->filepos[y->file];
  return x->line - y->line;
}

/* Render the top m definitions grouped by file (files in order of their best
 * definition, definitions by line). Returns malloc'd text. */
static char *render(const mapctx *M, size_t m, size_t *len) {
  int *sel = malloc((m ? m : 1) * sizeof *sel);
  int *filepos = malloc((M->nfiles ? M->nfiles : 1) * sizeof *filepos);
  if (!sel || !filepos) {
    free(sel);
    free(filepos);
    return NULL;
  }
  for (size_t f = 0; f < M->nfiles; f++) filepos[f] = -1;
  size_t need = 1;
  for (size_t i = 0; i < m; i++) {
    const def *d = &M->defs[M->order[i]];
    sel[i] = M->order[i];
    if (filepos[d->file] < 0) {
      filepos[d->file] = (int)i;
      need += strlen(M->paths[d->file]) + 3;
    }
    need += strlen(d->sig) + 24;
  }
  sortctx c = {M->defs, filepos};
  qsort_r(sel, m, sizeof *sel, cmp_layout, &c);
  char *s = malloc(need);
  size_t n = 0;
  if (s) {
    s[0] = 0;
    int cur = -1;
    for (size_t i = 0; i < m; i++) {
      const def *d = &M->defs[sel[i]];
      if (d->file != cur) {
        cur = d->file;
        n += (size_t)sprintf(s + n, "%s:\n", M->paths[cur]);
      }
      n += (size_t)sprintf(s + n, "%6d: %s\n", d->line, d->sig);
    }
    *len = n;
  }
  free(sel);
  free(filepos);
  return s;
}

/* `str = str`, `bytes = bytes`: a module re-exporting a builtin under its
 * own name (a compat shim). It is not a definition a reader would list,
 * and as a definition it draws every call of the builtin in the repository
 * (it topped requests' map); such rows are left out of the map. */
static int self_alias(const char *name, const char *sig) {
  size_t n = strlen(name);
  return n && strlen(sig) == 2 * n + 3 && !strncmp(sig, name, n) && !strncmp(sig + n, " = ", 3) &&
         !strcmp(sig + n + 3, name);
}

static int load(idx_index *ix, mapctx *M, name_map *names, emap *E, kv_err *err) {
  sqlite3 *db = idx_store_db(ix->r);
  sqlite3_stmt *st;
  /* files in view, blob id -> first file */
  if (sqlite3_prepare_v2(db, "SELECT f.path, b.id FROM files f JOIN blobs b ON b.oid = f.oid"
                             " WHERE f.worktree < 2 AND f.skip = 0 ORDER BY f.path", -1, &st, NULL) != SQLITE_OK)
    return kv_err_set(err, KV_EIO, "%s: repomap: %s", ix->db_path, sqlite3_errmsg(db));
  size_t cap = 0, capt = 0, nb = 0, capb = 0;
  int64_t(*blob)[2] = NULL; /* blob id, file */
  int rc = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    if (KV_GROW(M->paths, cap, M->nfiles + 1) || KV_GROW(blob, capb, nb + 1)) {
      rc = KV_ENOMEM;
      break;
    }
    if (!(M->paths[M->nfiles] = idx_strdup0((const char *)sqlite3_column_text(st, 0)))) { rc = KV_ENOMEM; break; }
    if (KV_GROW(M->test, capt, M->nfiles + 1)) { rc = KV_ENOMEM; break; }
    M->test[M->nfiles] = (char)idx_is_test_path(M->paths[M->nfiles]);
    blob[nb][0] = sqlite3_column_int64(st, 1);
    blob[nb][1] = (int64_t)M->nfiles;
    nb++;
    M->nfiles++;
  }
  sqlite3_finalize(st);
  /* blob id -> file, through a dense array (blob ids are rowids) */
  int64_t maxb = 0;
  for (size_t i = 0; i < nb; i++) if (blob[i][0] > maxb) maxb = blob[i][0];
  int *b2f = rc ? NULL : malloc(((size_t)maxb + 1) * sizeof *b2f);
  if (!b2f) rc = KV_ENOMEM;
  else {
    for (int64_t i = 0; i <= maxb; i++) b2f[i] = -1;
    for (size_t i = nb; i-- > 0;) b2f[blob[i][0]] = (int)blob[i][1];
  }
  free(blob);
  if (rc) return kv_err_set(err, rc, "repomap: out of memory");
  /* definitions */
  rc = sqlite3_prepare_v2(db, "SELECT blob, name, sig, line0, kind = 'prototype' FROM symbols WHERE blob <= ?1", -1, &st, NULL) != SQLITE_OK;
  if (rc) {
    free(b2f);
    return kv_err_set(err, KV_EIO, "%s: repomap: %s", ix->db_path, sqlite3_errmsg(db));
  }
  sqlite3_bind_int64(st, 1, maxb);
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    int64_t b = sqlite3_column_int64(st, 0);
    if (b < 0 || b > maxb || b2f[b] < 0) continue;
    const char *nm = (const char *)sqlite3_column_text(st, 1), *sg = (const char *)sqlite3_column_text(st, 2);
    if (nm && sg && self_alias(nm, sg)) continue;
    if (KV_GROW(M->defs, M->capdefs, M->ndefs + 1)) {
      rc = KV_ENOMEM;
      break;
    }
    def *d = &M->defs[M->ndefs];
    d->file = b2f[b];
    d->line = sqlite3_column_int(st, 3);
    /* stand-ins for a definition made elsewhere: a C prototype, anything a
     * declaration file (.h, .d.ts, .pyi) or a test file defines */
    d->proto = sqlite3_column_int(st, 4) || idx_is_decl_path(M->paths[d->file]) || M->test[d->file];
    d->rank = 0;
    d->name = nm_find(names, (const char *)sqlite3_column_text(st, 1), 1);
    d->sig = idx_strdup0((const char *)sqlite3_column_text(st, 2));
    if (d->name < 0 || !d->sig) { free(d->sig); rc = KV_ENOMEM; break; }
    M->ndefs++;
  }
  sqlite3_finalize(st);
  if (rc) { free(b2f); return kv_err_set(err, KV_ENOMEM, "repomap: out of memory"); }
  /* references -> (file, name) edges; resolved to definitions later */
  if (sqlite3_prepare_v2(db, "SELECT blob, name FROM refs WHERE blob <= ?1", -1, &st, NULL) != SQLITE_OK) {
    free(b2f);
    return kv_err_set(err, KV_EIO, "%s: repomap: %s", ix->db_path, sqlite3_errmsg(db));
  }
  sqlite3_bind_int64(st, 1, maxb);
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    int64_t b = sqlite3_column_int64(st, 0);
    if (b < 0 || b > maxb || b2f[b] < 0) continue;
    int nid = nm_find(names, (const char *)sqlite3_column_text(st, 1), 0);
    if (nid == -2) rc = KV_ENOMEM;
    if (nid < 0) continue;
    rc = em_add(E, (uint64_t)b2f[b] << 32 | (uint32_t)nid);
  }
  sqlite3_finalize(st);
  free(b2f);
  if (rc) return kv_err_set(err, KV_ENOMEM, "repomap: out of memory");
  return 0;
}

/* Does a reference from file a reach definition d? Not in a's own file,
 * and not from code into a test file: code does not call its tests (a
 * test's `pop` or `write` would draw every such call of the code). */
static int edge_ok(const mapctx *M, int a, int d) {
  int b = M->defs[d].file;
  return b != a && (!M->test[b] || M->test[a]);
}

static int rank(mapctx *M, name_map *names, emap *E) {
  size_t F = M->nfiles, N = names->n;
  int *head = malloc((N ? N : 1) * sizeof *head), *next = malloc((M->ndefs ? M->ndefs : 1) * sizeof *next);
  int *cnt = calloc(N ? N : 1, sizeof *cnt);
  double *out = calloc(F ? F : 1, sizeof *out), *pr = malloc((F ? F : 1) * sizeof *pr),
         *np = malloc((F ? F : 1) * sizeof *np), *fac = malloc((N ? N : 1) * sizeof *fac);
  int rc = (!head || !next || !cnt || !out || !pr || !np || !fac) ? KV_ENOMEM : 0;
  if (!rc) {
    /* a name with a real definition does not resolve to its stand-ins */
    char *real = calloc(N ? N : 1, 1);
    if (!real) {
      rc = KV_ENOMEM;
      goto done;
    }
    for (size_t d = 0; d < M->ndefs; d++)
      if (!M->defs[d].proto) real[M->defs[d].name] = 1;
    for (size_t i = 0; i < N; i++) head[i] = -1;
    for (size_t d = M->ndefs; d-- > 0;) {
      if (M->defs[d].proto && real[M->defs[d].name]) {
        next[d] = -1;
        continue;
      }
      next[d] = head[M->defs[d].name];
      head[M->defs[d].name] = (int)d;
      cnt[M->defs[d].name]++;
    }
    free(real);
    for (size_t i = 0; i < names->cap; i++)
      if (names->k[i]) fac[names->v[i]] = name_factor(names->k[i], cnt[names->v[i]]);
    /* out-weights: edge (file A, name) -> each defining file B != A */
    for (size_t i = 0; i < E->cap; i++) {
      if (E->v[i].n <= 0) continue;
      int a = (int)(E->v[i].key >> 32), nm = (int)(uint32_t)E->v[i].key;
      if (cnt[nm] > 50) continue;
      double w = fac[nm] * sqrt(E->v[i].n);
      for (int d = head[nm]; d >= 0; d = next[d])
        if (edge_ok(M, a, d)) out[a] += w;
    }
    for (size_t f = 0; f < F; f++) pr[f] = 1.0 / (double)F;
    for (int it = 0; it < 30; it++) {
      double dangling = 0;
      for (size_t f = 0; f < F; f++) {
        np[f] = 0;
        if (out[f] == 0) dangling += pr[f];
      }
      for (size_t i = 0; i < E->cap; i++) {
        if (E->v[i].n <= 0) continue;
        int a = (int)(E->v[i].key >> 32), nm = (int)(uint32_t)E->v[i].key;
        if (cnt[nm] > 50 || out[a] == 0) continue;
        double w = fac[nm] * sqrt(E->v[i].n);
        for (int d = head[nm]; d >= 0; d = next[d])
          if (edge_ok(M, a, d)) np[M->defs[d].file] += pr[a] * w / out[a];
      }
      for (size_t f = 0; f < F; f++) pr[f] = 0.15 / (double)F + 0.85 * (np[f] + dangling / (double)F);
    }
    /* definition ranks */
    for (size_t i = 0; i < E->cap; i++) {
      if (E->v[i].n <= 0) continue;
      int a = (int)(E->v[i].key >> 32), nm = (int)(uint32_t)E->v[i].key;
      if (cnt[nm] > 50 || out[a] == 0) continue;
      double w = fac[nm] * sqrt(E->v[i].n);
      for (int d = head[nm]; d >= 0; d = next[d])
        if (edge_ok(M, a, d)) M->defs[d].rank += pr[a] * w / out[a];
    }
    /* unreferenced definitions keep a little of their file's rank */
    for (size_t d = 0; d < M->ndefs; d++) M->defs[d].rank += 1e-6 * pr[M->defs[d].file];
  }
done:
  free(head);
  free(next);
  free(cnt);
  free(out);
  free(pr);
  free(np);
  free(fac);
  return rc;
}

int idx_repomap(idx_index *ix, size_t budget, idx_token_fn fn, void *ud, char **out, kv_err *err) {
  *out = NULL;
  if (budget == 0) budget = 1024;
  mapctx M = {0};
  name_map names = {0};
  emap E = {0};
  pthread_mutex_lock(&ix->rlock);
  int rc = load(ix, &M, &names, &E, err);
  pthread_mutex_unlock(&ix->rlock);
  if (!rc && rank(&M, &names, &E)) rc = kv_err_set(err, KV_ENOMEM, "repomap: out of memory");
  if (!rc && !(M.order = malloc((M.ndefs ? M.ndefs : 1) * sizeof *M.order)))
    rc = kv_err_set(err, KV_ENOMEM, "repomap: out of memory");
  if (!rc) {
    for (size_t i = 0; i < M.ndefs; i++) M.order[i] = (int)i;
    qsort_r(M.order, M.ndefs, sizeof *M.order, cmp_rank, M.defs);
    /* the largest count whose rendering fits */
    size_t lo = 0, hi = M.ndefs < budget ? M.ndefs : budget; /* a line costs >= 2 tokens */
    char *best = NULL;
    while (lo <= hi) {
      size_t mid = lo + (hi - lo) / 2, len = 0;
      char *s = render(&M, mid, &len);
      if (!s) {
        rc = kv_err_set(err, KV_ENOMEM, "repomap: out of memory");
        break;
      }
      size_t toks = fn ? fn(s, len, ud) : len / 4;
      if (toks <= budget) {
        free(best);
        best = s;
        lo = mid + 1;
      } else {
        free(s);
        if (mid == 0) break;
        hi = mid - 1;
      }
    }
    if (!rc) *out = best ? best : strdup("");
    else free(best);
    if (!rc && !*out) rc = kv_err_set(err, KV_ENOMEM, "repomap: out of memory");
  }
  for (size_t i = 0; i < M.nfiles; i++) free(M.paths[i]);
  free(M.test);
  for (size_t i = 0; i < M.ndefs; i++) free(M.defs[i].sig);
  free(M.paths);
  free(M.defs);
  free(M.order);
  nm_free(&names);
  free(E.v);
  return rc;
}
