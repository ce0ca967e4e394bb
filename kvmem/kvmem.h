/*
 * kvmem — the compressed KV memory (prefix kvm_), the module between
 * kernels/ and engine/: it knows K/V rows, blocks and files, never a model
 * (engine/kvmem_eng.c is the adapter that plugs it into eng_kv_ops). This is
 * the module's one public header. Per layer, paged in blocks:
 *
 *   [ sinks: first S tokens, f16 ] [ compressed blocks of B tokens ] [ window: last W..W+B-1 tokens, f16 ]
 *
 * Compressed blocks hold keys quantized per channel (asymmetric, the block's
 * per-channel min/max are the quantization range) and values quantized per
 * token (asymmetric). The per-channel key min/max double as the block's index
 * entry: for a query q, sum_c max(q_c*min_c, q_c*max_c) is an upper bound on
 * q·k for every key of the block (true and dequantized). Each block also keeps
 * a pooled summary (mean key, mean value) so blocks that are not chosen
 * still contribute coarsely, with log(B) added to their logit (4 bits per
 * channel: the mean key as a code within the block's key range, the mean
 * value symmetric).
 *
 * Attention per layer: exact over sinks + window + the top-k blocks by upper
 * bound, pooled over the rest (KVM_COMPRESSED); exact over everything stored
 * in f16 (KVM_FULL, the reference); exact over the last `window` tokens only
 * (KVM_LOCAL, for sliding-window layers such as Gemma 3's local layers).
 * GQA: n_heads is a multiple of n_kv_heads; block choice is per KV head, by
 * the largest bound over the query heads that share it.
 *
 * Resident prefixes (kvm_prefix / kvm_store, kvmem/store.c) hold frozen
 * caches for token sequences, shared copy-on-write by forks, under a byte
 * budget with LRU eviction, and snapshotted to disk (format in kvmem/snap.c).
 *
 * Files (calls point one way, top to bottom): store.c (resident prefixes)
 * -> snap.c (snapshot files), ops.c (truncate, copy, fork), batch.c (a
 * prefill's attention, block-outer) -> cache.c
 * (appends, attention, accounting, cache and prefix lifetime) -> simd.c
 * (AVX2 / AVX-512 loops, simd_body.h), quant.c (number formats, checksum); internal.h holds the
 * structs they share.
 *
 * Invariants: appends are per layer and in order; a layer's window holds
 * every token not in sinks or blocks; blocks never change once written, so a
 * fork can point at its parent's blocks (and at mmap'd snapshot bytes).
 */
#ifndef KVASIR_KVMEM_H
#define KVASIR_KVMEM_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVM_MAX_LAYERS 256

typedef enum kvm_mode {
  KVM_FULL = 0,       /* every token in f16, exact attention (the reference) */
  KVM_COMPRESSED = 1, /* sinks + window exact, top-k blocks exact, pooled rest */
  KVM_LOCAL = 2       /* only the last layer_window[l] tokens (sliding window) */
} kvm_mode;

enum { KVM_SELECT_BOUND = 0, KVM_SELECT_GAUSS = 1 };

typedef struct kvm_config {
  int n_layers, n_heads, n_kv_heads, head_dim;
  int max_tokens;    /* capacity (the model's context); appends beyond fail */
  int sinks;         /* S, default 4 */
  int window;        /* W, default 64 (>= the engine's batch of 64, so a batch's queries see exact rows) */
  int block;         /* B tokens per compressed block, default 64 (even, >= 8) */
  int top_k;         /* blocks attended exactly per KV head, default 64 */
  int key_bits;      /* 8, 4 or 2; default 4 */
  int val_bits;      /* 8, 4 or 2; default 2 */
  int val_rot;       /* 1 (default): values Hadamard-rotated per head, range clipped for least squared error */
  int select;        /* block choice: KVM_SELECT_GAUSS (estimated max, default) or KVM_SELECT_BOUND (upper bound) */
  int pooled;        /* 1 (default): unchosen blocks contribute their pooled summary */
  uint8_t layer_mode[KVM_MAX_LAYERS];  /* kvm_mode per layer, default KVM_COMPRESSED */
  int layer_window[KVM_MAX_LAYERS];    /* KVM_LOCAL: tokens kept (model's sliding window) */
} kvm_config;

