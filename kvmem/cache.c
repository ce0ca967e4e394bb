/*
 * cache.c — the per-request KV cache: appends (sinks, window, block
 * compression), attention (full / compressed top-k + pooled / local window),
 * byte accounting, and the lifetime of caches and prefixes. Layout and
 * policy are described in kvmem.h; the block byte layout in internal.h.
 *
 * Invariants kept here:
 *  - COMPRESSED layer: positions [0,n_sink) in sinks, [n_sink, win_start) in
 *    n_blocks blocks of B, [win_start, n) in the window (n_win rows); the
 *    window spills its oldest B rows into a block when it reaches W+B rows,
 *    so after warm-up it always holds W..W+B-1 exact rows.
 *  - FULL layer: rows [0,base_n) in base_k/base_v (a parent's, read-only),
 *    [win_start=base_n, n) in wk/wv (owned, grown by kv_grow's doubling).
 *  - LOCAL layer: the last n_win (<= cap) positions, row of pos at pos % cap.
 *  - Attention is an online softmax over tiles, so scratch is O(tile), and
 *    the result does not depend on the order the parts are visited in beyond
 *    float rounding.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "kvmem/internal.h"

typedef float kvm_v8 __attribute__((vector_size(32)));

static float dot_f32(const float *a, const float *b, int n) {
  kvm_v8 acc = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int i = 0; i < n; i += 8) {
    kvm_v8 x, y;
    memcpy(&x, a + i, 32);
    memcpy(&y, b + i, 32);
    acc += x * y;
  }
  return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static void axpy_f32(float *y, float a, const float *x, int n) {
  kvm_v8 av = {a, a, a, a, a, a, a, a};
  for (int i = 0; i < n; i += 8) {
    kvm_v8 xv, yv;
    memcpy(&xv, x + i, 32);
    memcpy(&yv, y + i, 32);
    yv += av * xv;
    memcpy(y + i, &yv, 32);
  }
}

void kvm_config_default(kvm_config *c, int n_layers, int n_heads, int n_kv_heads, int head_dim,
                        int max_tokens, kvm_mode mode) {
  memset(c, 0, sizeof *c);
  c->n_layers = n_layers;
  c->n_heads = n_heads;
  c->n_kv_heads = n_kv_heads;
  c->head_dim = head_dim;
  c->max_tokens = max_tokens;
  c->sinks = 4;
  c->window = 64;
  c->block = 64;
  c->top_k = 64;
  c->key_bits = 4;
  c->val_bits = 2;
  c->val_rot = 1;
  c->select = KVM_SELECT_GAUSS;
  c->pooled = 1;
  for (int l = 0; l < KVM_MAX_LAYERS; l++) c->layer_mode[l] = (uint8_t)mode;
}

static int bits_ok(int b) { return b == 2 || b == 4 || b == 8; }

int kvm_config_check(const kvm_config *c, kv_err *err) {
  if (c->n_layers < 1 || c->n_layers > KVM_MAX_LAYERS)
    return kv_err_set(err, KV_EINVAL, "kvm_config: n_layers %d not in [1,%d]", c->n_layers, KVM_MAX_LAYERS);
  if (c->n_kv_heads < 1 || c->n_heads < c->n_kv_heads || c->n_heads % c->n_kv_heads)
    return kv_err_set(err, KV_EINVAL, "kvm_config: n_heads %d is not a multiple of n_kv_heads %d", c->n_heads,
                      c->n_kv_heads);
  if (c->head_dim < 8 || c->head_dim > 1024 || c->head_dim % 8)
    return kv_err_set(err, KV_EINVAL, "kvm_config: head_dim %d must be a multiple of 8 in [8,1024]", c->head_dim);
  if (c->max_tokens < 1 || c->max_tokens > (1 << 24))
    return kv_err_set(err, KV_EINVAL, "kvm_config: max_tokens %d not in [1,2^24]", c->max_tokens);
  if (c->sinks < 0 || c->sinks > 4096) return kv_err_set(err, KV_EINVAL, "kvm_config: sinks %d", c->sinks);
  if (c->window < 1 || c->window > (1 << 20))
    return kv_err_set(err, KV_EINVAL, "kvm_config: window %d", c->window);
  if (c->block < 8 || c->block > 256 || c->block % 8)
    return kv_err_set(err, KV_EINVAL, "kvm_config: block %d must be a multiple of 8 in [8,256]", c->block);
  if (c->top_k < 0) return kv_err_set(err, KV_EINVAL, "kvm_config: top_k %d", c->top_k);
  if (!bits_ok(c->key_bits) || !bits_ok(c->val_bits))
    return kv_err_set(err, KV_EINVAL, "kvm_config: key_bits %d / val_bits %d must be 2, 4 or 8", c->key_bits,
                      c->val_bits);
  for (int l = 0; l < c->n_layers; l++) {
    if (c->layer_mode[l] > KVM_LOCAL)
      return kv_err_set(err, KV_EINVAL, "kvm_config: layer_mode[%d] = %d", l, c->layer_mode[l]);
    if (c->layer_mode[l] == KVM_LOCAL && (c->layer_window[l] < 1 || c->layer_window[l] > c->max_tokens))
      return kv_err_set(err, KV_EINVAL, "kvm_config: layer_window[%d] = %d for a local layer", l,
                        c->layer_window[l]);
  }
  return 0;
}

int kvm_config_equal(const kvm_config *a, const kvm_config *b) {
  if (a->n_layers != b->n_layers || a->n_heads != b->n_heads || a->n_kv_heads != b->n_kv_heads ||
      a->head_dim != b->head_dim || a->sinks != b->sinks || a->window != b->window || a->block != b->block ||
      a->key_bits != b->key_bits || a->val_bits != b->val_bits ||
      a->val_rot != b->val_rot || a->select != b->select)
    return 0;
  for (int l = 0; l < a->n_layers; l++) {
    if (a->layer_mode[l] != b->layer_mode[l]) return 0;
    if (a->layer_mode[l] == KVM_LOCAL && a->layer_window[l] != b->layer_window[l]) return 0;
  }
  return 1;
}

static int max_blocks(const kvm_config *c) { return c->max_tokens / c->block + 1; }
int kvm_max_blocks(const kvm_config *c) { return max_blocks(c); }

/* Scratch floats an attend of g query heads needs (see attend_group for
 * the carve-up). */
