/*
 * batch.c — attention for a run of consecutive query positions at once, the
 * form a prefill needs (kvm_cache_attend_batch): n positions x g query heads
 * of one KV head, each query exactly what kvm_cache_attend_head computes for
 * it (same positions, window, per-query block choice, the same parts folded
 * in the same order: sinks, window, chosen blocks ascending, pooled rest).
 * What changes is the loop order over compressed blocks: block-outer, so a
 * block's codes are read once for every query that chose it and, with the
 * SIMD loops (AVX2 or AVX-512), unpacked once into float tiles (unpack_f32)
 * that each query's fold reads (fold_tile, fold_tileq) instead of re-widening the
 * packed codes per query, which was most of a prefill's attention time.
 *
 * Invariants: with the portable loops the results are attend_head's bits
 * (same calls, same order per query); with the SIMD ones they agree to
 * float rounding (test_kvmem_batch). Full and local layers read each
 * position's rows once for the g heads (kvm_attend_heads: the same bits as
 * attend_head per head, the rows read once: a decode step's GQA group);
 * windowed compressed layers, and a single query, take attend_head's path
 * per query unchanged.
 */
#include <math.h>
#include <string.h>

#include "kvmem/internal.h"

/* Per-query top-k lists hold at most this many block indexes. */
static int choice_cap(const kvm_config *k) {
  int mb = kvm_max_blocks(k);
  return k->top_k < mb ? k->top_k : mb;
}

static size_t batch_floats(const kvm_cache *c, int nq) {
  const kvm_config *k = &c->cfg;
  size_t D = (size_t)k->head_dim, T = (size_t)c->tile, B = (size_t)k->block, mb = (size_t)kvm_max_blocks(k);
  size_t shared = T + 2 * T * D + 2 * D + 2 * mb + 2 * B * D + 4 * (D + 2 * B) + 64;
  size_t per_q = 2 * D + 2 + (size_t)choice_cap(k) + 4;
  return shared + (size_t)nq * per_q;
}

size_t kvm_attend_batch_scratch_bytes(const kvm_cache *c, int n_queries) {
  size_t one = kvm_attend_scratch_bytes(c), b = batch_floats(c, n_queries < 1 ? 1 : n_queries) * sizeof(float);
  size_t grp = kvm_group_scratch_bytes(c, n_queries); /* full and local layers: kvm_attend_heads */
  if (grp > b) b = grp;
  return b > one ? b : one;
}

typedef struct bq_state {
  int D, T;
  const kvm_simd_ops *vx;
  float scale, *logit, *kt, *vt, *acc, *accr, *m, *l;
} bq_state;

/* The kvm_att of query i (one head), over the batch's arrays. */
static kvm_att query_att(const bq_state *s, const float *q, int i) {
  kvm_att a = {.g = 1, .D = s->D, .T = s->T, .vx = s->vx, .scale = s->scale, .q = q};
  a.logit = s->logit;
  a.kt = s->kt;
  a.vt = s->vt;
  a.acc = s->acc + (size_t)i * s->D;
  a.accr = s->accr + (size_t)i * s->D;
  a.m = s->m + i;
  a.l = s->l + i;
  return a;
}

