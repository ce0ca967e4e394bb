/*
 * simd_body.h — the KV memory's attention loops, written once for any
 * vector width and compiled twice: by simd_avx512.c (16 float lanes) and by
 * simd_avx2.c (8 float lanes, AVX2 + FMA + F16C). Not a public header;
 * include nowhere else. The includer defines, before including it:
 *   KS(name)   suffixes every function (name##_avx512, name##_avx2)
 *   KS_TGT     the target attribute string, KS_NAME the level's name
 *   KS_W       float lanes per vector (16 or 8), KS_LW its log2
 *   KS_CV      vectors of one tile row a query keeps in registers in
 *              fold_tileq (4 with 32 registers, 2 with 16)
 *   vf, vi, vm the float, int32 and lane-mask vector types, and the small
 *              helpers below (KS_INL functions: what one width has as an
 *              instruction and the other builds from two or three)
 *   vzero vset1 vload vstore vadd vsub vmul vdiv vmax vfmadd vfnmadd
 *   vsum vmaxall (horizontal sum / max)  vload_h (KS_W f16 -> f32)
 *   vload_u8 (KS_W bytes widened to int32)  vcvt (int32 -> f32)
 *   vcast_fi vcast_if (bit casts)  vset1i vaddi vandi vori vslli vsrli
 *   vsrlv (per-lane shift)  vlane (0..KS_W-1)  vpermi (x[idx])
 *   vgather (base[idx])  vkeep_gt (v where n > t, else 0)
 *   vm_first (first n lanes)  vload_m vstore_m vzero_m (masked)
 *
 * The results are the portable loops' (cache.c) up to float rounding: the
 * same sums in other orders, and a polynomial exp instead of libm's
 * (test_kvmem_simd, test_kvmem_batch: 2e-5 relative, the same blocks).
 *
 * Compressed blocks are read from their codes without a dequantized tile:
 * KS_W code bytes widen to KS_W int32 lanes, and with m = 8/bits codes per
 * byte the k-th code of every lane is (x >> bits*k) & mask. So vector
 * c*m+k, lane i, holds element W*m*c + m*i + k: keys' logits and values'
 * sums are accumulated in that permuted order and put back in order once
 * per block (a gather). The order depends on W, so each width needs the
 * shapes in multiples of its own W (kvm_simd_fits). Values read with
 * val_rot stay in the rotated basis (kvm_att accr) until attend_group turns
 * their sum back once.
 */

#define KS_FN __attribute__((target(KS_TGT)))
/* block <= 256 and head_dim <= 1024 (kvm_config_check): vectors of one */
#define KS_MAXB (256 / KS_W)
#define KS_MAXD (1024 / KS_W)

/* exp(x) for x <= 0: ggml_v_expf's polynomial (ARM optimized routines, ~1.5
 * ulp); results below 2^-126 flush to 0, which a softmax weight may. */
KS_INL vf KS(vexp)(vf x) {
  const vf r = vset1(0x1.8p23f);
  const vf z = vfmadd(x, vset1(0x1.715476p+0f), r);
  const vf n = vsub(z, r);
  const vf b = vfnmadd(n, vset1(0x1.7f7d1cp-20f), vfnmadd(n, vset1(0x1.62e4p-1f), x));
  const vi e = vslli(vcast_fi(z), 23);
  const vf k = vcast_if(vaddi(e, vcast_fi(vset1(1))));
  const vf u = vmul(b, b);
  const vf j = vfmadd(vfmadd(vfmadd(vset1(0x1.0e4020p-7f), b, vset1(0x1.573e2ep-5f)), u,
                             vfmadd(vset1(0x1.555e66p-3f), b, vset1(0x1.fffdb6p-2f))),
                      u, vfmadd(vset1(0x1.ffffecp-1f), b, vset1(1.0f)));
  return vkeep_gt(vmul(k, j), n, vset1(-126.0f));
}

/* Raise head j's running max to mx (rescaling its sum and accumulator). */
KS_FN static void KS(rescale)(kvm_att *a, int j, float mx) {
  if (mx <= a->m[j]) return;
  float f = a->m[j] == -INFINITY ? 0.0f : expf(a->m[j] - mx);
  float *acc = a->acc + (size_t)j * a->D, *accr = a->accr + (size_t)j * a->D;
  const vf fv = vset1(f);
  for (int d = 0; d < a->D; d += KS_W) {
    vstore(acc + d, vmul(vload(acc + d), fv));
    vstore(accr + d, vmul(vload(accr + d), fv));
  }
  a->l[j] *= f;
  a->m[j] = mx;
}