static size_t group_floats(const kvm_cache *c, size_t g) {
  const kvm_config *k = &c->cfg;
  size_t T = (size_t)c->tile, D = (size_t)k->head_dim;
  return g * T + 2 * T * D + 2 * g * D + 2 * g + (size_t)max_blocks(k) * 3 + (size_t)k->block * D + 2 * D + 64;
}

/* ... for one layer's attend (the config's whole group). */
static size_t scratch_floats(const kvm_cache *c) {
  return group_floats(c, (size_t)(c->cfg.n_heads / c->cfg.n_kv_heads));
}

size_t kvm_group_scratch_bytes(const kvm_cache *c, int g) { return group_floats(c, g < 1 ? 1 : (size_t)g) * sizeof(float); }

int kvm_layer_reserve(kvm_cache *c, kvm_layer *ly, int rows, kv_err *err) {
  size_t sz = (size_t)rows * (size_t)c->kvd * 2;
  uint16_t *k = realloc(ly->wk, sz ? sz : 2), *v;
  if (!k) return kv_err_set(err, KV_ENOMEM, "kvmem: window of %d rows", rows);
  ly->wk = k;
  v = realloc(ly->wv, sz ? sz : 2);
  if (!v) return kv_err_set(err, KV_ENOMEM, "kvmem: window of %d rows", rows);
  ly->wv = v;
  ly->win_cap = rows;
  return 0;
}

int kvm_cache_alloc_shell(kvm_cache **out, const kvm_config *cfg, kv_err *err) {
  *out = NULL;
  int rc = kvm_config_check(cfg, err);
  if (rc) return rc;
  kvm_cache *c = calloc(1, sizeof *c);
  if (!c) return kv_err_set(err, KV_ENOMEM, "kvmem: cache");
  c->cfg = *cfg;
  kvm_blk_layout_init(&c->L, cfg);
  c->kvd = cfg->n_kv_heads * cfg->head_dim;
  c->tile = cfg->block > 64 ? cfg->block : 64;
  c->has_f16c = kvm_cpu_has_f16c();
  for (int b = 0; b < 256; b++) {
    for (int j = 0; j < 2; j++) c->u4[b][j] = (float)((b >> (4 * j)) & 15);
    for (int j = 0; j < 4; j++) c->u2[b][j] = (float)((b >> (2 * j)) & 3);
  }
  c->layers = calloc((size_t)cfg->n_layers, sizeof *c->layers);
  if (!c->layers) {
    free(c);
    return kv_err_set(err, KV_ENOMEM, "kvmem: layers");
  }
  size_t nsc = scratch_floats(c);
  for (int l = 0; l < cfg->n_layers; l++) {
    kvm_layer *ly = &c->layers[l];
    ly->mode = cfg->layer_mode[l];
    ly->sc = malloc(nsc * sizeof(float));
    ly->chosen = calloc((size_t)cfg->n_kv_heads * (size_t)(cfg->top_k + 1), sizeof(int));
    ly->n_chosen = calloc((size_t)cfg->n_kv_heads, sizeof(int));
    if (!ly->sc || !ly->chosen || !ly->n_chosen) {
      kvm_cache_free(c);
      return kv_err_set(err, KV_ENOMEM, "kvmem: scratch for layer %d", l);
    }
  }
  *out = c;
  return 0;
}

int kvm_cache_open(kvm_cache **out, const kvm_config *cfg, kv_err *err) {
  kvm_cache *c;
  int rc = kvm_cache_alloc_shell(&c, cfg, err);
  if (rc) return rc;
  for (int l = 0; l < cfg->n_layers && !rc; l++) {
    kvm_layer *ly = &c->layers[l];
    if (ly->mode == KVM_COMPRESSED) {
      size_t sz = (size_t)(cfg->sinks ? cfg->sinks : 1) * (size_t)c->kvd * 2;
      ly->sk = malloc(sz);
      ly->sv = malloc(sz);
      ly->cap_blocks = max_blocks(cfg);
      ly->blocks = calloc((size_t)ly->cap_blocks, sizeof *ly->blocks);
      ly->owned_mask = calloc((size_t)ly->cap_blocks, 1);
      if (!ly->sk || !ly->sv || !ly->blocks || !ly->owned_mask)
        rc = kv_err_set(err, KV_ENOMEM, "kvmem: layer %d", l);
      else
        rc = kvm_layer_reserve(c, ly, cfg->window + cfg->block, err);
    } else if (ly->mode == KVM_LOCAL) {
      rc = kvm_layer_reserve(c, ly, cfg->layer_window[l], err);
    } else {
      rc = kvm_layer_reserve(c, ly, cfg->max_tokens < 256 ? cfg->max_tokens : 256, err);
    }
  }
  if (rc) {
    kvm_cache_free(c);
    return rc;
  }
  *out = c;
  return 0;
}

