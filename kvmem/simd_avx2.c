/*
 * simd_avx2.c — the KV memory's attention loops at 8 float lanes (AVX2 +
 * FMA + F16C, no AVX-512: most laptops; the loops are in simd_body.h,
 * shared with simd_avx512.c). Only these vector helpers differ by width:
 * what AVX-512 has as one instruction (masked loads and stores, horizontal
 * reductions, compare masks) is built here from two or three. Compiled
 * with per-function target attributes so the library still loads on older
 * CPUs; simd.c hands this table out only where the CPU has all three
 * extensions and KVASIR_ISA allows avx2.
 */
#include <math.h>
#include <string.h>

#include "kvmem/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KS(name) name##_avx2
#define KS_TGT "avx2,fma,f16c"
#define KS_NAME "avx2"
#define KS_W 8
#define KS_LW 3
#define KS_CV 2
#define KS_INL static inline __attribute__((always_inline, target(KS_TGT)))

typedef __m256 vf;
typedef __m256i vi;
typedef __m256i vm; /* all-ones lanes are selected */

KS_INL vf vzero(void) { return _mm256_setzero_ps(); }
KS_INL vf vset1(float x) { return _mm256_set1_ps(x); }
KS_INL vf vload(const float *p) { return _mm256_loadu_ps(p); }
KS_INL void vstore(float *p, vf x) { _mm256_storeu_ps(p, x); }
KS_INL vf vadd(vf a, vf b) { return _mm256_add_ps(a, b); }
KS_INL vf vsub(vf a, vf b) { return _mm256_sub_ps(a, b); }
KS_INL vf vmul(vf a, vf b) { return _mm256_mul_ps(a, b); }
KS_INL vf vdiv(vf a, vf b) { return _mm256_div_ps(a, b); }
KS_INL vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
KS_INL vf vfmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
KS_INL vf vfnmadd(vf a, vf b, vf c) { return _mm256_fnmadd_ps(a, b, c); }
KS_INL float vsum(vf x) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
KS_INL float vmaxall(vf x) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
KS_INL vf vload_h(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)p)); }
KS_INL vi vload_u8(const uint8_t *p) { return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)p)); }
KS_INL vf vcvt(vi x) { return _mm256_cvtepi32_ps(x); }
KS_INL vi vcast_fi(vf x) { return _mm256_castps_si256(x); }
KS_INL vf vcast_if(vi x) { return _mm256_castsi256_ps(x); }
KS_INL vi vset1i(int x) { return _mm256_set1_epi32(x); }
KS_INL vi vaddi(vi a, vi b) { return _mm256_add_epi32(a, b); }
KS_INL vi vandi(vi a, vi b) { return _mm256_and_si256(a, b); }
KS_INL vi vori(vi a, vi b) { return _mm256_or_si256(a, b); }
KS_INL vi vslli(vi x, int n) { return _mm256_slli_epi32(x, n); }
KS_INL vi vsrli(vi x, int n) { return _mm256_srli_epi32(x, n); }
KS_INL vi vsrlv(vi x, vi n) { return _mm256_srlv_epi32(x, n); }
KS_INL vi vlane(void) { return _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0); }
KS_INL vi vpermi(vi idx, vi x) { return _mm256_permutevar8x32_epi32(x, idx); }
KS_INL vf vgather(const float *base, vi idx) { return _mm256_i32gather_ps(base, idx, 4); }
KS_INL vf vkeep_gt(vf v, vf n, vf t) { return _mm256_and_ps(_mm256_cmp_ps(n, t, _CMP_GT_OQ), v); }
KS_INL vm vm_first(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), vlane()); }
KS_INL vf vload_m(vm k, const float *p) { return _mm256_maskload_ps(p, k); }
KS_INL void vstore_m(float *p, vm k, vf x) { _mm256_maskstore_ps(p, k, x); }
KS_INL vf vzero_m(vm k, vf x) { return _mm256_and_ps(_mm256_castsi256_ps(k), x); }

#include "kvmem/simd_body.h"
#endif
