/* test_logs_layouts.c — header learning on layouts that none of the LogHub
 * samples has (the header-robustness set of bench/logparse/header_layouts.py
 * in miniature, on generated lines): for each layout, 60 lines of five
 * message shapes under that header; every line's content must be exactly
 * the message, its level the one written, and where the layout has a time,
 * that time. Rules tested: the dash anchor (RFC 5424's "- -", "comp - msg"),
 * '|' and tab separated fields (a message may hold the delimiter), logfmt
 * (quoted msg with escapes), a "(logger)" trailer after the message
 * (Kafka's log4j pattern; h_trailer), plus layouts handled before (log4j, Python
 * logging, syslog, JSON lines, epoch ms). Needs nothing outside the repo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logs/logs.h"

#define NL 60
#define T0 1456819200000LL /* 2016-03-01 08:00:00 UTC */

static const char *MSG[5] = {
    "Accepted password for root from 10.1.2.%d port 22 ssh2",
    "connection %d closed | bytes=512 | reason=\"idle\"",
    "GET /v2/servers/%d/detail HTTP/1.1 status: 200",
    "Thermal pressure state: %d Memory pressure state: 0",
    "worker-%d - - started in 12 ms",
};
static const char *COMP[5] = {"kernel", "cron", "sshd(pam_unix)", "ftpd", "su"};
static const char *LV[4] = {"INFO", "WARN", "ERROR", "DEBUG"};
static const int LVN[4] = {LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR, LOG_LVL_DEBUG};

enum { L_RFC5424, L_ISO_DASH, L_LOGFMT, L_PIPE, L_TAB, L_LOG4J, L_PYTHON, L_JSON, L_EPOCH_MS, L_KAFKA, L_N };
static const char *NAME[L_N] = {"rfc5424", "iso-dash", "logfmt", "pipe", "tab", "log4j", "python", "json", "epoch-ms", "kafka"};

static void line_of(int lay, int i, char *out, size_t cap, char *msg, size_t mcap) {
  snprintf(msg, mcap, MSG[i % 5], 7 * i + 1);
  int64_t ms = T0 + i * 1000LL + (i * 37) % 1000;
  int s = (int)((ms / 1000) % 60), mi = (int)((ms / 60000) % 60), h = (int)((ms / 3600000) % 24), f = (int)(ms % 1000);
  char iso[40];
  snprintf(iso, sizeof iso, "2016-03-01 %02d:%02d:%02d.%03d", h, mi, s, f);
  const char *lv = LV[i % 4];
  char esc[512];
  size_t k = 0;
  for (const char *p = msg; *p && k + 3 < sizeof esc; p++) {
    if (*p == '"' || *p == '\\') esc[k++] = '\\';
    esc[k++] = *p;
  }
  esc[k] = 0;
  switch (lay) {
  case L_RFC5424:
    snprintf(out, cap, "<14>1 2016-03-01T%02d:%02d:%02d.%03dZ host%d app-%d %d - - %s", h, mi, s, f, i % 3, i % 4, 100 + i,
             msg);
    break;
  case L_ISO_DASH: /* plain-word components: no header-like shape to keep them by */
    snprintf(out, cap, "%s %-5s %s - %s", iso, lv, COMP[i % 5], msg);
    break;
  case L_LOGFMT: snprintf(out, cap, "ts=2016-03-01T%02d:%02d:%02d.%03dZ level=%s logger=a.b msg=\"%s\"", h, mi, s, f, lv, esc); break;
  case L_PIPE: snprintf(out, cap, "%s|%s|comp%d|%s", iso, lv, i % 5, msg); break;
  case L_TAB: snprintf(out, cap, "%s\t%s\tcomp %d\t%s", iso, lv, i % 5, msg); break;
  case L_LOG4J: snprintf(out, cap, "%s %-5s [pool-%d] org.x.Y%d: %s", iso, lv, i % 3, i % 4, msg); break;
  case L_PYTHON: snprintf(out, cap, "%s - app.mod%d - %s - %s", iso, i % 3, lv, msg); break;
  case L_JSON: snprintf(out, cap, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}", iso, lv, esc); break;
  case L_EPOCH_MS: snprintf(out, cap, "%lld app[%d] %s %s", (long long)ms, 10 + i % 9, lv, msg); break;
  /* log4j "[%d] %p %m (%c)": the logger trails the message (brackets nest) */
  case L_KAFKA: snprintf(out, cap, "[%s] %s %s (kafka.%s)", iso, lv, msg, COMP[i % 5]); break;
  }
}

