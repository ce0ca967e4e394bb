/*
 * test_crash.c — kvasird killed with SIGKILL in the middle of work, then
 * started again on the same XDG directories (the real binary, private
 * temporary dirs, stub generator):
 *  - during a big logs.ingest (1.2 M one-line records, ~100 MB): after the
 *    restart the same logs.ingest resumes, and the store holds every line of
 *    the file exactly once. Each line carries its own millisecond timestamp
 *    (t0 + line index), so in plain SQL on the store's block summaries
 *    (bsum) every block must be a gap-free run (n = ts_max - ts_min + 1) and
 *    the blocks, in order, must tile t0 .. t0 + N - 1 without overlap; a
 *    record stored twice or lost breaks one of these. logs.query through
 *    the restarted daemon then reads the records across the seam where the
 *    killed ingest stopped, each once and in line order;
 *  - during an ask that streams (stub generator, 20 ms a token): the socket
 *    file the dead daemon left does not block the restart, the repository
 *    is still registered and answers with citations, and audit.db (every
 *    ask's policy decision) passes integrity_check, holds the killed ask's
 *    decision, and `kvasir audit` reads it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "itest.h"

#define NLINES 1200000
#define T0_MS 1709287200000LL /* 2024-03-01T10:00:00.000Z */

static char root[64], repo[128], logfile[128];
static pid_t daemon_pid;

static void start_daemon(void) {
  daemon_pid = itest_spawn_daemon(root, "--stub-generator", "20", (char *)NULL);
  assert_true(daemon_pid >= 0);
  if (itest_wait_daemon()) fail_msg("kvasird did not start (see %s/kvasird.log)", root);
}

static void kill9_daemon(void) {
  assert_int_equal(kill(daemon_pid, SIGKILL), 0);
  int status;
  assert_int_equal(waitpid(daemon_pid, &status, 0), daemon_pid);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  daemon_pid = 0;
}

/* ------------------------------------------------------------ logs ingest */

typedef struct ingest_run {
  atomic_long records; /* from the progress notifications */
  int rc;
  char msg[512];
} ingest_run;

static int on_progress(void *ud, const char *m, const cJSON *p) {
  const cJSON *r = cJSON_GetObjectItem(p, "records");
  if (!strcmp(m, "progress") && cJSON_IsNumber(r)) atomic_store(&((ingest_run *)ud)->records, (long)r->valuedouble);
  return 0;
}

static cJSON *ingest_params(void) {
  cJSON *p = cJSON_CreateObject();
  cJSON *paths = cJSON_AddArrayToObject(p, "paths");
  cJSON_AddItemToArray(paths, cJSON_CreateString(logfile));
  cJSON_AddStringToObject(p, "name", "crash");
  return p;
}

static void *ingest_thread(void *arg) {
  ingest_run *g = arg;
  ipc_client *c;
  kv_err e;
  if ((g->rc = ipc_client_connect(&c, NULL, NULL, &e))) {
    snprintf(g->msg, sizeof g->msg, "%s", e.msg);
    return NULL;
  }
  cJSON *p = ingest_params(), *r = NULL;
  g->rc = ipc_client_call(c, "logs.ingest", p, on_progress, g, 120000, &r, &e);
  snprintf(g->msg, sizeof g->msg, "%s", e.msg);
  cJSON_Delete(p);
  cJSON_Delete(r);
  ipc_client_close(c);
  return NULL;
}

/* Line i: timestamp T0 + i ms, a level, and its own sequence number. */
static void write_log(void) {
  FILE *f = fopen(logfile, "w");
  assert_non_null(f);
  static const char *lv[] = {"INFO", "WARN", "DEBUG", "ERROR"};
  for (long i = 0; i < NLINES; i++) {
    long long t = T0_MS + i;
    time_t s = (time_t)(t / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    fprintf(f, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s worker-%ld handled request seq=%ld in %ld ms\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(t % 1000),
            lv[i % 4], i % 7, i, i % 997);
  }
  assert_int_equal(fclose(f), 0);
}

static sqlite3 *open_ro(const char *db) {
  sqlite3 *h;
  if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) fail_msg("%s: %s", db, sqlite3_errmsg(h));
  sqlite3_busy_timeout(h, 5000);
  return h;
}

