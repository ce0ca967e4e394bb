/*
 * model.c — the daemon's side of the engine: the model is loaded once, on
 * the first ask that needs it, from --model, $KVASIR_MODEL or the engine's
 * default; `status` says whether it is loaded; cache.stats counts the
 * resident prefixes (built and used by ask.c) and their tokens. SIGHUP
 * retries a model that failed to load.
 *
 * Invariants: the model is opened at most once (under mu) and is immutable
 * afterwards, so any worker may use it; a prefix's context is used by one
 * generation at a time (its own mutex, taken in ask.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/conv_internal.h"
#include "daemon/model_internal.h"
#include "engine/kvmem_eng.h"

/* The model path: --model, else $KVASIR_MODEL, else the engine's default
 * when that file exists (else empty). Called with b->mu held or before use. */
static void resolve_model_path(dmn_backend *b) {
  const dmn_config *c = dmn_server_config(b->srv);
  const char *env = getenv("KVASIR_MODEL");
  if (c->model_path) snprintf(b->model_path, sizeof b->model_path, "%s", c->model_path);
  else if (env && *env) snprintf(b->model_path, sizeof b->model_path, "%s", env);
  else if (eng_default_model_path(b->model_path, sizeof b->model_path) || access(b->model_path, R_OK) != 0)
    b->model_path[0] = 0;
}

int dmn_backend_new(dmn_backend **out, dmn_server *s, kv_err *err) {
  dmn_backend *b = calloc(1, sizeof *b);
  if (!b) return kv_err_set(err, KV_ENOMEM, "model: out of memory");
  b->srv = s;
  pthread_mutex_init(&b->mu, NULL);
  pthread_mutex_init(&b->fim_mu, NULL);
  resolve_model_path(b);
  *out = b;
  return 0;
}

void dmn_backend_reload(dmn_backend *b) {
  pthread_mutex_lock(&b->mu);
  if (b->model_state < 0) { /* e.g. the model was fetched after the daemon started */
    b->model_state = 0;
    resolve_model_path(b);
    dmn_log(b->srv, DMN_INFO, "daemon.reload", "model will be loaded again on the next ask (%s)",
            b->model_path[0] ? b->model_path : "no model found");
  }
  pthread_mutex_unlock(&b->mu);
}

