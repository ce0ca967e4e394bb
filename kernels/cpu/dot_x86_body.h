/*
 * dot_x86_body.h — the 256-bit fused dot-product kernels, written once and
 * compiled twice: by dot_avx2.c (AVX2 + FMA + F16C, u8×s8 products through
 * maddubs+madd) and by dot_avx512.c (the same plus AVX-512 VNNI's vpdpbusd
 * on 256-bit registers). The includer defines:
 *   KX(name)   suffixes every function (name##_avx2, name##_avx512)
 *   KX_TGT     the target attribute string
 *   mulsum(ax, sy)  8 int32 sums of 4 adjacent u8×s8 products
 *   KX_MASK_BITS    (optional) use AVX-512BW byte masks for Q5 high bits
 * before including this file. Not a public header; include nowhere else.
 *
 * Each kernel decodes a weight block once and uses it for NR activation rows
 * (1..4, a compile-time constant after inlining), so the batched matmul reads
 * each weight byte once per 4 activation rows. Integer block sums are exact
 * and equal the scalar reference's; only the f32 scaling and summation order
 * differ (lanes instead of one running sum).
 *
 * Value ranges that keep maddubs (int16 saturating) exact: activations are
 * in [-127, 127] (our Q8 quantizers never produce -128); weights as
 * unsigned magnitudes are <= 128 (Q8_0 via the sign trick), <= 31 (Q5),
 * <= 63 (Q6_K): 2·128·127 < 32767.
 */

/* Most activation rows one call of the 32-element kernels takes (the
 * includer may raise it to 8 where 32 vector registers hold the
 * accumulators: AVX-512VL). */
#ifndef KX_NR32
#define KX_NR32 4
#endif

#define KX_INL static inline __attribute__((always_inline, target(KX_TGT)))
#define KX_FN __attribute__((target(KX_TGT)))

KX_INL float KX(hsum_ps)(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

KX_INL int KX(hsum_i32)(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

KX_INL float KX(h2f)(uint16_t h) { return _cvtsh_ss(h); }

/* 16 bytes of nibbles -> 32 bytes: low nibbles (elements 0..15) in the low
 * lane, high nibbles (elements 16..31) in the high lane. The 128-bit
 * broadcast is a plain load; the blend avoids a port-5 lane insert. */
KX_INL __m256i KX(nib32)(const uint8_t *qs) {
  const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
  return _mm256_and_si256(_mm256_blend_epi32(b, _mm256_srli_epi16(b, 4), 0xF0), _mm256_set1_epi8(0x0F));
}

/* Two adjacent f16 at p (d and m, or d and the block's first bytes) as
 * f32 lanes 0 and 1 of an xmm: one 32-bit load and one conversion. */
KX_INL __m128 KX(h2f_pair)(const void *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return _mm_cvtph_ps(_mm_cvtsi32_si128((int)v));
}

/* 32 bits -> 32 bytes, 0xFF where the bit is set (bit i -> byte i). */
KX_INL __m256i KX(bits32)(const uint8_t *qh) {
  uint32_t x;
  memcpy(&x, qh, 4);
  const __m256i shuf = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)x), shuf);
  b = _mm256_or_si256(b, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfeLL));
  return _mm256_cmpeq_epi8(b, _mm256_set1_epi64x(-1));
}

#define ROW(T, a, stride, r, i) ((const T *)((const uint8_t *)(a) + (size_t)(r) * (stride)) + (i))

/* Activation rows for 32-element formats carry f32 (d, s) pairs after the
 * blocks (krn__act_ds), so no f16 conversion happens per row here. */
#define ROW_DS(a, stride, r, nb) ((const float *)((const uint8_t *)(a) + (size_t)(r) * (stride) + krn__act_ds_offset(nb)))

/* ---- 32-element blocks against Q8_0 (signed weights, sign trick) ----
 * Blocks alternate between two accumulator sets so that consecutive FMAs
 * do not wait on each other (one FMA per block would otherwise bound the
 * loop at the FMA latency). */

