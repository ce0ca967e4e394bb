/*
 * model.c — the daemon's side of the engine: which local model answers a
 * tier, loading it on the first ask that needs it, and unloading the least
 * recently used one when the next would not fit the memory cap; `status`
 * and `models.list` say which are loaded; cache.stats counts the resident
 * prefixes (built and used by ask.c) and their tokens. SIGHUP retries a
 * model that failed to load.
 *
 * Which model: the tier's `model:` in config.yaml (a name from the models
 * registry, engine/registry.c, or a GGUF path), else the default model
 * (--model, $KVASIR_MODEL, the engine's default file). config.yaml and the
 * registry are read again whenever their files change. The tier's
 * `context:` sizes the model's generation contexts (the largest among the
 * tiers naming the same model).
 *
 * The memory cap (--model-memory, else config.yaml `model_memory:`, else
 * 75% of RAM) bounds the sum over loaded models of file bytes + the KV of
 * one generation context at the tier's context size (kvm_eng_ctx_size under
 * DMN_KV_BUDGET, the budget ask.c sizes contexts with). A model that alone
 * exceeds the cap is refused, naming both numbers.
 *
 * Invariants: a slot's model is immutable while loaded and is freed only
 * with refs == 0 (no ask or completion holds it) and after every context
 * made on it (the repos' prefix contexts, the completion context) and its
 * prefix store were freed; lock order is prefix->mu / fim_mu before mu, so
 * unloading takes those locks with mu released (the slot is EVICTING
 * meanwhile, and waiters sleep on cv). A loader counts only LOADED slots
 * against the cap and waits only for models in use, which their holders
 * always release, so two loaders never wait on each other.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon/conv_internal.h"
#include "daemon/model_internal.h"
#include "engine/kvmem_eng.h"

#define DMN_KV_BUDGET ((size_t)256 << 20) /* ask.c's ASK_KV_BUDGET: one context's compressed KV */
#define WAIT_IN_USE_S 120                 /* a loader waits this long for models in use to be released */

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

/* Identity of a file (absent = all zero); a file edited within the last two
 * seconds never compares equal, so an edit inside one mtime tick is seen. */
static void stamp_of(const char *path, int64_t st4[4]) {
  struct stat st;
  memset(st4, 0, 4 * sizeof *st4);
  if (stat(path, &st) != 0) return;
  int64_t m = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
  st4[0] = (int64_t)st.st_ino, st4[1] = (int64_t)st.st_size, st4[2] = m;
  st4[3] = (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec;
  if (time(NULL) - st.st_mtim.tv_sec < 2 || time(NULL) - st.st_ctim.tv_sec < 2) st4[3] = -1 - st4[3];
}

static int stamp_eq(const int64_t a[4], const int64_t b[4]) {
  return a[3] >= 0 && !memcmp(a, b, 4 * sizeof *a);
}

/* The cap in bytes: the flag, else config.yaml, else 75% of RAM (mu held). */
static void resolve_cap(dmn_backend *b) {
  const dmn_config *c = dmn_server_config(b->srv);
  uint64_t bytes = c->model_memory;
  double frac = c->model_memory_frac;
  const char *src = "--model-memory";
  if (!bytes && frac <= 0) {
    if (b->cfg) pol_policy_model_memory(b->cfg, &bytes, &frac);
    src = "config.yaml model_memory";
  }
  if (!bytes && frac <= 0) frac = 0.75, src = "75% of RAM";
  if (!bytes) {
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGE_SIZE);
    bytes = (uint64_t)((double)(pages > 0 ? pages : 0) * (double)(psz > 0 ? psz : 4096) * frac);
  }
  b->cap = bytes;
  snprintf(b->cap_source, sizeof b->cap_source, "%s", src);
}

/* Reads config.yaml and models.tsv again when they changed (mu held). A file
 * that breaks leaves the last good one in force (logged once). */
