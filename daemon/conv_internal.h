/*
 * conv_internal.h — conversations (conv.c): an `ask` with a conversation id
 * continues that conversation, its earlier turns in the prompt and its own
 * KV context (forked from the repo's resident prefix) reused.
 */
#ifndef KVASIR_DAEMON_CONV_INTERNAL_H
#define KVASIR_DAEMON_CONV_INTERNAL_H

#include <stddef.h>

#include "daemon/model_internal.h"

#define DMN_CONV_MAX 8        /* conversations kept (least recently used go first) */
#define DMN_CONV_TURNS 4      /* earlier turns given to the model */
#define DMN_CONV_TURN_BYTES 1500

typedef struct dmn_conv {
  char id[40];
  char repo[1024];
  char *q[DMN_CONV_TURNS], *a[DMN_CONV_TURNS]; /* oldest first */
  int nturns;
  uint64_t asks;
  double last_used;
  int busy;             /* an ask holds it (under the backend's mu) */
  dmn_prefix slot;      /* its context (slot.ctx, slot.mu), like a repo prefix's */
  struct dmn_conv *next;
} dmn_conv;

/* The conversation `id` of repo (NULL or "": a new one), marked busy.
 * *created is 1 when a new one was started; when `id` was given but is
 * unknown (or belongs to another repository), note says so. */
int dmn_conv_acquire(dmn_backend *b, const char *repo, const char *id, dmn_conv **out, int *created, char *note,
                     size_t nn, kv_err *err);
/* Records the turn (question, shown answer) and releases the conversation. */
void dmn_conv_release(dmn_backend *b, dmn_conv *c, const char *question, const char *answer);
void dmn_conv_free_all(dmn_backend *b);

#endif
