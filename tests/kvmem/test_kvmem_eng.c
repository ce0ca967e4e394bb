/* test_kvmem_eng.c — the KV memory behind the engine's eng_kv_ops, checked
 * against the engine's own dense f16 cache (eng_kv_dense_create, written
 * independently): same calls, same positions/windows, outputs compared.
 * The dense cache rounds q and the probabilities to f16 (as llama.cpp), so
 * full mode agrees to 1e-3, compressed mode (every block chosen) to its
 * quantization tolerance. test_ctx_size checks the context size rule on
 * the default model (SmolLM2: context_length 8192, 30 global layers). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kvmem_eng.h"

enum { L = 2, KVH = 2, D = 64, KVD = KVH * D, N = 400 };

static float frand(unsigned *s) {
  *s = *s * 1103515245u + 12345u;
  return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void run(const eng_kv_ops *ko, void *kv, const eng_kv_ops *ro, void *ref, double tol, int window) {
  unsigned s = 1;
  float *k = malloc(sizeof(float) * KVD), *v = malloc(sizeof(float) * KVD), q[D], o1[D], o2[D];
  double worst = 0;
  for (int pos = 0; pos < N; pos += 8) {
    for (int b = 0; b < 8; b++) /* a batch of 8, then attention for each */
      for (int l = 0; l < L; l++) {
        for (int i = 0; i < KVD; i++) {
          k[i] = frand(&s) * (i % 9 == 0 ? 4.0f : 1.0f);
          v[i] = frand(&s);
        }
        assert_int_equal(ko->append(kv, l, pos + b, k, v), 0);
        assert_int_equal(ro->append(ref, l, pos + b, k, v), 0);
      }
    for (int b = 0; b < 8; b++)
      for (int l = 0; l < L; l++)
        for (int h = 0; h < KVH; h++) {
          for (int i = 0; i < D; i++) q[i] = frand(&s) * 2;
          int w = l == 1 ? window : 0;
          ko->attend(kv, l, h, q, pos + b, w, 0.125f, o1);
          ro->attend(ref, l, h, q, pos + b, w, 0.125f, o2);
          for (int i = 0; i < D; i++) worst = fmax(worst, fabs(o1[i] - o2[i]));
        }
  }
  print_message("%s vs dense: max abs diff %.5f (tolerance %.4f)\n", ko->name, worst, tol);
  assert_true(worst <= tol);
  /* out-of-order append is refused */
  assert_int_equal(ko->append(kv, 0, N + 5, k, v), KV_EINVAL);
  free(k);
  free(v);
}

static void test_vs_dense(void **st) {
  eng_kv_shape sh = {L, KVH, D, 512};
  void *kv, *ref;
  const eng_kv_ops *ko, *ro;
  kv_err e;
  struct { kvm_mode mode; int kb, vb, top_k; double tol; } cases[] = {
      {KVM_FULL, 4, 2, 8, 1e-3},         /* reference mode: f16 rounding only */
      {KVM_COMPRESSED, 8, 8, 100, 0.01}, /* every block chosen, 8-bit */
      {KVM_COMPRESSED, 4, 2, 100, 0.17}, /* every block chosen, default bits: measured 0.146 (portable loops, W 64; 0.088 at W 128) */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    kvm_config cf;
    kvm_config_default(&cf, L, KVH, KVH, D, 512, cases[i].mode);
    cf.key_bits = cases[i].kb;
    cf.val_bits = cases[i].vb;
    cf.top_k = cases[i].top_k;
    assert_int_equal(kvm_eng_kv_create_cfg(&kv, &cf, &ko, &e), 0);
    assert_int_equal(eng_kv_dense_create(&ref, &sh, &ro, &e), 0);
    /* layer 1 attends over a sliding window of 60 positions: inside the
     * exact window rows (W = 64), which a compressed layer needs, since it
     * cuts a sliding window at whole blocks */
    run(ko, kv, ro, ref, cases[i].tol, 60);
    ko->free(kv);
    ro->free(ref);
  }
  assert_int_equal(kvm_eng_create_full(&kv, &sh, &ko, &e), 0);
  assert_int_equal(eng_kv_dense_create(&ref, &sh, &ro, &e), 0);
  run(ko, kv, ro, ref, 1e-3, 0);
  ko->free(kv);
  ro->free(ref);
}