/* logit[0..n) := exp(logit - m); returns their sum. */
KS_FN static float KS(exp_sum)(float *logit, int n, float m) {
  const vf mv = vset1(m);
  vf s = vzero();
  for (int r = 0; r < n; r += KS_W) {
    const vm k = vm_first(n - r);
    vf p = vzero_m(k, KS(vexp)(vsub(vload_m(k, logit + r), mv)));
    vstore_m(logit + r, k, p);
    s = vadd(s, p);
  }
  return vsum(s);
}

/* Rows of keys/values given as f16 (row r at +r*stride) or f32 (stride in
 * floats), folded into every head's state. */
KS_FN static void KS(fold_rows)(kvm_att *a, const void *kr, const void *vr, size_t stride, int n, int f16,
                                float bias) {
  const int D = a->D, T = a->T;
  for (int r0 = 0; r0 < n; r0 += T) {
    const int nr = n - r0 < T ? n - r0 : T;
    for (int j = 0; j < a->g; j++) {
      const float *q = a->q + (size_t)j * D;
      float *lg = a->logit, mx = -INFINITY;
      for (int r = 0; r < nr; r++) {
        vf s = vzero();
        if (f16) {
          const uint16_t *k = (const uint16_t *)kr + (size_t)(r0 + r) * stride;
          for (int d = 0; d < D; d += KS_W) s = vfmadd(vload(q + d), vload_h(k + d), s);
        } else {
          const float *k = (const float *)kr + (size_t)(r0 + r) * stride;
          for (int d = 0; d < D; d += KS_W) s = vfmadd(vload(q + d), vload(k + d), s);
        }
        float v = a->scale * vsum(s) + bias;
        lg[r] = v;
        if (v > mx) mx = v;
      }
      KS(rescale)(a, j, mx);
      a->l[j] += KS(exp_sum)(lg, nr, a->m[j]);
      float *acc = a->acc + (size_t)j * D;
      for (int d = 0; d < D; d += KS_W) {
        vf s0 = vload(acc + d), s1 = vzero();
        int r = 0;
        if (f16) {
          const uint16_t *v = (const uint16_t *)vr + (size_t)r0 * stride + d;
          for (; r + 1 < nr; r += 2) {
            s0 = vfmadd(vset1(lg[r]), vload_h(v + (size_t)r * stride), s0);
            s1 = vfmadd(vset1(lg[r + 1]), vload_h(v + (size_t)(r + 1) * stride), s1);
          }
          if (r < nr) s0 = vfmadd(vset1(lg[r]), vload_h(v + (size_t)r * stride), s0);
        } else {
          const float *v = (const float *)vr + (size_t)r0 * stride + d;
          for (; r + 1 < nr; r += 2) {
            s0 = vfmadd(vset1(lg[r]), vload(v + (size_t)r * stride), s0);
            s1 = vfmadd(vset1(lg[r + 1]), vload(v + (size_t)(r + 1) * stride), s1);
          }
          if (r < nr) s0 = vfmadd(vset1(lg[r]), vload(v + (size_t)r * stride), s0);
        }
        vstore(acc + d, vadd(s0, s1));
      }
    }
  }
}

KS_FN static void KS(rows_f16)(kvm_att *a, const uint16_t *kr, const uint16_t *vr, size_t stride, int n) {
  KS(fold_rows)(a, kr, vr, stride, n, 1, 0.0f);
}

KS_FN static void KS(fold_f32)(kvm_att *a, int n, float bias) {
  KS(fold_rows)(a, a->kt, a->vt, (size_t)a->D, n, 0, bias);
}

/* o[k] = sum_r w[r] * (code k of every byte of the KS_W bytes at p + r*stride),
 * k < 8/BITS: one KS_W-byte column of n code rows, weighted, in permuted
 * order. Two partial sums per vector (even and odd rows) so consecutive
 * FMAs do not wait on each other; BITS is a constant at every call so the
 * k loop unrolls and the sums stay in registers. */