void kvm_cache_free(kvm_cache *c) {
  if (!c) return;
  for (int l = 0; c->layers && l < c->cfg.n_layers; l++) {
    kvm_layer *ly = &c->layers[l];
    if (ly->owned_mask)
      for (int b = 0; b < ly->n_blocks; b++)
        if (ly->owned_mask[b]) free((void *)ly->blocks[b]);
    free(ly->blocks);
    free(ly->owned_mask);
    if (!ly->borrowed) {
      free(ly->sk);
      free(ly->sv);
      free(ly->wk);
      free(ly->wv);
    }
    free(ly->sc);
    free(ly->chosen);
    free(ly->n_chosen);
  }
  free(c->layers);
  if (c->parent) kvm_prefix_unref(c->parent);
  free(c);
}

/* ---- prefix lifetime: here because a cache holds a reference to the
 * prefix it was forked from, so freeing one may free the other ---- */

void kvm_prefix_destroy(kvm_prefix *p) {
  if (!p) return;
  kvm_cache_free(p->cache);
  if (p->map) munmap(p->map, p->map_len);
  free(p->chain);
  free(p->seg_end);
  free(p);
}

void kvm_prefix_ref(kvm_prefix *p) { atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed); }
void kvm_prefix_unref(kvm_prefix *p) {
  if (p && atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1) kvm_prefix_destroy(p);
}
size_t kvm_prefix_len(const kvm_prefix *p) { return (size_t)p->cache->layers[0].n; }
int kvm_prefix_from_disk(const kvm_prefix *p) { return p->map != NULL; }

const kvm_config *kvm_cache_config(const kvm_cache *c) { return &c->cfg; }
int kvm_cache_len(const kvm_cache *c, int layer) {
  if (layer < 0 || layer >= c->cfg.n_layers) return 0;
  return c->layers[layer].n;
}

static void to_f16_row(const kvm_cache *c, const float *x, uint16_t *h, int n) {
  kvm_f32_row_to_f16(x, h, n, c->has_f16c);
}

/* Room for `need` rows in a FULL layer's own wk/wv, by kv_grow's doubling
 * (so the capacity may pass max_tokens, by less than a factor of two). Both
 * arrays grow alike; on failure win_cap keeps the capacity both still have. */
static int grow_rows(kvm_cache *c, kvm_layer *ly, int need, kv_err *err) {
  size_t rowb = (size_t)c->kvd * 2, ck = (size_t)ly->win_cap, cv = ck;
  if (kv_grow((void **)&ly->wk, &ck, (size_t)need, rowb) || kv_grow((void **)&ly->wv, &cv, (size_t)need, rowb))
    return kv_err_set(err, KV_ENOMEM, "kvmem: window of %d rows", need);
  ly->win_cap = (int)(ck < cv ? ck : cv);
  return 0;
}

/* Quantize the window's oldest B rows into a new block (one malloc). */
static int spill_block(kvm_cache *c, kvm_layer *ly, int layer, kv_err *err) {
  const kvm_config *k = &c->cfg;
  const kvm_blk_layout *L = &c->L;
  int B = k->block, D = k->head_dim;
  if (ly->n_blocks >= ly->cap_blocks) return kv_err_set(err, KV_ELIMIT, "kvmem: layer %d: block table full", layer);
  uint8_t *blk = calloc(1, L->block_bytes);
  if (!blk) return kv_err_set(err, KV_ENOMEM, "kvmem: block of %zu bytes", L->block_bytes);
  float *K = ly->sc, *V = ly->sc + (size_t)B * D;
  for (int h = 0; h < k->n_kv_heads; h++) {
    uint8_t *hb = blk + (size_t)h * L->head_bytes;
    for (int t = 0; t < B; t++) {
      kvm_f16_row_to_f32(ly->wk + (size_t)t * c->kvd + (size_t)h * D, K + (size_t)t * D, D, c->has_f16c);
      kvm_f16_row_to_f32(ly->wv + (size_t)t * c->kvd + (size_t)h * D, V + (size_t)t * D, D, c->has_f16c);
    }
    uint16_t *kmin = (uint16_t *)(void *)(hb + L->kmin), *kmax = (uint16_t *)(void *)(hb + L->kmax);
    uint16_t *vlo = (uint16_t *)(void *)(hb + L->vlo), *vhi = (uint16_t *)(void *)(hb + L->vhi);
    for (int ch = 0; ch < D; ch++)
      kvm_quant_group(K + ch, B, D, k->key_bits, &kmin[ch], &kmax[ch], hb + L->kcodes + (size_t)ch * L->krow);
    float *vr = ly->sc + (size_t)2 * B * D; /* one rotated row */
    for (int t = 0; t < B; t++) {
      uint8_t *codes = hb + L->vcodes + (size_t)t * L->vrow;
      if (k->val_rot) {
        memcpy(vr, V + (size_t)t * D, (size_t)D * sizeof(float));
        kvm_hadamard(vr, D);
        kvm_quant_group_mse(vr, D, k->val_bits, &vlo[t], &vhi[t], codes);
      } else {
        kvm_quant_group(V + (size_t)t * D, D, 1, k->val_bits, &vlo[t], &vhi[t], codes);
      }
    }
    /* pooled means, 4 bits each: keys inside the block's channel range
     * (where every key, so their mean, lies), values symmetric */
    float *mean = ly->sc + (size_t)2 * B * D, amax = 0;
    uint8_t *kq4 = hb + L->kmean, *vq4 = hb + L->vmean;
    for (int ch = 0; ch < D; ch++) {
      double s = 0;
      for (int t = 0; t < B; t++) s += K[(size_t)t * D + ch];
      float lo = kvm_f16_to_f32(kmin[ch]), hi = kvm_f16_to_f32(kmax[ch]), m = (float)(s / B);
      int q = hi > lo ? (int)rintf((m - lo) / (hi - lo) * 15.0f) : 0;
      q = q < 0 ? 0 : q > 15 ? 15 : q;
      kq4[ch >> 1] |= (uint8_t)(q << ((ch & 1) * 4));
    }
    for (int ch = 0; ch < D; ch++) {
      double s = 0;
      for (int t = 0; t < B; t++) s += V[(size_t)t * D + ch];
      mean[ch] = (float)(s / B);
      if (fabsf(mean[ch]) > amax) amax = fabsf(mean[ch]);
    }
    uint16_t s16 = kvm_f32_to_f16(amax / 7.0f);
    float sf = kvm_f16_to_f32(s16);
    for (int ch = 0; ch < D; ch++) {
      int q = sf > 0 ? (int)rintf(mean[ch] / sf) : 0;
      q = q > 7 ? 7 : q < -7 ? -7 : q;
      vq4[ch >> 1] |= (uint8_t)((q + 8) << ((ch & 1) * 4));
    }
    memcpy(hb + L->vmean_s, &s16, 2);
  }
  ly->blocks[ly->n_blocks] = blk;
  ly->owned_mask[ly->n_blocks] = 1;
  ly->n_blocks++;
  size_t rowb = (size_t)c->kvd * 2;
  memmove(ly->wk, ly->wk + (size_t)B * c->kvd, (size_t)(ly->n_win - B) * rowb);
  memmove(ly->wv, ly->wv + (size_t)B * c->kvd, (size_t)(ly->n_win - B) * rowb);
  ly->n_win -= B;
  ly->win_start += B;
  return 0;
}

