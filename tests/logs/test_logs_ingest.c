/* test_logs_ingest.c — ingest end to end: records and queries, resume and
 * appends, rotation, gzip/zstd (and a truncated gzip), multi-line records,
 * JSON lines, junk input (binary, invalid UTF-8, a 10 MB line, clock jumps,
 * unparseable timestamps), and kill -9 in the middle of an ingest followed
 * by a resume, compared with an uninterrupted ingest of the same file. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "logs/logs.h"
#include "logs_fixture.h"

static char g_dir[256];

static char *read_sample(const char *sys, size_t *len) {
  char *b = fx_sample(sys, len);
  if (!b) fail_msg("LogHub sample %s not readable", sys);
  return b;
}

/* 2000 generated lines (records: *rec) */
static char *synth(size_t *len, size_t *rec) {
  char *b = fx_synth(2000, len, rec);
  assert_non_null(b);
  return b;
}

static void write_file(const char *path, const char *data, size_t n, const char *mode) {
  FILE *f = fopen(path, mode);
  assert_non_null(f);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
}

static int64_t count(const char *db, const char *sql) {
  sqlite3 *h;
  assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(h, sql, -1, &st, NULL)) fail_msg("%s: %s", sql, sqlite3_errmsg(h));
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(h);
  return v;
}

/* count() that tolerates a store still being created by another process */
static int64_t try_count(const char *db, const char *sql) {
  sqlite3 *h;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    sqlite3_close(h);
    return -1;
  }
  sqlite3_busy_timeout(h, 5000);
  sqlite3_stmt *st;
  int64_t v = -1;
  if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  sqlite3_close(h);
  return v;
}

