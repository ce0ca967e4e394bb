/*
 * backend.h — which sibling-module APIs the daemon calls. The modules were
 * written in parallel with the daemon; each switch below is 1 once the
 * module's implementation of those calls is in the tree, and code behind a
 * 0 answers KV_EUNSUPPORTED with a message naming what is missing.
 */
#ifndef KVASIR_DAEMON_BACKEND_H
#define KVASIR_DAEMON_BACKEND_H

#ifndef DMN_HAVE_INDEXER
#define DMN_HAVE_INDEXER 1 /* idx_open, idx_sync, idx_search, idx_files, idx_read_lines */
#endif
#ifndef DMN_HAVE_REPOMAP
#define DMN_HAVE_REPOMAP 1 /* idx_repomap */
#endif
#ifndef DMN_HAVE_ENGINE
#define DMN_HAVE_ENGINE 1  /* eng_model_open, eng_ctx_*, eng_chat_apply, eng_tokenize, eng_generate */
#endif
#ifndef DMN_HAVE_LOGS
#define DMN_HAVE_LOGS 1    /* log_db_open, log_ingest, log_query_run, log_triage_run */
#endif
#ifndef DMN_HAVE_POLICY
#define DMN_HAVE_POLICY 1  /* pol_policy_open, pol_explain */
#endif

#include "daemon/internal.h"
#if DMN_HAVE_ENGINE
#include "engine/engine.h"
#endif
#if DMN_HAVE_INDEXER
#include "indexer/indexer.h"
#endif
/* Opaque here so this header compiles whichever switches are on (C11 allows
 * repeating a typedef of the same type). */
typedef struct eng_model eng_model;
typedef struct eng_ctx eng_ctx;

/* A repo's resident prefix: the rendered system message (repo map + stable
 * files) and a context whose KV cache already holds its tokens, reused by
 * every ask on that repo (eng_generate skips the common prefix). */
typedef struct dmn_prefix {
  char repo[1024];
  uint64_t index_syncs;   /* registry sync count the prefix was built at */
  char *text;             /* the system message */
  cJSON *stable;          /* paths of the stable files in it (array, owned) */
  size_t tokens;          /* tokens of the last prompt's shared prefix */
  eng_ctx *ctx;           /* NULL until the first generation */
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
  struct dmn_gate *gate;           /* policy + audit caches (gate.c; own lock) */
  struct dmn_logstores *logstores; /* open log stores (backend.c; own lock) */
  uint64_t asks, completes, prefix_hits, prefix_builds, tokens_prompt, tokens_reused, tokens_gen;
};

/* Loads the model on first use (any thread). 0, or an error naming why. */
int dmn_backend_model(dmn_backend *b, eng_model **out, kv_err *err);
/* The resident prefix of repo (built on first use). */
int dmn_backend_prefix(dmn_backend *b, const char *repo, dmn_prefix **out, kv_err *err);

#endif
