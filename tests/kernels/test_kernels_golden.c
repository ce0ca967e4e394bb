/* test_kernels_golden.c — block formats against independent golden values:
 * dequantization of every type vs the PyPI `gguf` package, activation
 * quantizers vs a numpy port of llama.cpp's x86 quantizers (fixtures made
 * by tests/reference/kernels/make_fixtures.py), and f16 conversions vs the
 * CPU's own F16C instructions. */
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
#include "kernels/cpu/krn_internal.h"
#include "kernels/kernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#define FIXDIR KVASIR_SOURCE_DIR "/tests/reference/kernels/fixtures"

typedef struct {
  char magic[5];
  uint32_t type, n, nbytes;
  const uint8_t *a; /* KRNW: quantized bytes; KRNA: f32 inputs */
  const uint8_t *b; /* KRNW: f32 expected;   KRNA: expected bytes */
  char *buf;
} fixture;

static int load_fixture(const char *path, fixture *f) {
  size_t len;
  kv_err err;
  if (kv_read_file(path, 1 << 22, &f->buf, &len, &err) != 0) {
    print_error("%s\n", err.msg);
    return -1;
  }
  if (len < 20) return -1;
  memcpy(f->magic, f->buf, 4);
  f->magic[4] = 0;
  uint32_t h[4];
  memcpy(h, f->buf + 4, 16);
  if (h[0] != 1) return -1;
  f->type = h[1], f->n = h[2], f->nbytes = h[3];
  if (len != 20 + (size_t)f->nbytes + 4 * (size_t)f->n) return -1;
  const uint8_t *p = (const uint8_t *)f->buf + 20;
  if (!strcmp(f->magic, "KRNW")) f->a = p, f->b = p + f->nbytes;
  else if (!strcmp(f->magic, "KRNA")) f->a = p, f->b = p + 4 * (size_t)f->n;
  else return -1;
  return 0;
}

/* Runs `check` on every fixture file with the given magic; returns count. */
static int for_each(const char *magic, void (*check)(const char *name, const fixture *f)) {
  DIR *d = opendir(FIXDIR);
  assert_non_null(d);
  struct dirent *e;
  int count = 0;
  while ((e = readdir(d))) {
    if (!strstr(e->d_name, ".bin") || !strncmp(e->d_name, "mm_", 3)) continue; /* mm_: test_kernels_ggml */
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", FIXDIR, e->d_name);
    fixture f = {0};
    assert_int_equal(load_fixture(path, &f), 0);
    if (!strcmp(f.magic, magic)) {
      check(e->d_name, &f);
      count++;
    }
    free(f.buf);
  }
  closedir(d);
  return count;
}

static void check_weight(const char *name, const fixture *f) {
  assert_true(f->type < KRN_TYPE_COUNT);
  assert_int_equal(krn_row_bytes((int)f->type, f->n), f->nbytes);
  /* aligned copy: fixture offsets are not block aligned in memory */
  void *q = malloc(f->nbytes);
  float *got = malloc(4 * (size_t)f->n), *want = malloc(4 * (size_t)f->n);
  assert_non_null(q);
  memcpy(q, f->a, f->nbytes);
  memcpy(want, f->b, 4 * (size_t)f->n);
  krn_dequant_row((int)f->type, q, got, f->n);
  for (uint32_t i = 0; i < f->n; i++) {
    if (got[i] != want[i] && !(isnan(got[i]) && isnan(want[i]))) {
      fail_msg("%s (%s): element %u: got %.9g want %.9g", name, krn_type_name((int)f->type), i, got[i], want[i]);
    }
  }
  /* Quantized weight types: the fused dot with a one-hot-free activation
   * must equal dequant · dequant(quant(x)) (checked broadly in test_kernels_matmul). */
  free(q), free(got), free(want);
}

static void test_dequant_vs_gguf(void **st) {
  (void)st;
  int n = for_each("KRNW", check_weight);
  assert_true(n >= 19); /* every type: quantized, random-byte and model cases */
}

static int g_isa; /* test-local: which quantizer level check_act uses */

static void check_act(const char *name, const fixture *f) {
  krn_quant_fn q = krn__quant_scalar((int)f->type);
  if (g_isa == KRN_ISA_AVX2) {
    q = krn__quant_avx2((int)f->type);
    if (!q) return;
  }
  assert_non_null(q);
  float *x = malloc(4 * (size_t)f->n);
  uint8_t *got = malloc(f->nbytes);
  memcpy(x, f->a, 4 * (size_t)f->n);
  assert_int_equal(krn_row_bytes((int)f->type, f->n), f->nbytes);
  q(x, got, f->n);
  for (uint32_t i = 0; i < f->nbytes; i++)
    if (got[i] != f->b[i]) fail_msg("%s isa %d: byte %u: got 0x%02x want 0x%02x", name, g_isa, i, got[i], f->b[i]);
  free(x), free(got);
}

static void test_act_quant_vs_numpy(void **st) {
  (void)st;
  g_isa = KRN_ISA_SCALAR;
  assert_int_equal(for_each("KRNA", check_act), 3);
  if (krn_cpu_features()->avx2) {
    g_isa = KRN_ISA_AVX2;
    for_each("KRNA", check_act);
  }
}

