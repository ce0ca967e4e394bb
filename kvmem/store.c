/*
 * store.c — resident prefixes: frozen KV caches for token sequences,
 * forked copy-on-write by requests, kept in RAM under a byte budget (LRU)
 * and snapshotted to disk so they survive restarts.
 *
 * Keys: a prefix is a list of segments; chain[i] = hash(chain[i-1], hash of
 * segment i's tokens, model hash), so a match at segment i implies a match of
 * every segment before it, and an edit in segment i leaves segments < i
 * reusable. Snapshot file: <dir>/<model_hash>-<chain[last]>.kvm.
 *
 * Invariants: kvm_store_bytes() <= budget after every call (a prefix larger
 * than the whole budget is written to disk and handed to the caller, never
 * made resident); a resident prefix never points into another prefix
 * (kvm_store_put materializes shared blocks), so its bytes are its own;
 * a fork holds a reference, so eviction never frees memory a fork reads.
 * Thread-safe: each kvm_store_* call holds the store's mutex, and prefix
 * reference counts are atomic, so forks may be freed on any thread.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvmem/internal.h"

struct kvm_store {
  pthread_mutex_t mu;      /* every call holds it: requests on several threads share a store */
  kvm_config cfg;
  uint64_t model_hash;
  size_t budget, bytes;
  int count;
  char dir[PATH_MAX];
  kvm_prefix *head, *tail; /* LRU: head most recent */
};

/* ---- prefixes ---- */

int kvm_prefix_fork(kvm_prefix *p, size_t n_tokens, kvm_cache **out, kv_err *err) {
  *out = NULL;
  const kvm_cache *P = p->cache;
  if (n_tokens > kvm_prefix_len(p))
    return kv_err_set(err, KV_EINVAL, "kvm_prefix_fork: %zu tokens, prefix has %zu", n_tokens, kvm_prefix_len(p));
  kvm_cache *c;
  int rc = kvm_cache_open(&c, &P->cfg, err);
  if (rc) return rc;
  for (int l = 0; l < P->cfg.n_layers && !rc; l++) rc = kvm_layer_take_prefix(c, l, P, (int)n_tokens, 1, err);
  if (rc) {
    kvm_cache_free(c);
    return rc;
  }
  kvm_prefix_ref(p);
  c->parent = p;
  *out = c;
  return 0;
}

/* Make every byte the cache reads its own: copy shared blocks and parent
 * rows, then drop the parent. */
static int materialize(kvm_cache *c, kv_err *err) {
  size_t kvd = (size_t)c->kvd, rowb = kvd * 2;
  for (int l = 0; l < c->cfg.n_layers; l++) {
    kvm_layer *ly = &c->layers[l];
    if (ly->mode == KVM_FULL && ly->base_n) {
      uint16_t *k = malloc((size_t)(ly->n ? ly->n : 1) * rowb), *v = malloc((size_t)(ly->n ? ly->n : 1) * rowb);
      if (!k || !v) {
        free(k);
        free(v);
        return kv_err_set(err, KV_ENOMEM, "kvmem: materialize layer %d", l);
      }
      memcpy(k, ly->base_k, (size_t)ly->base_n * rowb);
      memcpy(v, ly->base_v, (size_t)ly->base_n * rowb);
      memcpy(k + (size_t)ly->base_n * kvd, ly->wk, (size_t)(ly->n - ly->base_n) * rowb);
      memcpy(v + (size_t)ly->base_n * kvd, ly->wv, (size_t)(ly->n - ly->base_n) * rowb);
      free(ly->wk);
      free(ly->wv);
      ly->wk = k;
      ly->wv = v;
      ly->win_cap = ly->n;
      ly->base_n = 0;
      ly->base_k = ly->base_v = NULL;
      ly->win_start = 0;
      ly->n_win = ly->n;
    }
    if (ly->mode == KVM_COMPRESSED)
      for (int b = 0; b < ly->n_blocks; b++) {
        if (ly->owned_mask[b]) continue;
        uint8_t *nbk = malloc(c->L.block_bytes);
        if (!nbk) return kv_err_set(err, KV_ENOMEM, "kvmem: materialize block");
        memcpy(nbk, ly->blocks[b], c->L.block_bytes);
        ly->blocks[b] = nbk;
        ly->owned_mask[b] = 1;
      }
  }
  if (c->parent) kvm_prefix_unref(c->parent);
  c->parent = NULL;
  return 0;
}

