/*
 * test_watch.c — a registered repository is re-indexed when a file is saved
 * and when HEAD moves (a commit), through the daemon's debounced fs watches;
 * and the methods that reach other modules work through the daemon:
 * logs.ingest / logs.query / logs.triage, policy.explain, cache.stats, complete.
 * Log stores stay open between queries (cache.stats log_stores) and still
 * see what a later ingest added, and a replaced store file is reopened.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <time.h>

#include "tests/daemon/harness.h"

static th H;

static void *run(void *arg) {
  kv_err e;
  dmn_server_run(((th *)arg)->s, &e);
  return NULL;
}

static int setup(void **st) {
  kv_err e;
  th_env(&H);
  const char *files[] = {"ipc/frame.c"};
  if (th_make_repo(&H, files, 1)) return 1;
  dmn_config c;
  dmn_config_default(&c);
  c.watch = 1;
  c.stub_token_ms = 1;
  if (dmn_server_new(&H.s, &c, &e) || pthread_create(&H.t, NULL, run, &H)) return 1;
  ipc_client *cl;
  if (ipc_client_connect(&cl, NULL, NULL, &e)) return 1;
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "path", H.repo);
  cJSON_AddBoolToObject(p, "wait", 1);
  int rc = ipc_client_call(cl, "repo.add", p, NULL, NULL, 60000, &r, &e);
  cJSON_Delete(p);
  cJSON_Delete(r);
  ipc_client_close(cl);
  return rc ? 1 : 0;
}

static int teardown(void **st) {
  th_stop(&H);
  th_cleanup(&H);
  return 0;
}

static double syncs(void) {
  ipc_client *c;
  kv_err e;
  if (ipc_client_connect(&c, NULL, NULL, &e)) return -1;
  cJSON *r = NULL;
  ipc_client_call(c, "repo.list", NULL, NULL, NULL, 5000, &r, &e);
  ipc_client_close(c);
  double n = th_num(cJSON_GetArrayItem(r, 0), "syncs");
  cJSON_Delete(r);
  return n;
}

static int wait_syncs_above(double n0) {
  for (int i = 0; i < 150; i++) { /* debounce 400 ms + sync; 6 s at most */
    struct timespec ts = {0, 40 * 1000000L};
    nanosleep(&ts, NULL);
    if (syncs() > n0) return 1;
  }
  return 0;
}

static void test_save_triggers_sync(void **st) {
  double n0 = syncs();
  assert_true(n0 >= 1);
  char cmd[512];
  snprintf(cmd, sizeof cmd, "printf 'int added_by_test(void) { return 42; }\\n' >> '%s/frame.c'", H.repo);
  assert_int_equal(system(cmd), 0);
  assert_true(wait_syncs_above(n0));
  /* the new function is searchable */
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "question", "added_by_test");
  cJSON_AddStringToObject(p, "repo", H.repo);
  cJSON_AddNumberToObject(p, "max_tokens", 1);
  assert_int_equal(ipc_client_call(c, "ask", p, NULL, NULL, 10000, &r, &e), 0);
  /* the top citation covers the appended line (the file's last) */
  snprintf(cmd, sizeof cmd, "%s/frame.c", H.repo);
  FILE *f = fopen(cmd, "r");
  int lines = 0, ch;
  while ((ch = fgetc(f)) != EOF) lines += ch == '\n';
  fclose(f);
  const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(r, "citations"), 0);
  assert_non_null(c0);
  assert_string_equal(cJSON_GetObjectItem(c0, "path")->valuestring, "frame.c");
  assert_true(th_num(c0, "start_line") <= lines && th_num(c0, "end_line") >= lines);
  cJSON_Delete(p);
  cJSON_Delete(r);
  ipc_client_close(c);
}

static void test_commit_triggers_sync(void **st) {
  struct timespec ts = {1, 0};
  nanosleep(&ts, NULL); /* let the previous burst settle */
  double n0 = syncs();
  char cmd[512];
  snprintf(cmd, sizeof cmd, "cd '%s' && git -c user.name=t -c user.email=t@e commit -qam more >/dev/null", H.repo);
  assert_int_equal(system(cmd), 0);
  assert_true(wait_syncs_above(n0));
}

