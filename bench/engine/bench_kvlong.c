/*
 * bench_kvlong.c — decode speed at long context, dense f16 cache against
 * the compressed KV memory, on the shapes users run (issue #19, bar 3:
 * decode at 32k on the 7B shape >= 1.2x the dense cache; the bandwidth
 * bound is about 1.3x, a dense 32k cache being ~1.9 GB read per token
 * against ~4.4 GB of weights).
 *
 * A 32k prefill of a 7B model takes the best part of an hour on 2 cores,
 * so the cache is filled with synthetic keys and values instead
 * (eng_ctx_fill_kv: the same appends a prefill makes, no forward pass),
 * and only decode is timed. Speed depends on the statistics only through
 * the compressed memory's block choice, whose cost (top-k blocks, pooled
 * summaries for the rest) is fixed by its config, so the statistics need
 * only be plausible: per layer, head and channel a key mean and scale
 * (a few outlier channels 8x larger, as RoPE'd keys have), rotated by
 * position as RoPE does, Gaussian noise around them; values Gaussian with
 * a per-channel scale. Accuracy of the compressed memory is measured on
 * real models (kvasir eval needle, perplexity), not here.
 *
 * Caches: "f16", the KV memory with every layer KVM_FULL (f16 storage, the
 * same SIMD attention loops: the dense cache to beat), "compressed" (what
 * kvasird runs: kvm_eng_config's KVM_COMPRESSED) and, with --ref, the
 * engine's reference cache (engine/kv_dense.c: llama.cpp's summation order
 * bit for bit, f16 values widened to f32, not built for speed).
 *
 * Method: for each length N and each round, one context per cache (order
 * rotating between rounds), filled to N, one warm-up token, then --tg
 * single-token decodes; prints tokens/s (median of rounds), CPU ms per
 * token (all threads), the cache's bytes, and compressed/f16 ratios.
 *
 * usage: bench_kvlong [-t 2] [--ctx 16384,32768] [--tg 8] [-r 2] [--ref] [MODEL.gguf]
 *        (default model: ~/.cache/kvasir/shaped/qwen2-7b-shaped.Q4_K_M.gguf)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/kvmem_eng.h"

#define MAX_CTX 8

typedef struct synth {
  int n_layer, n_kv, hd;
  float *kmu, *ksd, *vsd; /* [layer][head][channel] */
  double *freq, *cs, *sn;  /* RoPE: per pair, its frequency; cos/sin at position `at` */
  int at;
  uint64_t s;
} synth;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}
static float unif(uint64_t *s) { return (float)((rnd(s) >> 40) + 0.5) / (float)(1ull << 24); }
/* approximately N(0,1): the sum of four uniforms, rescaled (cheap, enough here) */
static float gauss(uint64_t *s) { return (unif(s) + unif(s) + unif(s) + unif(s) - 2.0f) * 1.7320508f; }

static int synth_init(synth *S, const eng_model_info *I) {
  S->n_layer = I->n_layer;
  S->n_kv = I->n_head_kv;
  S->hd = I->head_dim;
  size_t n = (size_t)S->n_layer * (size_t)S->n_kv * (size_t)S->hd;
  S->kmu = malloc(3 * n * sizeof(float));
  if (!S->kmu) return -1;
  S->ksd = S->kmu + n;
  S->vsd = S->ksd + n;
  S->s = 0x9e3779b97f4a7c15ull;
  S->freq = malloc(3 * (size_t)(S->hd / 2 + 1) * sizeof(double));
  if (!S->freq) return -1;
  S->cs = S->freq + S->hd / 2 + 1;
  S->sn = S->cs + S->hd / 2 + 1;
  S->at = -1;
  for (int c = 0; c < S->hd / 2; c++) S->freq[c] = pow(10000.0, -2.0 * c / S->hd);
  for (size_t i = 0; i < n; i++) {
    int outlier = (i % (size_t)S->hd) % 32 == 5; /* 4 of 128 channels */
    S->kmu[i] = gauss(&S->s) * (outlier ? 8.0f : 1.0f);
    S->ksd[i] = (0.5f + unif(&S->s)) * (outlier ? 4.0f : 1.0f);
    S->vsd[i] = 0.3f + unif(&S->s);
  }
  return 0;
}

