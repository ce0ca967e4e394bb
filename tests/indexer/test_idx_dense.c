/*
 * test_idx_dense.c — indexer/dense.c without a model: the embedding is a
 * hashed bag of lower-case words (a stand-in whose nearest neighbours are
 * known by construction). Checked: every code chunk gets one vector and
 * prose none; a second call embeds nothing; a one-file commit re-embeds
 * only that file's chunks and drops the old ones; another model name
 * re-embeds everything; the fused search brings in a chunk that BM25 does
 * not find (a word only the fake embedding links to the query) and keeps
 * the lexical best on top when both lists agree; an embedding error is
 * reported, not swallowed; no vectors at all gives idx_search's hits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "indexer/indexer.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 64
static char g_tmp[256];
static int g_calls, g_fail;

static void sh(const char *dir, const char *cmd) {
  char b[4096];
  snprintf(b, sizeof b, "cd '%s' && %s", dir, cmd);
  if (system(b) != 0) fail_msg("command failed: %s", b);
}
static void write_file(const char *dir, const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* "Synonyms" the fake embedding maps together: squash ~ compress. */
static uint64_t word_hash(const char *w, size_t n) {
  if ((n == 6 && !strncmp(w, "squash", 6)) || (n == 8 && !strncmp(w, "compress", 8))) w = "compress", n = 8;
  return kv_hash64(w, n);
}
static int fake_embed(void *ud, const char *text, size_t len, float *out, kv_err *err) {
  (void)ud;
  g_calls++;
  if (g_fail) return kv_err_set(err, KV_EIO, "fake embedding failed");
  memset(out, 0, DIM * sizeof *out);
  char w[64];
  for (size_t i = 0; i < len;) {
    while (i < len && !isalpha((unsigned char)text[i])) i++;
    size_t n = 0;
    while (i < len && isalpha((unsigned char)text[i])) {
      if (n < sizeof w) w[n++] = (char)tolower((unsigned char)text[i]);
      i++;
    }
    if (n >= 4) out[word_hash(w, n) % DIM] += 1;
  }
  double s = 0;
  for (int i = 0; i < DIM; i++) s += out[i] * out[i];
  if (s > 0)
    for (int i = 0; i < DIM; i++) out[i] /= (float)sqrt(s);
  return 0;
}

static int setup(void **st) {
  (void)st;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/kvasir-test-dense-XXXXXX");
  return mkdtemp(g_tmp) ? 0 : -1;
}
static int teardown(void **st) {
  (void)st;
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

static void run_dense(int unit) {
  char d[512], db[600], mk[600];
  snprintf(d, sizeof d, "%s/repo%d", g_tmp, unit);
  snprintf(db, sizeof db, "%s/index%d.db", g_tmp, unit);
  snprintf(mk, sizeof mk, "mkdir repo%d", unit);
  sh(g_tmp, mk);
  sh(d, "git init -q -b main . && git config core.autocrlf false");
  write_file(d, "pack.c",
             "/* squash a block of bytes with the fast path */\nint squash_block(const char *src, int n) {\n"
             "  return n / 2;\n}\n");
  write_file(d, "parse.c", "/* parse the option list */\nint parse_options(int argc, char **argv) {\n"
                           "  return argc;\n}\n");
  write_file(d, "README.md", "# notes\n\nprose about options and blocks\n");
  sh(d, "git add -A && git -c user.name=t -c user.email=t@t commit -qm one");
  idx_options o = {0};
  o.db_path = db;
  idx_index *ix;
  kv_err err;
  idx_sync_stats st;
  assert_int_equal(idx_open(&ix, d, &o, &err), 0);
  assert_int_equal(idx_sync(ix, 0, NULL, NULL, NULL, &st, &err), 0);
  idx_dense D = {.embed = fake_embed, .dim = DIM, .model = "fake-1", .unit = unit};
  /* before any vector: the fused search is idx_search */
  idx_hits h, h2;
  assert_int_equal(idx_search_fused(ix, &D, "parse options", 5, &h, &err), 0);
  assert_int_equal(idx_search(ix, "parse options", 5, &h2, &err), 0);
  assert_true(h.n >= 1 && h.n == h2.n);
  assert_string_equal(h.v[0].path, h2.v[0].path);
  idx_hits_free(&h);
  idx_hits_free(&h2);
  idx_dense_stats ds;
  assert_int_equal(idx_dense_sync(ix, &D, NULL, &ds, &err), 0);
  assert_true(ds.embedded >= 2); /* the two C files' chunks or definitions; README.md is prose */
  const uint64_t first = ds.embedded;
  assert_int_equal(ds.vectors, first);
  assert_int_equal(idx_dense_sync(ix, &D, NULL, &ds, &err), 0);
  assert_int_equal(ds.embedded, 0);
  assert_int_equal(ds.dropped, 0);
  /* "compress" is in no chunk: BM25 finds nothing for it, the fake
   * embedding links it to squash_block */
  assert_int_equal(idx_search(ix, "compress", 5, &h, &err), 0);
  assert_int_equal(h.n, 0);
  idx_hits_free(&h);
  assert_int_equal(idx_search_fused(ix, &D, "compress", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "pack.c");
  assert_true(h.v[0].line0 <= 2 && 2 <= h.v[0].line1);
  idx_hits_free(&h);
  /* both lists agree: parse.c stays first */
  assert_int_equal(idx_search_fused(ix, &D, "parse options", 5, &h, &err), 0);
  assert_string_equal(h.v[0].path, "parse.c");
  idx_hits_free(&h);
  /* a one-file commit: only that file's chunks are embedded again */
  write_file(d, "parse.c", "/* parse the option list */\nint parse_options(int argc, char **argv) {\n"
                           "  return argc + 1;\n}\n");
  sh(d, "git -c user.name=t -c user.email=t@t commit -qam two");
  assert_int_equal(idx_sync(ix, 0, NULL, NULL, NULL, &st, &err), 0);
  assert_int_equal(st.blobs_parsed, 1);
  assert_int_equal(idx_dense_sync(ix, &D, NULL, &ds, &err), 0);
  assert_true(ds.embedded >= 1 && ds.embedded < first);
  assert_int_equal(idx_search_fused(ix, &D, "compress", 5, &h, &err), 0);
  assert_string_equal(h.v[0].path, "pack.c"); /* one hit per view chunk: the old parse.c is not in the view */
  for (size_t i = 0; i < h.n; i++)
    for (size_t j = i + 1; j < h.n; j++)
      assert_false(!strcmp(h.v[i].path, h.v[j].path) && h.v[i].line0 == h.v[j].line0);
  idx_hits_free(&h);
  /* another model: everything again */
  D.model = "fake-2";
  assert_int_equal(idx_dense_sync(ix, &D, NULL, &ds, &err), 0);
  assert_true(ds.dropped >= first);
  assert_int_equal(ds.embedded, first);
  /* an embedding error is an error */
  g_fail = 1;
  assert_int_equal(idx_search_fused(ix, &D, "compress", 5, &h, &err), KV_EIO);
  assert_non_null(strstr(err.msg, "fake embedding failed"));
  assert_int_equal(h.n, 0);
  D.model = "fake-3";
  assert_int_equal(idx_dense_sync(ix, &D, NULL, &ds, &err), KV_EIO);
  g_fail = 0;
  idx_close(ix);
}
static void test_dense_chunks(void **state) { (void)state; run_dense(IDX_DENSE_CHUNKS); }
static void test_dense_defs(void **state) { (void)state; run_dense(IDX_DENSE_DEFS); }

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_dense_chunks), cmocka_unit_test(test_dense_defs)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