/* Defaults above, every layer in `mode`. */
void kvm_config_default(kvm_config *c, int n_layers, int n_heads, int n_kv_heads, int head_dim,
                        int max_tokens, kvm_mode mode);
/* Checks ranges; the message names the field. */
int kvm_config_check(const kvm_config *c, kv_err *err);
/* 1 when caches of a and b hold the same layout (every field that shapes
 * the stored bytes; max_tokens, top_k and pooled may differ). */
int kvm_config_equal(const kvm_config *a, const kvm_config *b);

/* ---- The per-request cache ---- */
typedef struct kvm_cache kvm_cache;

int kvm_cache_open(kvm_cache **out, const kvm_config *cfg, kv_err *err);
void kvm_cache_free(kvm_cache *c);
const kvm_config *kvm_cache_config(const kvm_cache *c);
/* Tokens appended to `layer` (layer 0 is the sequence length). */
int kvm_cache_len(const kvm_cache *c, int layer);

/* Append one token's K and V for `layer` (each [n_kv_heads*head_dim] f32,
 * rope already applied). KV_ELIMIT past max_tokens. No allocation except
 * one block when the window spills (once per B tokens). */
int kvm_cache_append(kvm_cache *c, int layer, const float *k, const float *v, kv_err *err);

/* Attention of one query over what `layer` holds now (the token whose K/V
 * was appended last included): q [n_heads*head_dim], out [n_heads*head_dim].
 * logits = scale * q·k. Thread-safe across different layers only. */
void kvm_cache_attend(kvm_cache *c, int layer, const float *q, float scale, float *out);

/* One query head reading KV head kv_head over positions (pos-window, pos]
 * (window 0: [0, pos]) of `layer`: the form the engine's eng_kv_ops calls,
 * after appending a whole batch. Thread-safe for concurrent calls with
 * distinct scratch (kvm_attend_scratch_bytes each, float-aligned) while no
 * append/truncate runs. Compressed layers: exact only if the batch appended
 * since the query's position is <= window W (blocks are whole). */
void kvm_cache_attend_head(kvm_cache *c, int layer, int kv_head, const float *q, int pos, int window, float scale,
                           float *out, void *scratch);
size_t kvm_attend_scratch_bytes(const kvm_cache *c);

/* A prefill's attention in one call: the g query heads sharing KV head
 * kv_head, for the n consecutive positions pos0..pos0+n-1 (query head j of
 * position pos0+t at q + t*stride + j*head_dim, its output at the same
 * offset of out). Each result is kvm_cache_attend_head's for that query
 * (its own block choice; bit for bit with the portable loops, to float
 * rounding with the SIMD ones), but a compressed block is read, and
 * unpacked, once for all the queries that chose it. Thread-safety as
 * attend_head; scratch: kvm_attend_batch_scratch_bytes(c, n*g). */
void kvm_cache_attend_batch(kvm_cache *c, int layer, int kv_head, const float *q, size_t stride, int g, int pos0,
                            int n, int window, float scale, float *out, void *scratch);
size_t kvm_attend_batch_scratch_bytes(const kvm_cache *c, int n_queries);

/* Forget positions >= n in every layer. Compressed layers whose cut falls in
 * compressed blocks get those rows back (dequantized) into the window. */
int kvm_cache_truncate(kvm_cache *c, int n, kv_err *err);
/* Make dst (same config) hold src's first n positions, copying everything
 * (dst shares nothing with src afterwards). */
int kvm_cache_copy_prefix(kvm_cache *dst, const kvm_cache *src, int n, kv_err *err);

/* Causal batch: for i in [0,n): append(k_i, v_i) then attend(q_i) — what a
 * prefill over n new tokens computes. q/out strided by n_heads*head_dim,
 * k/v by n_kv_heads*head_dim. */
int kvm_cache_step_batch(kvm_cache *c, int layer, int n, const float *q, const float *k, const float *v,
                         float scale, float *out, kv_err *err);

