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
 * 4. Triage time, then query latency p50/p99 per kind (time range, level,
 *    template, component, parameter (indexed kinds), param# (a plain
 *    number: a scan), text), 30 queries each with values from records
 *    spread over the store's time range.
 * 5. Peak RSS of this process (ingest + queries) and of lnav; the cold
 *    latency: a fresh handle opening the store and running its first query.
 * Nothing generated is committed; --keep leaves the files and the store,
 * --reuse measures the queries again on them (the ingest finds nothing new);
 * --ingest-only stops after the ingest (for profiling).
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
  int no_lnav = 0, keep = 0, ingest_only = 0, reuse = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mb") && i + 1 < argc) mb = atof(argv[++i]);
    else if (!strcmp(argv[i], "--loghub") && i + 1 < argc) loghub = argv[++i];
    else if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
    else if (!strcmp(argv[i], "--no-lnav")) no_lnav = 1;
    else if (!strcmp(argv[i], "--keep")) keep = 1;
    else if (!strcmp(argv[i], "--ingest-only")) ingest_only = 1, no_lnav = 1;
    else if (!strcmp(argv[i], "--reuse")) reuse = 1, keep = 1, no_lnav = 1;
    else {
      printf("usage: bench_logs [--mb N] [--loghub DIR] [--out DIR] [--no-lnav] [--keep] [--ingest-only] [--reuse]\n");
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
  if (reuse) {
    /* files and store from an earlier --keep run: the ingest only checks them */
    struct stat sb;
    bytes = 0;
    for (int s = 0; s < 12; s++) {
      snprintf(files[s], 512, "%s/%s.log", out, SYS[s]);
      if (stat(files[s], &sb)) {
        fprintf(stderr, "bench_logs: --reuse: %s missing (run with --keep first)\n", files[s]);
        return 1;
      }
      bytes += (uint64_t)sb.st_size;
    }
  } else if (gen(loghub, out, mb, files, &bytes)) return 1;
  printf("generated %.1f MB in 12 files under %s (%.1fs)\n", bytes / 1e6, out, kv_now() - t0);
  snprintf(dbp, sizeof dbp, "%s/bench.db", out);
  char rm[2000];
  snprintf(rm, sizeof rm, "rm -f '%s' '%s-wal' '%s-shm'", dbp, dbp, dbp);
  if (!reuse && system(rm)) return 1;
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
  if (ingest_only) {
    log_db_close(db);
    printf("peak RSS (ingest): %.0f MB\n", kv_peak_rss() / 1048576.0);
    return 0;
  }
  /* cold: a fresh handle's first query loads the block summaries (the CLI
   * and the daemon open the store per request) */
  log_db_close(db);
  double c0 = kv_now();
  if (log_db_open(&db, dbp, &err)) {
    fprintf(stderr, "bench_logs: %s\n", err.msg);
    return 1;
  }
  {
    log_query cq = {0};
    log_result cr;
    cq.min_level = LOG_LVL_WARN, cq.limit = 100;
    if (!log_query_run(db, &cq, &cr, &err)) log_result_free(&cr);
  }
  double cold_ms = (kv_now() - c0) * 1e3;
  /* triage first: its time range spreads the query sample over the store */
  log_triage tr;
  log_triage_opts to = {0};
  double tt = kv_now(), tri_ms = -1;
  size_t tri_n = 0;
  int64_t t0s = 0, t1s = 0;
  if (!log_triage_run(db, &to, &tr, &err)) {
    tri_ms = (kv_now() - tt) * 1e3, tri_n = tr.n, t0s = tr.t0, t1s = tr.t1;
    log_triage_free(&tr);
  }
  /* query latency; the sample: 40 windows of 50 records spread over time
   * (the generated files repeat their samples, so the earliest records
   * alone would be copies of a few lines) */
  enum { NQ = 30, NW = 40 };
  log_query q[NQ];
  uint64_t seed = 42;
  log_result sample = {0};
  for (int w = 0; w < NW; w++) {
    log_query one = {0};
    log_result part;
    one.limit = 50;
    one.since_ms = t0s + (int64_t)((double)(t1s - t0s) * w / NW);
    if (one.since_ms == 0) one.since_ms = 1;
    if (log_query_run(db, &one, &part, &err)) continue;
    log_row *nr = realloc(sample.rows, (sample.n + part.n + 1) * sizeof *nr);
    if (!nr) return 1;
    sample.rows = nr;
    memcpy(sample.rows + sample.n, part.rows, part.n * sizeof *nr);
    sample.n += part.n;
    free(part.rows);
  }
  if (!sample.n) {
    fprintf(stderr, "bench_logs: empty store\n");
    return 1;
  }
  static char comp[NQ][128], par[NQ][128], num[NQ][128], txt[NQ][128];
  if (reuse) printf("query latency (the store under %s):\n", out);
  else printf("query latency (store of %llu records):\n", (unsigned long long)st.records);
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
     * dot, colon, underscore or letter (ip, block id, hex), not a
     * timestamp; tried on up to 50 records, else a number */
    const char *best = NULL;
    size_t bl = 0;
    for (int tries = 0; tries < 50 && !best; tries++) {
      const log_row *row = &sample.rows[rng_next(&seed) % sample.n];
      const char *t = row->text, *from = t + 24;
      /* the message starts near the template's first constant words (the
       * header before it holds no parameters) */
      char lead[64];
      size_t ll = 0;
      while (row->template_text[ll] && row->template_text[ll] != '<' && ll + 1 < sizeof lead)
        lead[ll] = row->template_text[ll], ll++;
      lead[ll] = 0;
      const char *at = ll >= 4 ? strstr(t, lead) : NULL;
      if (at) from = at;
      for (const char *c = t; *c && !best;) {
        while (*c == ' ' || *c == '(' || *c == '[' || *c == '"' || *c == '\'' || *c == '{') c++;
        size_t l = 0;
        int dig = 0, idc = 0, odd = 0;
        while (c[l] && c[l] != ' ' && c[l] != ',' && c[l] != ')' && c[l] != ']' && c[l] != '"' && c[l] != '\'') {
          dig |= c[l] >= '0' && c[l] <= '9';
          idc |= c[l] == '.' || c[l] == ':' || c[l] == '_' || (c[l] >= 'a' && c[l] <= 'z');
          odd |= c[l] == '{' || c[l] == '}' || c[l] == '=' || c[l] == ';';
          l++;
        }
        int64_t ms;
        if (dig && idc && !odd && l > 4 && l < 100 && c >= from && !log_ts_parse(c, l, 2000, &ms)) best = c, bl = l;
        c += l ? l : 1;
      }
      /* the tokenizer splits "key=value" and "key:value": keep the value */
      for (size_t j = 0; best && j + 1 < bl; j++)
        if (best[j] == '=' || (best[j] == ':' && j > 0 && best[j - 1] >= 'a' && best[j - 1] <= 'z'))
          bl -= j + 1, best += j + 1, j = 0;
      while (best && bl && (best[bl - 1] == '.' || best[bl - 1] == ':' || best[bl - 1] == ';')) bl--;
      if (best && bl < 5) best = NULL;
    }
    if (best) snprintf(par[i], sizeof par[i], "%.*s", (int)bl, best);
    else snprintf(par[i], sizeof par[i], "0");
    q[i].param = par[i], q[i].limit = 100;
  }
  lat("param", db, q, NQ);
  memset(q, 0, sizeof q);
  for (int i = 0; i < NQ; i++) {
    /* a plain number of some record (not indexed: found by a scan) */
    snprintf(num[i], sizeof num[i], "0");
    for (int tries = 0; tries < 20 && !strcmp(num[i], "0"); tries++) {
      const char *t = sample.rows[rng_next(&seed) % sample.n].text;
      for (const char *c = t + (strlen(t) > 24 ? 24 : 0); *c; c++) {
        if (c[-1] != ' ' || *c < '0' || *c > '9') continue;
        size_t l = 0;
        while (c[l] >= '0' && c[l] <= '9') l++;
        if (l >= 3 && l < 20 && (c[l] == ' ' || c[l] == 0)) {
          snprintf(num[i], sizeof num[i], "%.*s", (int)l, c);
          break;
        }
      }
    }
    q[i].param = num[i], q[i].limit = 100;
  }
  lat("param#", db, q, NQ);
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
  if (tri_ms >= 0) printf("  triage     %8.2f ms (%zu items)\n", tri_ms, tri_n);
  printf("  cold       %8.2f ms (open the store + first level query, block summaries loaded)\n", cold_ms);
  log_db_close(db);
  printf("peak RSS (ingest + queries): %.0f MB (goal <= 512 MB)\n", kv_peak_rss() / 1048576.0);
  if (!keep) {
    for (int i = 0; i < 12; i++) unlink(files[i]);
    if (system(rm)) return 1;
  }
  return 0;
}
