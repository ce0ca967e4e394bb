/*
 * bench_kernels — matvec (decode-shaped, m = 1) throughput per weight type
 * and ISA level, as GB/s of weight bytes streamed, and the ratio to this
 * machine's single-thread read bandwidth measured in the same run on a
 * buffer of the same size (a plain AVX2 read-and-sum loop, and memcpy).
 * Also the batched case (m = 8, prompt-shaped) as effective weight GB/s
 * (bytes of W × m / time) to show the weight reuse of the multi-row kernels.
 *
 * usage: bench_kernels [--mb N] [--threads N] [--types Q4_1,Q8_0,...] [--k K] [--json]
 *   --mb N       weight working set per run in MiB (default 256: above the
 *                L2 and most of a shared L3; raise it past the L3 to be sure)
 *   --threads N  also run with an N-thread pool (default: online CPUs)
 *   --k K        row length (default 4096; Gemma 3 270M's lm_head has 640)
 */
#include <math.h>
#include <pthread.h>
#include <time.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "base/base.h"
#include "kernels/kernels.h"
#ifdef KRN_BENCH_GGML
#include "ggml-cpu.h"
#include "ggml.h"
#endif

typedef struct {
  size_t mb;
  int threads, json;
  const char *types;
  size_t k; /* row length (elements); default 4096 */
} opts;

static uint64_t g_sink; /* keeps the read loops alive; bench-local */

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t *p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_xor_si256(a0, _mm256_load_si256((const __m256i *)(p + i)));
    a1 = _mm256_xor_si256(a1, _mm256_load_si256((const __m256i *)(p + i + 32)));
    a2 = _mm256_xor_si256(a2, _mm256_load_si256((const __m256i *)(p + i + 64)));
    a3 = _mm256_xor_si256(a3, _mm256_load_si256((const __m256i *)(p + i + 96)));
  }
  a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
  return (uint64_t)_mm256_extract_epi64(a0, 0) ^ (uint64_t)_mm256_extract_epi64(a0, 3);
}
#endif

static uint64_t read_scalar(const uint8_t *p, size_t n) {
  const uint64_t *q = (const uint64_t *)p;
  uint64_t a = 0, b = 0;
  for (size_t i = 0; i + 2 <= n / 8; i += 2) a ^= q[i], b ^= q[i + 1];
  return a ^ b;
}

/* Best of `reps` timings of fn: wall clock, or (cpu = 1) this thread's CPU
 * time, which a loaded machine's time slicing does not inflate; the
 * single-thread columns use CPU time so ratios stay meaningful there. */
static double thread_cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
static double best_of_clock(int reps, void (*fn)(void *), void *ctx, int cpu) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = cpu ? thread_cpu_now() : kv_now();
    fn(ctx);
    double t = (cpu ? thread_cpu_now() : kv_now()) - t0;
    if (t < best) best = t;
  }
  return best;
}
static double best_of(int reps, void (*fn)(void *), void *ctx) { return best_of_clock(reps, fn, ctx, 0); }
static double best_cpu(int reps, void (*fn)(void *), void *ctx) { return best_of_clock(reps, fn, ctx, 1); }

typedef struct {
  uint8_t *buf, *dst;
  size_t n;
} bw_ctx;
static void do_read(void *c) {
  bw_ctx *b = c;
#if defined(__x86_64__)
  if (krn_cpu_features()->avx2) { g_sink ^= read_avx2(b->buf, b->n); return; }
#endif
  g_sink ^= read_scalar(b->buf, b->n);
}
static void do_memcpy(void *c) {
  bw_ctx *b = c;
  memcpy(b->dst, b->buf, b->n);
  g_sink ^= b->dst[b->n / 2];
}

typedef struct {
  krn_pool *p;
  const char *isa;
  int type;
  const void *W;
  size_t n_out, k, m;
  const float *x;
  float *y;
} mm_ctx;
static void do_mm(void *c) {
  mm_ctx *j = c;
  krn_matmul_isa(j->p, j->isa, j->type, j->W, j->n_out, j->k, j->x, j->m, j->y);
}

