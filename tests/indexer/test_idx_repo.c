/*
 * test_idx_repo.c — the indexer on real temporary git repositories (made
 * with the `git` CLI): incremental sync keyed by blob OID (unchanged blobs
 * never reparsed, one-file commit = one reparse, branch switches reuse
 * blobs, working-tree edits), ignore rules and every skip reason, search
 * path:line, symbols, read_lines, recency order, repo map, and recovery
 * after kill -9 in the middle of a sync.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "indexer/indexer.h"
#include "indexer/rank_internal.h" /* private: the search's second stage */

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char g_tmp[256];

static void sh(const char *dir, const char *fmt, ...) {
  char cmd[8192];
  int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
}

static void write_file(const char *dir, const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  char *slash = strrchr(path, '/');
  *slash = 0;
  kv_err err;
  assert_int_equal(kv_mkdirs(path, 0755, &err), 0);
  *slash = '/';
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* A fresh repository directory under g_tmp. */
static void new_repo(char *dir, size_t n, const char *name) {
  snprintf(dir, n, "%s/%s", g_tmp, name);
  kv_err err;
  assert_int_equal(kv_mkdirs(dir, 0755, &err), 0);
  sh(dir, "git init -q -b main . && git config core.autocrlf false");
}

static idx_index *open_ix(const char *dir, const char *dbname, size_t cap) {
  char db[1024];
  snprintf(db, sizeof db, "%s/%s.db", g_tmp, dbname);
  idx_options o = {0};
  o.db_path = db;
  o.max_file_bytes = cap;
  idx_index *ix = NULL;
  kv_err err;
  if (idx_open(&ix, dir, &o, &err) != 0) fail_msg("idx_open: %s", err.msg);
  return ix;
}

static idx_sync_stats sync_ok(idx_index *ix) {
  idx_sync_stats st;
  kv_err err;
  if (idx_sync(ix, 0, NULL, NULL, NULL, &st, &err) != 0) fail_msg("idx_sync: %s", err.msg);
  return st;
}

static const idx_file *find_file(const idx_file_list *l, const char *path) {
  for (size_t i = 0; i < l->n; i++)
    if (!strcmp(l->v[i].path, path)) return &l->v[i];
  return NULL;
}

/* ---- incremental ------------------------------------------------------- */

static void test_incremental(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "inc");
  write_file(d, "a.py", "def alpha():\n    return 1\n");
  write_file(d, "src/b.c", "int beta(void) { return 2; }\n");
  write_file(d, "web/c.js", "function gamma() { return 3; }\n");
  sh(d, "git add -A && git commit -qm one");
  idx_index *ix = open_ix(d, "inc", 0);
  idx_sync_stats st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 3);
  assert_int_equal(st.files_indexed, 3);
  assert_int_equal(idx_parse_count(ix), 3);
  /* nothing changed: nothing parsed, nothing examined */
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0);
  assert_int_equal(st.paths_changed, 0);
  assert_int_equal(st.head_moved, 0);
  /* one-file commit: exactly one reparse */
  write_file(d, "src/b.c", "int beta(void) { return 22; }\nint beta2(void) { return 4; }\n");
  sh(d, "git commit -qam two");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 1);
  assert_int_equal(st.paths_changed, 1);
  assert_true(st.head_moved);
  assert_false(st.full_walk);
  idx_symbol_list sl;
  kv_err err;
  assert_int_equal(idx_symbols(ix, "beta2", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 1);
  assert_string_equal(sl.v[0].path, "src/b.c");
  assert_int_equal(sl.v[0].line0, 2);
  idx_symbol_list_free(&sl);
  /* branch switch: blobs seen on either branch are never parsed again */
  sh(d, "git checkout -q -b feat");
  write_file(d, "a.py", "def alpha():\n    return 11\n\n\ndef delta():\n    pass\n");
  sh(d, "git commit -qam feat");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 1);
  sh(d, "git checkout -q main");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0);
  assert_int_equal(st.paths_changed, 1);
  assert_int_equal(idx_symbols(ix, "delta", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 0); /* not on main */
  idx_symbol_list_free(&sl);
  sh(d, "git checkout -q feat");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0);
  assert_int_equal(idx_symbols(ix, "delta", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 1);
  idx_symbol_list_free(&sl);
  /* rename: same blob, no parse */
  sh(d, "git mv web/c.js web/c2.js && git commit -qm mv");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0);
  idx_file_list fl;
  assert_int_equal(idx_files(ix, IDX_FILES_ALL, &fl, &err), 0);
  assert_null(find_file(&fl, "web/c.js"));
  assert_non_null(find_file(&fl, "web/c2.js"));
  idx_file_list_free(&fl);
  /* working-tree edit: indexed from the worktree, then reverted */
  write_file(d, "web/c2.js", "function gamma() { return 3; }\nfunction epsilonWorktree() {}\n");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 1);
  assert_int_equal(idx_symbols(ix, "epsilonWorktree", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 1);
  idx_symbol_list_free(&sl);
  assert_int_equal(idx_files(ix, IDX_FILES_ALL, &fl, &err), 0);
  assert_int_equal(find_file(&fl, "web/c2.js")->worktree, 1);
  idx_file_list_free(&fl);
  st = sync_ok(ix); /* unchanged override: nothing parsed */
  assert_int_equal(st.blobs_parsed, 0);
  sh(d, "git checkout -q -- web/c2.js");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0);
  assert_int_equal(idx_symbols(ix, "epsilonWorktree", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 0);
  idx_symbol_list_free(&sl);
  /* an override that gets committed: HEAD's new blob wins over the reset */
  write_file(d, "web/c2.js", "function gamma() { return 3; }\nfunction zetaCommitted() {}\n");
  sync_ok(ix);
  sh(d, "git commit -qam zeta");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0); /* the worktree sync had parsed it */
  assert_int_equal(idx_symbols(ix, "zetaCommitted", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 1);
  idx_symbol_list_free(&sl);
  assert_int_equal(idx_files(ix, IDX_FILES_ALL, &fl, &err), 0);
  assert_int_equal(find_file(&fl, "web/c2.js")->worktree, 0);
  idx_file_list_free(&fl);
  /* deleted in the worktree: gone from the view; restored: back, unparsed */
  sh(d, "rm a.py");
  sync_ok(ix);
  assert_int_equal(idx_files(ix, IDX_FILES_ALL, &fl, &err), 0);
  assert_null(find_file(&fl, "a.py"));
  idx_file_list_free(&fl);
  sh(d, "git checkout -q -- a.py");
  st = sync_ok(ix);
  assert_int_equal(st.blobs_parsed, 0);
  assert_int_equal(idx_files(ix, IDX_FILES_ALL, &fl, &err), 0);
  assert_non_null(find_file(&fl, "a.py"));
  assert_int_equal(fl.n, 3);
  idx_file_list_free(&fl);
  /* a full re-walk still parses nothing */
  assert_int_equal(idx_sync(ix, IDX_SYNC_FULL, NULL, NULL, NULL, &st, &err), 0);
  assert_int_equal(st.blobs_parsed, 0);
  assert_int_equal(st.blobs_reused, 3);
  idx_close(ix);
}