static int64_t q1(sqlite3 *h, const char *sql) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(h, sql, -1, &st, NULL)) fail_msg("%s: %s", sql, sqlite3_errmsg(h));
  int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  return v;
}

typedef struct tiling {
  int64_t records, blocks, bad_blocks, gaps, overlaps, ts_min, ts_max;
} tiling;

/* The store's blocks against "record i has timestamp T0 + i": see the top. */
static tiling store_tiling(const char *db) {
  tiling t = {0, 0, 0, 0, 0, INT64_MAX, INT64_MIN};
  sqlite3 *h = open_ro(db);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(h, "SELECT n, ts_min, ts_max FROM bsum ORDER BY ts_min, id", -1, &st, NULL), 0);
  int64_t next = T0_MS;
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t n = sqlite3_column_int64(st, 0), lo = sqlite3_column_int64(st, 1), hi = sqlite3_column_int64(st, 2);
    t.blocks++;
    t.records += n;
    if (n != hi - lo + 1) t.bad_blocks++;
    if (lo > next) t.gaps++;
    if (lo < next) t.overlaps++;
    next = hi + 1;
    if (lo < t.ts_min) t.ts_min = lo;
    if (hi > t.ts_max) t.ts_max = hi;
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return t;
}

static void test_kill9_during_logs_ingest(void **st) {
  snprintf(logfile, sizeof logfile, "%s/big.log", root);
  double tw = kv_now();
  write_log();
  struct stat sb;
  assert_int_equal(stat(logfile, &sb), 0);
  print_message("wrote %d lines, %.1f MB, in %.2f s\n", NLINES, sb.st_size / 1e6, kv_now() - tw);
  char db[512];
  kv_err e;
  ingest_run g;
  memset(&g, 0, sizeof g);
  pthread_t t;
  double t0 = kv_now();
  assert_int_equal(pthread_create(&t, NULL, ingest_thread, &g), 0);
  /* kill it once a third of the records went through */
  for (int i = 0; i < 6000 && atomic_load(&g.records) < NLINES / 3; i++) itest_nap(5);
  long seen = atomic_load(&g.records);
  kill9_daemon();
  pthread_join(t, NULL);
  print_message("SIGKILL after %.2f s, at %ld records reported; the call: %s\n", kv_now() - t0, seen, g.msg);
  assert_true(seen >= NLINES / 3);
  assert_int_not_equal(g.rc, 0); /* it was interrupted, not finished */
  snprintf(db, sizeof db, "%s/data/kvasir/logs/crash.db", root);
  tiling part = store_tiling(db);
  print_message("after the kill: %lld records in %lld blocks\n", (long long)part.records, (long long)part.blocks);
  assert_true(part.records > 0 && part.records < NLINES);
  assert_int_equal(part.bad_blocks + part.gaps + part.overlaps, 0);

  start_daemon();
  cJSON *p = ingest_params();
  double t1 = kv_now();
  cJSON *r = itest_call("logs.ingest", p, 120000, &e);
  cJSON_Delete(p);
  if (!r) fail_msg("resumed logs.ingest: %s", e.msg);
  print_message("resumed ingest: %.0f records in %.2f s\n", cJSON_GetObjectItem(r, "records")->valuedouble,
                kv_now() - t1);
  int64_t resumed = (int64_t)cJSON_GetObjectItem(r, "records")->valuedouble;
  cJSON_Delete(r);
  tiling all = store_tiling(db);
  print_message("after the resume: %lld records in %lld blocks; blocks not gap-free %lld, gaps %lld, overlaps %lld\n",
                (long long)all.records, (long long)all.blocks, (long long)all.bad_blocks, (long long)all.gaps,
                (long long)all.overlaps);
  assert_int_equal(all.records, NLINES);
  assert_int_equal(all.bad_blocks, 0);
  assert_int_equal(all.gaps, 0);
  assert_int_equal(all.overlaps, 0);
  assert_int_equal(all.ts_min, T0_MS);
  assert_int_equal(all.ts_max, T0_MS + NLINES - 1);
  assert_int_equal(resumed, NLINES - part.records); /* it went on from where the killed one stopped */

  /* queries through the restarted daemon: the 200 records around the seam */
  int64_t seam = T0_MS + part.records;
  p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "name", "crash");
  cJSON_AddNumberToObject(p, "since_ms", (double)(seam - 100));
  cJSON_AddNumberToObject(p, "until_ms", (double)(seam + 100)); /* exclusive */
  cJSON_AddNumberToObject(p, "limit", 1000);
  r = itest_call("logs.query", p, 30000, &e);
  cJSON_Delete(p);
  if (!r) fail_msg("logs.query: %s", e.msg);
  const cJSON *rows = cJSON_GetObjectItem(r, "rows");
  int n = cJSON_GetArraySize(rows);
  print_message("logs.query around the seam (record %lld): %d rows\n", (long long)part.records, n);
  assert_int_equal(n, 200);
  for (int i = 0; i < n; i++) {
    const cJSON *row = cJSON_GetArrayItem(rows, i);
    int64_t ts = (int64_t)cJSON_GetObjectItem(row, "ts_ms")->valuedouble;
    int64_t line = (int64_t)cJSON_GetObjectItem(row, "line")->valuedouble;
    const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
    char want[64];
    snprintf(want, sizeof want, "seq=%lld ", (long long)(ts - T0_MS));
    assert_int_equal(ts, seam - 100 + i); /* each once, in order */
    assert_int_equal(line, ts - T0_MS + 1);
    if (!strstr(text, want)) fail_msg("row %d (ts %lld) is not line %lld: %s", i, (long long)ts, (long long)line, text);
  }
  cJSON_Delete(r);
  /* and one record by its text, the last line of the file */
  p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "name", "crash");
  char text[64];
  snprintf(text, sizeof text, "seq=%d ", NLINES - 1);
  cJSON_AddStringToObject(p, "text", text);
  r = itest_call("logs.query", p, 30000, &e);
  cJSON_Delete(p);
  if (!r) fail_msg("logs.query text: %s", e.msg);
  rows = cJSON_GetObjectItem(r, "rows");
  assert_int_equal(cJSON_GetArraySize(rows), 1);
  assert_int_equal((int64_t)cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "line")->valuedouble, NLINES);
  cJSON_Delete(r);
  unlink(logfile);
}

