/*
 * simd.c — the KV memory's attention loops in explicit AVX-512, used
 * where the CPU has it (and KVASIR_ISA does not cap the level below it);
 * cache.c keeps the portable loops and calls these through kvm_simd512().
 * The results are the portable loops' up to float rounding (the same sums
 * in other orders, and a polynomial exp instead of libm's; test_kvmem_simd
 * checks they agree to 2e-5 relative and choose the same blocks).
 *
 * Compressed blocks are read from their codes without a dequantized tile:
 * 16 code bytes widen to 16 int32 lanes, and with m = 8/bits codes per byte
 * the k-th code of every lane is (x >> bits*k) & mask. So vector c*m+k,
 * lane i, holds element 16*m*c + m*i + k: keys' logits and values' sums are
 * accumulated in that permuted order and put back in order once per block
 * (a gather). Values read with val_rot stay in the rotated basis (kvm_att
 * accr) until attend_group turns their sum back once.
 */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "kvmem/internal.h"
#include "kernels/kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define K512 __attribute__((target("avx2,fma,f16c,avx512f")))

static _Atomic int g_force = -1;

void kvm_simd_force(int level) { atomic_store(&g_force, level); }

int kvm_simd512(void) {
  static _Atomic int cached = -1;
  int f = atomic_load_explicit(&g_force, memory_order_relaxed);
  if (f >= 0) return f;
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    const krn_cpu *c = krn_cpu_features();
    v = c->avx512f && c->fma && c->avx2 && c->f16c && !strcmp(krn_isa_name(), "avx512");
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}

int kvm_simd512_fits(const kvm_config *k) {
  return k->head_dim % 16 == 0 && k->block % 16 == 0 && (k->block * k->key_bits / 8) % 16 == 0 &&
         (k->head_dim * k->val_bits / 8) % 16 == 0;
}

/* exp(x) for x <= 0: ggml_v_expf's polynomial (ARM optimized routines, ~1.5
 * ulp); results below 2^-126 flush to 0, which a softmax weight may. */
K512 static inline __m512 vexp(__m512 x) {
  const __m512 r = _mm512_set1_ps(0x1.8p23f);
  const __m512 z = _mm512_fmadd_ps(x, _mm512_set1_ps(0x1.715476p+0f), r);
  const __m512 n = _mm512_sub_ps(z, r);
  const __m512 b = _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.7f7d1cp-20f),
                                    _mm512_fnmadd_ps(n, _mm512_set1_ps(0x1.62e4p-1f), x));
  const __m512i e = _mm512_slli_epi32(_mm512_castps_si512(z), 23);
  const __m512 k = _mm512_castsi512_ps(_mm512_add_epi32(e, _mm512_castps_si512(_mm512_set1_ps(1))));
  const __m512 u = _mm512_mul_ps(b, b);
  const __m512 j = _mm512_fmadd_ps(
      _mm512_fmadd_ps(_mm512_fmadd_ps(_mm512_set1_ps(0x1.0e4020p-7f), b, _mm512_set1_ps(0x1.573e2ep-5f)), u,
                      _mm512_fmadd_ps(_mm512_set1_ps(0x1.555e66p-3f), b, _mm512_set1_ps(0x1.fffdb6p-2f))),
      u, _mm512_fmadd_ps(_mm512_set1_ps(0x1.ffffecp-1f), b, _mm512_set1_ps(1.0f)));
  const __mmask16 ok = _mm512_cmp_ps_mask(n, _mm512_set1_ps(-126.0f), _CMP_GT_OQ);
  return _mm512_maskz_mul_ps(ok, k, j);
}

/* Raise head j's running max to mx (rescaling its sum and accumulator). */
K512 static void rescale(kvm_att *a, int j, float mx) {
  if (mx <= a->m[j]) return;
  float f = a->m[j] == -INFINITY ? 0.0f : expf(a->m[j] - mx);
  float *acc = a->acc + (size_t)j * a->D, *accr = a->accr + (size_t)j * a->D;
  const __m512 fv = _mm512_set1_ps(f);
  for (int d = 0; d < a->D; d += 16) {
    _mm512_storeu_ps(acc + d, _mm512_mul_ps(_mm512_loadu_ps(acc + d), fv));
    _mm512_storeu_ps(accr + d, _mm512_mul_ps(_mm512_loadu_ps(accr + d), fv));
  }
  a->l[j] *= f;
  a->m[j] = mx;
}

