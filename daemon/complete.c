/*
 * complete.c — `complete`: fill-in-the-middle at the editor's cursor with
 * the model's own FIM tokens (fim.c), on one completion context kept across
 * keystrokes so the unchanged start of the prompt is reused; a file is read
 * only when it resolves inside a registered repository.
 *
 * Routing: in a registered repository the project's policy decides, as for
 * an ask (kind `complete`): refuse; a local tier (flash, pro: the tier's
 * model answers); or a hosted tier, which gets the lines around the cursor
 * redacted (cut at the cursor from the redaction of the whole buffer) as a
 * /completions request with prompt + suffix, audited, and falls back to the
 * local tier when it fails or when nothing may be sent. Text outside every
 * repository never leaves the machine and is completed by flash.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/fim_internal.h"
#include "daemon/model_internal.h"
#include "daemon/policy_internal.h"
#include "daemon/stream_internal.h"
#include "engine/kvmem_eng.h"
#include "policy/policy.h"


/* The registered repository holding path, resolved the way the kernel
 * would open it (symlinks followed); KV_EDENIED for a path outside every
 * registered repository. */
static int resolve_in_repos(dmn_server *s, const char *path, pol_resolved *out, char *root, size_t rn, kv_err *err) {
  cJSON *list = dmn_repos_list(dmn_server_repos(s));
  const char *roots[64];
  size_t n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, list) {
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(e, "path");
    if (cJSON_IsString(pp) && n < 64) roots[n++] = pp->valuestring;
  }
  int rc = n ? pol_path_resolve(roots, n, path, out, err)
             : kv_err_set(err, KV_EDENIED, "%s: no repository is registered (kvasir repo add)", path);
  if (!rc && out->root < n) snprintf(root, rn, "%s", roots[out->root]);
  cJSON_Delete(list);
  return rc;
}

/* Up to two snippets from the index for the repo-level FIM header: the
 * best chunks of other files for the words of the lines before the cursor. */
static size_t fim_snippets(const char *repo, const char *rel, const char *prefix, size_t npre, idx_hits *hits,
                           dmn_fim_snippet *out) {
  size_t from = npre > 300 ? npre - 300 : 0, n = 0;
  char q[301];
  memcpy(q, prefix + from, npre - from);
  q[npre - from] = 0;
  idx_index *ix;
  kv_err e;
  if (!*q || idx_open(&ix, repo, NULL, &e)) return 0;
  if (idx_search(ix, q, 6, hits, &e) == 0)
    for (size_t i = 0; i < hits->n && n < 2; i++)
      if (strcmp(hits->v[i].path, rel) && hits->v[i].text) {
        if (strlen(hits->v[i].text) > 600) hits->v[i].text[dmn_utf8_complete(hits->v[i].text, 600)] = 0;
        out[n++] = (dmn_fim_snippet){hits->v[i].path, hits->v[i].text};
      }
  idx_close(ix);
  return n;
}

/* The gate's read_file: the whole buffer the cursor is in (what the editor
 * sent, or the file as read), copied. */
static int buffer_copy(void *ud, const char *path, char **text, size_t *len) {
  (void)path;
  const char *t = ud;
  *len = strlen(t);
  *text = malloc(*len + 1);
  if (!*text) return KV_ENOMEM;
  memcpy(*text, t, *len + 1);
  return 0;
}

static int on_hosted_piece(void *user, const char *piece, size_t len) { return dmn_stream_token(user, piece, len); }

