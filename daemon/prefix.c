/*
 * prefix.c — a repository's resident prefix: the system message (repo map
 * and the heads of its stable files, least recently changed first, so an
 * edit changes only the tail) and its KV state on the compressed memory,
 * kept in a kvm_store (RAM + checksummed snapshots) and forked into the
 * context that answers, also after a restart of the daemon.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/prefix_internal.h"
#include "engine/kvmem_eng.h"

#define MAX_PREFIX_BYTES 1500   /* repo map / file list in the resident prefix */
#define STABLE_BYTES 1200       /* heads of stable files in the resident prefix */
#define STABLE_FILE_BYTES 400   /* ... at most this much of each */
#define STABLE_LINES 24

/* 1 when path heads a section of the repo map ("path:" on its own line). */
static int in_map(const char *map, const char *path) {
  size_t n = strlen(path);
  for (const char *p = strstr(map, path); p; p = strstr(p + 1, path))
    if ((p == map || p[-1] == '\n') && p[n] == ':' && p[n + 1] == '\n') return 1;
  return 0;
}

/* The stable files of the resident prefix: the heads (as committed) of the
 * repo map's files, least recently changed first, so an edit to a recent
 * file changes only the tail of the prefix and the cached KV of the rest
 * survives. Best effort: a file that cannot be read is left out. */
static void stable_files(kv_buf *s, cJSON *names, idx_index *ix, const char *map) {
  idx_file_list fl = {0};
  kv_err e;
  if (idx_files(ix, IDX_FILES_INDEXED | IDX_FILES_BY_RECENCY, &fl, &e)) return;
  size_t used = 0;
  int n = 0;
  for (size_t i = 0; i < fl.n && used + 64 < STABLE_BYTES; i++) {
    if (fl.v[i].worktree || !in_map(map, fl.v[i].path)) continue;
    char *txt = NULL;
    size_t tl = 0;
    if (idx_read_lines(ix, fl.v[i].path, 1, STABLE_LINES, 0, &txt, &tl, &e) || !tl) {
      free(txt);
      continue;
    }
    size_t take = tl < STABLE_FILE_BYTES ? tl : STABLE_FILE_BYTES;
    if (take > STABLE_BYTES - used) take = STABLE_BYTES - used;
    while (take < tl && take > 0 && txt[take - 1] != '\n') take--; /* whole lines */
    if (take > 0) {
      if (!n++) kv_buf_append(s, "\nStable files (least recently changed first, as committed):\n", 60);
      kv_buf_printf(s, "--- file %s\n", fl.v[i].path);
      cJSON_AddItemToArray(names, cJSON_CreateString(fl.v[i].path));
      kv_buf_append(s, txt, take);
      used += take;
    }
    free(txt);
  }
  idx_file_list_free(&fl);
}

/* Builds the resident prefix text for a repo from its index; *stable: the
 * paths of the stable files it holds (array, caller owns). */
int dmn_prefix_build_text(const char *repo, idx_index *ix, char **out, cJSON **stable, kv_err *err) {
  *stable = cJSON_CreateArray();
  kv_buf s = KV_BUF_INIT;
  kv_buf_printf(&s,
            "You are kvasir, a private coding assistant for the git repository at %s. "
            "Answer from the code excerpts you are given, briefly, and cite them as path:start-end. "
            "If the excerpts do not contain the answer, say so.\n\n",
            repo);
  char *map = NULL;
  if (idx_repomap(ix, MAX_PREFIX_BYTES / 4, NULL, NULL, &map, err) == 0 && map) {
    kv_buf_append(&s, "Repository map:\n", 16);
    kv_buf_append(&s, map, strlen(map) < MAX_PREFIX_BYTES ? strlen(map) : MAX_PREFIX_BYTES);
    if (*stable) stable_files(&s, *stable, ix, map);
    free(map);
  }
  if (!kv_buf_ok(&s) || !s.data) return kv_err_set(err, KV_ENOMEM, "prefix: out of memory");
  *out = kv_buf_detach(&s, NULL);
  return 0;
}

