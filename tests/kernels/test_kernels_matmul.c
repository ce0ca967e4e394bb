/* test_kernels_matmul.c — matmul and the small ops against references:
 *  - scalar krn_matmul_ref vs a double-precision dot of the dequantized
 *    weights with the dequantized quantized activations (dequantization is
 *    itself held to gguf's golden values in test_kernels_golden);
 *  - every SIMD level this CPU has vs the scalar reference, on random data
 *    with odd row counts, batch sizes 1..9 and 1..4 threads;
 *  - the thread pool: every task index runs exactly once, many times over;
 *  - rmsnorm / softmax / dot / axpy vs double references.
 * Tolerances are stated relative to S = sum |w_i * x_i| of each output:
 * the integer part of every block dot is exact, so only the f32 scaling
 * and summation order differ. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/krn_internal.h"
#include "kernels/cpu/krn_ops_internal.h"
#include "kernels/kernels.h"

static const int k_weight_types[] = {KRN_F32,  KRN_F16,  KRN_BF16, KRN_Q4_0, KRN_Q4_1, KRN_Q5_0,
                                     KRN_Q5_1, KRN_Q8_0, KRN_Q4_K, KRN_Q5_K, KRN_Q6_K};
#define N_TYPES (sizeof k_weight_types / sizeof k_weight_types[0])

static uint32_t rng_next(uint32_t *s) {
  *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
  return *s;
}
static float rng_f(uint32_t *s) { return (float)(rng_next(s) % 20001) / 10000.f - 1.f; }

/* Random weights of `type`: random bytes with finite f16 scale fields (the
 * shape of real data: scales ~1e-2, any quant bits). */
static void *rand_weights(int type, size_t n_out, size_t k, uint32_t *s) {
  const size_t rb = krn_row_bytes(type, k), total = rb * n_out;
  uint8_t *w = malloc(total ? total : 1);
  assert_non_null(w);
  if (type == KRN_F32) {
    for (size_t i = 0; i < n_out * k; i++) ((float *)w)[i] = rng_f(s);
    return w;
  }
  if (type == KRN_F16 || type == KRN_BF16) {
    for (size_t i = 0; i < n_out * k; i++)
      ((uint16_t *)w)[i] = type == KRN_F16 ? krn_f32_to_f16(rng_f(s)) : krn_f32_to_bf16(rng_f(s));
    return w;
  }
  for (size_t i = 0; i < total; i++) w[i] = (uint8_t)rng_next(s);
  const size_t bb = krn_type_block_bytes(type);
  int offs[2] = {0, -1};
  if (type == KRN_Q4_1 || type == KRN_Q5_1 || type == KRN_Q4_K || type == KRN_Q5_K) offs[1] = 2;
  if (type == KRN_Q6_K) offs[0] = 208;
  for (size_t b = 0; b < total / bb; b++)
    for (int j = 0; j < 2; j++) {
      if (offs[j] < 0) continue;
      uint16_t h = krn_f32_to_f16(rng_f(s) * 0.02f);
      memcpy(w + b * bb + offs[j], &h, 2);
    }
  return w;
}

/* What the activation row looks like to the kernel, dequantized. */
static void act_view(int type, const float *x, size_t k, float *out) {
  const int at = krn__act_type(type);
  if (at == KRN_F32) { memcpy(out, x, k * sizeof *x); return; }
  void *q = malloc(krn_row_bytes(at, k));
  krn__quant_scalar(at)(x, q, k);
  krn_dequant_row(at, q, out, k);
  free(q);
}

/* Q8_1 carries s = fp16(d * sum(q)) per block and the kernel uses it for the
 * weight's min term (as llama.cpp does): the correction from Σ m·x to m·s. */
static double q8_1_min_correction(int type, const uint8_t *wrow, const float *x, size_t k) {
  if (krn__act_type(type) != KRN_Q8_1) return 0;
  const size_t nb = k / 32, wb = krn_type_block_bytes(type);
  blk_q8_1 *a = malloc(nb * sizeof *a);
  krn__quant_scalar(KRN_Q8_1)(x, a, k);
  double corr = 0;
  for (size_t b = 0; b < nb; b++) {
    uint16_t mh;
    memcpy(&mh, wrow + b * wb + 2, 2);
    double sum = 0;
    for (int i = 0; i < 32; i++) sum += (double)krn_f16_to_f32(a[b].d) * a[b].qs[i];
    corr += (double)krn_f16_to_f32(mh) * ((double)krn_f16_to_f32(a[b].s) - sum);
  }
  free(a);
  return corr;
}