#ifdef KRN_BENCH_GGML
/* ggml's own kernels on the same data: quantize x with its from_float, then
 * one vec_dot per output row, single thread (what a decode matvec does). */
typedef struct {
  const struct ggml_type_traits_cpu *tr;
  const uint8_t *W;
  size_t rb, n_out, k;
  const float *x;
  void *xq;
  float *y;
} gg_ctx;
static void do_ggml(void *c) {
  gg_ctx *g = c;
  const void *xv = g->x;
  if (g->tr->vec_dot_type != GGML_TYPE_F32) {
    ggml_get_type_traits_cpu(g->tr->vec_dot_type)->from_float(g->x, g->xq, (int64_t)g->k);
    xv = g->xq;
  }
  for (size_t r = 0; r < g->n_out; r++) g->tr->vec_dot((int)g->k, &g->y[r], 0, g->W + r * g->rb, 0, xv, 0, 1);
}
#endif

/* ---- fork/join latency: the pool vs creating threads per job ---- */
typedef struct {
  _Atomic int n;
} pool_cnt;
static void touch_task(void *ctx, int i) {
  (void)i;
  atomic_fetch_add_explicit(&((pool_cnt *)ctx)->n, 1, memory_order_relaxed);
}
static void *touch_thread(void *ctx) {
  touch_task(ctx, 0);
  return NULL;
}

/* ns per fork/join of 8 trivial tasks: krn_pool_run, and (reference) one
 * pthread_create + pthread_join per helper thread, as a naive pool would. */
static void pool_latency(int nthreads, double *pool_ns, double *naive_ns) {
  krn_pool *p;
  pool_cnt c = {0};
  *pool_ns = *naive_ns = 0;
  if (krn_pool_create(&p, nthreads)) return;
  const int iters = 20000;
  for (int i = 0; i < 1000; i++) krn_pool_run(p, touch_task, &c, 8);
  double t0 = kv_now();
  for (int i = 0; i < iters; i++) krn_pool_run(p, touch_task, &c, 8);
  *pool_ns = (kv_now() - t0) / iters * 1e9;
  krn_pool_free(p);
  const int niters = 2000;
  t0 = kv_now();
  for (int i = 0; i < niters; i++) {
    pthread_t th[64];
    int n = nthreads - 1 < 64 ? nthreads - 1 : 64;
    for (int j = 0; j < n; j++) pthread_create(&th[j], NULL, touch_thread, &c);
    for (int t = 0; t < 8; t++) touch_task(&c, t);
    for (int j = 0; j < n; j++) pthread_join(th[j], NULL);
  }
  *naive_ns = (kv_now() - t0) / niters * 1e9;
}

/* ---- decode-shaped: SmolLM2-135M's matvecs for one token ---- */
typedef struct {
  int type, n_out, k;
} mv_shape;
/* per layer: q, k, v, o (576x576, 192x576 x2, 576x576), gate, up (1536x576), down (576x1536) */
static const mv_shape k_layer[] = {{KRN_Q4_1, 576, 576},  {KRN_Q4_1, 192, 576},  {KRN_Q4_1, 192, 576},
                                   {KRN_Q4_1, 576, 576},  {KRN_Q4_1, 1536, 576}, {KRN_Q4_1, 1536, 576},
                                   {KRN_Q4_1, 576, 1536}};

/* ms per token of 30 layers + a Q8_0 49152x576 lm_head, on pool p. */
static double decode_ms(krn_pool *p, uint8_t *const *wl, const uint8_t *head, const float *x, float *y, int reps,
                        int cpu) {
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = cpu ? thread_cpu_now() : kv_now();
    for (int l = 0; l < 30; l++)
      for (size_t j = 0; j < sizeof k_layer / sizeof k_layer[0]; j++)
        krn_matmul(p, k_layer[j].type, wl[l * 7 + j], (size_t)k_layer[j].n_out, (size_t)k_layer[j].k, x, 1, y);
    krn_matmul(p, KRN_Q8_0, head, 49152, 576, x, 1, y);
    double t = (cpu ? thread_cpu_now() : kv_now()) - t0;
    if (t < best) best = t;
  }
  return best * 1e3;
}

