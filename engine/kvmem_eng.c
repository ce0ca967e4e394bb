/*
 * kvmem_eng.c — the KV memory behind eng_kv_ops (engine.h). The engine
 * appends a whole batch of K/V, then calls attend_rows once per (KV head,
 * run of tokens) for a batch, or once per (KV head, group of its query
 * heads) for a decode step, from several threads; each call takes one of a fixed set of scratch
 * slots (lock-free, no allocation per token; a slot grows once to the
 * batch it serves) and reads the positions <= pos of its layer. Contexts are created through kvm_eng_ctx_create so the
 * policy can follow the model (Gemma 3's local layers keep only a window).
 *
 * Invariant: the adapter's cache always holds exactly the context's n_past
 * positions in every layer (append is refused out of order).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx_internal.h"
#include "engine/kvmem_eng.h"

#define KVM_ENG_SLOTS 64
#define KVM_ENG_BATCH 64 /* engine batch (context.c ENG_BATCH): local rings keep window + batch */

typedef struct kvm_eng {
  kvm_cache *c;
  size_t scratch;                  /* bytes every slot has at least */
  float *slot[KVM_ENG_SLOTS];
  size_t slot_bytes[KVM_ENG_SLOTS]; /* a slot grows (once) for batched attention */
  atomic_int busy[KVM_ENG_SLOTS];
} kvm_eng;

static void ke_free(void *kv) {
  kvm_eng *e = kv;
  if (!e) return;
  kvm_cache_free(e->c);
  for (int i = 0; i < KVM_ENG_SLOTS; i++) free(e->slot[i]);
  free(e);
}

/* Install cache c (owned) and size the scratch slots for it. */
static int ke_set_cache(kvm_eng *e, kvm_cache *c, kv_err *err) {
  size_t need = kvm_attend_scratch_bytes(c);
  if (need > e->scratch) {
    for (int i = 0; i < KVM_ENG_SLOTS; i++) {
      free(e->slot[i]);
      e->slot[i] = malloc(need);
      e->slot_bytes[i] = e->slot[i] ? need : 0;
      if (!e->slot[i]) {
        e->scratch = 0;
        kvm_cache_free(c);
        return kv_err_set(err, KV_ENOMEM, "kvmem: attention scratch of %zu bytes", need);
      }
    }
    e->scratch = need;
  }
  kvm_cache_free(e->c);
  e->c = c;
  return 0;
}

static int ke_append(void *kv, int layer, int pos, const float *k, const float *v) {
  kvm_eng *e = kv;
  if (layer < 0 || layer >= kvm_cache_config(e->c)->n_layers || pos != kvm_cache_len(e->c, layer)) return KV_EINVAL;
  return kvm_cache_append(e->c, layer, k, v, NULL);
}

/* A free scratch slot (now the caller's until release_slot), or -1. */
static int take_slot(kvm_eng *e) {
  for (int tries = 0; tries < 4; tries++)
    for (int i = 0; i < KVM_ENG_SLOTS; i++)
      if (atomic_exchange_explicit(&e->busy[i], 1, memory_order_acquire) == 0) return i;
  return -1;
}

static void release_slot(kvm_eng *e, int s) { atomic_store_explicit(&e->busy[s], 0, memory_order_release); }

static void ke_attend(void *kv, int layer, int kvh, const float *q, int pos, int window, float scale, float *out) {
  kvm_eng *e = kv;
  int s = take_slot(e);
  if (s < 0) { /* more concurrent callers than slots: not expected */
    void *tmp = malloc(e->scratch);
    if (!tmp) {
      memset(out, 0, sizeof(float) * (size_t)kvm_cache_config(e->c)->head_dim);
      return;
    }
    kvm_cache_attend_head(e->c, layer, kvh, q, pos, window, scale, out, tmp);
    free(tmp);
    return;
  }
  kvm_cache_attend_head(e->c, layer, kvh, q, pos, window, scale, out, e->slot[s]);
  release_slot(e, s);
}

/* eng_kv_ops.attend_rows: kvm_cache_attend_batch in a slot grown to its
 * scratch (a slot grows once, to the largest batch it served; no memory:
 * per-query attention in the slot as it is). */
