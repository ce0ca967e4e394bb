/*
 * kvmem_eng.h — the KV memory (kvmem.h) plugged into the engine: an
 * eng_kv_ops implementation, a context constructor that sets the per-layer
 * policy from the model (sliding-window layers keep only their window), and
 * the hooks resident prefixes need (take a context's cache out to store it,
 * put a forked prefix in). Engine-internal but shared with cli/ and bench/.
 */
#ifndef KVASIR_KVMEM_ENG_H
#define KVASIR_KVMEM_ENG_H

#include "engine/engine.h"
#include "engine/kvmem.h"

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

/* The kvm_config kvm_eng_ctx_create would use for model m with n_ctx
 * positions: defaults with every layer in `mode`, except that for
 * KVM_COMPRESSED the model's sliding-window layers become KVM_LOCAL
 * (window n_swa + the engine's batch). Edit it, then pass it below. */
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

#ifdef __cplusplus
}
#endif
#endif