KX_INL void KX(block_q8_0_family)(int type, const void *w, size_t i, const void *a, size_t stride, int NR,
                                  const float *const *ds, __m256 *acc) {
  __m256i qx;
  __m128 dx;
  if (type == KRN_Q4_0) {
    const blk_q4_0 *x = (const blk_q4_0 *)w + i;
    qx = _mm256_sub_epi8(KX(nib32)(x->qs), _mm256_set1_epi8(8));
    dx = KX(h2f_pair)(&x->d);
  } else if (type == KRN_Q5_0) {
    const blk_q5_0 *x = (const blk_q5_0 *)w + i;
#ifdef KX_MASK_BITS /* AVX-512: the 32 high bits are a byte mask as they are */
    uint32_t hbits;
    memcpy(&hbits, x->qh, 4);
    const __m256i nib = KX(nib32)(x->qs);
    qx = _mm256_mask_sub_epi8(nib, _cvtu32_mask32(~hbits), nib, _mm256_set1_epi8(16));
#else
    /* nibble | (bit ? 0 : 0xF0) == nibble + 16*bit - 16 as int8 */
    qx = _mm256_or_si256(KX(nib32)(x->qs), _mm256_andnot_si256(KX(bits32)(x->qh), _mm256_set1_epi8((char)0xF0)));
#endif
    dx = KX(h2f_pair)(&x->d);
  } else {
    const blk_q8_0 *x = (const blk_q8_0 *)w + i;
    qx = _mm256_loadu_si256((const __m256i *)x->qs);
    dx = KX(h2f_pair)(&x->d);
  }
  const __m256i ax = _mm256_sign_epi8(qx, qx);
  const __m256 dxv = _mm256_broadcastss_ps(dx);
  _Pragma("GCC unroll 8")
  for (int r = 0; r < NR; r++) {
    const blk_q8_0 *y = ROW(blk_q8_0, a, stride, r, i);
    const __m256i sy = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), qx);
    const __m256 p = _mm256_cvtepi32_ps(mulsum(ax, sy));
    /* d·dy in every lane: a broadcast load and one multiply (no shuffle) */
    const __m256 dd = _mm256_mul_ps(dxv, _mm256_broadcast_ss(ds[r] + 2 * i));
    acc[r] = _mm256_fmadd_ps(dd, p, acc[r]);
  }
}

KX_INL void KX(rows_q8_0_family)(int type, size_t n, const void *w, const void *a, size_t stride, int NR,
                                 float *out) {
  /* one accumulator per row, blocks in order: ggml's vec_dot order, so the
   * engine's results are bit-identical to llama.cpp's (engine/backend.c) */
  __m256 acc[KX_NR32];
  const size_t nb = n / 32;
  const float *ds[KX_NR32];
  _Pragma("GCC unroll 8")
  for (int r = 0; r < NR; r++) ds[r] = ROW_DS(a, stride, r, nb), acc[r] = _mm256_setzero_ps();
  for (size_t i = 0; i < nb; i++) KX(block_q8_0_family)(type, w, i, a, stride, NR, ds, acc);
  _Pragma("GCC unroll 8")
  for (int r = 0; r < NR; r++) out[r] = KX(hsum_ps)(acc[r]);
}

/* ---- 32-element blocks with a min, against Q8_1 (unsigned weights) ---- */

KX_INL void KX(block_q8_1_family)(int type, const void *w, size_t i, const void *a, size_t stride, int NR,
                                  const float *const *ds, __m256 *acc, __m128 *accm) {
  __m256i qx;
  __m128 dm; /* [d, m] of the weight block */
  if (type == KRN_Q4_1) {
    const blk_q4_1 *x = (const blk_q4_1 *)w + i;
    qx = KX(nib32)(x->qs);
    dm = KX(h2f_pair)(&x->d);
  } else {
    const blk_q5_1 *x = (const blk_q5_1 *)w + i;
#ifdef KX_MASK_BITS
    uint32_t hbits;
    memcpy(&hbits, x->qh, 4);
    const __m256i nib = KX(nib32)(x->qs);
    qx = _mm256_mask_add_epi8(nib, _cvtu32_mask32(hbits), nib, _mm256_set1_epi8(16));
#else
    qx = _mm256_or_si256(KX(nib32)(x->qs), _mm256_and_si256(KX(bits32)(x->qh), _mm256_set1_epi8(0x10)));
#endif
    dm = KX(h2f_pair)(&x->d);
  }
  _Pragma("GCC unroll 8")
  for (int r = 0; r < NR; r++) {
    const blk_q8_1 *y = ROW(blk_q8_1, a, stride, r, i);
    const __m256 p = _mm256_cvtepi32_ps(mulsum(qx, _mm256_loadu_si256((const __m256i *)y->qs)));
    /* [d*dy, m*sy]: lane 0 scales the block, lane 1 is the min term */
    const __m128 prod = _mm_mul_ps(dm, _mm_castpd_ps(_mm_load_sd((const double *)(ds[r] + 2 * i))));
    accm[r] = _mm_add_ps(accm[r], prod);
    acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(prod), p, acc[r]);
  }
}

