/*
 * facts.c — what the index knows about one definition, for grounded
 * answers: the definition (path:line, signature), its doc comment, its
 * callers and the tests among them, the definitions it calls, and the last
 * commits that changed its file (libgit2); and idx_known, the check the
 * answer verifier asks of every code-like token.
 *
 * Everything here reads the reader connection under rlock, like search.c.
 * Callers come from the refs table (names referenced per blob and line); a
 * ref inside the definition itself (recursion) is not a caller, nor is a ref
 * from a file of another language (refs are names, not resolved bindings:
 * ndefs says how many definitions share the name). A caller is
 * a test when its path looks like one (tests/, test_*, *_test.*, *.spec.*,
 * *.test.*). Results are capped (IDX_FACT_MAX each) so a fact set stays a
 * few hundred bytes however popular a name is.
 */
#include "internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_test_path(const char *p) {
  if (!strncmp(p, "test/", 5) || !strncmp(p, "tests/", 6) || strstr(p, "/test/") || strstr(p, "/tests/") ||
      strstr(p, "__tests__/"))
    return 1;
  const char *base = strrchr(p, '/');
  base = base ? base + 1 : p;
  return !strncmp(base, "test_", 5) || strstr(base, "_test.") || strstr(base, ".test.") || strstr(base, ".spec.") ||
         !strncmp(base, "conftest", 8);
}

int idx_path_is_test(const char *path) { return path && is_test_path(path); }

static char *col_dup(sqlite3_stmt *st, int i) { return idx_strdup0((const char *)sqlite3_column_text(st, i)); }

/* How well a definition's name matches the question: its name parts
 * (snake_case and camelCase pieces, lower-cased) found among the question's
 * words, a part matching a word when one is a prefix of the other and the
 * shorter has at least 4 letters ("load" ~ "loaded", "perm" ~ "permission"). */
static int name_match(const char *name, const char *question) {
  if (!question || !*question) return 0;
  int score = 0;
  const char *p = name;
  while (*p) {
    while (*p && !isalnum((unsigned char)*p)) p++;
    const char *q = p;
    if (*q) q++;
    while (*q && isalnum((unsigned char)*q) && !(isupper((unsigned char)*q) && islower((unsigned char)q[-1]))) q++;
    size_t pl = (size_t)(q - p);
    if (pl >= 3) {
      for (const char *w = question; *w;) {
        while (*w && !isalnum((unsigned char)*w)) w++;
        const char *we = w;
        while (*we && isalnum((unsigned char)*we)) we++;
        size_t wl = (size_t)(we - w), m = pl < wl ? pl : wl;
        if (wl && (m >= 4 || (m == pl && m == wl)) && !strncasecmp(p, w, m)) {
          score++;
          break;
        }
        w = we;
      }
    }
    p = q;
  }
  return score;
}

/* The definition: among the symbols starting in [line0, line1] of path,
 * the one whose name best matches the question (the first on a tie), else
 * the innermost one enclosing line0. */
