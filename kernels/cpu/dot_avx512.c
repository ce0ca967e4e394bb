/*
 * dot_avx512.c — the AVX-512 level: the 256-bit kernels of dot_x86_body.h
 * with u8×s8 sums done by AVX-512 VNNI's vpdpbusd (one instruction instead
 * of maddubs+madd) where the CPU has VNNI; without VNNI this level adds
 * nothing over AVX2 and the table returns NULL (the AVX2 kernels stay).
 * Integer results are identical to the AVX2 path (no saturation occurs for
 * the value ranges documented in dot_x86_body.h). The K-quants get 512-bit
 * kernels below (64 elements per register); the 32-element block types and
 * F32 / F16 / BF16 keep the 256-bit body: it sums in ggml's vec_dot order
 * (bit-identical to llama.cpp), and on the machines measured (Xeon, AVX-512
 * frequency licence) two-outputs-per-zmm versions in that order were 15-25%
 * slower in the engine than these 256-bit VNNI kernels.
 * The level is offered only with VNNI (krn_cpu: avx512vnni), which every
 * AVX-512 CPU kvasir has met also has; without it the AVX2 kernels stay.
 */
#include "kernels/cpu/krn_internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define KX(name) name##_avx512
#define KX_TGT "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define KX_MASK_BITS 1
#define KX_NR32 8 /* 32 ymm registers: 8 accumulators per call */

static inline __attribute__((always_inline, target(KX_TGT))) __m256i mulsum(__m256i ax, __m256i sy) {
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy);
}

#include "kernels/cpu/dot_x86_body.h"
#define KX_VNNI 1 /* q4k_x8_body.h: vpdpbusd sub-block sums, vpmulld scales */
#include "kernels/cpu/q4k_x8_body.h"
#undef KX_VNNI

/* ---- 512-bit K-quant kernels: 64 elements per register ----
 * Same integer arithmetic as the 256-bit body (maddubs + madd with 16-bit
 * scales), half the instructions per element: one 32-byte broadcast load
 * yields both nibble halves of a 64-element chunk, and one constant shuffle
 * spreads two sub-block scales over the register. */

#define ROW(T, a, stride, r, i) ((const T *)((const uint8_t *)(a) + (size_t)(r) * (stride)) + (i))
#define K5_INL static inline __attribute__((always_inline, target(KX_TGT)))
#define K5_FN __attribute__((target(KX_TGT)))

/* int16 scale `lo` in 128-bit lanes 0-1 and `hi` in lanes 2-3 of a register
 * holding the same 8 int16 scales in every lane. */
K5_INL __m512i spread2(__m512i scales, int lo, int hi) {
  const int a = ((2 * lo + 1) << 24) | ((2 * lo) << 16) | ((2 * lo + 1) << 8) | (2 * lo);
  const int b = ((2 * hi + 1) << 24) | ((2 * hi) << 16) | ((2 * hi + 1) << 8) | (2 * hi);
  return _mm512_shuffle_epi8(scales, _mm512_set_epi32(b, b, b, b, b, b, b, b, a, a, a, a, a, a, a, a));
}

/* int16 scale base+L in 128-bit lane L. */
K5_INL __m512i spread4(__m512i scales, int base) {
  int v[4];
  for (int l = 0; l < 4; l++) {
    const int s = base + l;
    v[l] = ((2 * s + 1) << 24) | ((2 * s) << 16) | ((2 * s + 1) << 8) | (2 * s);
  }
  return _mm512_shuffle_epi8(scales, _mm512_set_epi32(v[3], v[3], v[3], v[3], v[2], v[2], v[2], v[2], v[1], v[1],
                                                       v[1], v[1], v[0], v[0], v[0], v[0]));
}