static void refresh(dmn_backend *b) {
  char dir[4000], path[4096];
  int64_t st[4];
  if (kv_xdg_dir(dir, sizeof dir, "config") == 0) {
    snprintf(path, sizeof path, "%s/config.yaml", dir);
    stamp_of(path, st);
    if (!b->cfg || !stamp_eq(st, b->cfg_stamp)) {
      pol_policy *p = NULL;
      kv_err e;
      if (pol_policy_open(&p, NULL, &e) == 0) {
        pol_policy_free(b->cfg);
        b->cfg = p;
        b->cfg_err[0] = 0;
        memcpy(b->cfg_stamp, st, sizeof st);
      } else if (strcmp(b->cfg_err, e.msg)) {
        snprintf(b->cfg_err, sizeof b->cfg_err, "%s", e.msg);
        dmn_log(b->srv, DMN_ERROR, "model.config", "%s (tiers keep their last good models)", e.msg);
      }
    }
  }
  if (eng_registry_path(path, sizeof path) == 0) {
    stamp_of(path, st);
    if (!stamp_eq(st, b->reg_stamp)) {
      eng_registry r;
      kv_err e;
      if (eng_registry_load(&r, path, &e) == 0) {
        eng_registry_free(&b->reg);
        b->reg = r;
        memcpy(b->reg_stamp, st, sizeof st);
      } else {
        dmn_log(b->srv, DMN_ERROR, "model.registry", "%s (the last good registry stays)", e.msg);
      }
    }
  }
  resolve_cap(b);
}

/* The model file and name a tier asks for (mu held): key = canonical path,
 * name = registry name or "" (general.name once loaded), *context. */
static int resolve_tier(dmn_backend *b, const char *tier, char *key, size_t kn, char *name, size_t nn, int *context,
                        kv_err *err) {
  refresh(b);
  pol_local_tier lt;
  memset(&lt, 0, sizeof lt);
  if (!b->cfg || pol_tier_local(b->cfg, tier ? tier : "flash", &lt)) memset(&lt, 0, sizeof lt);
  *context = lt.context > (1u << 24) ? 1 << 24 : (int)lt.context;
  char want[4096];
  const eng_reg_entry *re = NULL;
  if (lt.model) {
    re = eng_registry_find(&b->reg, lt.model);
    if (re) snprintf(want, sizeof want, "%s", re->path);
    else if (strchr(lt.model, '/') || strstr(lt.model, ".gguf")) {
      const char *home = getenv("HOME");
      if (lt.model[0] == '~' && lt.model[1] == '/' && home) snprintf(want, sizeof want, "%s%s", home, lt.model + 1);
      else snprintf(want, sizeof want, "%s", lt.model);
    } else {
      char known[512] = "";
      for (size_t i = 0; i < b->reg.n; i++) {
        size_t l = strlen(known);
        snprintf(known + l, sizeof known - l, "%s%s", l ? ", " : "", b->reg.v[i].name);
      }
      return kv_err_set(err, KV_ENOTFOUND,
                        "%s:%d:%d: tiers.%s.model: '%s' is not a registered model (registered: %s; kvasir models add "
                        "PATH) nor a GGUF path",
                        lt.file, lt.line, lt.col, tier ? tier : "flash", lt.model, known[0] ? known : "none");
    }
  } else if (b->model_path[0]) {
    snprintf(want, sizeof want, "%s", b->model_path);
  } else {
    return kv_err_set(err, KV_EUNSUPPORTED, "no model: set KVASIR_MODEL or run `scripts/fetch-model smollm2`");
  }
  char abs[PATH_MAX];
  snprintf(key, kn, "%s", realpath(want, abs) ? abs : want);
  if (!re) re = eng_registry_find_path(&b->reg, key);
  snprintf(name, nn, "%s", re ? re->name : "");
  /* a model named by two tiers gets the larger context */
  for (const char *t2 = "flash"; t2; t2 = !strcmp(t2, "flash") ? "pro" : NULL) {
    pol_local_tier o;
    if (b->cfg && pol_tier_local(b->cfg, t2, &o) == 0 && o.context > (uint64_t)*context &&
        ((o.model && lt.model && !strcmp(o.model, lt.model)) || (!o.model && !lt.model)))
      *context = o.context > (1u << 24) ? 1 << 24 : (int)o.context;
  }
  return 0;
}

int dmn_backend_new(dmn_backend **out, dmn_server *s, kv_err *err) {
  dmn_backend *b = calloc(1, sizeof *b);
  if (!b) return kv_err_set(err, KV_ENOMEM, "model: out of memory");
  b->srv = s;
  pthread_mutex_init(&b->mu, NULL);
  pthread_cond_init(&b->cv, NULL);
  pthread_mutex_init(&b->fim_mu, NULL);
  resolve_model_path(b);
  resolve_cap(b);
  *out = b;
  return 0;
}

