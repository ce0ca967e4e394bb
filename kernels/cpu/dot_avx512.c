/*
 * dot_avx512.c — the AVX-512 level: the 256-bit kernels of dot_x86_body.h
 * with u8×s8 sums done by AVX-512 VNNI's vpdpbusd (one instruction instead
 * of maddubs+madd) where the CPU has VNNI; without VNNI this level adds
 * nothing over AVX2 and the table returns NULL (the AVX2 kernels stay).
 * Integer results are identical to the AVX2 path (no saturation occurs for
 * the value ranges documented in dot_x86_body.h).
 */
#include "kernels/cpu/krn_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define KX(name) name##_avx512
#define KX_TGT "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"

static inline __attribute__((always_inline, target(KX_TGT))) __m256i mulsum(__m256i ax, __m256i sy) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
}

#include "kernels/cpu/dot_x86_body.h"

static int have_vnni(void) {
  const krn_cpu *c = krn_cpu_features();
  return c->avx512vnni && c->avx512bw && c->f16c;
}

krn_vec_dot_fn krn__dot_avx512(int type) { return have_vnni() ? dot_table_avx512(type) : NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx512(int type) { return have_vnni() ? multi_table_avx512(type) : NULL; }
#else
krn_vec_dot_fn krn__dot_avx512(int type) { (void)type; return NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx512(int type) { (void)type; return NULL; }
#endif
