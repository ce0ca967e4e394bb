/* test_logs_triage.c — an anomaly burst injected into a real LogHub sample
 * (Zookeeper; and into a generated log of the same layout, which needs no
 * sample: see logs_fixture.h) must rank in the top 5 of the triage report, point to its
 * first line, and show its peak in the right time bin; the same sample
 * without the burst must not report it; triage's counts agree with a count
 * over every record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logs/logs.h"
#include "logs_fixture.h"

static char *sample_of(const char *sys, size_t *len) {
  char *b = fx_sample(sys, len);
  if (!b) fail_msg("LogHub sample %s not readable", sys);
  return b;
}

/* The burst test's log: the Zookeeper sample (state "loghub") or a
 * generated log in the same layout (state NULL). */
static char *burst_base(void **st, size_t *len) {
  if (*st) return sample_of("Zookeeper", len);
  char *b = fx_synth(2000, len, NULL);
  assert_non_null(b);
  return b;
}

static int run(const char *dir, const char *name, const char *data, size_t n, log_triage *t) {
  char f[512], db[512];
  snprintf(f, sizeof f, "%s/%s.log", dir, name);
  snprintf(db, sizeof db, "%s/%s.db", dir, name);
  FILE *o = fopen(f, "w");
  assert_non_null(o);
  fwrite(data, 1, n, o);
  fclose(o);
  log_db *d;
  kv_err err = {0};
  assert_int_equal(log_db_open(&d, db, &err), 0);
  const char *paths[1] = {f};
  log_ingest_stats s;
  assert_int_equal(log_ingest(d, paths, 1, NULL, &s, &err), 0);
  log_triage_opts o2 = {0};
  o2.limit = 5;
  int rc = log_triage_run(d, &o2, t, &err);
  log_db_close(d);
  return rc;
}

static int find_burst(const log_triage *t) {
  for (size_t i = 0; i < t->n; i++)
    if (strstr(t->items[i].template_text, "No space left on device")) return (int)i;
  return -1;
}