void dmn_backend_reload(dmn_backend *b) {
  pthread_mutex_lock(&b->mu);
  resolve_model_path(b);
  for (int i = 0; i < DMN_MAX_MODELS; i++)
    if (b->slots[i].state == DMN_SLOT_FAILED) { /* e.g. the model was fetched after the daemon started */
      b->slots[i].state = DMN_SLOT_EMPTY;
      dmn_log(b->srv, DMN_INFO, "daemon.reload", "model %s will be loaded again on the next ask", b->slots[i].key);
    }
  memset(b->cfg_stamp, 0, sizeof b->cfg_stamp);
  memset(b->reg_stamp, 0, sizeof b->reg_stamp);
  pthread_mutex_unlock(&b->mu);
}

/* Frees everything made on slot's model, then the model (no lock held; the
 * slot is EVICTING, refs == 0). */
static void unload(dmn_backend *b, dmn_model_slot *sl) {
  pthread_mutex_lock(&b->mu);
  dmn_prefix *head = b->prefixes; /* nodes are only ever added at the head */
  pthread_mutex_unlock(&b->mu);
  for (dmn_prefix *p = head; p; p = p->next) {
    pthread_mutex_lock(&p->mu);
    if (p->ctx && eng_ctx_model(p->ctx) == sl->model) {
      eng_ctx_free(p->ctx);
      p->ctx = NULL;
    }
    pthread_mutex_unlock(&p->mu);
  }
  /* idle conversations' contexts of this model (a busy one holds the model,
   * so it is not the one unloaded) */
  pthread_mutex_lock(&b->mu);
  for (dmn_conv *c = b->convs; c; c = c->next)
    if (!c->busy && c->slot.ctx && eng_ctx_model(c->slot.ctx) == sl->model) {
      eng_ctx_free(c->slot.ctx);
      c->slot.ctx = NULL;
    }
  pthread_mutex_unlock(&b->mu);
  pthread_mutex_lock(&b->fim_mu);
  if (b->fim_ctx && eng_ctx_model(b->fim_ctx) == sl->model) {
    eng_ctx_free(b->fim_ctx);
    b->fim_ctx = NULL;
  }
  pthread_mutex_unlock(&b->fim_mu);
  if (sl->store) kvm_store_free(sl->store);
  sl->store = NULL;
  eng_model_free(sl->model);
  sl->model = NULL;
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
  b->prefixes = NULL;
  dmn_conv_free_all(b); /* before the models: a conversation's context forks a model's prefix store */
  if (b->fim_ctx) eng_ctx_free(b->fim_ctx);
  b->fim_ctx = NULL;
  for (int i = 0; i < DMN_MAX_MODELS; i++)
    if (b->slots[i].model) unload(b, &b->slots[i]);
  pthread_mutex_destroy(&b->fim_mu);
  pol_policy_free(b->cfg);
  eng_registry_free(&b->reg);
  pthread_cond_destroy(&b->cv);
  pthread_mutex_destroy(&b->mu);
  free(b);
}

static size_t used_bytes(const dmn_backend *b) { /* mu held: what LOADED models take */
  size_t n = 0;
  for (int i = 0; i < DMN_MAX_MODELS; i++)
    if (b->slots[i].state == DMN_SLOT_LOADED || b->slots[i].state == DMN_SLOT_EVICTING)
      n += b->slots[i].file_bytes + b->slots[i].kv_bytes;
  return n;
}

/* KV of one generation context of m at the tier's context (what ask.c makes). */
static size_t kv_estimate(const eng_model *m, int context) {
  int n = kvm_eng_ctx_size(m, context, DMN_KV_BUDGET);
  if (n <= 0) return 0;
  kvm_config cfg;
  kvm_eng_config(&cfg, m, n, KVM_COMPRESSED);
  return kvm_config_peak_bytes(&cfg, n);
}

static void human(char *buf, size_t n, uint64_t v) {
  if (v >= (1ull << 30)) snprintf(buf, n, "%.2f GiB", (double)v / (1ull << 30));
  else if (v >= (1ull << 20)) snprintf(buf, n, "%.1f MiB", (double)v / (1ull << 20));
  else snprintf(buf, n, "%.1f KiB", (double)v / 1024);
}

/* Makes room for `need` bytes besides slot `self` (mu held; may release it
 * while unloading or waiting). 0, or KV_ELIMIT naming the numbers. */
