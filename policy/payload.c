/*
 * payload.c — the exact request a hosted tier gets. pol_payload_prepare
 * drops the files whose resolved path matches never_send, redacts the
 * question and each remaining file on its own (a key block left open in
 * one file cannot swallow, or hide behind, the next), joins them under
 * "--- file: <resolved path> ---" headers (an excerpt with a
 * pol_file_origin is cut from the redaction of its whole file), and builds the JSON body that
 * pol_hosted_send will POST and audit byte for byte. A completion is cut
 * at the cursor from the redaction of its lines (complete_payload): both
 * sides are taken from the one redacted text, so a secret across the
 * cursor is redacted as a whole, and a cursor line that redaction changed
 * is never cut (nothing goes out; the daemon completes locally).
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
  free(pl->body), free(pl->prompt), free(pl->suffix);
  for (size_t i = 0; i < pl->n_stripped; i++) free(pl->stripped[i]);
  free(pl->stripped);
  free(pl);
}

static const char SYSTEM_PROMPT[] =
    "You are kvasir, a coding assistant. Answer from the context given; say when it is not enough.";

/* Byte offset of 1-based line `line` in t[0..n), or n + 1 when there is none. */
static size_t line_offset(const char *t, size_t n, unsigned line) {
  size_t off = 0;
  for (unsigned l = 1; l < line; l++) {
    const char *nl = memchr(t + off, '\n', n - off);
    if (!nl) return n + 1;
    off = (size_t)(nl - t) + 1;
  }
  return off;
}

/* The excerpt f, cut from the whole file o: the same lines of the whole
 * file's redaction (line counts are kept by redaction, so line numbers
 * carry over). Falls back to the excerpt alone when it does not match the
 * file at o->line0. */
static int add_excerpt(kv_buf *b, const char *path, const pol_file *f, const pol_file_origin *o, pol_redactions *c,
                       kv_err *err) {
  size_t at = o->line0 ? line_offset(o->text, o->len, o->line0) : o->len + 1;
  const char *nl = memchr(f->content, '\n', f->len);
  size_t first = nl ? (size_t)(nl - f->content) : f->len; /* compare the first line (it may be cut short) */
  if (at > o->len || o->len - at < first || memcmp(o->text + at, f->content, first))
    return add_redacted(b, path, 0, f->content, f->len, c, err);
  unsigned lines = 1;
  for (size_t i = 0; i + 1 < f->len; i++) lines += f->content[i] == '\n';
  char *r;
  size_t rl;
  int rc = pol_redact_file(path, o->text, o->len, &r, &rl, NULL, err);
  if (rc) return rc;
  size_t a = line_offset(r, rl, o->line0), e = line_offset(r, rl, o->line0 + lines);
  if (a > rl) a = rl;
  if (e > rl) e = rl;
  else if (e > a && !(f->len && f->content[f->len - 1] == '\n')) e--; /* the excerpt had no final '\n' */
  /* count the markers in the excerpt's lines only */
  for (size_t i = a; i + 10 <= e; i++) {
    if (r[i] != '[' || memcmp(r + i, "[REDACTED:", 10)) continue;
    for (int k = 0; k < POL_RED__COUNT; k++) {
      size_t kl = strlen(pol_redaction_name(k));
      if (i + 10 + kl < e && !memcmp(r + i + 10, pol_redaction_name(k), kl) && r[i + 10 + kl] == ']') {
        c->counts[k]++, c->total++;
        break;
      }
    }
  }
  kv_buf_append(b, r + a, e - a);
  free(r);
  return rc;
}

/* The most a completion sends on either side of the cursor. */
#define COMPLETE_MAX 16384

/* Start of line k (0-based) of t[0..n), or n + 1 when there is none. */
static size_t nth_line(const char *t, size_t n, size_t k) { return line_offset(t, n, (unsigned)k + 1); }

/* A completion's body: files[0] redacted whole (through its origin when
 * given), then cut at the cursor's line and column. The cursor's line must
 * come out of redaction unchanged, so the column means the same byte. */