KS_INL void KS(column_sum)(const uint8_t *p, size_t stride, int n, const float *w, const int BITS, vf *o) {
  const int m = 8 / BITS;
  const vi mask = vset1i((1 << BITS) - 1);
  vf a[4][2];
  for (int k = 0; k < m; k++) a[k][0] = a[k][1] = vzero();
  for (int r = 0; r < n; r++) {
    const vi x = vload_u8(p + (size_t)r * stride);
    const vf s = vset1(w[r]);
    for (int k = 0; k < m; k++) {
      const vi v = BITS == 8 ? x : vandi(vsrli(x, BITS * k), mask);
      a[k][r & 1] = vfmadd(s, vcvt(v), a[k][r & 1]);
    }
  }
  for (int k = 0; k < m; k++) o[k] = vadd(a[k][0], a[k][1]);
}

/* Every KS_W-byte column of n rows of nbytes (stride apart): o[c*m + k]. */
KS_FN static void KS(rows_sum)(const uint8_t *p, size_t stride, int n, int nbytes, const float *w, int bits, vf *o) {
  for (int c = 0; c < nbytes / KS_W; c++) {
    if (bits == 8) KS(column_sum)(p + KS_W * c, stride, n, w, 8, o + c);
    else if (bits == 4) KS(column_sum)(p + KS_W * c, stride, n, w, 4, o + 2 * c);
    else KS(column_sum)(p + KS_W * c, stride, n, w, 2, o + 4 * c);
  }
}

/* out[e] = tmp[position of element e] + add (accumulate: out[e] += it),
 * e < n (n % KS_W == 0): the permuted order put back, 2^lm codes per byte.
 * Element e = W*m*c + m*i + k sits at lane i of vector c*m + k; the
 * positions are computed KS_W at a time and gathered. */
KS_FN static void KS(unpermute)(const float *tmp, float *out, int n, int lm, float add, int accumulate) {
  const vf av = vset1(add);
  const vi lane = vlane();
  const vi rem_mask = vset1i((KS_W << lm) - 1), k_mask = vset1i((1 << lm) - 1);
  for (int e0 = 0; e0 < n; e0 += KS_W) {
    vf x;
    if (lm == 0) { /* one code per byte: the order is the natural one */
      x = vload(tmp + e0);
    } else {
      const vi e = vaddi(vset1i(e0), lane);
      const vi c = vsrli(e, KS_LW + lm), rem = vandi(e, rem_mask);
      const vi i = vsrli(rem, lm), k = vandi(rem, k_mask);
      const vi pos = vori(vslli(vaddi(vslli(c, lm), k), KS_LW), i);
      x = vgather(tmp, pos);
    }
    x = vadd(x, av);
    vstore(out + e0, accumulate ? vadd(vload(out + e0), x) : x);
  }
}

/* For ranges [lo_i, hi_i] (f16) coded on `levels` steps and weights x_i:
 * out_i = x_i * (hi_i - lo_i) / levels (the weight of code i); returns
 * sum_i x_i * lo_i (the codes' common offset). n % KS_W == 0. */
KS_FN static float KS(range_scale)(const uint16_t *lo, const uint16_t *hi, const float *x, int n, float levels,
                                   float *out) {
  vf base = vzero();
  const vf lv = vset1(levels);
  for (int i = 0; i < n; i += KS_W) {
    const vf l = vload_h(lo + i), h = vload_h(hi + i), xv = vload(x + i);
    base = vfmadd(xv, l, base);
    vstore(out + i, vmul(xv, vdiv(vsub(h, l), lv)));
  }
  return vsum(base);
}