/* ---- ignore rules and skip reasons --------------------------------------- */

static void test_skips(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "skips");
  write_file(d, ".gitignore", "build/\n*.log\n");
  write_file(d, ".kvasirignore", "secret/\n");
  write_file(d, "main.c", "int main(void) { return 0; }\n");
  write_file(d, "secret/key.py", "KEY = 1\n");
  write_file(d, "vendor/lib.go", "package lib\n");
  write_file(d, "dist/app.min.js", "var a=1;\n");
  write_file(d, "package-lock.json", "{}\n");
  write_file(d, "gen.go", "// Code generated by stringer. DO NOT EDIT.\npackage x\n");
  write_file(d, "bad.c", "int main( { ))) }}} #if\n struct { ;;; \n");
  write_file(d, "latin1.py", "s = 'caf\xe9'\n");
  write_file(d, "caf\xe9.py", "def odd_path():\n    pass\n");
  write_file(d, "notes.md", "# Notes\n\nplain text\n");
  sh(d, "printf 'ab\\000cd' > bin.dat && ln -s . loop && ln -s missing dangling");
  sh(d, "git add -A && git update-index --add --cacheinfo 160000,1111111111111111111111111111111111111111,sub"
        " && git commit -qm skips");
  /* untracked: ignored by .gitignore, or huge (50 MB on one line, made now) */
  write_file(d, "build/out.c", "int out;\n");
  write_file(d, "x.log", "log\n");
  sh(d, "head -c 52428800 /dev/zero | tr '\\0' 'a' > big.txt");
  idx_index *ix = open_ix(d, "skips", 0);
  idx_sync_stats st = sync_ok(ix);
  idx_file_list fl;
  kv_err err;
  assert_int_equal(idx_files(ix, IDX_FILES_ALL, &fl, &err), 0);
  assert_null(find_file(&fl, "build/out.c"));
  assert_null(find_file(&fl, "x.log"));
  struct {
    const char *path;
    int skip, note;
  } want[] = {
      {"main.c", 0, 0},
      {"secret/key.py", IDX_SKIP_IGNORED, 0},
      {"vendor/lib.go", IDX_SKIP_VENDORED, 0},
      {"dist/app.min.js", IDX_SKIP_MINIFIED, 0},
      {"package-lock.json", IDX_SKIP_GENERATED, 0},
      {"gen.go", IDX_SKIP_GENERATED, 0},
      {"bad.c", 0, IDX_NOTE_PARSE_ERROR},
      {"latin1.py", 0, IDX_NOTE_INVALID_UTF8},
      {"caf\xe9.py", 0, IDX_NOTE_PATH_NOT_UTF8},
      {"notes.md", 0, IDX_NOTE_TEXT_ONLY},
      {"bin.dat", IDX_SKIP_BINARY, 0},
      {"loop", IDX_SKIP_SYMLINK, 0},
      {"dangling", IDX_SKIP_SYMLINK, 0},
      {"sub", IDX_SKIP_SUBMODULE, 0},
      {"big.txt", IDX_SKIP_TOO_LARGE, 0},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    const idx_file *f = find_file(&fl, want[i].path);
    if (!f) fail_msg("%s: not listed", want[i].path);
    if (f->skip != want[i].skip || f->note != want[i].note)
      fail_msg("%s: skip %s note %s, want %s / %s", want[i].path, idx_skip_name(f->skip),
               idx_note_name(f->note), idx_skip_name(want[i].skip), idx_note_name(want[i].note));
  }
  assert_int_equal(find_file(&fl, "big.txt")->size, 52428800);
  idx_file_list_free(&fl);
  /* the 50 MB file was never read: only the 7 small text blobs (+ .gitignore,
   * .kvasirignore, gen.go, bin.dat classified by content) were parsed */
  assert_true(st.blobs_parsed <= 12);
  assert_int_equal(st.skipped[IDX_SKIP_TOO_LARGE], 1);
  assert_int_equal(st.skipped[IDX_SKIP_SYMLINK], 2);
  assert_int_equal(st.skipped[IDX_SKIP_SUBMODULE], 1);
  /* symbols of the odd-path file are searchable */
  idx_hits h;
  assert_int_equal(idx_search(ix, "odd_path", 3, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "caf\xe9.py");
  idx_hits_free(&h);
  idx_close(ix);
}

