/*
 * context.c — an inference context: the KV cache (through eng_kv_ops), the
 * tokens it holds, batch scratch buffers and the last logits. Evaluation
 * splits long inputs into batches of at most B tokens; every buffer is
 * allocated at creation (logits grow once when all-token logits are asked).
 * Invariant: n_past == tokens held by the cache == length of toks.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/ctx_internal.h"

#define ENG_BATCH 64

void eng_ctx_params_default(eng_ctx_params *p) { memset(p, 0, sizeof *p); }

void eng_ctx_free(eng_ctx *c) {
  if (!c) return;
  if (c->kv) c->kvo->free(c->kv);
  if (c->own_be) eng_backend_free(c->be);
  free(c->toks);
  free(c->x); free(c->xn); free(c->q); free(c->k); free(c->v); free(c->att); free(c->o); free(c->g); free(c->u);
  free(c->logits);
  free(c);
}

int eng_ctx_create(eng_ctx **out, eng_model *m, const eng_ctx_params *pp, kv_err *err) {
  *out = NULL;
  eng_ctx_params p;
  if (pp) p = *pp; else eng_ctx_params_default(&p);
  const eng_model_info *I = &m->info;
  if (m->bert)
    return kv_err_set(err, KV_EUNSUPPORTED, "%s: '%s' is an encoder (embeddings, eng_embed), not a generator",
                      m->name, m->arch_name);
  eng_ctx *c = calloc(1, sizeof *c);
  if (!c) return kv_err_set(err, KV_ENOMEM, "out of memory");
  c->m = m;
  c->n_ctx = p.n_ctx > 0 ? p.n_ctx : (I->n_ctx_train < 4096 ? I->n_ctx_train : 4096);
  if (c->n_ctx > I->n_ctx_train && I->n_ctx_train > 0) c->n_ctx = I->n_ctx_train;
  c->B = ENG_BATCH;
  int rc = 0;
  if (p.backend) c->be = p.backend;
  else if ((rc = eng_backend_cpu(&c->be, p.n_threads, err))) goto fail;
  else c->own_be = 1;
  c->kv_create = p.kv_create ? p.kv_create : eng_kv_dense_create;
  eng_kv_shape s = {I->n_layer, I->n_head_kv, I->head_dim, c->n_ctx};
  if ((rc = c->kv_create(&c->kv, &s, &c->kvo, err))) goto fail;
  size_t B = (size_t)c->B, d = (size_t)I->n_embd, nq = (size_t)I->n_head * I->head_dim,
         nkv = (size_t)I->n_head_kv * I->head_dim, ff = (size_t)I->n_ff;
  c->toks = malloc((size_t)c->n_ctx * sizeof *c->toks);
  c->x = malloc(B * d * 4); c->xn = malloc(B * d * 4); c->q = malloc(B * nq * 4); c->k = malloc(B * nkv * 4);
  c->v = malloc(B * nkv * 4); c->att = malloc(B * nq * 4); c->o = malloc(B * d * 4); c->g = malloc(B * ff * 4);
  c->u = malloc(B * ff * 4);
  c->logits_cap = 1;
  c->logits = malloc((size_t)I->n_vocab * 4);
  if (!c->toks || !c->x || !c->xn || !c->q || !c->k || !c->v || !c->att || !c->o || !c->g || !c->u || !c->logits) {
    rc = kv_err_set(err, KV_ENOMEM, "context: out of memory");
    goto fail;
  }
  *out = c;
  return 0;
fail:
  eng_ctx_free(c);
  return rc;
}

int eng_ctx_n_past(const eng_ctx *c) { return c->n_past; }
int eng_ctx_n_ctx(const eng_ctx *c) { return c->n_ctx; }
const eng_model *eng_ctx_model(const eng_ctx *c) { return c->m; }
const int32_t *eng_ctx_tokens(const eng_ctx *c) { return c->toks; }

int eng_ctx_eval(eng_ctx *c, const int32_t *toks, size_t n, int all_logits, kv_err *err) {
  const size_t V = (size_t)c->m->info.n_vocab;
  if (!n) return kv_err_set(err, KV_EINVAL, "eng_ctx_eval: no tokens");
  if (n > (size_t)(c->n_ctx - c->n_past))
    return kv_err_set(err, KV_ELIMIT, "context full: %d + %zu tokens exceed n_ctx %d", c->n_past, n, c->n_ctx);
  for (size_t i = 0; i < n; i++)
    if (toks[i] < 0 || toks[i] >= (int32_t)V)
      return kv_err_set(err, KV_EINVAL, "eng_ctx_eval: token %zu = %d is not in the vocabulary (%zu)", i, toks[i], V);
  size_t rows = all_logits ? n : 1;
  if (rows > c->logits_cap) {
    float *l = realloc(c->logits, rows * V * sizeof *l);
    if (!l) return kv_err_set(err, KV_ENOMEM, "out of memory for %zu x %zu logits", rows, V);
    c->logits = l;
    c->logits_cap = rows;
  }
  for (size_t off = 0; off < n; off += (size_t)c->B) {
    int m = (int)(n - off < (size_t)c->B ? n - off : (size_t)c->B);
    int last = off + (size_t)m == n;
    float *lg = all_logits ? c->logits + off * V : (last ? c->logits : NULL);
    int rc = eng__forward(c, toks + off, m, c->n_past, lg, all_logits);
    if (rc) {
      c->kvo->truncate(c->kv, c->n_past);
      return kv_err_set(err, rc, "eng_ctx_eval: forward failed at position %d (%s)", c->n_past, kv_err_name(rc));
    }
    memcpy(c->toks + c->n_past, toks + off, (size_t)m * sizeof *toks);
    c->n_past += m;
  }
  c->n_logits = rows;
  return 0;
}

int eng_ctx_fill_kv(eng_ctx *c, size_t n, eng_kv_fill_fn fill, void *user, const int32_t *toks, kv_err *err) {
  const eng_model_info *I = &c->m->info;
  if (n > (size_t)(c->n_ctx - c->n_past))
    return kv_err_set(err, KV_ELIMIT, "eng_ctx_fill_kv: %d + %zu positions exceed n_ctx %d", c->n_past, n, c->n_ctx);
  for (size_t t = 0; toks && t < n; t++)
    if (toks[t] < 0 || toks[t] >= (int32_t)I->n_vocab)
      return kv_err_set(err, KV_EINVAL, "eng_ctx_fill_kv: token %zu = %d is not in the vocabulary (%d)", t, toks[t],
                        I->n_vocab);
  c->n_logits = 0;
  const size_t nkv = (size_t)I->n_head_kv * (size_t)I->head_dim;
  float *k = malloc(2 * nkv * sizeof *k);
  if (!k) return kv_err_set(err, KV_ENOMEM, "eng_ctx_fill_kv: out of memory");
  float *v = k + nkv;
  for (size_t t = 0; t < n; t++) {
    const int pos = c->n_past;
    for (int l = 0; l < I->n_layer; l++) {
      fill(user, l, pos, k, v);
      int rc = c->kvo->append(c->kv, l, pos, k, v);
      if (rc) {
        free(k);
        c->kvo->truncate(c->kv, c->n_past);
        return kv_err_set(err, rc, "eng_ctx_fill_kv: append failed at layer %d position %d (%s)", l, pos,
                          kv_err_name(rc));
      }
    }
    c->toks[c->n_past++] = toks ? toks[t] : 0;
  }
  free(k);
  c->n_logits = 0;
  return 0;
}

const float *eng_ctx_logits(const eng_ctx *c, size_t i) {
  return i < c->n_logits ? c->logits + i * (size_t)c->m->info.n_vocab : NULL;
}

int eng_ctx_truncate(eng_ctx *c, int n) {
  if (n < 0) n = 0;
  if (n < c->n_past) {
    c->kvo->truncate(c->kv, n);
    c->n_past = n;
    c->n_logits = 0;
  }
  return 0;
}

size_t eng_ctx_common_prefix(const eng_ctx *c, const int32_t *toks, size_t n) {
  size_t i = 0;
  while (i < n && i < (size_t)c->n_past && c->toks[i] == toks[i]) i++;
  return i;
}

int eng_ctx_copy_prefix(eng_ctx *dst, const eng_ctx *src, int n, kv_err *err) {
  if (dst->m != src->m || dst->n_ctx != src->n_ctx || dst->kvo != src->kvo)
    return kv_err_set(err, KV_EINVAL, "copy_prefix: contexts differ in model, n_ctx or cache kind");
  if (n < 0 || n > src->n_past) return kv_err_set(err, KV_EINVAL, "copy_prefix: %d > %d tokens held", n, src->n_past);
  int rc = dst->kvo->copy_prefix(dst->kv, src->kv, n);
  if (rc) return kv_err_set(err, rc, "copy_prefix: cache copy failed");
  memcpy(dst->toks, src->toks, (size_t)n * sizeof *dst->toks);
  dst->n_past = n;
  dst->n_logits = 0;
  return 0;
}

struct eng_state {
  eng_ctx *snap; /* a context holding the copy (shares model and backend) */
};

int eng_ctx_save(const eng_ctx *c, eng_state **out, kv_err *err) {
  *out = NULL;
  eng_state *s = calloc(1, sizeof *s);
  if (!s) return kv_err_set(err, KV_ENOMEM, "out of memory");
  eng_ctx_params p = {c->n_ctx, 0, c->be, c->kv_create};
  int rc = eng_ctx_create(&s->snap, c->m, &p, err);
  if (!rc) rc = eng_ctx_copy_prefix(s->snap, c, c->n_past, err);
  if (rc) { eng_state_free(s); return rc; }
  *out = s;
  return 0;
}

int eng_ctx_restore(eng_ctx *c, const eng_state *s, kv_err *err) {
  return eng_ctx_copy_prefix(c, s->snap, s->snap->n_past, err);
}

void eng_state_free(eng_state *s) {
  if (!s) return;
  eng_ctx_free(s->snap);
  free(s);
}
