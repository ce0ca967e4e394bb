/*
 * q4k_x8_body.h — the KRN_Q4_K_X8 kernels (8 interleaved Q4_K rows against
 * Q8_K activations, layout in krn_internal.h), written once and compiled by
 * dot_avx2.c (maddubs: u8×s8 pairs into int16, summed in int16 over a
 * 32-element sub-block, then one madd with the 8 rows' scales) and by
 * dot_avx512.c with KX_VNNI (vpdpbusd into int32 over the sub-block, then
 * one vpmulld with the scales). The includer defines KX(name) and KX_TGT.
 * Not a public header; include nowhere else.
 *
 * One ymm holds 4 quant bytes of each of the 8 rows (32-bit lane r = row r),
 * so the activation is a 4-byte broadcast and no weight shuffle is needed.
 * Exactness: a maddubs int16 is at most 2·15·127 and eight of them are summed
 * per lane (30480 < 32767; activations are in [-127, 127]); the scales part
 * and the mins part are exact int32 sums, equal to dot_scalar.c q4_k_r8's,
 * and the f32 steps are the same per lane (d·dy, then fma per super-block
 * for the gemv, per 64 elements for the gemm), so the bits are the scalar
 * kernel's.
 */

#define X8_INL static inline __attribute__((always_inline, target(KX_TGT)))
#define X8_FN __attribute__((target(KX_TGT)))

X8_INL int32_t KX(x8_ld32)(const void *p) {
  int32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Scales and mins of all 8 rows as bytes: sc[8j + r], mn[8j + r]. */
X8_INL void KX(x8_unpack)(const blk_q4_k_x8 *x, uint8_t *sc, uint8_t *mn) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  const __m256i s = _mm256_loadu_si256((const __m256i *)x->scl), m = _mm256_loadu_si256((const __m256i *)x->mnl);
  const __m256i h = _mm256_loadu_si256((const __m256i *)x->hi);
  _mm256_storeu_si256((__m256i *)sc, _mm256_or_si256(_mm256_and_si256(s, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30)));
  _mm256_storeu_si256((__m256i *)(sc + 32), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(s, 4), m4),
                                                             _mm256_and_si256(_mm256_slli_epi16(h, 2), m30)));
  _mm256_storeu_si256((__m256i *)mn, _mm256_or_si256(_mm256_and_si256(m, m4), _mm256_and_si256(h, m30)));
  _mm256_storeu_si256((__m256i *)(mn + 32), _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(m, 4), m4),
                                                             _mm256_and_si256(_mm256_srli_epi16(h, 2), m30)));
}

/* The 8 rows' scales of one sub-block (8 bytes at p), per 32-bit lane r:
 * AVX2 as the int16 pair (s, s) for madd, VNNI as the int32 s for mullo. */
X8_INL __m256i KX(x8_scale)(const uint8_t *p) {
#ifdef KX_VNNI
  return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
#else
  int64_t v;
  memcpy(&v, p, 8);
  return _mm256_shuffle_epi8(_mm256_set1_epi64x(v), _mm256_setr_epi8(0, -1, 0, -1, 1, -1, 1, -1, 2, -1, 2, -1, 3, -1, 3, -1,
                                                                      4, -1, 4, -1, 5, -1, 5, -1, 6, -1, 6, -1, 7, -1, 7, -1));
#endif
}

/* The 8 rows' mins of sub-blocks 2q and 2q+1 (16 bytes at p) as int16
 * pairs per 32-bit lane, for a madd with the pair of activation sums. */
X8_INL __m256i KX(x8_minpair)(const uint8_t *p) {
  const __m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
  return _mm256_shuffle_epi8(v, _mm256_setr_epi8(0, -1, 8, -1, 1, -1, 9, -1, 2, -1, 10, -1, 3, -1, 11, -1, 4, -1, 12, -1,
                                                 5, -1, 13, -1, 6, -1, 14, -1, 7, -1, 15, -1));
}

/* [bs_0 .. bs_7] int16 in the low lane: bs_j = bsums[2j] + bsums[2j+1],
 * the activation sum over sub-block j (|bs_j| <= 32·127). */
X8_INL __m256i KX(x8_bsums)(const blk_q8_k *y) {
  const __m128i b = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums), _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
  return _mm256_castsi128_si256(b);
}