/* ---- search, symbols, grep, read_lines -------------------------------------- */

static void test_search(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "search");
  write_file(d, "src/buf.c",
             "#include <stdlib.h>\n\n/* growable byte buffer */\ntypedef struct buffer { char *data; size_t len; } buffer;\n\n"
             "buffer *buffer_new(size_t n) {\n  buffer *b = malloc(sizeof *b);\n  b->data = calloc(n, 1);\n  b->len = n;\n  return b;\n}\n");
  write_file(d, "geo/shapes.py",
             "import math\n\n\nclass Circle:\n    def __init__(self, radius):\n        self.radius = radius\n\n"
             "    def area(self):\n        return math.pi * self.radius ** 2\n");
  write_file(d, "net/http.go", "package net\n\nfunc ParseHTTPRequest(raw string) int {\n\treturn len(raw)\n}\n");
  write_file(d, "README.md", "# demo\n\nA demo repository for the search test.\n");
  sh(d, "git add -A && git commit -qm one");
  idx_index *ix = open_ix(d, "search", 0);
  sync_ok(ix);
  kv_err err;
  idx_hits h;
  /* identifier */
  assert_int_equal(idx_search(ix, "buffer_new", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "src/buf.c");
  assert_true(h.v[0].line0 <= 6 && 6 <= h.v[0].line1);
  idx_hits_free(&h);
  /* words of a camelCase identifier, and plain language */
  assert_int_equal(idx_search(ix, "parse http request", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "net/http.go");
  idx_hits_free(&h);
  assert_int_equal(idx_search(ix, "area of a circle radius", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "geo/shapes.py");
  idx_hits_free(&h);
  assert_int_equal(idx_search(ix, "zzzznothing", 5, &h, &err), 0);
  assert_int_equal(h.n, 0);
  idx_hits_free(&h);
  assert_int_equal(idx_search(ix, "\"; DROP TABLE files; --", 5, &h, &err), 0);
  idx_hits_free(&h);
  /* literal substring through the trigram table */
  assert_int_equal(idx_grep(ix, "calloc(n, 1)", 5, &h, &err), 0);
  assert_int_equal(h.n, 1);
  assert_string_equal(h.v[0].path, "src/buf.c");
  assert_int_equal(h.v[0].line0, 8);
  idx_hits_free(&h);
  assert_int_equal(idx_grep(ix, "calloc(n, 2)", 5, &h, &err), 0);
  assert_int_equal(h.n, 0);
  idx_hits_free(&h);
  assert_int_equal(idx_grep(ix, "uffer_ne", 5, &h, &err), 0); /* inside an identifier */
  assert_int_equal(h.n, 1);
  assert_int_equal(h.v[0].line0, 6);
  idx_hits_free(&h);
  assert_int_equal(idx_grep(ix, "(n, 1)", 5, &h, &err), 0); /* no identifier: scan */
  assert_int_equal(h.n, 1);
  assert_int_equal(h.v[0].line0, 8);
  idx_hits_free(&h);
  assert_int_equal(idx_grep(ix, "ab", 5, &h, &err), KV_EINVAL);
  /* an identifier of several files is stored once and finds all of them */
  assert_int_equal(idx_grep(ix, "return ", 5, &h, &err), 0);
  assert_int_equal(h.n, 3);
  assert_string_equal(h.v[0].path, "geo/shapes.py");
  assert_string_equal(h.v[1].path, "net/http.go");
  assert_string_equal(h.v[2].path, "src/buf.c");
  assert_int_equal(h.v[2].line0, 10);
  idx_hits_free(&h);
  assert_int_equal(idx_grep(ix, "CALLOC", 5, &h, &err), 0); /* grep is case-sensitive */
  assert_int_equal(h.n, 0);
  idx_hits_free(&h);
  /* symbols */
  idx_symbol_list sl;
  assert_int_equal(idx_symbols(ix, "area", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 1);
  assert_string_equal(sl.v[0].scope, "Circle");
  assert_string_equal(sl.v[0].path, "geo/shapes.py");
  assert_int_equal(sl.v[0].line0, 8);
  assert_int_equal(sl.v[0].line1, 9);
  idx_symbol_list_free(&sl);
  /* read_lines: HEAD and worktree */
  char *txt;
  size_t n;
  assert_int_equal(idx_read_lines(ix, "src/buf.c", 6, 7, 0, &txt, &n, &err), 0);
  assert_string_equal(txt, "buffer *buffer_new(size_t n) {\n  buffer *b = malloc(sizeof *b);\n");
  free(txt);
  write_file(d, "src/buf.c", "changed\n");
  assert_int_equal(idx_read_lines(ix, "src/buf.c", 1, 1, 1, &txt, &n, &err), 0);
  assert_string_equal(txt, "changed\n");
  free(txt);
  assert_int_equal(idx_read_lines(ix, "src/buf.c", 1, 1, 0, &txt, &n, &err), 0);
  assert_string_equal(txt, "#include <stdlib.h>\n");
  free(txt);
  assert_int_equal(idx_read_lines(ix, "../etc/passwd", 1, 1, 1, &txt, &n, &err), KV_EINVAL);
  sh(d, "ln -s /etc/hostname outside");  /* an untracked symlink out of the tree */
  assert_int_equal(idx_read_lines(ix, "outside", 1, 1, 1, &txt, &n, &err), KV_ENOTFOUND);
  assert_int_equal(idx_read_lines(ix, "nope.c", 1, 1, 0, &txt, &n, &err), KV_ENOTFOUND);
  idx_close(ix);
}

/* Search's second stage (rank.c): query words become the index's own
 * (porter) terms plus code synonyms of docstring verbs, and a definition
 * whose name the query spells out ("return the year" -> get_year) beats a
 * chunk that merely uses the same words in its body. */
static void test_rank(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "rank");
  write_file(d, "views/dates.py",
             "class YearMixin:\n    def get_year(self):\n        y = self.year\n        return y\n\n"
             "    def get_week(self):\n        return self.week\n");
  /* the same body under two names: only the name can tell them apart */
  write_file(d, "ops/a.py", "def xyzzy(value):\n    return value - 1\n");
  write_file(d, "ops/b.py", "def decr(value):\n    return value - 1\n");
  write_file(d, "render/show.py",
             "def show(view, data, year):\n    # display the data of the view for a year\n"
             "    return view.display(data, year)\n");
  static const char *const filler[] = {"alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "theta"};
  for (size_t i = 0; i < sizeof filler / sizeof filler[0]; i++) {
    char rel[64], body[256];
    snprintf(rel, sizeof rel, "lib/%s.py", filler[i]);
    snprintf(body, sizeof body, "def %s_parse(text):\n    tokens = text.split()\n    return [t.strip() for t in tokens]\n",
             filler[i]);
    write_file(d, rel, body);
  }
  sh(d, "git add -A && git commit -qm one");
  idx_index *ix = open_ix(d, "rank", 0);
  sync_ok(ix);
  kv_err err;
  idx_hits h;
  assert_int_equal(idx_search(ix, "Return the year for which this view should display data.", 5, &h, &err), 0);
  assert_true(h.n >= 2);
  assert_string_equal(h.v[0].path, "views/dates.py");
  assert_true(h.v[0].line0 <= 2 && 2 <= h.v[0].line1);
  assert_string_equal(h.v[1].path, "render/show.py");
  idx_hits_free(&h);
  /* a name part the query spells out longer ("decr" in "decremented") */
  assert_int_equal(idx_search(ix, "The value is decremented", 5, &h, &err), 0);
  assert_true(h.n >= 2);
  assert_string_equal(h.v[0].path, "ops/b.py");
  assert_string_equal(h.v[1].path, "ops/a.py");
  assert_true(h.v[0].score > h.v[1].score + 3.0);
  idx_hits_free(&h);
  /* the terms: stems as the FTS table holds them, synonyms flagged */
  char db[600];
  snprintf(db, sizeof db, "%s/rank.db", g_tmp);
  sqlite3 *s;
  assert_int_equal(sqlite3_open_v2(db, &s, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  idx_ranker *r;
  assert_int_equal(idx_ranker_new(&r, s), 0);
  char *words[] = {"Returns", "users", "Initializes", "parseHTTP"};
  assert_int_equal(idx_rank_begin(r, words, 4), 0);
  const char *want[][2] = {{"return", "0"}, {"user", "0"}, {"initi", "0"}, {"parsehttp", "0"},
                           {"get", "1"}, {"init", "1"}};
  size_t nt = 0;
  for (int syn; idx_rank_term(r, nt, &syn); nt++) {
    assert_true(nt < sizeof want / sizeof want[0]);
    assert_string_equal(idx_rank_term(r, nt, &syn), want[nt][0]);
    assert_int_equal(syn, want[nt][1][0] == '1');
  }
  assert_int_equal(nt, sizeof want / sizeof want[0]);
  idx_rank_end(r);
  idx_ranker_free(r);
  sqlite3_close(s);
  idx_close(ix);
}

/* ---- recency and repo map ---------------------------------------------------- */

static void test_recency_and_map(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "recency");
  write_file(d, "core.c", "int core_compute(int x) { return x * 2; }\nint core_helper(void) { return 1; }\n");
  write_file(d, "util.c", "int util_unused(void) { return 0; }\n");
  sh(d, "git add -A && GIT_AUTHOR_DATE='2020-01-01T00:00:00Z' GIT_COMMITTER_DATE='2020-01-01T00:00:00Z' git commit -qm a");
  write_file(d, "a.c", "int core_compute(int);\nint fa(void) { return core_compute(1); }\n");
  write_file(d, "b.c", "int core_compute(int);\nint fb(void) { return core_compute(2) + core_compute(3); }\n");
  sh(d, "git add -A && GIT_AUTHOR_DATE='2021-01-01T00:00:00Z' GIT_COMMITTER_DATE='2021-01-01T00:00:00Z' git commit -qm b");
  write_file(d, "c.c", "int core_compute(int);\nint fc(void) { return core_compute(4); }\n");
  sh(d, "git add -A && GIT_AUTHOR_DATE='2022-01-01T00:00:00Z' GIT_COMMITTER_DATE='2022-01-01T00:00:00Z' git commit -qm c");
  idx_index *ix = open_ix(d, "recency", 0);
  sync_ok(ix);
  idx_file_list fl;
  kv_err err;
  assert_int_equal(idx_files(ix, IDX_FILES_BY_RECENCY, &fl, &err), 0);
  assert_int_equal(fl.n, 5);
  assert_string_equal(fl.v[0].path, "core.c");
  assert_string_equal(fl.v[1].path, "util.c");
  assert_string_equal(fl.v[4].path, "c.c");
  assert_int_equal(fl.v[0].changed, 1577836800);
  idx_file_list_free(&fl);
  /* touching the oldest file moves it to the end (incremental recency) */
  write_file(d, "util.c", "int util_unused(void) { return 5; }\n");
  sh(d, "GIT_AUTHOR_DATE='2023-01-01T00:00:00Z' GIT_COMMITTER_DATE='2023-01-01T00:00:00Z' git commit -qam d");
  sync_ok(ix);
  assert_int_equal(idx_files(ix, IDX_FILES_BY_RECENCY, &fl, &err), 0);
  assert_string_equal(fl.v[fl.n - 1].path, "util.c");
  assert_string_equal(fl.v[0].path, "core.c");
  idx_file_list_free(&fl);
  /* repo map: core.c (referenced by three files) comes first */
  char *map;
  assert_int_equal(idx_repomap(ix, 1000, NULL, NULL, &map, &err), 0);
  assert_true(strncmp(map, "core.c:\n", 8) == 0);
  assert_non_null(strstr(map, "     1: int core_compute(int x)\n"));
  free(map);
  assert_int_equal(idx_repomap(ix, 12, NULL, NULL, &map, &err), 0);
  assert_true(strlen(map) / 4 <= 12);
  assert_string_equal(map, "core.c:\n     1: int core_compute(int x)\n");
  free(map);
  idx_close(ix);
}

/* ---- kill -9 in the middle of a sync ------------------------------------------- */

static void progress_pipe(const idx_progress *p, void *ud) {
  int fd = *(int *)ud;
  if (fd >= 0 && p->files_done >= 700) {
    if (write(fd, "x", 1) != 1) _exit(3);
    *(int *)ud = -1;
  }
}

static long long q1(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st;
  long long v = -1;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

static void test_kill9(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "kill");
  sh(d, "for i in $(seq 1 1200); do printf 'int fn_%%d(int x) {\\n  return x + %%d;\\n}\\n\\nint gn_%%d(void) { return fn_%%d(%%d); }\\n' $i $i $i $i $i > f$i.c; done"
        " && git add -A && git commit -qm many");
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    char db[1024];
    snprintf(db, sizeof db, "%s/kill.db", g_tmp);
    idx_options o = {0};
    o.db_path = db;
    o.threads = 1;
    o.batch_files = 64;
    idx_index *ix;
    kv_err err;
    if (idx_open(&ix, d, &o, &err) != 0) _exit(2);
    int fd = fds[1];
    idx_sync(ix, 0, progress_pipe, &fd, NULL, NULL, &err);
    _exit(0);
  }
  close(fds[1]);
  char c;
  ssize_t got = read(fds[0], &c, 1);
  kill(pid, SIGKILL);
  int wst;
  waitpid(pid, &wst, 0);
  close(fds[0]);
  assert_int_equal(got, 1);
  assert_true(WIFSIGNALED(wst)); /* killed mid-sync, not finished */
  /* rerun: finishes, consistent, no duplicates, same content as a clean index */
  idx_index *ix = open_ix(d, "kill", 0);
  idx_sync_stats st = sync_ok(ix);
  assert_int_equal(st.files_indexed, 1200);
  assert_true(st.blobs_reused > 0);  /* work committed before the kill was kept */
  assert_true(st.blobs_parsed < 1200);
  idx_close(ix);
  idx_index *clean = open_ix(d, "kill-clean", 0);
  sync_ok(clean);
  idx_close(clean);
  sqlite3 *db, *db2;
  char p[1024];
  snprintf(p, sizeof p, "%s/kill.db", g_tmp);
  assert_int_equal(sqlite3_open(p, &db), SQLITE_OK);
  snprintf(p, sizeof p, "%s/kill-clean.db", g_tmp);
  assert_int_equal(sqlite3_open(p, &db2), SQLITE_OK);
  sqlite3_stmt *st2;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st2, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st2), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st2, 0), "ok");
  sqlite3_finalize(st2);
  assert_int_equal(q1(db, "SELECT count(*) FROM (SELECT blob,name,kind,line0 FROM symbols GROUP BY 1,2,3,4 HAVING count(*)>1)"), 0);
  assert_int_equal(q1(db, "SELECT count(*) FROM (SELECT blob,line0 FROM chunks GROUP BY 1,2 HAVING count(*)>1)"), 0);
  assert_int_equal(q1(db, "SELECT count(*) FROM (SELECT blob,name,line FROM refs GROUP BY 1,2,3 HAVING count(*)>1)"), 0);
  const char *same[] = {"SELECT count(*) FROM files", "SELECT count(*) FROM blobs", "SELECT count(*) FROM symbols",
                        "SELECT count(*) FROM refs", "SELECT count(*) FROM chunks"};
  for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) assert_int_equal(q1(db, same[i]), q1(db2, same[i]));
  assert_int_equal(q1(db, "SELECT count(*) FROM symbols"), 2400);
  assert_int_equal(q1(db, "INSERT INTO chunks_fts(chunks_fts, rank) VALUES('integrity-check', 1); SELECT 0"), -1);
  sqlite3_close(db);
  sqlite3_close(db2);
}

