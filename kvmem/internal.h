/*
 * internal.h — the KV memory's shared types (block layout, layer, cache,
 * prefix, attention state) and the functions its files give each other,
 * grouped by the file that defines them. Calls point one way:
 *   store.c -> snap.c, ops.c, batch.c -> cache.c -> simd.c (-> simd_avx2.c,
 *   simd_avx512.c), quant.c
 * (no file calls one above it; the prefix's lifetime lives in cache.c because
 * a cache holds a reference to the prefix it was forked from). Not for other
 * modules, which use kvmem.h; the module's own tests may include it.
 *
 * Block layout (one compressed block, B tokens, all KV heads; D = head_dim;
 * per head h at offset h*head_bytes, every array at an even offset):
 *   kmin[D] f16 | kmax[D] f16          per-channel key range = index entry
 *   vlo[B] f16  | vhi[B] f16           per-token value range
 *   kcodes[D][codes_bytes(B,kb)]       channel-major (one row per channel)
 *   vcodes[B][codes_bytes(D,vb)]       token-major (one row per token)
 *   kmean[D/2] | vmean[D/2]            pooled summary (mean key, mean value), 4 bits each:
 *                                      key c = kmin_c + (kmax_c-kmin_c)*code/15 (the mean lies
 *                                      in the range); value = vmean_scale*(code-8), code 1..15
 *   vmean_scale f16
 *   zero padding to a multiple of 8 bytes
 */
#ifndef KVASIR_KVMEM_INTERNAL_H
#define KVASIR_KVMEM_INTERNAL_H

#include <stdatomic.h>

#include "kvmem/kvmem.h"

typedef struct kvm_blk_layout {
  size_t kmin, kmax, vlo, vhi, kcodes, vcodes, kmean, vmean, vmean_s;
  size_t krow, vrow;   /* bytes of one key-channel row / one value-token row */
  size_t head_bytes, block_bytes;
} kvm_blk_layout;

void kvm_blk_layout_init(kvm_blk_layout *L, const kvm_config *c);

typedef struct kvm_layer {
  int mode;
  int n;            /* tokens appended */
  int n_sink;       /* COMPRESSED: tokens in sinks (<= S) */
  int win_start;    /* COMPRESSED: position of window row 0; FULL: first own position */
  int n_win;        /* rows used in wk/wv (LOCAL: min(n, cap)) */
  int win_cap;      /* rows allocated */
  int borrowed;     /* sk/sv/wk/wv point into a snapshot mapping: never freed or written */
  uint16_t *sk, *sv;     /* sinks [S][kvd] f16 */
  uint16_t *wk, *wv;     /* window rows [win_cap][kvd] f16; LOCAL: ring by pos % cap */
  const uint8_t **blocks;
  uint8_t *owned_mask;   /* 1 where blocks[i] is malloc'd by this cache */
  int n_blocks, cap_blocks;
  const uint16_t *base_k, *base_v;  /* FULL: parent's rows [0, base_n) */
  int base_n;
  /* last attend, per KV head: chosen block indexes [n_kv][top_k] */
  int *chosen;
  int *n_chosen;
  kvm_attend_stats st;
  /* scratch for attend (per layer so layers can run on different threads) */
  float *sc;
} kvm_layer;

struct kvm_cache {
  kvm_config cfg;
  kvm_blk_layout L;
  int kvd;               /* n_kv_heads * head_dim */
  int tile;              /* rows per attention tile */
  int has_f16c;
  float u4[256][2], u2[256][4]; /* byte -> its 4-bit / 2-bit codes as floats */
  kvm_layer *layers;
  kvm_prefix *parent;    /* kept alive while this cache points into it */
};

/* Prefix: a frozen cache plus what identifies it. */
struct kvm_prefix {
  atomic_int refs;       /* forks on any thread hold and drop references */
  kvm_cache *cache;      /* frozen */
  uint64_t token_hash;
  int n_segs;
  uint64_t *chain;       /* chain hash after segment i */
  uint64_t *seg_end;     /* tokens covered after segment i */
  void *map;             /* mmap'd snapshot (NULL if computed here) */
  size_t map_len;
  size_t bytes;          /* resident bytes (owned by the frozen cache) */
  /* LRU list of the store (resident only) */
  struct kvm_prefix *prev, *next;
  int resident;
};

/* ---- quant.c: number formats ---- */
/* f16 row conversion (F16C when the CPU has it). */
void kvm_f16_row_to_f32(const uint16_t *src, float *dst, int n, int has_f16c);
int kvm_cpu_has_f16c(void);
/* f32 -> f16 row, round to nearest even (the bits of kvm_f32_to_f16). */
void kvm_f32_row_to_f16(const float *src, uint16_t *dst, int n, int has_f16c);
/* Unpack n codes of `bits` to bytes. */
void kvm_unpack_codes(const uint8_t *codes, int n, int bits, uint8_t *out);

/* ---- cache.c: cache and prefix lifetime ---- */
/* An empty cache of cfg with its per-layer scratch but no rows or blocks
 * (snap.c fills it from a mapping; rows/blocks then point into it). */
int kvm_cache_alloc_shell(kvm_cache **out, const kvm_config *cfg, kv_err *err);
/* Owned window/sink/full storage for a layer with room for exactly `rows`. */
int kvm_layer_reserve(kvm_cache *c, kvm_layer *ly, int rows, kv_err *err);
/* Compressed blocks a cold run of cfg holds after n positions. */
int kvm_cold_blocks(const kvm_config *k, int n);
/* Free a prefix whose last reference went (its cache, mapping, chain). */
void kvm_prefix_destroy(kvm_prefix *p);