/* logit[0..n) := exp(logit - m[j]) (n rounded up to 16 within scratch);
 * returns their sum. */
K512 static float exp_sum(float *logit, int n, float m) {
  const __m512 mv = _mm512_set1_ps(m);
  __m512 s = _mm512_setzero_ps();
  for (int r = 0; r < n; r += 16) {
    __mmask16 k = n - r >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - r)) - 1);
    __m512 p = vexp(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, logit + r), mv));
    p = _mm512_maskz_mov_ps(k, p);
    _mm512_mask_storeu_ps(logit + r, k, p);
    s = _mm512_add_ps(s, p);
  }
  return _mm512_reduce_add_ps(s);
}

K512 static inline __m512 ld_h(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }

/* Rows of keys/values given as f16 (row r at +r*stride) or f32 (stride in
 * floats), folded into every head's state. */
K512 static void fold_rows(kvm_att *a, const void *kr, const void *vr, size_t stride, int n, int f16, float bias) {
  const int D = a->D, T = a->T;
  for (int r0 = 0; r0 < n; r0 += T) {
    const int nr = n - r0 < T ? n - r0 : T;
    for (int j = 0; j < a->g; j++) {
      const float *q = a->q + (size_t)j * D;
      float *lg = a->logit, mx = -INFINITY;
      for (int r = 0; r < nr; r++) {
        __m512 s = _mm512_setzero_ps();
        if (f16) {
          const uint16_t *k = (const uint16_t *)kr + (size_t)(r0 + r) * stride;
          for (int d = 0; d < D; d += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), ld_h(k + d), s);
        } else {
          const float *k = (const float *)kr + (size_t)(r0 + r) * stride;
          for (int d = 0; d < D; d += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(k + d), s);
        }
        float v = a->scale * _mm512_reduce_add_ps(s) + bias;
        lg[r] = v;
        if (v > mx) mx = v;
      }
      rescale(a, j, mx);
      a->l[j] += exp_sum(lg, nr, a->m[j]);
      float *acc = a->acc + (size_t)j * D;
      for (int d = 0; d < D; d += 16) {
        __m512 s0 = _mm512_loadu_ps(acc + d), s1 = _mm512_setzero_ps();
        int r = 0;
        if (f16) {
          const uint16_t *v = (const uint16_t *)vr + (size_t)r0 * stride + d;
          for (; r + 1 < nr; r += 2) {
            s0 = _mm512_fmadd_ps(_mm512_set1_ps(lg[r]), ld_h(v + (size_t)r * stride), s0);
            s1 = _mm512_fmadd_ps(_mm512_set1_ps(lg[r + 1]), ld_h(v + (size_t)(r + 1) * stride), s1);
          }
          if (r < nr) s0 = _mm512_fmadd_ps(_mm512_set1_ps(lg[r]), ld_h(v + (size_t)r * stride), s0);
        } else {
          const float *v = (const float *)vr + (size_t)r0 * stride + d;
          for (; r + 1 < nr; r += 2) {
            s0 = _mm512_fmadd_ps(_mm512_set1_ps(lg[r]), _mm512_loadu_ps(v + (size_t)r * stride), s0);
            s1 = _mm512_fmadd_ps(_mm512_set1_ps(lg[r + 1]), _mm512_loadu_ps(v + (size_t)(r + 1) * stride), s1);
          }
          if (r < nr) s0 = _mm512_fmadd_ps(_mm512_set1_ps(lg[r]), _mm512_loadu_ps(v + (size_t)r * stride), s0);
        }
        _mm512_storeu_ps(acc + d, _mm512_add_ps(s0, s1));
      }
    }
  }
}

K512 void kvm512_rows_f16(kvm_att *a, const uint16_t *kr, const uint16_t *vr, size_t stride, int n) {
  fold_rows(a, kr, vr, stride, n, 1, 0.0f);
}