KX_INL void KX(rows_q8_1_family)(int type, size_t n, const void *w, const void *a, size_t stride, int NR,
                                 float *out) {
  /* one accumulator per row, blocks in order: ggml's vec_dot order */
  __m256 acc[KX_NR32];
  __m128 accm[KX_NR32];
  const size_t nb = n / 32;
  const float *ds[KX_NR32];
  _Pragma("GCC unroll 8")
  for (int r = 0; r < NR; r++) ds[r] = ROW_DS(a, stride, r, nb), acc[r] = _mm256_setzero_ps(), accm[r] = _mm_setzero_ps();
  for (size_t i = 0; i < nb; i++) KX(block_q8_1_family)(type, w, i, a, stride, NR, ds, acc, accm);
  _Pragma("GCC unroll 8")
  for (int r = 0; r < NR; r++) out[r] = KX(hsum_ps)(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(accm[r]));
}

/* ---- several weight rows against one activation row (decode) ----
 * Each row's blocks go through the same block function with NR = 1, in
 * order, into its own accumulator, so every output has the bits of the
 * single-row dot above; interleaving NW rows only lets their FMA chains
 * overlap (one row's chain is bound by the FMA latency) and loads the
 * activation block once for all of them. */

KX_INL void KX(wrows_32)(int type, size_t n, const void *w, size_t w_stride, const void *a, int NW, float *out) {
  __m256 acc[4];
  __m128 accm[4];
  const size_t nb = n / 32;
  const float *ds[1] = {ROW_DS(a, 0, 0, nb)};
  const int q81 = type == KRN_Q4_1 || type == KRN_Q5_1;
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NW; r++) acc[r] = _mm256_setzero_ps(), accm[r] = _mm_setzero_ps();
  for (size_t i = 0; i < nb; i++) {
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NW; r++) {
      const void *wr = (const uint8_t *)w + (size_t)r * w_stride;
      if (q81) KX(block_q8_1_family)(type, wr, i, a, 0, 1, ds, &acc[r], &accm[r]);
      else KX(block_q8_0_family)(type, wr, i, a, 0, 1, ds, &acc[r]);
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NW; r++)
    out[r] = q81 ? KX(hsum_ps)(acc[r]) + _mm_cvtss_f32(_mm_movehdup_ps(accm[r])) : KX(hsum_ps)(acc[r]);
}

#define KX_DEFINE_W(T, tag)                                                                                 \
  static KX_FN void KX(wrows_##tag)(size_t n, const void *w, size_t ws, const void *a, int nw, float *o) { \
    if (nw == 4) KX(wrows_32)(T, n, w, ws, a, 4, o);                                                      \
    else                                                                                                  \
      for (int r = 0; r < nw; r++) KX(wrows_32)(T, n, (const uint8_t *)w + (size_t)r * ws, ws, a, 1, o + r); \
  }
KX_DEFINE_W(KRN_Q4_0, q4_0)
KX_DEFINE_W(KRN_Q4_1, q4_1)
KX_DEFINE_W(KRN_Q5_0, q5_0)
KX_DEFINE_W(KRN_Q5_1, q5_1)
KX_DEFINE_W(KRN_Q8_0, q8_0)
#undef KX_DEFINE_W

/* NULL for types without a weight-rows kernel. */
static krn_vec_dot_wrows_fn KX(wrows_table)(int type) {
  switch (type) {
  case KRN_Q4_0: return KX(wrows_q4_0);
  case KRN_Q4_1: return KX(wrows_q4_1);
  case KRN_Q5_0: return KX(wrows_q5_0);
  case KRN_Q5_1: return KX(wrows_q5_1);
  case KRN_Q8_0: return KX(wrows_q8_0);
  default: return NULL;
  }
}

