/*
 * quant_act.c — scalar quantizers for activations: f32 rows to Q8_0, Q8_1
 * (32-element blocks) and Q8_K (256-element blocks with 16-element sums), the
 * formats llama.cpp's CPU backend feeds its fused dot products.
 *
 * For F16 / BF16 weights the activations are rounded to that type (IEEE
 * round-to-nearest-even), again as llama.cpp does.
 *
 * Rounding follows what llama.cpp does on x86 (the SIMD quantizers there):
 * Q8_0/Q8_1 use scale 127/amax and round-half-to-even; Q8_K uses the
 * reference quantizer (signed max, iscale = -127/max, nearest_int which is
 * also round-half-to-even). The SIMD quantizers in quant_avx2.c produce the
 * same bytes; the tests hold them to that.
 */
#include "kernels/cpu/krn_internal.h"

#include <math.h>

/* Round half to even for |v| < 2^22, like ggml's nearest_int. */
static inline int round_even(float v) {
  float f = v + 12582912.f;
  uint32_t i = krn__f32_bits(f);
  return (int)(i & 0x007fffff) - 0x00400000;
}

void krn__quant_q8_0_ref(const float *x, void *dst, size_t n) {
  blk_q8_0 *y = dst;
  for (size_t i = 0; i < n / 32; i++, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax; /* NaN ignored, no libm call */
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    y[i].d = krn__f2h(d);
    for (int j = 0; j < 32; j++) y[i].qs[j] = (int8_t)round_even(x[j] * id);
  }
}

void krn__quant_q8_1_ref(const float *x, void *dst, size_t n) {
  blk_q8_1 *y = dst;
  for (size_t i = 0; i < n / 32; i++, x += 32) {
    float amax = 0.f;
    for (int j = 0; j < 32; j++) amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax; /* NaN ignored, no libm call */
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    int sum = 0;
    for (int j = 0; j < 32; j++) {
      y[i].qs[j] = (int8_t)round_even(x[j] * id);
      sum += y[i].qs[j];
    }
    y[i].d = krn__f2h(d);
    y[i].s = krn__f2h(d * (float)sum);
  }
}

void krn__quant_q8_k_ref(const float *x, void *dst, size_t n) {
  blk_q8_k *y = dst;
  for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
    float max = 0.f, amax = 0.f;
    for (int j = 0; j < QK_K; j++) {
      const float ax = fabsf(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax == 0.f) {
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; j++) {
      int v = round_even(iscale * x[j]);
      y[i].qs[j] = (int8_t)(v > 127 ? 127 : v);
    }
    for (int j = 0; j < QK_K / 16; j++) {
      int sum = 0;
      for (int l = 0; l < 16; l++) sum += y[i].qs[j * 16 + l];
      y[i].bsums[j] = (int16_t)sum;
    }
    y[i].d = 1.f / iscale;
  }
}

static void quant_f16(const float *x, void *dst, size_t n) {
  uint16_t *h = dst;
  for (size_t i = 0; i < n; i++) h[i] = krn__f2h(x[i]);
}

static void quant_bf16(const float *x, void *dst, size_t n) {
  uint16_t *h = dst;
  for (size_t i = 0; i < n; i++) h[i] = krn_f32_to_bf16(x[i]);
}

krn_quant_fn krn__quant_scalar(int act_type) {
  switch (act_type) {
  case KRN_F16: return quant_f16;
  case KRN_BF16: return quant_bf16;
  case KRN_Q8_0: return krn__quant_q8_0_ref;
  case KRN_Q8_1: return krn__quant_q8_1_ref;
  case KRN_Q8_K: return krn__quant_q8_k_ref;
  default: return NULL;
  }
}

size_t krn__act_row_bytes(int act_type, size_t k) {
  if (act_type == KRN_Q8_0 || act_type == KRN_Q8_1) {
    if (k % 32) return 0;
    return (krn__act_qs_offset(k / 32) + k + 63) & ~(size_t)63;
  }
  return krn_row_bytes(act_type, k);
}

void krn__act_quant_row(int act_type, krn_quant_fn q, const float *x, void *dst, size_t k) {
  q(x, dst, k);
  if (act_type != KRN_Q8_0 && act_type != KRN_Q8_1) return;
  const size_t nb = k / 32;
  float *ds = (float *)((uint8_t *)dst + krn__act_ds_offset(nb));
  int8_t *qs = (int8_t *)dst + krn__act_qs_offset(nb);
  if (act_type == KRN_Q8_0) {
    const blk_q8_0 *b = dst;
    for (size_t i = 0; i < nb; i++) {
      int sum = 0;
      for (int j = 0; j < 32; j++) sum += b[i].qs[j];
      ds[2 * i] = krn__h2f(b[i].d), ds[2 * i + 1] = (float)sum;
      memcpy(qs + 32 * i, b[i].qs, 32);
    }
  } else {
    const blk_q8_1 *b = dst;
    for (size_t i = 0; i < nb; i++) {
      ds[2 * i] = krn__h2f(b[i].d), ds[2 * i + 1] = krn__h2f(b[i].s);
      memcpy(qs + 32 * i, b[i].qs, 32);
    }
  }
}