/* ---- ops.c: rows and prefixes of a cache ---- */
/* Row `pos` (K and V, all heads, f16) of a layer, wherever it lives
 * (dequantized if in a block). tmp: head_dim floats; codes: block bytes. */
void kvm_layer_row(const kvm_cache *c, const kvm_layer *ly, int pos, uint16_t *dk, uint16_t *dv, float *tmp,
                   uint8_t *codes);
/* dst layer l := src layer l's first n positions (share: point at src's
 * blocks / flat FULL rows; the caller keeps src alive). */
int kvm_layer_take_prefix(kvm_cache *dst, int l, const kvm_cache *src, int n, int share, kv_err *err);

/* ---- snap.c: snapshot files ---- */
/* Verifies everything, maps, builds a prefix with one reference. */
int kvm_snapshot_load(const char *path, const kvm_config *cfg, uint64_t model_hash, kvm_prefix **out,
                      kv_err *err);
/* Read only the header + segment chain of a snapshot (verified) to decide
 * whether it matches; chain and seg_end are malloc'd. */
int kvm_snapshot_peek(const char *path, const kvm_config *cfg, uint64_t model_hash, uint64_t **chain,
                      uint64_t **seg_end, int *n_segs, kv_err *err);

/* Online-softmax state of the g query heads sharing one KV head (attend). */
typedef struct kvm_att {
  int g, D, T;
  const struct kvm_simd_ops *vx; /* the SIMD loops (kvm_simd_for); NULL: portable */
  float scale;
  const float *q;    /* [g][D] */
  float *acc;        /* [g][D] */
  float *accr;       /* [g][D] val_rot: the compressed blocks' value sums in the
                        rotated basis, rescaled with acc, turned back once at the end */
  float *m, *l;      /* [g] */
  float *logit;      /* [T] */
  float *kt, *vt;    /* [T][D] tiles (and scratch) */
} kvm_att;

/* g (<= n_heads / n_kv_heads) query heads of KV head kv_head at once (q,
 * out: [g][head_dim]), scratch as kvm_cache_attend_head's. On full and
 * local layers each head gets the very bits of its own attend_head call,
 * but the rows are read once for all g (a decode step's GQA group);
 * compressed layers choose blocks by the group's largest bound. scratch:
 * kvm_group_scratch_bytes(c, g). */
void kvm_attend_heads(kvm_cache *c, int layer, int kv_head, const float *q, int g, int pos, int window, float scale,
                      float *out, void *scratch);
/* Scratch bytes kvm_attend_heads needs for g heads. */
size_t kvm_group_scratch_bytes(const kvm_cache *c, int g);

/* ---- cache.c: the attention steps (attend_group's parts, for batch.c) ----
 * Each folds into one kvm_att state and picks the portable or SIMD loop
 * by a->vx, so a caller that visits the same parts in the same order gets
 * attend_group's bits. */
int kvm_max_blocks(const kvm_config *c);
void kvm_att_fold(kvm_att *a, int n, float bias);
void kvm_att_rows_f16(kvm_att *a, const uint16_t *kr, const uint16_t *vr, size_t stride, int n, int f16c);
void kvm_fold_block(const kvm_cache *c, kvm_att *a, const uint8_t *hb);
void kvm_pooled_row(const kvm_cache *c, const uint8_t *hb, int which, float *o);
float kvm_block_bound(const kvm_cache *c, const uint8_t *hb, const float *q, int g, float *lohi);
int kvm_top_k_select(const float *score, int n, int k, int *out);

/* ---- simd.c, simd_avx2.c, simd_avx512.c: the attention loops in SIMD ----
 * One table per vector width (simd_body.h). Every entry gives what its
 * portable counterpart in cache.c gives, up to float rounding. */
typedef struct kvm_simd_ops {
  const char *name; /* "avx2", "avx512" */
  int lanes;        /* floats per vector: the shapes must be multiples of it */
  void (*rows_f16)(kvm_att *a, const uint16_t *kr, const uint16_t *vr, size_t stride, int n);
  void (*fold_f32)(kvm_att *a, int n, float bias);
  void (*fold_block)(const kvm_cache *c, kvm_att *a, const uint8_t *hb);
  float (*block_score)(const kvm_cache *c, const uint8_t *hb, const float *q, int g);
  /* out[0 .. nbytes*8/bits) := the codes of nbytes packed bytes (nbytes %
   * lanes == 0) as floats, in order. */
  void (*unpack_f32)(const uint8_t *p, int nbytes, int bits, float *out);
  /* fold_block from the block's codes unpacked once (unpack_f32) for many
   * queries: kc [D][B] key codes channel-major, vc [B][D] value codes
   * token-major; tmp: D + 2*B floats. Same sums as fold_block up to float
   * rounding (other orders). */
  void (*fold_tile)(const kvm_cache *c, kvm_att *a, const uint8_t *hb, const float *kc, const float *vc, float *tmp);
  /* fold_tile for nq <= 4 single-head queries at once (sharing the tile
   * loads); block == 64 and head_dim % 64 == 0; tmp: 4 * (D + 2*B) floats. */
  void (*fold_tileq)(const kvm_cache *c, kvm_att *const *a, int nq, const uint8_t *hb, const float *kc,
                     const float *vc, float *tmp);
} kvm_simd_ops;

extern const kvm_simd_ops kvm__simd_avx2, kvm__simd_avx512;
/* The config's shapes suit loops of `lanes` floats (head_dim, block and
 * code rows in multiples of it). */
int kvm_simd_fits(const kvm_config *k, int lanes);
/* The widest loops at or below kvm_simd_level() whose shapes k fits; NULL:
 * the portable ones. */
const kvm_simd_ops *kvm_simd_for(const kvm_config *k);

#endif