static int find_def(sqlite3 *db, const char *path, int line0, int line1, const char *question, idx_symbol *d,
                    sqlite3_int64 *blob) {
  static const char *const q[2] = {
      "SELECT s.name, s.kind, s.scope, s.sig, b.lang, s.line0, s.line1, s.blob FROM symbols s"
      " JOIN blobs b ON b.id = s.blob JOIN files f ON f.oid = b.oid AND f.worktree < 2"
      " WHERE f.path = ?1 AND s.line0 >= ?2 AND s.line0 <= ?3 ORDER BY s.line0, s.line1 DESC LIMIT 64",
      "SELECT s.name, s.kind, s.scope, s.sig, b.lang, s.line0, s.line1, s.blob FROM symbols s"
      " JOIN blobs b ON b.id = s.blob JOIN files f ON f.oid = b.oid AND f.worktree < 2"
      " WHERE f.path = ?1 AND s.line0 <= ?2 AND s.line1 >= ?2 ORDER BY s.line0 DESC LIMIT 1"};
  for (int k = 0; k < 2; k++) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, q[k], -1, &st, NULL) != SQLITE_OK) return KV_EIO;
    sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, line0);
    sqlite3_bind_int(st, 3, line1);
    int found = 0, best = -1;
    while (sqlite3_step(st) == SQLITE_ROW) {
      const char *name = (const char *)sqlite3_column_text(st, 0);
      int score = name ? name_match(name, question) : 0;
      if (score <= best) continue;
      best = score;
      if (found) {
        free(d->name), free(d->kind), free(d->scope), free(d->signature), free(d->path);
        memset(d, 0, sizeof *d);
      }
      found = 1;
      d->name = col_dup(st, 0);
      d->kind = col_dup(st, 1);
      d->scope = col_dup(st, 2);
      d->signature = col_dup(st, 3);
      snprintf(d->lang, sizeof d->lang, "%s", sqlite3_column_text(st, 4) ? (const char *)sqlite3_column_text(st, 4) : "");
      d->line0 = sqlite3_column_int(st, 5);
      d->line1 = sqlite3_column_int(st, 6);
      *blob = sqlite3_column_int64(st, 7);
      d->path = idx_strdup0(path);
    }
    sqlite3_finalize(st);
    if (found) return d->name && d->path ? 0 : KV_ENOMEM;
  }
  return KV_ENOTFOUND;
}

static int callers(sqlite3 *db, idx_fact *f, sqlite3_int64 blob) {
  sqlite3_stmt *st, *in;
  if (sqlite3_prepare_v2(db,
                         "SELECT f.path, r.line, r.blob FROM refs r JOIN blobs b ON b.id = r.blob"
                         " JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0"
                         " WHERE r.name = ?1 AND b.lang = ?2 ORDER BY f.path, r.line LIMIT 400",
                         -1, &st, NULL) != SQLITE_OK)
    return KV_EIO;
  if (sqlite3_prepare_v2(db,
                         "SELECT name FROM symbols WHERE blob = ?1 AND line0 <= ?2 AND line1 >= ?2"
                         " ORDER BY line0 DESC LIMIT 1",
                         -1, &in, NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return KV_EIO;
  }
  sqlite3_bind_text(st, 1, f->def.name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, f->def.lang, -1, SQLITE_STATIC);
  int rc = 0;
  size_t capc = 0, capt = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    const char *path = (const char *)sqlite3_column_text(st, 0);
    int line = sqlite3_column_int(st, 1);
    sqlite3_int64 b = sqlite3_column_int64(st, 2);
    if (!path || (b == blob && line >= f->def.line0 && line <= f->def.line1)) continue; /* itself */
    int test = is_test_path(path);
    if (test ? f->ntests >= IDX_FACT_MAX : f->ncallers >= IDX_FACT_MAX) continue;
    idx_ref r = {idx_strdup0(path), line, NULL};
    sqlite3_reset(in);
    sqlite3_bind_int64(in, 1, b);
    sqlite3_bind_int(in, 2, line);
    r.in = idx_strdup0(sqlite3_step(in) == SQLITE_ROW ? (const char *)sqlite3_column_text(in, 0) : "");
    /* one entry per calling definition: its first reference */
    int seen = 0;
    idx_ref *list = test ? f->tests : f->callers;
    size_t nl = test ? f->ntests : f->ncallers;
    for (size_t k = 0; r.in && *r.in && k < nl && !seen; k++)
      seen = !strcmp(list[k].path, r.path) && !strcmp(list[k].in, r.in);
    if (seen) {
      free(r.path), free(r.in);
      continue;
    }
    if (!r.path || !r.in) rc = KV_ENOMEM;
    else if (test) rc = KV_PUSH(f->tests, f->ntests, capt, r);
    else rc = KV_PUSH(f->callers, f->ncallers, capc, r);
    if (rc) free(r.path), free(r.in);
  }
  sqlite3_finalize(in);
  sqlite3_finalize(st);
  return rc;
}

