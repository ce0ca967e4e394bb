/*
 * stream.c — what every generating job streams: the shown text of an
 * answer or completion, flushed as `ask.token` / `complete.token`
 * notifications at UTF-8 boundaries, and (for answers) the model's text
 * passed through the verifier (word by word, see verify.c) under a line
 * saying whose text it is; when the first generated piece arrived and when
 * the first of it was shown, for the ask's timing.
 *
 * Invariants: the token callback checks the job's cancel flag after every
 * token and returns non-zero, so generation stops before evaluating another
 * token (cancel latency <= one token); streamed text is cut only at UTF-8
 * character boundaries.
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/stream_internal.h"

/* Length of the longest prefix of p[0..n) that ends on a UTF-8 boundary. */
size_t dmn_utf8_complete(const char *p, size_t n) {
  size_t i = n;
  for (int back = 0; back < 4 && i > 0; back++) {
    unsigned char c = (unsigned char)p[i - 1];
    if (c < 0x80) return n;
    if ((c & 0xc0) == 0xc0) { /* lead byte at i-1: is its sequence complete? */
      size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      return (n - (i - 1) >= need) ? n : i - 1;
    }
    i--;
  }
  return n;
}


void dmn_stream_flush(dmn_stream *g, int all) {
  size_t end = all ? g->answer.len : dmn_utf8_complete(g->answer.data, g->answer.len);
  if (end <= g->sent) return;
  char *t = strndup(g->answer.data + g->sent, end - g->sent);
  if (!t) return;
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "id", g->j->req_id);
  cJSON_AddStringToObject(o, "text", t);
  if (g->kind) cJSON_AddStringToObject(o, "kind", g->kind);
  free(t);
  dmn_job_notify(g->j, g->notify, o);
  g->sent = end;
}

/* Appends verified model text to the answer, under a line that says whose
 * text it is and what was checked (the prose itself cannot be). */
void dmn_stream_model_text(dmn_stream *g, const kv_buf *unit) {
  if (!unit->len) return;
  if (!g->t_text) g->t_text = kv_now() - g->t0;
  if (!g->model_said++) { /* kvasir's words, streamed as kind "facts" like the lead */
    dmn_stream_flush(g, 1);
    kv_buf_printf(&g->answer, "_%s (every code name, path:line and quoted line of code in it was checked against the index; the prose is not verified):_ ",
                  g->model_label ? g->model_label : "Model summary");
    g->kind = "facts";
    dmn_stream_flush(g, 1);
    g->kind = NULL;
  }
  kv_buf_append(&g->answer, unit->data, unit->len);
}

/* Adds one token's text; returns non-zero when the job was canceled. */
int dmn_stream_token(dmn_stream *g, const char *piece, size_t len) {
  if (dmn_job_canceled(g->j)) return 1;
  if (!g->tokens++) g->t_token = kv_now() - g->t0;
  if (g->ver) {
    /* only judged units reach the answer; repetition ends the generation */
    kv_buf unit = KV_BUF_INIT;
    int rc = dmn_verifier_feed(g->ver, piece, len, &unit);
    dmn_stream_model_text(g, &unit);
    kv_buf_free(&unit);
    if (rc) return 1;
  } else if (kv_buf_append(&g->answer, piece, len)) {
    return 1;
  }
  dmn_stream_flush(g, 0);
  return dmn_job_canceled(g->j);
}

int dmn_stream_on_engine_token(void *user, int32_t token, const char *piece, size_t len) {
  (void)token;
  return dmn_stream_token(user, piece, len);
}
