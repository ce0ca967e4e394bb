/*
 * ops.c — operations that cut or copy a KV cache at a position:
 * truncation (the engine re-using a common prompt prefix), copying a prefix
 * into another cache, and forking from a frozen prefix (sharing its blocks).
 *
 * Invariant: after any of these, a compressed layer has exactly the
 * structure a cold run over the same positions would have (sinks, then
 * floor((n-S-W)/B) blocks, then a window of W..W+B-1 rows), except that
 * window rows which had already been compressed come back dequantized
 * (rounded to f16) rather than exact: the one approximation of cutting
 * inside compressed history. FULL layers are exact.
 */
#include <stdlib.h>
#include <string.h>

#include "kvmem/internal.h"

void kvm_layer_row(const kvm_cache *c, const kvm_layer *ly, int pos, uint16_t *dk, uint16_t *dv, float *tmp,
                   uint8_t *codes) {
  size_t kvd = (size_t)c->kvd;
  if (ly->mode == KVM_FULL) {
    const uint16_t *k = pos < ly->base_n ? ly->base_k + (size_t)pos * kvd : ly->wk + (size_t)(pos - ly->win_start) * kvd;
    const uint16_t *v = pos < ly->base_n ? ly->base_v + (size_t)pos * kvd : ly->wv + (size_t)(pos - ly->win_start) * kvd;
    memcpy(dk, k, kvd * 2);
    memcpy(dv, v, kvd * 2);
    return;
  }
  if (ly->mode == KVM_LOCAL) {
    memcpy(dk, ly->wk + (size_t)(pos % ly->win_cap) * kvd, kvd * 2);
    memcpy(dv, ly->wv + (size_t)(pos % ly->win_cap) * kvd, kvd * 2);
    return;
  }
  if (pos < ly->n_sink) {
    memcpy(dk, ly->sk + (size_t)pos * kvd, kvd * 2);
    memcpy(dv, ly->sv + (size_t)pos * kvd, kvd * 2);
    return;
  }
  if (pos >= ly->win_start) {
    memcpy(dk, ly->wk + (size_t)(pos - ly->win_start) * kvd, kvd * 2);
    memcpy(dv, ly->wv + (size_t)(pos - ly->win_start) * kvd, kvd * 2);
    return;
  }
  const kvm_blk_layout *L = &c->L;
  int B = c->cfg.block, D = c->cfg.head_dim, b = (pos - ly->n_sink) / B, t = (pos - ly->n_sink) % B;
  int kq = (1 << c->cfg.key_bits) - 1;
  for (int h = 0; h < c->cfg.n_kv_heads; h++) {
    const uint8_t *hb = ly->blocks[b] + (size_t)h * L->head_bytes;
    for (int ch = 0; ch < D; ch++) {
      uint16_t lo, hi;
      memcpy(&lo, hb + L->kmin + 2 * (size_t)ch, 2);
      memcpy(&hi, hb + L->kmax + 2 * (size_t)ch, 2);
      kvm_unpack_codes(hb + L->kcodes + (size_t)ch * L->krow, B, c->cfg.key_bits, codes);
      float lf = kvm_f16_to_f32(lo), s = (kvm_f16_to_f32(hi) - lf) / (float)kq;
      dk[(size_t)h * D + ch] = kvm_f32_to_f16(lf + s * (float)codes[t]);
    }
    uint16_t lo, hi;
    memcpy(&lo, hb + L->vlo + 2 * (size_t)t, 2);
    memcpy(&hi, hb + L->vhi + 2 * (size_t)t, 2);
    kvm_dequant_group(hb + L->vcodes + (size_t)t * L->vrow, D, c->cfg.val_bits, lo, hi, tmp);
    if (c->cfg.val_rot) kvm_hadamard(tmp, D);
    for (int d = 0; d < D; d++) dv[(size_t)h * D + d] = kvm_f32_to_f16(tmp[d]);
  }
}

static void drop_blocks(kvm_layer *ly, int keep) {
  for (int b = keep; b < ly->n_blocks; b++) {
    if (ly->owned_mask[b]) free((void *)ly->blocks[b]);
    ly->blocks[b] = NULL;
    ly->owned_mask[b] = 0;
  }
  if (ly->n_blocks > keep) ly->n_blocks = keep;
}