static int make_room(dmn_backend *b, dmn_model_slot *self, size_t need, kv_err *err) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += WAIT_IN_USE_S;
  while (used_bytes(b) + need > b->cap) {
    dmn_model_slot *lru = NULL;
    int busy = 0;
    for (int i = 0; i < DMN_MAX_MODELS; i++) {
      dmn_model_slot *s = &b->slots[i];
      if (s == self || (s->state != DMN_SLOT_LOADED && s->state != DMN_SLOT_EVICTING)) continue;
      if (s->state == DMN_SLOT_EVICTING || s->refs > 0) busy = 1;
      else if (!lru || s->last_used < lru->last_used) lru = s;
    }
    char a[32], c[32];
    human(a, sizeof a, need);
    human(c, sizeof c, b->cap);
    if (lru) {
      lru->state = DMN_SLOT_EVICTING;
      dmn_log(b->srv, DMN_INFO, "model.unload", "%s unloaded (least recently used) to make room for %s under the cap of %s",
              lru->name, a, c);
      pthread_mutex_unlock(&b->mu);
      unload(b, lru);
      pthread_mutex_lock(&b->mu);
      lru->state = DMN_SLOT_EMPTY;
      b->unloads++;
      pthread_cond_broadcast(&b->cv);
    } else if (busy) {
      if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT)
        return kv_err_set(err, KV_EBUSY, "model memory: %s does not fit the cap of %s (%s) while the loaded models are in use",
                          a, c, b->cap_source);
    } else {
      return kv_err_set(err, KV_ELIMIT,
                        "model memory: %s needs %s (file + KV), more than the cap of %s (%s; raise model_memory in "
                        "config.yaml or kvasird --model-memory)",
                        self->key, a, c, b->cap_source);
    }
  }
  return 0;
}

int dmn_backend_model_for(dmn_backend *b, const char *tier, eng_model **out, kv_err *err) {
  *out = NULL;
  if (dmn_server_config(b->srv)->stub_token_ms > 0)
    return kv_err_set(err, KV_EUNSUPPORTED, "stub generator configured (no model)");
  char key[4096], name[128];
  int context = 0, rc = 0;
  pthread_mutex_lock(&b->mu);
  for (;;) {
    if ((rc = resolve_tier(b, tier, key, sizeof key, name, sizeof name, &context, err))) break;
    dmn_model_slot *sl = NULL, *free_sl = NULL;
    for (int i = 0; i < DMN_MAX_MODELS; i++) {
      if (b->slots[i].state != DMN_SLOT_EMPTY && !strcmp(b->slots[i].key, key)) sl = &b->slots[i];
      else if (!free_sl && b->slots[i].state == DMN_SLOT_EMPTY) free_sl = &b->slots[i];
    }
    if (sl && (sl->state == DMN_SLOT_LOADING || sl->state == DMN_SLOT_EVICTING)) {
      pthread_cond_wait(&b->cv, &b->mu);
      continue;
    }
    if (sl && sl->state == DMN_SLOT_FAILED) {
      rc = kv_err_set(err, KV_EUNSUPPORTED, "%s", sl->err);
      break;
    }
    if (sl && sl->context != context && sl->refs == 0) sl->context = context; /* config changed */
    if (!sl) {
      if (!free_sl) {
        rc = kv_err_set(err, KV_ELIMIT, "model: %d models known already (SIGHUP forgets failed ones)", DMN_MAX_MODELS);
        break;
      }
      sl = free_sl;
      memset(sl, 0, sizeof *sl);
      snprintf(sl->key, sizeof sl->key, "%s", key);
      sl->context = context;
      sl->state = DMN_SLOT_LOADING;
      pthread_mutex_unlock(&b->mu);
      kv_err e;
      double t0 = kv_now();
      eng_model *m = NULL;
      int orc = eng_model_open(&m, key, &e);
      pthread_mutex_lock(&b->mu);
      if (orc) {
        sl->state = DMN_SLOT_FAILED;
        snprintf(sl->err, sizeof sl->err, "%s", e.msg);
        dmn_log(b->srv, DMN_ERROR, "model.load", "%s", e.msg);
        pthread_cond_broadcast(&b->cv);
        continue; /* reported through the FAILED slot */
      }
      sl->file_bytes = eng_model_get_info(m)->file_size;
      sl->kv_bytes = kv_estimate(m, context);
      snprintf(sl->name, sizeof sl->name, "%s", name[0] ? name : eng_model_get_info(m)->name);
      if ((rc = make_room(b, sl, sl->file_bytes + sl->kv_bytes, err))) {
        eng_model_free(m);
        memset(sl, 0, sizeof *sl); /* not a failure of the file: tried again next time */
        pthread_cond_broadcast(&b->cv);
        break;
      }
      sl->model = m;
      sl->state = DMN_SLOT_LOADED;
      b->loads++;
      dmn_log(b->srv, DMN_INFO, "model.load", "%s (%s) loaded in %.2f s for tier %s", sl->name, key, kv_now() - t0,
              tier ? tier : "flash");
      pthread_cond_broadcast(&b->cv);
    }
    sl->refs++;
    sl->uses++;
    sl->last_used = kv_now();
    snprintf(sl->tier, sizeof sl->tier, "%s", tier ? tier : "flash");
    snprintf(b->last_tier, sizeof b->last_tier, "%s", sl->tier);
    snprintf(b->last_model, sizeof b->last_model, "%s", sl->name);
    *out = sl->model;
    break;
  }
  pthread_mutex_unlock(&b->mu);
  return rc;
}