static void test_layouts(void **st) {
  (void)st;
  static char buf[L_N][NL][640], msg[NL][512];
  for (int lay = 0; lay < L_N; lay++) {
    const char *lines[NL];
    size_t lens[NL];
    for (int i = 0; i < NL; i++) {
      line_of(lay, i, buf[lay][i], sizeof buf[lay][i], msg[i], sizeof msg[i]);
      lines[i] = buf[lay][i], lens[i] = strlen(buf[lay][i]);
    }
    log_fmt *f;
    kv_err err = {0};
    assert_int_equal(log_fmt_learn(&f, lines, lens, NL, &err), 0);
    char d[64];
    log_fmt_describe(f, d, sizeof d);
    int ok = 1;
    for (int i = 0; i < NL; i++) {
      log_line ln;
      log_line_parse(f, lines[i], lens[i], 2016, &ln);
      /* JSON keeps the message's escapes as written */
      const char *want = msg[i];
      char esc[512];
      if (lay == L_LOGFMT || lay == L_JSON) {
        size_t k = 0;
        for (const char *p = msg[i]; *p; p++) {
          if (*p == '"' || *p == '\\') esc[k++] = '\\';
          esc[k++] = *p;
        }
        esc[k] = 0;
        want = esc;
      }
      if (ln.content_len != strlen(want) || memcmp(ln.content, want, ln.content_len)) {
        printf("  %s [%s] line %d: content '%.*s', want '%s'\n", NAME[lay], d, i, (int)ln.content_len, ln.content, want);
        ok = 0;
      }
      if (lay != L_RFC5424 && ln.level != LVN[i % 4]) {
        printf("  %s line %d: level %d, want %d\n", NAME[lay], i, ln.level, LVN[i % 4]);
        ok = 0;
      }
      int64_t ms = T0 + i * 1000LL + (i * 37) % 1000;
      if (ln.ts_ms != ms) {
        printf("  %s line %d: ts %lld, want %lld\n", NAME[lay], i, (long long)ln.ts_ms, (long long)ms);
        ok = 0;
      }
    }
    printf("  %-9s layout %-24s %s\n", NAME[lay], d, ok ? "ok" : "FAILED");
    log_fmt_free(f);
    assert_true(ok);
  }
}

/* The same layout rules switched off: the dash anchor, the delimiters,
 * logfmt and the trailer are what make those layouts parse (so the test
 * above can fail). */
static void test_rules_matter(void **st) {
  (void)st;
  static char buf[NL][640], msg[NL][512];
  const int lay[4] = {L_ISO_DASH, L_PIPE, L_LOGFMT, L_KAFKA};
  const log_rules rule[4] = {LOG_R_H_DASH_ANCHOR, LOG_R_H_DELIM, LOG_R_H_LOGFMT, LOG_R_H_TRAILER};
  for (int c = 0; c < 4; c++) {
    const char *lines[NL];
    size_t lens[NL];
    for (int i = 0; i < NL; i++) {
      line_of(lay[c], i, buf[i], sizeof buf[i], msg[i], sizeof msg[i]);
      lines[i] = buf[i], lens[i] = strlen(buf[i]);
    }
    log_fmt *f;
    kv_err err = {0};
    assert_int_equal(log_fmt_learn_rules(&f, lines, lens, NL, rule[c], &err), 0);
    int exact = 0;
    for (int i = 0; i < NL; i++) {
      log_line ln;
      log_line_parse(f, lines[i], lens[i], 2016, &ln);
      exact += ln.content_len == strlen(msg[i]) && !memcmp(ln.content, msg[i], ln.content_len);
    }
    log_fmt_free(f);
    assert_true(exact < NL / 2);
  }
}

/* Timestamps in shapes the parser does not know anchor the header by their
 * shape (h_time_shape): time of day only before '|' fields, klog's
 * "I0301 08:00:00.123456", a compact date glued to the time. Content exact;
 * with the rule off, the first two keep their header in their content. */
static void test_time_shapes(void **st) {
  (void)st;
  static char buf[NL][640], msg[NL][512];
  for (int c = 0; c < 3; c++) {
    const char *lines[NL];
    size_t lens[NL];
    for (int i = 0; i < NL; i++) {
      snprintf(msg[i], sizeof msg[i], MSG[i % 5], 7 * i + 1);
      int s = i % 60, mi = i / 60, f = (i * 37) % 1000;
      if (c == 0) snprintf(buf[i], sizeof buf[i], "08:%02d:%02d:%03d|comp%d|%d|%s", mi, s, f, i % 5, 300 + i, msg[i]);
      else if (c == 1) snprintf(buf[i], sizeof buf[i], "%c0301 08:%02d:%02d.%06d %7d file%d.go:%d] %s", "IWE"[i % 3], mi, s,
                                f * 1000, 300 + i, i % 4, 10 + i, msg[i]);
      else snprintf(buf[i], sizeof buf[i], "20160301-08:%02d:%02d:%03d %s app%d: %s", mi, s, f, LV[i % 4], i % 3, msg[i]);
      lines[i] = buf[i], lens[i] = strlen(buf[i]);
    }
    int exact[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
      log_fmt *fm;
      kv_err err = {0};
      assert_int_equal(log_fmt_learn_rules(&fm, lines, lens, NL, r ? LOG_R_H_TIME_SHAPE : 0, &err), 0);
      for (int i = 0; i < NL; i++) {
        log_line ln;
        log_line_parse(fm, lines[i], lens[i], 2016, &ln);
        int ok = ln.content_len == strlen(msg[i]) && !memcmp(ln.content, msg[i], ln.content_len);
        if (!ok && !r && exact[0] == i) printf("  shape %d line %d: content '%.*s'\n", c, i, (int)ln.content_len, ln.content);
        exact[r] += ok;
      }
      log_fmt_free(fm);
    }
    printf("  time shape %d: %d/%d exact (rule off: %d)\n", c, exact[0], NL, exact[1]);
    assert_int_equal(exact[0], NL);
    if (c < 2) assert_true(exact[1] < NL / 2); /* the third has level and "comp:" anchors besides */
  }
}

