/*
 * bench_pro.c — kvasir's engine against llama-bench on a 7B-shaped GGUF
 * (tests/reference/engine/make_shaped_gguf.py: the real DeepSeek-R1-Distill-
 * Qwen-7B Q4_K_M header, random well-formed data), the "pro" tier's size.
 * At 7B, decode is a streaming problem, so besides tokens/s and the ratio
 * kvasir/llama.cpp it prints the weight bytes each decode token streams as
 * GB/s against the read-bandwidth ceiling this bench measures on the same
 * machine with the same thread count, and each side's peak RSS against
 * file + KV cache. Goals (issue #19, bar 2): tg >= 1.1x llama.cpp and >= 70%
 * of the ceiling, pp >= 1.0x.
 *
 * Method: for each thread count, REPS rounds; a round runs one kvasir child
 * (warm-up, pp N from an empty cache, then tg N single tokens) and one
 * llama-bench -r 1 with the same N, alternating which goes first, so slow
 * phases of a shared machine hit both sides. Prints the median of each side,
 * the median and range of the per-round ratios, and the load average.
 *
 * --ab adds a third side to each round: kvasir with KVASIR_REPACK=0 (the
 * file's Q4_K layout, no load-time repack), in the same rotation, so the
 * repack's effect is measured A vs B in one run.
 *
 * usage: bench_pro [-t 2,1] [--pp 64] [--tg 16] [-r 3] [--kvasir-only] [--ab] [MODEL.gguf]
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>


#include "bench/common/bench_proc.h"
#include "engine/engine.h"

typedef struct res {
  double pp, tg;
  double cpu_tg; /* CPU ms (all threads) per decode token: steadier than wall time on a loaded machine */
  double open_s; /* kvasir: seconds to open the model (includes the load-time repack) */
  size_t rss;
  int ok;
} res;

/* ---------------------------------------------------- read bandwidth -- */

typedef struct bw_arg {
  const uint64_t *p;
  size_t n;
  uint64_t sink;
} bw_arg;

__attribute__((target("avx2"))) static void *bw_read(void *v) {
  bw_arg *a = v;
  typedef long long v4 __attribute__((vector_size(32)));
  v4 s0 = {0}, s1 = {0}, s2 = {0}, s3 = {0};
  const v4 *q = (const v4 *)a->p;
  for (size_t i = 0; i + 4 <= a->n / 4; i += 4) s0 += q[i], s1 += q[i + 1], s2 += q[i + 2], s3 += q[i + 3];
  v4 s = s0 + s1 + s2 + s3;
  a->sink = (uint64_t)(s[0] + s[1] + s[2] + s[3]);
  return NULL;
}

/* Best of 5 passes of `threads` threads each reading its share of 1 GiB. */
static double read_bw(int threads) {
  const size_t bytes = (size_t)1 << 30;
  uint64_t *buf;
  if (posix_memalign((void **)&buf, 64, bytes)) return 0;
  memset(buf, 1, bytes);
  double best = 0;
  for (int pass = 0; pass < 5; pass++) {
    pthread_t th[64];
    bw_arg a[64];
    const size_t per = bytes / 8 / (size_t)threads;
    double t0 = kv_now();
    for (int t = 0; t < threads; t++) {
      a[t] = (bw_arg){buf + (size_t)t * per, per, 0};
      if (t) pthread_create(&th[t], NULL, bw_read, &a[t]);
    }
    bw_read(&a[0]);
    for (int t = 1; t < threads; t++) pthread_join(th[t], NULL);
    double gbs = bytes / (kv_now() - t0) / 1e9;
    if (gbs > best) best = gbs;
  }
  free(buf);
  return best;
}

/* ------------------------------------------------------------- runs -- */