static void synth_fill(void *user, int layer, int pos, float *k, float *v) {
  synth *S = user;
  if (pos != S->at) {
    for (int c = 0; c < S->hd / 2; c++) {
      S->cs[c] = cos(pos * S->freq[c]);
      S->sn[c] = sin(pos * S->freq[c]);
    }
    S->at = pos;
  }
  for (int h = 0; h < S->n_kv; h++) {
    const size_t o = ((size_t)layer * (size_t)S->n_kv + (size_t)h) * (size_t)S->hd;
    float *kh = k + (size_t)h * (size_t)S->hd, *vh = v + (size_t)h * (size_t)S->hd;
    for (int c = 0; c < S->hd; c++) {
      kh[c] = S->kmu[o + c] + S->ksd[o + c] * gauss(&S->s);
      vh[c] = S->vsd[o + c] * gauss(&S->s);
    }
    /* RoPE (NeoX pairs c, c + hd/2; theta 10000) on the key */
    for (int c = 0; c < S->hd / 2; c++) {
      const double cs = S->cs[c], sn = S->sn[c];
      float a = kh[c], b = kh[c + S->hd / 2];
      kh[c] = (float)(a * cs - b * sn);
      kh[c + S->hd / 2] = (float)(a * sn + b * cs);
    }
  }
}

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static double cpu_s(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + 1e-6 * (double)u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec +
         1e-6 * (double)u.ru_stime.tv_usec;
}

typedef struct run {
  double tok_s, cpu_ms, fill_s;
  size_t bytes;
} run;

enum { C_F16, C_COMP, C_REF, C_N };
static const char *const cache_name[C_N] = {"f16", "compressed", "reference"};

/* One context with cache `mode` filled to n, then tg decodes. */
static int one(eng_model *m, int threads, int n, int tg, int mode, run *r, kv_err *err) {
  eng_ctx_params p;
  eng_ctx_params_default(&p);
  p.n_ctx = n + tg + 8;
  p.n_threads = threads;
  eng_ctx *ctx = NULL;
  kvm_config cfg;
  kvm_eng_config(&cfg, m, p.n_ctx, mode == C_COMP ? KVM_COMPRESSED : KVM_FULL);
  const int kvm = mode != C_REF; /* a KV memory cache: its own byte count below */
  int rc = mode == C_REF ? eng_ctx_create(&ctx, m, &p, err) : kvm_eng_ctx_create(&ctx, m, &p, &cfg, err);
  if (rc) return rc;
  synth S = {0};
  if (synth_init(&S, eng_model_get_info(m))) {
    free(S.kmu);
    free(S.freq);
    eng_ctx_free(ctx);
    return kv_err_set(err, KV_ENOMEM, "out of memory");
  }
  double t0 = now_s();
  rc = eng_ctx_fill_kv(ctx, (size_t)n, synth_fill, &S, NULL, err);
  r->fill_s = now_s() - t0;
  free(S.kmu);
  free(S.freq);
  int32_t tok = 1;
  if (!rc) rc = eng_ctx_eval(ctx, &tok, 1, 0, err); /* warm-up */
  double w0 = now_s(), c0 = cpu_s();
  for (int i = 0; i < tg && !rc; i++) rc = eng_ctx_eval(ctx, &tok, 1, 0, err);
  double w = now_s() - w0, c = cpu_s() - c0;
  r->tok_s = tg / w;
  r->cpu_ms = 1e3 * c / tg;
  const eng_model_info *I = eng_model_get_info(m);
  /* the reference cache stores f16 values widened to f32 */
  r->bytes = (size_t)(n + tg + 1) * (size_t)I->n_layer * (size_t)I->n_head_kv * (size_t)I->head_dim * 2 * 4;
  if (kvm && !rc) {
    kvm_eng_stats st;
    if (kvm_eng_stats_get(ctx, NULL, &st, err) == 0) r->bytes = st.kv_bytes;
  }
  eng_ctx_free(ctx);
  return rc;
}