int dmn_job_complete(dmn_job *j, cJSON **result, kv_err *err) {
  const char *file = dmn_param_str(j->params, "file", 0);
  const char *text = dmn_param_str(j->params, "text", 1);
  int line = dmn_param_int(j->params, "line", -1, 0), col = dmn_param_int(j->params, "col", -1, 0);
  const char *unit = dmn_param_str(j->params, "col_unit", -1);
  int utf16 = unit && !strcmp(unit, "utf16");
  int max_tokens = dmn_param_int(j->params, "max_tokens", -1, 64);
  if (max_tokens < 1 || max_tokens > 1024) max_tokens = 64;
  if (unit && !utf16 && strcmp(unit, "byte"))
    return kv_err_set(err, IPC_ERR_PARAMS, "complete: param 'col_unit' is 'utf16' or 'byte', not '%s'", unit);
  if (line < 1) return kv_err_set(err, IPC_ERR_PARAMS, "complete: param 'line' (1-based cursor line) is required");
  if (!text && !file) return kv_err_set(err, IPC_ERR_PARAMS, "complete: need param 'file' or 'text'");
  /* A file is read only when it resolves inside a registered repository;
   * unsaved text is completed as it is. */
  pol_resolved where;
  char repo[1024] = "";
  int in_repo = 0;
  char *owned = NULL;
  memset(&where, 0, sizeof where);
  if (file && file[0] == '/') {
    kv_err re;
    in_repo = resolve_in_repos(j->srv, file, &where, repo, sizeof repo, &re) == 0;
    if (!in_repo && !text) return kv_err_set(err, KV_EDENIED, "complete: %s", re.msg);
  }
  if (!text) {
    size_t len;
    int rc = kv_read_file(where.abs, 8 << 20, &owned, &len, err);
    if (rc) return rc;
    if (memchr(owned, 0, len)) {
      free(owned);
      return kv_err_set(err, KV_EINVAL, "complete: %s holds NUL bytes (a binary file): nothing to complete", file);
    }
    text = owned;
  }
  size_t cut = dmn_fim_offset(text, line, col, utf16);
  const char *p = text + cut;
  /* What the model sees: up to 4000 bytes before the cursor (from a line
   * start when one is there) and up to 2000 after (to a line end). */
  size_t pre0 = cut > 4000 ? cut - 4000 : 0;
  if (pre0 > 0) {
    const char *nl = memchr(text + pre0, '\n', cut - pre0);
    pre0 = nl ? (size_t)(nl - text) + 1 : pre0;
    while (pre0 < cut && ((unsigned char)text[pre0] & 0xc0) == 0x80) pre0++;
  }
  size_t suf = strlen(p);
  if (suf > 2000) {
    size_t k = 2000;
    while (k > 0 && p[k - 1] != '\n') k--;
    suf = k ? k : dmn_utf8_complete(p, 2000);
  }
  /* What the policy may send: the same, in whole lines (a window cut inside
   * a line would be redacted without the start of that line: a secret's
   * name before the cut would not be seen); the payload step withholds a
   * window whose lines run far past these bounds. */
  size_t gw0 = pre0, gw1 = cut + suf;
  while (gw0 > 0 && text[gw0 - 1] != '\n') gw0--;
  while (text[gw1] && (gw1 == 0 || text[gw1 - 1] != '\n')) gw1++;
  dmn_backend *b = dmn_server_backend(j->srv);
  eng_model *model = NULL;
  kv_err me;
  cJSON *res = cJSON_CreateObject();
  dmn_stream g = {j, "complete.token", KV_BUF_INIT, 0, 0, NULL, NULL, NULL, 0, 0, NULL, 0, 0, 0, 0};
  int rc = 0, answered = 0;
  /* The project's policy decides first (nothing is generated or sent before). */
  if (in_repo) {
    dmn_gate_ctx gc;
    memset(&gc, 0, sizeof gc);
    gc.kind = POL_KIND_COMPLETE;
    gc.cursor = cut - gw0;
    gc.max_tokens = max_tokens;
    gc.read_file = buffer_copy;
    gc.read_ud = (void *)text;
    unsigned line0 = 1;
    for (size_t i = 0; i < gw0; i++) line0 += text[i] == '\n';
    rc = dmn_gate_add(&gc, where.rel, text + gw0, gw1 - gw0);
    if (!rc) dmn_gate_origin_lazy(&gc, line0);
    dmn_gate_io gio = {on_hosted_piece, &g};
    if (!rc) rc = dmn_gate_run(dmn_server_gate(j->srv), repo, NULL, NULL, &gc, &gio, res, &answered, err);
    dmn_gate_ctx_free(&gc);
    if (rc) {
      cJSON_Delete(res);
      free(owned);
      kv_buf_free(&g.answer);
      return rc;
    }
  }
  const char *tier = cJSON_GetStringValue(cJSON_GetObjectItem(res, "tier"));
  if (answered) {
    cJSON_AddBoolToObject(res, "fim", 1);
    cJSON_AddStringToObject(res, "format", "hosted");
    cJSON_AddStringToObject(res, "generator", "hosted");
  } else if (dmn_backend_model_for(b, tier, &model, &me) != 0) {
    cJSON_AddStringToObject(res, "note", me.msg);
  } else {
    idx_hits hits = {0};
    dmn_fim_snippet snip[2];
    size_t nsnip = 0;
    if (in_repo) {
      nsnip = fim_snippets(repo, where.rel, text + pre0, cut - pre0, &hits, snip);
    }
    dmn_fim_prompt fp;
    rc = dmn_fim_build(model, repo, in_repo ? where.rel : NULL, snip, nsnip, text + pre0, cut - pre0, p, suf, &fp, err);
    idx_hits_free(&hits);
    eng_sampler *smp = NULL;
    eng_sampler_params sp;
    eng_sampler_params_default(&sp);
    pthread_mutex_lock(&b->fim_mu);
    /* one context for every completion: the tokens before the keystroke's
     * change are reused (eng_generate skips the common prefix) */
    if (b->fim_ctx && eng_ctx_model(b->fim_ctx) != model) eng_ctx_free(b->fim_ctx), b->fim_ctx = NULL;
    if (!rc && !b->fim_ctx) {
      eng_ctx_params cp;
      eng_ctx_params_default(&cp);
      cp.n_ctx = 8192;
      rc = kvm_eng_ctx_create(&b->fim_ctx, model, &cp, NULL, err);
    }
    if (!rc && (int)fp.n + max_tokens > eng_ctx_n_ctx(b->fim_ctx))
      rc = kv_err_set(err, KV_ELIMIT, "complete: prompt of %zu tokens does not fit the context of %d", fp.n,
                      eng_ctx_n_ctx(b->fim_ctx));
    if (!rc) rc = eng_sampler_create(&smp, &sp, eng_n_vocab(model), err);
    if (!rc) {
      const char *stops[] = {"\n\n", "<|file_sep|>", "<|endoftext|>", "<|fim_pad|>"};
      eng_gen_params gp;
      memset(&gp, 0, sizeof gp);
      gp.max_tokens = max_tokens;
      gp.stop = stops;
      gp.n_stop = sizeof stops / sizeof stops[0];
      gp.on_token = dmn_stream_on_engine_token;
      gp.user = &g;
      eng_gen_result gr;
      memset(&gr, 0, sizeof gr);
      rc = eng_generate(b->fim_ctx, smp, fp.toks, fp.n, &gp, &gr, err);
      cJSON_AddNumberToObject(res, "prompt_tokens", gr.n_prompt);
      cJSON_AddNumberToObject(res, "reused_tokens", gr.n_reused);
    }
    pthread_mutex_unlock(&b->fim_mu);
    cJSON_AddBoolToObject(res, "fim", fp.fim);
    cJSON_AddStringToObject(res, "format", fp.format ? fp.format : "prefix");
    cJSON_AddNumberToObject(res, "snippets", (double)nsnip);
    cJSON_AddStringToObject(res, "model", dmn_backend_model_name(b, model));
    cJSON_AddStringToObject(res, "generator", "engine");
    eng_sampler_free(smp);
    dmn_fim_prompt_free(&fp);
    dmn_backend_release(b, model);
  }
  if (!cJSON_GetObjectItem(res, "tier")) cJSON_AddStringToObject(res, "tier", "flash");
  dmn_stream_flush(&g, 1);
  free(owned);
  pthread_mutex_lock(&b->mu);
  b->completes++;
  pthread_mutex_unlock(&b->mu);
  if (!rc && dmn_job_canceled(j)) rc = kv_err_set(err, KV_ECANCELED, "complete canceled after %d tokens", g.tokens);
  if (rc) {
    cJSON_Delete(res);
    kv_buf_free(&g.answer);
    return rc;
  }
  /* a stop string is not part of the completion */
  const char *stops[] = {"<|file_sep|>", "<|endoftext|>", "<|fim_pad|>"};
  for (size_t i = 0; i < 3; i++) {
    char *at = g.answer.data ? strstr(g.answer.data, stops[i]) : NULL;
    if (at) kv_buf_truncate(&g.answer, (size_t)(at - g.answer.data));
  }
  cJSON_AddStringToObject(res, "text", kv_buf_str(&g.answer));
  cJSON_AddNumberToObject(res, "tokens", g.tokens);
  kv_buf_free(&g.answer);
  *result = res;
  return 0;
}