static void test_logs_through_daemon(void **st) {
  char log[256];
  snprintf(log, sizeof log, "%s/app.log", H.root);
  FILE *f = fopen(log, "w");
  assert_non_null(f);
  for (int i = 0; i < 50; i++)
    fprintf(f, "2026-11-23 10:%02d:%02d INFO worker started job %d in %d ms\n", i / 60, i % 60, i, 10 + i);
  fprintf(f, "2026-11-23 10:01:00 ERROR disk full on /var/lib/data\n");
  fclose(f);
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON *paths = cJSON_AddArrayToObject(p, "paths");
  cJSON_AddItemToArray(paths, cJSON_CreateString(log));
  int rc = ipc_client_call(c, "logs.ingest", p, NULL, NULL, 30000, &r, &e);
  if (rc) fail_msg("logs.ingest: %s", e.msg);
  assert_true(th_num(r, "records") == 51);
  cJSON_Delete(p);
  cJSON_Delete(r);
  p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "text", "disk full");
  assert_int_equal(ipc_client_call(c, "logs.query", p, NULL, NULL, 30000, &r, &e), 0);
  const cJSON *rows = cJSON_GetObjectItem(r, "rows");
  assert_int_equal(cJSON_GetArraySize(rows), 1);
  assert_true(th_num(cJSON_GetArrayItem(rows, 0), "line") == 51);
  cJSON_Delete(p);
  cJSON_Delete(r);
  p = cJSON_CreateObject();
  cJSON_AddNumberToObject(p, "nbins", 12);
  assert_int_equal(ipc_client_call(c, "logs.triage", p, NULL, NULL, 30000, &r, &e), 0);
  cJSON_Delete(p);
  const cJSON *items = cJSON_GetObjectItem(r, "items");
  assert_true(cJSON_GetArraySize(items) >= 1);
  /* the logs module's triage fields, as `kvasir logs triage --json` prints them */
  const cJSON *err_item = NULL, *it;
  cJSON_ArrayForEach(it, items) {
    const cJSON *lv = cJSON_GetObjectItem(it, "level");
    if (cJSON_IsString(lv) && !strcmp(lv->valuestring, "ERROR")) err_item = it;
  }
  assert_non_null(err_item);
  assert_string_equal(cJSON_GetObjectItem(err_item, "first_file")->valuestring, log);
  assert_true(th_num(err_item, "first_line") == 51);
  assert_true(th_num(err_item, "count") == 1);
  assert_true(th_num(err_item, "first_ts_ms") > 0 && th_num(err_item, "last_ts_ms") >= th_num(err_item, "first_ts_ms"));
  const cJSON *bins = cJSON_GetObjectItem(err_item, "bins");
  assert_int_equal(cJSON_GetArraySize(bins), 12);
  double total = 0;
  cJSON_ArrayForEach(it, bins) total += it->valuedouble;
  assert_true(total == 1);
  assert_null(cJSON_GetObjectItem(err_item, "sparkline")); /* the daemon's old names are gone */
  assert_null(cJSON_GetObjectItem(err_item, "file"));
  assert_true(th_num(r, "t1_ms") >= th_num(r, "t0_ms"));
  cJSON_Delete(r);
  /* relative paths (and stdin) are refused with the field named */
  p = cJSON_CreateObject();
  paths = cJSON_AddArrayToObject(p, "paths");
  cJSON_AddItemToArray(paths, cJSON_CreateString("app.log"));
  assert_int_equal(ipc_client_call(c, "logs.ingest", p, NULL, NULL, 30000, &r, &e), IPC_ERR_PARAMS);
  assert_non_null(strstr(e.msg, "paths[0]"));
  cJSON_Delete(p);
  ipc_client_close(c);
}

static void write_log(const char *path, const char *mode, int from, int n, int errors) {
  FILE *f = fopen(path, mode);
  assert_non_null(f);
  for (int i = from; i < from + n; i++)
    fprintf(f, "2026-11-24 11:%02d:%02d INFO worker started job %d in %d ms\n", i / 60, i % 60, i, 10 + i);
  for (int i = 0; i < errors; i++) fprintf(f, "2026-11-24 12:00:%02d ERROR disk full on /var/lib/data\n", i);
  fclose(f);
}

static cJSON *logs_call(ipc_client *c, const char *method, const char *path, const char *text) {
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "name", "reuse");
  if (path) cJSON_AddItemToArray(cJSON_AddArrayToObject(p, "paths"), cJSON_CreateString(path));
  if (text) cJSON_AddStringToObject(p, "text", text);
  kv_err e;
  int rc = ipc_client_call(c, method, p, NULL, NULL, 30000, &r, &e);
  if (rc) fail_msg("%s: %s", method, e.msg);
  cJSON_Delete(p);
  return r;
}

static double store_stat(ipc_client *c, const char *key) {
  cJSON *r = NULL;
  kv_err e;
  assert_int_equal(ipc_client_call(c, "cache.stats", NULL, NULL, NULL, 30000, &r, &e), 0);
  double v = th_num(cJSON_GetObjectItem(r, "log_stores"), key);
  cJSON_Delete(r);
  return v;
}

static int rows_of(cJSON *r) {
  int n = cJSON_GetArraySize(cJSON_GetObjectItem(r, "rows"));
  cJSON_Delete(r);
  return n;
}

