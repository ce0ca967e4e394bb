/*
 * dot_scalar.c — the scalar reference dot products: one weight row (GGUF
 * block format) against one activation row in the matching Q8 format, or
 * plain f32 for the float weight types. The arithmetic per block mirrors
 * llama.cpp's reference (exact integer sum per block, then scaled in f32),
 * so SIMD versions differ from these only in the order of f32 additions.
 */
#include "kernels/cpu/krn_internal.h"

#include <math.h>

static float dot_q4_0(size_t n, const void *w, const void *a) {
  const blk_q4_0 *x = w;
  const blk_q8_0 *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / 32; i++) {
    int s = 0;
    for (int j = 0; j < 16; j++)
      s += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
    sum += (float)s * (krn__h2f(x[i].d) * krn__h2f(y[i].d));
  }
  return sum;
}

static float dot_q4_1(size_t n, const void *w, const void *a) {
  const blk_q4_1 *x = w;
  const blk_q8_1 *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / 32; i++) {
    int s = 0;
    for (int j = 0; j < 16; j++) s += (x[i].qs[j] & 0xF) * y[i].qs[j] + (x[i].qs[j] >> 4) * y[i].qs[j + 16];
    sum += (float)s * (krn__h2f(x[i].d) * krn__h2f(y[i].d)) + krn__h2f(x[i].m) * krn__h2f(y[i].s);
  }
  return sum;
}

static float dot_q5_0(size_t n, const void *w, const void *a) {
  const blk_q5_0 *x = w;
  const blk_q8_0 *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / 32; i++) {
    uint32_t qh;
    memcpy(&qh, x[i].qh, 4);
    int s = 0;
    for (int j = 0; j < 16; j++) {
      const int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
      s += (((x[i].qs[j] & 0xF) | xh0) - 16) * y[i].qs[j] + (((x[i].qs[j] >> 4) | xh1) - 16) * y[i].qs[j + 16];
    }
    sum += (float)s * (krn__h2f(x[i].d) * krn__h2f(y[i].d));
  }
  return sum;
}

static float dot_q5_1(size_t n, const void *w, const void *a) {
  const blk_q5_1 *x = w;
  const blk_q8_1 *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / 32; i++) {
    uint32_t qh;
    memcpy(&qh, x[i].qh, 4);
    int s = 0;
    for (int j = 0; j < 16; j++) {
      const int xh0 = ((qh >> j) << 4) & 0x10, xh1 = (qh >> (j + 12)) & 0x10;
      s += ((x[i].qs[j] & 0xF) | xh0) * y[i].qs[j] + ((x[i].qs[j] >> 4) | xh1) * y[i].qs[j + 16];
    }
    sum += (float)s * (krn__h2f(x[i].d) * krn__h2f(y[i].d)) + krn__h2f(x[i].m) * krn__h2f(y[i].s);
  }
  return sum;
}

static float dot_q8_0(size_t n, const void *w, const void *a) {
  const blk_q8_0 *x = w, *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / 32; i++) {
    int s = 0;
    for (int j = 0; j < 32; j++) s += x[i].qs[j] * y[i].qs[j];
    sum += (float)s * (krn__h2f(x[i].d) * krn__h2f(y[i].d));
  }
  return sum;
}

/* K-quants: sum over sub-blocks of scale * (exact int dot), mins through
 * the activation's 16-element sums, then one f32 scale per super-block. */
static float dot_q4_k(size_t n, const void *w, const void *a) {
  const blk_q4_k *x = w;
  const blk_q8_k *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / QK_K; i++) {
    const uint8_t *q = x[i].qs;
    const int8_t *q8 = y[i].qs;
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 4; j++, q += 32, q8 += 64) {
      uint8_t sc0, m0, sc1, m1;
      krn__scale_min_k4(2 * j, x[i].scales, &sc0, &m0);
      krn__scale_min_k4(2 * j + 1, x[i].scales, &sc1, &m1);
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; l++) {
        s0 += (q[l] & 0xF) * q8[l];
        s1 += (q[l] >> 4) * q8[l + 32];
      }
      sumi += sc0 * s0 + sc1 * s1;
      summ += m0 * (y[i].bsums[4 * j] + y[i].bsums[4 * j + 1]) + m1 * (y[i].bsums[4 * j + 2] + y[i].bsums[4 * j + 3]);
    }
    sum += krn__h2f(x[i].d) * y[i].d * (float)sumi - krn__h2f(x[i].dmin) * y[i].d * (float)summ;
  }
  return sum;
}