int kvm_cache_append(kvm_cache *c, int layer, const float *k, const float *v, kv_err *err) {
  if (layer < 0 || layer >= c->cfg.n_layers) return kv_err_set(err, KV_EINVAL, "kvmem: layer %d", layer);
  kvm_layer *ly = &c->layers[layer];
  if (ly->n >= c->cfg.max_tokens)
    return kv_err_set(err, KV_ELIMIT, "kvmem: layer %d is full (%d tokens)", layer, c->cfg.max_tokens);
  size_t kvd = (size_t)c->kvd;
  if (ly->mode == KVM_FULL) {
    int row = ly->n - ly->win_start;
    if (row >= ly->win_cap) {
      int rc = grow_rows(c, ly, row + 1, err);
      if (rc) return rc;
    }
    to_f16_row(c, k, ly->wk + (size_t)row * kvd, (int)kvd);
    to_f16_row(c, v, ly->wv + (size_t)row * kvd, (int)kvd);
    ly->n_win = row + 1;
  } else if (ly->mode == KVM_LOCAL) {
    size_t slot = (size_t)(ly->n % ly->win_cap);
    to_f16_row(c, k, ly->wk + slot * kvd, (int)kvd);
    to_f16_row(c, v, ly->wv + slot * kvd, (int)kvd);
    if (ly->n_win < ly->win_cap) ly->n_win++;
  } else if (ly->n_sink < c->cfg.sinks) {
    to_f16_row(c, k, ly->sk + (size_t)ly->n_sink * kvd, (int)kvd);
    to_f16_row(c, v, ly->sv + (size_t)ly->n_sink * kvd, (int)kvd);
    ly->n_sink++;
    ly->win_start = ly->n_sink;
  } else {
    to_f16_row(c, k, ly->wk + (size_t)ly->n_win * kvd, (int)kvd);
    to_f16_row(c, v, ly->wv + (size_t)ly->n_win * kvd, (int)kvd);
    ly->n_win++;
    if (ly->n_win >= c->cfg.window + c->cfg.block) {
      int rc = spill_block(c, ly, layer, err);
      if (rc) {
        ly->n_win--;
        return rc;
      }
    }
  }
  ly->n++;
  return 0;
}

/* ---- attention ---- */

/* Fold n rows of kt/vt (logit bias added) into every head's state. */
void kvm_att_fold(kvm_att *a, int n, float bias) {
  if (a->vx) {
    a->vx->fold_f32(a, n, bias);
    return;
  }
  int D = a->D;
  for (int j = 0; j < a->g; j++) {
    const float *q = a->q + (size_t)j * D;
    float mx = -INFINITY;
    for (int r = 0; r < n; r++) {
      float s = a->scale * dot_f32(q, a->kt + (size_t)r * D, D) + bias;
      a->logit[r] = s;
      if (s > mx) mx = s;
    }
    float *acc = a->acc + (size_t)j * D, *accr = a->accr + (size_t)j * D;
    if (mx > a->m[j]) {
      float f = a->m[j] == -INFINITY ? 0.0f : expf(a->m[j] - mx);
      for (int d = 0; d < D; d++) acc[d] *= f, accr[d] *= f;
      a->l[j] *= f;
      a->m[j] = mx;
    }
    for (int r = 0; r < n; r++) {
      float p = expf(a->logit[r] - a->m[j]);
      a->l[j] += p;
      axpy_f32(acc, p, a->vt + (size_t)r * D, D);
    }
  }
}

