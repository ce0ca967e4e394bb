/*
 * sampler.c — choosing the next token from logits: repetition penalty, then
 * greedy (temp <= 0) or top-k -> top-p -> min-p -> temperature -> a draw
 * from a seeded generator (splitmix64), the order llama.cpp's common sampler
 * uses. Buffers are allocated once at creation; sampling allocates nothing.
 * The reported log-probability is always that of the unmodified model
 * distribution, so it measures the model's confidence, not the sampler's.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

typedef struct cand {
  float logit;
  int32_t id;
} cand;

struct eng_sampler {
  eng_sampler_params p;
  int n_vocab;
  uint64_t rng;
  cand *c;
  float *work;
};

void eng_sampler_params_default(eng_sampler_params *p) {
  memset(p, 0, sizeof *p);
  p->top_p = 1.0f;
  p->repeat_penalty = 1.0f;
  p->repeat_last_n = 64;
}

int eng_sampler_create(eng_sampler **out, const eng_sampler_params *p, int n_vocab, kv_err *err) {
  *out = NULL;
  if (n_vocab <= 0) return kv_err_set(err, KV_EINVAL, "sampler: n_vocab %d", n_vocab);
  eng_sampler *s = calloc(1, sizeof *s);
  if (!s) return kv_err_set(err, KV_ENOMEM, "out of memory");
  if (p) s->p = *p; else eng_sampler_params_default(&s->p);
  s->n_vocab = n_vocab;
  s->rng = s->p.seed ^ 0x9e3779b97f4a7c15ull;
  s->c = malloc((size_t)n_vocab * sizeof *s->c);
  s->work = malloc((size_t)n_vocab * sizeof *s->work);
  if (!s->c || !s->work) {
    eng_sampler_free(s);
    return kv_err_set(err, KV_ENOMEM, "sampler: out of memory");
  }
  *out = s;
  return 0;
}

void eng_sampler_free(eng_sampler *s) {
  if (!s) return;
  free(s->c);
  free(s->work);
  free(s);
}

static uint64_t next_u64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static int cmp_cand(const void *a, const void *b) {
  float x = ((const cand *)a)->logit, y = ((const cand *)b)->logit;
  if (x != y) return x > y ? -1 : 1;
  return ((const cand *)a)->id - ((const cand *)b)->id;
}

/* Move the k best to the front, sorted (partial selection by heap-free quickselect + sort). */
static void top_k(cand *c, int n, int k) {
  if (k >= n) { qsort(c, (size_t)n, sizeof *c, cmp_cand); return; }
  int lo = 0, hi = n - 1;
  while (lo < hi) { /* quickselect so that c[0..k) are the k best */
    cand piv = c[(lo + hi) / 2];
    int i = lo, j = hi;
    while (i <= j) {
      while (cmp_cand(&c[i], &piv) < 0) i++;
      while (cmp_cand(&c[j], &piv) > 0) j--;
      if (i <= j) { cand t = c[i]; c[i] = c[j]; c[j] = t; i++; j--; }
    }
    if (k - 1 <= j) hi = j; else if (k - 1 >= i) lo = i; else break;
  }
  qsort(c, (size_t)k, sizeof *c, cmp_cand);
}

int32_t eng_sample(eng_sampler *s, const float *logits, const int32_t *history, size_t n_hist, float *logprob) {
  const int n = s->n_vocab;
  float *l = s->work;
  memcpy(l, logits, (size_t)n * sizeof *l);
  if (s->p.repeat_penalty != 1.0f && s->p.repeat_penalty > 0) {
    size_t from = s->p.repeat_last_n >= 0 && n_hist > (size_t)s->p.repeat_last_n ? n_hist - (size_t)s->p.repeat_last_n : 0;
    for (size_t i = from; i < n_hist; i++) {
      int32_t t = history[i];
      if (t < 0 || t >= n) continue;
      /* mark once: only penalize a token the first time it is seen */
      size_t j;
      for (j = from; j < i && history[j] != t; j++) {}
      if (j < i) continue;
      l[t] = l[t] > 0 ? l[t] / s->p.repeat_penalty : l[t] * s->p.repeat_penalty;
    }
  }
  int32_t pick = 0;
  if (s->p.temp <= 0) {
    for (int i = 1; i < n; i++)
      if (l[i] > l[pick]) pick = i;
  } else {
    cand *c = s->c;
    for (int i = 0; i < n; i++) c[i] = (cand){l[i], i};
    int k = s->p.top_k > 0 && s->p.top_k < n ? s->p.top_k : n;
    top_k(c, n, k);
    int m = k;
    /* softmax over the survivors at temperature 1 for top-p / min-p (llama.cpp order) */
    double sum = 0;
    for (int i = 0; i < m; i++) sum += exp((double)(c[i].logit - c[0].logit));
    if (s->p.top_p < 1.0f && s->p.top_p > 0) {
      double cum = 0;
      for (int i = 0; i < m; i++) {
        cum += exp((double)(c[i].logit - c[0].logit)) / sum;
        if (cum >= s->p.top_p) { m = i + 1; break; }
      }
    }
    if (s->p.min_p > 0) {
      int j = 1;
      while (j < m && exp((double)(c[j].logit - c[0].logit)) >= s->p.min_p) j++;
      m = j;
    }
    double z = 0;
    for (int i = 0; i < m; i++) z += exp((double)(c[i].logit - c[0].logit) / s->p.temp);
    double r = (double)(next_u64(&s->rng) >> 11) / 9007199254740992.0 * z, acc = 0;
    pick = c[m - 1].id;
    for (int i = 0; i < m; i++) {
      acc += exp((double)(c[i].logit - c[0].logit) / s->p.temp);
      if (r < acc) { pick = c[i].id; break; }
    }
  }
  if (logprob) {
    float mx = logits[0];
    for (int i = 1; i < n; i++) mx = logits[i] > mx ? logits[i] : mx;
    double z = 0;
    for (int i = 0; i < n; i++) z += exp((double)(logits[i] - mx));
    *logprob = (float)((double)(logits[pick] - mx) - log(z));
  }
  return pick;
}
