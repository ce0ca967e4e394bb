/* test_logs_mixed.c — several header layouts mixed line by line in one file
 * (programs writing to one log, a format change mid-file): grouping must not
 * depend on which layout a line came in. 600 generated lines of six message
 * shapes (the truth: the shape's index) under five layouts that alternate
 * per line — syslog with a priority, ISO 8601 + level + "comp:", log4j,
 * "[date time] [level] prog[pid]:", JSON lines (whose messages escape their
 * quotes). Checks: every line's content is exactly its message (JSON: as
 * escaped), its time where the layout has a parseable one, and the grouping
 * accuracy (computed here, LogHub's definition) is 1.0. With the mixed-layout
 * rule off, the lines of all but one layout keep their headers in their
 * content (fewer than 60% exact), so the test can fail; the miner happens to
 * group these simple messages even then (on the LogHub messages under five
 * alternating layouts it does not: GA 0.022 vs 0.968, docs/logs.md). Needs
 * nothing outside the repo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs/logs.h"
#include "logs_fixture.h"

#define NL 600
#define NS 6
#define NLAY 5
#define T0 1456819200000LL /* 2016-03-01 08:00:00 UTC */

static const char *MSG[NS] = {
    "Accepted password for root from 10.1.2.%d port %d ssh2",
    "session opened for user root by (uid=%d) after %d ms",
    "connection %d closed, %d bytes sent",
    "GET \"/v2/servers/%d/detail\" status: 200 len: %d",
    "worker %d started in %d ms",
    "disk quota exceeded on volume vol%d (%d blocks)",
};

static char text[NL][640], msg[NL][160];
static int truth[NL];