/* ---- Q4_K / Q5_K against Q8_K ---- */

/* 12 packed bytes -> 16 bytes: 8 six-bit scales then 8 six-bit mins. */
KX_INL __m128i KX(unpack_k4)(const uint8_t *q) {
  uint32_t u[4];
  memcpy(u, q, 12);
  const uint32_t m6 = 0x3f3f3f3fu, m4 = 0x0f0f0f0fu, m2 = 0x03030303u;
  u[3] = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4); /* mins 4..7 */
  const uint32_t mins03 = u[1] & m6;
  u[1] = (u[2] & m4) | (((u[0] >> 6) & m2) << 4); /* scales 4..7 */
  u[2] = mins03;
  u[0] &= m6; /* scales 0..3 */
  return _mm_set_epi32((int)u[3], (int)u[2], (int)u[1], (int)u[0]);
}

/* Broadcast int16 lane `s` of each 128-bit lane (a constant shuffle). */
#define BCAST16(v, s) _mm256_shuffle_epi8((v), _mm256_set1_epi16((short)(((2 * (s) + 1) << 8) | (2 * (s)))))

KX_INL void KX(rows_qk45)(int type, size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  __m128 accm[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
  const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
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
    const __m256i sm = _mm256_cvtepu8_epi16(KX(unpack_k4)(scales)); /* 8 scales | 8 mins as int16 */
    const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00), mn = _mm256_permute2x128_si256(sm, sm, 0x11);
    const __m128 ddmin = KX(h2f_pair)(dp); /* [d, dmin] */
    __m256i sumi[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                       _mm256_setzero_si256()};
    const __m256i hb = qhp ? _mm256_loadu_si256((const __m256i *)qhp) : _mm256_setzero_si256();
    _Pragma("GCC unroll 4")
    for (int j = 0; j < 4; j++) {
      const __m256i bits = _mm256_loadu_si256((const __m256i *)(qs + 32 * j));
      __m256i ql = _mm256_and_si256(bits, m4), qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      if (qhp) {
        ql = _mm256_or_si256(ql, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j), one), 4));
        qh = _mm256_or_si256(qh, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, 2 * j + 1), one), 4));
      }
      const __m256i sl = BCAST16(sc, 2 * j), sh = BCAST16(sc, 2 * j + 1);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < NR; r++) {
        const int8_t *q8 = ROW(blk_q8_k, a, stride, r, i)->qs + 64 * j;
        const __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)q8)));
        const __m256i ph =
            _mm256_madd_epi16(sh, _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(pl, ph));
      }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
      const blk_q8_k *y = ROW(blk_q8_k, a, stride, r, i);
      /* mins: Σ_p mn[p]·(bsums[2p] + bsums[2p+1]) = Σ_s mn[s/2]·bsums[s] */
      const __m256i mn16 = _mm256_shuffle_epi8(
          mn, _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11, 12, 13, 12,
                               13, 14, 15, 14, 15));
      const __m256i pm = _mm256_madd_epi16(mn16, _mm256_loadu_si256((const __m256i *)y->bsums));
      const __m128 dy = _mm_set1_ps(y->d);
      const __m128 f = _mm_mul_ps(ddmin, dy); /* [d*dy, dmin*dy] */
      acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(f), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
      /* ggml's lanes: lane j = mn[2j]·S[2j] + mn[2j+1]·S[2j+1] (S: 32-element sums) */
      accm[r] = _mm_fmadd_ps(_mm_shuffle_ps(f, f, 0x55), _mm_cvtepi32_ps(_mm_hadd_epi32(_mm256_castsi256_si128(pm),
                                                                                _mm256_extracti128_si256(pm, 1))),
                             accm[r]);
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NR; r++) {
    __m128 m = _mm_add_ps(accm[r], _mm_movehl_ps(accm[r], accm[r]));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    out[r] = KX(hsum_ps)(acc[r]) - _mm_cvtss_f32(m);
  }
}

/* ---- Q4_K in llama.cpp's repacked orders (dot_scalar.c q4_k_r8) ----
 * Exact integer sums of the scales part and the mins part, per super-block
 * (per64 = 0, its gemv) or per 64 elements (per64 = 1, its gemm), go into
 * lanes 0 and 1 of one FMA chain per row: acc = fma([is, im], [d·dy, dmin·dy],
 * acc); the result is acc[0] - acc[1]. */