static void ke_attend_rows(void *kv, int layer, int kvh, int g, const float *q, size_t stride, int pos0, int n,
                           int window, float scale, float *out) {
  kvm_eng *e = kv;
  const int D = kvm_cache_config(e->c)->head_dim;
  int s = take_slot(e);
  size_t need = kvm_attend_batch_scratch_bytes(e->c, n * g);
  if (s >= 0 && e->slot_bytes[s] < need) {
    float *p = realloc(e->slot[s], need);
    if (p) {
      e->slot[s] = p;
      e->slot_bytes[s] = need;
    }
  }
  if (s >= 0 && e->slot_bytes[s] >= need) {
    kvm_cache_attend_batch(e->c, layer, kvh, q, stride, g, pos0, n, window, scale, out, e->slot[s]);
    release_slot(e, s);
    return;
  }
  if (s >= 0) release_slot(e, s);
  for (int t = 0; t < n; t++)
    for (int j = 0; j < g; j++)
      ke_attend(kv, layer, kvh, q + (size_t)t * stride + (size_t)j * D, pos0 + t, window, scale,
                out + (size_t)t * stride + (size_t)j * D);
}

static void ke_truncate(void *kv, int n) {
  kvm_eng *e = kv;
  kvm_cache_truncate(e->c, n, NULL);
}

static int ke_copy_prefix(void *dst, const void *src, int n) {
  kvm_eng *a = dst;
  const kvm_eng *b = src;
  if (!kvm_config_equal(kvm_cache_config(a->c), kvm_cache_config(b->c))) {
    /* dst was made with the defaults (eng_ctx_save): take src's config */
    kvm_cache *c;
    if (kvm_cache_open(&c, kvm_cache_config(b->c), NULL) || ke_set_cache(a, c, NULL)) return KV_ENOMEM;
  }
  return kvm_cache_copy_prefix(a->c, b->c, n, NULL);
}

static const eng_kv_ops k_kvm_ops = {"kvmem", ke_append, ke_attend, ke_truncate, ke_copy_prefix, ke_free,
                                     ke_attend_rows};

static int ke_new(void **out, const kvm_config *cfg, const eng_kv_ops **ops, kv_err *err) {
  *out = NULL;
  kvm_eng *e = calloc(1, sizeof *e);
  if (!e) return kv_err_set(err, KV_ENOMEM, "kvmem: adapter");
  kvm_cache *c;
  int rc = kvm_cache_open(&c, cfg, err);
  if (!rc) rc = ke_set_cache(e, c, err);
  if (rc) {
    ke_free(e);
    return rc;
  }
  *out = e;
  *ops = &k_kvm_ops;
  return 0;
}

int kvm_eng_create(void **out, const eng_kv_shape *s, const eng_kv_ops **ops, kv_err *err) {
  kvm_config cfg;
  kvm_config_default(&cfg, s->n_layer, s->n_head_kv, s->n_head_kv, s->head_dim, s->n_ctx, KVM_COMPRESSED);
  return ke_new(out, &cfg, ops, err);
}

int kvm_eng_create_full(void **out, const eng_kv_shape *s, const eng_kv_ops **ops, kv_err *err) {
  kvm_config cfg;
  kvm_config_default(&cfg, s->n_layer, s->n_head_kv, s->n_head_kv, s->head_dim, s->n_ctx, KVM_FULL);
  return ke_new(out, &cfg, ops, err);
}

int kvm_eng_kv_create_cfg(void **out, const kvm_config *cfg, const eng_kv_ops **ops, kv_err *err) {
  return ke_new(out, cfg, ops, err);
}