/* -------------------------------------------------------------------- ask */

typedef struct ask_run {
  atomic_int tokens;
  int rc;
  char msg[512];
} ask_run;

static int on_tok(void *ud, const char *m, const cJSON *p) {
  const cJSON *kind = cJSON_GetObjectItem(p, "kind");
  if (!strcmp(m, "ask.token") && !(cJSON_IsString(kind) && !strcmp(kind->valuestring, "facts")))
    atomic_fetch_add(&((ask_run *)ud)->tokens, 1);
  return 0;
}

static cJSON *ask_params(int max_tokens) {
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "question", "how does reconcile_ledger sum the ledger entries");
  cJSON_AddStringToObject(p, "repo", repo);
  cJSON_AddNumberToObject(p, "max_tokens", max_tokens);
  return p;
}

static void *ask_thread(void *arg) {
  ask_run *a = arg;
  ipc_client *c;
  kv_err e;
  if ((a->rc = ipc_client_connect(&c, NULL, NULL, &e))) return NULL;
  cJSON *p = ask_params(1000), *r = NULL; /* 1000 x 20 ms: it is killed long before the end */
  a->rc = ipc_client_call(c, "ask", p, on_tok, a, 60000, &r, &e);
  snprintf(a->msg, sizeof a->msg, "%s", e.msg);
  cJSON_Delete(p);
  cJSON_Delete(r);
  ipc_client_close(c);
  return NULL;
}

static int64_t decisions(void) {
  char db[256];
  snprintf(db, sizeof db, "%s/data/kvasir/audit.db", root);
  sqlite3 *h = open_ro(db);
  char *ok = NULL;
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &st, NULL), 0);
  if (sqlite3_step(st) == SQLITE_ROW) ok = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  if (!ok || strcmp(ok, "ok")) fail_msg("audit.db integrity_check: %s", ok ? ok : "(no row)");
  free(ok);
  int64_t n = q1(h, "SELECT count(*) FROM decisions");
  sqlite3_close(h);
  return n;
}