static void kvasir_child(const char *path, int threads, int pp, int tg, int wfd) {
  res r = {0};
  eng_model *m;
  kv_err err = {0};
  const double t_open = kv_now();
  if (eng_model_open(&m, path, &err)) { fprintf(stderr, "bench_pro: %s\n", err.msg); _exit(1); }
  r.open_s = kv_now() - t_open;
  eng_ctx_params cp = {pp + tg + 8, threads, NULL, NULL};
  eng_ctx *c;
  if (eng_ctx_create(&c, m, &cp, &err)) { fprintf(stderr, "bench_pro: %s\n", err.msg); _exit(1); }
  int32_t *toks = malloc((size_t)pp * sizeof *toks);
  if (!toks) _exit(1);
  uint64_t x = 88172645463325252ull;
  for (int i = 0; i < pp; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    toks[i] = (int32_t)(x % (uint64_t)eng_n_vocab(m));
  }
  if (eng_ctx_eval(c, toks, (size_t)(pp < 8 ? pp : 8), 0, &err)) _exit(1); /* warm-up */
  if (eng_ctx_eval(c, toks, 1, 0, &err)) _exit(1);
  eng_ctx_truncate(c, 0);
  double t0 = kv_now();
  if (eng_ctx_eval(c, toks, (size_t)pp, 0, &err)) _exit(1);
  r.pp = pp / (kv_now() - t0);
  eng_ctx_truncate(c, 0);
  struct rusage u0, u1;
  getrusage(RUSAGE_SELF, &u0);
  t0 = kv_now();
  for (int i = 0; i < tg; i++)
    if (eng_ctx_eval(c, &toks[i % pp], 1, 0, &err)) _exit(1);
  r.tg = tg / (kv_now() - t0);
  getrusage(RUSAGE_SELF, &u1);
  r.cpu_tg = ((u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) * 1e3 + (u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) / 1e3 +
              (u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) * 1e3 + (u1.ru_stime.tv_usec - u0.ru_stime.tv_usec) / 1e3) / tg;
  const float *lg = eng_ctx_logits(c, 0);
  for (int i = 0; i < eng_n_vocab(m); i++)
    if (!isfinite(lg[i])) { fprintf(stderr, "bench_pro: kvasir logit %d not finite\n", i); _exit(1); }
  r.ok = 1;
  if (write(wfd, &r, sizeof r) != (ssize_t)sizeof r) _exit(1);
  _exit(0);
}

/* repack 0: the child runs with KVASIR_REPACK=0 (the file's layout). */
static res bench_kvasir(const char *path, int threads, int pp, int tg, int repack) {
  res r = {0};
  int fd[2];
  if (pipe(fd)) return r;
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) return r;
  if (pid == 0) {
    close(fd[0]);
    if (!repack) setenv("KVASIR_REPACK", "0", 1);
    kvasir_child(path, threads, pp, tg, fd[1]);
  }
  close(fd[1]);
  if (read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) r.ok = 0;
  close(fd[0]);
  int st;
  struct rusage ru;
  wait4(pid, &st, 0, &ru);
  r.rss = (size_t)ru.ru_maxrss * 1024;
  return r;
}

/* Run argv with stdout captured (up to cap); peak RSS of the child. */

static res bench_llama(const char *bin, const char *path, int threads, int pp, int tg) {
  res r = {0};
  r.ok = llama_bench("bench_pro", bin, path, threads, pp, tg, 1, &r.pp, &r.tg, &r.rss) == 0;
  return r;
}

/* ---------------------------------------------------------- helpers -- */


static double loadavg(void) {
  double l = -1;
  FILE *f = fopen("/proc/loadavg", "r");
  if (f) {
    if (fscanf(f, "%lf", &l) != 1) l = -1;
    fclose(f);
  }
  return l;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}
static double median(const double *v, int n) {
  double s[64];
  memcpy(s, v, (size_t)n * sizeof *s);
  qsort(s, (size_t)n, sizeof *s, cmp_d);
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}
static void range(const double *v, int n, double *lo, double *hi) {
  *lo = *hi = v[0];
  for (int i = 1; i < n; i++) *lo = v[i] < *lo ? v[i] : *lo, *hi = v[i] > *hi ? v[i] : *hi;
}

/* Weight bytes one decode token streams: every matrix once, the token
 * embedding one row (unless it doubles as the output matrix). */
