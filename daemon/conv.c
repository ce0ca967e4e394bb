/*
 * conv.c — conversations. A conversation belongs to one repository; it
 * keeps its last DMN_CONV_TURNS turns (the question and the answer that was
 * shown, cut to DMN_CONV_TURN_BYTES) and a KV context of its own whose
 * first tokens are a fork of the repo's resident prefix, so a follow-up
 * evaluates only what is new since the last turn's prompt.
 *
 * Invariants: the list is guarded by the backend's mu; a conversation in
 * use (busy) is never evicted or handed to a second ask (that ask starts a
 * new conversation and says so); at most DMN_CONV_MAX are kept, the least
 * recently used idle one evicted first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "daemon/conv_internal.h"

static void conv_free(dmn_conv *c) {
  for (int i = 0; i < c->nturns; i++) free(c->q[i]), free(c->a[i]);
  if (c->slot.ctx) eng_ctx_free(c->slot.ctx);
  pthread_mutex_destroy(&c->slot.mu);
  free(c);
}

/* An id nobody can guess from another client's: 16 random bytes (hex),
 * from libsodium's generator (as ipc/crypto.c makes keys). */
static void new_id(char *out, size_t n) {
  unsigned char r[16];
  randombytes_buf(r, sizeof r);
  char hex[2 * sizeof r + 1];
  sodium_bin2hex(hex, sizeof hex, r, sizeof r);
  snprintf(out, n, "c-%s", hex);
}

int dmn_conv_acquire(dmn_backend *b, const char *repo, const char *id, dmn_conv **out, int *created, char *note,
                     size_t nn, kv_err *err) {
  *out = NULL;
  *created = 0;
  note[0] = 0;
  pthread_mutex_lock(&b->mu);
  dmn_conv *c = NULL;
  if (id && *id) {
    for (c = b->convs; c && strcmp(c->id, id); c = c->next) {
    }
    if (c && strcmp(c->repo, repo)) {
      snprintf(note, nn, "conversation '%s' belongs to another repository: started a new one", id);
      c = NULL;
    } else if (c && c->busy) {
      snprintf(note, nn, "conversation '%s' is answering another question: started a new one", id);
      c = NULL;
    } else if (!c) {
      snprintf(note, nn, "unknown conversation '%s' (it ended, or the daemon restarted): started a new one", id);
    }
  }
  if (!c) {
    /* evict the least recently used idle conversation when full */
    int n = 0;
    for (dmn_conv *x = b->convs; x; x = x->next) n++;
    while (n >= DMN_CONV_MAX) {
      dmn_conv **victim = NULL;
      for (dmn_conv **pp = &b->convs; *pp; pp = &(*pp)->next)
        if (!(*pp)->busy && (!victim || (*pp)->last_used < (*victim)->last_used)) victim = pp;
      if (!victim) break;
      dmn_conv *v = *victim;
      *victim = v->next;
      conv_free(v);
      n--;
    }
    c = calloc(1, sizeof *c);
    if (!c) {
      pthread_mutex_unlock(&b->mu);
      return kv_err_set(err, KV_ENOMEM, "conversation: out of memory");
    }
    new_id(c->id, sizeof c->id);
    snprintf(c->repo, sizeof c->repo, "%s", repo);
    snprintf(c->slot.repo, sizeof c->slot.repo, "%s", repo);
    pthread_mutex_init(&c->slot.mu, NULL);
    c->next = b->convs;
    b->convs = c;
    *created = 1;
  }
  c->busy = 1;
  c->last_used = kv_now();
  c->asks++;
  pthread_mutex_unlock(&b->mu);
  *out = c;
  return 0;
}

static char *cut_dup(const char *s) {
  size_t n = strlen(s ? s : "");
  if (n > DMN_CONV_TURN_BYTES) {
    n = DMN_CONV_TURN_BYTES;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) n--;
  }
  char *d = malloc(n + 1);
  if (d) {
    memcpy(d, s ? s : "", n);
    d[n] = 0;
  }
  return d;
}

void dmn_conv_release(dmn_backend *b, dmn_conv *c, const char *question, const char *answer) {
  pthread_mutex_lock(&b->mu);
  if (question && answer) {
    if (c->nturns == DMN_CONV_TURNS) {
      free(c->q[0]), free(c->a[0]);
      memmove(c->q, c->q + 1, (DMN_CONV_TURNS - 1) * sizeof *c->q);
      memmove(c->a, c->a + 1, (DMN_CONV_TURNS - 1) * sizeof *c->a);
      c->nturns--;
    }
    c->q[c->nturns] = cut_dup(question);
    c->a[c->nturns] = cut_dup(answer);
    if (c->q[c->nturns] && c->a[c->nturns]) c->nturns++;
    else free(c->q[c->nturns]), free(c->a[c->nturns]);
  }
  c->busy = 0;
  c->last_used = kv_now();
  pthread_mutex_unlock(&b->mu);
}

void dmn_conv_free_all(dmn_backend *b) {
  dmn_conv *c = b->convs;
  while (c) {
    dmn_conv *n = c->next;
    conv_free(c);
    c = n;
  }
  b->convs = NULL;
}
