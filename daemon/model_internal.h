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
#include "policy/policy.h"

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

/* One local model the daemon knows of: loaded, being loaded or unloaded,
 * or failed (its error kept until SIGHUP). Keyed by the file's canonical
 * path; `name` is its registry name (or general.name when unregistered). */
enum { DMN_SLOT_EMPTY = 0, DMN_SLOT_LOADING, DMN_SLOT_LOADED, DMN_SLOT_EVICTING, DMN_SLOT_FAILED };
#define DMN_MAX_MODELS 8
typedef struct dmn_model_slot {
  int state;
  char key[4096];           /* canonical path of the GGUF */
  char name[128];
  char tier[64];            /* the tier that last asked for it */
  eng_model *model;
  size_t file_bytes, kv_bytes; /* what the memory cap counts: the file + one context's KV */
  int context;              /* the tiers' `context` (the largest of those naming it; 0 = the model's own) */
  int refs;                 /* asks and completions using it now (dmn_backend_release) */
  double last_used;
  uint64_t uses;
  struct kvm_store *store;  /* its resident prefixes' KV (RAM + snapshots), opened with its first context */
  char err[512];
} dmn_model_slot;

struct dmn_backend {
  dmn_server *srv;
  pthread_mutex_t mu;       /* guards everything below except prefix->ctx (prefix->mu) and fim_ctx (fim_mu) */
  pthread_cond_t cv;        /* a slot changed state or a model was released */
  char model_path[2048];    /* the default model: --model, $KVASIR_MODEL, the engine's default */
  dmn_model_slot slots[DMN_MAX_MODELS];
  struct pol_policy *cfg;   /* config.yaml (tiers, model_memory), read again when it changes */
  int64_t cfg_stamp[4], reg_stamp[4];
  char cfg_err[512];
  eng_registry reg;         /* models.tsv, read again when it changes */
  uint64_t cap;             /* bytes the loaded models may take (files + KV) */
  char cap_source[32];      /* "--model-memory", "config.yaml", "75% of RAM" */
  uint64_t loads, unloads;
  char last_tier[64], last_model[128];
  dmn_prefix *prefixes;
  uint64_t asks, completes, prefix_hits, prefix_builds, tokens_prompt, tokens_reused, tokens_gen;
  eng_ctx *fim_ctx;         /* completions' context, kept across keystrokes (fim_mu) */
  pthread_mutex_t fim_mu;
  uint64_t kv_loads_ram, kv_loads_disk, kv_builds, kv_save_errors;
  struct dmn_conv *convs;   /* conversations (conv.c), guarded by mu */
};

/* The model of a local tier (tier NULL: flash), loaded on first use under
 * the memory cap, least recently used idle models unloaded to make room
 * (their contexts and resident prefixes go with them; snapshots stay on
 * disk). The model stays loaded until dmn_backend_release. Any thread,
 * holding no prefix or fim lock. 0, or an error naming why (no model, the
 * tier's model is not registered, the cap is too small for it). */
int dmn_backend_model_for(dmn_backend *b, const char *tier, eng_model **out, kv_err *err);
/* dmn_backend_model_for(b, NULL, ...): the flash tier's model. */
int dmn_backend_model(dmn_backend *b, eng_model **out, kv_err *err);
/* Gives back a model from dmn_backend_model_for (NULL: nothing). */
void dmn_backend_release(dmn_backend *b, eng_model *model);
/* The name answers give a model (registry name, else general.name), and the
 * context its tiers asked for (0 = the model's own); model held by the caller. */
const char *dmn_backend_model_name(dmn_backend *b, const eng_model *model);
int dmn_backend_context(dmn_backend *b, const eng_model *model);
/* The resident-prefix store of ctx's model (opened on first use; NULL when
 * it cannot be, logged). ctx's model is held by the caller. */
struct kvm_store *dmn_backend_store(dmn_backend *b, eng_ctx *ctx, size_t budget);
/* The resident prefix of repo (built on first use; ask.c). */
int dmn_backend_prefix(dmn_backend *b, const char *repo, dmn_prefix **out, kv_err *err);

#endif