/* ---- cancellation ------------------------------------------------------------- */

static void cancel_at(const idx_progress *p, void *ud) {
  if (p->files_done >= 64) *(volatile int *)ud = 1;
}

static void test_cancel(void **state) {
  (void)state;
  char d[512];
  new_repo(d, sizeof d, "cancel");
  sh(d, "for i in $(seq 1 300); do printf 'def f%%d():\\n    return %%d\\n' $i $i > m$i.py; done && git add -A && git commit -qm many");
  idx_index *ix = open_ix(d, "cancel", 0);
  volatile int flag = 0;
  idx_sync_stats st;
  kv_err err;
  assert_int_equal(idx_sync(ix, 0, cancel_at, (void *)&flag, &flag, &st, &err), KV_ECANCELED);
  st = sync_ok(ix);
  assert_int_equal(st.files_indexed, 300);
  assert_true(st.blobs_reused >= 64);
  idx_close(ix);
}

/* A bare clone and a linked worktree index like the original. */
static void test_bare_and_worktree(void **state) {
  (void)state;
  char d[512], bare[600], wt[600];
  new_repo(d, sizeof d, "orig");
  write_file(d, "m.py", "def from_main():\n    pass\n");
  write_file(d, "n.go", "package n\n\nfunc FromGo() {}\n");
  sh(d, "git add -A && git commit -qm one && git clone -q --bare . ../orig-bare.git && git worktree add -q ../orig-wt -b side");
  snprintf(bare, sizeof bare, "%s/orig-bare.git", g_tmp);
  snprintf(wt, sizeof wt, "%s/orig-wt", g_tmp);
  write_file(wt, "side.py", "def only_in_worktree():\n    pass\n");
  idx_index *ix = open_ix(bare, "bare", 0);
  idx_sync_stats st = sync_ok(ix);
  assert_int_equal(st.files_indexed, 2);
  kv_err err;
  char *txt;
  size_t n;
  assert_int_equal(idx_read_lines(ix, "n.go", 3, 3, 1, &txt, &n, &err), 0); /* bare: from HEAD */
  assert_string_equal(txt, "func FromGo() {}\n");
  free(txt);
  idx_close(ix);
  ix = open_ix(wt, "wt", 0);
  st = sync_ok(ix);
  assert_int_equal(st.files_indexed, 3);
  idx_symbol_list sl;
  assert_int_equal(idx_symbols(ix, "only_in_worktree", 0, &sl, &err), 0);
  assert_int_equal(sl.n, 1);
  idx_symbol_list_free(&sl);
  idx_close(ix);
}