static void test_truncate_copy_via_ops(void **st) {
  eng_kv_shape sh = {L, KVH, D, 512};
  void *a, *b, *ra, *rb;
  const eng_kv_ops *ko, *ro;
  kv_err e;
  assert_int_equal(kvm_eng_create(&a, &sh, &ko, &e), 0);
  assert_int_equal(kvm_eng_create(&b, &sh, &ko, &e), 0);
  assert_int_equal(eng_kv_dense_create(&ra, &sh, &ro, &e), 0);
  assert_int_equal(eng_kv_dense_create(&rb, &sh, &ro, &e), 0);
  unsigned s = 5;
  float k[KVD], v[KVD], q[D], o1[D], o2[D];
  for (int pos = 0; pos < 300; pos++)
    for (int l = 0; l < L; l++) {
      for (int i = 0; i < KVD; i++) { k[i] = frand(&s); v[i] = frand(&s); }
      assert_int_equal(ko->append(a, l, pos, k, v), 0);
      assert_int_equal(ro->append(ra, l, pos, k, v), 0);
    }
  assert_int_equal(ko->copy_prefix(b, a, 250), 0);
  assert_int_equal(ro->copy_prefix(rb, ra, 250), 0);
  ko->truncate(a, 100);
  ro->truncate(ra, 100);
  for (int i = 0; i < D; i++) q[i] = frand(&s);
  ko->attend(a, 0, 1, q, 99, 0, 0.125f, o1);
  ro->attend(ra, 0, 1, q, 99, 0, 0.125f, o2);
  /* the cut at 100 falls inside compressed history (blocks held 4..131):
   * those rows come back dequantized, hence the quantization tolerance */
  for (int i = 0; i < D; i++) assert_true(fabsf(o1[i] - o2[i]) < 0.1f);
  ko->attend(b, 1, 0, q, 249, 0, 0.125f, o1);
  ro->attend(rb, 1, 0, q, 249, 0, 0.125f, o2);
  for (int i = 0; i < D; i++) assert_true(fabsf(o1[i] - o2[i]) < 0.1f);
  ko->free(a); ko->free(b); ro->free(ra); ro->free(rb);
}


/* The most bytes a compressed cache of a context of n tokens holds on the
 * way to n, counted here from the config as the cache would grow: the
 * maximum of kvm_config_bytes over every length up to n. */
static size_t cache_bytes_at(const eng_model *m, int n) {
  kvm_config cf;
  kvm_eng_config(&cf, m, n, KVM_COMPRESSED);
  size_t best = 0;
  for (int t = 1; t <= n; t++) {
    size_t b = kvm_config_bytes(&cf, t);
    if (b > best) best = b;
  }
  return best;
}

static void test_ctx_size(void **st) {
  char path[4096];
  kv_err e;
  eng_model *m;
  assert_int_equal(eng_default_model_path(path, sizeof path), 0);
  if (access(path, R_OK)) fail_msg("default model missing at %s: run scripts/fetch-model smollm2", path);
  assert_int_equal(eng_model_open(&m, path, &e), 0);
  int train = eng_model_get_info(m)->n_ctx_train;
  assert_int_equal(train, 8192);
  /* no tier context, no budget: the model's context_length */
  assert_int_equal(kvm_eng_ctx_size(m, 0, 0), train);
  /* the tier's context wins, but never past context_length */
  assert_int_equal(kvm_eng_ctx_size(m, 2048, 0), 2048);
  assert_int_equal(kvm_eng_ctx_size(m, 100000, 0), train);
  /* a budget that holds the whole context changes nothing */
  assert_int_equal(kvm_eng_ctx_size(m, 0, cache_bytes_at(m, train)), train);
  assert_int_equal(kvm_eng_ctx_size(m, 3000, (size_t)1 << 40), 3000);
  /* a smaller budget: the largest size that fits, and one more does not */
  size_t budget = cache_bytes_at(m, 5000) + 1000;
  kvm_config cf;
  kvm_eng_config(&cf, m, 5000, KVM_COMPRESSED);
  assert_int_equal(kvm_config_peak_bytes(&cf, 5000), cache_bytes_at(m, 5000));
  assert_true(kvm_config_peak_bytes(&cf, 5000) > kvm_config_bytes(&cf, 5000)); /* 5000 is just past a spill */
  int n = kvm_eng_ctx_size(m, 0, budget);
  print_message("budget %zu bytes -> context %d (%zu bytes; %d would take %zu)\n", budget, n, cache_bytes_at(m, n),
                n + 1, cache_bytes_at(m, n + 1));
  assert_true(n >= 5000 && n < train);
  assert_true(cache_bytes_at(m, n) <= budget);
  assert_true(cache_bytes_at(m, n + 1) > budget);
  /* a budget below one token's rows: nothing fits */
  assert_int_equal(kvm_eng_ctx_size(m, 0, 10), 0);
  /* the rule also bounds a tier's context */
  n = kvm_eng_ctx_size(m, 6000, cache_bytes_at(m, 1024));
  assert_int_equal(n, 1024);
  eng_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vs_dense),
      cmocka_unit_test(test_truncate_copy_via_ops),
      cmocka_unit_test(test_ctx_size),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