int dmn_backend_model(dmn_backend *b, eng_model **out, kv_err *err) { return dmn_backend_model_for(b, NULL, out, err); }

static dmn_model_slot *slot_of(dmn_backend *b, const eng_model *m) { /* mu held */
  for (int i = 0; i < DMN_MAX_MODELS; i++)
    if (m && b->slots[i].model == m && b->slots[i].state == DMN_SLOT_LOADED) return &b->slots[i];
  return NULL;
}

void dmn_backend_release(dmn_backend *b, eng_model *model) {
  if (!model) return;
  pthread_mutex_lock(&b->mu);
  dmn_model_slot *sl = slot_of(b, model);
  if (sl && sl->refs > 0) sl->refs--;
  if (sl) sl->last_used = kv_now();
  pthread_cond_broadcast(&b->cv);
  pthread_mutex_unlock(&b->mu);
}

const char *dmn_backend_model_name(dmn_backend *b, const eng_model *model) {
  pthread_mutex_lock(&b->mu);
  dmn_model_slot *sl = slot_of(b, model);
  const char *n = sl ? sl->name : eng_model_get_info(model)->name; /* stable while the caller holds it */
  pthread_mutex_unlock(&b->mu);
  return n;
}

int dmn_backend_context(dmn_backend *b, const eng_model *model) {
  pthread_mutex_lock(&b->mu);
  dmn_model_slot *sl = slot_of(b, model);
  int c = sl ? sl->context : 0;
  pthread_mutex_unlock(&b->mu);
  return c;
}

kvm_store *dmn_backend_store(dmn_backend *b, eng_ctx *ctx, size_t budget) {
  pthread_mutex_lock(&b->mu);
  dmn_model_slot *sl = slot_of(b, eng_ctx_model(ctx));
  kv_err e;
  if (sl && !sl->store && kvm_eng_store_open(&sl->store, ctx, budget, NULL, &e))
    dmn_log(b->srv, DMN_WARN, "kv.store", "resident prefixes of %s stay in this context only: %s", sl->name, e.msg);
  kvm_store *st = sl ? sl->store : NULL;
  pthread_mutex_unlock(&b->mu);
  return st;
}

static const char *state_name(int st) {
  switch (st) {
  case DMN_SLOT_LOADING: return "loading";
  case DMN_SLOT_LOADED: return "loaded";
  case DMN_SLOT_EVICTING: return "unloading";
  case DMN_SLOT_FAILED: return "failed";
  default: return "not loaded";
  }
}

