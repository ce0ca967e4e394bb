/* test_logs_accuracy.c — grouping accuracy on the twelve LogHub 2k samples
 * with no per-system configuration. Holds the bar: average GA >= 0.95 and no
 * system below 0.85 (measured 0.961 / 0.870 when written; 0.968 / 0.925 since
 * signed integers are number columns, 2026-12-03). */
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

static const char *SYS[] = {"Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop",
                            "Linux", "Mac", "OpenStack", "Spark", "Windows", "Zookeeper"};

static void test_loghub_ga(void **st) {
  const char *dir = fx_loghub();
  assert_non_null(dir);
  double sum = 0, min = 1;
  for (int i = 0; i < 12; i++) {
    char lp[4096], cp[4096];
    snprintf(lp, sizeof lp, "%s/%s/%s_2k.log", dir, SYS[i], SYS[i]);
    snprintf(cp, sizeof cp, "%s/%s/%s_2k.log_structured.csv", dir, SYS[i], SYS[i]);
    log_eval ev;
    kv_err err = {0};
    if (log_eval_loghub(lp, cp, &ev, &err)) fail_msg("%s: %s", SYS[i], err.msg);
    assert_int_equal(ev.lines, 2000);
    printf("  %-10s GA %.3f PA %.3f\n", SYS[i], ev.ga, ev.pa);
    sum += ev.ga;
    if (ev.ga < min) min = ev.ga;
  }
  printf("  average GA %.3f, min %.3f\n", sum / 12, min);
  assert_true(sum / 12 >= 0.95);
  assert_true(min >= 0.85);
}

static void test_eval_rejects_bad_csv(void **st) {
  char lp[] = "/tmp/kvasir-logs-acc-XXXXXX";
  int fd = mkstemp(lp);
  assert_true(fd >= 0);
  FILE *f = fdopen(fd, "w");
  fprintf(f, "a 1\nb 2\n");
  fclose(f);
  char cp[] = "/tmp/kvasir-logs-csv-XXXXXX";
  fd = mkstemp(cp);
  f = fdopen(fd, "w");
  fprintf(f, "LineId,Content\n1,a\n2,b\n");
  fclose(f);
  log_eval ev;
  kv_err err = {0};
  assert_int_equal(log_eval_loghub(lp, cp, &ev, &err), KV_EFORMAT);
  assert_non_null(strstr(err.msg, "EventId"));
  unlink(lp);
  unlink(cp);
}

int main(int argc, char **argv) {
  int g = fx_groups(argc, argv), rc = 0;
  if (!g) return 2;
  const struct CMUnitTest fixtures[] = {cmocka_unit_test(test_eval_rejects_bad_csv)};
  const struct CMUnitTest loghub[] = {cmocka_unit_test(test_loghub_ga)};
  if (g & 1) rc |= cmocka_run_group_tests_name("fixtures", fixtures, NULL, NULL);
  if (g & 2) {
    if (!fx_loghub_or_say(argv[0])) return rc ? rc : (g == 2 ? FX_SKIP : 0);
    rc |= cmocka_run_group_tests_name("loghub", loghub, NULL, NULL);
  }
  return rc;
}
