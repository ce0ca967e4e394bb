/*
 * simd_avx512.c — the KV memory's attention loops at 16 float lanes
 * (AVX-512F; the loops are in simd_body.h, shared with simd_avx2.c). Only
 * these vector helpers differ by width. Compiled with per-function target
 * attributes so the library still loads on CPUs without AVX-512; simd.c
 * hands this table out only where the CPU has it and KVASIR_ISA allows it.
 */
#include <math.h>
#include <string.h>

#include "kvmem/internal.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define KS(name) name##_avx512
#define KS_TGT "avx2,fma,f16c,avx512f"
#define KS_NAME "avx512"
#define KS_W 16
#define KS_LW 4
#define KS_CV 4
#define KS_INL static inline __attribute__((always_inline, target(KS_TGT)))

typedef __m512 vf;
typedef __m512i vi;
typedef __mmask16 vm;

KS_INL vf vzero(void) { return _mm512_setzero_ps(); }
KS_INL vf vset1(float x) { return _mm512_set1_ps(x); }
KS_INL vf vload(const float *p) { return _mm512_loadu_ps(p); }
KS_INL void vstore(float *p, vf x) { _mm512_storeu_ps(p, x); }
KS_INL vf vadd(vf a, vf b) { return _mm512_add_ps(a, b); }
KS_INL vf vsub(vf a, vf b) { return _mm512_sub_ps(a, b); }
KS_INL vf vmul(vf a, vf b) { return _mm512_mul_ps(a, b); }
KS_INL vf vdiv(vf a, vf b) { return _mm512_div_ps(a, b); }
KS_INL vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
KS_INL vf vfmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
KS_INL vf vfnmadd(vf a, vf b, vf c) { return _mm512_fnmadd_ps(a, b, c); }
KS_INL float vsum(vf x) { return _mm512_reduce_add_ps(x); }
KS_INL float vmaxall(vf x) { return _mm512_reduce_max_ps(x); }
KS_INL vf vload_h(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p)); }
KS_INL vi vload_u8(const uint8_t *p) { return _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)p)); }
KS_INL vf vcvt(vi x) { return _mm512_cvtepi32_ps(x); }
KS_INL vi vcast_fi(vf x) { return _mm512_castps_si512(x); }
KS_INL vf vcast_if(vi x) { return _mm512_castsi512_ps(x); }
KS_INL vi vset1i(int x) { return _mm512_set1_epi32(x); }
KS_INL vi vaddi(vi a, vi b) { return _mm512_add_epi32(a, b); }
KS_INL vi vandi(vi a, vi b) { return _mm512_and_si512(a, b); }
KS_INL vi vori(vi a, vi b) { return _mm512_or_si512(a, b); }
KS_INL vi vslli(vi x, int n) { return _mm512_slli_epi32(x, (unsigned)n); }
KS_INL vi vsrli(vi x, int n) { return _mm512_srli_epi32(x, (unsigned)n); }
KS_INL vi vsrlv(vi x, vi n) { return _mm512_srlv_epi32(x, n); }
KS_INL vi vlane(void) { return _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0); }
KS_INL vi vpermi(vi idx, vi x) { return _mm512_permutexvar_epi32(idx, x); }
KS_INL vf vgather(const float *base, vi idx) { return _mm512_i32gather_ps(idx, base, 4); }
KS_INL vf vkeep_gt(vf v, vf n, vf t) { return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(n, t, _CMP_GT_OQ), v); }
KS_INL vm vm_first(int n) { return n >= 16 ? (vm)0xffff : (vm)((1u << n) - 1); }
KS_INL vf vload_m(vm k, const float *p) { return _mm512_maskz_loadu_ps(k, p); }
KS_INL void vstore_m(float *p, vm k, vf x) { _mm512_mask_storeu_ps(p, k, x); }
KS_INL vf vzero_m(vm k, vf x) { return _mm512_maskz_mov_ps(k, x); }

#include "kvmem/simd_body.h"
#endif