static int weight_stream_bytes(const char *path, size_t *bytes, size_t *kv_per_pos, size_t *file) {
  eng_gguf *g;
  kv_err err = {0};
  if (eng_gguf_open(&g, path, &err)) { fprintf(stderr, "bench_pro: %s\n", err.msg); return -1; }
  const int tied = eng_gguf_tensor(g, "output.weight") == NULL;
  size_t b = 0;
  for (size_t i = 0; i < eng_gguf_n_tensors(g); i++) {
    const eng_tensor *t = eng_gguf_tensor_at(g, i);
    if (t->n_dims < 2) continue;
    if (!tied && t->name.n == 17 && !memcmp(t->name.p, "token_embd.weight", 17)) b += t->nbytes / t->ne[1];
    else b += t->nbytes;
  }
  eng_gguf_free(g);
  eng_model *m;
  setenv("KVASIR_REPACK", "0", 1); /* only the shape is wanted here */
  const int rc = eng_model_open(&m, path, &err);
  unsetenv("KVASIR_REPACK");
  if (rc) { fprintf(stderr, "bench_pro: %s\n", err.msg); return -1; }
  const eng_model_info *mi = eng_model_get_info(m);
  *kv_per_pos = (size_t)mi->n_layer * 2 * (size_t)mi->n_head_kv * (size_t)mi->head_dim * sizeof(float);
  *file = mi->file_size;
  eng_model_free(m);
  *bytes = b;
  return 0;
}