KX_INL void KX(rows_q4_k_r8)(int per64, size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  const __m256i pair16 = _mm256_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7, 8, 9, 8, 9, 10, 11, 10, 11,
                                          12, 13, 12, 13, 14, 15, 14, 15);
  const size_t nb = n / QK_K;
  for (size_t i = 0; i < nb; i++) {
    const blk_q4_k *x = (const blk_q4_k *)w + i;
    const __m256i sm = _mm256_cvtepu8_epi16(KX(unpack_k4)(x->scales)); /* 8 scales | 8 mins as int16 */
    const __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00), mn = _mm256_permute2x128_si256(sm, sm, 0x11);
    const __m128 ddmin = KX(h2f_pair)(&x->d); /* [d, dmin, 0, 0] */
    __m256i sumi[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                       _mm256_setzero_si256()};
    __m128i h01[4], h23[4], q0[4];
    for (int r = 0; r < 4; r++) h01[r] = h23[r] = q0[r] = _mm_setzero_si128();
    _Pragma("GCC unroll 4")
    for (int j = 0; j < 4; j++) {
      const __m256i bits = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
      const __m256i ql = _mm256_and_si256(bits, m4), qh = _mm256_and_si256(_mm256_srli_epi16(bits, 4), m4);
      const __m256i sl = BCAST16(sc, 2 * j), sh = BCAST16(sc, 2 * j + 1);
      _Pragma("GCC unroll 4")
      for (int r = 0; r < NR; r++) {
        const int8_t *q8 = ROW(blk_q8_k, a, stride, r, i)->qs + 64 * j;
        const __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(ql, _mm256_loadu_si256((const __m256i *)q8)));
        const __m256i ph =
            _mm256_madd_epi16(sh, _mm256_maddubs_epi16(qh, _mm256_loadu_si256((const __m256i *)(q8 + 32))));
        const __m256i p = _mm256_add_epi32(pl, ph);
        if (!per64) {
          sumi[r] = _mm256_add_epi32(sumi[r], p);
        } else { /* fold to 4 lanes, then pairwise: h = [is0, is1, is2, is3] */
          const __m128i q = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
          if (j == 0 || j == 2) q0[r] = q;
          else if (j == 1) h01[r] = _mm_hadd_epi32(q0[r], q);
          else h23[r] = _mm_hadd_epi32(q0[r], q);
        }
      }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
      const blk_q8_k *y = ROW(blk_q8_k, a, stride, r, i);
      /* lane s: mn[s]·(bsums[2s] + bsums[2s+1]); pairs of lanes: im per 64 */
      const __m256i pm = _mm256_madd_epi16(_mm256_shuffle_epi8(mn, pair16), _mm256_loadu_si256((const __m256i *)y->bsums));
      const __m128i im = _mm_hadd_epi32(_mm256_castsi256_si128(pm), _mm256_extracti128_si256(pm, 1));
      const __m128 f = _mm_mul_ps(ddmin, _mm_set1_ps(y->d)); /* [d·dy, dmin·dy, 0, 0] */
      if (!per64) {
        const __m128i q = _mm_add_epi32(_mm256_castsi256_si128(sumi[r]), _mm256_extracti128_si256(sumi[r], 1));
        const __m128i h = _mm_hadd_epi32(q, im);                      /* [q01, q23, m01, m23] */
        const __m128 v = _mm_cvtepi32_ps(_mm_hadd_epi32(h, h));      /* [is, im, is, im] */
        acc[r] = _mm_fmadd_ps(v, f, acc[r]);
      } else {
        const __m128i is = _mm_hadd_epi32(h01[r], h23[r]);
        const __m128 lo = _mm_cvtepi32_ps(_mm_unpacklo_epi32(is, im)); /* [is0, im0, is1, im1] */
        const __m128 hi = _mm_cvtepi32_ps(_mm_unpackhi_epi32(is, im)); /* [is2, im2, is3, im3] */
        acc[r] = _mm_fmadd_ps(lo, f, acc[r]);
        acc[r] = _mm_fmadd_ps(_mm_movehl_ps(lo, lo), f, acc[r]);
        acc[r] = _mm_fmadd_ps(hi, f, acc[r]);
        acc[r] = _mm_fmadd_ps(_mm_movehl_ps(hi, hi), f, acc[r]);
      }
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NR; r++) out[r] = _mm_cvtss_f32(_mm_sub_ss(acc[r], _mm_movehdup_ps(acc[r])));
}