/* Bytes a frozen cache holds in RAM: its rows as allocated and its blocks;
 * the attention scratch is released (a frozen cache is only read by forks). */
static size_t frozen_bytes(kvm_cache *c) {
  size_t b = 0, row = (size_t)c->kvd * 4;
  for (int l = 0; l < c->cfg.n_layers; l++) {
    kvm_layer *ly = &c->layers[l];
    free(ly->sc);
    ly->sc = NULL;
    b += row * (size_t)ly->win_cap;
    if (ly->mode == KVM_COMPRESSED) b += row * (size_t)c->cfg.sinks + c->L.block_bytes * (size_t)ly->n_blocks;
  }
  return b;
}

/* ---- store ---- */

static void chain_of(const kvm_store *s, const kvm_segment *segs, int n, uint64_t *chain, uint64_t *ends) {
  uint64_t prev = s->model_hash, tot = 0;
  for (int i = 0; i < n; i++) {
    uint64_t pair[2] = {prev, kvm_hash64(segs[i].tokens, segs[i].n * sizeof(int32_t), 0x6b766d73)};
    prev = chain[i] = kvm_hash64(pair, sizeof pair, s->model_hash);
    tot += segs[i].n;
    ends[i] = tot;
  }
}

int kvm_store_open(kvm_store **out, const kvm_config *cfg, uint64_t model_hash, size_t budget, const char *snap_dir,
                   kv_err *err) {
  *out = NULL;
  int rc = kvm_config_check(cfg, err);
  if (rc) return rc;
  kvm_store *s = calloc(1, sizeof *s);
  if (!s) return kv_err_set(err, KV_ENOMEM, "kvm_store");
  s->cfg = *cfg;
  s->model_hash = model_hash;
  s->budget = budget;
  if (snap_dir) {
    if (strlen(snap_dir) >= sizeof s->dir) rc = kv_err_set(err, KV_ELIMIT, "kvm_store: dir too long");
    else strcpy(s->dir, snap_dir);
  } else {
    char base[PATH_MAX - 8];
    rc = kv_xdg_dir(base, sizeof base, "cache");
    if (rc) kv_err_set(err, rc, "kvm_store: $XDG_CACHE_HOME path too long");
    else snprintf(s->dir, sizeof s->dir, "%s/kv", base);
  }
  if (!rc) rc = kv_mkdirs(s->dir, 0700, err);
  if (!rc && pthread_mutex_init(&s->mu, NULL)) rc = kv_err_set(err, KV_ENOMEM, "kvm_store: mutex");
  if (rc) {
    free(s);
    return rc;
  }
  *out = s;
  return 0;
}

static void lru_unlink(kvm_store *s, kvm_prefix *p) {
  if (p->prev) p->prev->next = p->next;
  else s->head = p->next;
  if (p->next) p->next->prev = p->prev;
  else s->tail = p->prev;
  p->prev = p->next = NULL;
}

static void lru_front(kvm_store *s, kvm_prefix *p) {
  p->next = s->head;
  p->prev = NULL;
  if (s->head) s->head->prev = p;
  s->head = p;
  if (!s->tail) s->tail = p;
}

static void evict(kvm_store *s, kvm_prefix *p) {
  lru_unlink(s, p);
  p->resident = 0;
  s->bytes -= p->bytes;
  s->count--;
  kvm_prefix_unref(p);
}

/* Make p resident (takes one reference) if it fits, evicting LRU prefixes. */
static void admit(kvm_store *s, kvm_prefix *p) {
  if (p->bytes > s->budget) return;
  while (s->bytes + p->bytes > s->budget && s->tail) evict(s, s->tail);
  kvm_prefix_ref(p);
  p->resident = 1;
  s->bytes += p->bytes;
  s->count++;
  lru_front(s, p);
}