/* Schema version 1 (the first layout) is upgraded; a newer one is refused. */
static void test_migrations(void **state) {
  (void)state;
  char d[512], db[600];
  new_repo(d, sizeof d, "mig");
  write_file(d, "x.py", "def migrated():\n    pass\n");
  sh(d, "git add -A && git commit -qm one");
  snprintf(db, sizeof db, "%s/mig.db", g_tmp);
  sqlite3 *s;
  assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
  const char *v1 =
      "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
      "CREATE TABLE blobs(id INTEGER PRIMARY KEY, oid TEXT NOT NULL UNIQUE, lang TEXT,"
      " size INTEGER, skip INTEGER, note INTEGER, nlines INTEGER);"
      "CREATE TABLE files(path TEXT PRIMARY KEY, oid TEXT NOT NULL, head_oid TEXT, lang TEXT,"
      " size INTEGER, skip INTEGER, note INTEGER, worktree INTEGER, changed INTEGER, gen INTEGER);"
      "CREATE INDEX files_oid ON files(oid);"
      "CREATE TABLE symbols(id INTEGER PRIMARY KEY, blob INTEGER NOT NULL, name TEXT NOT NULL,"
      " kind TEXT, scope TEXT, sig TEXT, line0 INTEGER, line1 INTEGER);"
      "CREATE INDEX symbols_name ON symbols(name); CREATE INDEX symbols_blob ON symbols(blob);"
      "CREATE TABLE refs(blob INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT, line INTEGER);"
      "CREATE INDEX refs_blob ON refs(blob);"
      "CREATE TABLE chunks(id INTEGER PRIMARY KEY, blob INTEGER NOT NULL, line0 INTEGER,"
      " line1 INTEGER, symbol TEXT, text TEXT, sub TEXT);"
      "CREATE INDEX chunks_blob ON chunks(blob);"
      "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, sub, symbol, content='chunks',"
      " content_rowid='id', tokenize=\"porter unicode61 tokenchars '_'\");"
      "CREATE VIRTUAL TABLE chunks_tri USING fts5(text, content='chunks', content_rowid='id',"
      " tokenize='trigram', detail='none');"
      "INSERT INTO blobs(oid, lang) VALUES('deadbeef', 'c');"
      "INSERT INTO meta VALUES('head_tree', 'deadbeef');"
      "PRAGMA user_version=1;";
  assert_int_equal(sqlite3_exec(s, v1, NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(s);
  idx_index *ix = open_ix(d, "mig", 0);
  idx_sync_stats st = sync_ok(ix);
  assert_true(st.full_walk);
  assert_int_equal(st.blobs_parsed, 1);
  kv_err err;
  idx_hits h;
  assert_int_equal(idx_search(ix, "migrated", 3, &h, &err), 0);
  assert_int_equal(h.n, 1);
  idx_hits_free(&h);
  idx_close(ix);
  assert_int_equal(sqlite3_open(db, &s), SQLITE_OK);
  assert_int_equal(q1(s, "PRAGMA user_version"), 4);
  assert_int_equal(q1(s, "SELECT count(*) FROM sqlite_master WHERE name='symbols_blob' AND sql LIKE '%line0%'"), 1);
  assert_int_equal(q1(s, "SELECT count(*) FROM sqlite_master WHERE name='chunks_tri'"), 0);
  assert_int_equal(q1(s, "SELECT count(*) FROM idents WHERE name='migrated'"), 1);
  assert_int_equal(q1(s, "SELECT count(*) FROM blobs WHERE oid='deadbeef'"), 0);
  assert_int_equal(sqlite3_exec(s, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(s);
  idx_options o = {0};
  o.db_path = db;
  assert_int_equal(idx_open(&ix, d, &o, &err), KV_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "mig.db"));
  assert_non_null(strstr(err.msg, "99"));
}

/* The id of an index directory is persisted (it names
 * $XDG_DATA_HOME/kvasir/repos/<id>): it must stay the FNV-1a value with
 * kvasir's basis (base/hash.h) that it always was; this value was computed
 * with the indexer's own copy of the hash before it moved to kv_hash64. */
static void test_repo_id_stable(void **state) {
  (void)state;
  char id[17];
  idx_repo_id("/home/user/project", id);
  assert_string_equal(id, "cf83f8d017fec02d");
}

static void test_not_a_repo(void **state) {
  (void)state;
  idx_index *ix = NULL;
  kv_err err;
  char db[512];
  snprintf(db, sizeof db, "%s/x.db", g_tmp);
  idx_options o = {0};
  o.db_path = db;
  assert_int_not_equal(idx_open(&ix, "/proc/self", &o, &err), 0);
  assert_null(ix);
  assert_non_null(strstr(err.msg, "/proc/self"));
}

int main(void) {
  snprintf(g_tmp, sizeof g_tmp, "/tmp/kvasir-idx-test.XXXXXX");
  if (!mkdtemp(g_tmp)) return 1;
  setenv("GIT_AUTHOR_NAME", "kvasir test", 1);
  setenv("GIT_AUTHOR_EMAIL", "test@kvasir.invalid", 1);
  setenv("GIT_COMMITTER_NAME", "kvasir test", 1);
  setenv("GIT_COMMITTER_EMAIL", "test@kvasir.invalid", 1);
  setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
  setenv("HOME", g_tmp, 1);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_incremental), cmocka_unit_test(test_skips),
      cmocka_unit_test(test_search),      cmocka_unit_test(test_rank),
      cmocka_unit_test(test_recency_and_map),
      cmocka_unit_test(test_kill9),       cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_bare_and_worktree), cmocka_unit_test(test_migrations),
      cmocka_unit_test(test_not_a_repo), cmocka_unit_test(test_repo_id_stable),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  if (system(cmd) != 0) rc = rc ? rc : 1;
  return rc;
}