/* How many definitions in the current view share the name. */
static int same_name(sqlite3 *db, idx_fact *f) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT count(*) FROM symbols s JOIN blobs b ON b.id = s.blob"
                         " JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0"
                         " WHERE s.name = ?1 AND coalesce(s.kind, '') <> 'prototype'",
                         -1, &st, NULL) != SQLITE_OK)
    return KV_EIO;
  sqlite3_bind_text(st, 1, f->def.name, -1, SQLITE_STATIC);
  f->ndefs = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 1;
  if (f->ndefs < 1) f->ndefs = 1; /* the fact is a declaration itself */
  sqlite3_finalize(st);
  return 0;
}

static int callees(sqlite3 *db, idx_fact *f, sqlite3_int64 blob) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT DISTINCT r.name FROM refs r WHERE r.blob = ?1 AND r.line BETWEEN ?2 AND ?3"
                         " AND r.name <> ?4 AND EXISTS (SELECT 1 FROM symbols s WHERE s.name = r.name)"
                         " ORDER BY r.line LIMIT ?5",
                         -1, &st, NULL) != SQLITE_OK)
    return KV_EIO;
  sqlite3_bind_int64(st, 1, blob);
  sqlite3_bind_int(st, 2, f->def.line0);
  sqlite3_bind_int(st, 3, f->def.line1);
  sqlite3_bind_text(st, 4, f->def.name, -1, SQLITE_STATIC);
  sqlite3_bind_int(st, 5, IDX_FACT_MAX);
  int rc = 0;
  size_t cap = 0;
  while (!rc && sqlite3_step(st) == SQLITE_ROW) {
    char *n = col_dup(st, 0);
    rc = n ? KV_PUSH(f->callees, f->ncallees, cap, n) : KV_ENOMEM;
    if (rc) free(n);
  }
  sqlite3_finalize(st);
  return rc;
}

/* Where the definition is declared apart from it (a prototype), if anywhere. */
static void declaration(sqlite3 *db, const idx_fact *f, char *path, size_t n, int *line) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT f.path, s.line0 FROM symbols s JOIN blobs b ON b.id = s.blob"
                         " JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0"
                         " WHERE s.name = ?1 AND s.kind = 'prototype' AND b.lang = ?2 ORDER BY f.path LIMIT 1",
                         -1, &st, NULL) != SQLITE_OK)
    return;
  sqlite3_bind_text(st, 1, f->def.name, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, f->def.lang, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    snprintf(path, n, "%s", (const char *)sqlite3_column_text(st, 0));
    *line = sqlite3_column_int(st, 1);
  }
  sqlite3_finalize(st);
}

static int comment_line(const char *s, size_t n) {
  while (n && (*s == ' ' || *s == '\t')) s++, n--;
  return (n >= 2 && ((s[0] == '/' && (s[1] == '/' || s[1] == '*')) || (s[0] == '*' && s[1] != '/') ||
                     (s[0] == '-' && s[1] == '-'))) ||
         (n >= 1 && s[0] == '*') ||
         /* "# text" and "##", not "#include", "#define" or a "#!" line */
         (n >= 1 && s[0] == '#' && (n == 1 || s[1] == ' ' || s[1] == '#' || s[1] == '\t'));
}

/* The comment block right above line0 of path, appended to b. */
static void comment_above(idx_index *ix, const char *path, int line0, kv_buf *b) {
  char *txt = NULL;
  size_t len = 0;
  kv_err e;
  int from = line0 > 12 ? line0 - 12 : 1;
  if (line0 > 1 && idx_read_lines(ix, path, from, line0 - 1, 0, &txt, &len, &e) == 0 && len) {
    /* walk back over the trailing comment block */
    size_t end = len, start = len;
    while (start > 0) {
      size_t ls = start - 1;
      while (ls > 0 && txt[ls - 1] != '\n') ls--;
      size_t ll = start - ls;
      if (ll && txt[ls + ll - 1] == '\n') ll--;
      if (!ll || !comment_line(txt + ls, ll)) break;
      start = ls;
    }
    if (start < end) kv_buf_append(b, txt + start, end - start);
  }
  free(txt);
}

