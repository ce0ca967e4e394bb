/*
 * stream_internal.h — the streamed text of a generating job (stream.c),
 * shared by ask.c and complete.c.
 */
#ifndef KVASIR_DAEMON_STREAM_INTERNAL_H
#define KVASIR_DAEMON_STREAM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/internal.h"
#include "daemon/verify_internal.h"

typedef struct dmn_stream {
  dmn_job *j;
  const char *notify;   /* "ask.token" / "complete.token" */
  kv_buf answer;       /* what was shown: the lead, then verified units */
  size_t sent;          /* bytes of answer already streamed */
  int tokens;
  dmn_verifier *ver;    /* model text goes through it; NULL: shown as it comes (stub) */
  const char *kind;     /* "facts" while the lead is streamed (ask.token's "kind") */
  void *ask;            /* ask.c: facts to lead with, sent once the policy let the ask go on */
  int facts_sent;
  int model_said;       /* verified model units shown so far */
  const char *model_label;
  double t0, t_facts;   /* since t0 (kv_now): the facts were streamed */
  double t_token;       /* the first generated piece arrived (0: none yet) */
  double t_text;        /* the first generated text was shown (0: none yet) */
} dmn_stream;

/* Length of the longest prefix of p[0..n) that ends on a UTF-8 boundary. */
size_t dmn_utf8_complete(const char *p, size_t n);
/* Sends what was not sent yet (all: even an incomplete UTF-8 tail). */
void dmn_stream_flush(dmn_stream *g, int all);
/* Appends verified model text, under the line naming whose text it is. */
void dmn_stream_model_text(dmn_stream *g, const kv_buf *unit);
/* One generated piece (through the verifier when g->ver); non-zero when the
 * job was canceled or the text started repeating: generation stops. */
int dmn_stream_token(dmn_stream *g, const char *piece, size_t len);
/* eng_token_cb for eng_generate (user = the dmn_stream). */
int dmn_stream_on_engine_token(void *user, int32_t token, const char *piece, size_t len);

#endif
