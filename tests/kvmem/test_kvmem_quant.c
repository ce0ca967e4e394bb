/* test_kvmem_quant.c — kvmem number formats against the numpy reference
 * (tests/reference/kvmem/quant_ref.py -> quant_golden.bin): f16 rounding bit
 * for bit, quantization ranges and codes bit for bit, dequantized values to
 * 1 ulp, and the round-trip error bound |x - deq| <= s/2 (+ f32 rounding). */
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

static void test_golden(void **st) {
  char *buf;
  size_t len;
  kv_err e;
  assert_int_equal(kv_read_file(KVASIR_SOURCE_DIR "/tests/reference/kvmem/quant_golden.bin", 1 << 20, &buf, &len, &e), 0);
  g_p = (const uint8_t *)buf;
  g_end = g_p + len;
  char magic[8];
  take(magic, 8);
  assert_memory_equal(magic, "KVMQREF1", 8);
  uint32_t nf;
  take(&nf, 4);
  assert_true(nf > 100);
  for (uint32_t i = 0; i < nf; i++) {
    float x;
    uint16_t h;
    take(&x, 4);
    take(&h, 2);
    assert_int_equal(kvm_f32_to_f16(x), h);
    uint16_t row[9];
    float xs[9] = {x, x, x, x, x, x, x, x, x};
    kvm_f32_row_to_f16(xs, row, 9, kvm_cpu_has_f16c()); /* 8 through F16C where present, 1 portable */
    assert_int_equal(row[0], h);
    assert_int_equal(row[8], h);
    if ((h & 0x7c00) != 0x7c00) assert_true(kvm_f16_to_f32(h) == kvm_f16_to_f32(kvm_f32_to_f16(kvm_f16_to_f32(h))));
  }
  uint32_t nc;
  take(&nc, 4);
  assert_int_equal(nc, 18);
  for (uint32_t c = 0; c < nc; c++) {
    uint32_t bits, n;
    take(&bits, 4);
    take(&n, 4);
    assert_true(n <= 64);
    float x[64], ref_deq[64], deq[64];
    uint16_t ref_lo, ref_hi, lo, hi;
    uint8_t ref_codes[64], packed[64], codes[64];
    take(x, 4 * n);
    take(&ref_lo, 2);
    take(&ref_hi, 2);
    take(ref_codes, n);
    take(ref_deq, 4 * n);
    kvm_quant_group(x, (int)n, 1, (int)bits, &lo, &hi, packed);
    assert_int_equal(lo, ref_lo);
    assert_int_equal(hi, ref_hi);
    kvm_unpack_codes(packed, (int)n, (int)bits, codes);
    assert_memory_equal(codes, ref_codes, n);
    kvm_dequant_group(packed, (int)n, (int)bits, lo, hi, deq);
    float lof = kvm_f16_to_f32(lo), hif = kvm_f16_to_f32(hi), s = (hif - lof) / (float)((1 << bits) - 1);
    for (uint32_t i = 0; i < n; i++) {
      assert_true(fabsf(deq[i] - ref_deq[i]) <= 1e-6f * (fabsf(ref_deq[i]) + 1));
      assert_true(x[i] >= lof && x[i] <= hif); /* range covers the input */
      assert_true(fabsf(deq[i] - x[i]) <= 0.5f * s + 1e-5f * (fabsf(x[i]) + 1));
    }
  }
  assert_ptr_equal(g_p, g_end);
  free(buf);
}

/* Round trip on strided groups (per-channel keys) at every width, and the
 * error shrinking with bits: the mean error of 8 bits is far below 2 bits. */
static void test_strided_error(void **st) {
  enum { B = 64, D = 16 };
  float K[B * D];
  srand(7);
  for (int i = 0; i < B * D; i++) K[i] = (float)rand() / RAND_MAX * 4 - 2 + (i % D == 3 ? 30.0f : 0.0f);
  double mean_err[9] = {0};
  for (int bits = 2; bits <= 8; bits *= 2) {
    for (int c = 0; c < D; c++) {
      uint16_t lo, hi;
      uint8_t codes[B];
      float deq[B];
      kvm_quant_group(K + c, B, D, bits, &lo, &hi, codes);
      assert_int_equal(kvm_codes_bytes(B, bits), (size_t)(B * bits / 8));
      kvm_dequant_group(codes, B, bits, lo, hi, deq);
      float s = (kvm_f16_to_f32(hi) - kvm_f16_to_f32(lo)) / (float)((1 << bits) - 1);
      for (int t = 0; t < B; t++) {
        float err = fabsf(deq[t] - K[t * D + c]);
        assert_true(err <= 0.5f * s + 1e-5f);
        mean_err[bits] += err / (B * D);
      }
    }
  }
  assert_true(mean_err[8] < mean_err[4] / 8);
  assert_true(mean_err[4] < mean_err[2] / 2);
}

static void test_f16_directed(void **st) {
  float vals[] = {0.1f, -0.1f, 1e-7f, -1e-7f, 3.14159f, -65504.0f, 70000.0f, 1.0f, 0.0f};
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    float v = vals[i];
    float dn = kvm_f16_to_f32(kvm_f32_to_f16_dir(v, 0)), up = kvm_f16_to_f32(kvm_f32_to_f16_dir(v, 1));
    if (fabsf(v) <= 65504.0f) {
      assert_true(dn <= v);
      assert_true(up >= v);
    }
    assert_true(isfinite(dn) && isfinite(up));
  }
  assert_true(kvm_f16_to_f32(kvm_f32_to_f16_dir(1.0f, 1)) == 1.0f);
}