static int ingest(const char *db, const char *path, size_t batch, log_ingest_stats *st) {
  log_db *d;
  kv_err err = {0};
  assert_int_equal(log_db_open(&d, db, &err), 0);
  log_ingest_opts o = {0};
  o.batch = batch;
  const char *paths[1] = {path};
  int rc = log_ingest(d, paths, 1, &o, st, &err);
  if (rc) fprintf(stderr, "ingest %s: %s\n", path, err.msg);
  log_db_close(d);
  return rc;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

/* records stored (committed blocks), read with plain SQL */
#define NREC "SELECT coalesce(sum(n), 0) FROM bsum"

/* every record of a store through the API, in (ts, id) order */
static void all_rows(const char *db, log_result *r) {
  log_db *d;
  kv_err err;
  assert_int_equal(log_db_open(&d, db, &err), 0);
  log_query q = {0};
  q.limit = 1 << 20;
  assert_int_equal(log_query_run(d, &q, r, &err), 0);
  log_db_close(d);
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* distinct line numbers among rows */
static size_t distinct_lines(const log_result *r) {
  int64_t *v = malloc((r->n + 1) * sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < r->n; i++) v[i] = r->rows[i].line_no;
  qsort(v, r->n, sizeof *v, cmp_i64);
  size_t d = 0;
  for (size_t i = 0; i < r->n; i++)
    if (i == 0 || v[i] != v[i - 1]) d++;
  free(v);
  return d;
}

/* lines of buf containing needle (the independent reference) */
static int64_t lines_with(const char *buf, size_t len, const char *needle) {
  int64_t c = 0;
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(buf + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - buf) : len;
    char *line = strndup(buf + i, e - i);
    if (strstr(line, needle)) c++;
    free(line);
    i = e + 1;
  }
  return c;
}

static void test_ingest_query(void **st) {
  size_t len;
  char *b = read_sample("HDFS", &len);
  char f[512], db[512];
  path_in(f, sizeof f, "hdfs.log");
  path_in(db, sizeof db, "q.db");
  write_file(f, b, len, "w");
  log_ingest_stats s;
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.records, 2000);
  assert_int_equal(count(db, NREC), 2000);
  log_result all;
  all_rows(db, &all);
  assert_int_equal(all.n, 2000);
  for (size_t i = 0; i < all.n; i++) {
    assert_true(all.rows[i].ts_ms != INT64_MIN);
    assert_int_equal(all.rows[i].line_no, (int64_t)i + 1); /* one record a line, in time order */
    if (i) assert_true(all.rows[i].ts_ms >= all.rows[i - 1].ts_ms);
  }
  log_result_free(&all);
  /* templates: HDFS has 14 true groups; the miner should be close */
  int64_t nt = count(db, "SELECT count(DISTINCT template_id) FROM patterns");
  assert_true(nt >= 12 && nt <= 20);
  log_db *d;
  kv_err err;
  assert_int_equal(log_db_open(&d, db, &err), 0);
  log_query q = {0};
  log_result r;
  q.min_level = LOG_LVL_WARN;
  q.limit = 5000;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  int64_t warn = lines_with(b, len, " WARN ");
  assert_int_equal((int64_t)r.n, warn);
  for (size_t i = 0; i < r.n; i++) assert_non_null(strstr(r.rows[i].text, " WARN "));
  assert_true(r.n > 0);
  log_result_free(&r);
  memset(&q, 0, sizeof q);
  q.text = "PacketResponder";
  q.limit = 5000;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  /* text search is over message templates (FTS5) first; in HDFS messages
   * the word is constant ("PacketResponder 1 for block ..."); the component
   * "dfs.DataNode$PacketResponder:" is not part of the template */
  assert_int_equal((int64_t)r.n, lines_with(b, len, "PacketResponder "));
  for (size_t i = 0; i < r.n; i++) assert_non_null(strstr(r.rows[i].template_text, "PacketResponder"));
  int64_t tpl = r.rows[0].template_id;
  log_result_free(&r);
  memset(&q, 0, sizeof q);
  q.template_id = tpl;
  q.limit = 5000;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_true(r.n > 10);
  for (size_t i = 0; i < r.n; i++) assert_int_equal(r.rows[i].template_id, tpl);
  log_result_free(&r);
  memset(&q, 0, sizeof q);
  q.param = "10.251.73.220:50010";
  q.limit = 5000;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_true(r.n >= 1);
  for (size_t i = 0; i < r.n; i++) assert_non_null(strstr(r.rows[i].text, "10.251.73.220:50010"));
  log_result_free(&r);
  memset(&q, 0, sizeof q);
  q.param = "67108864"; /* a plain number: not indexed, found by a scan */
  q.limit = 5000;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_int_equal((int64_t)r.n, lines_with(b, len, " 67108864"));
  assert_true(r.n > 10);
  log_result_free(&r);
  memset(&q, 0, sizeof q);
  q.param = "10.251.73"; /* a prefix is not a value */
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_int_equal(r.n, 0);
  log_result_free(&r);
  memset(&q, 0, sizeof q);
  q.component = "dfs.FSNamesystem";
  q.since_ms = 1226262975000LL; /* 2008-11-09 20:36:15 */
  q.until_ms = 1226266575000LL; /* one hour later */
  q.limit = 5000;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  /* reference: the raw lines, "yymmdd HHMMSS pid LEVEL component: ..." */
  int64_t want = 0;
  for (size_t i = 0; i < len;) {
    const char *nl = memchr(b + i, '\n', len - i);
    size_t e = nl ? (size_t)(nl - b) : len;
    char *line = strndup(b + i, e - i), comp[256];
    struct tm tmv = {0};
    int pid;
    char lvl[16];
    if (sscanf(line, "%2d%2d%2d %2d%2d%2d %d %15s %255s", &tmv.tm_year, &tmv.tm_mon, &tmv.tm_mday, &tmv.tm_hour,
               &tmv.tm_min, &tmv.tm_sec, &pid, lvl, comp) == 9) {
      tmv.tm_year += 100, tmv.tm_mon -= 1;
      int64_t ms = (int64_t)timegm(&tmv) * 1000;
      if (!strcmp(comp, "dfs.FSNamesystem:") && ms >= 1226262975000LL && ms < 1226266575000LL) want++;
    }
    free(line);
    i = e + 1;
  }
  assert_true(want > 0);
  assert_int_equal((int64_t)r.n, want);
  for (size_t i = 1; i < r.n; i++) assert_true(r.rows[i].ts_ms >= r.rows[i - 1].ts_ms);
  for (size_t i = 0; i < r.n; i++) assert_string_equal(r.rows[i].component, "dfs.FSNamesystem");
  log_result_free(&r);
  /* the first 100 by time, against the full list */
  memset(&q, 0, sizeof q);
  q.min_level = LOG_LVL_INFO;
  q.since_ms = 1226262975000LL;
  q.limit = 100;
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  all_rows(db, &all);
  size_t k = 0;
  for (size_t i = 0; i < all.n && k < 100; i++) {
    if (all.rows[i].ts_ms < q.since_ms || all.rows[i].level < LOG_LVL_INFO) continue;
    assert_true(k < r.n);
    assert_int_equal(r.rows[k].id, all.rows[i].id);
    k++;
  }
  assert_int_equal(r.n, k);
  log_result_free(&r);
  log_result_free(&all);
  log_db_close(d);
  free(b);
}