/* Q4_K in llama.cpp's repacked order. On x86 with AVX2, llama.cpp repacks
 * Q4_K matrices with a multiple of 8 rows into block_q4_Kx8 (ggml-cpu
 * repack.cpp) and sums each output as two f32 FMA chains, one over the
 * scales, one over the mins, subtracted at the end. Its gemv (single rows)
 * adds one exact integer per super-block; its gemm (batch rows in groups of
 * 4) one per 64 elements (two sub-blocks). The products fp16(d)·dy and
 * fp16(dmin)·dy are rounded before each FMA, as there. */
static float q4_k_r8(int per64, size_t n, const void *w, const void *a) {
  const blk_q4_k *x = w;
  const blk_q8_k *y = a;
  float acc = 0.f, accm = 0.f;
  for (size_t i = 0; i < n / QK_K; i++) {
    const float dd = krn__h2f(x[i].d) * y[i].d, dm = krn__h2f(x[i].dmin) * y[i].d;
    int32_t tot = 0, totm = 0;
    for (int j = 0; j < 4; j++) {
      const uint8_t *q = x[i].qs + 32 * j;
      const int8_t *q8 = y[i].qs + 64 * j;
      uint8_t sc0, m0, sc1, m1;
      krn__scale_min_k4(2 * j, x[i].scales, &sc0, &m0);
      krn__scale_min_k4(2 * j + 1, x[i].scales, &sc1, &m1);
      int32_t s0 = 0, s1 = 0;
      for (int l = 0; l < 32; l++) {
        s0 += (q[l] & 0xF) * q8[l];
        s1 += (q[l] >> 4) * q8[l + 32];
      }
      const int32_t is = sc0 * s0 + sc1 * s1;
      const int32_t im = m0 * (y[i].bsums[4 * j] + y[i].bsums[4 * j + 1]) + m1 * (y[i].bsums[4 * j + 2] + y[i].bsums[4 * j + 3]);
      if (per64) {
        acc = fmaf((float)is, dd, acc);
        accm = fmaf((float)im, dm, accm);
      } else {
        tot += is;
        totm += im;
      }
    }
    if (!per64) {
      acc = fmaf((float)tot, dd, acc);
      accm = fmaf((float)totm, dm, accm);
    }
  }
  return acc - accm;
}

static float dot_q4_k_r8(size_t n, const void *w, const void *a) { return q4_k_r8(0, n, w, a); }
static float dot_q4_k_r8_gemm(size_t n, const void *w, const void *a) { return q4_k_r8(1, n, w, a); }

static float dot_q5_k(size_t n, const void *w, const void *a) {
  const blk_q5_k *x = w;
  const blk_q8_k *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / QK_K; i++) {
    const uint8_t *q = x[i].qs, *qh = x[i].qh;
    const int8_t *q8 = y[i].qs;
    int32_t sumi = 0, summ = 0;
    for (int j = 0; j < 4; j++, q += 32, q8 += 64) {
      uint8_t sc0, m0, sc1, m1;
      krn__scale_min_k4(2 * j, x[i].scales, &sc0, &m0);
      krn__scale_min_k4(2 * j + 1, x[i].scales, &sc1, &m1);
      int s0 = 0, s1 = 0;
      for (int l = 0; l < 32; l++) {
        s0 += ((q[l] & 0xF) | (((qh[l] >> (2 * j)) & 1) << 4)) * q8[l];
        s1 += ((q[l] >> 4) | (((qh[l] >> (2 * j + 1)) & 1) << 4)) * q8[l + 32];
      }
      sumi += sc0 * s0 + sc1 * s1;
      summ += m0 * (y[i].bsums[4 * j] + y[i].bsums[4 * j + 1]) + m1 * (y[i].bsums[4 * j + 2] + y[i].bsums[4 * j + 3]);
    }
    sum += krn__h2f(x[i].d) * y[i].d * (float)sumi - krn__h2f(x[i].dmin) * y[i].d * (float)summ;
  }
  return sum;
}

