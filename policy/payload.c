/*
 * payload.c — the exact request a hosted tier gets. pol_payload_prepare
 * drops the files whose resolved path matches never_send, redacts the
 * question and each remaining file on its own (a key block left open in
 * one file cannot swallow, or hide behind, the next), joins them under
 * "--- file: <resolved path> ---" headers, and builds the JSON body that
 * pol_hosted_send will POST and audit byte for byte.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "policy/internal.h"

/* Append the redaction of text[0..len) to b. */
static int add_redacted(kv_buf *b, const char *path, int question, const char *text, size_t len, pol_redactions *c,
                        kv_err *err) {
  char *r;
  size_t rl;
  int rc = question ? pol_redact_question(text, len, &r, &rl, c, err) : pol_redact_file(path, text, len, &r, &rl, c, err);
  if (rc) return rc;
  kv_buf_append(b, r, rl);
  free(r);
  return 0;
}

void pol_payload_free(pol_payload *pl) {
  if (!pl) return;
  free(pl->body), free(pl->prompt);
  for (size_t i = 0; i < pl->n_stripped; i++) free(pl->stripped[i]);
  free(pl->stripped);
  free(pl);
}

static const char SYSTEM_PROMPT[] =
    "You are kvasir, a coding assistant. Answer from the context given; say when it is not enough.";

int pol_payload_prepare(const pol_policy *p, const pol_request *req, const char *model, unsigned max_tokens,
                        pol_payload **out, kv_err *err) {
  *out = NULL;
  pol_payload *pl = calloc(1, sizeof *pl);
  if (!pl) return kv_err_set(err, KV_ENOMEM, "out of memory");
  pol_paths ps;
  int prc = pol_request_paths(p, req, &ps, err);
  if (prc) {
    free(pl);
    return prc;
  }
  kv_buf raw = KV_BUF_INIT;
  size_t stripped_cap = 0;
  int rc = 0;
  kv_buf_append(&raw, "", 0);
  if (req->question) rc = add_redacted(&raw, NULL, 1, req->question, strlen(req->question), &pl->redactions, err);
  for (size_t i = 0; i < req->n_files && !rc; i++) {
    const pol_file *f = &req->files[i];
    const char *path = ps.rel[i];
    if (pol_globs_match((const char *const *)p->never_send.v, p->never_send.n, path)) {
      char *dup = pol_strdup(path);
      if (!dup || KV_PUSH(pl->stripped, pl->n_stripped, stripped_cap, dup)) {
        free(dup);
        raw.oom = 1;
        break;
      }
      continue;
    }
    kv_buf_puts(&raw, "\n\n--- file: ");
    kv_buf_puts(&raw, path);
    kv_buf_puts(&raw, " ---\n");
    if (f->content) rc = add_redacted(&raw, path, 0, f->content, f->len, &pl->redactions, err);
  }
  pol_paths_free(&ps);
  if (!rc && !kv_buf_ok(&raw)) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  if (!rc) pl->prompt = kv_buf_detach(&raw, &pl->prompt_len);
  if (!rc && !pl->prompt) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  kv_buf_free(&raw);
  if (!rc && memchr(pl->prompt, 0, pl->prompt_len))
    rc = kv_err_set(err, KV_EINVAL, "context contains NUL bytes (binary files are never sent)");
  if (!rc) {
    cJSON *root = cJSON_CreateObject(), *msgs = NULL, *m;
    int ok = root && cJSON_AddStringToObject(root, "model", model ? model : "") &&
             cJSON_AddBoolToObject(root, "stream", 1) &&
             (max_tokens == 0 || cJSON_AddNumberToObject(root, "max_tokens", max_tokens)) &&
             (msgs = cJSON_AddArrayToObject(root, "messages"));
    if (ok && (m = cJSON_CreateObject())) {
      cJSON_AddItemToArray(msgs, m);
      ok = cJSON_AddStringToObject(m, "role", "system") && cJSON_AddStringToObject(m, "content", SYSTEM_PROMPT);
    } else ok = 0;
    if (ok && (m = cJSON_CreateObject())) {
      cJSON_AddItemToArray(msgs, m);
      ok = cJSON_AddStringToObject(m, "role", "user") && cJSON_AddStringToObject(m, "content", pl->prompt);
    } else ok = 0;
    if (ok) pl->body = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!pl->body) rc = kv_err_set(err, KV_ENOMEM, "payload: out of memory");
    else pl->body_len = strlen(pl->body);
  }
  if (rc) { pol_payload_free(pl); return rc; }
  *out = pl;
  return 0;
}