static uint32_t xs(uint32_t *s) {
  *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
  return *s;
}

/* Fill W as `type` with plausible values (finite scales, no denormals). */
static void fill_weights(int type, uint8_t *w, size_t bytes) {
  uint32_t s = 42;
  for (size_t i = 0; i + 4 <= bytes; i += 4) {
    uint32_t v = xs(&s);
    memcpy(w + i, &v, 4);
  }
  if (type == KRN_F32) {
    for (size_t i = 0; i + 4 <= bytes; i += 4) {
      float f = (float)(xs(&s) % 2001) / 1000.f - 1.f;
      memcpy(w + i, &f, 4);
    }
    return;
  }
  if (type == KRN_F16 || type == KRN_BF16) {
    for (size_t i = 0; i + 2 <= bytes; i += 2) {
      float f = (float)(xs(&s) % 2001) / 1000.f - 1.f;
      uint16_t h = type == KRN_F16 ? krn_f32_to_f16(f) : krn_f32_to_bf16(f);
      memcpy(w + i, &h, 2);
    }
    return;
  }
  const size_t bb = krn_type_block_bytes(type);
  const size_t off0 = type == KRN_Q6_K ? 208 : 0;
  const int two = type == KRN_Q4_1 || type == KRN_Q5_1 || type == KRN_Q4_K || type == KRN_Q5_K;
  const uint16_t h = krn_f32_to_f16(0.01f);
  for (size_t b = 0; b + bb <= bytes; b += bb) {
    memcpy(w + b + off0, &h, 2);
    if (two) memcpy(w + b + 2, &h, 2);
  }
}

static void usage(void) {
  puts("usage: bench_kernels [--mb N] [--threads N] [--types Q4_1,Q8_0,...] [--k K] [--json]\n"
       "Matvec GB/s per GGUF type and ISA level, with the ratio to this machine's\n"
       "single-thread read bandwidth measured in the same run.");
}