static void test_resume_append_rotate(void **st) {
  size_t len, nrec;
  char *b = synth(&len, &nrec);
  size_t half = 0;
  for (int k = 0; k < 1000 && half < len; half++)
    if (b[half] == '\n') k++;
  char f[512], db[512];
  path_in(f, sizeof f, "zk.log");
  path_in(db, sizeof db, "resume.db");
  write_file(f, b, half, "w");
  log_ingest_stats s;
  assert_int_equal(ingest(db, f, 100, &s), 0);
  int64_t first = count(db, NREC);
  assert_true(first > 900 && first <= 1000);
  assert_int_equal(ingest(db, f, 100, &s), 0);
  assert_int_equal(s.records, 0); /* nothing new */
  write_file(f, b + half, len - half, "a");
  assert_int_equal(ingest(db, f, 100, &s), 0);
  assert_true(s.records > 0);
  assert_int_equal(s.lines, 1000);
  int64_t all = count(db, NREC);
  log_result rows;
  all_rows(db, &rows);
  assert_int_equal((int64_t)rows.n, all);
  assert_int_equal((int64_t)distinct_lines(&rows), all);
  log_result_free(&rows);
  assert_int_equal(count(db, "SELECT max(line_no) FROM files"), 2000);
  /* rotation: a new file under the same name is read from its start */
  char f2[512];
  path_in(f2, sizeof f2, "zk.log.new");
  write_file(f2, b, half, "w");
  assert_int_equal(rename(f2, f), 0);
  assert_int_equal(ingest(db, f, 100, &s), 0);
  assert_int_equal(s.lines, 1000);
  free(b);
}

static void test_compressed(void **st) {
  size_t len, nrec;
  char *b = synth(&len, &nrec);
  char gz[512], zs[512], db[512];
  path_in(gz, sizeof gz, "hdfs.log.gz");
  path_in(zs, sizeof zs, "hdfs.log.zst");
  path_in(db, sizeof db, "z.db");
  gzFile g = gzopen(gz, "wb");
  assert_non_null(g);
  assert_int_equal(gzwrite(g, b, (unsigned)len), (int)len);
  gzclose(g);
  size_t cap = ZSTD_compressBound(len);
  char *z = malloc(cap);
  size_t zn = ZSTD_compress(z, cap, b, len, 3);
  assert_false(ZSTD_isError(zn));
  write_file(zs, z, zn, "w");
  free(z);
  log_ingest_stats s;
  assert_int_equal(ingest(db, gz, 0, &s), 0);
  assert_int_equal(s.records, nrec);
  assert_int_equal(s.truncated, 0);
  assert_int_equal(ingest(db, zs, 0, &s), 0);
  assert_int_equal(s.records, nrec);
  assert_int_equal(s.truncated, 0);
  /* a truncated gzip: what decodes is kept, the truncation is counted */
  struct stat sb;
  stat(gz, &sb);
  assert_int_equal(truncate(gz, sb.st_size / 2), 0);
  char db2[512];
  path_in(db2, sizeof db2, "z2.db");
  assert_int_equal(ingest(db2, gz, 0, &s), 0);
  assert_int_equal(s.truncated, 1);
  assert_true(s.records > 100 && s.records < nrec);
  free(b);
}

