/* test_kvmem_batch.c — a prefill's attention in one call
 * (kvm_cache_attend_batch, kvmem/batch.c) against kvm_cache_attend_head per
 * query on the same cache, the way the engine uses both: append a batch of
 * K/V, then attend every position of it. With the portable loops the
 * results must be the same bits; with the SIMD ones at every level the CPU
 * has (AVX2, AVX-512; block codes unpacked once into float tiles) they
 * agree to float rounding (2e-5 of
 * the output's largest magnitude, test_kvmem_simd's tolerance). Cases:
 * every block read, a top-k choice with pooled rest (each query its own
 * choice), both block choices, each key/value coding, head_dim 64 and 256,
 * GQA (g heads per call), a windowed compressed layer, local and full
 * layers, and a batch longer than the window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvmem/internal.h"

#define KVM_TEST_SEED 0x2545f4914f6cdd1dULL
#include "tests/kvmem/kvm_test_rng.h"

typedef struct bcase {
  int D, kvh, g, kb, vb, rot, sel, top_k, mode, window, N, batch;
} bcase;

/* Fill a cache of the case batch by batch; after each batch, attend its
 * positions both ways (every KV head) and compare. Returns the worst
 * difference relative to the output's largest magnitude (0 when every
 * result was bit-identical). */
static double run_case(const bcase *b, int level) {
  kvm_config cf;
  kvm_config_default(&cf, 1, b->kvh * b->g, b->kvh, b->D, b->N + 8, (kvm_mode)b->mode);
  cf.key_bits = b->kb;
  cf.val_bits = b->vb;
  cf.val_rot = b->rot;
  cf.select = b->sel;
  cf.top_k = b->top_k;
  if (b->mode == KVM_LOCAL) cf.layer_window[0] = 200;
  kvm_cache *c;
  kv_err e;
  assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
  const int D = b->D, kvd = b->kvh * D, g = b->g;
  const size_t qd = (size_t)b->kvh * g * D; /* one position's queries, all heads */
  float *k = malloc(sizeof(float) * (size_t)kvd), *v = malloc(sizeof(float) * (size_t)kvd);
  float *q = malloc(sizeof(float) * qd * (size_t)b->batch), *o0 = malloc(sizeof(float) * qd * (size_t)b->batch),
        *o1 = malloc(sizeof(float) * qd * (size_t)b->batch);
  void *s1 = malloc(kvm_attend_scratch_bytes(c)), *sb = malloc(kvm_attend_batch_scratch_bytes(c, b->batch * g));
  assert_true(k && v && q && o0 && o1 && s1 && sb);
  kvm_simd_force(level);
  assert_int_equal(kvm_simd_level(), level);
  if (level == KVM_SIMD_PORTABLE) assert_null(kvm_simd_for(&cf));
  else if (b->mode == KVM_COMPRESSED) assert_string_equal(kvm_simd_for(&cf)->name, kvm_simd_name(level));
  double worst = 0;
  for (int p0 = 0; p0 < b->N; p0 += b->batch) {
    int n = b->N - p0 < b->batch ? b->N - p0 : b->batch;
    for (int t = 0; t < n; t++) {
      for (int i = 0; i < kvd; i++) {
        k[i] = (i % 7 == 0 ? 2.5f : 0.0f) + (i % 5 == 0 ? 2.0f : 0.8f) * gauss();
        v[i] = gauss() * (i % 11 == 0 ? 4.0f : 1.0f);
      }
      assert_int_equal(kvm_cache_append(c, 0, k, v, &e), 0);
    }
    for (size_t i = 0; i < qd * (size_t)n; i++) q[i] = 1.5f * gauss();
    const float scale = 1.0f / sqrtf((float)D);
    for (int h = 0; h < b->kvh; h++) {
      const size_t off = (size_t)h * g * D;
      for (int t = 0; t < n; t++)
        for (int j = 0; j < g; j++)
          kvm_cache_attend_head(c, 0, h, q + (size_t)t * qd + off + (size_t)j * D, p0 + t, b->window, scale,
                                o0 + (size_t)t * qd + off + (size_t)j * D, s1);
      kvm_cache_attend_batch(c, 0, h, q + off, qd, g, p0, n, b->window, scale, o1 + off, sb);
    }
    double mx = 0, d = 0;
    for (size_t i = 0; i < qd * (size_t)n; i++) {
      mx = fmax(mx, fabs(o0[i]));
      d = fmax(d, fabs((double)o0[i] - o1[i]));
    }
    if (mx > 0 && d / mx > worst) worst = d / mx;
  }
  kvm_simd_force(-1);
  kvm_cache_free(c);
  free(k); free(v); free(q); free(o0); free(o1); free(s1); free(sb);
  return worst;
}

