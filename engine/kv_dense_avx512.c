/*
 * kv_dense_avx512.c — the dense cache's attention loops on one zmm per
 * 16-lane vector (the loops are in kv_dense_body.h, shared with
 * kv_dense_avx2.c). _mm512_reduce_add_ps is eng_reduce16. Per-function
 * target attributes, so the library loads anywhere; kv_dense.c uses this
 * table only where kvm_simd_level() is AVX-512.
 */
#include <stddef.h>

#include "engine/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KD(name) name##_avx512
#define KD_TGT "avx2,fma,avx512f"
#define KD_NAME "avx512"
#define KD_INL static inline __attribute__((always_inline, target(KD_TGT)))

typedef __m512 v16;
typedef struct { __m512d lo, hi; } v16d;

KD_INL v16 v16_zero(void) { return _mm512_setzero_ps(); }
KD_INL v16 v16_set1(float x) { return _mm512_set1_ps(x); }
KD_INL v16 v16_load(const float *p) { return _mm512_loadu_ps(p); }
KD_INL void v16_store(float *p, v16 x) { _mm512_storeu_ps(p, x); }
KD_INL v16 v16_add(v16 a, v16 b) { return _mm512_add_ps(a, b); }
KD_INL v16 v16_mul(v16 a, v16 b) { return _mm512_mul_ps(a, b); }
KD_INL v16 v16_fmadd(v16 a, v16 b, v16 c) { return _mm512_fmadd_ps(a, b, c); }
KD_INL float v16_sum(v16 x) { return _mm512_reduce_add_ps(x); }
KD_INL __m256 hi8(v16 x) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(x), 1)); }
KD_INL v16d v16d_zero(void) { return (v16d){_mm512_setzero_pd(), _mm512_setzero_pd()}; }
KD_INL v16d v16d_addf(v16d t, v16 x) {
  return (v16d){_mm512_add_pd(t.lo, _mm512_cvtps_pd(_mm512_castps512_ps256(x))),
                _mm512_add_pd(t.hi, _mm512_cvtps_pd(hi8(x)))};
}
KD_INL void v16_store_d(float *out, v16 r, v16d t) {
  _mm256_storeu_ps(out, _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(r)), t.lo)));
  _mm256_storeu_ps(out + 8, _mm512_cvtpd_ps(_mm512_add_pd(_mm512_cvtps_pd(hi8(r)), t.hi)));
}

#include "engine/kv_dense_body.h"
#endif