K5_INL void rows512_qk45(int type, size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  __m128 accm[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
  const __m512i m4 = _mm512_set1_epi8(0x0F), one = _mm512_set1_epi8(1);
  const size_t nb = n / QK_K;
  for (size_t i = 0; i < nb; i++) {
    const uint8_t *qs, *scales, *qhp = NULL;
    const void *dp;
    if (type == KRN_Q4_K) {
      const blk_q4_k *x = (const blk_q4_k *)w + i;
      qs = x->qs, scales = x->scales, dp = &x->d;
    } else {
      const blk_q5_k *x = (const blk_q5_k *)w + i;
      qs = x->qs, scales = x->scales, dp = &x->d, qhp = x->qh;
    }
    const __m256i sm = _mm256_cvtepu8_epi16(unpack_k4_avx512(scales)); /* 8 scales | 8 mins */
    const __m512i scz = _mm512_broadcast_i32x4(_mm256_castsi256_si128(sm));
    const __m256i mn = _mm256_permute2x128_si256(sm, sm, 0x11);
    const __m128 ddmin = h2f_pair_avx512(dp);
    __m512i sumi[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                       _mm512_setzero_si512()};
    const __m512i hb = qhp ? _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qhp)) : _mm512_setzero_si512();
    _Pragma("GCC unroll 4")
    for (int j = 0; j < 4; j++) {
      const __m512i b = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * j)));
      __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(b, 0xFFFF0000u, b, 4), m4);
      if (qhp) {
        /* bit 2j for the low 32 elements, bit 2j+1 for the high 32 */
        const __m512i sh = _mm512_inserti64x4(_mm512_set1_epi16((short)(2 * j)), _mm256_set1_epi16((short)(2 * j + 1)), 1);
        q = _mm512_or_si512(q, _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(hb, sh), one), 4));
      }
      const __m512i s = spread2(scz, 2 * j, 2 * j + 1);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < NR; r++) {
        const int8_t *q8 = ROW(blk_q8_k, a, stride, r, i)->qs + 64 * j;
        const __m512i p = _mm512_madd_epi16(s, _mm512_maddubs_epi16(q, _mm512_loadu_si512((const void *)q8)));
        sumi[r] = _mm512_add_epi32(sumi[r], p);
      }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
      const blk_q8_k *y = ROW(blk_q8_k, a, stride, r, i);
      const __m256i mn16 = _mm256_shuffle_epi8(
          mn, _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12,
                               13, 14, 15, 14, 15));
      const __m256i pm = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)y->bsums));
      const __m128 f = _mm_mul_ps(ddmin, _mm_set1_ps(y->d)); /* [d*dy, dmin*dy] */
      /* ggml's vec_dot lanes: the two 32-element halves folded into 8
       * int32 lanes; mins pairwise, lane j = mn[2j]·S[2j] + mn[2j+1]·S[2j+1] */
      const __m256i s256 = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r]), _mm512_extracti64x4_epi64(sumi[r], 1));
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(s256), acc[r]);
      accm[r] = _mm_fmadd_ps(_mm_shuffle_ps(f, f, 0x55),
                             _mm_cvtepi32_ps(_mm_hadd_epi32(_mm256_castsi256_si128(pm), _mm256_extracti128_si256(pm, 1))),
                             accm[r]);
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NR; r++) {
    __m128 m = _mm_add_ps(accm[r], _mm_movehl_ps(accm[r], accm[r]));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    out[r] = hsum_ps_avx512(acc[r]) - _mm_cvtss_f32(m);
  }
}

K5_INL void rows512_q6_k(size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3), m32 = _mm512_set1_epi8(32);
  /* per-half shifts of the broadcast qh bytes: (0 | 2) for q0|q1, (4 | 6) for q2|q3 */
  const __m512i shA = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
  const __m512i shB = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  const size_t nb = n / QK_K;
  for (size_t i = 0; i < nb; i++) {
    const blk_q6_k *x = (const blk_q6_k *)w + i;
    const float dx = h2f_avx512(x->d);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    __m512i sumi[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                       _mm512_setzero_si512()};
    _Pragma("GCC unroll 2")
    for (int h = 0; h < 2; h++) {
      const __m512i ql = _mm512_loadu_si512((const void *)(x->ql + 64 * h));
      const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(x->qh + 32 * h)));
      const __m512i scz =
          _mm512_broadcast_i32x4(h ? _mm256_extracti128_si256(sc16, 1) : _mm256_castsi256_si128(sc16));
      const __m512i A = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shA), m3), 4));
      const __m512i B = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                        _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shB), m3), 4));
      const __m512i sA = spread4(scz, 0), sB = spread4(scz, 4);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < NR; r++) {
        const int8_t *q8 = ROW(blk_q8_k, a, stride, r, i)->qs + 128 * h;
        const __m512i ya = _mm512_loadu_si512((const void *)q8), yb = _mm512_loadu_si512((const void *)(q8 + 64));
        const __m512i pa = _mm512_madd_epi16(sA, _mm512_sub_epi16(_mm512_maddubs_epi16(A, ya), _mm512_maddubs_epi16(m32, ya)));
        const __m512i pb = _mm512_madd_epi16(sB, _mm512_sub_epi16(_mm512_maddubs_epi16(B, yb), _mm512_maddubs_epi16(m32, yb)));
        sumi[r] = _mm512_add_epi32(sumi[r], _mm512_add_epi32(pa, pb));
      }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
      const blk_q8_k *y = ROW(blk_q8_k, a, stride, r, i);
      /* lane k + lane k+8: the 32-element chunks' lanes folded as ggml's 256-bit lanes */
      const __m256i s256 = _mm256_add_epi32(_mm512_castsi512_si256(sumi[r]), _mm512_extracti64x4_epi64(sumi[r], 1));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * y->d), _mm256_cvtepi32_ps(s256), acc[r]);
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NR; r++) out[r] = hsum_ps_avx512(acc[r]);
}