/* ---- Q6_K against Q8_K: ggml's vec_dot order. The -32 offset is taken
 * off each pair of products (maddubs(q, y) - maddubs(32, y), exact in
 * int16), so every int32 lane holds the same partial sum as ggml's lane
 * before the per-super-block FMA. ---- */

KX_INL void KX(rows_q6_k)(size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
  const size_t nb = n / QK_K;
  for (size_t i = 0; i < nb; i++) {
    const blk_q6_k *x = (const blk_q6_k *)w + i;
    const float dx = KX(h2f)(x->d);
    const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x->scales));
    __m256i sumi[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                       _mm256_setzero_si256()};
    _Pragma("GCC unroll 4")
    for (int h = 0; h < 2; h++) {
      const uint8_t *ql = x->ql + 64 * h, *qhp = x->qh + 32 * h;
      /* this half's 8 scales (int16) in both lanes */
      const __m256i sch = h ? _mm256_permute2x128_si256(sc16, sc16, 0x11) : _mm256_permute2x128_si256(sc16, sc16, 0x00);
      const __m256i b1 = _mm256_loadu_si256((const __m256i *)ql), b2 = _mm256_loadu_si256((const __m256i *)(ql + 32));
      const __m256i bh = _mm256_loadu_si256((const __m256i *)qhp);
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(b1, m4), _mm256_slli_epi16(_mm256_and_si256(bh, m3), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(b2, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 2), m3), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 4), m3), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(b2, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(bh, 6), m3), 4));
      _Pragma("GCC unroll 4")
      for (int k = 0; k < 4; k++) {
        /* low lane: scale 2k (elements 0..15), high lane: scale 2k+1 */
        const __m256i s = _mm256_shuffle_epi8(
            sch, _mm256_set_m128i(_mm_set1_epi16((short)(((4 * k + 3) << 8) | (4 * k + 2))),
                                  _mm_set1_epi16((short)(((4 * k + 1) << 8) | (4 * k)))));
        _Pragma("GCC unroll 4")
        for (int r = 0; r < NR; r++) {
          const int8_t *q8 = ROW(blk_q8_k, a, stride, r, i)->qs + 128 * h + 32 * k;
          const __m256i y8 = _mm256_loadu_si256((const __m256i *)q8);
          const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], y8), _mm256_maddubs_epi16(m32, y8));
          sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(s, p));
        }
      }
    }
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
      const blk_q8_k *y = ROW(blk_q8_k, a, stride, r, i);
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * y->d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NR; r++) out[r] = KX(hsum_ps)(acc[r]);
}

/* ---- float weights against f32 activations ---- */

KX_INL __m256 KX(load8)(int type, const void *w, size_t i) {
  if (type == KRN_F32) return _mm256_loadu_ps((const float *)w + i);
  const __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)w + i));
  if (type == KRN_F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

KX_INL float KX(load1)(int type, const void *w, size_t i) {
  if (type == KRN_F32) return ((const float *)w)[i];
  const uint16_t h = ((const uint16_t *)w)[i];
  return type == KRN_F16 ? KX(h2f)(h) : krn__bits_f32((uint32_t)h << 16);
}

/* Activations are in the weight's own type (F32, or rounded to F16 / BF16).
 * Four independent accumulators per row for one row (FMA latency, not
 * loads, bounds a single chain), two per row for several rows (registers). */
KX_INL void KX(rows_float)(int type, size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  const int NA = NR == 1 ? 4 : 2;
  __m256 acc[4][4];
  _Pragma("GCC unroll 4")
  for (int r = 0; r < 4; r++)
    _Pragma("GCC unroll 4")
    for (int c = 0; c < 4; c++) acc[r][c] = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 * (size_t)NA <= n; i += 8 * (size_t)NA) {
    __m256 wv[4];
    _Pragma("GCC unroll 4")
    for (int c = 0; c < NA; c++) wv[c] = KX(load8)(type, w, i + 8 * (size_t)c);
    _Pragma("GCC unroll 4")
    for (int r = 0; r < NR; r++) {
      const void *x = (const uint8_t *)a + (size_t)r * stride;
      _Pragma("GCC unroll 4")
      for (int c = 0; c < NA; c++) acc[r][c] = _mm256_fmadd_ps(wv[c], KX(load8)(type, x, i + 8 * (size_t)c), acc[r][c]);
    }
  }
  _Pragma("GCC unroll 4")
  for (int r = 0; r < NR; r++) {
    const void *x = (const uint8_t *)a + (size_t)r * stride;
    __m256 t = acc[r][0];
    _Pragma("GCC unroll 4")
    for (int c = 1; c < NA; c++) t = _mm256_add_ps(t, acc[r][c]);
    float s = KX(hsum_ps)(t);
    for (size_t j = i; j < n; j++) s += KX(load1)(type, w, j) * KX(load1)(type, x, j);
    out[r] = s;
  }
}