static float dot_q6_k(size_t n, const void *w, const void *a) {
  const blk_q6_k *x = w;
  const blk_q8_k *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n / QK_K; i++) {
    int32_t sumi = 0;
    for (int h = 0; h < 2; h++) { /* 128-element halves */
      const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
      const int8_t *sc = x[i].scales + 8 * h, *q8 = y[i].qs + 128 * h;
      /* group g of 32: low (g < 2) or high nibbles of ql[32*(g&1) ..], qh bits 2g..2g+1 */
      for (int g = 0; g < 4; g++)
        for (int b = 0; b < 2; b++) { /* 16-element sub-block, scale sc[2g + b] */
          int s16 = 0;
          for (int l = 16 * b; l < 16 * b + 16; l++) {
            const int q = ((ql[l + 32 * (g & 1)] >> (4 * (g >> 1))) & 0xF) | (((qh[l] >> (2 * g)) & 3) << 4);
            s16 += (q - 32) * q8[32 * g + l];
          }
          sumi += sc[2 * g + b] * s16;
        }
    }
    sum += krn__h2f(x[i].d) * y[i].d * (float)sumi;
  }
  return sum;
}

static float dot_f32(size_t n, const void *w, const void *a) {
  const float *x = w, *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n; i++) sum += x[i] * y[i];
  return sum;
}

/* F16 / BF16 weights meet activations rounded to the same type (as
 * llama.cpp's vec_dot_type does); each product is exact in f32. */
static float dot_f16(size_t n, const void *w, const void *a) {
  const uint16_t *x = w, *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n; i++) sum += krn__h2f(x[i]) * krn__h2f(y[i]);
  return sum;
}

static float dot_bf16(size_t n, const void *w, const void *a) {
  const uint16_t *x = w, *y = a;
  float sum = 0.f;
  for (size_t i = 0; i < n; i++) sum += krn__bits_f32((uint32_t)x[i] << 16) * krn__bits_f32((uint32_t)y[i] << 16);
  return sum;
}

krn_vec_dot_fn krn__dot_scalar(int type) {
  switch (type) {
  case KRN_F32: return dot_f32;
  case KRN_F16: return dot_f16;
  case KRN_BF16: return dot_bf16;
  case KRN_Q4_0: return dot_q4_0;
  case KRN_Q4_1: return dot_q4_1;
  case KRN_Q5_0: return dot_q5_0;
  case KRN_Q5_1: return dot_q5_1;
  case KRN_Q8_0: return dot_q8_0;
  case KRN_Q4_K: return dot_q4_k;
  case KRN_Q5_K: return dot_q5_k;
  case KRN_Q6_K: return dot_q6_k;
  case KRN__Q4_K_R8: return dot_q4_k_r8;
  case KRN__Q4_K_R8_GEMM: return dot_q4_k_r8_gemm;
  default: return NULL;
  }
}

int krn__act_type(int type) {
  switch (type) {
  case KRN_Q4_0: case KRN_Q5_0: case KRN_Q8_0: return KRN_Q8_0;
  case KRN_Q4_1: case KRN_Q5_1: return KRN_Q8_1;
  case KRN_Q4_K: case KRN_Q5_K: case KRN_Q6_K: case KRN__Q4_K_R8: case KRN__Q4_K_R8_GEMM: return KRN_Q8_K;
  case KRN_F32: return KRN_F32;
  case KRN_F16: return KRN_F16;
  case KRN_BF16: return KRN_BF16;
  default: return -1;
  }
}