KS_FN static void KS(fold_block)(const kvm_cache *c, kvm_att *a, const uint8_t *hb) {
  const kvm_blk_layout *L = &c->L;
  const int B = c->cfg.block, D = a->D, kb = c->cfg.key_bits, vb = c->cfg.val_bits;
  const int lk = kb == 8 ? 0 : kb == 4 ? 1 : 2, lv = vb == 8 ? 0 : vb == 4 ? 1 : 2, NL = B / KS_W, NV = D / KS_W;
  const float kq = (float)((1 << kb) - 1), vq = (float)((1 << vb) - 1);
  float *qs = a->kt, *tmp = a->kt + D; /* tmp: max(B, D) floats */
  float *pn = a->vt, *coef = a->vt + B;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + L->kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + L->kmax);
  const uint16_t *vlo = (const uint16_t *)(const void *)(hb + L->vlo);
  const uint16_t *vhi = (const uint16_t *)(const void *)(hb + L->vhi);
  vf acc[KS_MAXD], lg[KS_MAXB];
  for (int j = 0; j < a->g; j++) {
    const float *q = a->q + (size_t)j * D;
    const float b0 = KS(range_scale)(kmin, kmax, q, D, kq, qs);
    KS(rows_sum)(hb + L->kcodes, L->krow, D, (int)L->krow, qs, kb, lg);
    const vf sc = vset1(a->scale), bv = vset1(b0);
    vf mxv = vset1(-INFINITY);
    for (int v = 0; v < NL; v++) {
      lg[v] = vmul(sc, vadd(bv, lg[v]));
      mxv = vmax(mxv, lg[v]);
    }
    KS(rescale)(a, j, vmaxall(mxv));
    const vf m = vset1(a->m[j]);
    vf ps = vzero();
    for (int v = 0; v < NL; v++) {
      const vf p = KS(vexp)(vsub(lg[v], m));
      ps = vadd(ps, p);
      vstore(tmp + KS_W * v, p);
    }
    a->l[j] += vsum(ps);
    KS(unpermute)(tmp, pn, B, lk, 0.0f, 0);
    /* coef_t = p_t * s_t; losum = sum_t p_t * lo_t (added to every dimension) */
    const float losum = KS(range_scale)(vlo, vhi, pn, B, vq, coef);
    KS(rows_sum)(hb + L->vcodes, L->vrow, B, (int)L->vrow, coef, vb, acc);
    for (int v = 0; v < NV; v++) vstore(tmp + KS_W * v, acc[v]);
    /* rotated sums go to accr, turned back once in attend_group */
    KS(unpermute)(tmp, (c->cfg.val_rot ? a->accr : a->acc) + (size_t)j * D, D, lv, losum, 1);
  }
}

/* out[0 .. nbytes*8/bits) := the codes of nbytes packed bytes (nbytes %
 * KS_W == 0) as floats, in order. */
KS_FN static void KS(unpack_f32)(const uint8_t *p, int nbytes, int bits, float *out) {
  /* output lane e of vector o of a KS_W-byte chunk is code E = W*o + e: byte
   * E/m, shifted right by bits*(E%m) (m = 8/bits codes per byte, a power of 2) */
  const int m = 8 / bits, lm = m == 1 ? 0 : m == 2 ? 1 : 2, lb = bits == 2 ? 1 : bits == 4 ? 2 : 3;
  const vi lane = vlane();
  const vi mask = vset1i((1 << bits) - 1), mm = vset1i(m - 1);
  vi idx[4], sh[4];
  for (int o = 0; o < m; o++) {
    const vi e = vaddi(vset1i(KS_W * o), lane);
    idx[o] = vsrli(e, lm);
    sh[o] = vslli(vandi(e, mm), lb);
  }
  for (int c = 0; c < nbytes; c += KS_W) {
    const vi x = vload_u8(p + c);
    float *o0 = out + (size_t)c * (size_t)m;
    if (m == 1) {
      vstore(o0, vcvt(x));
      continue;
    }
    for (int o = 0; o < m; o++) vstore(o0 + KS_W * o, vcvt(vandi(vsrlv(vpermi(idx[o], x), sh[o]), mask)));
  }
}

/* fold_block from the block's codes unpacked once (unpack_f32) for many
 * queries: kc [D][B] key codes channel-major, vc [B][D] value codes
 * token-major; tmp: D + 2*B floats. */
