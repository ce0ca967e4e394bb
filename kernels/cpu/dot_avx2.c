/*
 * dot_avx2.c — AVX2/FMA/F16C fused dot products (the kernels themselves are
 * in dot_x86_body.h and, for the repacked KRN_Q4_K_X8, q4k_x8_body.h, shared
 * with the AVX-512 build). Compiled with
 * per-function target attributes so the library still loads and runs on
 * CPUs without AVX2; krn__kernels() only hands these out when
 * krn_isa_name() says "avx2" or better.
 */
#include "kernels/cpu/krn_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define KX(name) name##_avx2
#define KX_TGT "avx2,fma,f16c"

/* u8 × s8, 4 adjacent products summed into each of 8 int32 lanes. */
static inline __attribute__((always_inline, target(KX_TGT))) __m256i mulsum(__m256i ax, __m256i sy) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}

#include "kernels/cpu/dot_x86_body.h"
#include "kernels/cpu/q4k_x8_body.h"

static int have_f16c(void) { return krn_cpu_features()->f16c; }

krn_vec_dot_fn krn__dot_avx2(int type) { return have_f16c() ? dot_table_avx2(type) : NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx2(int type) { return have_f16c() ? multi_table_avx2(type) : NULL; }
int krn__multi_rows_avx2(int type) { return multi_rows_avx2(type); }
krn_vec_dot_wrows_fn krn__dot_wrows_avx2(int type) { return have_f16c() ? wrows_table_avx2(type) : NULL; }
krn_x8_fn krn__x8_avx2(void) { return have_f16c() ? x8_avx2 : NULL; }
#else
krn_vec_dot_fn krn__dot_avx2(int type) { (void)type; return NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx2(int type) { (void)type; return NULL; }
int krn__multi_rows_avx2(int type) { (void)type; return 4; }
krn_vec_dot_wrows_fn krn__dot_wrows_avx2(int type) { (void)type; return NULL; }
krn_x8_fn krn__x8_avx2(void) { return NULL; }
#endif

