/* test_kernels_ggml.c — krn_matmul (scalar reference and every SIMD level
 * this CPU has) against llama.cpp's own CPU kernels: fixtures/mm_<type>.bin
 * hold weights quantized by ggml's quantizers, activations, and the outputs
 * of ggml's vec_dot after ggml's activation conversion (made by
 * tests/reference/kernels/make_ggml_fixtures.sh). Since both sides quantize
 * activations the same way and sum integer block products exactly, outputs
 * must agree to f32 summation-order noise: |ours - ggml| <= 1e-6 · S, where
 * S = Σ|w_i·x_i| for that output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kernels/kernels.h"

#define FIXDIR KVASIR_SOURCE_DIR "/tests/reference/kernels/fixtures"

static void check_file(const char *name, krn_pool *pool, double *worst) {
  char path[1024], *buf;
  size_t len;
  kv_err err;
  snprintf(path, sizeof path, "%s/%s", FIXDIR, name);
  assert_int_equal(kv_read_file(path, 1 << 22, &buf, &len, &err), 0);
  assert_true(len >= 24 && !memcmp(buf, "KRNM", 4));
  uint32_t h[5];
  memcpy(h, buf + 4, 20);
  const int type = (int)h[1];
  const size_t n_out = h[2], k = h[3], m = h[4], rb = krn_row_bytes(type, k);
  assert_int_equal(h[0], 1);
  assert_true(rb > 0);
  assert_int_equal(len, 24 + rb * n_out + 4 * (m * k + m * n_out));
  void *W = malloc(rb * n_out);
  float *x = malloc(4 * m * k), *yg = malloc(4 * m * n_out), *y = malloc(4 * m * n_out), *wr = malloc(4 * k);
  double *S = calloc(m * n_out, sizeof *S);
  memcpy(W, buf + 24, rb * n_out);
  memcpy(x, buf + 24 + rb * n_out, 4 * m * k);
  memcpy(yg, buf + 24 + rb * n_out + 4 * m * k, 4 * m * n_out);
  for (size_t r = 0; r < n_out; r++) {
    krn_dequant_row(type, (const uint8_t *)W + r * rb, wr, k);
    for (size_t c = 0; c < m; c++)
      for (size_t i = 0; i < k; i++) S[c * n_out + r] += fabs((double)wr[i] * x[c * k + i]);
  }
  static const char *isas[] = {"ref", "scalar", "avx2", "avx512"};
  for (int ii = 0; ii < 4; ii++) {
    if (ii == 0) krn_matmul_ref(type, W, n_out, k, x, m, y);
    else krn_matmul_isa(pool, isas[ii], type, W, n_out, k, x, m, y);
    for (size_t i = 0; i < m * n_out; i++) {
      const double dev = fabs((double)y[i] - yg[i]) / S[i];
      if (dev > *worst) *worst = dev;
      if (!(dev <= 1e-6))
        fail_msg("%s (%s, isa %s) out %zu: ours %.9g ggml %.9g (S %.4g)", name, krn_type_name(type), isas[ii], i, y[i],
                 yg[i], S[i]);
    }
  }
  free(W), free(x), free(yg), free(y), free(wr), free(S), free(buf);
}

static void test_matmul_vs_ggml(void **st) {
  (void)st;
  krn_pool *pool;
  assert_int_equal(krn_pool_create(&pool, 2), 0);
  DIR *d = opendir(FIXDIR);
  assert_non_null(d);
  struct dirent *e;
  int count = 0;
  double worst = 0;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "mm_", 3)) continue;
    check_file(e->d_name, pool, &worst);
    count++;
  }
  closedir(d);
  krn_pool_free(pool);
  print_message("%d types vs ggml: worst |ours - ggml| / S = %.3g\n", count, worst);
  assert_int_equal(count, 11);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_matmul_vs_ggml)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
