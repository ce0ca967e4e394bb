/*
 * kv_dense_avx2.c — the dense cache's attention loops on a pair of ymm per
 * 16-lane vector (AVX2 + FMA, no AVX-512; the loops are in kv_dense_body.h,
 * shared with kv_dense_avx512.c). The sum of 16 lanes pairs them as
 * eng_reduce16 (and _mm512_reduce_add_ps) do: upper 8 + lower 8, then
 * upper 4 + lower 4, then (0+2) + (1+3). Per-function target attributes,
 * so the library loads anywhere; kv_dense.c uses this table only where
 * kvm_simd_level() is AVX2.
 */
#include <stddef.h>

#include "engine/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KD(name) name##_avx2
#define KD_TGT "avx2,fma"
#define KD_NAME "avx2"
#define KD_INL static inline __attribute__((always_inline, target(KD_TGT)))

typedef struct { __m256 lo, hi; } v16; /* lanes 0..7, 8..15 */
typedef struct { __m256d d[4]; } v16d;  /* lanes 0..3, 4..7, 8..11, 12..15 */

KD_INL v16 v16_zero(void) { return (v16){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
KD_INL v16 v16_set1(float x) { return (v16){_mm256_set1_ps(x), _mm256_set1_ps(x)}; }
KD_INL v16 v16_load(const float *p) { return (v16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
KD_INL void v16_store(float *p, v16 x) {
  _mm256_storeu_ps(p, x.lo);
  _mm256_storeu_ps(p + 8, x.hi);
}
KD_INL v16 v16_add(v16 a, v16 b) { return (v16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
KD_INL v16 v16_mul(v16 a, v16 b) { return (v16){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
KD_INL v16 v16_fmadd(v16 a, v16 b, v16 c) {
  return (v16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
KD_INL float v16_sum(v16 x) {
  const __m256 t3 = _mm256_add_ps(x.hi, x.lo);
  __m128 s = _mm_add_ps(_mm256_extractf128_ps(t3, 1), _mm256_castps256_ps128(t3)); /* t6 */
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                         /* t6[0]+t6[2], t6[1]+t6[3] */
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
KD_INL v16d v16d_zero(void) { return (v16d){{_mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd(), _mm256_setzero_pd()}}; }
KD_INL v16d v16d_addf(v16d t, v16 x) {
  return (v16d){{_mm256_add_pd(t.d[0], _mm256_cvtps_pd(_mm256_castps256_ps128(x.lo))),
                 _mm256_add_pd(t.d[1], _mm256_cvtps_pd(_mm256_extractf128_ps(x.lo, 1))),
                 _mm256_add_pd(t.d[2], _mm256_cvtps_pd(_mm256_castps256_ps128(x.hi))),
                 _mm256_add_pd(t.d[3], _mm256_cvtps_pd(_mm256_extractf128_ps(x.hi, 1)))}};
}
KD_INL void v16_store_d(float *out, v16 r, v16d t) {
  const v16d s = v16d_addf(t, r); /* (double)r + t: the same sum either way round */
  for (int i = 0; i < 4; i++) _mm_storeu_ps(out + 4 * i, _mm256_cvtpd_ps(s.d[i]));
}

#include "engine/kv_dense_body.h"
#endif
