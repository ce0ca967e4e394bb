/*
 * ctx_internal.h — the context struct, shared by context.c (lifetime, eval,
 * state) and forward.c (the math). Not a public header.
 */
#ifndef KVASIR_ENGINE_CTX_INTERNAL_H
#define KVASIR_ENGINE_CTX_INTERNAL_H
#include "engine/internal.h"

struct eng_ctx {
  eng_model *m;
  eng_backend *be;
  int own_be;
  void *kv;
  const eng_kv_ops *kvo;
  eng_kv_create_fn kv_create;
  int n_ctx, n_past, B;
  int32_t *toks;                             /* tokens in the cache, n_past of them */
  float *x, *xn, *q, *k, *v, *att, *o, *g, *u; /* batch scratch, B rows each */
  float *logits;                             /* n_logits rows of n_vocab */
  size_t n_logits, logits_cap;
};

int eng__forward(eng_ctx *c, const int32_t *toks, int m, int pos0, float *logits, int all);
#endif