void kvm_eng_config(kvm_config *cfg, const eng_model *m, int n_ctx, kvm_mode mode) {
  const eng_model_info *I = &m->info;
  /* the engine calls attend per query head: n_heads = n_kv_heads here */
  kvm_config_default(cfg, I->n_layer, I->n_head_kv, I->n_head_kv, I->head_dim, n_ctx, mode);
  if (mode != KVM_COMPRESSED) return;
  for (int l = 0; l < I->n_layer && l < KVM_MAX_LAYERS; l++)
    if (m->layers[l].swa && m->n_swa > 0 && m->n_swa + KVM_ENG_BATCH < n_ctx) {
      cfg->layer_mode[l] = KVM_LOCAL;
      cfg->layer_window[l] = m->n_swa + KVM_ENG_BATCH;
    }
  /* Spend the budget on precision: the most precise coding whose whole
   * cache stays within 25% of f16 at every length from 4k tokens (or the
   * context, if shorter) to 8k (or the context): the window's f16 rows
   * weigh most at the shortest of them. A model whose local layers keep
   * only their window (Gemma 3) has room for k8/v4; one with only global
   * layers (SmolLM2) gets k4/v2. */
  static const int bits[][2] = {{8, 4}, {4, 4}, {4, 2}};
  int at = n_ctx < 8192 ? n_ctx : 8192, from = at < 4096 ? at : 4096;
  for (size_t i = 0; i < sizeof bits / sizeof bits[0]; i++) {
    cfg->key_bits = bits[i][0];
    cfg->val_bits = bits[i][1];
    int fits = 1;
    for (int n = from; n <= at && fits; n++)
      fits = (double)kvm_config_bytes(cfg, n) <= KVM_ENG_BUDGET * (double)kvm_f16_bytes(cfg, n);
    if (fits) break;
  }
}

int kvm_eng_ctx_create(eng_ctx **out, eng_model *m, const eng_ctx_params *p, const kvm_config *cfg, kv_err *err) {
  eng_ctx_params pp;
  if (p) pp = *p;
  else eng_ctx_params_default(&pp);
  pp.kv_create = kvm_eng_create;
  int rc = eng_ctx_create(out, m, &pp, err);
  if (rc) return rc;
  eng_ctx *c = *out;
  kvm_config def;
  if (!cfg) {
    kvm_eng_config(&def, m, c->n_ctx, KVM_COMPRESSED);
    cfg = &def;
  }
  kvm_cache *cache;
  if (cfg->n_layers != m->info.n_layer || cfg->n_kv_heads != m->info.n_head_kv || cfg->head_dim != m->info.head_dim ||
      cfg->max_tokens < c->n_ctx)
    rc = kv_err_set(err, KV_EINVAL, "kvm_eng_ctx_create: config shape (%d layers, %d kv heads of %d, %d tokens) "
                    "does not fit the model/context", cfg->n_layers, cfg->n_kv_heads, cfg->head_dim, cfg->max_tokens);
  if (!rc) rc = kvm_cache_open(&cache, cfg, err);
  if (!rc) rc = ke_set_cache(c->kv, cache, err);
  if (rc) {
    eng_ctx_free(c);
    *out = NULL;
  }
  return rc;
}

kvm_cache *kvm_eng_ctx_cache(eng_ctx *ctx) {
  return ctx->kvo == &k_kvm_ops ? ((kvm_eng *)ctx->kv)->c : NULL;
}

int kvm_eng_ctx_detach(eng_ctx *ctx, kvm_cache **out, kv_err *err) {
  *out = NULL;
  if (ctx->kvo != &k_kvm_ops) return kv_err_set(err, KV_EINVAL, "kvm_eng_ctx_detach: context has another cache");
  kvm_eng *e = ctx->kv;
  kvm_cache *fresh;
  int rc = kvm_cache_open(&fresh, kvm_cache_config(e->c), err);
  if (rc) return rc;
  *out = e->c;
  e->c = fresh;
  ctx->n_past = 0;
  ctx->n_logits = 0;
  return 0;
}

int kvm_eng_ctx_attach(eng_ctx *ctx, kvm_cache *cache, const int32_t *toks, size_t n, kv_err *err) {
  if (ctx->kvo != &k_kvm_ops) {
    kvm_cache_free(cache);
    return kv_err_set(err, KV_EINVAL, "kvm_eng_ctx_attach: context has another cache");
  }
  const kvm_config *k = kvm_cache_config(cache);
  for (int l = 0; l < k->n_layers; l++)
    if ((size_t)kvm_cache_len(cache, l) != n) {
      kvm_cache_free(cache);
      return kv_err_set(err, KV_EINVAL, "kvm_eng_ctx_attach: layer %d holds %d positions, %zu tokens given", l,
                        kvm_cache_len(cache, l), n);
    }
  if (n > (size_t)ctx->n_ctx || k->n_layers != ctx->m->info.n_layer) {
    kvm_cache_free(cache);
    return kv_err_set(err, KV_EINVAL, "kvm_eng_ctx_attach: %zu tokens / %d layers do not fit the context", n, k->n_layers);
  }
  int rc = ke_set_cache(ctx->kv, cache, err);
  if (rc) return rc;
  memcpy(ctx->toks, toks, n * sizeof *toks);
  ctx->n_past = (int)n;
  ctx->n_logits = 0;
  return 0;
}