void kvm_store_free(kvm_store *s) {
  if (!s) return;
  while (s->tail) evict(s, s->tail);
  pthread_mutex_destroy(&s->mu);
  free(s);
}

size_t kvm_store_bytes(const kvm_store *s) {
  pthread_mutex_t *mu = (pthread_mutex_t *)&s->mu; /* const for the caller: the lock is not the state */
  pthread_mutex_lock(mu);
  size_t b = s->bytes;
  pthread_mutex_unlock(mu);
  return b;
}
const kvm_config *kvm_store_config(const kvm_store *s) { return &s->cfg; } /* fixed at open */
int kvm_store_count(const kvm_store *s) {
  pthread_mutex_t *mu = (pthread_mutex_t *)&s->mu;
  pthread_mutex_lock(mu);
  int n = s->count;
  pthread_mutex_unlock(mu);
  return n;
}

static void snap_path(const kvm_store *s, uint64_t key, char *buf, size_t n) {
  snprintf(buf, n, "%s/%016" PRIx64 "-%016" PRIx64 ".kvm", s->dir, s->model_hash, key);
}

/* Segments of (chain, ends) that match the query's. */
static int matched(const uint64_t *pc, const uint64_t *pe, int pn, const uint64_t *qc, const uint64_t *qe, int qn) {
  int m = 0;
  while (m < pn && m < qn && pc[m] == qc[m] && pe[m] == qe[m]) m++;
  return m;
}

static int lookup_locked(kvm_store *s, const kvm_segment *segs, int n_segs, kvm_prefix **out, int *n_segs_matched,
                         size_t *n_tokens, kv_err *err) {
  *out = NULL;
  *n_segs_matched = 0;
  *n_tokens = 0;
  if (n_segs <= 0) return kv_err_set(err, KV_ENOTFOUND, "kvm_store: no segments");
  uint64_t *qc = malloc(16 * (size_t)n_segs), *qe = qc + n_segs;
  if (!qc) return kv_err_set(err, KV_ENOMEM, "kvm_store: chain");
  chain_of(s, segs, n_segs, qc, qe);
  kvm_prefix *best = NULL;
  int bm = 0;
  for (kvm_prefix *p = s->head; p; p = p->next) {
    int m = matched(p->chain, p->seg_end, p->n_segs, qc, qe, n_segs);
    if (m > bm) { bm = m; best = p; }
  }
  /* A snapshot on disk may cover more (evicted, or from an earlier run). */
  DIR *d = opendir(s->dir);
  char want[40], path[PATH_MAX + 320], best_path[PATH_MAX + 320] = "";
  snprintf(want, sizeof want, "%016" PRIx64 "-", s->model_hash);
  int dm = bm;
  kv_err refused = {0}; /* the last snapshot refused, for the caller's log */
  for (struct dirent *e; d && (e = readdir(d));) {
    size_t ln = strlen(e->d_name);
    if (strncmp(e->d_name, want, 17) || ln != 37 || strcmp(e->d_name + 33, ".kvm")) continue;
    uint64_t key = strtoull(e->d_name + 17, NULL, 16);
    int resident = 0;
    for (kvm_prefix *p = s->head; p; p = p->next) resident |= p->token_hash == key;
    if (resident) continue; /* already considered above */
    snprintf(path, sizeof path, "%s/%s", s->dir, e->d_name);
    uint64_t *pc, *pe;
    int pn;
    kv_err e2;
    if (kvm_snapshot_peek(path, &s->cfg, s->model_hash, &pc, &pe, &pn, &e2)) {
      if (e2.code == KV_EFORMAT) { /* corrupt or stale: recompute, never use */
        unlink(path);
        refused = e2;
      }
      continue;
    }
    int m = matched(pc, pe, pn, qc, qe, n_segs);
    free(pc);
    free(pe);
    if (m > dm) {
      dm = m;
      strcpy(best_path, path);
    }
  }
  if (d) closedir(d);
  if (dm > bm) {
    kvm_prefix *p;
    kv_err e2;
    if (kvm_snapshot_load(best_path, &s->cfg, s->model_hash, &p, &e2) == 0) {
      admit(s, p);
      best = p;
      bm = dm;
      *out = p; /* our load reference goes to the caller */
    } else if (e2.code == KV_EFORMAT) {
      unlink(best_path);
      refused = e2;
    }
  }
  if (!best) {
    free(qc);
    if (refused.code)
      return kv_err_set(err, KV_ENOTFOUND, "kvm_store: no resident prefix or snapshot matches (refused and deleted: %s)",
                        refused.msg);
    return kv_err_set(err, KV_ENOTFOUND, "kvm_store: no resident prefix or snapshot matches");
  }
  if (!*out) {
    kvm_prefix_ref(best);
    *out = best;
  }
  if (best->resident) {
    lru_unlink(s, best);
    lru_front(s, best);
  }
  *n_segs_matched = bm;
  *n_tokens = (size_t)qe[bm - 1];
  free(qc);
  return 0;
}

