/*
 * types.c — the GGUF type table (block size, block bytes, name), IEEE half
 * and bfloat16 conversions, and the scalar dequantizers that define what
 * every block format means. These are the reference: SIMD code elsewhere is
 * tested against them, and they are tested against the PyPI `gguf` package.
 *
 * Invariant: a type has nonzero block bytes here iff kvasir can dequantize
 * it; every such type except the activation formats Q8_1 and Q8_K is also
 * a weight type krn_matmul accepts (krn_type_is_weight).
 */
#include "kernels/cpu/krn_internal.h"

#include <math.h>

typedef struct {
  const char *name;
  uint16_t elems, bytes;
} type_info;

/* Constant table indexed by ggml_type id. */
static const type_info k_types[KRN_TYPE_COUNT] = {
    [KRN_F32] = {"F32", 1, 4},          [KRN_F16] = {"F16", 1, 2},
    [KRN_Q4_0] = {"Q4_0", 32, 18},      [KRN_Q4_1] = {"Q4_1", 32, 20},
    [KRN_Q5_0] = {"Q5_0", 32, 22},      [KRN_Q5_1] = {"Q5_1", 32, 24},
    [KRN_Q8_0] = {"Q8_0", 32, 34},      [KRN_Q8_1] = {"Q8_1", 32, 36},
    [KRN_Q2_K] = {"Q2_K", 0, 0},        [KRN_Q3_K] = {"Q3_K", 0, 0},
    [KRN_Q4_K] = {"Q4_K", 256, 144},    [KRN_Q5_K] = {"Q5_K", 256, 176},
    [KRN_Q6_K] = {"Q6_K", 256, 210},    [KRN_Q8_K] = {"Q8_K", 256, 292},
    [KRN_BF16] = {"BF16", 1, 2},
};

size_t krn_type_block_elems(int type) {
  return (type >= 0 && type < KRN_TYPE_COUNT) ? k_types[type].elems : 0;
}
size_t krn_type_block_bytes(int type) {
  return (type >= 0 && type < KRN_TYPE_COUNT) ? k_types[type].bytes : 0;
}
const char *krn_type_name(int type) {
  if (type == KRN_Q4_K_X8) return "Q4_K_X8"; /* a repacked layout, no row format (repack.c) */
  if (type < 0 || type >= KRN_TYPE_COUNT || !k_types[type].name) return "?";
  return k_types[type].name;
}
size_t krn_row_bytes(int type, size_t n) {
  size_t be = krn_type_block_elems(type);
  if (!be || n % be) return 0;
  return n / be * krn_type_block_bytes(type);
}

float krn_f16_to_f32(uint16_t h) { return krn__h2f(h); }
uint16_t krn_f32_to_f16(float f) { return krn__f2h(f); }
float krn_bf16_to_f32(uint16_t h) { return krn__bits_f32((uint32_t)h << 16); }
uint16_t krn_f32_to_bf16(float f) {
  uint32_t u = krn__f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 64); /* quiet NaN */
  return (uint16_t)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

/* ---- scalar dequantizers, one block format each ---- */

