/* test_kvmem_simd.c — the SIMD attention loops (kvmem/simd_body.h) at every
 * level the CPU has (AVX2, AVX-512) against the portable ones (kvmem/cache.c)
 * on the same caches: every mode, every key/value coding, both block
 * choices, GQA, and shapes of the real models (head_dim 64 and 256, blocks
 * of 64). The outputs agree to float rounding and the chosen blocks are the
 * same. A level the CPU (or KVASIR_ISA) lacks is skipped with a message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvmem/internal.h"

#define KVM_TEST_SEED 0x9e3779b97f4a7c15ULL
#include "tests/kvmem/kvm_test_rng.h"

/* One shape and coding: fill a cache, attend with the portable loops and
 * with those of `level`, compare. Returns the worst difference
 * relative to the output's largest magnitude. */
static double compare(int level, int D, int kvh, int h, int kb, int vb, int rot, int sel, int top_k, kvm_mode mode,
                      int N) {
  kvm_config cf;
  kvm_config_default(&cf, 1, h, kvh, D, N + 8, mode);
  cf.key_bits = kb;
  cf.val_bits = vb;
  cf.val_rot = rot;
  cf.select = sel;
  cf.top_k = top_k;
  if (mode == KVM_LOCAL) cf.layer_window[0] = 200;
  assert_true(mode != KVM_COMPRESSED || kvm_simd_fits(&cf, level == KVM_SIMD_AVX512 ? 16 : 8));
  kvm_cache *c;
  kv_err e;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  int kvd = kvh * D, qd = h * D;
  float *k = malloc(sizeof(float) * (size_t)kvd), *v = malloc(sizeof(float) * (size_t)kvd);
  float *q = malloc(sizeof(float) * (size_t)qd), *o0 = malloc(sizeof(float) * (size_t)qd),
        *o1 = malloc(sizeof(float) * (size_t)qd);
  double worst = 0;
  for (int t = 0; t < N; t++) {
    for (int i = 0; i < kvd; i++) {
      k[i] = (i % 7 == 0 ? 2.5f : 0.0f) + (i % 5 == 0 ? 2.0f : 0.8f) * gauss();
      v[i] = gauss() * (i % 11 == 0 ? 4.0f : 1.0f);
    }
    assert_int_equal(kvm_cache_append(c, 0, k, v, &e), 0);
    if (t % 97 == 50 || t == N - 1) {
      for (int i = 0; i < qd; i++) q[i] = gauss();
      kvm_simd_force(KVM_SIMD_PORTABLE);
      assert_null(kvm_simd_for(&cf));
      kvm_cache_attend(c, 0, q, 1.0f / sqrtf((float)D), o0);
      int n0 = 0;
      const int *ch;
      int *keep = NULL;
      if (mode == KVM_COMPRESSED) {
        n0 = kvm_cache_last_chosen(c, 0, 0, &ch);
        keep = malloc(sizeof(int) * (size_t)(n0 + 1));
        memcpy(keep, ch, sizeof(int) * (size_t)n0);
      }
      kvm_simd_force(level);
      assert_int_equal(kvm_simd_level(), level);
      assert_non_null(kvm_simd_for(&cf));
      assert_string_equal(kvm_simd_for(&cf)->name, kvm_simd_name(level));
      kvm_cache_attend(c, 0, q, 1.0f / sqrtf((float)D), o1);
      kvm_simd_force(-1);
      if (mode == KVM_COMPRESSED) {
        int n1 = kvm_cache_last_chosen(c, 0, 0, &ch);
        assert_int_equal(n0, n1);
        assert_memory_equal(keep, ch, sizeof(int) * (size_t)n0);
        free(keep);
      }
      double mx = 0, d = 0;
      for (int i = 0; i < qd; i++) {
        mx = fmax(mx, fabs(o0[i]));
        d = fmax(d, fabs((double)o0[i] - o1[i]));
      }
      if (d / mx > worst) worst = d / mx;
    }
  }
  kvm_cache_free(c);
  free(k);
  free(v);
  free(q);
  free(o0);
  free(o1);
  return worst;
}

static void matches_portable(int level) {
  if (kvm_simd_best() < level) {
    print_message("no %s here (CPU or KVASIR_ISA): skipped\n", kvm_simd_name(level));
    skip();
  }
  static const int codes[][2] = {{8, 8}, {8, 4}, {4, 4}, {4, 2}, {2, 2}, {8, 2}};
  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
    for (int shape = 0; shape < 2; shape++)
      for (int s = 0; s < 2; s++) {
        int D = shape ? 256 : 64, kvh = shape ? 1 : 3, h = shape ? 2 : 3;
        double w = compare(level, D, kvh, h, codes[i][0], codes[i][1], (int)(i + s) % 2,
                           s ? KVM_SELECT_GAUSS : KVM_SELECT_BOUND, s ? 6 : 3, KVM_COMPRESSED, 1400);
        print_message("%s k%d/v%d D=%d %s: worst relative difference %.2e\n", kvm_simd_name(level), codes[i][0],
                      codes[i][1], D, s ? "gauss" : "bound", w);
        assert_true(w < 2e-5);
      }
  /* every block read (no pooled rows) and the f16 modes */
  assert_true(compare(level, 64, 3, 9, 4, 2, 1, KVM_SELECT_GAUSS, 1000, KVM_COMPRESSED, 900) < 2e-5);
  assert_true(compare(level, 64, 3, 9, 4, 2, 1, KVM_SELECT_GAUSS, 64, KVM_FULL, 900) < 2e-5);
  assert_true(compare(level, 256, 1, 4, 4, 2, 1, KVM_SELECT_GAUSS, 64, KVM_LOCAL, 900) < 2e-5);
}

static void test_avx2_matches_portable(void **st) {
  (void)st;
  matches_portable(KVM_SIMD_AVX2);
}

static void test_avx512_matches_portable(void **st) {
  (void)st;
  matches_portable(KVM_SIMD_AVX512);
}

/* The level pinned, capped and detected; shapes that fit 8 lanes but not
 * 16 (head_dim 72, 8-bit codes) take the AVX2 loops under the AVX-512 level. */
static void test_simd_level(void **st) {
  (void)st;
  const int best = kvm_simd_best();
  assert_int_equal(kvm_simd_level(), best);
  kvm_simd_force(KVM_SIMD_AVX512 + 1);
  assert_int_equal(kvm_simd_level(), best);
  kvm_simd_force(KVM_SIMD_PORTABLE);
  assert_int_equal(kvm_simd_level(), KVM_SIMD_PORTABLE);
  kvm_config cf;
  kvm_config_default(&cf, 1, 2, 1, 72, 512, KVM_COMPRESSED);
  cf.key_bits = cf.val_bits = 8;
  assert_true(kvm_simd_fits(&cf, 8));
  assert_false(kvm_simd_fits(&cf, 16));
  assert_null(kvm_simd_for(&cf));
  kvm_simd_force(-1);
  if (best >= KVM_SIMD_AVX2) assert_string_equal(kvm_simd_for(&cf)->name, "avx2");
  else assert_null(kvm_simd_for(&cf));
  if (best >= KVM_SIMD_AVX2) {
    /* and agree with the portable loops there */
    double w = compare(KVM_SIMD_AVX2, 72, 1, 2, 8, 8, 0, KVM_SELECT_BOUND, 3, KVM_COMPRESSED, 700);
    print_message("avx2 at D=72: worst relative difference %.2e\n", w);
    assert_true(w < 2e-5);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_simd_level), cmocka_unit_test(test_avx2_matches_portable),
                                     cmocka_unit_test(test_avx512_matches_portable)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
