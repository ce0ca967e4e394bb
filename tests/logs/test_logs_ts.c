/* test_logs_ts.c — log_ts_parse against golden epoch values computed by
 * Python's datetime (tests/reference/logs/make_ts_golden.py), and levels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs/logs.h"

static void test_golden(void **st) {
  const char *path = getenv("KVASIR_TS_GOLDEN");
  assert_non_null(path);
  FILE *f = fopen(path, "r");
  if (!f) fail_msg("cannot open golden file %s", path);
  char line[512];
  int n = 0, neg = 0;
  while (fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *in = line, *t1 = strchr(in, '\t');
    assert_non_null(t1);
    *t1 = 0;
    char *hint = t1 + 1, *t2 = strchr(hint, '\t');
    assert_non_null(t2);
    *t2 = 0;
    char *exp = t2 + 1, *t3 = strchr(exp, '\t');
    assert_non_null(t3);
    *t3 = 0;
    size_t consumed = strtoul(t3 + 1, NULL, 10);
    int64_t ms = 0;
    size_t got = log_ts_parse(in, strlen(in), atoi(hint), &ms);
    if (!strcmp(exp, "none")) {
      if (got) fail_msg("'%s' should not parse, got %zu bytes -> %lld", in, got, (long long)ms);
      neg++;
    } else {
      if (got != consumed) fail_msg("'%s': consumed %zu, want %zu", in, got, consumed);
      if (ms != strtoll(exp, NULL, 10)) fail_msg("'%s': %lld ms, want %s", in, (long long)ms, exp);
    }
    n++;
  }
  fclose(f);
  assert_true(n >= 20);
  assert_true(neg >= 5);
}

static void test_levels(void **st) {
  assert_int_equal(log_level_word("WARNING", 7), LOG_LVL_WARN);
  assert_int_equal(log_level_word("[error]", 7), LOG_LVL_ERROR);
  assert_int_equal(log_level_word("Info", 4), LOG_LVL_INFO);
  assert_int_equal(log_level_word("E", 1), LOG_LVL_ERROR);
  assert_int_equal(log_level_word("eRRor", 5), LOG_LVL_NONE);
  assert_int_equal(log_level_word("information", 11), LOG_LVL_INFO);
  assert_int_equal(log_level_word("FATAL:", 6), LOG_LVL_FATAL);
  assert_int_equal(log_level_word("node", 4), LOG_LVL_NONE);
}

static void test_header_fields(void **st) {
  const char *L[] = {
      "2015-10-18 18:01:47,978 INFO [main] org.apache.App: Created app 1",
      "2015-10-18 18:01:48,001 WARN [IPC Server handler 5 on 62270] org.apache.Ipc: slow 3",
      "\tat org.apache.App.main(App.java:12)",
      "2015-10-18 18:01:49,500 ERROR [main] org.apache.App: failed 7",
  };
  size_t lens[4];
  for (int i = 0; i < 4; i++) lens[i] = strlen(L[i]);
  log_fmt *f;
  kv_err err;
  assert_int_equal(log_fmt_learn(&f, L, lens, 4, &err), 0);
  log_line ln;
  log_line_parse(f, L[1], lens[1], 2000, &ln);
  assert_true(ln.has_header);
  assert_int_equal(ln.level, LOG_LVL_WARN);
  assert_int_equal(ln.ts_ms, 1445191308001LL);
  assert_int_equal(ln.comp_len, strlen("org.apache.Ipc"));
  assert_memory_equal(ln.comp, "org.apache.Ipc", ln.comp_len);
  assert_int_equal(ln.content_len, strlen("slow 3"));
  log_line_parse(f, L[2], lens[2], 2000, &ln);
  assert_false(ln.has_header);
  assert_true(log_is_continuation(L[2], lens[2]));
  assert_true(log_is_continuation("Caused by: java.io.IOException: x", 33));
  assert_true(log_is_continuation("java.lang.IllegalStateException: boom", 37));
  assert_false(log_is_continuation("Starting server", 15));
  /* JSON lines use their own fields */
  const char *j = "{\"ts\":\"2024-01-02T03:04:05Z\",\"level\":\"error\",\"msg\":\"disk full on /dev/sda1\"}";
  log_line_parse(f, j, strlen(j), 2000, &ln);
  assert_int_equal(ln.level, LOG_LVL_ERROR);
  assert_int_equal(ln.ts_ms, 1704164645000LL);
  assert_int_equal(ln.content_len, strlen("disk full on /dev/sda1"));
  log_fmt_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden), cmocka_unit_test(test_levels),
                                     cmocka_unit_test(test_header_fields)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
