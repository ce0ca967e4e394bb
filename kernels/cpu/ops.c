/*
 * ops.c — the small f32 operations every architecture needs: RMS norm,
 * softmax, dot, axpy. Each has a scalar reference (krn__*_ref, what the
 * tests compare against) and an AVX2/FMA version picked at run time.
 *
 * Reductions accumulate in double in the references (as ggml does for norms
 * and softmax sums) and in 4x8 f32 lanes in the SIMD versions, so results
 * agree to about 1e-6 relative, not bit for bit.
 */
#include "kernels/cpu/krn_internal.h"

#include <math.h>
#if defined(__x86_64__)
#include <immintrin.h>
#define KRN_X86 1
#endif

#include "kernels/cpu/krn_ops_internal.h"

/* ---- scalar references ---- */

float krn__dot_f32_ref(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return (float)s;
}

void krn__axpy_f32_ref(float *y, float a, const float *x, size_t n) {
  for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

/* ---- AVX2 + FMA ---- */
#ifdef KRN_X86
__attribute__((target("avx2,fma"))) static inline float hsum256(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) float krn__dot_f32_avx2(const float *a, const float *b, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
  float s = hsum256(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; i++) s += a[i] * b[i];
  return s;
}

/* e^x for 8 lanes (x <= 88): Cephes' range reduction (x = n·ln2 + r, |r| <= ln2/2)
 * and degree-6 polynomial, about 2 ulp; below -87.3 (and -inf) gives +0. */
__attribute__((target("avx2,fma"))) static inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.3365f), hi = _mm256_set1_ps(88.0f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_max_ps(_mm256_min_ps(x, hi), lo);
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500E-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507E-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073E-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894E-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459E-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201E-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}

__attribute__((target("avx2,fma"))) void krn__softmax_avx2(float *x, size_t n) {
  __m256 vm = _mm256_set1_ps(-INFINITY);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) vm = _mm256_max_ps(vm, _mm256_loadu_ps(x + i));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(vm), _mm256_extractf128_ps(vm, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  float mx = _mm_cvtss_f32(m4);
  for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) {
    for (i = 0; i < n; i++) x[i] = 0.f;
    return;
  }
  const __m256 vmx = _mm256_set1_ps(mx);
  __m256 vs = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmx));
    _mm256_storeu_ps(x + i, e);
    vs = _mm256_add_ps(vs, e);
  }
  double sum = hsum256(vs);
  for (; i < n; i++) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  const __m256 inv = _mm256_set1_ps((float)(1.0 / sum));
  for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
  for (; i < n; i++) x[i] *= (float)(1.0 / sum);
}

__attribute__((target("avx2,fma"))) void krn__exp_avx2(float *y, const float *x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, exp256(_mm256_loadu_ps(x + i)));
  for (; i < n; i++) y[i] = expf(x[i]);
}

__attribute__((target("avx2,fma"))) void krn__axpy_f32_avx2(float *y, float a, const float *x, size_t n) {
  const __m256 va = _mm256_set1_ps(a);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; i++) y[i] += a * x[i];
}
#endif

float krn_dot_f32(const float *a, const float *b, size_t n) {
#ifdef KRN_X86
  if (krn__isa_level() >= KRN_ISA_AVX2) return krn__dot_f32_avx2(a, b, n);
#endif
  return krn__dot_f32_ref(a, b, n);
}

void krn_axpy_f32(float *y, float a, const float *x, size_t n) {
#ifdef KRN_X86
  if (krn__isa_level() >= KRN_ISA_AVX2) { krn__axpy_f32_avx2(y, a, x, n); return; }
#endif
  krn__axpy_f32_ref(y, a, x, n);
}

/* out[i] = x[i] / sqrt(mean(x²) + eps) * (w[i] + w_offset); w may be NULL
 * (no weight). Gemma stores weights as (w - 1), hence w_offset = 1. */
void krn_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps, float w_offset) {
  if (!n) return;
  double ss = 0;
#ifdef KRN_X86
  if (krn__isa_level() >= KRN_ISA_AVX2) ss = krn__dot_f32_avx2(x, x, n);
  else
#endif
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
  const float scale = (float)(1.0 / sqrt(ss / (double)n + eps));
  if (w)
    for (size_t i = 0; i < n; i++) out[i] = x[i] * scale * (w[i] + w_offset);
  else
    for (size_t i = 0; i < n; i++) out[i] = x[i] * scale;
}

/* In place: x = exp(x - max) / sum. -INFINITY entries (masked) become 0; an
 * all-masked row becomes all zeros rather than NaN. */
void krn__softmax_ref(float *x, size_t n) {
  if (!n) return;
  float mx = -INFINITY;
  for (size_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
  if (mx == -INFINITY) {
    for (size_t i = 0; i < n; i++) x[i] = 0.f;
    return;
  }
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - mx);
    sum += x[i];
  }
  const float inv = (float)(1.0 / sum);
  for (size_t i = 0; i < n; i++) x[i] *= inv;
}

void krn_softmax(float *x, size_t n) {
#ifdef KRN_X86
  if (krn__isa_level() >= KRN_ISA_AVX2) { krn__softmax_avx2(x, n); return; }
#endif
  krn__softmax_ref(x, n);
}