/* Fold f16 rows (row i at rows + i*stride, head slice at +hoff). */
void kvm_att_rows_f16(kvm_att *a, const uint16_t *kr, const uint16_t *vr, size_t stride, int n, int f16c) {
  if (a->vx) {
    a->vx->rows_f16(a, kr, vr, stride, n);
    return;
  }
  for (int r0 = 0; r0 < n; r0 += a->T) {
    int m = n - r0 < a->T ? n - r0 : a->T;
    for (int r = 0; r < m; r++) {
      kvm_f16_row_to_f32(kr + (size_t)(r0 + r) * stride, a->kt + (size_t)r * a->D, a->D, f16c);
      kvm_f16_row_to_f32(vr + (size_t)(r0 + r) * stride, a->vt + (size_t)r * a->D, a->D, f16c);
    }
    kvm_att_fold(a, m, 0.0f);
  }
}

/* Unpack n codes (n % 8 == 0) to floats through the cache's tables. */
static void codes_to_f32(const kvm_cache *c, const uint8_t *codes, int n, int bits, float *out) {
  if (bits == 8) {
    for (int i = 0; i < n; i++) out[i] = (float)codes[i];
  } else if (bits == 4) {
    for (int i = 0; i < n / 2; i++) memcpy(out + 2 * i, c->u4[codes[i]], 8);
  } else {
    for (int i = 0; i < n / 4; i++) memcpy(out + 4 * i, c->u2[codes[i]], 16);
  }
}

/* Fold one compressed block (head slice hb) into the state of the g heads
 * without materializing K: logit_t = sum_c q_c*lo_c + sum_c (q_c*s_c)*code_ct
 * over channel-major key codes, and acc += sum_t p_t*lo_t + sum_t (p_t*s_t)*code_t
 * over token-major value codes. */
void kvm_fold_block(const kvm_cache *c, kvm_att *a, const uint8_t *hb) {
  if (a->vx) {
    a->vx->fold_block(c, a, hb);
    return;
  }
  const kvm_blk_layout *L = &c->L;
  int B = c->cfg.block, D = a->D, g = a->g, kb = c->cfg.key_bits, vb = c->cfg.val_bits;
  float kq = (float)((1 << kb) - 1), vq = (float)((1 << vb) - 1), *row = a->kt, *lg = a->logit;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + L->kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + L->kmax);
  const uint16_t *vlo = (const uint16_t *)(const void *)(hb + L->vlo);
  const uint16_t *vhi = (const uint16_t *)(const void *)(hb + L->vhi);
  float *lo = a->vt, *hi = a->vt + D; /* scratch: ranges as f32 */
  kvm_f16_row_to_f32(kmin, lo, D, c->has_f16c);
  kvm_f16_row_to_f32(kmax, hi, D, c->has_f16c);
  for (int j = 0; j < g; j++) {
    const float *q = a->q + (size_t)j * D;
    float base = 0;
    for (int ch = 0; ch < D; ch++) base += q[ch] * lo[ch];
    for (int t = 0; t < B; t++) lg[(size_t)j * B + t] = base;
  }
  for (int ch = 0; ch < D; ch++) {
    codes_to_f32(c, hb + L->kcodes + (size_t)ch * L->krow, B, kb, row);
    float s = (hi[ch] - lo[ch]) / kq;
    for (int j = 0; j < g; j++) axpy_f32(lg + (size_t)j * B, a->q[(size_t)j * D + ch] * s, row, B);
  }
  float *vl = a->vt + 2 * D, *vh = a->vt + 2 * D + B, *losum = a->vt + 2 * D + 2 * B;
  kvm_f16_row_to_f32(vlo, vl, B, c->has_f16c);
  kvm_f16_row_to_f32(vhi, vh, B, c->has_f16c);
  for (int j = 0; j < g; j++) {
    float *l = lg + (size_t)j * B, mx = -INFINITY;
    for (int t = 0; t < B; t++) {
      l[t] *= a->scale;
      if (l[t] > mx) mx = l[t];
    }
    float *acc = a->acc + (size_t)j * D, *accr = a->accr + (size_t)j * D;
    if (mx > a->m[j]) {
      float f = a->m[j] == -INFINITY ? 0.0f : expf(a->m[j] - mx);
      for (int d = 0; d < D; d++) acc[d] *= f, accr[d] *= f;
      a->l[j] *= f;
      a->m[j] = mx;
    }
    losum[j] = 0;
    for (int t = 0; t < B; t++) {
      l[t] = expf(l[t] - a->m[j]);
      a->l[j] += l[t];
      losum[j] += l[t] * vl[t];
    }
  }
  /* rotated values are summed in the rotated basis (accr), turned back
   * once per attend in attend_group */
  float *dst = c->cfg.val_rot ? a->accr : a->acc;
  for (int t = 0; t < B; t++) {
    codes_to_f32(c, hb + L->vcodes + (size_t)t * L->vrow, D, vb, row);
    float s = (vh[t] - vl[t]) / vq;
    for (int j = 0; j < g; j++) axpy_f32(dst + (size_t)j * D, lg[(size_t)j * B + t] * s, row, D);
  }
  for (int j = 0; j < g; j++)
    for (int d = 0; d < D; d++) dst[(size_t)j * D + d] += losum[j];
}