/* Bytes this cache holds for its tokens (everything: sinks, window, blocks,
 * index entries, scales, pooled summaries; shared parent bytes included, so
 * bytes/len is the memory a token costs). */
size_t kvm_cache_bytes(const kvm_cache *c);
/* Bytes owned by this cache alone (not shared with a parent prefix). */
size_t kvm_cache_owned_bytes(const kvm_cache *c);
/* Bytes an f16 cache of the same model would hold for len tokens. */
size_t kvm_f16_bytes(const kvm_config *cfg, int len);
/* What kvm_cache_bytes will be for a cache of cfg after n appends per layer
 * (computed from the config alone, for sizing before opening one). */
size_t kvm_config_bytes(const kvm_config *cfg, int n);
/* The most kvm_cache_bytes reaches at any point of those n appends: the
 * bytes grow with every token and drop at each spill (B f16 rows become one
 * block), so a cache needs this much, not kvm_config_bytes, to get to n. */
size_t kvm_config_peak_bytes(const kvm_config *cfg, int n);

/* Statistics of the last attend on a layer (for tests and the eval). */
typedef struct kvm_attend_stats {
  int blocks, chosen, exact_tokens;
} kvm_attend_stats;
void kvm_cache_last_stats(const kvm_cache *c, int layer, kvm_attend_stats *st);
/* The blocks chosen by the last attend on (layer, kv_head): up to top_k
 * block indexes into *idx; returns the count. */
int kvm_cache_last_chosen(const kvm_cache *c, int layer, int kv_head, const int **idx);

/* ---- Quantization (exposed for tests and the reference scripts) ---- */
/* Asymmetric per-group: q = round((x - lo) / s), s = (hi - lo) / (2^bits - 1),
 * lo/hi stored as f16 rounded outward. Codes are packed little-end first
 * (bits 8: one per byte; 4: two per byte, low nibble first; 2: four per byte). */
size_t kvm_codes_bytes(int n, int bits);
void kvm_quant_group(const float *x, int n, int stride, int bits, uint16_t *lo16, uint16_t *hi16, uint8_t *codes);
void kvm_dequant_group(const uint8_t *codes, int n, int bits, uint16_t lo16, uint16_t hi16, float *x);
float kvm_f16_to_f32(uint16_t h);
uint16_t kvm_f32_to_f16(float f);              /* round to nearest even */
uint16_t kvm_f32_to_f16_dir(float f, int up);  /* round toward +inf (up=1) or -inf (up=0) */
/* In-place orthonormal Walsh-Hadamard transform of x[n] (n % 8 == 0), in
 * chunks of the largest power of two dividing n; its own inverse. */
void kvm_hadamard(float *x, int n);
/* Like kvm_quant_group (stride 1), but the range is [min,max] shrunk toward
 * its centre by the factor (1.0, 0.95 .. 0.5) with the least squared error;
 * values outside it clip. Returns that squared error. */
double kvm_quant_group_mse(const float *x, int n, int bits, uint16_t *lo16, uint16_t *hi16, uint8_t *codes);

/* The attention loops' level: portable, AVX2 (+FMA+F16C, 8 lanes) or
 * AVX-512 (16 lanes). kvm_simd_best: what the CPU and KVASIR_ISA allow;
 * kvm_simd_level: the level in use (kvm_simd_best unless kvm_simd_force
 * pinned a lower one; -1 = detect, the default; a level above
 * kvm_simd_best is capped at it). For tests and benches that compare the
 * levels; the results agree to float rounding. A config whose shapes do
 * not fit a level's lanes (multiples of 16, or 8) runs the next level down.
 * The engine's dense cache (engine/kv_dense.c) runs its loops at this level too. */
enum { KVM_SIMD_PORTABLE = 0, KVM_SIMD_AVX2 = 1, KVM_SIMD_AVX512 = 2 };
void kvm_simd_force(int level);
int kvm_simd_level(void);
int kvm_simd_best(void);
const char *kvm_simd_name(int level); /* "portable", "avx2", "avx512" */