/* exact[c*n_out+r] and scale S for every output, in double. */
static void reference(int type, const void *W, size_t n_out, size_t k, const float *x, size_t m, double *exact,
                      double *S) {
  float *wr = malloc(k * sizeof *wr), *xr = malloc(k * m * sizeof *xr);
  for (size_t c = 0; c < m; c++) act_view(type, x + c * k, k, xr + c * k);
  const size_t rb = krn_row_bytes(type, k);
  for (size_t r = 0; r < n_out; r++) {
    krn_dequant_row(type, (const uint8_t *)W + r * rb, wr, k);
    for (size_t c = 0; c < m; c++) {
      double e = 0, s = 0;
      for (size_t i = 0; i < k; i++) {
        e += (double)wr[i] * xr[c * k + i];
        s += fabs((double)wr[i] * xr[c * k + i]);
      }
      e += q8_1_min_correction(type, (const uint8_t *)W + r * rb, x + c * k, k);
      exact[c * n_out + r] = e, S[c * n_out + r] = s;
    }
  }
  free(wr), free(xr);
}

static void test_matmul_ref_vs_dequant(void **st) {
  (void)st;
  uint32_t s = 7;
  const size_t n_out = 13, k = 768, m = 3;
  float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y);
  double *ex = malloc(m * n_out * sizeof *ex), *S = malloc(m * n_out * sizeof *S);
  for (size_t i = 0; i < m * k; i++) x[i] = rng_f(&s);
  for (size_t t = 0; t < N_TYPES; t++) {
    const int type = k_weight_types[t];
    void *W = rand_weights(type, n_out, k, &s);
    krn_matmul_ref(type, W, n_out, k, x, m, y);
    reference(type, W, n_out, k, x, m, ex, S);
    for (size_t i = 0; i < m * n_out; i++)
      if (fabs(y[i] - ex[i]) > 2e-6 * S[i] + 1e-30)
        fail_msg("%s out %zu: got %.9g want %.9g (S %.3g)", krn_type_name(type), i, y[i], ex[i], S[i]);
    free(W);
  }
  free(x), free(y), free(ex), free(S);
}

/* SIMD vs scalar for one ISA: many shapes, batch sizes and thread counts. */
static void check_isa(const char *isa) {
  uint32_t s = 99;
  static const size_t outs[] = {1, 13, 67};
  for (size_t t = 0; t < N_TYPES; t++) {
    const int type = k_weight_types[t];
    const size_t k = (krn_type_block_elems(type) == 256) ? 512 : 352; /* 11 blocks of 32 */
    for (int th = 1; th <= 4; th++) {
      krn_pool *p;
      assert_int_equal(krn_pool_create(&p, th), 0);
      for (size_t oi = 0; oi < 3; oi++)
        for (size_t m = 1; m <= 9; m += (m < 5 ? 1 : 4)) {
          const size_t n_out = outs[oi];
          void *W = rand_weights(type, n_out, k, &s);
          float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * 4), *yr = malloc(m * n_out * 4);
          double *ex = malloc(m * n_out * 8), *S = malloc(m * n_out * 8);
          for (size_t i = 0; i < m * k; i++) x[i] = rng_f(&s) * (i % 7 == 0 ? 8.f : 1.f);
          krn_matmul_isa(p, isa, type, W, n_out, k, x, m, y);
          krn_matmul_ref(type, W, n_out, k, x, m, yr);
          reference(type, W, n_out, k, x, m, ex, S);
          for (size_t i = 0; i < m * n_out; i++)
            if (!(fabs(y[i] - yr[i]) <= 2e-6 * S[i] + 1e-30))
              fail_msg("%s %s th=%d n_out=%zu m=%zu out %zu: got %.9g scalar %.9g (S %.3g)", isa,
                       krn_type_name(type), th, n_out, m, i, y[i], yr[i], S[i]);
          free(W), free(x), free(y), free(yr), free(ex), free(S);
        }
      krn_pool_free(p);
    }
  }
}

