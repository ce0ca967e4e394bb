/* test_kvmem_pooled.c — a compressed block's pooled summary (format v3: the
 * mean key as a 4-bit code within the block's key range, the mean value
 * 4-bit symmetric) against the numpy reference
 * (tests/reference/kvmem/pooled_ref.py -> pooled_golden.bin): the rows go
 * through a real cache (one layer, one KV head, D = B = 64, no sinks,
 * window 64: the 128th append spills positions 0..63 into block 0), the
 * stored codes and scale must equal the reference's bit for bit, the decoded
 * rows (kvm_pooled_row) match it to 1e-6 relative, and both stay within the
 * coding's error bound of the exact means: |key - mean| <= range/30,
 * |value - mean| <= scale/2. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvmem/internal.h"

static const uint8_t *g_p, *g_end;
static void take(void *dst, size_t n) {
  assert_true((size_t)(g_end - g_p) >= n);
  memcpy(dst, g_p, n);
  g_p += n;
}

enum { D = 64, B = 64 };

static void test_pooled_golden(void **st) {
  (void)st;
  char *buf;
  size_t len;
  kv_err e;
  assert_int_equal(kv_read_file(KVASIR_SOURCE_DIR "/tests/reference/kvmem/pooled_golden.bin", 1 << 20, &buf, &len, &e), 0);
  g_p = (const uint8_t *)buf;
  g_end = g_p + len;
  char magic[8];
  take(magic, 8);
  assert_memory_equal(magic, "KVMPREF1", 8);
  uint32_t nc, d, b;
  take(&nc, 4);
  take(&d, 4);
  take(&b, 4);
  assert_int_equal(nc, 4);
  assert_int_equal(d, D);
  assert_int_equal(b, B);
  double worst_k = 0, worst_v = 0;
  for (uint32_t ci = 0; ci < nc; ci++) {
    static uint16_t kh[B * D], vh[B * D];
    static float K[B * D], V[B * D];
    uint8_t rk[D / 2], rv[D / 2];
    uint16_t rs;
    float kdec[D], vdec[D];
    take(kh, sizeof kh);
    take(vh, sizeof vh);
    take(rk, sizeof rk);
    take(rv, sizeof rv);
    take(&rs, 2);
    take(kdec, sizeof kdec);
    take(vdec, sizeof vdec);
    for (int i = 0; i < B * D; i++) K[i] = kvm_f16_to_f32(kh[i]), V[i] = kvm_f16_to_f32(vh[i]);
    kvm_config cf;
    kvm_config_default(&cf, 1, 1, 1, D, 256, KVM_COMPRESSED);
    cf.sinks = 0;
    cf.window = 64;
    kvm_cache *c;
    assert_int_equal(kvm_cache_open(&c, &cf, &e), 0);
    for (int t = 0; t < 2 * B; t++) /* block 0 = the case's rows; then filler */
      assert_int_equal(kvm_cache_append(c, 0, K + (size_t)(t % B) * D, V + (size_t)(t % B) * D, &e), 0);
    assert_int_equal(c->layers[0].n_blocks, 1);
    const uint8_t *hb = c->layers[0].blocks[0];
    assert_memory_equal(hb + c->L.kmean, rk, sizeof rk);
    assert_memory_equal(hb + c->L.vmean, rv, sizeof rv);
    uint16_t s16;
    memcpy(&s16, hb + c->L.vmean_s, 2);
    assert_int_equal(s16, rs);
    float ko[D], vo[D];
    kvm_pooled_row(c, hb, 0, ko);
    kvm_pooled_row(c, hb, 1, vo);
    const uint16_t *kmin = (const uint16_t *)(const void *)(hb + c->L.kmin);
    const uint16_t *kmax = (const uint16_t *)(const void *)(hb + c->L.kmax);
    for (int ch = 0; ch < D; ch++) {
      assert_true(fabsf(ko[ch] - kdec[ch]) <= 1e-6f * (1.0f + fabsf(kdec[ch])));
      assert_true(fabsf(vo[ch] - vdec[ch]) <= 1e-6f * (1.0f + fabsf(vdec[ch])));
      double mk = 0, mv = 0;
      for (int t = 0; t < B; t++) mk += K[t * D + ch], mv += V[t * D + ch];
      mk /= B, mv /= B;
      double range = kvm_f16_to_f32(kmax[ch]) - kvm_f16_to_f32(kmin[ch]), s = kvm_f16_to_f32(s16);
      double ek = fabs(ko[ch] - mk), ev = fabs(vo[ch] - mv);
      assert_true(ek <= range / 30 * (1 + 1e-5) + 1e-6);
      assert_true(ev <= s / 2 * (1 + 1e-5) + 1e-6);
      if (range > 0 && ek / range > worst_k) worst_k = ek / range;
      if (s > 0 && ev / s > worst_v) worst_v = ev / s;
    }
    kvm_cache_free(c);
  }
  assert_true(g_p == g_end);
  print_message("pooled summary: worst key error %.4f of the channel's range (bound 1/30 = 0.0333), "
                "worst value error %.4f of the scale (bound 0.5)\n", worst_k, worst_v);
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_pooled_golden)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