int main(int argc, char **argv) {
  opts o = {256, 0, 0, NULL, 4096};
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { usage(); return 0; }
    else if (!strcmp(argv[i], "--mb") && i + 1 < argc) o.mb = (size_t)atol(argv[++i]);
    else if (!strcmp(argv[i], "--threads") && i + 1 < argc) o.threads = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--types") && i + 1 < argc) o.types = argv[++i];
    else if (!strcmp(argv[i], "--json")) o.json = 1;
    else if (!strcmp(argv[i], "--k") && i + 1 < argc) o.k = (size_t)atol(argv[++i]);
    else { usage(); return 2; }
  }
  if (o.mb < 1) o.mb = 1;
  const size_t bytes = o.mb << 20;
  uint8_t *buf = NULL, *dst = NULL;
  if (posix_memalign((void **)&buf, 64, bytes) || posix_memalign((void **)&dst, 64, bytes)) {
    fprintf(stderr, "bench_kernels: cannot allocate 2 x %zu MiB\n", o.mb);
    return 1;
  }
  memset(buf, 1, bytes);
  memset(dst, 2, bytes);
  bw_ctx bc = {buf, dst, bytes};
  const double t_read = best_cpu(5, do_read, &bc), t_copy = best_cpu(3, do_memcpy, &bc);
  const double read_gbs = bytes / t_read / 1e9, copy_gbs = bytes / t_copy / 1e9;
  free(dst);

  const krn_cpu *cpu = krn_cpu_features();
  const char *isas[3] = {"scalar", NULL, NULL};
  int n_isa = 1;
  if (cpu->avx2 && cpu->fma) isas[n_isa++] = "avx2";
  if (cpu->avx512f && cpu->avx512bw) isas[n_isa++] = "avx512";
  int nthreads = o.threads > 0 ? o.threads : krn_pool_threads(NULL);
  {
    krn_pool *tmp;
    if (o.threads <= 0 && krn_pool_create(&tmp, 0) == 0) nthreads = krn_pool_threads(tmp), krn_pool_free(tmp);
  }
  krn_pool *p1, *pn;
  if (krn_pool_create(&p1, 1) || krn_pool_create(&pn, nthreads)) return 1;

  if (o.json) printf("{\"read_gbs\":%.2f,\"memcpy_gbs\":%.2f,\"mb\":%zu,\"threads\":%d,\"results\":[", read_gbs,
                     copy_gbs, o.mb, nthreads);
  else {
    printf("bench_kernels: %zu MiB working set, best ISA %s, %d threads\n", o.mb, krn_isa_name(), nthreads);
    printf("reference: read %.2f GB/s, memcpy %.2f GB/s (bytes copied / s), single thread\n", read_gbs,
           copy_gbs);
    printf("(1-thread columns and the reference: per CPU-second of this thread; N threads: wall clock)\n");
    printf("%-5s %-7s %12s %10s %12s %10s %14s %12s %10s\n", "type", "isa", "1thr GB/s", "x read", "Nthr GB/s",
           "x read", "m=8 eff GB/s", "ggml 1thr", "ours/ggml");
  }
  static const int types[] = {KRN_Q4_0, KRN_Q4_1, KRN_Q5_0, KRN_Q5_1, KRN_Q8_0, KRN_Q4_K, KRN_Q4_K_X8,
                              KRN_Q5_K, KRN_Q6_K, KRN_F16,  KRN_BF16, KRN_F32};
  const size_t k = o.k;
  if (k % 32 || k == 0) {
    fprintf(stderr, "bench_kernels: --k must be a multiple of 32 (of 256 for K-quants, skipped otherwise)\n");
    return 2;
  }
  float *x = malloc(8 * k * sizeof *x);
  uint32_t s = 7;
  for (size_t i = 0; i < 8 * k; i++) x[i] = (float)(xs(&s) % 2001) / 1000.f - 1.f;
  int first = 1;
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    const int type = types[t];
    if (o.types && !strstr(o.types, krn_type_name(type))) continue;
    /* Q4_K_X8: the Q4_K matrix repacked (krn_repack), whole groups of 8 rows */
    const int x8 = type == KRN_Q4_K_X8, ftype = x8 ? KRN_Q4_K : type;
    if (k % krn_type_block_elems(ftype)) continue;
    const size_t rb = krn_row_bytes(ftype, k), n_out = bytes / rb / (x8 ? 8 : 1) * (x8 ? 8 : 1), wbytes = n_out * rb;
    fill_weights(ftype, buf, wbytes);
    if (x8 && krn_repack(KRN_Q4_K, buf, n_out, k, buf)) return 1;
    float *y = malloc(8 * n_out * sizeof *y);
    if (!y) return 1;
    double gg = 0; /* ggml single-thread GB/s on the same W, 0 if not built in */
#ifdef KRN_BENCH_GGML
    if (!x8) {
      ggml_cpu_init(); /* idempotent */
      gg_ctx g = {ggml_get_type_traits_cpu((enum ggml_type)type), buf, rb, n_out, k, x, NULL, y};
      g.xq = malloc(ggml_row_size(g.tr->vec_dot_type, (int64_t)k));
      if (g.tr->vec_dot) {
        do_ggml(&g);
        gg = wbytes / best_cpu(3, do_ggml, &g) / 1e9;
      }
      free(g.xq);
    }