static void test_simd_vs_scalar(void **st) {
  (void)st;
  const krn_cpu *c = krn_cpu_features();
  check_isa("scalar");
  if (c->avx2 && c->fma) check_isa("avx2");
  if (c->avx512f && c->avx512bw) check_isa("avx512");
}

/* The types the default models use have real fast paths (not just the
 * scalar fallback) at every level this CPU offers. */
static void test_fast_paths_present(void **st) {
  (void)st;
  const krn_cpu *c = krn_cpu_features();
  static const int hot[] = {KRN_Q4_1, KRN_Q8_0, KRN_Q5_0, KRN_Q4_K, KRN_Q6_K, KRN_F32};
  if (!(c->avx2 && c->fma)) skip();
  for (size_t i = 0; i < sizeof hot / sizeof hot[0]; i++) {
    krn_kernels k;
    assert_int_equal(krn__kernels(hot[i], KRN_ISA_AVX2, &k), 0);
    if (k.dot == krn__dot_scalar(hot[i])) fail_msg("%s has no AVX2 dot", krn_type_name(hot[i]));
  }
}

/* Q4_K matrices with a multiple of 8 rows are summed in llama.cpp's
 * repacked orders (dot_scalar.c q4_k_r8): at every ISA, single rows and the
 * last m % 4 rows of a batch as its gemv, complete groups of 4 rows of a
 * batch of >= 4 as its gemm — each output bit-identical to the scalar
 * kernel of that order. */
static void test_q4k_repacked_order(void **st) {
  (void)st;
  const krn_cpu *c = krn_cpu_features();
  const char *isas[] = {"scalar", "avx2", "avx512"};
  const int have[] = {1, c->avx2 && c->fma, c->avx512f && c->avx512bw};
  const krn_vec_dot_fn gemv = krn__dot_scalar(KRN__Q4_K_R8), gemm = krn__dot_scalar(KRN__Q4_K_R8_GEMM);
  assert_non_null(gemv);
  assert_non_null(gemm);
  uint32_t s = 4242;
  const size_t k = 1024, rb = krn_row_bytes(KRN_Q4_K, k), ab = krn_row_bytes(KRN_Q8_K, k);
  int orders_differ = 0;
  for (int ii = 0; ii < 3; ii++) {
    if (!have[ii]) continue;
    for (int th = 1; th <= 2; th++) {
      krn_pool *p;
      assert_int_equal(krn_pool_create(&p, th), 0);
      for (size_t n_out = 8; n_out <= 24; n_out += 16)
        for (size_t m = 1; m <= 9; m++) {
          uint8_t *W = rand_weights(KRN_Q4_K, n_out, k, &s), *aq = malloc(ab);
          float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y);
          for (size_t i = 0; i < m * k; i++) x[i] = rng_f(&s) * (i % 7 == 0 ? 8.f : 1.f);
          krn_matmul_isa(p, isas[ii], KRN_Q4_K, W, n_out, k, x, m, y);
          for (size_t row = 0; row < m; row++) {
            krn__quant_scalar(KRN_Q8_K)(x + row * k, aq, k);
            const int g4 = m >= 4 && row < m - m % 4;
            for (size_t r = 0; r < n_out; r++) {
              const float want = (g4 ? gemm : gemv)(k, W + r * rb, aq);
              const float other = (g4 ? gemv : gemm)(k, W + r * rb, aq);
              orders_differ += want != other;
              if (memcmp(&want, &y[row * n_out + r], sizeof want))
                fail_msg("%s th=%d n_out=%zu m=%zu row %zu out %zu: got %.9g want %.9g (%s order)", isas[ii], th, n_out,
                         m, row, r, y[row * n_out + r], want, g4 ? "gemm" : "gemv");
            }
          }
          free(W), free(aq), free(x), free(y);
        }
      krn_pool_free(p);
    }
  }
  /* the two orders are distinct sums (else this test could not tell them apart) */
  assert_true(orders_differ > 0);
}

/* The batch path runs up to 8 activation rows per weight row (AVX-512),
 * the decode path (m = 1) 4 weight rows per call: each output must still
 * be the bits of that level's single-row kernel
 * (ggml's order), for every 32-element block type, with batch sizes that
 * leave partial groups. */
