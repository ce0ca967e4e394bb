/* test_logs_generalize.c — mining rules meant to hold on any system, on
 * generated lines (nothing from LogHub). The truth of each line is the index
 * of the message shape it was made from; grouping accuracy is computed here
 * (LogHub's definition: a line is right when the set of lines grouped with it
 * is exactly its shape's lines).
 *
 * m_time_piece: a weekday or month name that a day, a year, a clock or
 * another such name stands next to is part of a time, so a variable. Shapes
 * with dates the timestamp parser cannot read whole ("on Fri Jul 8", "opens
 * Saturday 03:00") must group with every rule on; with the rule off their
 * few weekday names become constants (the frequency rules) and they split;
 * a full ctime date inside a message groups with the whole-timestamp rule
 * (m_ts_in_msg) off too; a calendar word between plain words ("driver Sun
 * RPC") stays a word, so that shape stays two events.
 *
 * m_unit_var: a unit after a number belongs to the value (below). Needs
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

#define NL 700
static char text[NL][256];
static int truth[NL];

static const char *WD[7] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
static const char *WDF[3] = {"Friday", "Saturday", "Sunday"};
static const char *MO[3] = {"Jun", "Jul", "Aug"};

/* Shapes: 0 ctime date at the end, 1 weekday + month + day, 2 full weekday +
 * HH:MM, 3 and 4 "driver Sun RPC" / "driver Intel RPC" (two events), 5 a
 * plain message. Weekdays cycle through five values in shape 1 (a closed
 * vocabulary to the frequency rule), three in shape 2. */
static void gen(void) {
  for (int i = 0; i < NL; i++) {
    int sh = (i * 5 + i / 7) % 6, d = 1 + (i * 11) % 28;
    truth[i] = sh;
    char msg[200];
    switch (sh) {
    case 0:
      snprintf(msg, sizeof msg, "connection from 10.0.%d.%d at %s %s %2d %02d:%02d:%02d 2005", i % 7, i % 200,
               WD[(i / 6) % 7], MO[(i / 3) % 3], d, (i * 7) % 24, (i * 13) % 60, (i * 17) % 60);
      break;
    case 1: snprintf(msg, sizeof msg, "next rotation of vol%d on %s %s %d", i % 9, WD[1 + (i / 6) % 5], MO[(i / 5) % 3], d); break;
    case 2: snprintf(msg, sizeof msg, "maintenance window opens %s %02d:%02d", WDF[(i / 6) % 3], (i * 3) % 24, (i * 7) % 60); break;
    case 3: snprintf(msg, sizeof msg, "loaded driver Sun RPC version %d", 1 + i % 5); break;
    case 4: snprintf(msg, sizeof msg, "loaded driver Intel RPC version %d", 1 + i % 5); break;
    default: snprintf(msg, sizeof msg, "worker %d finished %d jobs", i % 13, i); break;
    }
    snprintf(text[i], sizeof text[i], "2016-03-01T08:%02d:%02d.%03dZ INFO app.mod%d: %s", (i / 60) % 60, i % 60,
             (i * 37) % 1000, i % 3, msg);
  }
}

static double parse_ga(log_rules off) {
  static char buf[NL * 260];
  size_t n = 0;
  for (int i = 0; i < NL; i++) n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\n", text[i]);
  return fx_parse_ga(buf, n, NL, off, truth);
}

static void test_time_piece_grouping(void **st) {
  (void)st;
  gen();
  double on = parse_ga(0), off = parse_ga(LOG_R_M_TIME_PIECE), no_whole = parse_ga(LOG_R_M_TS_IN_MSG),
         neither = parse_ga(LOG_R_M_TIME_PIECE | LOG_R_M_TS_IN_MSG);
  printf("  grouping accuracy: %.3f (m_time_piece off %.3f; m_ts_in_msg off %.3f; both off %.3f)\n", on, off,
         no_whole, neither);
  assert_true(on >= 0.999);
  assert_true(no_whole >= 0.999); /* the pieces of a ctime date are variables one by one */
  assert_true(off < 0.8);         /* shapes 1 and 2 split by weekday without the rule */
  assert_true(neither < off);     /* and shape 0 too */
}