K512 void kvm512_fold_f32(kvm_att *a, int n, float bias) { fold_rows(a, a->kt, a->vt, (size_t)a->D, n, 0, bias); }

/* o[k] = sum_r w[r] * (code k of every byte of the 16 bytes at p + r*stride),
 * k < 8/BITS: one 16-byte column of n code rows, weighted, in permuted
 * order. Two partial sums per vector (even and odd rows) so consecutive
 * FMAs do not wait on each other; BITS is a constant at every call so the
 * k loop unrolls and the sums stay in registers. */
K512 static inline __attribute__((always_inline)) void column_sum(const uint8_t *p, size_t stride, int n,
                                                                   const float *w, const int BITS, __m512 *o) {
  const int m = 8 / BITS;
  const __m512i mask = _mm512_set1_epi32((1 << BITS) - 1);
  __m512 a[4][2];
  for (int k = 0; k < m; k++) a[k][0] = a[k][1] = _mm512_setzero_ps();
  for (int r = 0; r < n; r++) {
    const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + (size_t)r * stride)));
    const __m512 s = _mm512_set1_ps(w[r]);
    for (int k = 0; k < m; k++) {
      const __m512i v = BITS == 8 ? x : _mm512_and_si512(_mm512_srli_epi32(x, (unsigned)(BITS * k)), mask);
      a[k][r & 1] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(v), a[k][r & 1]);
    }
  }
  for (int k = 0; k < m; k++) o[k] = _mm512_add_ps(a[k][0], a[k][1]);
}

/* Every 16-byte column of n rows of nbytes (stride apart): o[c*m + k]. */
K512 static void rows_sum(const uint8_t *p, size_t stride, int n, int nbytes, const float *w, int bits, __m512 *o) {
  for (int c = 0; c < nbytes / 16; c++) {
    if (bits == 8) column_sum(p + 16 * c, stride, n, w, 8, o + c);
    else if (bits == 4) column_sum(p + 16 * c, stride, n, w, 4, o + 2 * c);
    else column_sum(p + 16 * c, stride, n, w, 2, o + 4 * c);
  }
}

/* out[e] = tmp[position of element e] + add (accumulate: out[e] += it),
 * e < n (n % 16 == 0): the permuted order put back, 2^lm codes per byte.
 * Element e = 16*m*c + m*i + k sits at lane i of vector c*m + k; the
 * positions are computed 16 at a time and gathered. */
K512 static void unpermute(const float *tmp, float *out, int n, int lm, float add, int accumulate) {
  const __m512 av = _mm512_set1_ps(add);
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m128i sh_c = _mm_cvtsi32_si128(4 + lm), sh_m = _mm_cvtsi32_si128(lm);
  const __m512i rem_mask = _mm512_set1_epi32((16 << lm) - 1), k_mask = _mm512_set1_epi32((1 << lm) - 1);
  for (int e0 = 0; e0 < n; e0 += 16) {
    __m512 x;
    if (lm == 0) { /* one code per byte: the order is the natural one */
      x = _mm512_loadu_ps(tmp + e0);
    } else {
      const __m512i e = _mm512_add_epi32(_mm512_set1_epi32(e0), lane);
      const __m512i c = _mm512_srl_epi32(e, sh_c), rem = _mm512_and_si512(e, rem_mask);
      const __m512i i = _mm512_srl_epi32(rem, sh_m), k = _mm512_and_si512(rem, k_mask);
      const __m512i pos = _mm512_or_si512(_mm512_slli_epi32(_mm512_add_epi32(_mm512_sll_epi32(c, sh_m), k), 4), i);
      x = _mm512_i32gather_ps(pos, tmp, 4);
    }
    x = _mm512_add_ps(x, av);
    _mm512_storeu_ps(out + e0, accumulate ? _mm512_add_ps(_mm512_loadu_ps(out + e0), x) : x);
  }
}

/* For ranges [lo_i, hi_i] (f16) coded on `levels` steps and weights x_i:
 * out_i = x_i * (hi_i - lo_i) / levels (the weight of code i); returns
 * sum_i x_i * lo_i (the codes' common offset). n % 16 == 0. */