/* The pair (bs_2q, bs_2q+1) in every 32-bit lane (a variable index, so
 * that an unrolled or a plain -O0 loop both compile). */
#define X8_BS(bs, q) _mm256_permutevar8x32_epi32((bs), _mm256_set1_epi32(q))

/* Sub-block sums of one 64-element pair p of super-block x against one
 * activation row q8: lo (sub-block 2p) and hi (2p+1), per row lane. AVX2:
 * int16 pairs (to be madd'ed with the scales); VNNI: int32. */
X8_INL void KX(x8_pair)(const blk_q4_k_x8 *x, int p, const int8_t *q8, __m256i *lo, __m256i *hi) {
  const __m256i m4 = _mm256_set1_epi8(0x0F);
#ifdef KX_VNNI
  /* two chains per sub-block: vpdpbusd's latency, not its throughput, would bound one */
  __m256i l0 = _mm256_setzero_si256(), l1 = l0, h0 = l0, h1 = l0;
  _Pragma("GCC unroll 8")
  for (int g = 0; g < 8; g += 2) {
    const __m256i w0 = _mm256_loadu_si256((const __m256i *)(x->qs + 256 * p + 32 * g));
    const __m256i w1 = _mm256_loadu_si256((const __m256i *)(x->qs + 256 * p + 32 * g + 32));
    l0 = _mm256_dpbusd_epi32(l0, _mm256_and_si256(w0, m4), _mm256_set1_epi32(KX(x8_ld32)(q8 + 64 * p + 4 * g)));
    h0 = _mm256_dpbusd_epi32(h0, _mm256_and_si256(_mm256_srli_epi16(w0, 4), m4),
                             _mm256_set1_epi32(KX(x8_ld32)(q8 + 64 * p + 32 + 4 * g)));
    l1 = _mm256_dpbusd_epi32(l1, _mm256_and_si256(w1, m4), _mm256_set1_epi32(KX(x8_ld32)(q8 + 64 * p + 4 * g + 4)));
    h1 = _mm256_dpbusd_epi32(h1, _mm256_and_si256(_mm256_srli_epi16(w1, 4), m4),
                             _mm256_set1_epi32(KX(x8_ld32)(q8 + 64 * p + 36 + 4 * g)));
  }
  *lo = _mm256_add_epi32(l0, l1);
  *hi = _mm256_add_epi32(h0, h1);
#else
  __m256i l = _mm256_setzero_si256(), h = l;
  _Pragma("GCC unroll 8")
  for (int g = 0; g < 8; g++) {
    const __m256i w = _mm256_loadu_si256((const __m256i *)(x->qs + 256 * p + 32 * g));
    l = _mm256_add_epi16(l, _mm256_maddubs_epi16(_mm256_and_si256(w, m4),
                                                 _mm256_set1_epi32(KX(x8_ld32)(q8 + 64 * p + 4 * g))));
    h = _mm256_add_epi16(h, _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(w, 4), m4),
                                                 _mm256_set1_epi32(KX(x8_ld32)(q8 + 64 * p + 32 + 4 * g))));
  }
  *lo = l;
  *hi = h;
#endif
}

/* Σ over the pair of sub-block sum × scale, int32 per row lane. */
X8_INL __m256i KX(x8_scaled)(__m256i lo, __m256i hi, __m256i s0, __m256i s1) {
#ifdef KX_VNNI
  return _mm256_add_epi32(_mm256_mullo_epi32(lo, s0), _mm256_mullo_epi32(hi, s1));
#else
  return _mm256_add_epi32(_mm256_madd_epi16(lo, s0), _mm256_madd_epi16(hi, s1));
#endif
}