/* The pooled row of a block (which 0: its mean key, 1: its mean value). */
void kvm_pooled_row(const kvm_cache *c, const uint8_t *hb, int which, float *o) {
  const kvm_blk_layout *L = &c->L;
  const int D = c->cfg.head_dim;
  const uint8_t *q4 = hb + (which ? L->vmean : L->kmean);
  if (which) {
    uint16_t s16;
    memcpy(&s16, hb + L->vmean_s, 2);
    float s = kvm_f16_to_f32(s16);
    for (int d = 0; d < D; d++) o[d] = s * (float)(((q4[d >> 1] >> ((d & 1) * 4)) & 15) - 8);
    return;
  }
  float hi[64];
  kvm_f16_row_to_f32((const uint16_t *)(const void *)(hb + L->kmin), o, D, c->has_f16c);
  for (int d0 = 0; d0 < D; d0 += 64) {
    int n = D - d0 < 64 ? D - d0 : 64;
    kvm_f16_row_to_f32((const uint16_t *)(const void *)(hb + L->kmax) + d0, hi, n, c->has_f16c);
    for (int d = d0; d < d0 + n; d++)
      o[d] += (hi[d - d0] - o[d]) * ((float)((q4[d >> 1] >> ((d & 1) * 4)) & 15) * (1.0f / 15.0f));
  }
}

/* The block's score for the g heads (the largest over them). BOUND: an upper
 * bound on scale-free q·k over the block's keys, sum_c max(q_c*lo_c, q_c*hi_c)
 * = q·centre + sum_c |q_c|*hw_c (hw: half the channel's range). GAUSS: an
 * estimate of the largest q·k instead, q·centre + sqrt(sum_c (q_c*hw_c)^2):
 * the spread of q·k over the block's keys if channels vary independently
 * with a range about 2.5 sigma either side of the centre (the range of 64
 * samples), times the ~2.4 sigma a maximum of 64 reaches. The L1 spread of
 * the bound grows with sqrt(D) over the L2 one and, at D = 256, ranks
 * blocks by how wide they are rather than by how well they match. */
float kvm_block_bound(const kvm_cache *c, const uint8_t *hb, const float *q, int g, float *lohi) {
  int D = c->cfg.head_dim;
  const uint16_t *kmin = (const uint16_t *)(const void *)(hb + c->L.kmin);
  const uint16_t *kmax = (const uint16_t *)(const void *)(hb + c->L.kmax);
  kvm_f16_row_to_f32(kmin, lohi, D, c->has_f16c);
  kvm_f16_row_to_f32(kmax, lohi + D, D, c->has_f16c);
  float best = -INFINITY;
  for (int j = 0; j < g; j++) {
    const float *qj = q + (size_t)j * D;
    float s = 0;
    if (c->cfg.select == KVM_SELECT_GAUSS) {
      float v = 0;
      for (int d = 0; d < D; d++) {
        float ctr = 0.5f * (lohi[d] + lohi[D + d]), hw = 0.5f * (lohi[D + d] - lohi[d]) * qj[d];
        s += qj[d] * ctr;
        v += hw * hw;
      }
      s += sqrtf(v);
    } else {
      for (int d = 0; d < D; d++) {
        float a = qj[d] * lohi[d], b = qj[d] * lohi[D + d];
        s += a > b ? a : b;
      }
    }
    if (s > best) best = s;
  }
  return best;
}

/* Indexes of the top k scores (ties: lower index), ascending order. */
int kvm_top_k_select(const float *score, int n, int k, int *out) {
  if (k > n) k = n;
  int m = 0;
  for (int i = 0; i < n; i++) {
    if (m < k) {
      int p = m++;
      while (p > 0 && score[out[p - 1]] < score[i]) { out[p] = out[p - 1]; p--; }
      out[p] = i;
    } else if (score[i] > score[out[k - 1]]) {
      int p = k - 1;
      while (p > 0 && score[out[p - 1]] < score[i]) { out[p] = out[p - 1]; p--; }
      out[p] = i;
    }
  }
  for (int i = 1; i < m; i++) { /* ascending by block index */
    int v = out[i], p = i;
    while (p > 0 && out[p - 1] > v) { out[p] = out[p - 1]; p--; }
    out[p] = v;
  }
  return m;
}

size_t kvm_attend_scratch_bytes(const kvm_cache *c) { return scratch_floats(c) * sizeof(float); }

/* Attention of gq query heads (q [gq][D], all reading KV head h) over the
 * positions of `layer` that are <= pos (and > pos-window when window > 0);
 * out [gq][D]. sc: kvm_attend_scratch_bytes of scratch. record: write the
 * chosen blocks and stats into the layer (single-threaded callers only). */