KS_FN static void KS(fold_tile)(const kvm_cache *c, kvm_att *a, const uint8_t *hb, const float *kc, const float *vc,
                                float *tmp) {
  const kvm_blk_layout *L = &c->L;
  const int B = c->cfg.block, D = a->D, NL = B / KS_W, NV = D / KS_W;
  const float kq = (float)((1 << c->cfg.key_bits) - 1), vq = (float)((1 << c->cfg.val_bits) - 1);
  float *qs = tmp, *coef = tmp + D, *p = tmp + D + B;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + L->kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + L->kmax);
  const uint16_t *vlo = (const uint16_t *)(const void *)(hb + L->vlo);
  const uint16_t *vhi = (const uint16_t *)(const void *)(hb + L->vhi);
  for (int j = 0; j < a->g; j++) {
    /* logit_t = scale * (q·lo + sum_c (q_c*s_c) * code_ct), KS_W tokens a vector */
    const float b0 = KS(range_scale)(kmin, kmax, a->q + (size_t)j * D, D, kq, qs);
    vf ev[KS_MAXB], od[KS_MAXB];
    for (int v = 0; v < NL; v++) ev[v] = od[v] = vzero();
    for (int d = 0; d < D; d += 2) {
      const vf s0 = vset1(qs[d]), s1 = vset1(qs[d + 1]);
      const float *k0 = kc + (size_t)d * B, *k1 = k0 + B;
      for (int v = 0; v < NL; v++) {
        ev[v] = vfmadd(s0, vload(k0 + KS_W * v), ev[v]);
        od[v] = vfmadd(s1, vload(k1 + KS_W * v), od[v]);
      }
    }
    const vf sc = vset1(a->scale), bv = vset1(b0);
    vf mxv = vset1(-INFINITY);
    for (int v = 0; v < NL; v++) {
      ev[v] = vmul(sc, vadd(bv, vadd(ev[v], od[v])));
      mxv = vmax(mxv, ev[v]);
    }
    KS(rescale)(a, j, vmaxall(mxv));
    const vf m = vset1(a->m[j]);
    vf ps = vzero();
    for (int v = 0; v < NL; v++) {
      const vf pv = KS(vexp)(vsub(ev[v], m));
      ps = vadd(ps, pv);
      vstore(p + KS_W * v, pv);
    }
    a->l[j] += vsum(ps);
    /* acc += sum_t (p_t*s_t) * code_t + sum_t p_t*lo_t, KS_W dimensions a vector */
    const vf losum = vset1(KS(range_scale)(vlo, vhi, p, B, vq, coef));
    float *dst = (c->cfg.val_rot ? a->accr : a->acc) + (size_t)j * D;
    for (int v0 = 0; v0 < NV; v0 += 8) {
      const int nv = NV - v0 < 8 ? NV - v0 : 8;
      vf s0[8], s1[8];
      for (int v = 0; v < nv; v++) s0[v] = s1[v] = vzero();
      for (int t = 0; t < B; t += 2) {
        const vf w0 = vset1(coef[t]), w1 = vset1(coef[t + 1]);
        const float *r0 = vc + (size_t)t * D + KS_W * v0, *r1 = r0 + D;
        for (int v = 0; v < nv; v++) {
          s0[v] = vfmadd(w0, vload(r0 + KS_W * v), s0[v]);
          s1[v] = vfmadd(w1, vload(r1 + KS_W * v), s1[v]);
        }
      }
      for (int v = 0; v < nv; v++) {
        float *o = dst + KS_W * (v0 + v);
        vstore(o, vadd(vload(o), vadd(vadd(s0[v], s1[v]), losum)));
      }
    }
  }
}

/* fold_tile for nq <= 4 queries at once (a[0..nq), one head each), which
 * share every load of the tiles: 4 queries x KS_CV vectors of logits or
 * values are independent sums per tile row, held in registers (every loop
 * bound below is a constant; missing queries run with zero weights and are
 * not stored), so the loop runs on FMAs instead of loads. Needs B == 64
 * and D % 64 == 0; tmp: 4 * (D + 2*B) floats. */