void kvm_cache_attend_batch(kvm_cache *c, int layer, int h, const float *q, size_t stride, int g, int pos0, int n,
                            int window, float scale, float *out, void *scratch) {
  const kvm_config *k = &c->cfg;
  kvm_layer *ly = &c->layers[layer];
  const int D = k->head_dim, B = k->block, nq = n * g;
  if (ly->mode != KVM_COMPRESSED) { /* exact rows: read once per position for the g heads */
    for (int t = 0; t < n; t++)
      kvm_attend_heads(c, layer, h, q + (size_t)t * stride, g, pos0 + t, window, scale, out + (size_t)t * stride,
                       scratch);
    return;
  }
  if (window > 0 || nq < 2) {
    for (int t = 0; t < n; t++)
      for (int j = 0; j < g; j++)
        kvm_cache_attend_head(c, layer, h, q + (size_t)t * stride + (size_t)j * D, pos0 + t, window, scale,
                              out + (size_t)t * stride + (size_t)j * D, scratch);
    return;
  }
  const size_t kvd = (size_t)c->kvd, hoff = (size_t)h * D, ho = (size_t)h * c->L.head_bytes;
  const int T = c->tile, cap = choice_cap(k), mb = kvm_max_blocks(k);
  float *sc = scratch;
  bq_state s = {.D = D, .T = T, .vx = kvm_simd_for(k), .scale = scale};
  s.logit = sc; sc += T;
  s.kt = sc; sc += (size_t)T * D;
  s.vt = sc; sc += (size_t)T * D;
  float *lohi = sc; sc += 2 * (size_t)D;
  float *bscore = sc; sc += mb;
  int *top = (int *)sc; sc += mb;
  float *kc = sc; sc += (size_t)B * D;
  float *vc = sc; sc += (size_t)B * D;
  float *tmp = sc; sc += 4 * ((size_t)D + 2 * (size_t)B);
  s.acc = sc; sc += (size_t)nq * D;
  s.accr = sc; sc += (size_t)nq * D;
  s.m = sc; sc += nq;
  s.l = sc; sc += nq;
  int *nb_q = (int *)sc; sc += nq;   /* blocks query i may read */
  int *nc_q = (int *)sc; sc += nq;   /* blocks it chose; -1: every one of them */
  int *cur = (int *)sc; sc += nq;    /* next entry of its list (block-outer walk) */
  int *who = (int *)sc; sc += nq;    /* the queries reading the current block */
  int *chosen = (int *)sc;           /* [nq][cap] ascending block indexes */
  memset(s.acc, 0, sizeof(float) * (size_t)nq * D);
  memset(s.accr, 0, sizeof(float) * (size_t)nq * D);
  int nb_max = 0;
  /* per query: sinks and window rows exact, then its choice of blocks */
  for (int i = 0; i < nq; i++) {
    const int pos = pos0 + i / g;
    const float *qi = q + (size_t)(i / g) * stride + (size_t)(i % g) * D;
    int end = pos + 1 < ly->n ? pos + 1 : ly->n;
    s.m[i] = -INFINITY;
    s.l[i] = 0;
    kvm_att a = query_att(&s, qi, i);
    int ns = end < ly->n_sink ? end : ly->n_sink;
    kvm_att_rows_f16(&a, ly->sk + hoff, ly->sv + hoff, kvd, ns, c->has_f16c);
    int w0 = ly->win_start, nw = end - w0;
    if (nw > 0)
      kvm_att_rows_f16(&a, ly->wk + hoff, ly->wv + hoff, kvd, nw, c->has_f16c);
    int nb = ly->n_blocks;
    while (nb > 0 && ly->n_sink + (nb - 1) * B > pos) nb--;
    nb_q[i] = nb;
    cur[i] = 0;
    if (nb > nb_max) nb_max = nb;
    if (k->top_k >= nb) {
      nc_q[i] = -1;
    } else if (k->top_k > 0) {
      for (int b = 0; b < nb; b++)
        bscore[b] = s.vx ? s.vx->block_score(c, ly->blocks[b] + ho, qi, 1)
                           : kvm_block_bound(c, ly->blocks[b] + ho, qi, 1, lohi);
      nc_q[i] = kvm_top_k_select(bscore, nb, k->top_k, top);
      memcpy(chosen + (size_t)i * cap, top, sizeof(int) * (size_t)nc_q[i]);
    } else {
      nc_q[i] = 0;
    }
  }
  /* blocks, each read once for the queries that chose it (ascending per query) */
  for (int b = 0; b < nb_max; b++) {
    const uint8_t *hb = ly->blocks[b] + ho;
    int nw = 0;
    for (int i = 0; i < nq; i++) {
      if (b >= nb_q[i]) continue;
      if (nc_q[i] < 0) who[nw++] = i;
      else if (cur[i] < nc_q[i] && chosen[(size_t)i * cap + cur[i]] == b) {
        cur[i]++;
        who[nw++] = i;
      }
    }
    const int tile = s.vx && nw > 1;
    if (tile) {
      s.vx->unpack_f32(hb + c->L.kcodes, (int)(c->L.krow * (size_t)D), k->key_bits, kc);
      s.vx->unpack_f32(hb + c->L.vcodes, (int)(c->L.vrow * (size_t)B), k->val_bits, vc);
    }
    for (int w = 0; w < nw;) {
      kvm_att a[4], *ap[4];
      const int nt = !tile || B != 64 || D % 64 ? 1 : nw - w < 4 ? nw - w : 4; /* queries sharing the loads */
      for (int j = 0; j < nt; j++) {
        const int i = who[w + j];
        a[j] = query_att(&s, q + (size_t)(i / g) * stride + (size_t)(i % g) * D, i);
        ap[j] = &a[j];
      }
      if (!tile) kvm_fold_block(c, &a[0], hb);
      else if (nt > 1) s.vx->fold_tileq(c, ap, nt, hb, kc, vc, tmp);
      else s.vx->fold_tile(c, &a[0], hb, kc, vc, tmp);
      w += nt;
    }
  }
  /* per query: pooled summaries of the blocks it did not choose, then out */
  for (int i = 0; i < nq; i++) {
    const float *qi = q + (size_t)(i / g) * stride + (size_t)(i % g) * D;
    kvm_att a = query_att(&s, qi, i);
    const int nb = nb_q[i], nc = nc_q[i] < 0 ? nb : nc_q[i];
    if (k->pooled && nc < nb) {
      const int *ch = chosen + (size_t)i * cap;
      int r = 0, ci = 0;
      for (int b = 0; b < nb; b++) {
        if (ci < nc && ch[ci] == b) {
          ci++;
          continue;
        }
        kvm_pooled_row(c, ly->blocks[b] + ho, 0, a.kt + (size_t)r * D);
        kvm_pooled_row(c, ly->blocks[b] + ho, 1, a.vt + (size_t)r * D);
        if (++r == T) { kvm_att_fold(&a, r, logf((float)B)); r = 0; }
      }
      if (r) kvm_att_fold(&a, r, logf((float)B));
    }
    if (k->val_rot && nc > 0) {
      kvm_hadamard(a.accr, D);
      for (int d = 0; d < D; d++) a.acc[d] += a.accr[d];
    }
    float *o = out + (size_t)(i / g) * stride + (size_t)(i % g) * D, inv = s.l[i] > 0 ? 1.0f / s.l[i] : 0.0f;
    for (int d = 0; d < D; d++) o[d] = a.acc[d] * inv;
  }
}