uint64_t kvm_eng_model_hash(const eng_model *m) {
  const eng_model_info *I = &m->info;
  uint64_t f[8] = {(uint64_t)I->n_vocab, (uint64_t)I->n_embd, (uint64_t)I->n_layer, (uint64_t)I->n_head,
                   (uint64_t)I->n_head_kv, (uint64_t)I->head_dim, (uint64_t)I->file_size, (uint64_t)I->n_params};
  uint64_t h = kvm_hash64(f, sizeof f, 0x6d6f64656c);
  h = kvm_hash64(I->arch, strlen(I->arch), h);
  const eng_tensor *t[2] = {m->tok_embd, m->output};
  for (int i = 0; i < 2; i++)
    if (t[i]) h = kvm_hash64(t[i]->data, t[i]->nbytes < 65536 ? t[i]->nbytes : 65536, h);
  return h;
}

/* ---- serving on the compressed memory ---- */

/* 1 when a compressed cache of m for n tokens fits in budget bytes. */
static int size_fits(const eng_model *m, int n, size_t budget) {
  kvm_config cfg;
  kvm_eng_config(&cfg, m, n, KVM_COMPRESSED);
  return kvm_config_peak_bytes(&cfg, n) <= budget;
}

int kvm_eng_ctx_size(const eng_model *m, int requested, size_t budget) {
  const eng_model_info *I = &m->info;
  int want = requested > 0 ? requested : I->n_ctx_train;
  if (want <= 0) want = 4096;
  if (I->n_ctx_train > 0 && want > I->n_ctx_train) want = I->n_ctx_train;
  if (want > (1 << 24)) want = 1 << 24;
  if (!budget || size_fits(m, want, budget)) return want;
  int lo = 0, hi = want; /* lo fits (0 tokens: nothing), hi does not */
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (size_fits(m, mid, budget)) lo = mid;
    else hi = mid;
  }
  return lo;
}

int kvm_eng_store_open(kvm_store **out, eng_ctx *ctx, size_t budget, const char *snap_dir, kv_err *err) {
  *out = NULL;
  kvm_cache *c = kvm_eng_ctx_cache(ctx);
  if (!c) return kv_err_set(err, KV_EINVAL, "kvm_eng_store_open: context has another cache (use kvm_eng_ctx_create)");
  return kvm_store_open(out, kvm_cache_config(c), kvm_eng_model_hash(ctx->m), budget, snap_dir, err);
}

/* KV_EINVAL unless a store's prefixes fit ctx's cache (same layout, room
 * for ctx's whole context). */
static int store_fits(eng_ctx *ctx, const kvm_store *s, const char *who, kv_err *err) {
  kvm_cache *c = kvm_eng_ctx_cache(ctx);
  if (!c) return kv_err_set(err, KV_EINVAL, "%s: context has another cache (use kvm_eng_ctx_create)", who);
  const kvm_config *a = kvm_cache_config(c), *b = kvm_store_config(s);
  if (!kvm_config_equal(a, b) || b->max_tokens < ctx->n_ctx)
    return kv_err_set(err, KV_EINVAL, "%s: the store's KV config (%d tokens, k%d/v%d) is not the context's (%d tokens, k%d/v%d)",
                      who, b->max_tokens, b->key_bits, b->val_bits, ctx->n_ctx, a->key_bits, a->val_bits);
  return 0;
}