KS_FN static void KS(fold_tileq)(const kvm_cache *c, kvm_att *const *a, int nq, const uint8_t *hb, const float *kc,
                                 const float *vc, float *tmp) {
  const kvm_blk_layout *L = &c->L;
  enum { B = 64, NL = B / KS_W, CV = KS_CV };
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
    if (j < nq) b0[j] = KS(range_scale)(kmin, kmax, a[j]->q, D, kq, qs[j]);
    else memset(qs[j], 0, sizeof(float) * (size_t)(D + B));
  }
  /* raw logits (sum_c (q_c*s_c) * code_ct) into p[j], CV vectors of tokens at a time */
  for (int v0 = 0; v0 < NL; v0 += CV) {
    vf lg[4][CV];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
      for (int v = 0; v < CV; v++) lg[j][v] = vzero();
    for (int d = 0; d < D; d++) {
      const float *kr = kc + (size_t)d * B + KS_W * v0;
      vf kv[CV];
#pragma GCC unroll 4
      for (int v = 0; v < CV; v++) kv[v] = vload(kr + KS_W * v);
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        const vf sj = vset1(qs[j][d]);
#pragma GCC unroll 4
        for (int v = 0; v < CV; v++) lg[j][v] = vfmadd(sj, kv[v], lg[j][v]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
      for (int v = 0; v < CV; v++) vstore(p[j] + KS_W * (v0 + v), lg[j][v]);
  }
  for (int j = 0; j < nq; j++) {
    const vf sc = vset1(a[j]->scale), bv = vset1(b0[j]);
    vf x[NL], mxv = vset1(-INFINITY);
    for (int v = 0; v < NL; v++) {
      x[v] = vmul(sc, vadd(bv, vload(p[j] + KS_W * v)));
      mxv = vmax(mxv, x[v]);
    }
    KS(rescale)(a[j], 0, vmaxall(mxv));
    const vf m = vset1(a[j]->m[0]);
    vf ps = vzero();
    for (int v = 0; v < NL; v++) {
      const vf pv = KS(vexp)(vsub(x[v], m));
      ps = vadd(ps, pv);
      vstore(p[j] + KS_W * v, pv);
    }
    a[j]->l[0] += vsum(ps);
    losum[j] = KS(range_scale)(vlo, vhi, p[j], B, vq, coef[j]);
  }
  for (int v0 = 0; v0 < D / KS_W; v0 += CV) {
    vf s[4][CV];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
      for (int v = 0; v < CV; v++) s[j][v] = vzero();
    for (int t = 0; t < B; t++) {
      const float *r = vc + (size_t)t * D + KS_W * v0;
      vf vv[CV];
#pragma GCC unroll 4
      for (int v = 0; v < CV; v++) vv[v] = vload(r + KS_W * v);
#pragma GCC unroll 4
      for (int j = 0; j < 4; j++) {
        const vf w = vset1(coef[j][t]);
#pragma GCC unroll 4
        for (int v = 0; v < CV; v++) s[j][v] = vfmadd(w, vv[v], s[j][v]);
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++) {
      if (j >= nq) break;
      float *dst = c->cfg.val_rot ? a[j]->accr : a[j]->acc;
      const vf ls = vset1(losum[j]);
#pragma GCC unroll 4
      for (int v = 0; v < CV; v++) {
        float *o = dst + KS_W * (v0 + v);
        vstore(o, vadd(vload(o), vadd(s[j][v], ls)));
      }
    }
  }
}

KS_FN static float KS(block_score)(const kvm_cache *c, const uint8_t *hb, const float *q, int g) {
  const int D = c->cfg.head_dim;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + c->L.kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + c->L.kmax);
  float best = -INFINITY;
  const vf half = vset1(0.5f);
  for (int j = 0; j < g; j++) {
    const float *qj = q + (size_t)j * D;
    vf s = vzero(), v = vzero();
    for (int d = 0; d < D; d += KS_W) {
      const vf l = vload_h(kmin + d), h = vload_h(kmax + d), qv = vload(qj + d);
      if (c->cfg.select == KVM_SELECT_GAUSS) {
        const vf ctr = vmul(half, vadd(l, h));
        const vf hw = vmul(vmul(half, vsub(h, l)), qv);
        s = vfmadd(qv, ctr, s);
        v = vfmadd(hw, hw, v);
      } else {
        s = vadd(s, vmax(vmul(qv, l), vmul(qv, h)));
      }
    }
    float r = vsum(s);
    if (c->cfg.select == KVM_SELECT_GAUSS) r += sqrtf(vsum(v));
    if (r > best) best = r;
  }
  return best;
}

/* The table simd.c hands out for this width. */
const kvm_simd_ops KS(kvm__simd) = {
    .name = KS_NAME,
    .lanes = KS_W,
    .rows_f16 = KS(rows_f16),
    .fold_f32 = KS(fold_f32),
    .fold_block = KS(fold_block),
    .block_score = KS(block_score),
    .unpack_f32 = KS(unpack_f32),
    .fold_tile = KS(fold_tile),
    .fold_tileq = KS(fold_tileq),
};