static void gen(void) {
  static const char *MON[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  for (int i = 0; i < NL; i++) {
    int sh = (i * 7 + i / 5) % NS; /* shapes and layouts not in step */
    truth[i] = sh;
    snprintf(msg[i], sizeof msg[i], MSG[sh], 3 + (i * 13) % 250, 10 + (i * 31) % 9000);
    int64_t ms = T0 + i * 1000LL + (i * 37) % 1000;
    int s = (int)((ms / 1000) % 60), mi = (int)((ms / 60000) % 60), h = (int)((ms / 3600000) % 24), f = (int)(ms % 1000);
    char esc[512];
    size_t k = 0;
    for (const char *p = msg[i]; *p && k + 3 < sizeof esc; p++) {
      if (*p == '"' || *p == '\\') esc[k++] = '\\';
      esc[k++] = *p;
    }
    esc[k] = 0;
    switch (i % NLAY) {
    case 0: snprintf(text[i], sizeof text[i], "<14>%s  1 %02d:%02d:%02d host%d prog%d[%d]: %.150s", MON[2], h, mi, s, i % 3, i % 4, 100 + i, msg[i]); break;
    case 1: snprintf(text[i], sizeof text[i], "2016-03-01T%02d:%02d:%02d.%03dZ INFO app.mod%d: %.150s", h, mi, s, f, i % 3, msg[i]); break;
    case 2: snprintf(text[i], sizeof text[i], "2016-03-01 %02d:%02d:%02d,%03d WARN  [pool-%d] org.x.Y%d: %.150s", h, mi, s, f, i % 3, i % 4, msg[i]); break;
    case 3: snprintf(text[i], sizeof text[i], "[2016-03-01 %02d:%02d:%02d.%03d] [error] daemon%d[%d]: %.150s", h, mi, s, f, i % 2, 10 + i, msg[i]); break;
    case 4: snprintf(text[i], sizeof text[i], "{\"ts\":\"2016-03-01T%02d:%02d:%02d.%03dZ\",\"level\":\"info\",\"msg\":\"%.300s\"}", h, mi, s, f, esc); break;
    }
  }
}

static double parse_ga(log_rules off) {
  static char buf[NL * 520];
  size_t n = 0;
  for (int i = 0; i < NL; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "%.639s\n", text[i]);
  return fx_parse_ga(buf, n, NL, off, truth);
}

/* Lines whose content is exactly the message, layouts learnt with rules off. */
static int exact_contents(log_rules off, int verbose) {
  gen();
  const char *lines[NL];
  size_t lens[NL];
  for (int i = 0; i < NL; i++) lines[i] = text[i], lens[i] = strlen(text[i]);
  log_fmt *f;
  kv_err err = {0};
  assert_int_equal(log_fmt_learn_rules(&f, lines, lens, NL, off, &err), 0);
  char d[128];
  log_fmt_describe(f, d, sizeof d);
  if (verbose) printf("  layouts learnt: %s\n", d);
  int bad = 0;
  for (int i = 0; i < NL; i++) {
    log_line ln;
    log_line_parse(f, lines[i], lens[i], 2016, &ln);
    char want[400];
    if (i % NLAY == 4) {
      size_t k = 0;
      for (const char *p = msg[i]; *p; p++) {
        if (*p == '"' || *p == '\\') want[k++] = '\\';
        want[k++] = *p;
      }
      want[k] = 0;
    } else snprintf(want, sizeof want, "%.159s", msg[i]);
    int ok = ln.has_header && ln.content_len == strlen(want) && !memcmp(ln.content, want, ln.content_len);
    int64_t ms = T0 + i * 1000LL + (i * 37) % 1000;
    if (i % NLAY != 0 && ln.ts_ms != ms) ok = 0;
    if (!ok && bad++ < 5 && verbose)
      printf("  line %d (layout %d): content '%.*s' ts %lld, want '%s' %lld\n", i, i % NLAY, (int)ln.content_len,
             ln.content, (long long)ln.ts_ms, want, (long long)ms);
  }
  log_fmt_free(f);
  return NL - bad;
}

static void test_mixed_fields(void **st) {
  (void)st;
  assert_int_equal(exact_contents(0, 1), NL);
  int off = exact_contents(LOG_R_H_MIXED, 0);
  printf("  exact contents: %d/%d (mixed-layout rule off: %d)\n", NL, NL, off);
  assert_true(off < NL * 6 / 10);
}

static void test_mixed_grouping(void **st) {
  (void)st;
  gen();
  double on = parse_ga(0), off = parse_ga(LOG_R_H_MIXED);
  printf("  grouping accuracy, 5 layouts alternating: %.3f (mixed-layout rule off: %.3f)\n", on, off);
  assert_true(on >= 0.999);
}

/* Two layouts, messages that start with a "word:" (h_best_fit): a log4j line
 * `T LEVEL [thread] class: msg` also fits the ISO layout `T LEVEL comp:`
 * loosely (its bracket group where the component is wanted is refused, but
 * an ISO line `T LEVEL comp: ARPT: msg` fits log4j's `T LEVEL [thread]
 * class:` with "comp:" read as the thread and the message's "ARPT:" as the
 * class). Every line must take the layout it fits exactly; with the rule off
 * (first layout that fits wins) the ISO lines lose their first word. The
 * log4j lines are the larger group, so their layout is first in the chain. */
static int two_layout_exact(log_rules off) {
  enum { N2 = 400 };
  static const char *M2[4] = {"ARPT: %d: wl0: MDNS: IPV6 Addr: fe80::%x", "Warning: Unrecognized attribute %d.",
                              "status: %d retries left", "worker %d started"};
  static char l2[N2][256], m2[N2][128];
  const char *lines[N2];
  size_t lens[N2];
  for (int i = 0; i < N2; i++) {
    snprintf(m2[i], sizeof m2[i], M2[(i / 2) % 4], 10 + i, 4096 + i);
    int s = i % 60, mi = (i / 60) % 60, f = (i * 37) % 1000;
    if (i % 5 < 3) /* log4j the larger group: its layout is learnt first */
      snprintf(l2[i], sizeof l2[i], "2016-03-01 08:%02d:%02d,%03d INFO  [worker-%d] org.example.Mod%d: %s", mi, s, f,
               i % 8, i % 3, m2[i]);
    else snprintf(l2[i], sizeof l2[i], "2016-03-01T08:%02d:%02d.%03d+01:00 INFO kernel%d: %s", mi, s, f, i % 3, m2[i]);
    lines[i] = l2[i], lens[i] = strlen(l2[i]);
  }
  log_fmt *fm;
  kv_err err = {0};
  assert_int_equal(log_fmt_learn_rules(&fm, lines, lens, N2, off, &err), 0);
  int good = 0;
  for (int i = 0; i < N2; i++) {
    log_line ln;
    log_line_parse(fm, lines[i], lens[i], 2016, &ln);
    good += ln.has_header && ln.content_len == strlen(m2[i]) && !memcmp(ln.content, m2[i], ln.content_len);
  }
  log_fmt_free(fm);
  return good;
}

static void test_mixed_best_fit(void **st) {
  (void)st;
  int on = two_layout_exact(0), off = two_layout_exact(LOG_R_H_BEST_FIT);
  printf("  ISO + log4j, messages starting with 'word:': %d/400 exact (h_best_fit off: %d)\n", on, off);
  assert_int_equal(on, 400);
  assert_true(off <= 340); /* measured 320: the ISO lines whose message starts with "word:" */
}

/* Go's log package (`yyyy/mm/dd HH:MM:SS msg`) and klog (`I0301 HH:MM:SS.us
 * pid file.go:n] msg`) alternating, most messages an access line
 * (`10.0.0.1 "GET /v2/n/detail HTTP/1.1" status: 200 len: n`), the others
 * starting with an identifier or a word (h_msg_shape). The Go lines' group must not
 * learn a header that runs through the quoted request to the message's
 * `status:` (70% of the group would pass it for a component), nor keep the
 * messages' first identifier as a trailing column (most lines of the group
 * have one, a header field all of them). With the rule off, the Go lines
 * lose their first words. */
static int go_klog_exact(log_rules off) {
  enum { N3 = 600 };
  static char l3[N3][256], m3[N3][160];
  const char *lines[N3];
  size_t lens[N3];
  for (int i = 0; i < N3; i++) {
    int sh = (i / 2) % 20; /* 75% access lines, 15% starting with an identifier, 10% with a word */
    if (sh < 15)
      snprintf(m3[i], sizeof m3[i], "10.0.%d.%d \"%s /v2/%d/servers/detail HTTP/1.1\" status: %d len: %d", i % 3, i % 200,
               sh >= 12 ? "POST" : "GET", 1000 + i, sh == 11 ? 404 : 200, 100 + i * 7);
    else if (sh < 18) snprintf(m3[i], sizeof m3[i], "printDisplayState%d wtoken=%d allDrawn=false", sh, i);
    else snprintf(m3[i], sizeof m3[i], "worker %d finished %d jobs", i % 7, i);
    int s = i % 60, mi = (i / 60) % 60;
    if (i % 2) snprintf(l3[i], sizeof l3[i], "2016/03/01 08:%02d:%02d %.159s", mi, s, m3[i]);
    else snprintf(l3[i], sizeof l3[i], "I0301 08:%02d:%02d.%06d %7d srv%d.go:%d] %.159s", mi, s, i * 37 % 1000000, 2000 + i % 3, i % 4, 10 + i % 80, m3[i]);
    lines[i] = l3[i], lens[i] = strlen(l3[i]);
  }
  log_fmt *fm;
  kv_err err = {0};
  assert_int_equal(log_fmt_learn_rules(&fm, lines, lens, N3, off, &err), 0);
  int good = 0;
  for (int i = 0; i < N3; i++) {
    log_line ln;
    log_line_parse(fm, lines[i], lens[i], 2016, &ln);
    good += ln.has_header && ln.content_len == strlen(m3[i]) && !memcmp(ln.content, m3[i], ln.content_len);
  }
  log_fmt_free(fm);
  return good;
}

static void test_mixed_go_klog(void **st) {
  (void)st;
  int on = go_klog_exact(0), off = go_klog_exact(LOG_R_H_MSG_SHAPE);
  printf("  Go + klog, access-line messages: %d/600 exact (h_msg_shape off: %d)\n", on, off);
  assert_int_equal(on, 600);
  assert_true(off < 500);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_mixed_fields), cmocka_unit_test(test_mixed_grouping),
                                     cmocka_unit_test(test_mixed_best_fit), cmocka_unit_test(test_mixed_go_klog)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
