/* test_kernels_repack.c — Q4_K matrices repacked into KRN_Q4_K_X8 (repack.c,
 * q4k_x8_body.h) against the existing scalar Q4_K dots:
 *  - every output of krn_matmul on the repacked matrix, at every ISA level
 *    this CPU has, 1..3 threads, odd shapes and batch sizes 1..13, is
 *    bit-identical to dot_scalar.c's q4_k_r8 kernel of the order llama.cpp
 *    uses for that row (gemv: single rows and the last m % 4; gemm: complete
 *    groups of 4) on the original rows;
 *  - each level's group kernel called directly, nr 1 and 4, the same;
 *  - the largest values the layout allows (all quants 15, all scales and
 *    mins 63, activations at ±127) stay exact (no int16 overflow);
 *  - the result is also right in absolute terms: within 1e-5 of Σ|w·x| of a
 *    double dot of the dequantized weights and activations;
 *  - in-place repack equals out-of-place; rows % 8 != 0 and other types are
 *    refused (the plain Q4_K path stays, and still matches); a repacked
 *    matrix given a row count that is not a multiple of 8 fills NaN;
 *    krn_matmul_n with a repacked part gives each part's single bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/krn_internal.h"
#include "kernels/kernels.h"

static uint32_t rng_next(uint32_t *s) {
  *s ^= *s << 13, *s ^= *s >> 17, *s ^= *s << 5;
  return *s;
}
static float rng_f(uint32_t *s) { return (float)(rng_next(s) % 20001) / 10000.f - 1.f; }

/* Random Q4_K rows: any quant and scale bits, finite small d and dmin. */
static uint8_t *rand_q4k(size_t n_out, size_t k, uint32_t *s) {
  const size_t total = krn_row_bytes(KRN_Q4_K, k) * n_out;
  uint8_t *w = malloc(total);
  assert_non_null(w);
  for (size_t i = 0; i < total; i++) w[i] = (uint8_t)rng_next(s);
  for (size_t b = 0; b < total / sizeof(blk_q4_k); b++) {
    blk_q4_k *x = (blk_q4_k *)w + b;
    x->d = krn_f32_to_f16(rng_f(s) * 0.02f);
    x->dmin = krn_f32_to_f16(rng_f(s) * 0.02f);
  }
  return w;
}

static uint8_t *repacked(const uint8_t *W, size_t n_out, size_t k) {
  const size_t total = krn_row_bytes(KRN_Q4_K, k) * n_out;
  uint8_t *p = malloc(total);
  assert_non_null(p);
  memset(p, 0xA5, total);
  assert_int_equal(krn_repack(KRN_Q4_K, W, n_out, k, p), 0);
  return p;
}

static void rand_x(float *x, size_t n, uint32_t *s) {
  for (size_t i = 0; i < n; i++) x[i] = rng_f(s) * (i % 7 == 0 ? 8.f : 1.f);
}

/* Output (row, r) of the batch as dot_scalar.c's q4_k_r8 of that row's order. */
static void want_outputs(const uint8_t *W, size_t n_out, size_t k, const float *x, size_t m, float *want) {
  const krn_vec_dot_fn gemv = krn__dot_scalar(KRN__Q4_K_R8), gemm = krn__dot_scalar(KRN__Q4_K_R8_GEMM);
  assert_non_null(gemv);
  assert_non_null(gemm);
  const size_t rb = krn_row_bytes(KRN_Q4_K, k);
  uint8_t *aq = malloc(krn_row_bytes(KRN_Q8_K, k));
  assert_non_null(aq);
  for (size_t row = 0; row < m; row++) {
    krn__quant_scalar(KRN_Q8_K)(x + row * k, aq, k);
    const int g4 = m >= 4 && row < m - m % 4;
    for (size_t r = 0; r < n_out; r++) want[row * n_out + r] = (g4 ? gemm : gemv)(k, W + r * rb, aq);
  }
  free(aq);
}

static const char *k_isas[] = {"scalar", "avx2", "avx512"};
static int have_isa(int i) {
  const krn_cpu *c = krn_cpu_features();
  return i == 0 || (i == 1 && c->avx2 && c->fma) || (i == 2 && c->avx512f && c->avx512bw);
}