static int cmp_d(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
  int threads = 2, tg = 8, reps = 2, nctx = 0, ctxs[MAX_CTX], ref = 0;
  const char *model = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-t") && i + 1 < argc) threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--tg") && i + 1 < argc) tg = atoi(argv[++i]);
    else if (!strcmp(argv[i], "-r") && i + 1 < argc) reps = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--ref")) ref = 1;
    else if (!strcmp(argv[i], "--ctx") && i + 1 < argc) {
      for (char *s = argv[++i], *e; *s && nctx < MAX_CTX; s = *e ? e + 1 : e) {
        ctxs[nctx++] = (int)strtol(s, &e, 10);
        if (e == s) break;
      }
    } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf("usage: bench_kvlong [-t 2] [--ctx 16384,32768] [--tg 8] [-r 2] [--ref] [MODEL.gguf]\n"
             "  decode tokens/s at long context, dense f16 cache vs the compressed KV memory\n"
             "  (--ref: also the engine's bit-exact reference cache),\n"
             "  the cache filled with synthetic keys/values (no prefill); default model:\n"
             "  ~/.cache/kvasir/shaped/qwen2-7b-shaped.Q4_K_M.gguf (make_shaped_gguf.py)\n");
      return 0;
    } else if (argv[i][0] != '-') model = argv[i];
    else {
      fprintf(stderr, "bench_kvlong: unknown option %s (--help)\n", argv[i]);
      return 2;
    }
  }
  if (!nctx) {
    ctxs[0] = 16384;
    ctxs[1] = 32768;
    nctx = 2;
  }
  if (tg < 1 || reps < 1 || threads < 1) {
    fprintf(stderr, "bench_kvlong: -t, --tg and -r must be >= 1\n");
    return 2;
  }
  char def[4096];
  if (!model) {
    const char *h = getenv("HOME");
    snprintf(def, sizeof def, "%s/.cache/kvasir/shaped/qwen2-7b-shaped.Q4_K_M.gguf", h ? h : ".");
    model = def;
  }
  kv_err err = {0};
  eng_model *m = NULL;
  if (eng_model_open(&m, model, &err)) {
    fprintf(stderr, "bench_kvlong: %s\n", err.msg);
    return 1;
  }
  const eng_model_info *I = eng_model_get_info(m);
  printf("model %s: %d layers, %d KV heads x %d, %d threads, tg %d, %d rounds\n", model, I->n_layer, I->n_head_kv,
         I->head_dim, threads, tg, reps);
  printf("%7s  %-10s  %8s  %8s  %10s  %7s\n", "ctx", "cache", "tok/s", "cpu ms", "KV MiB", "fill s");
  int fails = 0;
  for (int c = 0; c < nctx; c++) {
    double tks[C_N][16], cms[C_N][16];
    size_t bytes[C_N] = {0, 0, 0};
    const int nm = ref ? 3 : 2, nr = reps > 16 ? 16 : reps;
    for (int r = 0; r < nr; r++)
      for (int o = 0; o < nm; o++) {
        int mode = (r + o) % nm; /* rotate which goes first */
        run x = {0};
        if (one(m, threads, ctxs[c], tg, mode, &x, &err)) {
          fprintf(stderr, "bench_kvlong: ctx %d %s: %s\n", ctxs[c], cache_name[mode], err.msg);
          fails++;
          x.tok_s = x.cpu_ms = NAN;
        }
        tks[mode][r] = x.tok_s;
        cms[mode][r] = x.cpu_ms;
        bytes[mode] = x.bytes;
        printf("%7d  %-10s  %8.2f  %8.1f  %10.1f  %7.1f\n", ctxs[c], cache_name[mode], x.tok_s, x.cpu_ms,
               (double)x.bytes / 1048576.0, x.fill_s);
        fflush(stdout);
      }
    double td = median(tks[C_F16], nr), tc = median(tks[C_COMP], nr), cd = median(cms[C_F16], nr),
           cc = median(cms[C_COMP], nr);
    printf("ctx %d: compressed/f16 decode %.2fx tok/s (%.2f vs %.2f), %.2fx per CPU-s; KV bytes %.1f%% of f16"
           "  [goal >= 1.2x at 32k on the 7B shape]\n",
           ctxs[c], tc / td, tc, td, cd / cc, 100.0 * (double)bytes[C_COMP] / (double)(bytes[C_F16] ? bytes[C_F16] : 1));
    if (ref)
      printf("ctx %d: compressed/reference decode %.2fx tok/s\n", ctxs[c], tc / median(tks[C_REF], nr));
  }
  double la[3];
  if (getloadavg(la, 3) == 3) printf("load average %.2f %.2f %.2f\n", la[0], la[1], la[2]);
  eng_model_free(m);
  return fails ? 1 : 0;
}