int dmn_backend_prefix(dmn_backend *b, const char *repo, dmn_prefix **out, kv_err *err) {
  pthread_mutex_lock(&b->mu);
  dmn_prefix *p = b->prefixes;
  while (p && strcmp(p->repo, repo)) p = p->next;
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p) {
      pthread_mutex_unlock(&b->mu);
      return kv_err_set(err, KV_ENOMEM, "out of memory");
    }
    snprintf(p->repo, sizeof p->repo, "%s", repo);
    pthread_mutex_init(&p->mu, NULL);
    p->next = b->prefixes;
    b->prefixes = p;
  }
  pthread_mutex_unlock(&b->mu);
  *out = p;
  return 0;
}

/* The context size of a repo's generation context: the model's GGUF
 * context_length, cut so that its compressed KV memory stays within
 * ASK_KV_BUDGET bytes (kvm_eng_ctx_size); the resident prefixes of all
 * repos share ASK_STORE_BUDGET bytes of RAM (the rest stay on disk). */
#define ASK_KV_BUDGET ((size_t)256 << 20)
#define ASK_STORE_BUDGET ((size_t)256 << 20)
int dmn_prefix_n_ctx(const eng_model *model, int tier_context) {
  int n = kvm_eng_ctx_size(model, tier_context, ASK_KV_BUDGET);
  return n > 0 ? n : 2048;
}

/* Tokens of the resident prefix: the leading tokens the prompt shares with
 * the system message rendered alone (the chat template's turn markers make
 * the boundary exact; the common run is used whatever the template). */
size_t dmn_prefix_len(eng_model *model, const char *system, const int32_t *toks, size_t n) {
  eng_chat_msg m = {"system", system};
  char *sys = NULL;
  kv_err e;
  if (eng_chat_apply(model, &m, 1, 0, &sys, &e)) return 0;
  size_t cap = strlen(sys) + 16, ns = 0, p = 0;
  int32_t *st = malloc(cap * sizeof *st);
  if (st && eng_tokenize(model, sys, strlen(sys), 1, 1, st, cap, &ns, &e) == 0)
    while (p < ns && p < n && st[p] == toks[p]) p++;
  free(st);
  free(sys);
  return p + 1 < n ? p : 0; /* keep at least one prompt token to evaluate */
}

/* Make ctx hold the prompt's first p tokens: in place already, else a fork
 * of the resident prefix from the store (RAM or a snapshot from an earlier
 * run of the daemon), else computed and then kept in the store. */
void dmn_prefix_ensure(dmn_backend *b, dmn_prefix *pre, const int32_t *toks, size_t p) {
  if (p == 0 || eng_ctx_common_prefix(pre->ctx, toks, p) >= p) {
    snprintf(pre->prefix_source, sizeof pre->prefix_source, "ram");
    return;
  }
  kv_err e;
  kvm_store *st = dmn_backend_store(b, pre->ctx, ASK_STORE_BUDGET); /* the store of the context's model */
  if (!st) return; /* eng_generate computes the prefix as part of the prompt */
  kvm_segment seg = {toks, p};
  size_t got = 0;
  int disk = 0;
  eng_ctx_truncate(pre->ctx, 0);
  if (kvm_eng_prefix_load(pre->ctx, st, &seg, 1, &got, &disk, &e) == 0 && got == p) {
    snprintf(pre->prefix_source, sizeof pre->prefix_source, "%s", disk ? "disk" : "ram");
    pthread_mutex_lock(&b->mu);
    if (disk) b->kv_loads_disk++;
    else b->kv_loads_ram++;
    pthread_mutex_unlock(&b->mu);
    return;
  }
  if (e.code == KV_EFORMAT || strstr(e.msg, "snapshot")) dmn_log(b->srv, DMN_WARN, "kv.snapshot", "%s", e.msg);
  eng_ctx_truncate(pre->ctx, 0);
  if (eng_ctx_eval(pre->ctx, toks, p, 0, &e)) {
    eng_ctx_truncate(pre->ctx, 0);
    return;
  }
  snprintf(pre->prefix_source, sizeof pre->prefix_source, "built");
  int rc = kvm_eng_prefix_save(pre->ctx, st, &seg, 1, &e);
  pthread_mutex_lock(&b->mu);
  b->kv_builds++;
  if (rc) b->kv_save_errors++;
  pthread_mutex_unlock(&b->mu);
  if (rc) dmn_log(b->srv, DMN_WARN, "kv.snapshot", "prefix of %s kept in RAM only: %s", pre->repo, e.msg);
}