static void attend_group(kvm_cache *c, int layer, int h, const float *q, int gq, int pos, int window, float scale,
                         float *out, float *sc, int record) {
  const kvm_config *k = &c->cfg;
  kvm_layer *ly = &c->layers[layer];
  int D = k->head_dim, T = c->tile, B = k->block, lo = window > 0 ? pos - window + 1 : 0, end = pos + 1;
  if (end > ly->n) end = ly->n;
  if (lo < 0) lo = 0;
  size_t kvd = (size_t)c->kvd, hoff = (size_t)h * D;
  kvm_att a = {.g = gq, .D = D, .T = T, .scale = scale, .q = q, .vx = kvm_simd_for(k)};
  a.logit = sc; sc += (size_t)gq * T;
  a.kt = sc; sc += (size_t)T * D;
  a.vt = sc; sc += (size_t)T * D;
  a.acc = sc; sc += (size_t)gq * D;
  a.accr = sc; sc += (size_t)gq * D;
  a.m = sc; sc += gq;
  a.l = sc; sc += gq;
  float *bscore = sc; sc += max_blocks(k);
  int *ch = (int *)sc; sc += max_blocks(k); /* chosen block indexes */
  uint8_t *mark = (uint8_t *)sc; sc += max_blocks(k) / 4 + 1;
  float *lohi = sc;
  memset(a.acc, 0, (size_t)gq * D * sizeof(float));
  memset(a.accr, 0, (size_t)gq * D * sizeof(float));
  for (int j = 0; j < gq; j++) { a.m[j] = -INFINITY; a.l[j] = 0; }
  int exact = 0, nc = 0, nb = 0;
  if (ly->mode == KVM_FULL) {
    int b_end = end < ly->base_n ? end : ly->base_n;
    if (lo < b_end)
      kvm_att_rows_f16(&a, ly->base_k + (size_t)lo * kvd + hoff, ly->base_v + (size_t)lo * kvd + hoff, kvd, b_end - lo,
                   c->has_f16c);
    int o0 = lo > ly->win_start ? lo : ly->win_start;
    if (o0 < end)
      kvm_att_rows_f16(&a, ly->wk + (size_t)(o0 - ly->win_start) * kvd + hoff,
                   ly->wv + (size_t)(o0 - ly->win_start) * kvd + hoff, kvd, end - o0, c->has_f16c);
    exact = end - lo;
  } else if (ly->mode == KVM_LOCAL) {
    int cap = ly->win_cap, first = ly->n - ly->n_win;
    if (first < lo) first = lo;
    for (int p0 = first; p0 < end;) { /* at most two contiguous runs of the ring */
      int s0 = p0 % cap, run = cap - s0 < end - p0 ? cap - s0 : end - p0;
      kvm_att_rows_f16(&a, ly->wk + (size_t)s0 * kvd + hoff, ly->wv + (size_t)s0 * kvd + hoff, kvd, run, c->has_f16c);
      p0 += run;
    }
    exact = end > first ? end - first : 0;
  } else {
    /* sinks and window rows inside [lo, end) */
    int ns = end < ly->n_sink ? end : ly->n_sink, s0 = lo < ns ? lo : ns;
    kvm_att_rows_f16(&a, ly->sk + (size_t)s0 * kvd + hoff, ly->sv + (size_t)s0 * kvd + hoff, kvd, ns - s0, c->has_f16c);
    int w0 = lo > ly->win_start ? lo : ly->win_start, nw = end - w0;
    if (nw > 0)
      kvm_att_rows_f16(&a, ly->wk + (size_t)(w0 - ly->win_start) * kvd + hoff,
                   ly->wv + (size_t)(w0 - ly->win_start) * kvd + hoff, kvd, nw, c->has_f16c);
    else nw = 0;
    ns -= s0;
    /* blocks [b0, nb): those that start at or before pos (all of them unless
     * a batch longer than the window was appended before attending) and end
     * after lo (a sliding window cuts whole blocks only) */
    nb = ly->n_blocks;
    while (nb > 0 && ly->n_sink + (nb - 1) * B > pos) nb--;
    int b0 = lo > ly->n_sink ? (lo - ly->n_sink) / B : 0;
    if (b0 > nb) b0 = nb;
    const uint8_t **blocks = ly->blocks + b0;
    nb -= b0;
    if (nb > 0) {
      size_t ho = (size_t)h * c->L.head_bytes;
      if (k->top_k >= nb) {
        for (int b = 0; b < nb; b++) ch[b] = b;
        nc = nb;
      } else if (k->top_k > 0) {
        for (int b = 0; b < nb; b++)
          bscore[b] = a.vx ? a.vx->block_score(c, blocks[b] + ho, q, gq) : kvm_block_bound(c, blocks[b] + ho, q, gq, lohi);
        nc = kvm_top_k_select(bscore, nb, k->top_k, ch);
      }
      memset(mark, 0, (size_t)nb);
      for (int i = 0; i < nc; i++) {
        mark[ch[i]] = 1;
        kvm_fold_block(c, &a, blocks[ch[i]] + ho);
      }
      if (k->pooled && nc < nb) {
        int r = 0;
        for (int b = 0; b < nb; b++) {
          if (mark[b]) continue;
          kvm_pooled_row(c, blocks[b] + ho, 0, a.kt + (size_t)r * D);
          kvm_pooled_row(c, blocks[b] + ho, 1, a.vt + (size_t)r * D);
          if (++r == T) { kvm_att_fold(&a, r, logf((float)B)); r = 0; }
        }
        if (r) kvm_att_fold(&a, r, logf((float)B));
      }
    }
    exact = ns + nw + nc * B;
  }
  if (record) {
    int *rec = ly->chosen + (size_t)h * (k->top_k + 1), m = nc < k->top_k ? nc : k->top_k;
    memcpy(rec, ch, (size_t)m * sizeof(int));
    ly->n_chosen[h] = m;
    if (h == 0) {
      ly->st.blocks = nb;
      ly->st.chosen = nc;
      ly->st.exact_tokens = exact;
    }
  }
  if (k->val_rot && nc > 0) /* H is linear: one inverse rotation for every block read */
    for (int j = 0; j < gq; j++) {
      float *r = a.accr + (size_t)j * D;
      kvm_hadamard(r, D);
      for (int d = 0; d < D; d++) a.acc[(size_t)j * D + d] += r[d];
    }
  for (int j = 0; j < gq; j++) {
    float *o = out + (size_t)j * D, inv = a.l[j] > 0 ? 1.0f / a.l[j] : 0.0f;
    for (int d = 0; d < D; d++) o[d] = a.acc[(size_t)j * D + d] * inv;
  }
}