static void test_burst_in_top5(void **st) {
  size_t len;
  char *b = burst_base(st, &len);
  /* split after line 1000 and copy its timestamp */
  size_t cut = 0;
  for (int k = 0; k < 1000 && cut < len; cut++)
    if (b[cut] == '\n') k++;
  char ts[20];
  memcpy(ts, b + cut, 19); /* "2015-07-30 16:01:05" style */
  ts[19] = 0;
  size_t cap = len + 40 * 256;
  char *inj = malloc(cap);
  memcpy(inj, b, cut);
  size_t k = cut;
  for (int i = 0; i < 40; i++)
    k += (size_t)snprintf(inj + k, cap - k,
                          "%s,%03d - ERROR [SyncThread:0:FileTxnLog@334] - fsync of /var/zk/log.%x failed: No "
                          "space left on device (errno 28)\n",
                          ts, 100 + i * 20, 0x1a2b + i * 7);
  memcpy(inj + k, b + cut, len - cut);
  k += len - cut;
  char dir[] = "/tmp/kvasir-triage-XXXXXX";
  assert_non_null(mkdtemp(dir));
  log_triage t;
  assert_int_equal(run(dir, "base", b, len, &t), 0);
  assert_int_equal(find_burst(&t), -1);
  assert_true(t.n == 5);
  log_triage_free(&t);
  assert_int_equal(run(dir, "inj", inj, k, &t), 0);
  int at = find_burst(&t);
  for (size_t i = 0; i < t.n; i++)
    printf("  %zu. %-5s %.1f %s\n", i + 1, log_triage_kind(t.items[i].kind), t.items[i].score, t.items[i].template_text);
  assert_true(at >= 0 && at < 5);
  const log_triage_item *it = &t.items[at];
  assert_int_equal(it->count, 40);
  assert_int_equal(it->level, LOG_LVL_ERROR);
  assert_int_equal(it->first_line, 1001);
  assert_non_null(strstr(it->first_file, "inj.log"));
  uint32_t peak = 0;
  for (int i = 0; i < it->nbins; i++)
    if (it->bins[i] > peak) peak = it->bins[i];
  assert_int_equal(peak, 40); /* all in one bin */
  char spark[512];
  log_sparkline(it->bins, it->nbins, spark, sizeof spark);
  assert_non_null(strstr(spark, "\u2588"));
  log_triage_free(&t);
  free(inj);
  free(b);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* A WARN-level burst (not an error) of a new template in HDFS. */
static void test_warn_burst_hdfs(void **st) {
  size_t len;
  char *b = sample_of("HDFS", &len);
  size_t cut = 0;
  for (int k = 0; k < 1200 && cut < len; cut++)
    if (b[cut] == '\n') k++;
  char ts[14];
  memcpy(ts, b + cut, 13); /* "081109 203615" */
  ts[13] = 0;
  size_t cap = len + 40 * 256, k = cut;
  char *inj = malloc(cap);
  memcpy(inj, b, cut);
  for (int i = 0; i < 40; i++)
    k += (size_t)snprintf(inj + k, cap - k,
                          "%s %d WARN dfs.DataNode$BlockReceiver: Slow BlockReceiver write packet to mirror took "
                          "%dms (threshold=300ms)\n",
                          ts, 100 + i, 400 + i * 37);
  memcpy(inj + k, b + cut, len - cut);
  k += len - cut;
  char dir[] = "/tmp/kvasir-triage-XXXXXX";
  assert_non_null(mkdtemp(dir));
  log_triage t;
  assert_int_equal(run(dir, "hdfs", inj, k, &t), 0);
  int at = -1;
  for (size_t i = 0; i < t.n; i++) {
    printf("  %zu. %-5s %.1f %s\n", i + 1, log_triage_kind(t.items[i].kind), t.items[i].score, t.items[i].template_text);
    if (strstr(t.items[i].template_text, "Slow BlockReceiver")) at = (int)i;
  }
  assert_true(at >= 0 && at < 5);
  assert_int_equal(t.items[at].count, 40);
  assert_int_equal(t.items[at].first_line, 1201);
  log_triage_free(&t);
  free(inj);
  free(b);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

/* Triage's counts (from block summaries where a block falls in one bin,
 * else from its columns) against a count over every record the query API
 * returns, for coarse and fine bins and a sub-range. */
static void test_counts_match_records(void **st) {
  char dir[] = "/tmp/kvasir-triage-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char f[600], db[600];
  snprintf(f, sizeof f, "%s/mix.log", dir);
  snprintf(db, sizeof db, "%s/mix.db", dir);
  size_t len, nrec;
  char *b = fx_synth(2000, &len, &nrec);
  assert_non_null(b);
  FILE *o = fopen(f, "w");
  assert_non_null(o);
  for (int i = 0; i < 3; i++) { /* 3 x 2000 lines, several blocks, times repeating */
    fwrite(b, 1, len, o);
    if (len && b[len - 1] != '\n') fputc('\n', o);
  }
  fclose(o);
  free(b);
  log_db *d;
  kv_err err = {0};
  assert_int_equal(log_db_open(&d, db, &err), 0);
  const char *paths[1] = {f};
  log_ingest_stats s;
  assert_int_equal(log_ingest(d, paths, 1, NULL, &s, &err), 0);
  log_query q = {0};
  log_result all;
  q.limit = 100000;
  assert_int_equal(log_query_run(d, &q, &all, &err), 0);
  assert_int_equal(all.n, 3 * nrec);
  int64_t lo = all.rows[0].ts_ms, hi = all.rows[all.n - 1].ts_ms;
  struct {
    int nb;
    int64_t since, until;
  } cases[] = {{1, 0, 0}, {2, 0, 0}, {24, 0, 0}, {7, lo + (hi - lo) / 3, lo + (hi - lo) * 2 / 3}};
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    log_triage_opts to = {0};
    to.nbins = cases[c].nb, to.limit = 100000, to.since_ms = cases[c].since, to.until_ms = cases[c].until;
    log_triage t;
    assert_int_equal(log_triage_run(d, &to, &t, &err), 0);
    int64_t t0 = INT64_MAX, t1 = INT64_MIN;
    for (size_t i = 0; i < all.n; i++) {
      int64_t ts = all.rows[i].ts_ms;
      if ((to.since_ms && ts < to.since_ms) || (to.until_ms && ts >= to.until_ms)) continue;
      if (ts < t0) t0 = ts;
      if (ts > t1) t1 = ts;
    }
    assert_int_equal(t.t0, t0);
    assert_int_equal(t.t1, t1);
    size_t seen = 0;
    for (size_t k = 0; k < t.n; k++) {
      const log_triage_item *it = &t.items[k];
      uint64_t cnt = 0;
      int64_t first = INT64_MAX, last = INT64_MIN, first_id = INT64_MAX;
      uint32_t bins[24] = {0};
      for (size_t i = 0; i < all.n; i++) {
        const log_row *r = &all.rows[i];
        if (r->template_id != it->template_id) continue;
        if ((to.since_ms && r->ts_ms < to.since_ms) || (to.until_ms && r->ts_ms >= to.until_ms)) continue;
        cnt++;
        if (r->ts_ms < first) first = r->ts_ms;
        if (r->ts_ms > last) last = r->ts_ms;
        if (r->id < first_id) first_id = r->id;
        bins[(r->ts_ms - t0) * to.nbins / (t1 - t0 + 1)]++;
      }
      assert_int_equal(it->count, cnt);
      assert_int_equal(it->first_ts, first);
      assert_int_equal(it->last_ts, last);
      assert_int_equal(it->first_record, first_id);
      for (int i = 0; i < to.nbins; i++) assert_int_equal(it->bins[i], bins[i]);
      seen += cnt;
    }
    size_t want = 0;
    for (size_t i = 0; i < all.n; i++)
      want += !((to.since_ms && all.rows[i].ts_ms < to.since_ms) || (to.until_ms && all.rows[i].ts_ms >= to.until_ms));
    assert_int_equal(seen, want); /* every record counted once */
    log_triage_free(&t);
  }
  log_result_free(&all);
  log_db_close(d);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
}

int main(int argc, char **argv) {
  int g = fx_groups(argc, argv), rc = 0;
  if (!g) return 2;
  static char on_loghub[] = "loghub";
  const struct CMUnitTest fixtures[] = {cmocka_unit_test_prestate(test_burst_in_top5, NULL),
                                        cmocka_unit_test(test_counts_match_records)};
  const struct CMUnitTest loghub[] = {cmocka_unit_test_prestate(test_burst_in_top5, on_loghub),
                                      cmocka_unit_test(test_warn_burst_hdfs)};
  if (g & 1) rc |= cmocka_run_group_tests_name("fixtures", fixtures, NULL, NULL);
  if (g & 2) {
    if (!fx_loghub_or_say(argv[0])) return rc ? rc : (g == 2 ? FX_SKIP : 0);
    rc |= cmocka_run_group_tests_name("loghub", loghub, NULL, NULL);
  }
  return rc;
}
