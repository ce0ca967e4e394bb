/*
 * kvmem_eng.h — the KV memory (kvmem/kvmem.h) plugged into the engine: an
 * eng_kv_ops implementation, a context constructor that sets the per-layer
 * policy from the model (sliding-window layers keep only their window), and
 * the hooks resident prefixes need (take a context's cache out to store it,
 * put a forked prefix in), the serving calls the daemon makes (context
 * size, prefix save/load through a kvm_store, cache stats), and the
 * evaluations. The engine's second header, for the callers of the KV
 * memory (daemon/, cli/, bench/); prefix kvm_eng_ / kvm_eval_.
 */
#ifndef KVASIR_KVMEM_ENG_H
#define KVASIR_KVMEM_ENG_H

#include "engine/engine.h"
#include "kvmem/kvmem.h"

#ifdef __cplusplus
extern "C" {
#endif

/* eng_kv_create_fn: compressed memory with the defaults (every layer
 * KVM_COMPRESSED; kvm_eng_ctx_create refines it from the model). */
int kvm_eng_create(void **out, const eng_kv_shape *shape, const eng_kv_ops **ops, kv_err *err);

/* eng_kv_create_fn: every layer KVM_FULL (f16, exact: the reference). */
int kvm_eng_create_full(void **out, const eng_kv_shape *shape, const eng_kv_ops **ops, kv_err *err);
/* An eng_kv_ops cache from an explicit config (n_heads must equal
 * n_kv_heads: the engine attends one query head per call). */
int kvm_eng_kv_create_cfg(void **out, const kvm_config *cfg, const eng_kv_ops **ops, kv_err *err);

/* Compressed caches are sized to at most this share of f16 K/V at 8k tokens. */
#define KVM_ENG_BUDGET 0.25

/* The kvm_config kvm_eng_ctx_create would use for model m with n_ctx
 * positions: defaults with every layer in `mode`, except that for
 * KVM_COMPRESSED the model's sliding-window layers become KVM_LOCAL
 * (window n_swa + the engine's batch) and the key/value bits are the most
 * precise of k8/v4, k4/v4, k4/v2 whose whole cache fits KVM_ENG_BUDGET.
 * Edit it, then pass it below. */
void kvm_eng_config(kvm_config *cfg, const eng_model *m, int n_ctx, kvm_mode mode);

/* eng_ctx_create with the KV memory as cache, configured by cfg (NULL:
 * kvm_eng_config(.., KVM_COMPRESSED)). p->kv_create is ignored. */
int kvm_eng_ctx_create(eng_ctx **out, eng_model *m, const eng_ctx_params *p, const kvm_config *cfg, kv_err *err);

/* For a context made by kvm_eng_ctx_create: its cache (borrowed). */
kvm_cache *kvm_eng_ctx_cache(eng_ctx *ctx);
/* Take the cache out (the caller owns it, e.g. for kvm_store_put); the
 * context is left empty (n_past 0) with a fresh cache of the same config. */
int kvm_eng_ctx_detach(eng_ctx *ctx, kvm_cache **out, kv_err *err);
/* Put a cache holding exactly toks[0..n) (e.g. from kvm_prefix_fork) into
 * the context, which takes ownership; n_past becomes n. */
int kvm_eng_ctx_attach(eng_ctx *ctx, kvm_cache *cache, const int32_t *toks, size_t n, kv_err *err);

/* Identifies the model for snapshots: architecture, shape, file size and a
 * hash of the first bytes of the output and embedding tensors. */
uint64_t kvm_eng_model_hash(const eng_model *m);

/* ---- serving on the compressed memory (what the daemon calls) ----
 *
 * A context on the compressed memory is kvm_eng_ctx_create(&ctx, m, &params,
 * NULL, err); every other engine call (eng_ctx_eval, eng_generate, truncate,
 * common-prefix reuse) works on it unchanged. Resident prefixes persist in a
 * kvm_store keyed by the model hash and the segments' token hash chain (file
 * <dir>/<model_hash>-<chain>.kvm, every byte under a checksum):
 *
 *   n = kvm_eng_ctx_size(m, tier_context, kv_budget);   params.n_ctx = n
 *   kvm_eng_ctx_create(&ctx, m, &params, NULL, err)
 *   kvm_eng_store_open(&st, ctx, resident_budget, NULL, err)   (once per model+config)
 *   if (kvm_eng_prefix_load(ctx, st, segs, n_segs, &got, NULL, err) != 0 || got < prefix_len) {
 *     eng_ctx_eval(ctx, prefix + got, prefix_len - got, 0, err);
 *     kvm_eng_prefix_save(ctx, st, segs, n_segs, err);
 *   }
 *   eng_generate(ctx, smp, prompt, n_prompt, ...)   (prompt starts with the prefix: reused)
 */

/* The context size for model m: `requested` (a tier's `context`) when > 0,
 * else the model's GGUF context_length; never above context_length (as
 * eng_ctx_create caps) nor 2^24; then, when budget > 0, cut to the largest
 * size whose compressed cache (kvm_eng_config(.., KVM_COMPRESSED) at that
 * size, its kvm_config_peak_bytes on the way to that many tokens) fits in
 * budget bytes, found by bisection. 0 when not even one token fits. */
int kvm_eng_ctx_size(const eng_model *m, int requested, size_t budget);

/* A store for the resident prefixes of contexts like ctx (made by
 * kvm_eng_ctx_create): its KV config and kvm_eng_model_hash key the
 * snapshots. budget: resident bytes in RAM; snap_dir NULL: the XDG cache. */
int kvm_eng_store_open(kvm_store **out, eng_ctx *ctx, size_t budget, const char *snap_dir, kv_err *err);

/* Keep ctx's first n tokens as a resident prefix of s and snapshot it, where
 * n is the segments' total and ctx's tokens [0,n) are exactly the segments'
 * (KV_EINVAL naming the first position that differs). When ctx holds exactly
 * those n tokens, its cache goes into the store and ctx continues on a fork
 * of it (sharing its blocks, no copy); otherwise the prefix is a copy and ctx
 * is unchanged. KV_EIO when only the snapshot write failed (the prefix is
 * resident). The positions ctx holds and its next logits are unchanged. */
int kvm_eng_prefix_save(eng_ctx *ctx, kvm_store *s, const kvm_segment *segs, int n_segs, kv_err *err);

/* Start ctx from the longest leading run of segs that s holds, in RAM or in
 * a snapshot on disk (as after a restart): ctx then holds *n_tokens tokens,
 * a copy-on-write fork of the prefix, and *from_disk (may be NULL) says
 * whether it came from a snapshot. KV_ENOTFOUND when nothing matches (ctx
 * unchanged); the message names a snapshot that was refused (corrupt or
 * stale, deleted). The config of s must be ctx's. */
int kvm_eng_prefix_load(eng_ctx *ctx, kvm_store *s, const kvm_segment *segs, int n_segs, size_t *n_tokens,
                        int *from_disk, kv_err *err);

/* `cache.stats` numbers of a context on the compressed memory. */
typedef struct kvm_eng_stats {
  int n_tokens;          /* positions the cache holds */
  size_t kv_bytes;       /* bytes the compressed cache holds for them (shared prefix bytes included) */
  size_t kv_owned_bytes; /* of those, not shared with a resident prefix */
  size_t f16_bytes;      /* what a dense f16 cache of the model would hold for the same tokens */
  double ratio;          /* kv_bytes / f16_bytes (0 when empty) */
  size_t store_bytes;    /* resident prefixes of the store given (0 without one) */
  int store_prefixes;
} kvm_eng_stats;
/* Fills *st for ctx (and store s, may be NULL). KV_EINVAL when ctx has
 * another cache (e.g. the dense one). */
int kvm_eng_stats_get(eng_ctx *ctx, const kvm_store *s, kvm_eng_stats *st, kv_err *err);

/* ---- evaluations (kvmem_eval.c): shared by `kvasir eval` and bench/ ---- */
#define KVM_EVAL_MAX_LENS 24 /* 256 doubling 23 times is past any model context */
typedef struct kvm_eval_result {
  double accuracy;           /* needles whose answer was generated exactly (greedy), 0..1 */
  double answer_logprob;     /* mean over needles of sum log p(answer tokens), teacher-forced */
  double kv_bytes_per_token; /* cache bytes / positions, at the longest haystack */
  double f16_bytes_per_token;
  double decode_tok_s;       /* single-token evals at the longest haystack */
  double ppl;                /* kvm_eval_ppl only */
  int n_needles, n_correct, max_ctx;
  /* kvm_eval_needle, per haystack length (min_ctx doubling): what a
   * calibration records without running the evaluation again */
  int n_lens;
  int len_ctx[KVM_EVAL_MAX_LENS], len_needles[KVM_EVAL_MAX_LENS], len_correct[KVM_EVAL_MAX_LENS];
} kvm_eval_result;

typedef struct kvm_needle_params {
  int min_ctx, max_ctx; /* haystack lengths: min_ctx doubling up to max_ctx (inclusive) */
  int n_depths;         /* needle depths spread over 0..100% (>= 1) */
  int n_threads;        /* 0: all CPUs */
  uint64_t seed;        /* picks keys and values */
  int quiet;            /* no progress bar */
} kvm_needle_params;

/* Needle in a haystack built from the user's text (data, len): for each
 * length and depth, plant "key K -> value V" at that depth, ask for V at
 * the end, and score the answer; cfg NULL = full f16 memory (KVM_FULL).
 * Copy-style needles (hex key, 5-digit value) that small models answer. */
int kvm_eval_needle(eng_model *m, const char *data, size_t len, const kvm_needle_params *p, const kvm_config *cfg,
                    kvm_eval_result *out, kv_err *err);

/* Perplexity over toks[0..n) in one context (scored from position
 * score_from on), then decode_n single-token steps: fills ppl,
 * kv_bytes_per_token, f16_bytes_per_token and decode_tok_s. */
int kvm_eval_ppl(eng_model *m, const int32_t *toks, size_t n, size_t score_from, int decode_n, int n_threads,
                 const kvm_config *cfg, kvm_eval_result *out, kv_err *err);

#ifdef __cplusplus
}
#endif
#endif