static void test_grouped_kernels_same_as_single(void **st) {
  (void)st;
  const krn_cpu *c = krn_cpu_features();
  static const int types[] = {KRN_Q4_0, KRN_Q4_1, KRN_Q5_0, KRN_Q5_1, KRN_Q8_0};
  const int isas[] = {KRN_ISA_AVX2, KRN_ISA_AVX512};
  const char *names[] = {"avx2", "avx512"};
  const int have[] = {c->avx2 && c->fma, c->avx512f && c->avx512bw};
  uint32_t s = 31337;
  const size_t k = 640, n_out = 11;
  int checked = 0;
  for (int ii = 0; ii < 2; ii++) {
    if (!have[ii]) continue;
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
      krn_kernels kk;
      assert_int_equal(krn__kernels(types[t], isas[ii], &kk), 0);
      assert_non_null(kk.dot_wrows); /* m = 1 below runs 4 weight rows per call, then single rows */
      const size_t rb = krn_row_bytes(types[t], k), ab = krn__act_row_bytes(kk.act_type, k);
      for (size_t m = 1; m <= 11; m += 5) {
        uint8_t *W = rand_weights(types[t], n_out, k, &s), *aq = malloc(ab);
        float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y);
        for (size_t i = 0; i < m * k; i++) x[i] = rng_f(&s) * (i % 7 == 0 ? 8.f : 1.f);
        krn_matmul_isa(NULL, names[ii], types[t], W, n_out, k, x, m, y);
        for (size_t row = 0; row < m; row++) {
          krn__act_quant_row(kk.act_type, kk.quant, x + row * k, aq, k);
          for (size_t r = 0; r < n_out; r++) {
            const float want = kk.dot(k, W + r * rb, aq);
            if (memcmp(&want, &y[row * n_out + r], 4))
              fail_msg("%s %s m=%zu row %zu out %zu: got %.9g, single-row kernel %.9g", names[ii], krn_type_name(types[t]),
                       m, row, r, y[row * n_out + r], want);
            checked++;
          }
        }
        free(W), free(aq), free(x), free(y);
      }
    }
  }
  if (!checked) skip();
}

/* krn_matmul_n (Q/K/V, gate/up as one job): every part's y has the bits of
 * krn_matmul on that matrix alone, for mixed types sharing one activation
 * format (Q4_K repacked order + Q6_K: Q8_K), a second format (Q4_0: Q8_0)
 * and float weights, decode and batch, with and without a pool; a part with
 * a bad shape gets NaN without disturbing the others. */
static void test_matmul_n_same_as_single(void **st) {
  (void)st;
  static const int types[] = {KRN_Q4_K, KRN_Q6_K, KRN_Q4_0, KRN_F32};
  static const size_t n_outs[] = {24, 13, 7, 5};
  const size_t k = 512;
  uint32_t s = 9001;
  krn_pool *p;
  assert_int_equal(krn_pool_create(&p, 3), 0);
  void *W[4];
  for (int i = 0; i < 4; i++) W[i] = rand_weights(types[i], n_outs[i], k, &s);
  for (int pool = 0; pool < 2; pool++)
    for (size_t m = 1; m <= 6; m += 5) {
      float *x = malloc(m * k * sizeof *x), *y[4], *want = malloc(m * 24 * sizeof *want);
      for (size_t i = 0; i < m * k; i++) x[i] = rng_f(&s) * (i % 9 == 0 ? 4.f : 1.f);
      krn_mm_part parts[4];
      for (int i = 0; i < 4; i++) {
        y[i] = malloc(m * n_outs[i] * sizeof *y[i]);
        parts[i] = (krn_mm_part){types[i], W[i], n_outs[i], y[i]};
      }
      krn_matmul_n(pool ? p : NULL, parts, 4, k, x, m);
      for (int i = 0; i < 4; i++) {
        krn_matmul(pool ? p : NULL, types[i], W[i], n_outs[i], k, x, m, want);
        if (memcmp(want, y[i], m * n_outs[i] * sizeof *want))
          fail_msg("matmul_n part %d (%s) m=%zu pool=%d differs from krn_matmul", i, krn_type_name(types[i]), m, pool);
      }
      /* k = 500 is no multiple of any block: the quantized parts get NaN, F32 still works */
      float *yb = malloc(m * 7 * sizeof *yb), *yf = malloc(m * 5 * sizeof *yf);
      krn_mm_part bad[2] = {{KRN_Q4_0, W[2], 7, yb}, {KRN_F32, W[3], 5, yf}};
      krn_matmul_n(pool ? p : NULL, bad, 2, 500, x, m);
      assert_true(isnan(yb[0]) && isnan(yb[m * 7 - 1]));
      krn_matmul(NULL, KRN_F32, W[3], 5, 500, x, m, want);
      assert_memory_equal(want, yf, m * 5 * sizeof *yf);
      for (int i = 0; i < 4; i++) free(y[i]);
      free(x), free(want), free(yb), free(yf);
    }
  for (int i = 0; i < 4; i++) free(W[i]);
  krn_pool_free(p);
}