void dmn_backend_free(dmn_backend *b) {
  if (!b) return;
  dmn_prefix *p = b->prefixes;
  while (p) {
    dmn_prefix *n = p->next;
    if (p->ctx) eng_ctx_free(p->ctx);
    pthread_mutex_destroy(&p->mu);
    free(p->text);
    cJSON_Delete(p->stable);
    free(p);
    p = n;
  }
  dmn_conv_free_all(b);
  if (b->kvstore) kvm_store_free(b->kvstore);
  if (b->fim_ctx) eng_ctx_free(b->fim_ctx);
  pthread_mutex_destroy(&b->fim_mu);
  if (b->model) eng_model_free(b->model);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

int dmn_backend_model(dmn_backend *b, eng_model **out, kv_err *err) {
  *out = NULL;
  if (dmn_server_config(b->srv)->stub_token_ms > 0)
    return kv_err_set(err, KV_EUNSUPPORTED, "stub generator configured (no model)");
  pthread_mutex_lock(&b->mu);
  int rc = 0;
  if (b->model_state == 0) {
    if (!b->model_path[0]) {
      b->model_state = -1;
      snprintf(b->model_err, sizeof b->model_err,
               "no model: set KVASIR_MODEL or run `scripts/fetch-model smollm2`");
    } else {
      kv_err e;
      double t0 = kv_now();
      if (eng_model_open(&b->model, b->model_path, &e) == 0) {
        b->model_state = 1;
        dmn_log(b->srv, DMN_INFO, "model.load", "%s loaded in %.2f s", b->model_path, kv_now() - t0);
      } else {
        b->model_state = -1;
        snprintf(b->model_err, sizeof b->model_err, "%s", e.msg);
        dmn_log(b->srv, DMN_ERROR, "model.load", "%s", e.msg);
      }
    }
  }
  if (b->model_state == 1) *out = b->model;
  else rc = kv_err_set(err, KV_EUNSUPPORTED, "%s", b->model_err);
  pthread_mutex_unlock(&b->mu);
  return rc;
}

void dmn_backend_status(dmn_backend *b, cJSON *o) {
  pthread_mutex_lock(&b->mu);
  const dmn_config *c = dmn_server_config(b->srv);
  cJSON *m = cJSON_AddObjectToObject(o, "model");
  if (m) {
    cJSON_AddStringToObject(m, "path", b->model_path);
    cJSON_AddStringToObject(m, "state", c->stub_token_ms > 0 ? "stub"
                                        : b->model_state == 1 ? "loaded"
                                        : b->model_state < 0  ? "failed"
                                                              : "not loaded yet");
    if (b->model_state < 0) cJSON_AddStringToObject(m, "error", b->model_err);
  }
  pthread_mutex_unlock(&b->mu);
}

cJSON *dmn_backend_cache_stats(dmn_backend *b) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  pthread_mutex_lock(&b->mu);
  size_t n = 0, bytes = 0;
  cJSON *arr = cJSON_CreateArray();
  for (dmn_prefix *p = b->prefixes; p; p = p->next) {
    n++;
    bytes += p->text ? strlen(p->text) : 0;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "repo", p->repo);
    cJSON_AddNumberToObject(e, "bytes", p->text ? (double)strlen(p->text) : 0);
    cJSON_AddNumberToObject(e, "tokens", (double)p->tokens);
    cJSON_AddNumberToObject(e, "uses", (double)p->uses);
    cJSON_AddBoolToObject(e, "resident_kv", p->ctx != NULL);
    if (p->ctx) {
      cJSON_AddStringToObject(e, "kv_memory", "compressed");
      cJSON_AddNumberToObject(e, "n_ctx", p->n_ctx);
      cJSON_AddNumberToObject(e, "prefix_tokens", (double)p->prefix_tokens);
      cJSON_AddNumberToObject(e, "kv_bytes", (double)p->kv_bytes);
      cJSON_AddNumberToObject(e, "kv_dense_f16_bytes", (double)p->f16_bytes);
      cJSON_AddNumberToObject(e, "kv_ratio", p->f16_bytes ? (double)p->kv_bytes / (double)p->f16_bytes : 0);
      cJSON_AddStringToObject(e, "prefix_source", p->prefix_source);
    }
    cJSON_AddItemToObject(e, "stable_files", p->stable ? cJSON_Duplicate(p->stable, 1) : cJSON_CreateArray());
    cJSON_AddItemToArray(arr, e);
  }
  cJSON_AddNumberToObject(o, "prefixes", (double)n);
  cJSON_AddNumberToObject(o, "prefix_bytes", (double)bytes);
  cJSON_AddNumberToObject(o, "prefix_hits", (double)b->prefix_hits);
  cJSON_AddNumberToObject(o, "prefix_builds", (double)b->prefix_builds);
  cJSON_AddNumberToObject(o, "kv_prefix_loads_ram", (double)b->kv_loads_ram);
  cJSON_AddNumberToObject(o, "kv_prefix_loads_disk", (double)b->kv_loads_disk);
  cJSON_AddNumberToObject(o, "kv_prefix_builds", (double)b->kv_builds);
  cJSON_AddNumberToObject(o, "kv_snapshot_errors", (double)b->kv_save_errors);
  cJSON_AddNumberToObject(o, "asks", (double)b->asks);
  cJSON_AddNumberToObject(o, "completes", (double)b->completes);
  cJSON_AddNumberToObject(o, "tokens_prompt", (double)b->tokens_prompt);
  cJSON_AddNumberToObject(o, "tokens_reused", (double)b->tokens_reused);
  cJSON_AddNumberToObject(o, "tokens_generated", (double)b->tokens_gen);
  cJSON_AddItemToObject(o, "entries", arr);
  pthread_mutex_unlock(&b->mu);
  return o;
}