static void test_repack_type(void **st) {
  (void)st;
  assert_int_equal(krn_repack_type(KRN_Q4_K, 8, 256), KRN_Q4_K_X8);
  assert_int_equal(krn_repack_type(KRN_Q4_K, 3584, 18944), KRN_Q4_K_X8);
  assert_int_equal(krn_repack_type(KRN_Q4_K, 12, 256), -1);
  assert_int_equal(krn_repack_type(KRN_Q4_K, 0, 256), -1);
  assert_int_equal(krn_repack_type(KRN_Q4_K, 8, 200), -1);
  assert_int_equal(krn_repack_type(KRN_Q6_K, 8, 256), -1);
  assert_int_equal(krn_repack_type(KRN_Q4_0, 8, 256), -1);
  uint8_t buf[144 * 12];
  memset(buf, 1, sizeof buf);
  assert_int_equal(krn_repack(KRN_Q4_K, buf, 12, 256, buf), -1);
  assert_int_equal(buf[100], 1); /* refused: untouched */
  assert_int_equal(krn_type_block_bytes(KRN_Q4_K_X8), 0);
  assert_int_equal(krn_type_is_weight(KRN_Q4_K_X8), 0);
}

/* krn_matmul on the repacked matrix, every level, threads and shapes. */
static void test_x8_matmul_vs_scalar(void **st) {
  (void)st;
  static const size_t shapes[][2] = {{8, 256}, {16, 768}, {40, 512}, {136, 1280}, {24, 3584}};
  static const size_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 13};
  uint32_t s = 1919;
  int checked = 0;
  for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
    const size_t n_out = shapes[sh][0], k = shapes[sh][1];
    uint8_t *W = rand_q4k(n_out, k, &s), *P = repacked(W, n_out, k);
    for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
      const size_t m = ms[mi];
      float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y), *want = malloc(m * n_out * sizeof *want);
      assert_true(x && y && want);
      rand_x(x, m * k, &s);
      want_outputs(W, n_out, k, x, m, want);
      for (int ii = 0; ii < 3; ii++) {
        if (!have_isa(ii)) continue;
        for (int th = 1; th <= 3; th++) {
          krn_pool *p;
          assert_int_equal(krn_pool_create(&p, th), 0);
          memset(y, 0xFF, m * n_out * sizeof *y);
          krn_matmul_isa(p, k_isas[ii], KRN_Q4_K_X8, P, n_out, k, x, m, y);
          for (size_t i = 0; i < m * n_out; i++)
            if (memcmp(&y[i], &want[i], sizeof *y))
              fail_msg("%s th=%d n_out=%zu k=%zu m=%zu out %zu (row %zu col %zu): got %.9g want %.9g", k_isas[ii], th,
                       n_out, k, m, i, i / n_out, i % n_out, y[i], want[i]);
          checked++;
          krn_pool_free(p);
        }
      }
      /* the process-wide entry points take it too */
      krn_matmul_ref(KRN_Q4_K_X8, P, n_out, k, x, m, y);
      assert_memory_equal(y, want, m * n_out * sizeof *y);
      krn_matmul(NULL, KRN_Q4_K_X8, P, n_out, k, x, m, y);
      assert_memory_equal(y, want, m * n_out * sizeof *y);
      free(x), free(y), free(want);
    }
    free(W), free(P);
  }
  assert_true(checked > 0);
}

