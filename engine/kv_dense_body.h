/*
 * kv_dense_body.h — the dense cache's K·q and V·p in llama.cpp's summation
 * orders (kv_dense.c, which keeps the portable loops and says why these
 * orders), written once over a 16-lane float vector and compiled twice: by
 * kv_dense_avx512.c (one zmm) and kv_dense_avx2.c (two ymm, AVX2 + FMA).
 * The orders are defined on 16 lanes (ggml's f16 vectors), so both widths
 * keep 16: the AVX2 vector is a pair, and its reduction pairs lanes as
 * _mm512_reduce_add_ps does (eng_reduce16). ggml's f16 products are exact
 * in float and its FMAs are these FMAs, so every level gives the portable
 * loops' bits (test_eng_kv_dense). Not a public header; include nowhere
 * else. The includer defines, before including it:
 *   KD(name)  suffixes every function; KD_TGT the target attribute string;
 *   KD_NAME   the level's name
 *   v16, v16d 16 floats / 16 doubles, and KD_INL helpers:
 *   v16_zero v16_set1 v16_load v16_store v16_add v16_mul v16_fmadd
 *   v16_sum (eng_reduce16's pairing)  v16d_zero  v16d_addf (t += (double)x)
 *   v16_store_d (out = (float)((double)r + t))
 */

#define KD_FN __attribute__((target(KD_TGT)))

/* sc[j] = (K row p0+j · q) * scale for j < n. */
KD_FN static void KD(kq)(const float *q, const float *K, size_t row, int p0, int n, int hd, int batch, float scale,
                         float *sc) {
  int j = 0;
  if (batch > 1) {
    for (; j + 4 <= n; j += 4) {
      const float *k0 = K + (size_t)(p0 + j) * row;
      v16 a0 = v16_zero(), a1 = a0, a2 = a0, a3 = a0;
      for (int c = 0; c < hd; c += 16) {
        const v16 qv = v16_load(q + c);
        a0 = v16_fmadd(qv, v16_load(k0 + c), a0);
        a1 = v16_fmadd(qv, v16_load(k0 + row + c), a1);
        a2 = v16_fmadd(qv, v16_load(k0 + 2 * row + c), a2);
        a3 = v16_fmadd(qv, v16_load(k0 + 3 * row + c), a3);
      }
      sc[j] = v16_sum(a0) * scale;
      sc[j + 1] = v16_sum(a1) * scale;
      sc[j + 2] = v16_sum(a2) * scale;
      sc[j + 3] = v16_sum(a3) * scale;
    }
    for (; j < n; j++) {
      const float *k0 = K + (size_t)(p0 + j) * row;
      v16 a0 = v16_zero();
      for (int c = 0; c < hd; c += 16) a0 = v16_fmadd(v16_load(q + c), v16_load(k0 + c), a0);
      sc[j] = v16_sum(a0) * scale;
    }
    return;
  }
  const int np = hd & ~63;
  for (; j < n; j++) {
    const float *k0 = K + (size_t)(p0 + j) * row;
    v16 a[4] = {v16_zero(), v16_zero(), v16_zero(), v16_zero()};
    for (int c = 0; c < np; c += 64)
      for (int g = 0; g < 4; g++) a[g] = v16_fmadd(v16_load(q + c + 16 * g), v16_load(k0 + c + 16 * g), a[g]);
    double tail = 0;
    for (int e = np; e < hd; e++) tail += (double)(q[e] * k0[e]);
    a[0] = v16_add(a[0], a[2]);
    a[1] = v16_add(a[1], a[3]);
    a[0] = v16_add(a[0], a[1]);
    sc[j] = (float)((double)v16_sum(a[0]) + tail) * scale;
  }
}

/* eng_reduce16's pairing across 16 vectors, lane-wise: out[e] = eng_reduce16
 * of (A[0][e], ..., A[15][e]). */
KD_INL v16 KD(reduce16x16)(v16 *A) {
  v16 t3[8], t6[4];
  for (int i = 0; i < 8; i++) t3[i] = v16_add(A[8 + i], A[i]);
  for (int i = 0; i < 4; i++) t6[i] = v16_add(t3[4 + i], t3[i]);
  return v16_add(v16_add(t6[0], t6[2]), v16_add(t6[1], t6[3]));
}

/* out = V·p over positions p0..p0+n-1, 16 dimensions at a time: one
 * accumulator vector per position lane (and, for one token, per group of
 * 16 lanes of ggml_vec_dot_f16's four; positions from n_total & ~63 on are
 * summed in double per dimension). */
KD_FN static void KD(kqv)(const float *V, size_t row, const float *p, int p0, int n, int n_total, int batch, int hd,
                          float *out) {
  const int np = batch > 1 ? p0 + n : n_total & ~63;
  for (int i0 = 0; i0 < hd; i0 += 16) {
    v16 A[4][16];
    for (int g = 0; g < 4; g++)
      for (int l = 0; l < 16; l++) A[g][l] = v16_zero();
    v16d t = v16d_zero();
    for (int j = 0; j < n; j++) {
      const int g = p0 + j;
      const v16 v = v16_load(V + (size_t)g * row + i0), pj = v16_set1(p[j]);
      if (g < np) {
        v16 *a = &A[batch > 1 ? 0 : (g >> 4) & 3][g & 15];
        *a = v16_fmadd(v, pj, *a);
      } else {
        t = v16d_addf(t, v16_mul(v, pj));
      }
    }
    if (batch <= 1)
      for (int l = 0; l < 16; l++) {
        A[0][l] = v16_add(A[0][l], A[2][l]);
        A[1][l] = v16_add(A[1][l], A[3][l]);
        A[0][l] = v16_add(A[0][l], A[1][l]);
      }
    const v16 r = KD(reduce16x16)(A[0]);
    if (batch > 1) v16_store(out + i0, r);
    else v16_store_d(out + i0, r, t);
  }
}

/* The table kv_dense.c picks from. */
const eng_kd_simd KD(eng__kd) = {KD_NAME, KD(kq), KD(kqv)};