/* ---- entry points: NR fixed per instantiation ---- */

KX_INL void KX(rows)(int type, size_t n, const void *w, const void *a, size_t stride, int NR, float *out) {
  switch (type) {
  case KRN_Q4_0: KX(rows_q8_0_family)(KRN_Q4_0, n, w, a, stride, NR, out); break;
  case KRN_Q5_0: KX(rows_q8_0_family)(KRN_Q5_0, n, w, a, stride, NR, out); break;
  case KRN_Q8_0: KX(rows_q8_0_family)(KRN_Q8_0, n, w, a, stride, NR, out); break;
  case KRN_Q4_1: KX(rows_q8_1_family)(KRN_Q4_1, n, w, a, stride, NR, out); break;
  case KRN_Q5_1: KX(rows_q8_1_family)(KRN_Q5_1, n, w, a, stride, NR, out); break;
  case KRN_Q4_K: KX(rows_qk45)(KRN_Q4_K, n, w, a, stride, NR, out); break;
  case KRN_Q5_K: KX(rows_qk45)(KRN_Q5_K, n, w, a, stride, NR, out); break;
  case KRN_Q6_K: KX(rows_q6_k)(n, w, a, stride, NR, out); break;
  case KRN__Q4_K_R8: KX(rows_q4_k_r8)(0, n, w, a, stride, NR, out); break;
  case KRN__Q4_K_R8_GEMM: KX(rows_q4_k_r8)(1, n, w, a, stride, NR, out); break;
  case KRN_F32: KX(rows_float)(KRN_F32, n, w, a, stride, NR, out); break;
  case KRN_F16: KX(rows_float)(KRN_F16, n, w, a, stride, NR, out); break;
  case KRN_BF16: KX(rows_float)(KRN_BF16, n, w, a, stride, NR, out); break;
  default: break;
  }
}

/* One function per type so the type switch folds away. */
#define KX_DEFINE(T, tag)                                                                                   \
  static KX_FN float KX(dot_##tag)(size_t n, const void *w, const void *a) {                             \
    float o;                                                                                              \
    KX(rows)(T, n, w, a, 0, 1, &o);                                                                       \
    return o;                                                                                             \
  }                                                                                                       \
  static KX_FN void KX(multi_##tag)(size_t n, const void *w, const void *a, size_t st, int nr, float *o) { \
    switch (nr) {                                                                                         \
    case 1: KX(rows)(T, n, w, a, st, 1, o); break;                                                       \
    case 2: KX(rows)(T, n, w, a, st, 2, o); break;                                                       \
    case 3: KX(rows)(T, n, w, a, st, 3, o); break;                                                       \
    default: KX(rows)(T, n, w, a, st, 4, o); break;                                                      \
    }                                                                                                     \
  }