/* Each level's group kernel directly, nr = 1 (gemv) and nr = 4 (gemm). */
static void test_x8_kernels_direct(void **st) {
  (void)st;
  krn_x8_fn fns[3] = {krn__x8_scalar(), krn__x8_avx2(), krn__x8_avx512()};
  const krn_cpu *c = krn_cpu_features();
  assert_non_null(fns[0]);
  if (c->avx2 && c->fma && c->f16c) assert_non_null(fns[1]);
  if (c->avx512vnni && c->avx512bw) assert_non_null(fns[2]);
  const krn_vec_dot_fn gemv = krn__dot_scalar(KRN__Q4_K_R8), gemm = krn__dot_scalar(KRN__Q4_K_R8_GEMM);
  uint32_t s = 77;
  for (size_t k = 256; k <= 2048; k += 768) {
    const size_t rb = krn_row_bytes(KRN_Q4_K, k), ab = krn_row_bytes(KRN_Q8_K, k);
    uint8_t *W = rand_q4k(8, k, &s), *P = repacked(W, 8, k), *a = malloc(4 * ab);
    float *x = malloc(k * sizeof *x);
    assert_true(a && x);
    for (int i = 0; i < 4; i++) {
      rand_x(x, k, &s);
      krn__quant_scalar(KRN_Q8_K)(x, a + i * ab, k);
    }
    for (int f = 0; f < 3; f++) {
      if (!fns[f]) continue;
      float out[32];
      fns[f](k, P, a, ab, 1, out);
      for (int r = 0; r < 8; r++) {
        const float w = gemv(k, W + r * rb, a);
        if (memcmp(&w, &out[r], 4)) fail_msg("level %d gemv k=%zu row %d: %.9g vs %.9g", f, k, r, out[r], w);
      }
      fns[f](k, P, a, ab, 4, out);
      for (int i = 0; i < 4; i++)
        for (int r = 0; r < 8; r++) {
          const float w = gemm(k, W + r * rb, a + i * ab);
          if (memcmp(&w, &out[8 * i + r], 4))
            fail_msg("level %d gemm k=%zu act %d row %d: %.9g vs %.9g", f, k, i, r, out[8 * i + r], w);
        }
    }
    free(W), free(P), free(a), free(x);
  }
}

/* The largest sums the layout meets: quants 15, scales and mins 63,
 * activations all at +127 or alternating ±127, must be exact. */
static void test_x8_extremes(void **st) {
  (void)st;
  const size_t n_out = 16, k = 512, nb = k / QK_K;
  uint8_t *W = malloc(krn_row_bytes(KRN_Q4_K, k) * n_out);
  assert_non_null(W);
  for (size_t b = 0; b < n_out * nb; b++) {
    blk_q4_k *x = (blk_q4_k *)W + b;
    memset(x->qs, b % 3 ? 0xFF : 0xF0, sizeof x->qs);
    memset(x->scales, 0xFF, sizeof x->scales);
    x->d = krn_f32_to_f16(0.5f + (float)(b % 5));
    x->dmin = krn_f32_to_f16(0.25f);
  }
  uint8_t *P = repacked(W, n_out, k);
  for (int pat = 0; pat < 2; pat++)
    for (size_t m = 1; m <= 5; m += 3) {
      float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y), *want = malloc(m * n_out * sizeof *want);
      assert_true(x && y && want);
      for (size_t i = 0; i < m * k; i++) x[i] = pat == 0 || i % 2 ? 3.0f : -3.0f;
      want_outputs(W, n_out, k, x, m, want);
      for (int ii = 0; ii < 3; ii++) {
        if (!have_isa(ii)) continue;
        krn_matmul_isa(NULL, k_isas[ii], KRN_Q4_K_X8, P, n_out, k, x, m, y);
        for (size_t i = 0; i < m * n_out; i++)
          if (memcmp(&y[i], &want[i], sizeof *y))
            fail_msg("%s pattern %d m=%zu out %zu: got %.9g want %.9g", k_isas[ii], pat, m, i, y[i], want[i]);
      }
      free(x), free(y), free(want);
    }
  free(W), free(P);
}

/* Against an independent double-precision dot of what the blocks mean. */
static void test_x8_vs_dequant(void **st) {
  (void)st;
  const size_t n_out = 32, k = 1024, m = 5;
  uint32_t s = 5150;
  uint8_t *W = rand_q4k(n_out, k, &s), *P = repacked(W, n_out, k), *aq = malloc(krn_row_bytes(KRN_Q8_K, k));
  float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y), *wf = malloc(k * sizeof *wf),
        *xf = malloc(k * sizeof *xf);
  assert_true(aq && x && y && wf && xf);
  rand_x(x, m * k, &s);
  krn_matmul(NULL, KRN_Q4_K_X8, P, n_out, k, x, m, y);
  for (size_t row = 0; row < m; row++) {
    krn__quant_scalar(KRN_Q8_K)(x + row * k, aq, k);
    krn_dequant_row(KRN_Q8_K, aq, xf, k);
    for (size_t r = 0; r < n_out; r++) {
      krn_dequant_row(KRN_Q4_K, W + r * krn_row_bytes(KRN_Q4_K, k), wf, k);
      double e = 0, S = 0;
      for (size_t i = 0; i < k; i++) e += (double)wf[i] * xf[i], S += fabs((double)wf[i] * xf[i]);
      if (fabs(y[row * n_out + r] - e) > 1e-5 * S + 1e-30)
        fail_msg("row %zu out %zu: %.9g vs exact %.9g (S %.3g)", row, r, y[row * n_out + r], e, S);
    }
  }
  free(W), free(P), free(aq), free(x), free(y), free(wf), free(xf);
}

