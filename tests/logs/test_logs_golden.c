/* test_logs_golden.c — what the log store persists stays bit-identical
 * across builds: a store written by one build is read, queried and resumed
 * by the next, so its hashes, blobs and template ids must not drift when
 * the code under them is refactored.
 *
 *  - files.head_hash of a generated fixture equals the value computed by
 *    tests/reference/logs/make_store_golden.py (FNV-1a 64 with kvasir's
 *    basis over the first 4 KiB, masked to 63 bits), and kv_hash64 gives
 *    that script's values for a few strings;
 *  - the fixture's template ids per line (log_parse_buffer) are the ids the
 *    miner handed out before base/ took over its hashing (ids are assigned
 *    in first-seen order, so these are readable by hand);
 *  - a digest over every persisted blob and row of the store (the miner
 *    blob, block summaries and blooms, block columns and texts, patterns,
 *    templates) equals the digest of the same ingest by the build before
 *    logs/ moved to kv_buf / kv_grow / kv_hash64 (commit 7eaed37).
 * The fixture is generated here; fixture() in the Python script is the
 * same rule. Needs nothing outside the repository. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logs/logs.h"

#define HEAD_HASH 4802625728243395696LL /* make_store_golden.py */
#define STORE_DIGEST 0x05f2dbc7ced65645ULL/* the same ingest by commit 7eaed37 */

static char g_dir[256];

static size_t fixture(char *out, size_t cap) {
  static const char *users[3] = {"root", "alice", "bob"};
  size_t n = 0;
  for (int i = 0; i < 300; i++) {
    int mm = i / 60, ss = i % 60, k = i % 3, w;
    if (k == 0)
      w = snprintf(out + n, cap - n, "2026-01-02 03:%02d:%02d INFO auth: user %s logged in from 10.0.%d.%d\n", mm, ss,
                   users[(i / 3) % 3], i % 7, i % 251);
    else if (k == 1)
      w = snprintf(out + n, cap - n, "2026-01-02 03:%02d:%02d WARN net: connection %d closed after %d ms\n", mm, ss,
                   1000 + i, (i * 37) % 5000);
    else
      w = snprintf(out + n, cap - n, "2026-01-02 03:%02d:%02d ERROR disk: write failed on /dev/sd%c: code %d\n", mm, ss,
                   "abc"[i % 3], -(i % 5));
    assert_true(w > 0 && (size_t)w < cap - n);
    n += (size_t)w;
  }
  return n;
}

static void test_hash_vectors(void **st) {
  (void)st;
  assert_true(kv_hash64("", 0) == 0x14650fb0739d0383ULL);
  assert_true(kv_hash64("a", 1) == 0x44bd8ad473cd9906ULL);
  assert_true(kv_hash64_str("foobar") == 0x88fad7c0a8ff07f2ULL);
  assert_true(kv_hash64("<*>", 3) == 0xb155ab50613d7081ULL);
}

static void test_template_ids(void **st) {
  (void)st;
  static char buf[1 << 16];
  size_t n = fixture(buf, sizeof buf);
  assert_int_equal(n, 19893); /* the script's "fixture bytes" */
  log_miner *m;
  uint32_t *ids;
  size_t nl;
  kv_err err = {0};
  assert_int_equal(log_parse_buffer(buf, n, &m, &ids, &nl, &err), 0);
  assert_int_equal(nl, 300);
  /* three message shapes; the user name position holds three frequent
   * words, so the frequency rule keeps it constant: one template per user */
  char got[512] = "";
  for (size_t i = 0; i < 9; i++) {
    char t[16];
    snprintf(t, sizeof t, "%u ", ids[i]);
    strcat(got, t);
  }
  assert_string_equal(got, "1 2 3 4 2 3 5 2 3 ");
  for (size_t i = 9; i < nl; i++) assert_int_equal(ids[i], ids[i % 9]); /* the pattern repeats every 9 lines */
  assert_string_equal(log_miner_template(m, ids[1]), "connection <*> closed after <*> ms");
  free(ids);
  log_miner_free(m);
}

static uint64_t digest_sql(sqlite3 *h, const char *sql, uint64_t d) {
  sqlite3_stmt *q;
  if (sqlite3_prepare_v2(h, sql, -1, &q, NULL)) fail_msg("%s: %s", sql, sqlite3_errmsg(h));
  while (sqlite3_step(q) == SQLITE_ROW)
    for (int c = 0; c < sqlite3_column_count(q); c++) {
      const void *p = sqlite3_column_blob(q, c);
      size_t len = (size_t)sqlite3_column_bytes(q, c);
      d = kv_hash64_more(d, &len, sizeof len);
      if (len) d = kv_hash64_more(d, p, len);
    }
  sqlite3_finalize(q);
  return d;
}

static void test_store_bits(void **st) {
  (void)st;
  static char buf[1 << 16];
  size_t n = fixture(buf, sizeof buf);
  char f[512], db[512];
  snprintf(f, sizeof f, "%s/fixture.log", g_dir);
  snprintf(db, sizeof db, "%s/golden.db", g_dir);
  FILE *fp = fopen(f, "w");
  assert_non_null(fp);
  assert_int_equal(fwrite(buf, 1, n, fp), n);
  fclose(fp);
  log_db *d;
  kv_err err = {0};
  assert_int_equal(log_db_open(&d, db, &err), 0);
  log_ingest_opts o = {0};
  o.batch = 100; /* several transactions: the miner blob is rewritten as it grows */
  log_ingest_stats s;
  const char *paths[1] = {f};
  if (log_ingest(d, paths, 1, &o, &s, &err)) fail_msg("%s", err.msg);
  log_db_close(d);
  assert_int_equal(s.records, 300);

  sqlite3 *h;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_stmt *q;
  assert_int_equal(sqlite3_prepare_v2(h, "SELECT head_hash, head_len FROM files", -1, &q, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(q), SQLITE_ROW);
  assert_int_equal(sqlite3_column_int64(q, 1), 4096);
  assert_int_equal(sqlite3_column_int64(q, 0), HEAD_HASH);
  sqlite3_finalize(q);
  uint64_t dg = KV_HASH64_INIT;
  dg = digest_sql(h, "SELECT value FROM meta WHERE key = 'miner'", dg);
  dg = digest_sql(h, "SELECT id, file_id, n, ts_min, ts_max, lvl_mask, summ, nbloom FROM bsum ORDER BY id", dg);
  dg = digest_sql(h, "SELECT id, meta, data FROM bdata ORDER BY id", dg);
  dg = digest_sql(h, "SELECT id, template_id FROM patterns ORDER BY id", dg);
  dg = digest_sql(h, "SELECT id, text FROM templates ORDER BY id", dg);
  dg = digest_sql(h, "SELECT id, name FROM comps ORDER BY id", dg);
  dg = digest_sql(h, "SELECT offset, line_no FROM files", dg);
  sqlite3_close(h);
  if (dg != STORE_DIGEST) fail_msg("store digest 0x%016llx, expected 0x%016llx", (unsigned long long)dg,
                                   (unsigned long long)STORE_DIGEST);
}

static int setup(void **st) {
  (void)st;
  snprintf(g_dir, sizeof g_dir, "/tmp/kvasir-test-golden-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **st) {
  (void)st;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_hash_vectors), cmocka_unit_test(test_template_ids),
                                     cmocka_unit_test(test_store_bits)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