/* The checksum changes under every single-byte flip (the snapshot test
 * relies on this per section; here exhaustively on a small buffer). */
static void test_hash_flips(void **st) {
  uint8_t b[203];
  for (size_t i = 0; i < sizeof b; i++) b[i] = (uint8_t)(i * 37 + 11);
  uint64_t h0 = kvm_hash64(b, sizeof b, 0);
  assert_true(h0 != kvm_hash64(b, sizeof b, 1));
  assert_true(h0 != kvm_hash64(b, sizeof b - 1, 0));
  for (size_t i = 0; i < sizeof b; i++)
    for (int bit = 0; bit < 8; bit++) {
      b[i] ^= (uint8_t)(1u << bit);
      assert_true(kvm_hash64(b, sizeof b, 0) != h0);
      b[i] ^= (uint8_t)(1u << bit);
    }
  assert_true(kvm_hash64(b, sizeof b, 0) == h0);
}

/* kvm_hadamard against the Sylvester matrix H_p (H_1 = [1], H_2k = [[H,H],[H,-H]])
 * times 1/sqrt(p), built here entry by entry: h_ij = (-1)^popcount(i&j). Chunked
 * for n that is not a power of two (24 = 3 x 8, 96 = 3 x 32). Orthonormal:
 * the norm is kept, and applying it twice gives the input back. */
static void test_hadamard(void **st) {
  (void)st;
  int sizes[] = {8, 24, 64, 96, 256};
  unsigned seed = 5;
  for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
    int n = sizes[si], p = n & -n;
    float x[256], y[256], ref[256];
    double n2 = 0;
    for (int i = 0; i < n; i++) {
      seed = seed * 1103515245u + 12345u;
      x[i] = (float)((seed >> 9) & 0xffff) / 8192.0f - 4.0f;
      n2 += (double)x[i] * x[i];
    }
    for (int o = 0; o < n; o += p)
      for (int i = 0; i < p; i++) {
        double acc = 0;
        for (int j = 0; j < p; j++) acc += (__builtin_popcount((unsigned)(i & j)) & 1 ? -1.0 : 1.0) * x[o + j];
        ref[o + i] = (float)(acc / sqrt((double)p));
      }
    memcpy(y, x, sizeof(float) * (size_t)n);
    kvm_hadamard(y, n);
    double m2 = 0;
    for (int i = 0; i < n; i++) {
      assert_true(fabsf(y[i] - ref[i]) < 1e-4f);
      m2 += (double)y[i] * y[i];
    }
    assert_true(fabs(m2 - n2) < 1e-4 * n2);
    kvm_hadamard(y, n);
    for (int i = 0; i < n; i++) assert_true(fabsf(y[i] - x[i]) < 1e-5f * 8);
  }
}

/* The clipped range never does worse than min/max (it is one of the
 * candidates), does strictly better on Gaussian rows at 2 bits, and the
 * returned error is the error of the codes it wrote. */
static void test_quant_mse(void **st) {
  (void)st;
  unsigned seed = 11;
  double sum_mm = 0, sum_mse = 0;
  for (int row = 0; row < 200; row++) {
    float x[64];
    for (int i = 0; i < 64; i++) { /* Box-Muller */
      seed = seed * 1103515245u + 12345u;
      double u1 = ((seed >> 8) + 1.0) / 16777217.0;
      seed = seed * 1103515245u + 12345u;
      double u2 = (seed >> 8) / 16777216.0;
      x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    for (int bits = 2; bits <= 8; bits *= 2) {
      uint16_t lo, hi, lo2, hi2;
      uint8_t codes[64], codes2[64], un[64];
      kvm_quant_group(x, 64, 1, bits, &lo, &hi, codes);
      double e = kvm_quant_group_mse(x, 64, bits, &lo2, &hi2, codes2);
      float d0[64], d1[64];
      kvm_dequant_group(codes, 64, bits, lo, hi, d0);
      kvm_dequant_group(codes2, 64, bits, lo2, hi2, d1);
      double e0 = 0, e1 = 0;
      for (int i = 0; i < 64; i++) {
        e0 += (double)(x[i] - d0[i]) * (x[i] - d0[i]);
        e1 += (double)(x[i] - d1[i]) * (x[i] - d1[i]);
      }
      assert_true(fabs(e1 - e) <= 1e-5 * (e + 1e-9));
      assert_true(e1 <= e0 * (1 + 1e-6));
      kvm_unpack_codes(codes2, 64, bits, un);
      for (int i = 0; i < 64; i++) assert_true(un[i] < (1 << bits));
      if (bits == 2) sum_mm += e0, sum_mse += e1;
    }
  }
  assert_true(sum_mse < 0.8 * sum_mm);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_golden),
      cmocka_unit_test(test_strided_error),
      cmocka_unit_test(test_f16_directed),
      cmocka_unit_test(test_hash_flips),
      cmocka_unit_test(test_hadamard),
      cmocka_unit_test(test_quant_mse),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