/* The values typed: the calendar words of a date are times, a calendar word
 * between words is not a variable at all. */
static void test_time_piece_types(void **st) {
  (void)st;
  log_miner *m;
  kv_err err = {0};
  assert_int_equal(log_miner_new(&m, NULL, &err), 0);
  log_param p[16];
  int np = 0;
  uint32_t pat;
  const char *a = "next rotation on Fri Jul 8";
  assert_int_equal(log_miner_add(m, a, strlen(a), &pat, p, 16, &np, &err), 0);
  assert_int_equal(np, 3);
  for (int i = 0; i < np; i++) assert_int_equal(p[i].type, i < 2 ? LOG_P_TIME : LOG_P_NUM);
  assert_memory_equal(p[0].val, "Fri", 3);
  assert_memory_equal(p[1].val, "Jul", 3);
  const char *b = "loaded driver Sun RPC";
  assert_int_equal(log_miner_add(m, b, strlen(b), &pat, p, 16, &np, &err), 0);
  assert_int_equal(np, 0);
  const char *c = "window opens Saturday 03:00";
  assert_int_equal(log_miner_add(m, c, strlen(c), &pat, p, 16, &np, &err), 0);
  assert_int_equal(np, 2);
  assert_int_equal(p[0].type, LOG_P_TIME);
  assert_int_equal(p[0].len, 8);
  /* every name the timestamp parser reads, abbreviated and in full, either case */
  static const char *const NAMES[] = {"Jan", "February", "MAR", "april", "May", "June", "Jul", "August", "Sep",
                                      "October", "nov", "December", "Sun", "monday", "Tue", "Wednesday", "THU",
                                      "Friday", "sat", "Saturday", "Sunday", "Thursday", "Tuesday", "March"};
  for (size_t q = 0; q < sizeof NAMES / sizeof NAMES[0]; q++) {
    char msg[64];
    snprintf(msg, sizeof msg, "backup due %s 14", NAMES[q]);
    assert_int_equal(log_miner_add(m, msg, strlen(msg), &pat, p, 16, &np, &err), 0);
    assert_true(np >= 1);
    assert_int_equal(p[0].type, LOG_P_TIME);
  }
  const char *d = "backup due Mayday 14"; /* not a name: a word */
  assert_int_equal(log_miner_add(m, d, strlen(d), &pat, p, 16, &np, &err), 0);
  assert_true(np == 0 || p[0].type != LOG_P_TIME);
  log_miner_free(m);
}

/* m_unit_var: a unit word after a number is part of the value ("size 12 KB",
 * "size 700 B"): one event whatever the unit; with the rule off the
 * frequency rule splits it by unit. (The rule acts where the miner has made
 * the unit's position a variable: messages long enough that one differing
 * word keeps them similar.) Two events that differ in a word before
 * a number ("read 12 KB" / "wrote 12 KB") stay two. */
static void test_unit_var(void **st) {
  (void)st;
  static const char *U[3] = {"B", "KB", "MB"};
  for (int i = 0; i < NL; i++) {
    int sh = i % 3;
    truth[i] = sh;
    char msg[160];
    if (sh == 0)
      snprintf(msg, sizeof msg, "block %d stored as bytes in memory of executor %d (estimated size %d %s)", i, i % 5,
               1 + i % 900, U[(i / 3) % 3]);
    else
      snprintf(msg, sizeof msg, "%s %d %s from the local disk of worker node in rack %d", sh == 1 ? "read" : "wrote",
               1 + i % 500, U[(i / 3) % 3], i % 4);
    snprintf(text[i], sizeof text[i], "2016-03-01T08:%02d:%02d.%03dZ INFO app: %s", (i / 60) % 60, i % 60, (i * 37) % 1000, msg);
  }
  double on = parse_ga(0), off = parse_ga(LOG_R_M_UNIT_VAR);
  printf("  grouping accuracy, sizes in B/KB/MB: %.3f (m_unit_var off %.3f)\n", on, off);
  assert_true(on >= 0.999);
  assert_true(off < 0.7);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_time_piece_grouping), cmocka_unit_test(test_time_piece_types),
                                     cmocka_unit_test(test_unit_var)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