int kvm_eng_prefix_save(eng_ctx *ctx, kvm_store *s, const kvm_segment *segs, int n_segs, kv_err *err) {
  int rc = store_fits(ctx, s, "kvm_eng_prefix_save", err);
  if (rc) return rc;
  if (n_segs <= 0) return kv_err_set(err, KV_EINVAL, "kvm_eng_prefix_save: no segments");
  size_t n = 0;
  for (int i = 0; i < n_segs; i++)
    for (size_t j = 0; j < segs[i].n; j++, n++)
      if (n >= (size_t)ctx->n_past || ctx->toks[n] != segs[i].tokens[j])
        return kv_err_set(err, KV_EINVAL,
                          "kvm_eng_prefix_save: token %zu of segment %d (position %zu) is not the context's (%d held)",
                          j, i, n, ctx->n_past);
  if (n == 0) return kv_err_set(err, KV_EINVAL, "kvm_eng_prefix_save: empty prefix");
  kvm_eng *e = ctx->kv;
  kvm_cache *cp;
  rc = kvm_cache_open(&cp, kvm_cache_config(e->c), err);
  if (rc) return rc;
  if (n < (size_t)ctx->n_past) { /* the prefix is a copy; ctx keeps its cache */
    rc = kvm_cache_copy_prefix(cp, e->c, (int)n, err);
    if (rc) {
      kvm_cache_free(cp);
      return rc;
    }
    return kvm_store_put(s, segs, n_segs, cp, NULL, err);
  }
  /* ctx holds exactly the prefix: its cache becomes the prefix and ctx goes
   * on with a fork of it (cp stands in meanwhile) */
  kvm_cache *own = e->c;
  e->c = cp;
  kvm_prefix *p;
  rc = kvm_store_put(s, segs, n_segs, own, &p, err);
  if (!p) { /* out of memory before a prefix was made: the state is gone */
    ctx->n_past = 0;
    ctx->n_logits = 0;
    return rc;
  }
  kvm_cache *f;
  kv_err e2;
  int frc = kvm_prefix_fork(p, n, &f, &e2);
  kvm_prefix_unref(p);
  if (!frc) frc = ke_set_cache(e, f, &e2);
  if (frc) {
    ctx->n_past = 0;
    ctx->n_logits = 0;
    if (err) *err = e2;
    return frc;
  }
  return rc; /* 0, or KV_EIO when only the snapshot failed */
}

int kvm_eng_prefix_load(eng_ctx *ctx, kvm_store *s, const kvm_segment *segs, int n_segs, size_t *n_tokens,
                        int *from_disk, kv_err *err) {
  *n_tokens = 0;
  if (from_disk) *from_disk = 0;
  int rc = store_fits(ctx, s, "kvm_eng_prefix_load", err);
  if (rc) return rc;
  kvm_prefix *p;
  int matched;
  size_t nt;
  rc = kvm_store_lookup(s, segs, n_segs, &p, &matched, &nt, err);
  if (rc) return rc;
  int disk = kvm_prefix_from_disk(p);
  kvm_cache *f = NULL;
  int32_t *toks = nt <= (size_t)ctx->n_ctx ? malloc(nt * sizeof *toks) : NULL;
  if (!toks) rc = kv_err_set(err, nt <= (size_t)ctx->n_ctx ? KV_ENOMEM : KV_EINVAL,
                             "kvm_eng_prefix_load: prefix of %zu tokens for a context of %d", nt, ctx->n_ctx);
  if (!rc) rc = kvm_prefix_fork(p, nt, &f, err);
  kvm_prefix_unref(p); /* the fork keeps it alive */
  if (!rc) {
    size_t k = 0;
    for (int i = 0; i < n_segs && k < nt; i++)
      for (size_t j = 0; j < segs[i].n && k < nt; j++) toks[k++] = segs[i].tokens[j];
    rc = kvm_eng_ctx_attach(ctx, f, toks, nt, err); /* frees f on failure, ctx unchanged */
  }
  free(toks);
  if (rc) return rc;
  *n_tokens = nt;
  if (from_disk) *from_disk = disk;
  return 0;
}

int kvm_eng_stats_get(eng_ctx *ctx, const kvm_store *s, kvm_eng_stats *st, kv_err *err) {
  memset(st, 0, sizeof *st);
  kvm_cache *c = kvm_eng_ctx_cache(ctx);
  if (!c) return kv_err_set(err, KV_EINVAL, "kvm_eng_stats_get: context has another cache");
  st->n_tokens = kvm_cache_len(c, 0);
  st->kv_bytes = kvm_cache_bytes(c);
  st->kv_owned_bytes = kvm_cache_owned_bytes(c);
  st->f16_bytes = kvm_f16_bytes(kvm_cache_config(c), st->n_tokens);
  st->ratio = st->f16_bytes ? (double)st->kv_bytes / (double)st->f16_bytes : 0.0;
  if (s) {
    st->store_bytes = kvm_store_bytes(s);
    st->store_prefixes = kvm_store_count(s);
  }
  return 0;
}