static void dq_q4_0(const void *src, float *y, size_t nb) {
  const blk_q4_0 *b = src;
  for (size_t i = 0; i < nb; i++, y += 32) {
    const float d = krn__h2f(b[i].d);
    for (int j = 0; j < 16; j++) {
      y[j] = ((b[i].qs[j] & 0xF) - 8) * d;
      y[j + 16] = ((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

static void dq_q4_1(const void *src, float *y, size_t nb) {
  const blk_q4_1 *b = src;
  for (size_t i = 0; i < nb; i++, y += 32) {
    const float d = krn__h2f(b[i].d), m = krn__h2f(b[i].m);
    for (int j = 0; j < 16; j++) {
      y[j] = (b[i].qs[j] & 0xF) * d + m;
      y[j + 16] = (b[i].qs[j] >> 4) * d + m;
    }
  }
}

static void dq_q5_0(const void *src, float *y, size_t nb) {
  const blk_q5_0 *b = src;
  for (size_t i = 0; i < nb; i++, y += 32) {
    const float d = krn__h2f(b[i].d);
    uint32_t qh;
    memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; j++) {
      const int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
      y[j] = (((b[i].qs[j] & 0xF) | xh0) - 16) * d;
      y[j + 16] = (((b[i].qs[j] >> 4) | xh1) - 16) * d;
    }
  }
}

static void dq_q5_1(const void *src, float *y, size_t nb) {
  const blk_q5_1 *b = src;
  for (size_t i = 0; i < nb; i++, y += 32) {
    const float d = krn__h2f(b[i].d), m = krn__h2f(b[i].m);
    uint32_t qh;
    memcpy(&qh, b[i].qh, 4);
    for (int j = 0; j < 16; j++) {
      const int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
      y[j] = ((b[i].qs[j] & 0xF) | xh0) * d + m;
      y[j + 16] = ((b[i].qs[j] >> 4) | xh1) * d + m;
    }
  }
}

static void dq_q8_0(const void *src, float *y, size_t nb) {
  const blk_q8_0 *b = src;
  for (size_t i = 0; i < nb; i++, y += 32) {
    const float d = krn__h2f(b[i].d);
    for (int j = 0; j < 32; j++) y[j] = b[i].qs[j] * d;
  }
}

static void dq_q8_1(const void *src, float *y, size_t nb) {
  const blk_q8_1 *b = src;
  for (size_t i = 0; i < nb; i++, y += 32) {
    const float d = krn__h2f(b[i].d);
    for (int j = 0; j < 32; j++) y[j] = b[i].qs[j] * d;
  }
}

static void dq_q4_k(const void *src, float *y, size_t nb) {
  const blk_q4_k *b = src;
  for (size_t i = 0; i < nb; i++) {
    const float d = krn__h2f(b[i].d), dmin = krn__h2f(b[i].dmin);
    const uint8_t *q = b[i].qs;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, q += 32) {
      uint8_t sc, m;
      krn__scale_min_k4(is, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      krn__scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

static void dq_q5_k(const void *src, float *y, size_t nb) {
  const blk_q5_k *b = src;
  for (size_t i = 0; i < nb; i++) {
    const float d = krn__h2f(b[i].d), dmin = krn__h2f(b[i].dmin);
    const uint8_t *ql = b[i].qs, *qh = b[i].qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
      uint8_t sc, m;
      krn__scale_min_k4(is, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      krn__scale_min_k4(is + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; l++) *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; l++) *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
    }
  }
}

static void dq_q6_k(const void *src, float *y, size_t nb) {
  const blk_q6_k *b = src;
  for (size_t i = 0; i < nb; i++) {
    const float d = krn__h2f(b[i].d);
    const uint8_t *ql = b[i].ql, *qh = b[i].qh;
    const int8_t *sc = b[i].scales;
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; l++) {
        const int is = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        y[l] = d * sc[is + 0] * q1;
        y[l + 32] = d * sc[is + 2] * q2;
        y[l + 64] = d * sc[is + 4] * q3;
        y[l + 96] = d * sc[is + 6] * q4;
      }
    }
  }
}

static void dq_q8_k(const void *src, float *y, size_t nb) {
  const blk_q8_k *b = src;
  for (size_t i = 0; i < nb; i++, y += QK_K)
    for (int j = 0; j < QK_K; j++) y[j] = b[i].d * b[i].qs[j];
}

void krn_dequant_row(int type, const void *src, float *dst, size_t n) {
  const size_t be = krn_type_block_elems(type);
  if (!be || n % be) return;
  const size_t nb = n / be;
  switch (type) {
  case KRN_F32: memcpy(dst, src, n * sizeof(float)); break;
  case KRN_F16: {
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = krn__h2f(h[i]);
    break;
  }
  case KRN_BF16: {
    const uint16_t *h = src;
    for (size_t i = 0; i < n; i++) dst[i] = krn__bits_f32((uint32_t)h[i] << 16);
    break;
  }
  case KRN_Q4_0: dq_q4_0(src, dst, nb); break;
  case KRN_Q4_1: dq_q4_1(src, dst, nb); break;
  case KRN_Q5_0: dq_q5_0(src, dst, nb); break;
  case KRN_Q5_1: dq_q5_1(src, dst, nb); break;
  case KRN_Q8_0: dq_q8_0(src, dst, nb); break;
  case KRN_Q8_1: dq_q8_1(src, dst, nb); break;
  case KRN_Q4_K: dq_q4_k(src, dst, nb); break;
  case KRN_Q5_K: dq_q5_k(src, dst, nb); break;
  case KRN_Q6_K: dq_q6_k(src, dst, nb); break;
  case KRN_Q8_K: dq_q8_k(src, dst, nb); break;
  default: break;
  }
}
