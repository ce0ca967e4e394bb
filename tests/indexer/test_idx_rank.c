/*
 * test_idx_rank.c — the ranking levers of idx_search and the truth of the
 * repo map, each on a small temporary git repository made for it (with the
 * `git` CLI), each failing without its lever:
 *   - code outranks the tests that exercise it, unless the query asks for tests;
 * (test_idx_repo.c keeps the older search and map assertions.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "indexer/indexer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* A repository under g_tmp with the given files (path, text pairs, NULL
 * ended), committed, indexed into g_tmp/<name>.db. */
static idx_index *repo_with(const char *name, const char *const *files) {
  char dir[512], db[600];
  snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
  kv_err err;
  assert_int_equal(kv_mkdirs(dir, 0755, &err), 0);
  sh(dir, "git init -q -b main . && git config core.autocrlf false");
  for (size_t i = 0; files[i]; i += 2) write_file(dir, files[i], files[i + 1]);
  sh(dir, "git add -A && git -c user.name=t -c user.email=t@t commit -qm one");
  snprintf(db, sizeof db, "%s/%s.db", g_tmp, name);
  idx_options o = {0};
  o.db_path = db;
  idx_index *ix = NULL;
  if (idx_open(&ix, dir, &o, &err) != 0) fail_msg("idx_open: %s", err.msg);
  idx_sync_stats st;
  if (idx_sync(ix, 0, NULL, NULL, NULL, &st, &err) != 0) fail_msg("idx_sync: %s", err.msg);
  return ix;
}

static void top_is(idx_index *ix, const char *query, const char *path) {
  idx_hits h;
  kv_err err;
  assert_int_equal(idx_search(ix, query, 5, &h, &err), 0);
  if (h.n == 0 || strcmp(h.v[0].path, path) != 0)
    fail_msg("'%s': first hit %s, want %s", query, h.n ? h.v[0].path : "(none)", path);
  idx_hits_free(&h);
}

/* ---- code above its tests ------------------------------------------------- */

static void test_code_above_tests(void **state) {
  (void)state;
  static const char *const files[] = {
      "pkg/numbers.py",
      "def parse_number(text):\n    text = text.strip()\n    return int(text)\n",
      "tests/test_numbers.py",
      "from pkg.numbers import parse_number\n\n\n"
      "def test_parse_number():\n    assert parse_number(' 1 ') == 1\n    assert parse_number('2') == 2\n\n\n"
      "def test_parse_number_text():\n    text = ' 3 '\n    assert parse_number(text) == 3\n",
      "pkg/other.py", "def unrelated(a):\n    return a\n",
      NULL};
  idx_index *ix = repo_with("tests", files);
  top_is(ix, "how is a number parsed from text", "pkg/numbers.py");
  /* asking for the tests finds them */
  top_is(ix, "which tests check that a number is parsed from text", "tests/test_numbers.py");
  idx_close(ix);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/kvasir-test-rank.XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_code_above_tests),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