#define K5_DEFINE(tag, CALL)                                                                               \
  static K5_FN float dot512_##tag(size_t n, const void *w, const void *a) {                              \
    float o;                                                                                              \
    CALL(n, w, a, 0, 1, &o);                                                                              \
    return o;                                                                                             \
  }                                                                                                       \
  static K5_FN void multi512_##tag(size_t n, const void *w, const void *a, size_t st, int nr, float *o) { \
    switch (nr) {                                                                                         \
    case 1: CALL(n, w, a, st, 1, o); break;                                                              \
    case 2: CALL(n, w, a, st, 2, o); break;                                                              \
    case 3: CALL(n, w, a, st, 3, o); break;                                                              \
    default: CALL(n, w, a, st, 4, o); break;                                                             \
    }                                                                                                     \
  }
#define CALL_Q4K(n, w, a, st, NR, o) rows512_qk45(KRN_Q4_K, n, w, a, st, NR, o)
#define CALL_Q5K(n, w, a, st, NR, o) rows512_qk45(KRN_Q5_K, n, w, a, st, NR, o)
#define CALL_Q6K(n, w, a, st, NR, o) rows512_q6_k(n, w, a, st, NR, o)
K5_DEFINE(q4_k, CALL_Q4K)
K5_DEFINE(q5_k, CALL_Q5K)
K5_DEFINE(q6_k, CALL_Q6K)

static int have_vnni(void) {
  const krn_cpu *c = krn_cpu_features();
  return c->avx512vnni && c->avx512bw && c->f16c;
}

krn_vec_dot_fn krn__dot_avx512(int type) {
  if (!have_vnni()) return NULL;
  switch (type) {
  case KRN_Q4_K: return dot512_q4_k;
  case KRN_Q5_K: return dot512_q5_k;
  case KRN_Q6_K: return dot512_q6_k;
  default: return dot_table_avx512(type);
  }
}

int krn__multi_rows_avx512(int type) { return have_vnni() ? multi_rows_avx512(type) : 4; }

krn_vec_dot_multi_fn krn__dot_multi_avx512(int type) {
  if (!have_vnni()) return NULL;
  switch (type) {
  case KRN_Q4_K: return multi512_q4_k;
  case KRN_Q5_K: return multi512_q5_k;
  case KRN_Q6_K: return multi512_q6_k;
  default: return multi_table_avx512(type);
  }
}
krn_vec_dot_wrows_fn krn__dot_wrows_avx512(int type) { return have_vnni() ? wrows_table_avx512(type) : NULL; }
krn_x8_fn krn__x8_avx512(void) { return have_vnni() ? x8_avx512 : NULL; }
#else
krn_x8_fn krn__x8_avx512(void) { return NULL; }
krn_vec_dot_wrows_fn krn__dot_wrows_avx512(int type) { (void)type; return NULL; }
krn_vec_dot_fn krn__dot_avx512(int type) { (void)type; return NULL; }
krn_vec_dot_multi_fn krn__dot_multi_avx512(int type) { (void)type; return NULL; }
int krn__multi_rows_avx512(int type) { (void)type; return 4; }
#endif
