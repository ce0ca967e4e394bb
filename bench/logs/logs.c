/*
 * bench_logs — ingest throughput, query latency and memory on >= 1 GB of
 * logs, side by side with lnav on the same files in the same run.
 *
 *   bench_logs [--mb N] [--loghub DIR] [--out DIR] [--no-lnav] [--keep]
 *
 * 1. Generates N MB (default 1024) under --out (default /tmp/kvasir-bench-
 *    logs): one file per LogHub system, its 2k sample repeated with every
 *    digit of each message's content randomised (headers, hence timestamps,
 *    kept), so parameters vary and templates stay real.
 * 2. Ingests them with log_ingest (parse + templates + SQLite) into a fresh
 *    store: MB/s, records/s.
 * 3. Loads the same files headless in lnav (`lnav -n -c ';SELECT count(*)
 *    FROM all_logs' FILES`, which makes it index every line) and prints
 *    its MB/s and our ratio.
 * 4. Query latency p50/p99 per kind (time range, level, template,
 *    component, parameter, text), 30 queries each with varied values.
 * 5. Peak RSS of this process (ingest + queries) and of lnav.
 * Nothing generated is committed; --keep leaves the files for inspection.
 */
#define _GNU_SOURCE
#include "logs/logs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *SYS[] = {"Android", "Apache", "BGL", "HDFS", "HPC", "Hadoop",
                            "Linux", "Mac", "OpenStack", "Spark", "Windows", "Zookeeper"};

static uint64_t rng_next(uint64_t *s) {
  *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
  return *s;
}

static int gen(const char *loghub, const char *out, double mb, char files[12][512], uint64_t *bytes) {
  uint64_t per = (uint64_t)(mb * 1e6 / 12), seed = 0x9e3779b97f4a7c15ULL;
  *bytes = 0;
  for (int s = 0; s < 12; s++) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/%s_2k.log", loghub, SYS[s], SYS[s]);
    char *b;
    size_t len;
    kv_err err;
    if (kv_read_file(p, 1 << 26, &b, &len, &err)) {
      fprintf(stderr, "bench_logs: %s\n", err.msg);
      return 1;
    }
    const char *lines[2000];
    size_t lens[2000], n = 0;
    for (size_t i = 0; i < len && n < 2000;) {
      const char *nl = memchr(b + i, '\n', len - i);
      size_t e = nl ? (size_t)(nl - b) : len;
      lines[n] = b + i, lens[n] = e - i, n++;
      i = e + 1;
    }
    log_fmt *f;
    log_fmt_learn(&f, lines, lens, n, &err);
    size_t *coff = malloc(n * sizeof *coff);
    for (size_t i = 0; i < n; i++) {
      log_line ln;
      log_line_parse(f, lines[i], lens[i], 2000, &ln);
      coff[i] = (size_t)(ln.content - lines[i]);
    }
    log_fmt_free(f);
    snprintf(files[s], 512, "%s/%s.log", out, SYS[s]);
    FILE *o = fopen(files[s], "w");
    if (!o) {
      fprintf(stderr, "bench_logs: cannot write %s\n", files[s]);
      return 1;
    }
    setvbuf(o, NULL, _IOFBF, 1 << 20);
    uint64_t w = 0;
    char line[65536];
    while (w < per) {
      for (size_t i = 0; i < n && w < per; i++) {
        size_t l = lens[i] < sizeof line ? lens[i] : sizeof line - 1;
        memcpy(line, lines[i], l);
        uint64_t r = rng_next(&seed);
        int k = 0;
        for (size_t c = coff[i]; c < l; c++)
          if (line[c] >= '0' && line[c] <= '9') {
            if (k == 16) r = rng_next(&seed), k = 0;
            line[c] = (char)('0' + (r >> (4 * k++)) % 10);
          }
        line[l] = '\n';
        fwrite(line, 1, l + 1, o);
        w += l + 1;
      }
    }
    fclose(o);
    *bytes += w;
    free(coff);
    free(b);
  }
  return 0;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void lat(const char *kind, log_db *db, log_query *qs, int n) {
  double t[64];
  size_t rows = 0;
  for (int i = 0; i < n; i++) {
    log_result r;
    kv_err err;
    double t0 = kv_now();
    if (log_query_run(db, &qs[i], &r, &err)) {
      fprintf(stderr, "query %s: %s\n", kind, err.msg);
      t[i] = 0;
      continue;
    }
    t[i] = (kv_now() - t0) * 1e3;
    rows += r.n;
    log_result_free(&r);
  }
  qsort(t, (size_t)n, sizeof *t, cmp_d);
  printf("  %-10s p50 %8.2f ms   p99 %8.2f ms   (%d queries, %.0f rows avg)\n", kind, t[n / 2],
         t[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1], n, (double)rows / n);
}