/* The doc comment: the comment lines right above the definition, else above
 * its declaration (a C prototype in a header), or a Python docstring right
 * below its first line. Trimmed, at most 600 bytes. */
static void doc_comment(idx_index *ix, idx_fact *f, const char *decl_path, int decl_line) {
  kv_buf b = KV_BUF_INIT;
  char *txt = NULL;
  size_t len = 0;
  kv_err e;
  comment_above(ix, f->def.path, f->def.line0, &b);
  if (!b.len && decl_path && decl_line > 0) comment_above(ix, decl_path, decl_line, &b);
  if (!b.len && !strcmp(f->def.lang, "python") &&
      idx_read_lines(ix, f->def.path, f->def.line0 + 1, f->def.line0 + 12, 0, &txt, &len, &e) == 0 && len) {
    const char *q = txt;
    while (*q == ' ' || *q == '\t' || *q == '\n') q++;
    if (!strncmp(q, "\"\"\"", 3) || !strncmp(q, "'''", 3)) {
      const char *close = strstr(q + 3, q[0] == '"' ? "\"\"\"" : "'''");
      kv_buf_append(&b, q, close ? (size_t)(close + 3 - q) : strlen(q));
    }
  }
  free(txt);
  if (b.len > 600) {
    size_t cut = 600;
    while (cut > 0 && ((unsigned char)b.data[cut] & 0xc0) == 0x80) cut--;
    kv_buf_truncate(&b, cut);
  }
  while (b.len && isspace((unsigned char)b.data[b.len - 1])) kv_buf_truncate(&b, b.len - 1);
  f->doc = b.len ? kv_buf_detach(&b, NULL) : NULL;
  kv_buf_free(&b);
}

/* The last commits (newest first, of the first 200 from HEAD) whose tree
 * holds a different blob at the definition's path than their first parent. */
static void commits(idx_index *ix, idx_fact *f) {
  if (!ix->rrepo) return;
  git_revwalk *w = NULL;
  if (git_revwalk_new(&w, ix->rrepo) || git_revwalk_push_head(w)) {
    git_revwalk_free(w);
    return;
  }
  git_revwalk_sorting(w, GIT_SORT_TIME);
  git_oid id;
  for (int n = 0; n < 200 && f->ncommits < IDX_FACT_COMMITS && git_revwalk_next(&id, w) == 0; n++) {
    git_commit *c = NULL, *p = NULL;
    git_tree *t = NULL, *pt = NULL;
    git_tree_entry *e = NULL, *pe = NULL;
    if (git_commit_lookup(&c, ix->rrepo, &id) || git_commit_tree(&t, c)) goto next;
    int has = git_tree_entry_bypath(&e, t, f->def.path) == 0;
    int phas = 0;
    if (git_commit_parentcount(c) > 0 && git_commit_parent(&p, c, 0) == 0 && git_commit_tree(&pt, p) == 0)
      phas = git_tree_entry_bypath(&pe, pt, f->def.path) == 0;
    if (has && (!phas || !git_oid_equal(git_tree_entry_id(e), git_tree_entry_id(pe)))) {
      idx_commit *k = &f->commits[f->ncommits++];
      git_oid_tostr(k->id, sizeof k->id, &id);
      k->time = (int64_t)git_commit_time(c);
      const char *s = git_commit_summary(c);
      k->summary = idx_strdup0(s);
    }
  next:
    git_tree_entry_free(e);
    git_tree_entry_free(pe);
    git_tree_free(t);
    git_tree_free(pt);
    git_commit_free(p);
    git_commit_free(c);
  }
  git_revwalk_free(w);
}