static void test_multiline_json(void **st) {
  const char *text =
      "2024-01-01 10:00:00,000 INFO [main] a.B: start 1\n"
      "2024-01-01 10:00:01,000 ERROR [main] a.B: failed to do x\n"
      "java.lang.IllegalStateException: boom\n"
      "\tat a.B.run(B.java:10)\n"
      "\tat a.B.main(B.java:3)\n"
      "Caused by: java.io.IOException: disk\n"
      "\t... 2 more\n"
      "2024-01-01 10:00:02,000 INFO [main] a.B: start 2\n"
      "Traceback (most recent call last):\n"
      "  File \"x.py\", line 1, in <module>\n"
      "ValueError: bad\n"
      "2024-01-01 10:00:03,000 INFO [main] a.B: done\n";
  char f[512], db[512];
  path_in(f, sizeof f, "ml.log");
  path_in(db, sizeof db, "ml.db");
  write_file(f, text, strlen(text), "w");
  log_ingest_stats s;
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.lines, 12);
  assert_int_equal(s.records, 4);
  log_db *d;
  kv_err err;
  log_query q = {0};
  log_result r;
  assert_int_equal(log_db_open(&d, db, &err), 0);
  q.text = "Caused by"; /* not in any template: a scan of the record texts */
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.rows[0].level, LOG_LVL_ERROR);
  assert_int_equal(r.rows[0].line_no, 2);
  assert_non_null(strstr(r.rows[0].text, "\tat a.B.main(B.java:3)"));
  log_result_free(&r);
  log_db_close(d);
  const char *js = "{\"time\":\"2024-03-01T00:00:00Z\",\"level\":\"info\",\"msg\":\"user 17 logged in\"}\n"
                   "{\"time\":\"2024-03-01T00:00:05Z\",\"level\":\"error\",\"msg\":\"db timeout after 30s\"}\n"
                   "{\"time\":\"2024-03-01T00:00:09Z\",\"level\":\"info\",\"msg\":\"user 18 logged in\"}\n";
  path_in(f, sizeof f, "j.log");
  write_file(f, js, strlen(js), "w");
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.records, 3);
  assert_int_equal(log_db_open(&d, db, &err), 0);
  memset(&q, 0, sizeof q);
  q.text = "db timeout";
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_int_equal(r.n, 1);
  assert_int_equal(r.rows[0].level, LOG_LVL_ERROR);
  assert_int_equal(r.rows[0].ts_ms, 1709251205000LL);
  log_result_free(&r);
  q.text = "logged in";
  assert_int_equal(log_query_run(d, &q, &r, &err), 0);
  assert_int_equal(r.n, 2);
  assert_int_equal(r.rows[0].template_id, r.rows[1].template_id);
  log_result_free(&r);
  log_db_close(d);
}