K512 static float range_scale(const uint16_t *lo, const uint16_t *hi, const float *x, int n, float levels, float *out) {
  __m512 base = _mm512_setzero_ps();
  const __m512 lv = _mm512_set1_ps(levels);
  for (int i = 0; i < n; i += 16) {
    const __m512 l = ld_h(lo + i), h = ld_h(hi + i), xv = _mm512_loadu_ps(x + i);
    base = _mm512_fmadd_ps(xv, l, base);
    _mm512_storeu_ps(out + i, _mm512_mul_ps(xv, _mm512_div_ps(_mm512_sub_ps(h, l), lv)));
  }
  return _mm512_reduce_add_ps(base);
}

K512 void kvm512_fold_block(const kvm_cache *c, kvm_att *a, const uint8_t *hb) {
  const kvm_blk_layout *L = &c->L;
  const int B = c->cfg.block, D = a->D, kb = c->cfg.key_bits, vb = c->cfg.val_bits;
  const int lk = kb == 8 ? 0 : kb == 4 ? 1 : 2, lv = vb == 8 ? 0 : vb == 4 ? 1 : 2, NL = B / 16, NV = D / 16;
  const float kq = (float)((1 << kb) - 1), vq = (float)((1 << vb) - 1);
  float *qs = a->kt, *tmp = a->kt + D; /* tmp: max(B, D) floats */
  float *pn = a->vt, *coef = a->vt + B;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + L->kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + L->kmax);
  const uint16_t *vlo = (const uint16_t *)(const void *)(hb + L->vlo);
  const uint16_t *vhi = (const uint16_t *)(const void *)(hb + L->vhi);
  __m512 acc[64], lg[16];
  for (int j = 0; j < a->g; j++) {
    const float *q = a->q + (size_t)j * D;
    const float b0 = range_scale(kmin, kmax, q, D, kq, qs);
    rows_sum(hb + L->kcodes, L->krow, D, (int)L->krow, qs, kb, lg);
    const __m512 sc = _mm512_set1_ps(a->scale), bv = _mm512_set1_ps(b0);
    __m512 mxv = _mm512_set1_ps(-INFINITY);
    for (int v = 0; v < NL; v++) {
      lg[v] = _mm512_mul_ps(sc, _mm512_add_ps(bv, lg[v]));
      mxv = _mm512_max_ps(mxv, lg[v]);
    }
    rescale(a, j, _mm512_reduce_max_ps(mxv));
    const __m512 m = _mm512_set1_ps(a->m[j]);
    __m512 ps = _mm512_setzero_ps();
    for (int v = 0; v < NL; v++) {
      const __m512 p = vexp(_mm512_sub_ps(lg[v], m));
      ps = _mm512_add_ps(ps, p);
      _mm512_storeu_ps(tmp + 16 * v, p);
    }
    a->l[j] += _mm512_reduce_add_ps(ps);
    unpermute(tmp, pn, B, lk, 0.0f, 0);
    /* coef_t = p_t * s_t; losum = sum_t p_t * lo_t (added to every dimension) */
    const float losum = range_scale(vlo, vhi, pn, B, vq, coef);
    rows_sum(hb + L->vcodes, L->vrow, B, (int)L->vrow, coef, vb, acc);
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(tmp + 16 * v, acc[v]);
    /* rotated sums go to accr, turned back once in attend_group */
    unpermute(tmp, (c->cfg.val_rot ? a->accr : a->acc) + (size_t)j * D, D, lv, losum, 1);
  }
}