int main(int argc, char **argv) {
  int pp = 64, tg = 16, reps = 3, kv_only = 0, ab = 0, nth = 0, th[8];
  const char *model = NULL, *tlist = "2,1";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-t") && i + 1 < argc) tlist = argv[++i];
    else if (!strcmp(argv[i], "--pp") && i + 1 < argc) pp = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tg") && i + 1 < argc) tg = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--kvasir-only")) kv_only = 1;
    else if (!strcmp(argv[i], "--ab")) ab = 1;
    else if (!strcmp(argv[i], "--help")) {
      printf("usage: bench_pro [-t 2,1] [--pp 64] [--tg 16] [-r 3] [--kvasir-only] [--ab] [MODEL.gguf]\n");
      return 0;
    } else model = argv[i];
  }
  for (const char *s = tlist; *s && nth < 8;) {
    th[nth] = atoi(s);
    if (th[nth] < 1 || th[nth] > 64) { fprintf(stderr, "bench_pro: -t %s: thread counts 1..64\n", tlist); return 1; }
    nth++;
    s = strchr(s, ',') ? strchr(s, ',') + 1 : "";
  }
  if (pp < 1 || tg < 1 || reps < 1 || reps > 64) { fprintf(stderr, "bench_pro: --pp, --tg >= 1, -r 1..64\n"); return 1; }
  char src[4096], cmd[8192], bin[4096] = "", path[4096];
  snprintf(src, sizeof src, "%s", getenv("KVASIR_SOURCE_DIR") ? getenv("KVASIR_SOURCE_DIR") : KVASIR_SOURCE_DIR);
  if (!model) {
    fprintf(stderr, "bench_pro: making/finding the shaped GGUF (make_shaped_gguf.py)...\n");
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/reference/engine/make_shaped_gguf.py'", src);
    if (sh_line(cmd, path, sizeof path)) { fprintf(stderr, "bench_pro: make_shaped_gguf.py failed\n"); return 1; }
    model = path;
  }
  if (!kv_only) {
    snprintf(cmd, sizeof cmd, "'%s/scripts/build-llama-ref'", src);
    fprintf(stderr, "bench_pro: building/finding llama.cpp tools (scripts/build-llama-ref)...\n");
    if (sh_line(cmd, bin, sizeof bin)) { fprintf(stderr, "bench_pro: scripts/build-llama-ref failed\n"); return 1; }
  }
  size_t wbytes, kv_pos, file;
  if (weight_stream_bytes(model, &wbytes, &kv_pos, &file)) return 1;
  const size_t kv = kv_pos * (size_t)(pp + tg + 8);
  printf("model %s: %.2f GB file, %.2f GB of weights streamed per decode token, KV %.1f MB (f32, %d positions)\n",
         model, file / 1e9, wbytes / 1e9, kv / 1e6, pp + tg + 8);
  printf("method: pp%d / tg%d, %d interleaved rounds per thread count; median [min-max of per-round ratios]\n", pp,
         tg, reps);
  int rc = 0;
  for (int ti = 0; ti < nth; ti++) {
    const int t = th[ti];
    const double ceil = read_bw(t);
    double kpp[64], ktg[64], lpp[64], ltg[64], rpp[64], rtg[64], kcpu[64], la0 = loadavg(), la1 = la0;
    double apas[64], atg[64], acpu[64], rapp[64], ratg[64]; /* --ab: the file layout (KVASIR_REPACK=0) */
    size_t krss = 0, lrss = 0, arss = 0;
    int n = 0;
    for (int r = 0; r < reps; r++) {
      res k = {0}, l = {0}, a = {0};
      /* rotate the sides so that each goes first, second (and third) equally often */
      for (int slot = 0; slot < 3; slot++) {
        const int side = (slot + r) % 3; /* 0 kvasir, 1 llama, 2 kvasir file layout */
        if (side == 0) k = bench_kvasir(model, t, pp, tg, 1);
        else if (side == 1 && !kv_only) l = bench_llama(bin, model, t, pp, tg);
        else if (side == 2 && ab) a = bench_kvasir(model, t, pp, tg, 0);
      }
      const double la = loadavg();
      la1 = la > la1 ? la : la1;
      if (!k.ok || (!kv_only && !l.ok) || (ab && !a.ok)) { fprintf(stderr, "bench_pro: round %d (-t %d): a run failed\n", r, t); rc = 1; continue; }
      kpp[n] = k.pp, ktg[n] = k.tg, lpp[n] = l.pp, ltg[n] = l.tg, kcpu[n] = k.cpu_tg;
      rpp[n] = kv_only ? 0 : k.pp / l.pp, rtg[n] = kv_only ? 0 : k.tg / l.tg;
      apas[n] = a.pp, atg[n] = a.tg, acpu[n] = a.cpu_tg, rapp[n] = ab ? k.pp / a.pp : 0, ratg[n] = ab ? k.tg / a.tg : 0;
      krss = k.rss > krss ? k.rss : krss, lrss = l.rss > lrss ? l.rss : lrss, arss = a.rss > arss ? a.rss : arss;
      fprintf(stderr, "  -t %d round %d: kvasir pp %.2f tg %.2f (%.0f CPU ms/token, open %.1f s) | llama pp %.2f tg %.2f",
              t, r, k.pp, k.tg, k.cpu_tg, k.open_s, l.pp, l.tg);
      if (ab) fprintf(stderr, " | file layout pp %.2f tg %.2f (%.0f CPU ms/token, open %.1f s)", a.pp, a.tg, a.cpu_tg, a.open_s);
      fprintf(stderr, " | load %.2f\n", la);
      n++;
    }
    if (!n) continue;
    const double mk = median(ktg, n), gbs = mk * wbytes / 1e9;
    printf("\n-t %d  read-bandwidth ceiling %.1f GB/s; load average %.2f..%.2f\n", t, ceil, la0, la1);
    printf("  tg  kvasir %6.2f tok/s = %5.1f GB/s = %3.0f%% of ceiling", mk, gbs, 100 * gbs / ceil);
    if (!kv_only) {
      double lo, hi, ml = median(ltg, n);
      range(rtg, n, &lo, &hi);
      printf(" | llama %6.2f tok/s = %5.1f GB/s = %3.0f%% | ratio %.2fx [%.2f-%.2f]", ml, ml * wbytes / 1e9,
             100 * ml * wbytes / 1e9 / ceil, median(rtg, n), lo, hi);
    }
    printf("\n  pp  kvasir %6.2f tok/s", median(kpp, n));
    if (!kv_only) {
      double lo, hi;
      range(rpp, n, &lo, &hi);
      printf("                              | llama %6.2f tok/s                       | ratio %.2fx [%.2f-%.2f]",
             median(lpp, n), median(rpp, n), lo, hi);
    }
    printf("\n  CPU kvasir %.0f ms per decode token (all threads, median)", median(kcpu, n));
    printf("\n  RSS kvasir %.0f MiB = %.3fx (file + KV)", krss / 1048576.0, (double)krss / (double)(file + kv));
    if (!kv_only) printf(" | llama %.0f MiB = %.3fx", lrss / 1048576.0, (double)lrss / (double)(file + kv));
    if (ab) {
      double lo, hi;
      range(ratg, n, &lo, &hi);
      printf("\n  A/B file layout (KVASIR_REPACK=0): tg %.2f tok/s, %.0f CPU ms/token, pp %.2f tok/s, RSS %.0f MiB;"
             " repacked/file: tg %.2fx [%.2f-%.2f]",
             median(atg, n), median(acpu, n), median(apas, n), arss / 1048576.0, median(ratg, n), lo, hi);
      range(rapp, n, &lo, &hi);
      printf(", pp %.2fx [%.2f-%.2f], CPU/token %.2fx", median(rapp, n), lo, hi, median(kcpu, n) / median(acpu, n));
    }
    printf("\n");
    fflush(stdout);
  }
  return rc;
}
