/*
 * indexer.c — the idx_index handle: open (find the repository, place and
 * migrate the database, compile the grammars' queries), close, and the
 * simple readers (files, read_lines). Sync lives in sync.c, retrieval in
 * search.c and repomap.c.
 *
 * Invariant: an open handle always has a writer connection whose schema is
 * at IDX_SCHEMA_VERSION and a reader connection on the same file. The
 * grammars' queries are compiled on the first sync (readers never need them).
 */
#include "internal.h"
#include "rank_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *idx_version(void) { return "0.2.0"; }

static const char *const skip_names[IDX_SKIP__COUNT] = {
    "", "binary", "too-large", "vendored", "minified", "generated",
    "ignored", "symlink", "submodule", "unreadable"};
static const char *const note_names[IDX_NOTE__COUNT] = {"", "text-only", "invalid-utf8",
                                                        "parse-error", "path-not-utf8"};

const char *idx_skip_name(int r) { return r >= 0 && r < IDX_SKIP__COUNT ? skip_names[r] : "?"; }
const char *idx_note_name(int n) { return n >= 0 && n < IDX_NOTE__COUNT ? note_names[n] : "?"; }

char *idx_strdup0(const char *s) { return strdup(s ? s : ""); }

/* A test file: a path component tests/, test/, __tests__/, spec/ or a base
 * name test_*, *_test.*, *.test.*, *.spec.*, *_spec.*, conftest.py. Its
 * code uses the vocabulary of what it tests (the test of a parser says
 * "parse" as often as the parser), so without a demotion tests outrank the
 * code they test. */
int idx_is_test_path(const char *path) {
  static const char *const dirs[] = {"test", "tests", "__tests__", "spec"};
  for (const char *s = path; *s;) {
    const char *e = strchr(s, '/');
    if (!e) break;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
      if ((size_t)(e - s) == strlen(dirs[i]) && !strncmp(s, dirs[i], (size_t)(e - s))) return 1;
    s = e + 1;
  }
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  if (!strncmp(b, "test_", 5) || !strcmp(b, "conftest.py")) return 1;
  const char *dot = strchr(b, '.');
  size_t stem = dot ? (size_t)(dot - b) : strlen(b);
  if (stem > 5 && (!strncmp(b + stem - 5, "_test", 5) || !strncmp(b + stem - 5, "_spec", 5))) return 1;
  return strstr(b, ".test.") != NULL || strstr(b, ".spec.") != NULL;
}

/* A file of declarations: C/C++ headers, TypeScript .d.ts, Python .pyi. A
 * header repeats its definitions' doc comments (lz4.h, commander's
 * typings), and a question about how something works is answered by the
 * definition. */
int idx_is_decl_path(const char *path) {
  size_t n = strlen(path);
  static const char *const suf[] = {".h", ".hh", ".hpp", ".hxx", ".d.ts", ".d.mts", ".d.cts", ".pyi"};
  for (size_t i = 0; i < sizeof suf / sizeof suf[0]; i++) {
    size_t k = strlen(suf[i]);
    if (n > k && !strcmp(path + n - k, suf[i])) return 1;
  }
  return 0;
}

void idx_repo_id(const char *abs_path, char buf[17]) {
  snprintf(buf, 17, "%016llx", (unsigned long long)kv_hash64(abs_path, strlen(abs_path)));
}

static int strset_grow(idx_strset *s) {
  size_t nc = s->cap ? s->cap * 2 : 64;
  char **nv = calloc(nc, sizeof *nv);
  if (!nv) return KV_ENOMEM;
  for (size_t i = 0; i < s->cap; i++)
    if (s->v[i]) {
      size_t h = kv_hash64(s->v[i], strlen(s->v[i])) & (nc - 1);
      while (nv[h]) h = (h + 1) & (nc - 1);
      nv[h] = s->v[i];
    }
  free(s->v);
  s->v = nv;
  s->cap = nc;
  return 0;
}

int idx_strset_has(const idx_strset *s, const char *k) {
  if (!s->cap) return 0;
  size_t h = kv_hash64(k, strlen(k)) & (s->cap - 1);
  while (s->v[h]) {
    if (strcmp(s->v[h], k) == 0) return 1;
    h = (h + 1) & (s->cap - 1);
  }
  return 0;
}

int idx_strset_add(idx_strset *s, const char *k) {
  if (idx_strset_has(s, k)) return 0;
  if ((s->n + 1) * 2 > s->cap && strset_grow(s)) return KV_ENOMEM;
  size_t h = kv_hash64(k, strlen(k)) & (s->cap - 1);
  while (s->v[h]) h = (h + 1) & (s->cap - 1);
  if (!(s->v[h] = strdup(k))) return KV_ENOMEM;
  s->n++;
  return 1;
}