static void test_junk(void **st) {
  char f[512], db[512];
  path_in(f, sizeof f, "junk.log");
  path_in(db, sizeof db, "junk.db");
  FILE *o = fopen(f, "w");
  assert_non_null(o);
  fprintf(o, "2015-07-29 17:41:44,747 - INFO  [main:A@1] - start 1\n");
  fprintf(o, "2015-07-29 17:41:45,000 - INFO  [main:A@1] - bytes \xc3\x28 here\n");
  static const char bin[] = "\x00\x01\x02\xff\xfe binary \x00\x00\x07\x08\n";
  fwrite(bin, 1, sizeof bin - 1, o);
  fprintf(o, "2015-07-27 10:00:00,000 - WARN  [main:A@2] - clock went back\n");
  fprintf(o, "2015-99-99 99:99:99,000 - WARN  [main:A@2] - bad stamp\n");
  fprintf(o, "2015-07-29 17:41:46,000 - INFO  [main:A@1] - long ");
  for (int i = 0; i < 10 * 1024 * 1024 / 64; i++) fprintf(o, "%063d ", i);
  fprintf(o, "\n2015-07-29 17:41:47,000 - INFO  [main:A@1] - after the long line\n");
  fclose(o);
  log_ingest_stats s;
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.lines, 7);
  assert_int_equal(s.long_lines, 1);
  assert_true(s.invalid_utf8 >= 2);
  assert_true(s.binary_lines >= 1);
  assert_true(s.clock_jumps >= 1);
  assert_true(s.no_timestamp >= 1);
  log_result rows;
  all_rows(db, &rows);
  size_t after = 0, longest = 0;
  for (size_t i = 0; i < rows.n; i++) {
    after += strstr(rows.rows[i].text, "after the long line") != NULL;
    if (strlen(rows.rows[i].text) > longest) longest = strlen(rows.rows[i].text);
  }
  assert_int_equal(after, 1);
  assert_true(longest > 1000 && longest <= (1 << 20));
  log_result_free(&rows);
  /* not a file at all */
  log_db *d;
  kv_err err;
  assert_int_equal(log_db_open(&d, db, &err), 0);
  const char *missing[1] = {"/nonexistent/kvasir/x.log"};
  assert_int_equal(log_ingest(d, missing, 1, NULL, &s, &err), KV_ENOTFOUND);
  assert_non_null(strstr(err.msg, "/nonexistent/kvasir/x.log"));
  log_db_close(d);
}

/* Bad input keeps its lines: CRLF line ends give the same records and
 * templates as LF (and no '\r' in any text); a file mixing header layouts
 * keeps every line as its own record; a file cut in the middle of its last
 * line keeps that partial line. */
static void test_bad_input_keeps_lines(void **st) {
  size_t len, nrec;
  char *b = synth(&len, &nrec);
  char *crlf = malloc(2 * len + 1);
  size_t k = 0;
  for (size_t i = 0; i < len; i++) {
    if (b[i] == '\n') crlf[k++] = '\r';
    crlf[k++] = b[i];
  }
  char f[512], db[512], f2[512], db2[512];
  path_in(f, sizeof f, "lf.log");
  path_in(db, sizeof db, "lf.db");
  path_in(f2, sizeof f2, "crlf.log");
  path_in(db2, sizeof db2, "crlf.db");
  write_file(f, b, len, "w");
  write_file(f2, crlf, k, "w");
  log_ingest_stats s;
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.records, nrec);
  assert_int_equal(ingest(db2, f2, 0, &s), 0);
  assert_int_equal(s.records, nrec);
  assert_int_equal(s.lines, 2000);
  log_result a, c;
  all_rows(db, &a);
  all_rows(db2, &c);
  assert_int_equal(a.n, c.n);
  for (size_t i = 0; i < c.n; i++) {
    assert_null(strchr(c.rows[i].text, '\r'));
    assert_string_equal(a.rows[i].text, c.rows[i].text);
    assert_string_equal(a.rows[i].template_text, c.rows[i].template_text);
    assert_int_equal(a.rows[i].ts_ms, c.rows[i].ts_ms);
  }
  log_result_free(&a);
  log_result_free(&c);
  free(crlf);

  /* mixed layouts, one file: 120 lines, 4 layouts interleaved */
  static const char *fmt[4] = {"2016-03-01 08:%02d:%02d,123 INFO [main] a.B: job %d done\n",
                               "Mar  1 08:%02d:%02d host sshd[42]: session %d opened\n",
                               "{\"ts\":\"2016-03-01T08:%02d:%02dZ\",\"level\":\"warn\",\"msg\":\"retry %d\"}\n",
                               "plain text line %02d %02d number %d\n"};
  path_in(f, sizeof f, "mixed.log");
  path_in(db, sizeof db, "mixed.db");
  FILE *o = fopen(f, "w");
  assert_non_null(o);
  for (int i = 0; i < 120; i++) fprintf(o, fmt[i % 4], i / 60, i % 60, i);
  fclose(o);
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.lines, 120);
  assert_int_equal(s.records, 120);
  all_rows(db, &a);
  assert_int_equal(a.n, 120);
  for (int i = 0; i < 120; i++) {
    char want[256];
    snprintf(want, sizeof want, fmt[i % 4], i / 60, i % 60, i);
    want[strlen(want) - 1] = 0;
    size_t hit = 0;
    for (size_t r = 0; r < a.n; r++) {
      if (strcmp(a.rows[r].text, want)) continue;
      hit++;
      /* the log4j, syslog and JSON lines each get their own time of day, not
       * their predecessor's (a record without a time takes the previous one) */
      if (i % 4 < 3) assert_int_equal(a.rows[r].ts_ms % 86400000, (8 * 3600 + (i / 60) * 60 + i % 60) * 1000LL + (i % 4 == 0 ? 123 : 0));
    }
    assert_int_equal(hit, 1);
  }
  log_result_free(&a);

  /* cut in the middle of the last line */
  size_t cut = len - 30;
  while (b[cut - 1] == '\n') cut--;
  path_in(f, sizeof f, "cut.log");
  path_in(db, sizeof db, "cut.db");
  write_file(f, b, cut, "w");
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.lines, 2000);
  all_rows(db, &a);
  size_t ls = cut;
  while (ls > 0 && b[ls - 1] != '\n') ls--;
  char *tail = strndup(b + ls, cut - ls);
  size_t found = 0;
  for (size_t r = 0; r < a.n; r++) found += strstr(a.rows[r].text, tail) != NULL;
  assert_int_equal(found, 1);
  free(tail);
  log_result_free(&a);
  free(b);
}