/* Types summed in ggml's vec_dot order at every SIMD level give the same
 * bits at AVX2 and AVX-512: the 32-element block types (AVX-512: two
 * outputs per register, matvec over 4 weight rows, batch over 4 activation
 * rows; row counts that leave partial groups), Q4_K with a row count
 * llama.cpp does not repack, Q6_K. */
static void test_ggml_order_same_across_isas(void **st) {
  (void)st;
  const krn_cpu *c = krn_cpu_features();
  if (!(c->avx2 && c->fma && c->avx512f && c->avx512bw && c->avx512vnni)) skip();
  static const int types[] = {KRN_Q4_0, KRN_Q4_1, KRN_Q5_0, KRN_Q5_1, KRN_Q8_0, KRN_Q4_K, KRN_Q6_K};
  uint32_t s = 777;
  const size_t k = 768, n_out = 13;
  krn_pool *p;
  assert_int_equal(krn_pool_create(&p, 2), 0);
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++)
    for (size_t m = 1; m <= 9; m++) {
      void *W = rand_weights(types[t], n_out, k, &s);
      float *x = malloc(m * k * sizeof *x), *y2 = malloc(m * n_out * 4), *y5 = malloc(m * n_out * 4);
      for (size_t i = 0; i < m * k; i++) x[i] = rng_f(&s) * (i % 5 == 0 ? 16.f : 1.f);
      krn_matmul_isa(p, "avx2", types[t], W, n_out, k, x, m, y2);
      krn_matmul_isa(p, "avx512", types[t], W, n_out, k, x, m, y5);
      for (size_t i = 0; i < m * n_out; i++)
        if (memcmp(&y2[i], &y5[i], 4))
          fail_msg("%s m=%zu out %zu: avx2 %.9g avx512 %.9g", krn_type_name(types[t]), m, i, y2[i], y5[i]);
      free(W), free(x), free(y2), free(y5);
    }
  krn_pool_free(p);
}

typedef struct {
  _Atomic int *hits;
} pool_ctx;
static void count_task(void *ctx, int i) { atomic_fetch_add(&((pool_ctx *)ctx)->hits[i], 1); }

static void test_pool(void **st) {
  (void)st;
  static const int counts[] = {0, 1, 2, 7, 64, 1000};
  _Atomic int *hits = calloc(1000, sizeof *hits);
  pool_ctx c = {hits};
  for (int th = 1; th <= 4; th++) {
    krn_pool *p;
    assert_int_equal(krn_pool_create(&p, th), 0);
    assert_int_equal(krn_pool_threads(p), th);
    for (int rep = 0; rep < 300; rep++)
      for (size_t ci = 0; ci < sizeof counts / sizeof counts[0]; ci++) {
        const int n = counts[ci];
        for (int i = 0; i < n; i++) atomic_store(&hits[i], 0);
        krn_pool_run(p, count_task, &c, n);
        for (int i = 0; i < n; i++)
          if (atomic_load(&hits[i]) != 1) fail_msg("threads %d n %d task %d ran %d times", th, n, i, hits[i]);
      }
    krn_pool_free(p);
  }
  /* NULL pool runs inline */
  atomic_store(&hits[0], 0), atomic_store(&hits[1], 0);
  krn_pool_run(NULL, count_task, &c, 2);
  assert_int_equal(atomic_load(&hits[0]) + atomic_load(&hits[1]), 2);
  free(hits);
}

