/* logs_fixture.h — what the logs tests share: the LogHub samples when they
 * are there, a generated log when a test does not need them, and the rule
 * that a test needing absent samples is skipped, never failed.
 *
 * The LogHub 2k samples live outside the repository (shared/data/loghub
 * beside it; KVASIR_LOGHUB says where). A clone with nothing beside it
 * must pass `make test`, so every test program splits its tests in two
 * groups, chosen by its first argument:
 *   fixtures  tests on data generated here (always run);
 *   loghub    tests on the real samples: when they are absent the program
 *             prints what is missing and exits FX_SKIP (77), which ctest
 *             reports as skipped (SKIP_RETURN_CODE in CMakeLists.txt);
 *   (none)    both.
 * fx_synth() generates a Zookeeper-style log (log4j layout, one record a
 * line except for a 3-line stack trace every 40th record) with increasing
 * timestamps, so resume, compression, kill -9 and triage tests need no
 * sample. */
#ifndef KVASIR_TESTS_LOGS_FIXTURE_H
#define KVASIR_TESTS_LOGS_FIXTURE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "logs/logs.h"

#define FX_SKIP 77

/* LogHub grouping accuracy of the parser's ids against truth (n lines): a
 * line counts when the lines sharing its id are exactly those sharing its
 * true group. */
static inline double fx_ga(const uint32_t *ids, const int *truth, int n) {
  int good = 0;
  for (int i = 0; i < n; i++) {
    int ok = 1;
    for (int j = 0; j < n && ok; j++)
      if ((ids[j] == ids[i]) != (truth[j] == truth[i])) ok = 0;
    good += ok;
  }
  return n ? (double)good / n : 0;
}

/* Parses buf[0..len) (n lines) with the rules in `off` switched off and
 * returns fx_ga against truth (cmocka asserts inside: include cmocka first). */
#ifdef cmocka_unit_test
static inline double fx_parse_ga(const char *buf, size_t len, int n, log_rules off, const int *truth) {
  log_miner *m = NULL;
  uint32_t *ids = NULL;
  size_t nl = 0;
  kv_err err = {0};
  assert_int_equal(log_parse_buffer_rules(buf, len, off, 0, &m, &ids, &nl, &err), 0);
  assert_int_equal(nl, (size_t)n);
  double g = fx_ga(ids, truth, n);
  free(ids);
  log_miner_free(m);
  return g;
}
#endif

/* The samples' directory, or NULL when absent. */
static inline const char *fx_loghub(void) {
  const char *d = getenv("KVASIR_LOGHUB");
  struct stat sb;
  if (!d || !*d || stat(d, &sb) || !S_ISDIR(sb.st_mode)) return NULL;
  return d;
}

/* Read <dir>/<sys>/<sys>_2k.log (the caller checked fx_loghub()). */
static inline char *fx_sample(const char *sys, size_t *len) {
  const char *d = fx_loghub();
  if (!d) return NULL;
  char p[4096];
  snprintf(p, sizeof p, "%s/%s/%s_2k.log", d, sys, sys);
  char *b = NULL;
  kv_err err = {0};
  if (kv_read_file(p, 1 << 26, &b, len, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return NULL;
  }
  return b;
}

/* nlines lines (exactly) of a generated log; *records = records in it. */
static inline char *fx_synth(size_t nlines, size_t *len, size_t *records) {
  size_t cap = nlines * 160 + 64, n = 0, rec = 0;
  char *b = malloc(cap);
  if (!b) return NULL;
  for (size_t i = 0; i < nlines; rec++) {
    int hh = (int)(i / 3600) % 24, mm = (int)(i / 60) % 60, ss = (int)(i % 60);
    char ts[40];
    snprintf(ts, sizeof ts, "2015-07-29 %02d:%02d:%02d,%03d", 17 + hh, mm, ss, (int)((i * 7) % 1000));
    size_t k = rec % 5;
    if (rec % 40 == 39 && i + 3 <= nlines) {
      n += (size_t)snprintf(b + n, cap - n,
                            "%s - ERROR [SyncThread:0:Store@%zu] - failed to write snapshot.%zx\n"
                            "java.io.IOException: write failed\n"
                            "\tat org.example.Store.write(Store.java:%zu)\n",
                            ts, 100 + rec % 13, 0x1000 + rec, 40 + rec % 9);
      i += 3;
      continue;
    }
    if (k == 0)
      n += (size_t)snprintf(b + n, cap - n,
                            "%s - INFO  [NIOServerCxn.Factory:0.0.0.0/0.0.0.0:2181:NIOServerCnxnFactory@197] - "
                            "Accepted socket connection from /10.10.%zu.%zu:%zu\n",
                            ts, rec % 7, rec % 251, 40000 + rec % 9000);
    else if (k == 1)
      n += (size_t)snprintf(b + n, cap - n,
                            "%s - INFO  [CommitProcessor:1:ZooKeeperServer@595] - Established session 0x%zx with "
                            "negotiated timeout %zu for client /10.10.%zu.%zu:%zu\n",
                            ts, 0x14ed93111f20000 + rec, 10000 + (rec % 4) * 10000, rec % 7, rec % 251,
                            40000 + rec % 9000);
    else if (k == 2)
      n += (size_t)snprintf(b + n, cap - n,
                            "%s - WARN  [SendWorker:%zu:QuorumCnxManager$SendWorker@688] - Send worker leaving "
                            "thread\n",
                            ts, 1 + rec % 3);
    else if (k == 3)
      n += (size_t)snprintf(b + n, cap - n,
                            "%s - INFO  [ProcessThread(sid:3 cport:-1)::PrepRequestProcessor@476] - Processed "
                            "session termination for sessionid: 0x%zx\n",
                            ts, 0x14ed93111f20000 + rec);
    else
      n += (size_t)snprintf(b + n, cap - n,
                            "%s - INFO  [NIOServerCxn.Factory:0.0.0.0/0.0.0.0:2181:NIOServerCnxn@1001] - Closed "
                            "socket connection for client /10.10.%zu.%zu:%zu which had sessionid 0x%zx\n",
                            ts, rec % 7, rec % 251, 40000 + rec % 9000, 0x14ed93111f20000 + rec);
    i++;
  }
  *len = n;
  if (records) *records = rec;
  return b;
}

/* Which groups argv selects: bit 1 fixtures, bit 2 loghub. */
static inline int fx_groups(int argc, char **argv) {
  if (argc < 2) return 3;
  if (!strcmp(argv[1], "fixtures")) return 1;
  if (!strcmp(argv[1], "loghub")) return 2;
  fprintf(stderr, "usage: %s [fixtures|loghub]\n", argv[0]);
  return 0;
}

/* Before the loghub group: 1 if it can run; else say what is missing. */
static inline int fx_loghub_or_say(const char *prog) {
  if (fx_loghub()) return 1;
  const char *d = getenv("KVASIR_LOGHUB");
  printf("SKIP %s loghub: the LogHub 2k samples are not at '%s' (shared/data/loghub beside the repository, or "
         "set KVASIR_LOGHUB); the tests on generated data ran in '%s fixtures'\n",
         prog, d ? d : "(KVASIR_LOGHUB unset)", prog);
  return 0;
}

#endif