#define KX_DEFINE32(T, tag)                                                                                 \
  static KX_FN float KX(dot_##tag)(size_t n, const void *w, const void *a) {                             \
    float o;                                                                                              \
    KX(rows)(T, n, w, a, 0, 1, &o);                                                                       \
    return o;                                                                                             \
  }                                                                                                       \
  static KX_FN void KX(multi_##tag)(size_t n, const void *w, const void *a, size_t st, int nr, float *o) { \
    switch (nr < KX_NR32 ? nr : KX_NR32) {                                                                \
    case 1: KX(rows)(T, n, w, a, st, 1, o); break;                                                       \
    case 2: KX(rows)(T, n, w, a, st, 2, o); break;                                                       \
    case 3: KX(rows)(T, n, w, a, st, 3, o); break;                                                       \
    case 4: KX(rows)(T, n, w, a, st, 4, o); break;                                                       \
    case 5: KX(rows)(T, n, w, a, st, KX_NR32 >= 5 ? 5 : 4, o); break;                                    \
    case 6: KX(rows)(T, n, w, a, st, KX_NR32 >= 6 ? 6 : 4, o); break;                                    \
    case 7: KX(rows)(T, n, w, a, st, KX_NR32 >= 7 ? 7 : 4, o); break;                                    \
    default: KX(rows)(T, n, w, a, st, KX_NR32, o); break;                                                \
    }                                                                                                     \
  }
KX_DEFINE32(KRN_Q4_0, q4_0)
KX_DEFINE32(KRN_Q4_1, q4_1)
KX_DEFINE32(KRN_Q5_0, q5_0)
KX_DEFINE32(KRN_Q5_1, q5_1)
KX_DEFINE32(KRN_Q8_0, q8_0)
KX_DEFINE(KRN_Q4_K, q4_k)
KX_DEFINE(KRN_Q5_K, q5_k)
KX_DEFINE(KRN_Q6_K, q6_k)
KX_DEFINE(KRN__Q4_K_R8, q4_k_r8)
KX_DEFINE(KRN__Q4_K_R8_GEMM, q4_k_r8_gemm)
KX_DEFINE(KRN_F32, f32)
KX_DEFINE(KRN_F16, f16)
KX_DEFINE(KRN_BF16, bf16)

static krn_vec_dot_fn KX(dot_table)(int type) {
  switch (type) {
  case KRN_Q4_0: return KX(dot_q4_0);
  case KRN_Q4_1: return KX(dot_q4_1);
  case KRN_Q5_0: return KX(dot_q5_0);
  case KRN_Q5_1: return KX(dot_q5_1);
  case KRN_Q8_0: return KX(dot_q8_0);
  case KRN_Q4_K: return KX(dot_q4_k);
  case KRN_Q5_K: return KX(dot_q5_k);
  case KRN_Q6_K: return KX(dot_q6_k);
  case KRN__Q4_K_R8: return KX(dot_q4_k_r8);
  case KRN__Q4_K_R8_GEMM: return KX(dot_q4_k_r8_gemm);
  case KRN_F32: return KX(dot_f32);
  case KRN_F16: return KX(dot_f16);
  case KRN_BF16: return KX(dot_bf16);
  default: return NULL;
  }
}

/* Most activation rows KX(multi_table)(type) takes in one call. */
static int KX(multi_rows)(int type) {
  return type == KRN_Q4_0 || type == KRN_Q4_1 || type == KRN_Q5_0 || type == KRN_Q5_1 || type == KRN_Q8_0 ? KX_NR32 : 4;
}

static krn_vec_dot_multi_fn KX(multi_table)(int type) {
  switch (type) {
  case KRN_Q4_0: return KX(multi_q4_0);
  case KRN_Q4_1: return KX(multi_q4_1);
  case KRN_Q5_0: return KX(multi_q5_0);
  case KRN_Q5_1: return KX(multi_q5_1);
  case KRN_Q8_0: return KX(multi_q8_0);
  case KRN_Q4_K: return KX(multi_q4_k);
  case KRN_Q5_K: return KX(multi_q5_k);
  case KRN_Q6_K: return KX(multi_q6_k);
  case KRN__Q4_K_R8: return KX(multi_q4_k_r8);
  case KRN__Q4_K_R8_GEMM: return KX(multi_q4_k_r8_gemm);
  case KRN_F32: return KX(multi_f32);
  case KRN_F16: return KX(multi_f16);
  case KRN_BF16: return KX(multi_bf16);
  default: return NULL;
  }
}

#undef ROW
#undef ROW_DS
#undef BCAST16
#undef KX_INL
#undef KX_FN
#undef KX_DEFINE
#undef KX_DEFINE32
#undef KX_NR32