/* Misuse that must stay correct: a task calling back into its pool
 * (krn_pool_run and krn_matmul nested), and threads sharing one pool. Each
 * caller has its own activations, so mixing up jobs changes outputs. */
enum { SH_OUT = 37, SH_K = 256, SH_M = 3, SH_SETS = 8 };
typedef struct {
  krn_pool *p;
  const void *W;
  float x[SH_SETS][SH_K * SH_M];
  float want[SH_SETS][SH_OUT * SH_M];
  _Atomic int bad;
} share_ctx;

static void nested_task(void *ctx, int i) {
  share_ctx *c = ctx;
  float y[SH_OUT * SH_M];
  krn_matmul(c->p, KRN_Q4_K, c->W, SH_OUT, SH_K, c->x[i % SH_SETS], SH_M, y);
  if (memcmp(y, c->want[i % SH_SETS], sizeof y)) atomic_fetch_add(&c->bad, 1);
}

typedef struct {
  share_ctx *c;
  int id;
} share_arg;
static void *share_thread(void *arg) {
  share_arg *a = arg;
  for (int r = 0; r < 40; r++) nested_task(a->c, a->id + 2 * r);
  return NULL;
}

static void test_pool_nested_and_shared(void **st) {
  (void)st;
  uint32_t s = 11;
  share_ctx *c = calloc(1, sizeof *c);
  c->W = rand_weights(KRN_Q4_K, SH_OUT, SH_K, &s);
  for (int k = 0; k < SH_SETS; k++)
    for (int i = 0; i < SH_K * SH_M; i++) c->x[k][i] = rng_f(&s);
  assert_int_equal(krn_pool_create(&c->p, 3), 0);
  for (int k = 0; k < SH_SETS; k++) krn_matmul_ref(KRN_Q4_K, c->W, SH_OUT, SH_K, c->x[k], SH_M, c->want[k]);
  /* the pool's own ISA may differ from the reference in the last bits */
  for (int k = 0; k < SH_SETS; k++) krn_matmul(c->p, KRN_Q4_K, c->W, SH_OUT, SH_K, c->x[k], SH_M, c->want[k]);
  for (int rep = 0; rep < 20; rep++) krn_pool_run(c->p, nested_task, c, 24); /* matmul from inside tasks */
  pthread_t th[2];
  share_arg args[3] = {{c, 0}, {c, 1}, {c, 5}};
  for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, share_thread, &args[i]), 0);
  share_thread(&args[2]);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  assert_int_equal(atomic_load(&c->bad), 0);
  krn_pool_free(c->p);
  free((void *)c->W);
  free(c);
}

static void test_bad_shapes_fill_nan(void **st) {
  (void)st;
  uint8_t W[144 * 2] = {0};
  float x[300] = {0}, y[2] = {0, 0};
  krn_matmul(NULL, KRN_Q4_K, W, 2, 100, x, 1, y); /* k not a multiple of 256 */
  assert_true(isnan(y[0]) && isnan(y[1]));
  y[0] = y[1] = 0;
  krn_matmul(NULL, KRN_Q8_K, W, 2, 256, x, 1, y); /* activation-only type */
  assert_true(isnan(y[0]) && isnan(y[1]));
}