/* Rule names round-trip through log_rules_parse; "all" is every bit; an
 * unknown name is refused by name. */
static void test_rule_names(void **st) {
  (void)st;
  log_rules m, all = 0;
  kv_err err = {0};
  for (int i = 0; i < LOG_R_COUNT; i++) {
    const char *nm = log_rule_name(i);
    assert_non_null(nm);
    assert_int_equal(log_rules_parse(nm, &m, &err), 0);
    assert_int_equal(m, (log_rules)1 << i);
    all |= (log_rules)1 << i;
  }
  assert_null(log_rule_name(LOG_R_COUNT));
  assert_int_equal(LOG_R_M_UNIT_VAR, (log_rules)1 << (LOG_R_COUNT - 1)); /* the enum and the name table end together */
  assert_int_equal(log_rules_parse("all", &m, &err), 0);
  assert_int_equal(m, all);
  assert_int_equal(log_rules_parse("m_keyval,h_delim", &m, &err), 0);
  assert_int_equal(m, LOG_R_M_KEYVAL | LOG_R_H_DELIM);
  assert_int_equal(log_rules_parse("m_keyval,bogus", &m, &err), KV_EINVAL);
  assert_non_null(strstr(err.msg, "bogus"));
}

/* A program name without ':' after the level (h_fanout): "20160301-08:00:00:000
 * ERROR sshd(pam_unix) msg", the names plain words as often as not. Each
 * name is followed by every message shape (many second columns per value),
 * where a message's first word is followed by one: the column is a field.
 * Contents exact with the rule, and the same lines under `T LEVEL msg` (no
 * program column) keep their first word (no false field). */
static int fan_exact(int with_prog, log_rules off) {
  enum { NF = 200 };
  static char l[NF][320], m[NF][200];
  const char *lines[NF];
  size_t lens[NF];
  for (int i = 0; i < NF; i++) {
    snprintf(m[i], sizeof m[i], MSG[i % 5], 7 * i + 1);
    if (with_prog)
      snprintf(l[i], sizeof l[i], "20160301-08:%02d:%02d:%03d %s %s %.199s", (i / 60) % 60, i % 60, (i * 37) % 1000,
               LV[i % 4], COMP[(i / 5) % 5], m[i]);
    else snprintf(l[i], sizeof l[i], "20160301-08:%02d:%02d:%03d %s %.199s", (i / 60) % 60, i % 60, (i * 37) % 1000, LV[i % 4], m[i]);
    lines[i] = l[i], lens[i] = strlen(l[i]);
  }
  log_fmt *f;
  kv_err err = {0};
  assert_int_equal(log_fmt_learn_rules(&f, lines, lens, NF, off, &err), 0);
  int exact = 0;
  for (int i = 0; i < NF; i++) {
    log_line ln;
    log_line_parse(f, lines[i], lens[i], 2016, &ln);
    exact += ln.content_len == strlen(m[i]) && !memcmp(ln.content, m[i], ln.content_len);
    if (with_prog && !off && ln.content_len == strlen(m[i]))
      assert_true(ln.comp_len == strlen(COMP[(i / 5) % 5]) && !memcmp(ln.comp, COMP[(i / 5) % 5], ln.comp_len));
  }
  log_fmt_free(f);
  return exact;
}

static void test_fanout(void **st) {
  (void)st;
  int on = fan_exact(1, 0), off = fan_exact(1, LOG_R_H_FANOUT), plain = fan_exact(0, 0);
  printf("  program column after the level: %d/200 exact (h_fanout off: %d); without one: %d/200\n", on, off, plain);
  assert_int_equal(on, 200);
  assert_true(off < 100);
  assert_int_equal(plain, 200);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_layouts), cmocka_unit_test(test_rules_matter),
                                     cmocka_unit_test(test_time_shapes), cmocka_unit_test(test_rule_names),
                                     cmocka_unit_test(test_fanout)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
