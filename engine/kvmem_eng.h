/*
 * kvmem_eng.h — the KV memory (kvmem/kvmem.h) plugged into the engine: an
 * eng_kv_ops implementation, a context constructor that sets the per-layer
 * policy from the model (sliding-window layers keep only their window), and
 * the hooks resident prefixes need (take a context's cache out to store it,
 * put a forked prefix in). Engine-internal but shared with cli/ and bench/.
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