static int complete_payload(const pol_policy *p, const pol_request *req, const char *path, const char *model,
                            unsigned max_tokens, pol_payload *pl, kv_err *err) {
  const pol_file *f = &req->files[0];
  if (pol_globs_match((const char *const *)p->never_send.v, p->never_send.n, path))
    return kv_err_set(err, KV_EDENIED, "%s matches never_send; a completion in it is never sent", path);
  const char *content = f->content ? f->content : "";
  size_t cur = req->has_cursor && req->cursor <= f->len ? req->cursor : f->len;
  if (memchr(content, 0, f->len))
    return kv_err_set(err, KV_EINVAL, "%s: context contains NUL bytes (binary files are never sent)", path);
  if (cur > COMPLETE_MAX || f->len - cur > COMPLETE_MAX)
    return kv_err_set(err, KV_EDENIED, "%s: the lines around the cursor exceed %d bytes; a completion is sent in whole lines only",
                      path, COMPLETE_MAX);
  /* redacted as part of its whole buffer: the excerpt must be lines of it */
  const pol_file_origin *o = req->origins && req->origins[0].text ? &req->origins[0] : NULL;
  if (o) {
    size_t at = o->line0 ? line_offset(o->text, o->len, o->line0) : o->len + 1;
    if (at > o->len || o->len - at < f->len || memcmp(o->text + at, content, f->len))
      return kv_err_set(err, KV_EDENIED, "%s: the lines around the cursor are not lines %u.. of the buffer; nothing is sent",
                        path, o->line0);
  }
  kv_buf r = KV_BUF_INIT;
  int rc = o ? add_excerpt(&r, path, f, o, &pl->redactions, err)
             : add_redacted(&r, path, 0, content, f->len, &pl->redactions, err);
  if (!rc && !kv_buf_ok(&r)) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  if (rc) {
    kv_buf_free(&r);
    return rc;
  }
  size_t k = 0, ls = 0; /* the cursor's line and its start in the input */
  for (size_t i = 0; i < cur; i++)
    if (content[i] == '\n') k++, ls = i + 1;
  const char *nl = memchr(content + ls, '\n', f->len - ls);
  size_t le = nl ? (size_t)(nl - content) : f->len;
  size_t rs = nth_line(r.data, r.len, k);
  int same = rs <= r.len && r.len - rs >= le - ls && !memcmp(r.data + rs, content + ls, le - ls) &&
             (rs + (le - ls) == r.len || r.data[rs + (le - ls)] == '\n');
  if (!same) {
    kv_buf_free(&r);
    return kv_err_set(err, KV_EDENIED, "%s: a secret was redacted on the cursor's line %zu of the excerpt; the completion stays local",
                      path, k + 1);
  }
  size_t at = rs + (cur - ls);
  pl->prompt = malloc(at + 1);
  pl->suffix = malloc(r.len - at + 1);
  if (pl->prompt && pl->suffix) {
    memcpy(pl->prompt, r.data, at), pl->prompt[at] = 0, pl->prompt_len = at;
    memcpy(pl->suffix, r.data + at, r.len - at), pl->suffix[r.len - at] = 0;
  }
  kv_buf_free(&r);
  if (!pl->prompt || !pl->suffix) return kv_err_set(err, KV_ENOMEM, "out of memory");
  cJSON *root = cJSON_CreateObject(), *stop = NULL;
  int ok = root && cJSON_AddStringToObject(root, "model", model ? model : "") && cJSON_AddBoolToObject(root, "stream", 1) &&
           (max_tokens == 0 || cJSON_AddNumberToObject(root, "max_tokens", max_tokens)) &&
           cJSON_AddStringToObject(root, "prompt", pl->prompt) && cJSON_AddStringToObject(root, "suffix", pl->suffix) &&
           (stop = cJSON_AddArrayToObject(root, "stop")); /* a completion ends at a blank line, as the local one */
  if (ok) cJSON_AddItemToArray(stop, cJSON_CreateString("\n\n"));
  if (ok) pl->body = cJSON_PrintUnformatted(root);
  cJSON_Delete(root);
  if (!pl->body) return kv_err_set(err, KV_ENOMEM, "payload: out of memory");
  pl->body_len = strlen(pl->body);
  pl->endpoint = "completions";
  return 0;
}

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
  pl->endpoint = "chat/completions";
  if (req->kind == POL_KIND_COMPLETE) {
    int crc = req->n_files ? complete_payload(p, req, ps.rel[0], model, max_tokens, pl, err)
                           : kv_err_set(err, KV_EINVAL, "a completion needs the text around its cursor (files[0])");
    pol_paths_free(&ps);
    if (crc) {
      pol_payload_free(pl);
      return crc;
    }
    *out = pl;
    return 0;
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
    const pol_file_origin *o = req->origins && req->origins[i].text ? &req->origins[i] : NULL;
    if (f->content && o) rc = add_excerpt(&raw, path, f, o, &pl->redactions, err);
    else if (f->content) rc = add_redacted(&raw, path, 0, f->content, f->len, &pl->redactions, err);
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