int main(int argc, char **argv) {
  double mb = 1024;
  const char *loghub = KVASIR_LOGHUB_DIR, *out = "/tmp/kvasir-bench-logs";
  int no_lnav = 0, keep = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
    else if (!strcmp(argv[i], "--loghub") && i + 1 < argc) loghub = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--no-lnav")) no_lnav = 1;
    else if (!strcmp(argv[i], "--keep")) keep = 1;
    else {
      printf("usage: bench_logs [--mb N] [--loghub DIR] [--out DIR] [--no-lnav] [--keep]\n");
      return strcmp(argv[i], "--help") ? 2 : 0;
    }
  }
  kv_err err;
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (kv_mkdirs(out, 0700, &err)) {
    fprintf(stderr, "bench_logs: %s\n", err.msg);
    return 1;
  }
  char files[12][512], dbp[600];
  uint64_t bytes;
  double t0 = kv_now();
  if (gen(loghub, out, mb, files, &bytes)) return 1;
  printf("generated %.1f MB in 12 files under %s (%.1fs)\n", bytes / 1e6, out, kv_now() - t0);
  snprintf(dbp, sizeof dbp, "%s/bench.db", out);
  char rm[2000];
  snprintf(rm, sizeof rm, "rm -f '%s' '%s-wal' '%s-shm'", dbp, dbp, dbp);
  if (system(rm)) return 1;
  log_db *db;
  if (log_db_open(&db, dbp, &err)) {
    fprintf(stderr, "bench_logs: %s\n", err.msg);
    return 1;
  }
  const char *paths[12];
  for (int i = 0; i < 12; i++) paths[i] = files[i];
  log_ingest_opts o = {0};
  o.batch = 50000;
  log_ingest_stats st;
  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  if (log_ingest(db, paths, 12, &o, &st, &err)) {
    fprintf(stderr, "bench_logs: ingest: %s\n", err.msg);
    return 1;
  }
  getrusage(RUSAGE_SELF, &r1);
  double cpu = (r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) / 1e6 +
               (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec) / 1e6;
  double ours = st.bytes / 1e6 / st.seconds;
  printf("               CPU %.1fs = %.1f MB/s per CPU-second (the machine may be shared: compare both)\n", cpu,
         st.bytes / 1e6 / cpu);
  fflush(stdout);
  printf("kvasir ingest: %.1f MB, %llu records, %llu templates in %.1fs = %.1f MB/s (%.0f records/s)\n", st.bytes / 1e6,
         (unsigned long long)st.records, (unsigned long long)st.new_templates, st.seconds, ours, st.records / st.seconds);
  if (!no_lnav) {
    double l0 = kv_now();
    pid_t pid = fork();
    if (pid == 0) {
      char *av[20];
      int k = 0;
      av[k++] = "lnav", av[k++] = "-n", av[k++] = "-c", av[k++] = ";SELECT count(*) FROM all_logs";
      for (int i = 0; i < 12; i++) av[k++] = files[i];
      av[k] = NULL;
      if (!freopen("/dev/null", "w", stdout)) _exit(127);
      execvp("lnav", av);
      _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    double ls = kv_now() - l0;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127) printf("lnav: not installed (apt-get install lnav)\n");
    else
    {
      double lc = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
      printf("lnav load:     %.1f MB in %.1fs = %.1f MB/s, peak RSS %.0f MB  ->  kvasir/lnav = %.2fx (wall)\n",
             bytes / 1e6, ls, bytes / 1e6 / ls, ru.ru_maxrss / 1024.0, ours / (bytes / 1e6 / ls));
      printf("               CPU %.1fs = %.1f MB/s per CPU-second  ->  kvasir/lnav = %.2fx (CPU)\n", lc,
             bytes / 1e6 / lc, (st.bytes / 1e6 / cpu) / (bytes / 1e6 / lc));
    }
  }
  /* query latency */
  enum { NQ = 30 };
  log_query q[NQ];
  uint64_t seed = 42;
  log_result sample;
  log_query all = {0};
  all.limit = 2000;
  all.since_ms = 1;
  log_query_run(db, &all, &sample, &err);
  static char comp[NQ][128], par[NQ][128], txt[NQ][128];
  printf("query latency (store of %llu records):\n", (unsigned long long)st.records);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) {
    const log_row *r = &sample.rows[rng_next(&seed) % (sample.n ? sample.n : 1)];
    q[i].since_ms = r->ts_ms, q[i].until_ms = r->ts_ms + 3600000, q[i].limit = 100;
  }
  lat("time", db, q, NQ);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) q[i].min_level = LOG_LVL_WARN + (i % 2), q[i].limit = 100;
  lat("level", db, q, NQ);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) q[i].template_id = sample.rows[rng_next(&seed) % sample.n].template_id, q[i].limit = 100;
  lat("template", db, q, NQ);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) {
    snprintf(comp[i], sizeof comp[i], "%s", sample.rows[rng_next(&seed) % sample.n].component);
    q[i].component = comp[i], q[i].limit = 100;
  }
  lat("component", db, q, NQ);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) {
    /* an identifier-like value of some record: a token with a digit and a
     * dot, colon, underscore or letter (ip, block id, hex), else a number */
    const char *t = sample.rows[rng_next(&seed) % sample.n].text;
    const char *best = NULL;
    size_t bl = 0;
    for (const char *c = t; *c && !best;) {
      while (*c == ' ' || *c == '(' || *c == '[' || *c == '"' || *c == '\'') c++;
      size_t l = 0;
      int dig = 0, idc = 0;
      while (c[l] && c[l] != ' ' && c[l] != ',' && c[l] != ')' && c[l] != ']' && c[l] != '"' && c[l] != '\'') {
        dig |= c[l] >= '0' && c[l] <= '9';
        idc |= c[l] == '.' || c[l] == ':' || c[l] == '_' || (c[l] >= 'a' && c[l] <= 'z');
        l++;
      }
      if (dig && idc && l > 4 && l < 100 && c > t + 24) best = c, bl = l;
      c += l ? l : 1;
    }
    /* the tokenizer splits "key=value" and "key:value": keep the value */
    for (size_t j = 0; best && j + 1 < bl; j++)
      if (best[j] == '=' || (best[j] == ':' && j > 0 && best[j - 1] >= 'a' && best[j - 1] <= 'z'))
        bl -= j + 1, best += j + 1, j = 0;
    while (bl && (best[bl - 1] == '.' || best[bl - 1] == ':' || best[bl - 1] == ';')) bl--;
    if (best && bl) snprintf(par[i], sizeof par[i], "%.*s", (int)bl, best);
    else snprintf(par[i], sizeof par[i], "0");
    q[i].param = par[i], q[i].limit = 100;
  }
  lat("param", db, q, NQ);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) {
    const char *t = sample.rows[rng_next(&seed) % sample.n].template_text;
    const char *w = strchr(t, ' ');
    w = w ? w + 1 : t;
    size_t l = 0;
    while (w[l] && w[l] != ' ' && w[l] != '<' && l < 100) l++;
    snprintf(txt[i], sizeof txt[i], "%.*s", (int)l, w);
    if (l < 3) snprintf(txt[i], sizeof txt[i], "error");
    q[i].text = txt[i], q[i].limit = 100;
  }
  lat("text", db, q, NQ);
  log_result_free(&sample);
  log_triage tr;
  log_triage_opts to = {0};
  double tt = kv_now();
  if (!log_triage_run(db, &to, &tr, &err)) {
    printf("  triage     %8.2f ms (%zu items)\n", (kv_now() - tt) * 1e3, tr.n);
    log_triage_free(&tr);
  }
  log_db_close(db);
  printf("peak RSS (ingest + queries): %.0f MB (goal <= 512 MB)\n", kv_peak_rss() / 1048576.0);
  if (!keep) {
    for (int i = 0; i < 12; i++) unlink(files[i]);
    if (system(rm)) return 1;
  }
  return 0;
}
