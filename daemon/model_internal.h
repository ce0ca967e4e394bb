/*
 * model.h — the engine's side of the daemon, shared by model.c (loading the
 * model, status, cache statistics) and ask.c (ask, complete, the resident
 * prefixes). Internal to the daemon.
 */
#ifndef KVASIR_DAEMON_MODEL_INTERNAL_H
#define KVASIR_DAEMON_MODEL_INTERNAL_H

#include "daemon/internal.h"
#include "engine/engine.h"
#include "indexer/indexer.h"

/* A repo's resident prefix: the rendered system message (repo map + stable
 * files) and a context whose KV cache already holds its tokens, reused by
 * every ask on that repo (eng_generate skips the common prefix). */
typedef struct dmn_prefix {
  char repo[1024];
  uint64_t index_syncs;   /* registry sync count the prefix was built at */
  char *text;             /* the system message */
  cJSON *stable;          /* paths of the stable files in it (array, owned) */
  size_t tokens;          /* tokens of the last prompt's shared prefix */
  eng_ctx *ctx;           /* NULL until the first generation; on the compressed KV memory */
  size_t prefix_tokens;   /* tokens of the system message (the resident prefix) */
  size_t kv_bytes, f16_bytes; /* the context's cache after its last generation, and a dense f16 one's */
  int n_ctx;
  char prefix_source[8];  /* where the prefix's KV last came from: "ram", "disk", "built" */
  pthread_mutex_t mu;     /* one generation per repo at a time */
  uint64_t uses;
  struct dmn_prefix *next;
} dmn_prefix;

struct dmn_backend {
  dmn_server *srv;
  pthread_mutex_t mu;       /* guards everything below except prefix->ctx (prefix->mu) */
  int model_state;          /* 0 not tried, 1 loaded, -1 failed */
  char model_path[2048];
  char model_err[512];
  eng_model *model;
  dmn_prefix *prefixes;
  uint64_t asks, completes, prefix_hits, prefix_builds, tokens_prompt, tokens_reused, tokens_gen;
  struct kvm_store *kvstore; /* resident prefixes' KV (RAM + snapshots), opened with the first context */
  eng_ctx *fim_ctx;         /* completions' context, kept across keystrokes (fim_mu) */
  pthread_mutex_t fim_mu;
  uint64_t kv_loads_ram, kv_loads_disk, kv_builds, kv_save_errors;
  struct dmn_conv *convs;   /* conversations (conv.c), guarded by mu */
  uint64_t conv_seq;
};

/* Loads the model on first use (any thread). 0, or an error naming why. */
int dmn_backend_model(dmn_backend *b, eng_model **out, kv_err *err);
/* The resident prefix of repo (built on first use; ask.c). */
int dmn_backend_prefix(dmn_backend *b, const char *repo, dmn_prefix **out, kv_err *err);

#endif
