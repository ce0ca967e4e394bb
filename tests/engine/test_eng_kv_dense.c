/*
 * test_eng_kv_dense.c — the dense f16 cache's SIMD attention loops
 * (engine/kv_dense_body.h) at every level the CPU has (AVX2, AVX-512)
 * against its portable loops (engine/kv_dense.c): the same bits, since
 * both follow llama.cpp's summation orders exactly. Shapes: head_dim 64
 * (SmolLM2) and 256 (Gemma 3), 96 and 48 (K·q partly or wholly in the
 * double tail); one token (ggml_vec_dot_f16's order, with positions past
 * n_kv & ~63 in the double tail) and a batch (tinyBLAS's order); whole
 * context and a sliding window. A level the CPU (or KVASIR_ISA) lacks is
 * skipped with a message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "kvmem/kvmem.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ULL;
static float uni(void) { /* [-1, 1) */
  g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return (float)(g_rng >> 40) / 8388608.0f - 1.0f;
}

/* Fill a cache of head_dim hd, attend at a spread of positions with the
 * portable loops and with `level`'s, compare bits. Returns the number of
 * outputs compared. */
static int same_bits(int level, int hd, int n_kv_heads) {
  const int n_ctx = 600;
  eng_kv_shape sh = {.n_layer = 2, .n_head_kv = n_kv_heads, .head_dim = hd, .n_ctx = n_ctx};
  void *kv;
  const eng_kv_ops *ops;
  kv_err e;
  assert_int_equal(eng_kv_dense_create(&kv, &sh, &ops, &e), 0);
  const int row = n_kv_heads * hd;
  float *k = malloc(sizeof(float) * (size_t)row), *v = malloc(sizeof(float) * (size_t)row);
  float *q = malloc(sizeof(float) * (size_t)hd), *o0 = malloc(sizeof(float) * (size_t)hd),
        *o1 = malloc(sizeof(float) * (size_t)hd);
  assert_true(k && v && q && o0 && o1);
  for (int pos = 0; pos < n_ctx; pos++)
    for (int l = 0; l < 2; l++) {
      for (int i = 0; i < row; i++) {
        k[i] = 2.0f * uni() + (i % 7 == 0 ? 1.5f : 0.0f);
        v[i] = uni() * (i % 11 == 0 ? 4.0f : 1.0f);
      }
      assert_int_equal(ops->append(kv, l, pos, k, v), 0);
    }
  static const int positions[] = {0, 1, 15, 16, 40, 63, 64, 70, 100, 161, 299, 455, 599};
  static const int windows[] = {0, 40, 512};
  int compared = 0;
  for (int batch = 1; batch <= 8; batch += 7) {
    eng__kv_dense_batch(ops, kv, batch);
    for (size_t pi = 0; pi < sizeof positions / sizeof positions[0]; pi++)
      for (size_t wi = 0; wi < sizeof windows / sizeof windows[0]; wi++)
        for (int h = 0; h < n_kv_heads; h++) {
          const int pos = positions[pi], layer = (int)(pi % 2);
          for (int i = 0; i < hd; i++) q[i] = 1.5f * uni();
          kvm_simd_force(KVM_SIMD_PORTABLE);
          assert_string_equal(eng__kv_dense_loops(hd), "portable");
          ops->attend(kv, layer, h, q, pos, windows[wi], 1.0f / sqrtf((float)hd), o0);
          kvm_simd_force(level);
          assert_string_equal(eng__kv_dense_loops(hd), kvm_simd_name(level));
          ops->attend(kv, layer, h, q, pos, windows[wi], 1.0f / sqrtf((float)hd), o1);
          kvm_simd_force(-1);
          for (int i = 0; i < hd; i++) {
            if (memcmp(&o0[i], &o1[i], sizeof(float)))
              fail_msg("%s hd %d batch %d pos %d window %d head %d: out[%d] %.9g != portable %.9g",
                       kvm_simd_name(level), hd, batch, pos, windows[wi], h, i, (double)o1[i], (double)o0[i]);
            assert_true(isfinite(o0[i]));
          }
          compared++;
        }
  }
  ops->free(kv);
  free(k); free(v); free(q); free(o0); free(o1);
  return compared;
}

static void level_same_bits(int level) {
  if (kvm_simd_best() < level) {
    print_message("no %s here (CPU or KVASIR_ISA): skipped\n", kvm_simd_name(level));
    skip();
  }
  static const int shapes[][2] = {{64, 3}, {256, 1}, {96, 2}, {48, 1}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
    int n = same_bits(level, shapes[i][0], shapes[i][1]);
    print_message("%s head_dim %d: %d outputs, the portable loops' bits\n", kvm_simd_name(level), shapes[i][0], n);
  }
}

static void test_avx2_same_bits(void **st) {
  (void)st;
  level_same_bits(KVM_SIMD_AVX2);
}

static void test_avx512_same_bits(void **st) {
  (void)st;
  level_same_bits(KVM_SIMD_AVX512);
}

/* head_dim not a multiple of 16 keeps the portable loops at every level. */
static void test_odd_head_dim_portable(void **st) {
  (void)st;
  assert_string_equal(eng__kv_dense_loops(72), "portable");
  assert_string_equal(eng__kv_dense_loops(64), kvm_simd_name(kvm_simd_best()));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_odd_head_dim_portable),
      cmocka_unit_test(test_avx2_same_bits),
      cmocka_unit_test(test_avx512_same_bits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