K512 void kvm512_unpack_f32(const uint8_t *p, int nbytes, int bits, float *out) {
  /* output lane e of vector o of a 16-byte chunk is code E = 16*o + e: byte
   * E/m, shifted right by bits*(E%m) (m = 8/bits codes per byte, a power of 2) */
  const int m = 8 / bits, lm = m == 1 ? 0 : m == 2 ? 1 : 2, lb = bits == 2 ? 1 : bits == 4 ? 2 : 3;
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i mask = _mm512_set1_epi32((1 << bits) - 1), mm = _mm512_set1_epi32(m - 1);
  __m512i idx[4], sh[4];
  for (int o = 0; o < m; o++) {
    const __m512i e = _mm512_add_epi32(_mm512_set1_epi32(16 * o), lane);
    idx[o] = _mm512_srli_epi32(e, (unsigned)lm);
    sh[o] = _mm512_slli_epi32(_mm512_and_si512(e, mm), (unsigned)lb);
  }
  for (int c = 0; c < nbytes; c += 16) {
    const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p + c)));
    float *o0 = out + (size_t)c * (size_t)m;
    if (m == 1) {
      _mm512_storeu_ps(o0, _mm512_cvtepi32_ps(x));
      continue;
    }
    for (int o = 0; o < m; o++) {
      const __m512i v = _mm512_and_si512(_mm512_srlv_epi32(_mm512_permutexvar_epi32(idx[o], x), sh[o]), mask);
      _mm512_storeu_ps(o0 + 16 * o, _mm512_cvtepi32_ps(v));
    }
  }
}

K512 void kvm512_fold_tile(const kvm_cache *c, kvm_att *a, const uint8_t *hb, const float *kc, const float *vc,
                           float *tmp) {
  const kvm_blk_layout *L = &c->L;
  const int B = c->cfg.block, D = a->D, NL = B / 16, NV = D / 16;
  const float kq = (float)((1 << c->cfg.key_bits) - 1), vq = (float)((1 << c->cfg.val_bits) - 1);
  float *qs = tmp, *coef = tmp + D, *p = tmp + D + B;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + L->kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + L->kmax);
  const uint16_t *vlo = (const uint16_t *)(const void *)(hb + L->vlo);
  const uint16_t *vhi = (const uint16_t *)(const void *)(hb + L->vhi);
  for (int j = 0; j < a->g; j++) {
    /* logit_t = scale * (q·lo + sum_c (q_c*s_c) * code_ct), 16 tokens a vector */
    const float b0 = range_scale(kmin, kmax, a->q + (size_t)j * D, D, kq, qs);
    __m512 ev[16], od[16];
    for (int v = 0; v < NL; v++) ev[v] = od[v] = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 2) {
      const __m512 s0 = _mm512_set1_ps(qs[d]), s1 = _mm512_set1_ps(qs[d + 1]);
      const float *k0 = kc + (size_t)d * B, *k1 = k0 + B;
      for (int v = 0; v < NL; v++) {
        ev[v] = _mm512_fmadd_ps(s0, _mm512_loadu_ps(k0 + 16 * v), ev[v]);
        od[v] = _mm512_fmadd_ps(s1, _mm512_loadu_ps(k1 + 16 * v), od[v]);
      }
    }
    const __m512 sc = _mm512_set1_ps(a->scale), bv = _mm512_set1_ps(b0);
    __m512 mxv = _mm512_set1_ps(-INFINITY);
    for (int v = 0; v < NL; v++) {
      ev[v] = _mm512_mul_ps(sc, _mm512_add_ps(bv, _mm512_add_ps(ev[v], od[v])));
      mxv = _mm512_max_ps(mxv, ev[v]);
    }
    rescale(a, j, _mm512_reduce_max_ps(mxv));
    const __m512 m = _mm512_set1_ps(a->m[j]);
    __m512 ps = _mm512_setzero_ps();
    for (int v = 0; v < NL; v++) {
      const __m512 pv = vexp(_mm512_sub_ps(ev[v], m));
      ps = _mm512_add_ps(ps, pv);
      _mm512_storeu_ps(p + 16 * v, pv);
    }
    a->l[j] += _mm512_reduce_add_ps(ps);
    /* acc += sum_t (p_t*s_t) * code_t + sum_t p_t*lo_t, 16 dimensions a vector */
    const __m512 losum = _mm512_set1_ps(range_scale(vlo, vhi, p, B, vq, coef));
    float *dst = (c->cfg.val_rot ? a->accr : a->acc) + (size_t)j * D;
    for (int v0 = 0; v0 < NV; v0 += 8) {
      const int nv = NV - v0 < 8 ? NV - v0 : 8;
      __m512 s0[8], s1[8];
      for (int v = 0; v < nv; v++) s0[v] = s1[v] = _mm512_setzero_ps();
      for (int t = 0; t < B; t += 2) {
        const __m512 w0 = _mm512_set1_ps(coef[t]), w1 = _mm512_set1_ps(coef[t + 1]);
        const float *r0 = vc + (size_t)t * D + 16 * v0, *r1 = r0 + D;
        for (int v = 0; v < nv; v++) {
          s0[v] = _mm512_fmadd_ps(w0, _mm512_loadu_ps(r0 + 16 * v), s0[v]);
          s1[v] = _mm512_fmadd_ps(w1, _mm512_loadu_ps(r1 + 16 * v), s1[v]);
        }
      }
      for (int v = 0; v < nv; v++) {
        float *o = dst + 16 * (v0 + v);
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), _mm512_add_ps(_mm512_add_ps(s0[v], s1[v]), losum)));
      }
    }
  }
}