int kvm_cache_truncate(kvm_cache *c, int n, kv_err *err) {
  if (n < 0) n = 0;
  const kvm_config *k = &c->cfg;
  for (int l = 0; l < k->n_layers; l++) {
    kvm_layer *ly = &c->layers[l];
    if (n >= ly->n) continue;
    if (ly->mode == KVM_FULL) {
      if (n <= ly->base_n) {
        ly->base_n = n;
        ly->win_start = n;
        ly->n_win = 0;
      } else {
        ly->n_win = n - ly->win_start;
      }
    } else if (ly->mode == KVM_LOCAL) {
      int drop = ly->n - n;
      ly->n_win = ly->n_win > drop ? ly->n_win - drop : 0;
    } else if (n >= ly->win_start) {
      ly->n_win = n - ly->win_start;
    } else {
      int nsk = n < k->sinks ? n : k->sinks, nb = kvm_cold_blocks(k, n);
      if (nb > ly->n_blocks) nb = ly->n_blocks;
      int ws = nsk + nb * k->block;
      float *tmp = ly->sc;
      uint8_t *codes = (uint8_t *)(ly->sc + k->head_dim);
      for (int p = ws; p < n; p++) /* all inside blocks >= nb: n < old win_start */
        kvm_layer_row(c, ly, p, ly->wk + (size_t)(p - ws) * c->kvd, ly->wv + (size_t)(p - ws) * c->kvd, tmp, codes);
      drop_blocks(ly, nb);
      ly->n_sink = nsk;
      ly->win_start = ws;
      ly->n_win = n - ws;
    }
    ly->n = n;
  }
  (void)err;
  return 0;
}

/* dst layer := src layer's first n positions. share: point at src's blocks
 * and (flat) FULL rows instead of copying (the caller keeps src alive). */
int kvm_layer_take_prefix(kvm_cache *dst, int l, const kvm_cache *src, int n, int share, kv_err *err) {
  const kvm_config *k = &src->cfg;
  const kvm_layer *pl = &src->layers[l];
  kvm_layer *ly = &dst->layers[l];
  size_t kvd = (size_t)dst->kvd, rowb = kvd * 2;
  if (n > pl->n) return kv_err_set(err, KV_EINVAL, "kvmem: prefix of %d positions, layer %d holds %d", n, l, pl->n);
  float *tmp = ly->sc;
  uint8_t *codes = (uint8_t *)(ly->sc + k->head_dim);
  if (ly->mode == KVM_FULL) {
    ly->base_n = 0;
    ly->base_k = ly->base_v = NULL;
    if (share && pl->base_n == 0 && pl->win_start == 0) {
      ly->base_k = pl->wk;
      ly->base_v = pl->wv;
      ly->base_n = n;
      ly->win_start = n;
      ly->n_win = 0;
    } else {
      if (n > ly->win_cap) {
        int rc = kvm_layer_reserve(dst, ly, n, err);
        if (rc) return rc;
      }
      for (int p = 0; p < n; p++) kvm_layer_row(src, pl, p, ly->wk + (size_t)p * kvd, ly->wv + (size_t)p * kvd, tmp, codes);
      ly->win_start = 0;
      ly->n_win = n;
    }
  } else if (ly->mode == KVM_LOCAL) {
    int from = n - ly->win_cap, have = pl->n - pl->n_win;
    if (from < have) from = have;
    if (from < 0) from = 0;
    for (int p = from; p < n; p++) {
      size_t slot = (size_t)(p % ly->win_cap);
      memcpy(ly->wk + slot * kvd, pl->wk + slot * kvd, rowb);
      memcpy(ly->wv + slot * kvd, pl->wv + slot * kvd, rowb);
    }
    ly->n_win = n > from ? n - from : 0;
  } else {
    int nsk = n < k->sinks ? n : k->sinks, nb = kvm_cold_blocks(k, n);
    if (nb > pl->n_blocks) nb = pl->n_blocks;
    drop_blocks(ly, 0);
    memcpy(ly->sk, pl->sk, (size_t)nsk * rowb);
    memcpy(ly->sv, pl->sv, (size_t)nsk * rowb);
    for (int b = 0; b < nb; b++) {
      if (share) {
        ly->blocks[b] = pl->blocks[b];
        ly->owned_mask[b] = 0;
      } else {
        uint8_t *cp = malloc(dst->L.block_bytes);
        if (!cp) {
          ly->n_blocks = b;
          return kv_err_set(err, KV_ENOMEM, "kvmem: copying block %d of layer %d", b, l);
        }
        memcpy(cp, pl->blocks[b], dst->L.block_bytes);
        ly->blocks[b] = cp;
        ly->owned_mask[b] = 1;
      }
    }
    ly->n_blocks = nb;
    ly->n_sink = nsk;
    ly->win_start = nsk + nb * k->block;
    ly->n_win = n - ly->win_start;
    for (int i = 0; i < ly->n_win; i++)
      kvm_layer_row(src, pl, ly->win_start + i, ly->wk + (size_t)i * kvd, ly->wv + (size_t)i * kvd, tmp, codes);
  }
  ly->n = n;
  return 0;
}

int kvm_cache_copy_prefix(kvm_cache *dst, const kvm_cache *src, int n, kv_err *err) {
  if (dst == src) return kvm_cache_truncate(dst, n, err);
  if (!kvm_config_equal(&dst->cfg, &src->cfg))
    return kv_err_set(err, KV_EINVAL, "kvm_cache_copy_prefix: caches differ in configuration");
  for (int l = 0; l < src->cfg.n_layers; l++) {
    int rc = kvm_layer_take_prefix(dst, l, src, n, 0, err);
    if (rc) return rc;
  }
  return 0;
}