static void test_ops(void **st) {
  (void)st;
  uint32_t s = 5;
  for (size_t n = 1; n < 300; n += 37) {
    float *a = malloc(n * 4), *b = malloc(n * 4), *w = malloc(n * 4), *o = malloc(n * 4), *y1 = malloc(n * 4),
          *y2 = malloc(n * 4);
    double S = 0, e = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
      a[i] = rng_f(&s), b[i] = rng_f(&s), w[i] = rng_f(&s);
      e += (double)a[i] * b[i], S += fabs((double)a[i] * b[i]), ss += (double)a[i] * a[i];
    }
    assert_true(fabs(krn_dot_f32(a, b, n) - e) <= 1e-6 * S + 1e-12);
    assert_true(fabs(krn__dot_f32_ref(a, b, n) - e) <= 1e-6 * S + 1e-12);
    /* rmsnorm with Gemma's offset-by-one weights */
    krn_rmsnorm(o, a, w, n, 1e-6f, 1.0f);
    const double sc = 1.0 / sqrt(ss / n + 1e-6);
    for (size_t i = 0; i < n; i++) assert_true(fabs(o[i] - a[i] * sc * (w[i] + 1.0)) <= 1e-5 * fabs(a[i] * sc) * 3);
    /* axpy: SIMD and scalar agree exactly up to FMA rounding */
    memcpy(y1, b, n * 4), memcpy(y2, b, n * 4);
    krn_axpy_f32(y1, 0.37f, a, n);
    krn__axpy_f32_ref(y2, 0.37f, a, n);
    for (size_t i = 0; i < n; i++) assert_true(fabsf(y1[i] - y2[i]) <= 1e-6f * (fabsf(y2[i]) + 1));
    /* softmax sums to 1 and matches exp ratios */
    memcpy(y1, a, n * 4);
    for (size_t i = 0; i < n; i++) y1[i] *= 30.f;
    krn_softmax(y1, n);
    double tot = 0, mx = -1e30, z = 0;
    for (size_t i = 0; i < n; i++) tot += y1[i], mx = fmax(mx, 30.0 * a[i]);
    for (size_t i = 0; i < n; i++) z += exp(30.0 * a[i] - mx);
    assert_true(fabs(tot - 1.0) < 1e-5);
    for (size_t i = 0; i < n; i++) assert_true(fabs(y1[i] - exp(30.0 * a[i] - mx) / z) < 1e-6);
    free(a), free(b), free(w), free(o), free(y1), free(y2);
  }
  float masked[3] = {-INFINITY, -INFINITY, -INFINITY};
  krn_softmax(masked, 3);
  assert_true(masked[0] == 0 && masked[2] == 0);
}

/* The vectorized exp behind softmax vs libm's double exp, across its range. */
static void test_exp_and_softmax_simd(void **st) {
  (void)st;
#if defined(__x86_64__)
  const krn_cpu *c = krn_cpu_features();
  if (!(c->avx2 && c->fma)) skip();
  enum { N = 20001 };
  float *x = malloc(N * 4), *y = malloc(N * 4);
  for (int i = 0; i < N; i++) x[i] = -87.0f + 175.0f * (float)i / (N - 1);
  krn__exp_avx2(y, x, N);
  double worst = 0;
  for (int i = 0; i < N; i++) {
    const double e = exp((double)x[i]), rel = fabs(y[i] - e) / e;
    if (rel > worst) worst = rel;
  }
  print_message("exp avx2: worst relative error %.3g over [-87, 88]\n", worst);
  assert_true(worst < 4e-7);
  x[0] = -INFINITY, x[1] = -100.f;
  krn__exp_avx2(y, x, 8);
  assert_true(y[0] == 0.f && y[1] == 0.f);
  /* softmax: SIMD vs reference on odd lengths with masked entries */
  uint32_t s = 3;
  for (size_t n = 1; n < 200; n += 13) {
    for (size_t i = 0; i < n; i++) x[i] = y[i] = (i % 11 == 5) ? -INFINITY : rng_f(&s) * 20.f;
    krn__softmax_avx2(x, n);
    krn__softmax_ref(y, n);
    for (size_t i = 0; i < n; i++) assert_true(fabsf(x[i] - y[i]) <= 1e-6f * y[i] + 1e-9f);
  }
  free(x), free(y);
#else
  skip();
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_matmul_ref_vs_dequant), cmocka_unit_test(test_simd_vs_scalar),
      cmocka_unit_test(test_fast_paths_present),    cmocka_unit_test(test_pool),
      cmocka_unit_test(test_bad_shapes_fill_nan),   cmocka_unit_test(test_ops),
      cmocka_unit_test(test_exp_and_softmax_simd),  cmocka_unit_test(test_pool_nested_and_shared),
      cmocka_unit_test(test_q4k_repacked_order),    cmocka_unit_test(test_ggml_order_same_across_isas),
      cmocka_unit_test(test_grouped_kernels_same_as_single), cmocka_unit_test(test_matmul_n_same_as_single),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