/* Consecutive queries reuse one open store; an ingest in between adds to
 * what the reused handle finds; a store file replaced under the daemon is
 * reopened (the old handle would still find the removed file's records). */
static void test_log_store_reuse(void **st) {
  char log[256], log2[256];
  snprintf(log, sizeof log, "%s/reuse.log", H.root);
  snprintf(log2, sizeof log2, "%s/reuse2.log", H.root);
  write_log(log, "w", 0, 30, 1);
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  double opens0 = store_stat(c, "opens"), reuses0 = store_stat(c, "reuses");
  cJSON_Delete(logs_call(c, "logs.ingest", log, NULL));
  assert_int_equal(rows_of(logs_call(c, "logs.query", NULL, "disk full")), 1);
  assert_int_equal(rows_of(logs_call(c, "logs.query", NULL, "disk full")), 1);
  cJSON *t = logs_call(c, "logs.triage", NULL, NULL);
  assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(t, "items")) >= 1);
  cJSON_Delete(t);
  assert_true(store_stat(c, "opens") == opens0 + 1);
  assert_true(store_stat(c, "reuses") == reuses0 + 2);
  /* an appended ingest: the open handle sees the new records */
  write_log(log, "a", 30, 2000, 2);
  cJSON *in = logs_call(c, "logs.ingest", log, NULL);
  assert_true(th_num(in, "records") == 2002);
  cJSON_Delete(in);
  assert_int_equal(rows_of(logs_call(c, "logs.query", NULL, "disk full")), 3);
  assert_true(store_stat(c, "opens") == opens0 + 1);
  /* the store replaced by a new one holding other records */
  cJSON *q = logs_call(c, "logs.query", NULL, "disk full");
  const char *db = cJSON_GetObjectItem(q, "db")->valuestring;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "rm -f '%s' '%s-wal' '%s-shm'", db, db, db);
  assert_int_equal(system(cmd), 0);
  cJSON_Delete(q);
  write_log(log2, "w", 0, 10, 5);
  cJSON_Delete(logs_call(c, "logs.ingest", log2, NULL));
  assert_int_equal(rows_of(logs_call(c, "logs.query", NULL, "disk full")), 5);
  assert_true(store_stat(c, "opens") == opens0 + 2);
  ipc_client_close(c);
}

/* policy.explain (the policy module's decision for the repo), cache.stats,
 * and complete (no model here: an empty completion with a note). */
static void test_policy_cache_complete(void **st) {
  ipc_client *c;
  kv_err e;
  assert_int_equal(ipc_client_connect(&c, NULL, NULL, &e), 0);
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "repo", H.repo);
  cJSON_AddStringToObject(p, "question", "what does ipc_framer_next return");
  int rc = ipc_client_call(c, "policy.explain", p, NULL, NULL, 30000, &r, &e);
  if (rc) fail_msg("policy.explain: %s", e.msg);
  assert_non_null(cJSON_GetObjectItem(r, "tier"));
  assert_string_equal(cJSON_GetObjectItem(r, "project")->valuestring, H.repo);
  cJSON_Delete(r);
  cJSON_AddStringToObject(p, "kind", "no-such-kind");
  assert_int_equal(ipc_client_call(c, "policy.explain", p, NULL, NULL, 30000, &r, &e), IPC_ERR_PARAMS);
  cJSON_Delete(p);
  assert_int_equal(ipc_client_call(c, "cache.stats", NULL, NULL, NULL, 30000, &r, &e), 0);
  assert_true(th_num(r, "asks") >= 1); /* test_save_triggers_sync asked once */
  cJSON_Delete(r);
  p = cJSON_CreateObject();
  cJSON_AddStringToObject(p, "text", "int main(void) {\n  return\n}\n");
  cJSON_AddNumberToObject(p, "line", 2);
  cJSON_AddNumberToObject(p, "col", 8);
  assert_int_equal(ipc_client_call(c, "complete", p, NULL, NULL, 30000, &r, &e), 0);
  assert_string_equal(cJSON_GetObjectItem(r, "text")->valuestring, "");
  assert_non_null(cJSON_GetObjectItem(r, "note"));
  cJSON_Delete(r);
  cJSON_DeleteItemFromObject(p, "line");
  assert_int_equal(ipc_client_call(c, "complete", p, NULL, NULL, 30000, &r, &e), IPC_ERR_PARAMS);
  cJSON_Delete(p);
  ipc_client_close(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_save_triggers_sync),
      cmocka_unit_test(test_commit_triggers_sync),
      cmocka_unit_test(test_logs_through_daemon),
      cmocka_unit_test(test_log_store_reuse),
      cmocka_unit_test(test_policy_cache_complete),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