static const bcase k_cases[] = {
    /* D  kvh g  kb vb rot sel                 top_k mode            win  N    batch */
    {64, 3, 3, 4, 2, 1, KVM_SELECT_GAUSS, 1000, KVM_COMPRESSED, 0, 1100, 64}, /* every block (SmolLM2) */
    {64, 3, 3, 4, 2, 1, KVM_SELECT_GAUSS, 3, KVM_COMPRESSED, 0, 1100, 64},    /* top-3 + pooled */
    {64, 2, 2, 8, 8, 0, KVM_SELECT_BOUND, 4, KVM_COMPRESSED, 0, 900, 48},
    {64, 1, 1, 4, 4, 0, KVM_SELECT_BOUND, 2, KVM_COMPRESSED, 0, 700, 16},     /* g 1: several positions */
    {256, 1, 4, 8, 4, 1, KVM_SELECT_GAUSS, 1000, KVM_COMPRESSED, 0, 900, 64}, /* Gemma 3's global layers */
    {256, 1, 2, 2, 2, 1, KVM_SELECT_GAUSS, 5, KVM_COMPRESSED, 0, 800, 64},
    {64, 2, 3, 8, 2, 1, KVM_SELECT_BOUND, 0, KVM_COMPRESSED, 0, 600, 64},     /* no block exact, pooled only */
    {64, 2, 3, 4, 2, 1, KVM_SELECT_GAUSS, 1000, KVM_COMPRESSED, 100, 600, 64}, /* windowed: per query */
    {64, 2, 3, 4, 2, 1, KVM_SELECT_GAUSS, 1000, KVM_COMPRESSED, 0, 600, 150}, /* batch longer than the window */
    {256, 1, 4, 4, 2, 1, KVM_SELECT_GAUSS, 64, KVM_LOCAL, 0, 700, 64},
    {64, 3, 3, 4, 2, 1, KVM_SELECT_GAUSS, 64, KVM_FULL, 0, 500, 64},
};

static void test_batch_portable_bits(void **st) {
  (void)st;
  for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
    double w = run_case(&k_cases[i], KVM_SIMD_PORTABLE);
    if (w != 0) print_message("case %zu: portable batch differs by %.3e\n", i, w);
    assert_true(w == 0);
  }
}

static int have_level(int level) {
  if (kvm_simd_best() >= level) return 1;
  print_message("no %s here (CPU or KVASIR_ISA): skipped\n", kvm_simd_name(level));
  return 0;
}

static void batch_rounding(int level) {
  if (!have_level(level)) skip();
  for (size_t i = 0; i < sizeof k_cases / sizeof k_cases[0]; i++) {
    double w = run_case(&k_cases[i], level);
    print_message("%s case %zu (D=%d k%d/v%d top-%d mode %d): worst relative difference %.2e\n",
                  kvm_simd_name(level), i, k_cases[i].D, k_cases[i].kb, k_cases[i].vb, k_cases[i].top_k,
                  k_cases[i].mode, w);
    assert_true(w < 2e-5);
  }
}

static void test_batch_avx2_rounding(void **st) {
  (void)st;
  batch_rounding(KVM_SIMD_AVX2);
}

static void test_batch_avx512_rounding(void **st) {
  (void)st;
  batch_rounding(KVM_SIMD_AVX512);
}

/* The float tiles hold exactly the codes kvm_unpack_codes gives, at every
 * width (64 bytes: 8 chunks of 8 lanes, 4 of 16). */
static void unpack_f32(int level) {
  if (!have_level(level)) skip();
  kvm_config cf;
  kvm_config_default(&cf, 1, 1, 1, 64, 256, KVM_COMPRESSED);
  kvm_simd_force(level);
  const kvm_simd_ops *vx = kvm_simd_for(&cf);
  kvm_simd_force(-1);
  assert_non_null(vx);
  assert_string_equal(vx->name, kvm_simd_name(level));
  uint8_t p[64];
  for (int i = 0; i < 64; i++) p[i] = (uint8_t)(i * 37 + 11);
  static const int bits[3] = {2, 4, 8};
  for (int b = 0; b < 3; b++) {
    int n = 64 * 8 / bits[b];
    uint8_t ref[256];
    float got[256];
    kvm_unpack_codes(p, n, bits[b], ref);
    vx->unpack_f32(p, 64, bits[b], got);
    for (int i = 0; i < n; i++) assert_true(got[i] == (float)ref[i]);
  }
}

static void test_unpack_f32_avx2(void **st) {
  (void)st;
  unpack_f32(KVM_SIMD_AVX2);
}

static void test_unpack_f32_avx512(void **st) {
  (void)st;
  unpack_f32(KVM_SIMD_AVX512);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_unpack_f32_avx2),   cmocka_unit_test(test_unpack_f32_avx512),
      cmocka_unit_test(test_batch_portable_bits), cmocka_unit_test(test_batch_avx2_rounding),
      cmocka_unit_test(test_batch_avx512_rounding),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