/* The same for nq <= 4 queries at once (a[0..nq), one head each), which
 * share every load of the tiles: 4 queries x 4 vectors of logits or values
 * are 16 independent sums per tile row, held in registers (every loop
 * bound below is a constant; missing queries run with zero weights and are
 * not stored), so the loop runs on FMAs instead of loads. Needs B == 64
 * and D % 64 == 0; tmp: 4 * (D + 2*B) floats. */
K512 void kvm512_fold_tile4(const kvm_cache *c, kvm_att *const *a, int nq, const uint8_t *hb, const float *kc,
                            const float *vc, float *tmp) {
  const kvm_blk_layout *L = &c->L;
  enum { B = 64, NL = 4 };
  const int D = a[0]->D;
  const float kq = (float)((1 << c->cfg.key_bits) - 1), vq = (float)((1 << c->cfg.val_bits) - 1);
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + L->kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + L->kmax);
  const uint16_t *vlo = (const uint16_t *)(const void *)(hb + L->vlo);
  const uint16_t *vhi = (const uint16_t *)(const void *)(hb + L->vhi);
  float *qs[4], *coef[4], *p[4], b0[4] = {0, 0, 0, 0}, losum[4] = {0, 0, 0, 0};
  for (int j = 0; j < 4; j++) {
    qs[j] = tmp + (size_t)j * (D + 2 * B);
    coef[j] = qs[j] + D;
    p[j] = coef[j] + B;
    if (j < nq) b0[j] = range_scale(kmin, kmax, a[j]->q, D, kq, qs[j]);
    else memset(qs[j], 0, sizeof(float) * (size_t)(D + B));
  }
  __m512 lg[4][NL];
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
    for (int v = 0; v < NL; v++) lg[j][v] = _mm512_setzero_ps();
  for (int d = 0; d < D; d++) {
    const float *kr = kc + (size_t)d * B;
    __m512 kv[NL];
#pragma GCC unroll 4
    for (int v = 0; v < NL; v++) kv[v] = _mm512_loadu_ps(kr + 16 * v);
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      const __m512 sj = _mm512_set1_ps(qs[j][d]);
#pragma GCC unroll 4
      for (int v = 0; v < NL; v++) lg[j][v] = _mm512_fmadd_ps(sj, kv[v], lg[j][v]);
    }
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; j++) {
    if (j >= nq) break;
    const __m512 sc = _mm512_set1_ps(a[j]->scale), bv = _mm512_set1_ps(b0[j]);
    __m512 x[NL], mxv = _mm512_set1_ps(-INFINITY);
    for (int v = 0; v < NL; v++) {
      x[v] = _mm512_mul_ps(sc, _mm512_add_ps(bv, lg[j][v]));
      mxv = _mm512_max_ps(mxv, x[v]);
    }
    rescale(a[j], 0, _mm512_reduce_max_ps(mxv));
    const __m512 m = _mm512_set1_ps(a[j]->m[0]);
    __m512 ps = _mm512_setzero_ps();
    for (int v = 0; v < NL; v++) {
      const __m512 pv = vexp(_mm512_sub_ps(x[v], m));
      ps = _mm512_add_ps(ps, pv);
      _mm512_storeu_ps(p[j] + 16 * v, pv);
    }
    a[j]->l[0] += _mm512_reduce_add_ps(ps);
    losum[j] = range_scale(vlo, vhi, p[j], B, vq, coef[j]);
  }
  for (int v0 = 0; v0 < D / 16; v0 += 4) {
    __m512 s[4][4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) s[j][v] = _mm512_setzero_ps();
    for (int t = 0; t < B; t++) {
      const float *r = vc + (size_t)t * D + 16 * v0;
      __m512 vv[4];
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) vv[v] = _mm512_loadu_ps(r + 16 * v);
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        const __m512 w = _mm512_set1_ps(coef[j][t]);
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) s[j][v] = _mm512_fmadd_ps(w, vv[v], s[j][v]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      if (j >= nq) break;
      float *dst = c->cfg.val_rot ? a[j]->accr : a[j]->acc;
      const __m512 ls = _mm512_set1_ps(losum[j]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; v++) {
        float *o = dst + 16 * (v0 + v);
        _mm512_storeu_ps(o, _mm512_add_ps(_mm512_loadu_ps(o), _mm512_add_ps(s[j][v], ls)));
      }
    }
  }
}