static void ask_ok(const char *when) {
  kv_err e;
  cJSON *p = ask_params(8);
  cJSON *r = itest_call("ask", p, 60000, &e);
  cJSON_Delete(p);
  if (!r) fail_msg("ask %s: %s", when, e.msg);
  const cJSON *cites = cJSON_GetObjectItem(r, "citations");
  if (cJSON_GetArraySize(cites) < 1) fail_msg("ask %s: no citations", when);
  const cJSON *path = cJSON_GetObjectItem(cJSON_GetArrayItem(cites, 0), "path");
  assert_true(cJSON_IsString(path));
  assert_non_null(strstr(path->valuestring, "ledger.c"));
  assert_non_null(strstr(cJSON_GetObjectItem(r, "answer")->valuestring, "ledger.c"));
  cJSON_Delete(r);
}

static void test_kill9_during_ask(void **st) {
  char cmd[1024];
  snprintf(repo, sizeof repo, "%s/repo", root);
  snprintf(cmd, sizeof cmd,
           "mkdir -p %s/src && cd %s && printf '/* Sum the ledger entries. */\\nint reconcile_ledger(const int *v, "
           "int n) {\\n  int s = 0;\\n  for (int i = 0; i < n; i++) s += v[i];\\n  return s;\\n}\\n' > src/ledger.c && "
           "cp %s/base/buf.c src/ && git init -q . && git add -A && "
           "git -c user.name=t -c user.email=t@example.com commit -qm init",
           repo, repo, KVASIR_SOURCE_DIR);
  itest_sh(cmd);
  kv_err e;
  cJSON *p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "path", repo);
  cJSON_AddBoolToObject(p, "wait", 1);
  cJSON *r = itest_call("repo.add", p, 120000, &e);
  cJSON_Delete(p);
  if (!r) fail_msg("repo.add: %s", e.msg);
  cJSON_Delete(r);
  ask_ok("before the kill");
  int64_t d0 = decisions();
  assert_true(d0 >= 1);

  ask_run a;
  memset(&a, 0, sizeof a);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, ask_thread, &a), 0);
  for (int i = 0; i < 500 && atomic_load(&a.tokens) < 10; i++) itest_nap(10);
  assert_true(atomic_load(&a.tokens) >= 10); /* it is streaming */
  kill9_daemon();
  pthread_join(t, NULL);
  print_message("ask killed after %d tokens; the call: %s\n", atomic_load(&a.tokens), a.msg);
  assert_int_not_equal(a.rc, 0);
  assert_true(atomic_load(&a.tokens) < 1000);
  char sock[256];
  ipc_socket_path(sock, sizeof sock);
  struct stat sb;
  assert_int_equal(stat(sock, &sb), 0); /* the dead daemon left its socket file behind */
  ipc_client *c;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), KV_ENOTFOUND); /* nobody listens on it */

  start_daemon(); /* fails the test when the stale socket (or lock) blocks it */
  p = itest_call("repo.list", NULL, 10000, &e);
  if (!p) fail_msg("repo.list: %s", e.msg);
  char *listed = cJSON_PrintUnformatted(p);
  assert_non_null(strstr(listed, repo));
  free(listed);
  cJSON_Delete(p);
  /* the killed ask's decision was recorded before it streamed, and kept */
  assert_int_equal(decisions(), d0 + 1);
  ask_ok("after the restart");
  assert_int_equal(decisions(), d0 + 2);
  snprintf(cmd, sizeof cmd, "cd %s && %s/cli/kvasir audit --all --json > %s/audit.json", repo, KVASIR_BINARY_DIR, root);
  itest_sh(cmd);
  snprintf(cmd, sizeof cmd, "%s/audit.json", root);
  char *text;
  size_t n;
  assert_int_equal(kv_read_file(cmd, 1 << 20, &text, &n, &e), 0);
  cJSON *rows = cJSON_Parse(text);
  free(text);
  assert_true(cJSON_IsArray(rows)); /* readable; no outbound rows: every ask stayed local */
  assert_int_equal(cJSON_GetArraySize(rows), 0);
  cJSON_Delete(rows);
}

static int setup(void **st) {
  signal(SIGPIPE, SIG_IGN);
  if (itest_xdg_root(root, sizeof root, "/tmp/kvasir-crash-XXXXXX")) return 1;
  start_daemon();
  return 0;
}

static int teardown(void **st) {
  itest_stop_daemon(&daemon_pid);
  if (getenv("KVASIR_TEST_KEEP")) return 0;
  char cmd[160];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  return system(cmd) != 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_kill9_during_logs_ingest),
      cmocka_unit_test(test_kill9_during_ask),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