/* gemv: one activation row, one fma per super-block (q4_k_r8 per64 = 0). */
X8_INL void KX(x8_gemv)(size_t k, const blk_q4_k_x8 *x, const blk_q8_k *y, float *out) {
  __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
  const size_t nb = k / QK_K;
  for (size_t i = 0; i < nb; i++) {
    _Alignas(32) uint8_t sc[64], mn[64];
    KX(x8_unpack)(&x[i], sc, mn);
    const __m256i bs = KX(x8_bsums)(&y[i]);
    __m256i is = _mm256_setzero_si256(), im = _mm256_setzero_si256();
    _Pragma("GCC unroll 4")
    for (int p = 0; p < 4; p++) {
      __m256i lo, hi;
      KX(x8_pair)(&x[i], p, y[i].qs, &lo, &hi);
      is = _mm256_add_epi32(is, KX(x8_scaled)(lo, hi, KX(x8_scale)(sc + 16 * p), KX(x8_scale)(sc + 16 * p + 8)));
      im = _mm256_add_epi32(im, _mm256_madd_epi16(KX(x8_minpair)(mn + 16 * p), X8_BS(bs, p)));
    }
    const __m256 dy = _mm256_set1_ps(y[i].d);
    const __m256 dd = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].d)), dy);
    const __m256 dm = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].dmin)), dy);
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), dd, acc);
    accm = _mm256_fmadd_ps(_mm256_cvtepi32_ps(im), dm, accm);
  }
  _mm256_storeu_ps(out, _mm256_sub_ps(acc, accm));
}

/* gemm: 4 activation rows, one fma per 64 elements (q4_k_r8 per64 = 1);
 * each weight vector is decoded once for the 4 rows. */
X8_INL void KX(x8_gemm4)(size_t k, const blk_q4_k_x8 *x, const void *a, size_t a_stride, float *out) {
  __m256 acc[4], accm[4];
  const blk_q8_k *y[4];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < 4; r++) {
    acc[r] = accm[r] = _mm256_setzero_ps();
    y[r] = (const blk_q8_k *)((const uint8_t *)a + (size_t)r * a_stride);
  }
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const size_t nb = k / QK_K;
  for (size_t i = 0; i < nb; i++) {
    _Alignas(32) uint8_t sc[64], mn[64];
    KX(x8_unpack)(&x[i], sc, mn);
    const __m256 d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].d));
    const __m256 dmin = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)x[i].dmin));
    _Pragma("GCC unroll 4")
    for (int p = 0; p < 4; p++) {
      __m256i lo[4], hi[4];
      _Pragma("GCC unroll 4")
      for (int r = 0; r < 4; r++) lo[r] = hi[r] = _mm256_setzero_si256();
      _Pragma("GCC unroll 8")
      for (int g = 0; g < 8; g++) {
        const __m256i w = _mm256_loadu_si256((const __m256i *)(x[i].qs + 256 * p + 32 * g));
        const __m256i wl = _mm256_and_si256(w, m4), wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), m4);
        _Pragma("GCC unroll 4")
        for (int r = 0; r < 4; r++) {
          const int8_t *q8 = y[r][i].qs + 64 * p + 4 * g;
          const __m256i al = _mm256_set1_epi32(KX(x8_ld32)(q8)), ah = _mm256_set1_epi32(KX(x8_ld32)(q8 + 32));
#ifdef KX_VNNI
          lo[r] = _mm256_dpbusd_epi32(lo[r], wl, al);
          hi[r] = _mm256_dpbusd_epi32(hi[r], wh, ah);
#else
          lo[r] = _mm256_add_epi16(lo[r], _mm256_maddubs_epi16(wl, al));
          hi[r] = _mm256_add_epi16(hi[r], _mm256_maddubs_epi16(wh, ah));
#endif
        }
      }
      const __m256i s0 = KX(x8_scale)(sc + 16 * p), s1 = KX(x8_scale)(sc + 16 * p + 8);
      const __m256i mp = KX(x8_minpair)(mn + 16 * p);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < 4; r++) {
        const __m256 dy = _mm256_set1_ps(y[r][i].d);
        const __m256i is = KX(x8_scaled)(lo[r], hi[r], s0, s1);
        const __m256i im = _mm256_madd_epi16(mp, X8_BS(KX(x8_bsums)(&y[r][i]), p));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(is), _mm256_mul_ps(d, dy), acc[r]);
        accm[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(im), _mm256_mul_ps(dmin, dy), accm[r]);
      }
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < 4; r++) _mm256_storeu_ps(out + 8 * r, _mm256_sub_ps(acc[r], accm[r]));
}

static X8_FN void KX(x8)(size_t k, const void *w, const void *a, size_t a_stride, int nr, float *out) {
  if (nr == 4) KX(x8_gemm4)(k, w, a, a_stride, out);
  else KX(x8_gemv)(k, w, a, out);
}

#undef X8_BS
#undef X8_INL
#undef X8_FN
