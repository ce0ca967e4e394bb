/*
 * ppl.c — perplexity exactly as llama-perplexity computes it: the tokens
 * are cut into chunks of n_ctx (the context's size); each chunk is evaluated
 * from an empty cache, its first token replaced by BOS when the model adds
 * BOS, and only the second half of each chunk is scored (token i+1 from the
 * logits at i, i in [n_ctx/2, n_ctx-1)), so every scored token has context.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ctx_internal.h"

int eng_perplexity(eng_ctx *c, const int32_t *toks, size_t n, int max_chunks, eng_ppl_cb cb, void *user,
                   double *ppl, float *token_nll, int32_t *token_top, kv_err *err) {
  const int n_ctx = c->n_ctx, first = n_ctx / 2, V = c->m->info.n_vocab;
  if (n < 2 * (size_t)n_ctx)
    return kv_err_set(err, KV_EINVAL, "perplexity: %zu tokens; a context of %d needs at least %d", n, n_ctx, 2 * n_ctx);
  int n_chunk = (int)(n / (size_t)n_ctx);
  if (max_chunks > 0 && max_chunks < n_chunk) n_chunk = max_chunks;
  double nll = 0;
  long count = 0;
  int32_t *chunk = malloc((size_t)n_ctx * sizeof *chunk);
  if (!chunk) return kv_err_set(err, KV_ENOMEM, "perplexity: out of memory");
  for (int ch = 0; ch < n_chunk; ch++) {
    memcpy(chunk, toks + (size_t)ch * n_ctx, (size_t)n_ctx * sizeof *chunk);
    if (c->m->vocab.add_bos) chunk[0] = c->m->vocab.bos;
    eng_ctx_truncate(c, 0);
    int rc = eng_ctx_eval(c, chunk, (size_t)n_ctx, 1, err);
    if (rc) { free(chunk); return rc; }
    for (int i = first; i < n_ctx - 1; i++) {
      const float *lg = eng_ctx_logits(c, (size_t)i);
      int top = 0;
      for (int j = 1; j < V; j++)
        if (lg[j] > lg[top]) top = j;
      const float mx = lg[top];
      double z = 0;
      for (int j = 0; j < V; j++) z += exp((double)(lg[j] - mx));
      double t = log(z) - (double)(lg[chunk[i + 1]] - mx);
      if (token_nll) token_nll[count] = (float)t;
      if (token_top) token_top[count] = top;
      nll += t;
      count++;
    }
    if (cb && cb(user, ch + 1, n_chunk, exp(nll / (double)count))) {
      free(chunk);
      return kv_err_set(err, KV_ECANCELED, "perplexity: canceled after chunk %d", ch + 1);
    }
  }
  free(chunk);
  eng_ctx_truncate(c, 0);
  *ppl = exp(nll / (double)count);
  return 0;
}