/* ---- Hashing (snapshot checksums, token and segment hashes) ---- */
/* 64-bit, 4 lanes of multiply-rotate over 8-byte words; every step is a
 * bijection of the lane state, so any change within one 8-byte word (any
 * single-byte flip) always changes the result. Not cryptographic. */
uint64_t kvm_hash64(const void *data, size_t n, uint64_t seed);

/* ---- Resident prefixes (kvmem/store.c) ---- */
typedef struct kvm_prefix kvm_prefix;
typedef struct kvm_store kvm_store;

/* A prefix segment: a run of tokens (e.g. one file), ordered by the caller
 * from least to most recently changed so an edit invalidates only the tail. */
typedef struct kvm_segment {
  const int32_t *tokens;
  size_t n;
} kvm_segment;

/* snap_dir NULL: $XDG_CACHE_HOME/kvasir/kv. budget: bytes of resident
 * prefixes kept in RAM (LRU eviction; evicted prefixes stay on disk).
 * Thread-safe: any thread may call the kvm_store_* functions, and fork,
 * free forks and unref prefixes (reference counts are atomic); one cache is
 * still used by one thread at a time. */
int kvm_store_open(kvm_store **out, const kvm_config *cfg, uint64_t model_hash, size_t budget,
                   const char *snap_dir, kv_err *err);
void kvm_store_free(kvm_store *s);
/* The config the store was opened with (its prefixes' and forks'). */
const kvm_config *kvm_store_config(const kvm_store *s);
/* Resident bytes (owned by resident prefixes). Always <= budget after any call. */
size_t kvm_store_bytes(const kvm_store *s);
int kvm_store_count(const kvm_store *s);

/* Find the longest leading run of segs (by the segment hash chain) that a
 * resident prefix or a valid disk snapshot covers. On success *out is a new
 * reference (kvm_prefix_unref when done), *n_segs_matched >= 1 and
 * *n_tokens is the tokens covered. KV_ENOTFOUND when nothing matches.
 * Corrupt or stale snapshots are deleted and skipped, never used; when one
 * was, the KV_ENOTFOUND message names it (path, section and byte range). */
int kvm_store_lookup(kvm_store *s, const kvm_segment *segs, int n_segs, kvm_prefix **out,
                     int *n_segs_matched, size_t *n_tokens, kv_err *err);
/* Freeze the state of `cache` (whose tokens are exactly the concatenation of
 * segs) as a prefix: takes ownership of cache (even on error). Keeps it
 * resident if it fits the budget and writes a snapshot to disk; *out (may be
 * NULL) gets a reference. KV_EIO if only the snapshot failed (*out is set). */
int kvm_store_put(kvm_store *s, const kvm_segment *segs, int n_segs, kvm_cache *cache, kvm_prefix **out,
                  kv_err *err);

/* A new cache holding the prefix's state truncated to its first n_tokens
 * (<= kvm_prefix_len). Shares the prefix's blocks (copy-on-write: the fork
 * only ever appends its own); with n_tokens == kvm_prefix_len it is exactly
 * the state the prefix was frozen in. The fork keeps the prefix alive. */
int kvm_prefix_fork(kvm_prefix *p, size_t n_tokens, kvm_cache **out, kv_err *err);
size_t kvm_prefix_len(const kvm_prefix *p);
void kvm_prefix_ref(kvm_prefix *p);
void kvm_prefix_unref(kvm_prefix *p);
/* 1 if the prefix came from a disk snapshot (mmap'd), 0 if computed here. */
int kvm_prefix_from_disk(const kvm_prefix *p);

/* Snapshot one frozen cache to a file and back (used by kvm_store; exposed
 * for tests). Loading verifies magic, version, config, model and token
 * hashes, and every section checksum: KV_EFORMAT names the field/offset. */
int kvm_snapshot_write(const char *path, const kvm_cache *c, uint64_t model_hash, uint64_t token_hash,
                       const uint64_t *chain, const uint64_t *seg_end, int n_segs, kv_err *err);

#ifdef __cplusplus
}
#endif
#endif