static int put_locked(kvm_store *s, const kvm_segment *segs, int n_segs, kvm_cache *cache, kvm_prefix **out,
                      kv_err *err) {
  if (out) *out = NULL;
  size_t tot = 0;
  for (int i = 0; i < n_segs; i++) tot += segs[i].n;
  if (n_segs <= 0 || tot != (size_t)cache->layers[0].n || !kvm_config_equal(&cache->cfg, &s->cfg)) {
    kvm_cache_free(cache);
    return kv_err_set(err, KV_EINVAL, "kvm_store_put: %d segments of %zu tokens for a cache of %d tokens", n_segs,
                      tot, cache->layers[0].n);
  }
  for (int l = 1; l < cache->cfg.n_layers; l++)
    if (cache->layers[l].n != cache->layers[0].n) {
      kvm_cache_free(cache);
      return kv_err_set(err, KV_EINVAL, "kvm_store_put: layer %d has %d tokens, layer 0 %d", l, cache->layers[l].n,
                        cache->layers[0].n);
    }
  kvm_prefix *p = calloc(1, sizeof *p);
  int rc = p ? 0 : kv_err_set(err, KV_ENOMEM, "prefix");
  if (!rc) {
    p->chain = malloc(8 * (size_t)n_segs);
    p->seg_end = malloc(8 * (size_t)n_segs);
    if (!p->chain || !p->seg_end) rc = kv_err_set(err, KV_ENOMEM, "prefix chain");
  }
  if (!rc) rc = materialize(cache, err);
  if (rc) {
    kvm_cache_free(cache);
    if (p) {
      free(p->chain);
      free(p->seg_end);
      free(p);
    }
    return rc;
  }
  p->refs = 1;
  p->cache = cache;
  p->n_segs = n_segs;
  chain_of(s, segs, n_segs, p->chain, p->seg_end);
  p->token_hash = p->chain[n_segs - 1];
  p->bytes = frozen_bytes(cache);
  char path[PATH_MAX + 64];
  snap_path(s, p->token_hash, path, sizeof path);
  rc = kvm_snapshot_write(path, cache, s->model_hash, p->token_hash, p->chain, p->seg_end, n_segs, err);
  admit(s, p);
  if (out) *out = p;
  else kvm_prefix_unref(p);
  return rc;
}

int kvm_store_lookup(kvm_store *s, const kvm_segment *segs, int n_segs, kvm_prefix **out, int *n_segs_matched,
                     size_t *n_tokens, kv_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = lookup_locked(s, segs, n_segs, out, n_segs_matched, n_tokens, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}

int kvm_store_put(kvm_store *s, const kvm_segment *segs, int n_segs, kvm_cache *cache, kvm_prefix **out,
                  kv_err *err) {
  pthread_mutex_lock(&s->mu);
  int rc = put_locked(s, segs, n_segs, cache, out, err);
  pthread_mutex_unlock(&s->mu);
  return rc;
}