/* "models": the cap, what is loaded, and the last local answer (mu held). */
static cJSON *models_json(dmn_backend *b) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "memory_cap", (double)b->cap);
  cJSON_AddStringToObject(o, "memory_cap_source", b->cap_source);
  cJSON_AddNumberToObject(o, "memory_used", (double)used_bytes(b));
  cJSON_AddNumberToObject(o, "loads", (double)b->loads);
  cJSON_AddNumberToObject(o, "unloads", (double)b->unloads);
  cJSON *arr = cJSON_AddArrayToObject(o, "loaded");
  double now = kv_now();
  for (int i = 0; i < DMN_MAX_MODELS; i++) {
    const dmn_model_slot *s = &b->slots[i];
    if (s->state == DMN_SLOT_EMPTY) continue;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", s->name[0] ? s->name : s->key);
    cJSON_AddStringToObject(e, "path", s->key);
    cJSON_AddStringToObject(e, "state", state_name(s->state));
    cJSON_AddStringToObject(e, "tier", s->tier);
    cJSON_AddNumberToObject(e, "file_bytes", (double)s->file_bytes);
    cJSON_AddNumberToObject(e, "kv_bytes", (double)s->kv_bytes);
    cJSON_AddNumberToObject(e, "context", s->context);
    cJSON_AddNumberToObject(e, "in_use", s->refs);
    cJSON_AddNumberToObject(e, "uses", (double)s->uses);
    cJSON_AddNumberToObject(e, "idle_s", s->last_used > 0 ? now - s->last_used : 0);
    if (s->state == DMN_SLOT_FAILED) cJSON_AddStringToObject(e, "error", s->err);
    cJSON_AddItemToArray(arr, e);
  }
  if (b->last_tier[0]) {
    cJSON *l = cJSON_AddObjectToObject(o, "last");
    cJSON_AddStringToObject(l, "tier", b->last_tier);
    cJSON_AddStringToObject(l, "model", b->last_model);
  }
  return o;
}

void dmn_backend_status(dmn_backend *b, cJSON *o) {
  pthread_mutex_lock(&b->mu);
  const dmn_config *c = dmn_server_config(b->srv);
  /* "model": the default model, as before the tiers named models */
  cJSON *m = cJSON_AddObjectToObject(o, "model");
  const dmn_model_slot *def = NULL;
  char abs[PATH_MAX];
  const char *key = b->model_path[0] && realpath(b->model_path, abs) ? abs : b->model_path;
  for (int i = 0; i < DMN_MAX_MODELS; i++)
    if (b->slots[i].state != DMN_SLOT_EMPTY && !strcmp(b->slots[i].key, key)) def = &b->slots[i];
  if (m) {
    cJSON_AddStringToObject(m, "path", b->model_path);
    cJSON_AddStringToObject(m, "state", c->stub_token_ms > 0 ? "stub"
                                        : def && def->state == DMN_SLOT_LOADED ? "loaded"
                                        : def && def->state == DMN_SLOT_FAILED ? "failed"
                                                                                 : "not loaded yet");
    if (def && def->state == DMN_SLOT_FAILED) cJSON_AddStringToObject(m, "error", def->err);
    if (b->last_tier[0]) { /* who answered last */
      cJSON_AddStringToObject(m, "tier", b->last_tier);
      cJSON_AddStringToObject(m, "model", b->last_model);
    }
  }
  cJSON_AddItemToObject(o, "models", models_json(b));
  pthread_mutex_unlock(&b->mu);
}

int dmn_models_list(const dmn_request *r, cJSON **result, kv_err *err) {
  dmn_backend *b = dmn_server_backend(r->srv);
  pthread_mutex_lock(&b->mu);
  refresh(b);
  cJSON *o = models_json(b);
  cJSON *reg = cJSON_AddArrayToObject(o, "registered");
  for (size_t i = 0; i < b->reg.n; i++) {
    const eng_reg_entry *e = &b->reg.v[i];
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "name", e->name);
    cJSON_AddStringToObject(x, "path", e->path);
    cJSON_AddStringToObject(x, "arch", e->arch);
    cJSON_AddNumberToObject(x, "size", (double)e->size);
    cJSON_AddStringToObject(x, "sha256", e->sha256);
    cJSON *tiers = cJSON_AddArrayToObject(x, "tiers");
    for (const char *t = "flash"; t; t = !strcmp(t, "flash") ? "pro" : NULL) {
      pol_local_tier lt;
      if (b->cfg && pol_tier_local(b->cfg, t, &lt) == 0 && lt.model && !strcmp(lt.model, e->name))
        cJSON_AddItemToArray(tiers, cJSON_CreateString(t));
    }
    const char *state = "not loaded";
    for (int k = 0; k < DMN_MAX_MODELS; k++)
      if (b->slots[k].state != DMN_SLOT_EMPTY && !strcmp(b->slots[k].key, e->path)) state = state_name(b->slots[k].state);
    cJSON_AddStringToObject(x, "state", state);
    cJSON_AddItemToArray(reg, x);
  }
  pthread_mutex_unlock(&b->mu);
  if (!o) return kv_err_set(err, KV_ENOMEM, "models.list: out of memory");
  *result = o;
  return 0;
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