void kvm_cache_attend(kvm_cache *c, int layer, const float *q, float scale, float *out) {
  const kvm_config *k = &c->cfg;
  int g = k->n_heads / k->n_kv_heads;
  size_t gd = (size_t)g * k->head_dim;
  for (int h = 0; h < k->n_kv_heads; h++)
    attend_group(c, layer, h, q + h * gd, g, c->layers[layer].n - 1, 0, scale, out + h * gd, c->layers[layer].sc, 1);
}

void kvm_cache_attend_head(kvm_cache *c, int layer, int kv_head, const float *q, int pos, int window, float scale,
                           float *out, void *scratch) {
  attend_group(c, layer, kv_head, q, 1, pos, window, scale, out, scratch, 0);
}

void kvm_attend_heads(kvm_cache *c, int layer, int kv_head, const float *q, int g, int pos, int window, float scale,
                      float *out, void *scratch) {
  attend_group(c, layer, kv_head, q, g, pos, window, scale, out, scratch, 0);
}

int kvm_cache_step_batch(kvm_cache *c, int layer, int n, const float *q, const float *k, const float *v,
                         float scale, float *out, kv_err *err) {
  size_t qd = (size_t)c->cfg.n_heads * c->cfg.head_dim, kvd = (size_t)c->kvd;
  for (int i = 0; i < n; i++) {
    int rc = kvm_cache_append(c, layer, k + i * kvd, v + i * kvd, err);
    if (rc) return rc;
    kvm_cache_attend(c, layer, q + i * qd, scale, out + i * qd);
  }
  return 0;
}

/* ---- accounting ---- */

static size_t layer_bytes(const kvm_cache *c, const kvm_layer *ly, int owned_only) {
  size_t row = (size_t)c->kvd * 4; /* K + V, f16 */
  if (ly->mode == KVM_FULL) return row * (size_t)(owned_only ? ly->n - ly->base_n : ly->n);
  if (ly->mode == KVM_LOCAL) return row * (size_t)ly->n_win;
  size_t b = row * (size_t)(ly->n_sink + ly->n_win);
  for (int i = 0; i < ly->n_blocks; i++)
    if (!owned_only || ly->owned_mask[i]) b += c->L.block_bytes;
  return b;
}

size_t kvm_cache_bytes(const kvm_cache *c) {
  size_t b = 0;
  for (int l = 0; l < c->cfg.n_layers; l++) b += layer_bytes(c, &c->layers[l], 0);
  return b;
}

size_t kvm_cache_owned_bytes(const kvm_cache *c) {
  size_t b = 0;
  for (int l = 0; l < c->cfg.n_layers; l++) b += layer_bytes(c, &c->layers[l], 1);
  return b;
}

int kvm_cold_blocks(const kvm_config *k, int n) {
  int S = k->sinks, W = k->window, B = k->block;
  return n - S >= W + B ? (n - S - W) / B : 0;
}

size_t kvm_config_bytes(const kvm_config *cfg, int n) {
  kvm_blk_layout L;
  kvm_blk_layout_init(&L, cfg);
  size_t row = (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim * 4, b = 0; /* K + V, f16 */
  for (int l = 0; l < cfg->n_layers; l++) {
    if (cfg->layer_mode[l] == KVM_FULL) {
      b += row * (size_t)n;
    } else if (cfg->layer_mode[l] == KVM_LOCAL) {
      b += row * (size_t)(n < cfg->layer_window[l] ? n : cfg->layer_window[l]);
    } else {
      int nb = kvm_cold_blocks(cfg, n);
      b += row * (size_t)(n - nb * cfg->block) + (size_t)nb * L.block_bytes;
    }
  }
  return b;
}

size_t kvm_config_peak_bytes(const kvm_config *cfg, int n) {
  /* FULL and LOCAL layers only grow; compressed ones peak just before each
   * spill, and those peaks grow, so the last one before n (if any) or n */
  size_t b = kvm_config_bytes(cfg, n);
  int nb = kvm_cold_blocks(cfg, n);
  if (nb > 0) {
    size_t p = kvm_config_bytes(cfg, cfg->sinks + cfg->window + nb * cfg->block - 1);
    if (p > b) b = p;
  }
  return b;
}

size_t kvm_f16_bytes(const kvm_config *cfg, int len) {
  return (size_t)cfg->n_layers * (size_t)len * (size_t)cfg->n_kv_heads * (size_t)cfg->head_dim * 4;
}

void kvm_cache_last_stats(const kvm_cache *c, int layer, kvm_attend_stats *st) {
  memset(st, 0, sizeof *st);
  if (layer >= 0 && layer < c->cfg.n_layers) *st = c->layers[layer].st;
}

int kvm_cache_last_chosen(const kvm_cache *c, int layer, int kv_head, const int **idx) {
  const kvm_layer *ly = &c->layers[layer];
  *idx = ly->chosen + (size_t)kv_head * (c->cfg.top_k + 1);
  return ly->n_chosen[kv_head];
}