void idx_strset_free(idx_strset *s) {
  for (size_t i = 0; i < s->cap; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

static int git_fail(kv_err *err, const char *what, const char *path) {
  const git_error *e = git_error_last();
  return kv_err_set(err, KV_EIO, "%s: %s: %s", path, what, e && e->message ? e->message : "libgit2 error");
}

void idx_global_init(void) { git_libgit2_init(); }
void idx_global_shutdown(void) { git_libgit2_shutdown(); }

int idx_open(idx_index **out, const char *repo_path, const idx_options *opt, kv_err *err) {
  *out = NULL;
  if (!repo_path) return kv_err_set(err, KV_EINVAL, "idx_open: no repository path");
  git_libgit2_init();
  idx_index *ix = calloc(1, sizeof *ix);
  if (!ix) {
    git_libgit2_shutdown();
    return kv_err_set(err, KV_ENOMEM, "idx_open: out of memory");
  }
  pthread_mutex_init(&ix->wlock, NULL);
  pthread_mutex_init(&ix->rlock, NULL);
  if (opt) ix->opt = *opt;
  if (!ix->opt.max_file_bytes) ix->opt.max_file_bytes = 1u << 20;
  if (!ix->opt.history_commits) ix->opt.history_commits = 2000;
  if (ix->opt.batch_files <= 0) ix->opt.batch_files = 2048;
  ix->opt.db_path = NULL;
  int rc = 0;
  if (git_repository_open_ext(&ix->repo, repo_path, 0, NULL) != 0) {
    rc = git_fail(err, "not a git repository (or cannot be opened)", repo_path);
    goto fail;
  }
  ix->bare = git_repository_is_bare(ix->repo);
  const char *wd = git_repository_workdir(ix->repo);
  const char *gd = git_repository_path(ix->repo);
  ix->root = strdup(ix->bare || !wd ? gd : wd);
  ix->gitdir = strdup(gd);
  if (!ix->root || !ix->gitdir) {
    rc = kv_err_set(err, KV_ENOMEM, "idx_open: out of memory");
    goto fail;
  }
  if (ix->bare || !wd) ix->bare = 1;
  if (git_repository_open(&ix->rrepo, ix->gitdir) != 0) {
    rc = git_fail(err, "reopen", ix->gitdir);
    goto fail;
  }
  if (opt && opt->db_path) {
    if (snprintf(ix->db_path, sizeof ix->db_path, "%s", opt->db_path) >= (int)sizeof ix->db_path) {
      rc = kv_err_set(err, KV_ELIMIT, "idx_open: db path too long");
      goto fail;
    }
  } else {
    char data[PATH_MAX], id[17], dir[PATH_MAX + 64];
    if (kv_xdg_dir(data, sizeof data, "data") != 0) {
      rc = kv_err_set(err, KV_ELIMIT, "idx_open: $XDG_DATA_HOME path too long");
      goto fail;
    }
    /* the id names the repository by its absolute path (no trailing '/') */
    char abs[PATH_MAX];
    snprintf(abs, sizeof abs, "%s", ix->root);
    size_t n = strlen(abs);
    while (n > 1 && abs[n - 1] == '/') abs[--n] = 0;
    idx_repo_id(abs, id);
    snprintf(dir, sizeof dir, "%s/repos/%s", data, id);
    if ((rc = kv_mkdirs(dir, 0700, err))) goto fail;
    if (snprintf(ix->db_path, sizeof ix->db_path, "%s/index.db", dir) >= (int)sizeof ix->db_path) {
      rc = kv_err_set(err, KV_ELIMIT, "idx_open: db path too long");
      goto fail;
    }
  }
  if ((rc = idx_store_open(&ix->w, ix->db_path, 0, err))) goto fail;
  if ((rc = idx_store_open(&ix->r, ix->db_path, 1, err))) goto fail;
  *out = ix;
  return 0;
fail:
  idx_close(ix);
  return rc;
}

void idx_close(idx_index *ix) {
  if (!ix) return;
  idx_ranker_free(ix->ranker);
  idx_store_close(ix->r);
  idx_store_close(ix->w);
  idx_langset_free(ix->langs);
  git_repository_free(ix->rrepo);
  git_repository_free(ix->repo);
  free(ix->root);
  free(ix->gitdir);
  pthread_mutex_destroy(&ix->wlock);
  pthread_mutex_destroy(&ix->rlock);
  free(ix);
  git_libgit2_shutdown();
}

const char *idx_db_path(const idx_index *ix) { return ix->db_path; }
const char *idx_repo_root(const idx_index *ix) { return ix->root; }
uint64_t idx_parse_count(const idx_index *ix) { return atomic_load(&((idx_index *)ix)->parsed); }

/* ---- files ---------------------------------------------------------------- */

void idx_file_list_free(idx_file_list *l) {
  if (!l) return;
  for (size_t i = 0; i < l->n; i++) free(l->v[i].path);
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

int idx_files(idx_index *ix, int flags, idx_file_list *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  char sql[256];
  const char *where = (flags & IDX_FILES_INDEXED) ? " AND skip=0" : (flags & IDX_FILES_SKIPPED) ? " AND skip<>0" : "";
  snprintf(sql, sizeof sql,
           "SELECT path,oid,lang,size,skip,note,changed,worktree FROM files WHERE worktree<2%s ORDER BY %s",
           where, (flags & IDX_FILES_BY_RECENCY) ? "changed, path" : "path");
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  sqlite3_stmt *st;
  int rc = 0;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
    rc = kv_err_set(err, KV_EIO, "%s: %s", ix->db_path, sqlite3_errmsg(db));
    pthread_mutex_unlock(&ix->rlock);
    return rc;
  }
  size_t cap = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (KV_GROW(out->v, cap, out->n + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "idx_files: out of memory");
      break;
    }
    idx_file *f = &out->v[out->n];
    memset(f, 0, sizeof *f);
    f->path = idx_strdup0((const char *)sqlite3_column_text(st, 0));
    if (!f->path) {
      rc = kv_err_set(err, KV_ENOMEM, "idx_files: out of memory");
      break;
    }
    snprintf(f->oid, sizeof f->oid, "%s", (const char *)sqlite3_column_text(st, 1));
    const unsigned char *l = sqlite3_column_text(st, 2);
    snprintf(f->lang, sizeof f->lang, "%s", l ? (const char *)l : "");
    f->size = (uint64_t)sqlite3_column_int64(st, 3);
    f->skip = sqlite3_column_int(st, 4);
    f->note = sqlite3_column_int(st, 5);
    f->changed = sqlite3_column_int64(st, 6);
    f->worktree = sqlite3_column_int(st, 7);
    out->n++;
  }
  sqlite3_finalize(st);
  pthread_mutex_unlock(&ix->rlock);
  if (rc) idx_file_list_free(out);
  return rc;
}

/* ---- read_lines ------------------------------------------------------------ */

static int cut_lines(const char *buf, size_t len, int l0, int l1, char **out, size_t *olen,
                     kv_err *err) {
  if (l0 < 1) l0 = 1;
  if (l1 < l0) l1 = l0;
  size_t a = 0, line = 1;
  while (a < len && (int)line < l0) {
    if (buf[a++] == '\n') line++;
  }
  size_t b = a;
  while (b < len && (int)line <= l1) {
    if (buf[b++] == '\n') line++;
  }
  *out = malloc(b - a + 1);
  if (!*out) return kv_err_set(err, KV_ENOMEM, "read_lines: out of memory");
  memcpy(*out, buf + a, b - a);
  (*out)[b - a] = 0;
  if (olen) *olen = b - a;
  return 0;
}

int idx_read_lines(idx_index *ix, const char *path, int line0, int line1, int from_worktree,
                   char **out, size_t *len, kv_err *err) {
  *out = NULL;
  if (!path || !*path || path[0] == '/' || strstr(path, "..") == path || strstr(path, "/../"))
    return kv_err_set(err, KV_EINVAL, "read_lines: bad path '%s'", path ? path : "");
  if (from_worktree && !ix->bare) {
    char full[8192], real[PATH_MAX], root[PATH_MAX];
    /* the resolved file must stay inside the working tree (a symlink in
     * the repository must not turn a citation into a read of ~/.ssh) */
    if (snprintf(full, sizeof full, "%s%s", ix->root, path) < (int)sizeof full &&
        realpath(full, real) && realpath(ix->root, root) &&
        strncmp(real, root, strlen(root)) == 0 && real[strlen(root)] == '/') {
      char *buf;
      size_t n;
      kv_err e2;
      if (kv_read_file(full, 64u << 20, &buf, &n, &e2) == 0) {
        int rc = cut_lines(buf, n, line0, line1, out, len, err);
        free(buf);
        return rc;
      }
    }
  }
  pthread_mutex_lock(&ix->rlock);
  int rc = 0;
  git_object *obj = NULL;
  char spec[8192];
  snprintf(spec, sizeof spec, "HEAD:%s", path);
  if (git_revparse_single(&obj, ix->rrepo, spec) != 0 || git_object_type(obj) != GIT_OBJECT_BLOB) {
    rc = kv_err_set(err, KV_ENOTFOUND, "read_lines: %s not found at HEAD", path);
  } else {
    git_blob *b = (git_blob *)obj;
    rc = cut_lines(git_blob_rawcontent(b), (size_t)git_blob_rawsize(b), line0, line1, out, len, err);
  }
  git_object_free(obj);
  pthread_mutex_unlock(&ix->rlock);
  return rc;
}