K512 float kvm512_block_score(const kvm_cache *c, const uint8_t *hb, const float *q, int g) {
  const int D = c->cfg.head_dim;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + c->L.kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + c->L.kmax);
  float best = -INFINITY;
  const __m512 half = _mm512_set1_ps(0.5f);
  for (int j = 0; j < g; j++) {
    const float *qj = q + (size_t)j * D;
    __m512 s = _mm512_setzero_ps(), v = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
      const __m512 l = ld_h(kmin + d), h = ld_h(kmax + d), qv = _mm512_loadu_ps(qj + d);
      if (c->cfg.select == KVM_SELECT_GAUSS) {
        const __m512 ctr = _mm512_mul_ps(half, _mm512_add_ps(l, h));
        const __m512 hw = _mm512_mul_ps(_mm512_mul_ps(half, _mm512_sub_ps(h, l)), qv);
        s = _mm512_fmadd_ps(qv, ctr, s);
        v = _mm512_fmadd_ps(hw, hw, v);
      } else {
        s = _mm512_add_ps(s, _mm512_max_ps(_mm512_mul_ps(qv, l), _mm512_mul_ps(qv, h)));
      }
    }
    float r = _mm512_reduce_add_ps(s);
    if (c->cfg.select == KVM_SELECT_GAUSS) r += sqrtf(_mm512_reduce_add_ps(v));
    if (r > best) best = r;
  }
  return best;
}

#else
void kvm_simd_force(int level) { (void)level; }
int kvm_simd512(void) { return 0; }
int kvm_simd512_fits(const kvm_config *k) { (void)k; return 0; }
void kvm512_rows_f16(kvm_att *a, const uint16_t *kr, const uint16_t *vr, size_t stride, int n) {
  (void)a; (void)kr; (void)vr; (void)stride; (void)n;
}
void kvm512_fold_f32(kvm_att *a, int n, float bias) { (void)a; (void)n; (void)bias; }
void kvm512_fold_block(const kvm_cache *c, kvm_att *a, const uint8_t *hb) { (void)c; (void)a; (void)hb; }
void kvm512_unpack_f32(const uint8_t *p, int nbytes, int bits, float *out) { (void)p; (void)nbytes; (void)bits; (void)out; }
void kvm512_fold_tile4(const kvm_cache *c, kvm_att *const *a, int nq, const uint8_t *hb, const float *kc,
                       const float *vc, float *tmp) {
  (void)c; (void)a; (void)nq; (void)hb; (void)kc; (void)vc; (void)tmp;
}
void kvm512_fold_tile(const kvm_cache *c, kvm_att *a, const uint8_t *hb, const float *kc, const float *vc, float *tmp) {
  (void)c; (void)a; (void)hb; (void)kc; (void)vc; (void)tmp;
}
float kvm512_block_score(const kvm_cache *c, const uint8_t *hb, const float *q, int g) {
  (void)c; (void)hb; (void)q; (void)g;
  return 0;
}
#endif
