/*
 * quant_avx2.c — AVX2/F16C activation quantizers, byte-identical to the
 * scalar ones in quant_act.c (same scale expressions, round half to even via
 * _mm256_round_ps, F16C's round-to-nearest-even for the f16 fields); the
 * golden-value tests run both. They matter for decode: a 576-wide matvec
 * reads ~200 KB of weights, and quantizing its input scalar took ~10% of it.
 */
#include "kernels/cpu/krn_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define TGT __attribute__((target("avx2,fma,f16c")))

static inline TGT float hmax256(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

static inline TGT uint16_t f2h(float f) {
  return (uint16_t)_mm_extract_epi16(_mm_cvtps_ph(_mm_set_ss(f), _MM_FROUND_TO_NEAREST_INT), 0);
}

/* 32 floats -> 32 int8 = round_even(x * id); returns Σq. */
static inline TGT int quant32(const float *x, float id, int8_t *q) {
  const __m256 mul = _mm256_set1_ps(id);
  __m256i v[4];
  for (int j = 0; j < 4; j++)
    v[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * j), mul),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i s = _mm256_add_epi32(_mm256_add_epi32(v[0], v[1]), _mm256_add_epi32(v[2], v[3]));
  /* pack 32 int32 -> 32 int8 in element order */
  __m256i p16a = _mm256_packs_epi32(v[0], v[1]), p16b = _mm256_packs_epi32(v[2], v[3]);
  __m256i p8 = _mm256_packs_epi16(p16a, p16b);
  p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256((__m256i *)q, p8);
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
  return _mm_cvtsi128_si32(t);
}

static inline TGT float amax32(const float *x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_andnot_ps(sign, _mm256_loadu_ps(x));
  for (int j = 1; j < 4; j++) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + 8 * j)));
  return hmax256(m);
}

static TGT void quant_q8_0_avx2(const float *x, void *dst, size_t n) {
  blk_q8_0 *y = dst;
  for (size_t i = 0; i < n / 32; i++, x += 32) {
    const float amax = amax32(x);
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    y[i].d = f2h(d);
    quant32(x, id, y[i].qs);
  }
}

static TGT void quant_q8_1_avx2(const float *x, void *dst, size_t n) {
  blk_q8_1 *y = dst;
  for (size_t i = 0; i < n / 32; i++, x += 32) {
    const float amax = amax32(x);
    const float d = amax / 127.f, id = amax != 0.f ? 127.f / amax : 0.f;
    const int sum = quant32(x, id, y[i].qs);
    y[i].d = f2h(d);
    y[i].s = f2h(d * (float)sum);
  }
}

static TGT void quant_q8_k_avx2(const float *x, void *dst, size_t n) {
  blk_q8_k *y = dst;
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (size_t i = 0; i < n / QK_K; i++, x += QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < QK_K; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    const float amax = hmax256(m);
    if (amax == 0.f) {
      memset(&y[i], 0, sizeof y[i]);
      continue;
    }
    int jmax = 0; /* first element with |x| == amax, as the scalar loop picks */
    while (jmax < QK_K - 1 && __builtin_fabsf(x[jmax]) != amax) jmax++; /* bounded: NaN input */
    const float iscale = -127.f / x[jmax];
    const __m256 mul = _mm256_set1_ps(iscale);
    for (int g = 0; g < QK_K / 32; g++) {
      __m256i v[4];
      for (int j = 0; j < 4; j++) {
        v[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 32 * g + 8 * j), mul),
                                                  _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        v[j] = _mm256_min_epi32(v[j], _mm256_set1_epi32(127));
      }
      /* 16-element sums: v[0],v[1] are elements 0..15, v[2],v[3] are 16..31 */
      for (int h = 0; h < 2; h++) {
        __m256i s = _mm256_add_epi32(v[2 * h], v[2 * h + 1]);
        __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4e));
        t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xb1));
        y[i].bsums[2 * g + h] = (int16_t)_mm_cvtsi128_si32(t);
      }
      __m256i p8 = _mm256_packs_epi16(_mm256_packs_epi32(v[0], v[1]), _mm256_packs_epi32(v[2], v[3]));
      p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
      _mm256_storeu_si256((__m256i *)(y[i].qs + 32 * g), p8);
    }
    y[i].d = 1.f / iscale;
  }
}

krn_quant_fn krn__quant_avx2(int act_type) {
  if (!krn_cpu_features()->f16c) return NULL;
  switch (act_type) {
  case KRN_Q8_0: return quant_q8_0_avx2;
  case KRN_Q8_1: return quant_q8_1_avx2;
  case KRN_Q8_K: return quant_q8_k_avx2;
  default: return NULL;
  }
}
#else
krn_quant_fn krn__quant_avx2(int act_type) { (void)act_type; return NULL; }
#endif