static void test_type_table(void **st) {
  (void)st;
  static const struct { int t; size_t e, b; } want[] = {
      {KRN_F32, 1, 4},      {KRN_F16, 1, 2},      {KRN_BF16, 1, 2},     {KRN_Q4_0, 32, 18},
      {KRN_Q4_1, 32, 20},   {KRN_Q5_0, 32, 22},   {KRN_Q5_1, 32, 24},   {KRN_Q8_0, 32, 34},
      {KRN_Q8_1, 32, 36},   {KRN_Q4_K, 256, 144}, {KRN_Q5_K, 256, 176}, {KRN_Q6_K, 256, 210},
      {KRN_Q8_K, 256, 292},
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
    assert_int_equal(krn_type_block_elems(want[i].t), want[i].e);
    assert_int_equal(krn_type_block_bytes(want[i].t), want[i].b);
  }
  assert_int_equal(krn_type_block_bytes(-1), 0);
  assert_int_equal(krn_type_block_bytes(KRN_TYPE_COUNT), 0);
  assert_int_equal(krn_type_block_bytes(KRN_Q2_K), 0); /* not computable here */
  assert_int_equal(krn_row_bytes(KRN_Q4_K, 100), 0);    /* not a block multiple */
  assert_int_equal(krn_row_bytes(KRN_Q4_0, 576), 18 * 18);
  assert_string_equal(krn_type_name(KRN_Q6_K), "Q6_K");
  assert_true(krn_type_is_weight(KRN_Q4_K));
  assert_false(krn_type_is_weight(KRN_Q8_K));
  assert_false(krn_type_is_weight(KRN_Q2_K));
}

#if defined(__x86_64__)
__attribute__((target("f16c"))) static float hw_h2f(uint16_t h) { return _cvtsh_ss(h); }
__attribute__((target("f16c"))) static uint16_t hw_f2h(float f) { return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }
#endif

static void test_f16_vs_f16c(void **st) {
  (void)st;
#if defined(__x86_64__)
  if (!krn_cpu_features()->f16c) skip();
  for (uint32_t h = 0; h < 65536; h++) {
    float a = krn_f16_to_f32((uint16_t)h), b = hw_h2f((uint16_t)h);
    if (isnan(b)) assert_true(isnan(a));
    else assert_memory_equal(&a, &b, 4);
  }
  uint32_t s = 12345;
  for (int i = 0; i < 2000000; i++) {
    s = s * 1664525u + 1013904223u;
    uint32_t bits = s;
    if (i % 3 == 0) bits = (bits & 0x8FFFFFFFu) | 0x30000000u; /* bias to half's range */
    float f;
    memcpy(&f, &bits, 4);
    uint16_t a = krn_f32_to_f16(f), b = hw_f2h(f);
    if (isnan(f)) assert_true((a & 0x7c00) == 0x7c00 && (a & 0x3ff));
    else if (a != b) fail_msg("f32 0x%08x: got 0x%04x want 0x%04x", bits, a, b);
  }
#else
  skip();
#endif
}

/* Row conversions (SIMD where present) equal the scalar conversions bit for
 * bit, on every half value and on random floats incl. odd tails. */
static void test_row_conversions(void **st) {
  (void)st;
  enum { N = 65536 + 7 };
  uint16_t *h = malloc(N * 2), *h2 = malloc(N * 2);
  float *f = malloc(N * 4);
  for (uint32_t i = 0; i < N; i++) h[i] = (uint16_t)(i * 40503u);
  krn_f16_to_f32_row(h, f, N);
  for (uint32_t i = 0; i < N; i++) {
    const float w = krn_f16_to_f32(h[i]);
    if (!(isnan(w) && isnan(f[i]))) assert_memory_equal(&w, &f[i], 4);
  }
  krn_bf16_to_f32_row(h, f, N);
  for (uint32_t i = 0; i < N; i++) {
    const float w = krn_bf16_to_f32(h[i]);
    assert_memory_equal(&w, &f[i], 4);
  }
  uint32_t s = 77;
  for (uint32_t i = 0; i < N; i++) {
    s = s * 1664525u + 1013904223u;
    uint32_t bits = (s & 0x8FFFFFFFu) | 0x30000000u;
    memcpy(&f[i], &bits, 4);
  }
  krn_f32_to_f16_row(f, h2, N);
  for (uint32_t i = 0; i < N; i++)
    if (h2[i] != krn_f32_to_f16(f[i])) fail_msg("f32 %.9g: row 0x%04x scalar 0x%04x", f[i], h2[i], krn_f32_to_f16(f[i]));
  free(h), free(h2), free(f);
}

static void test_bf16(void **st) {
  (void)st;
  assert_true(krn_bf16_to_f32(0x3f80) == 1.0f);
  assert_int_equal(krn_f32_to_bf16(1.0f), 0x3f80);
  /* ties to even: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 */
  assert_int_equal(krn_f32_to_bf16(1.00390625f), 0x3f80);
  assert_int_equal(krn_f32_to_bf16(1.01171875f), 0x3f82);
  assert_true(isnan(krn_bf16_to_f32(krn_f32_to_bf16(NAN))));
  assert_int_equal(krn_f32_to_bf16(INFINITY), 0x7f80);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_type_table),
      cmocka_unit_test(test_dequant_vs_gguf),
      cmocka_unit_test(test_act_quant_vs_numpy),
      cmocka_unit_test(test_f16_vs_f16c),
      cmocka_unit_test(test_bf16),
      cmocka_unit_test(test_row_conversions),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