#endif
    for (int ii = 0; ii < n_isa; ii++) {
      mm_ctx c = {p1, isas[ii], type, buf, n_out, k, 1, x, y};
      const int reps = !strcmp(isas[ii], "scalar") ? 1 : o.mb <= 16 ? 50 : 3;
      do_mm(&c); /* warm: page in, quantize scratch */
      const double g1 = wbytes / best_cpu(reps, do_mm, &c) / 1e9;
      c.p = pn;
      const double gn = wbytes / best_of(reps, do_mm, &c) / 1e9;
      c.m = 8;
      c.p = p1;
      const double gb = 8.0 * wbytes / best_cpu(reps, do_mm, &c) / 1e9;
      if (o.json)
        printf("%s{\"type\":\"%s\",\"isa\":\"%s\",\"gbs_1t\":%.2f,\"ratio_1t\":%.3f,\"gbs_nt\":%.2f,\"ratio_nt\":%.3f,"
               "\"m8_eff_gbs\":%.2f,\"ggml_gbs_1t\":%.2f}",
               first ? "" : ",", krn_type_name(type), isas[ii], g1, g1 / read_gbs, gn, gn / read_gbs, gb, gg);
      else if (gg > 0)
        printf("%-5s %-7s %12.2f %10.2f %12.2f %10.2f %14.2f %12.2f %10.2f\n", krn_type_name(type), isas[ii], g1,
               g1 / read_gbs, gn, gn / read_gbs, gb, gg, g1 / gg);
      else
        printf("%-5s %-7s %12.2f %10.2f %12.2f %10.2f %14.2f %12s %10s\n", krn_type_name(type), isas[ii], g1,
               g1 / read_gbs, gn, gn / read_gbs, gb, "-", "-");
      fflush(stdout);
      first = 0;
    }
    free(y);
  }
  /* decode simulation (weights ~93 MB like the model file) */
  double dms1 = 0, dmsn = 0, dmsc = 0;
  {
    uint8_t *wl[30 * 7];
    int ok = 1;
    for (int l = 0; l < 30; l++)
      for (int j = 0; j < 7; j++) {
        const size_t bytes_j = krn_row_bytes(k_layer[j].type, (size_t)k_layer[j].k) * (size_t)k_layer[j].n_out;
        wl[l * 7 + j] = malloc(bytes_j);
        if (!wl[l * 7 + j]) ok = 0;
        else fill_weights(k_layer[j].type, wl[l * 7 + j], bytes_j);
      }
    const size_t hb = krn_row_bytes(KRN_Q8_0, 576) * 49152;
    uint8_t *head = malloc(hb);
    float *yy = malloc(49152 * sizeof *yy);
    if (ok && head && yy) {
      fill_weights(KRN_Q8_0, head, hb);
      decode_ms(p1, wl, head, x, yy, 1, 0);
      dmsc = decode_ms(p1, wl, head, x, yy, 5, 1);
      dms1 = decode_ms(p1, wl, head, x, yy, 5, 0);
      dmsn = decode_ms(pn, wl, head, x, yy, 5, 0);
    }
    for (int i = 0; i < 30 * 7; i++) free(wl[i]);
    free(head), free(yy);
  }
  if (!o.json)
    printf("decode-shaped (SmolLM2-135M Q4_1 matvecs + Q8_0 lm_head, 211 matmuls): 1 thread %.2f ms/token "
           "(%.2f ms CPU), %d threads %.2f ms/token wall (%.2fx)\n",
           dms1, dmsc, nthreads, dmsn, dmsn > 0 ? dms1 / dmsn : 0);
  double pns, nns;
  pool_latency(nthreads, &pns, &nns);
  if (o.json)
    printf("],\"pool_ns\":%.0f,\"naive_threads_ns\":%.0f,\"decode_ms_1t\":%.3f,\"decode_cpu_ms_1t\":%.3f,"
           "\"decode_ms_nt\":%.3f}\n",
           pns, nns, dms1, dmsc, dmsn);
  else
    printf("pool fork/join, %d threads, 8 tasks: %.0f ns per run; create+join threads per run: %.0f ns (%.1fx)\n",
           nthreads, pns, nns, nns / (pns > 0 ? pns : 1));
  krn_pool_free(p1);
  krn_pool_free(pn);
  free(x);
  free(buf);
  return g_sink == 0x1234567 ? 3 : 0; /* never; keeps g_sink observable */
}