int idx_fact_get(idx_index *ix, const char *path, int line0, int line1, const char *question, idx_fact *out,
                 kv_err *err) {
  memset(out, 0, sizeof *out);
  if (!path || !*path) return kv_err_set(err, KV_EINVAL, "facts: no path");
  sqlite3_int64 blob = 0;
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  int rc = find_def(db, path, line0, line1 < line0 ? line0 : line1, question, &out->def, &blob);
  if (!rc) rc = same_name(db, out);
  if (!rc) rc = callers(db, out, blob);
  if (!rc) rc = callees(db, out, blob);
  if (!rc) commits(ix, out);
  char decl_path[1024] = "";
  int decl_line = 0;
  if (!rc) declaration(db, out, decl_path, sizeof decl_path, &decl_line);
  const char *msg = rc == KV_EIO ? sqlite3_errmsg(db) : NULL;
  pthread_mutex_unlock(&ix->rlock);
  if (!rc) doc_comment(ix, out, decl_path, decl_line); /* idx_read_lines takes rlock itself */
  if (rc) {
    idx_fact_free(out);
    if (rc == KV_ENOTFOUND) return kv_err_set(err, rc, "facts: no definition at %s:%d-%d", path, line0, line1);
    if (rc == KV_EIO) return kv_err_set(err, rc, "%s: facts: %s", ix->db_path, msg ? msg : "query failed");
    return kv_err_set(err, rc, "facts: out of memory");
  }
  return 0;
}

void idx_fact_free(idx_fact *f) {
  free(f->def.name);
  free(f->def.kind);
  free(f->def.scope);
  free(f->def.signature);
  free(f->def.path);
  free(f->doc);
  for (size_t i = 0; i < f->ncallers; i++) free(f->callers[i].path), free(f->callers[i].in);
  for (size_t i = 0; i < f->ntests; i++) free(f->tests[i].path), free(f->tests[i].in);
  for (size_t i = 0; i < f->ncallees; i++) free(f->callees[i]);
  for (size_t i = 0; i < f->ncommits; i++) free(f->commits[i].summary);
  free(f->callers);
  free(f->tests);
  free(f->callees);
  memset(f, 0, sizeof *f);
}

/* ------------------------------------------------------------------ known */

static int ident_known(sqlite3 *db, const char *s, size_t n) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM idents WHERE name = ?1", -1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, s, (int)n, SQLITE_STATIC);
  int k = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  if (k) return 1;
  if (sqlite3_prepare_v2(db, "SELECT 1 FROM symbols WHERE name = ?1 LIMIT 1", -1, &st, NULL) != SQLITE_OK) return -1;
  sqlite3_bind_text(st, 1, s, (int)n, SQLITE_STATIC);
  k = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_finalize(st);
  return k;
}

static int loc_known(sqlite3 *db, const char *s, size_t n) {
  const char *colon = memchr(s, ':', n);
  if (!colon) return 0;
  int l0 = atoi(colon + 1), l1 = l0;
  const char *dash = memchr(colon, '-', n - (size_t)(colon - s));
  if (dash) l1 = atoi(dash + 1);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(db,
                         "SELECT b.nlines FROM files f JOIN blobs b ON b.oid = f.oid"
                         " WHERE f.worktree < 2 AND (f.path = ?1 OR f.path LIKE '%/' || ?1) LIMIT 1",
                         -1, &st, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, s, (int)(colon - s), SQLITE_STATIC);
  int k = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    int nl = sqlite3_column_int(st, 0);
    k = l0 >= 1 && l1 >= l0 && (nl <= 0 || l1 <= nl);
  }
  sqlite3_finalize(st);
  return k;
}

int idx_known(idx_index *ix, const char *tok, size_t n, int is_location) {
  if (!tok || !n) return 0;
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  int k;
  if (is_location) {
    k = loc_known(db, tok, n);
  } else {
    /* a chain a.b / a::b / a->b: every part of two or more bytes */
    k = 1;
    const char *p = tok, *end = tok + n;
    while (k == 1 && p < end) {
      const char *q = p;
      while (q < end && (isalnum((unsigned char)*q) || *q == '_')) q++;
      if (q - p >= 2) k = ident_known(db, p, (size_t)(q - p));
      while (q < end && !(isalnum((unsigned char)*q) || *q == '_')) q++;
      p = q;
    }
  }
  pthread_mutex_unlock(&ix->rlock);
  return k;
}