static void test_in_place_and_fallback(void **st) {
  (void)st;
  uint32_t s = 31337;
  const size_t k = 768, n_out = 24, total = krn_row_bytes(KRN_Q4_K, k) * n_out;
  uint8_t *W = rand_q4k(n_out, k, &s), *P = repacked(W, n_out, k), *Q = malloc(total);
  assert_non_null(Q);
  memcpy(Q, W, total);
  assert_int_equal(krn_repack(KRN_Q4_K, Q, n_out, k, Q), 0);
  assert_memory_equal(P, Q, total);
  assert_true(memcmp(P, W, total) != 0);
  /* 12 rows: not repackable; the plain path still gives the scalar bits (gemv order for every row, as llama.cpp
   * does not repack it: q4_k's own vec_dot, held elsewhere), and a repacked matrix claimed to have 12 rows is NaN */
  const size_t m = 3, n12 = 12;
  float *x = malloc(m * k * sizeof *x), *y = malloc(m * n_out * sizeof *y), *r = malloc(m * n_out * sizeof *r);
  assert_true(x && y && r);
  rand_x(x, m * k, &s);
  for (int ii = 0; ii < 3; ii++) {
    if (!have_isa(ii)) continue;
    krn_matmul_isa(NULL, k_isas[ii], KRN_Q4_K, W, n12, k, x, m, y);
    krn_matmul_ref(KRN_Q4_K, W, n12, k, x, m, r);
    for (size_t i = 0; i < m * n12; i++) assert_true(fabsf(y[i] - r[i]) <= 1e-5f * (fabsf(r[i]) + 1.f));
    krn_matmul_isa(NULL, k_isas[ii], KRN_Q4_K_X8, P, n12, k, x, m, y);
    for (size_t i = 0; i < m * n12; i++) assert_true(isnan(y[i]));
  }
  /* krn_matmul_n: a repacked part next to a plain one */
  uint8_t *W6 = malloc(krn_row_bytes(KRN_Q6_K, k) * 16);
  assert_non_null(W6);
  for (size_t i = 0; i < krn_row_bytes(KRN_Q6_K, k) * 16; i++) W6[i] = (uint8_t)rng_next(&s);
  for (size_t b = 0; b < krn_row_bytes(KRN_Q6_K, k) * 16 / sizeof(blk_q6_k); b++)
    ((blk_q6_k *)W6)[b].d = krn_f32_to_f16(0.01f);
  float *y6 = malloc(m * 16 * sizeof *y6), *r6 = malloc(m * 16 * sizeof *r6);
  assert_true(y6 && r6);
  krn_pool *p;
  assert_int_equal(krn_pool_create(&p, 2), 0);
  const krn_mm_part parts[2] = {{KRN_Q4_K_X8, P, n_out, y}, {KRN_Q6_K, W6, 16, y6}};
  krn_matmul_n(p, parts, 2, k, x, m);
  krn_matmul(p, KRN_Q4_K, W, n_out, k, x, m, r);
  assert_memory_equal(y, r, m * n_out * sizeof *y);
  krn_matmul(p, KRN_Q6_K, W6, 16, k, x, m, r6);
  assert_memory_equal(y6, r6, m * 16 * sizeof *y6);
  krn_pool_free(p);
  free(W), free(P), free(Q), free(x), free(y), free(r), free(W6), free(y6), free(r6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_repack_type),       cmocka_unit_test(test_x8_matmul_vs_scalar),
      cmocka_unit_test(test_x8_kernels_direct), cmocka_unit_test(test_x8_extremes),
      cmocka_unit_test(test_x8_vs_dequant),     cmocka_unit_test(test_in_place_and_fallback),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