/* parameter lookups of every typing: an id, a number, a duration, and an
 * epoch stamp (a time to the tokenizer, a number to the query side) */
static void test_param_kinds(void **st) {
  char f[512], db[512];
  path_in(f, sizeof f, "par.log");
  path_in(db, sizeof db, "par.db");
  FILE *o = fopen(f, "w");
  assert_non_null(o);
  for (int i = 0; i < 3000; i++)
    fprintf(o, "2024-01-01 10:%02d:%02d,000 INFO [main] a.B: job %d at %lld took %dms on 10.0.%d.7:%d\n",
            (i / 60) % 60, i % 60, 1000 + i, 1445000000LL + i * 7, i % 50, i % 97, 8000 + i);
  fclose(o);
  log_ingest_stats s;
  assert_int_equal(ingest(db, f, 0, &s), 0);
  assert_int_equal(s.records, 3000);
  log_db *d;
  kv_err err;
  assert_int_equal(log_db_open(&d, db, &err), 0);
  struct {
    const char *v;
    size_t want;
  } cases[] = {{"1777", 1},          {"1445007000", 1}, {"1445000007", 1}, {"7ms", 60},
               {"10.0.3.7:9003", 0}, {"10.0.3.7:8100", 1}, {"8100", 0},       {"1445000008", 0}};
  /* 10.0.3.7:9003 does not occur (1003 % 97 != 3); 8100 is inside a longer value, not a value */
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    log_query q = {0};
    log_result r;
    q.param = cases[c].v;
    q.limit = 5000;
    assert_int_equal(log_query_run(d, &q, &r, &err), 0);
    if (r.n != cases[c].want) fail_msg("param %s: %zu rows, want %zu", cases[c].v, r.n, cases[c].want);
    for (size_t i = 0; i < r.n; i++) assert_non_null(strstr(r.rows[i].text, cases[c].v));
    log_result_free(&r);
  }
  log_db_close(d);
}

/* a store of the old format (records as rows) is refused by name */
static void test_old_format(void **st) {
  char db[512];
  path_in(db, sizeof db, "v1.db");
  sqlite3 *h;
  assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
  assert_int_equal(sqlite3_exec(h, "CREATE TABLE records(id INTEGER PRIMARY KEY, text TEXT); PRAGMA user_version=1;", NULL,
                                NULL, NULL),
                   SQLITE_OK);
  sqlite3_close(h);
  log_db *d = NULL;
  kv_err err = {0};
  assert_int_equal(log_db_open(&d, db, &err), KV_EUNSUPPORTED);
  assert_null(d);
  assert_non_null(strstr(err.msg, "v1.db"));
  assert_non_null(strstr(err.msg, "ingest again"));
}

