/*
 * convert.c — row conversions between f32 and the 16-bit float formats
 * (IEEE half, bfloat16), with F16C/AVX2 versions chosen at run time. Every
 * path rounds to nearest even and is bit-identical to the scalar
 * krn_f32_to_f16 / krn_f16_to_f32 / krn_bf16_to_f32 (tests hold them to it).
 */
#include "kernels/cpu/krn_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

__attribute__((target("avx2,f16c"))) static void h2f_row_f16c(const uint16_t *h, float *x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
  for (; i < n; i++) x[i] = krn__h2f(h[i]);
}

__attribute__((target("avx2,f16c"))) static void f2h_row_f16c(const float *x, uint16_t *h, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; i++) h[i] = krn__f2h(x[i]);
}

__attribute__((target("avx2"))) static void bf2f_row_avx2(const uint16_t *h, float *x, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(h + i)));
    _mm256_storeu_ps(x + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
  }
  for (; i < n; i++) x[i] = krn__bits_f32((uint32_t)h[i] << 16);
}

static int use_f16c(void) {
  return krn__isa_level() >= KRN_ISA_AVX2 && krn_cpu_features()->f16c;
}
#endif

void krn_f16_to_f32_row(const uint16_t *h, float *x, size_t n) {
#if defined(__x86_64__)
  if (use_f16c()) { h2f_row_f16c(h, x, n); return; }
#endif
  for (size_t i = 0; i < n; i++) x[i] = krn__h2f(h[i]);
}

void krn_f32_to_f16_row(const float *x, uint16_t *h, size_t n) {
#if defined(__x86_64__)
  if (use_f16c()) { f2h_row_f16c(x, h, n); return; }
#endif
  for (size_t i = 0; i < n; i++) h[i] = krn__f2h(x[i]);
}

void krn_bf16_to_f32_row(const uint16_t *h, float *x, size_t n) {
#if defined(__x86_64__)
  if (krn__isa_level() >= KRN_ISA_AVX2) { bf2f_row_avx2(h, x, n); return; }
#endif
  for (size_t i = 0; i < n; i++) x[i] = krn__bits_f32((uint32_t)h[i] << 16);
}