/* kill -9 during an ingest, then resume: same records as a clean ingest. */
static void test_kill9_resume(void **st) {
  size_t len, nrec;
  char *b = synth(&len, &nrec);
  char f[512], dbr[512], dbk[512];
  path_in(f, sizeof f, "big.log");
  path_in(dbr, sizeof dbr, "ref.db");
  path_in(dbk, sizeof dbk, "kill.db");
  FILE *o = fopen(f, "w");
  for (int i = 0; i < 40; i++) fwrite(b, 1, len, o);
  fclose(o);
  free(b);
  log_ingest_stats s;
  assert_int_equal(ingest(dbr, f, 2000, &s), 0);
  int64_t ref = count(dbr, NREC);
  assert_true(ref > 40000);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    ingest(dbk, f, 500, &s);
    _exit(0);
  }
  /* wait until some batches are in, then kill it mid-flight */
  for (int i = 0; i < 2000; i++) {
    usleep(5000);
    struct stat sb;
    if (stat(dbk, &sb) == 0 && try_count(dbk, NREC) >= 5000) break;
  }
  kill(pid, SIGKILL);
  int status;
  waitpid(pid, &status, 0);
  int64_t partial = count(dbk, NREC);
  assert_true(partial > 0);
  assert_true(partial < ref); /* it was really interrupted */
  assert_int_equal(ingest(dbk, f, 500, &s), 0);
  assert_int_equal(count(dbk, NREC), ref);
  log_result rr, rk;
  all_rows(dbr, &rr);
  all_rows(dbk, &rk);
  assert_int_equal((int64_t)rr.n, ref);
  assert_int_equal((int64_t)rk.n, ref);
  assert_int_equal((int64_t)distinct_lines(&rk), ref);
  int64_t lr = 0, lk = 0, tr = 0, tk = 0;
  for (size_t i = 0; i < rr.n; i++) lr += rr.rows[i].line_no, tr += (int64_t)strlen(rr.rows[i].text);
  for (size_t i = 0; i < rk.n; i++) lk += rk.rows[i].line_no, tk += (int64_t)strlen(rk.rows[i].text);
  assert_int_equal(lk, lr);
  assert_int_equal(tk, tr);
  /* every record maps to a template */
  for (size_t i = 0; i < rk.n; i++) {
    assert_true(rk.rows[i].template_id > 0);
    assert_true(rk.rows[i].template_text[0] != 0);
  }
  log_result_free(&rr);
  log_result_free(&rk);
}

static int setup(void **st) {
  snprintf(g_dir, sizeof g_dir, "/tmp/kvasir-logs-test-XXXXXX");
  if (!mkdtemp(g_dir)) return -1;
  return 0;
}

static int teardown(void **st) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
  int g = fx_groups(argc, argv), rc = 0;
  if (!g) return 2;
  const struct CMUnitTest fixtures[] = {
      cmocka_unit_test(test_resume_append_rotate), cmocka_unit_test(test_compressed),
      cmocka_unit_test(test_multiline_json),       cmocka_unit_test(test_junk),
      cmocka_unit_test(test_param_kinds),          cmocka_unit_test(test_old_format),
      cmocka_unit_test(test_kill9_resume),         cmocka_unit_test(test_bad_input_keeps_lines),
  };
  const struct CMUnitTest loghub[] = {cmocka_unit_test(test_ingest_query)};
  if (g & 1) rc |= cmocka_run_group_tests_name("fixtures", fixtures, setup, teardown);
  if (g & 2) {
    if (!fx_loghub_or_say(argv[0])) return rc ? rc : (g == 2 ? FX_SKIP : 0);
    rc |= cmocka_run_group_tests_name("loghub", loghub, setup, teardown);
  }
  return rc;
}
