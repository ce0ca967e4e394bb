/*
 * kv_dense.c — the reference KV cache behind eng_kv_ops: every position of
 * every layer kept, K and V rounded to IEEE half like llama.cpp's default
 * f16 cache (stored widened to f32 so attention reads need no conversion).
 * Layout: k[layer][pos][kv_head][head_dim], same for v. attend() is
 * read-only and safe to call from several threads at once.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "kernels/kernels.h"

typedef struct kv_dense {
  eng_kv_shape s;
  size_t row; /* n_head_kv * head_dim */
  int n;      /* positions held */
  float *k, *v;
} kv_dense;

static float h(float x) { return eng_round_h(x); }

static int kd_append(void *kv, int layer, int pos, const float *k, const float *v) {
  kv_dense *d = kv;
  if (pos < 0 || pos >= d->s.n_ctx || layer < 0 || layer >= d->s.n_layer) return KV_ELIMIT;
  float *K = d->k + ((size_t)layer * d->s.n_ctx + pos) * d->row, *V = d->v + ((size_t)layer * d->s.n_ctx + pos) * d->row;
  for (size_t i = 0; i < d->row; i++) { K[i] = h(k[i]); V[i] = h(v[i]); }
  if (pos >= d->n) d->n = pos + 1;
  return 0;
}

static void kd_attend(void *kv, int layer, int kvh, const float *q, int pos, int window, float scale, float *out) {
  const kv_dense *d = kv;
  const int hd = d->s.head_dim;
  int p0 = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0, n = pos - p0 + 1;
  float qh[1024], stackbuf[4096];
  float *sc = n <= 4096 ? stackbuf : malloc((size_t)n * sizeof *sc);
  if (!sc) { memset(out, 0, (size_t)hd * sizeof *out); return; }
  for (int i = 0; i < hd; i++) qh[i] = h(q[i]); /* llama.cpp multiplies f16 K by f16 Q */
  const float *K = d->k + (size_t)layer * d->s.n_ctx * d->row + (size_t)kvh * hd;
  const float *V = d->v + (size_t)layer * d->s.n_ctx * d->row + (size_t)kvh * hd;
  for (int j = 0; j < n; j++) sc[j] = krn_dot_f32(qh, K + (size_t)(p0 + j) * d->row, (size_t)hd) * scale;
  krn_softmax(sc, (size_t)n);
  memset(out, 0, (size_t)hd * sizeof *out);
  for (int j = 0; j < n; j++) krn_axpy_f32(out, h(sc[j]), V + (size_t)(p0 + j) * d->row, (size_t)hd);
  if (sc != stackbuf) free(sc);
}

static void kd_truncate(void *kv, int n) {
  kv_dense *d = kv;
  if (n < d->n) d->n = n < 0 ? 0 : n;
}

static int kd_copy_prefix(void *dst, const void *src, int n) {
  kv_dense *a = dst;
  const kv_dense *b = src;
  if (a->row != b->row || a->s.n_layer != b->s.n_layer || n > b->n || n > a->s.n_ctx) return KV_EINVAL;
  for (int l = 0; l < a->s.n_layer; l++) {
    memcpy(a->k + (size_t)l * a->s.n_ctx * a->row, b->k + (size_t)l * b->s.n_ctx * b->row, (size_t)n * a->row * 4);
    memcpy(a->v + (size_t)l * a->s.n_ctx * a->row, b->v + (size_t)l * b->s.n_ctx * b->row, (size_t)n * a->row * 4);
  }
  a->n = n;
  return 0;
}

static void kd_free(void *kv) {
  kv_dense *d = kv;
  if (!d) return;
  free(d->k);
  free(d->v);
  free(d);
}

static const eng_kv_ops k_dense_ops = {"dense-f16", kd_append, kd_attend, kd_truncate, kd_copy_prefix, kd_free};

int eng_kv_dense_create(void **out, const eng_kv_shape *s, const eng_kv_ops **ops, kv_err *err) {
  *out = NULL;
  if (s->n_layer <= 0 || s->n_head_kv <= 0 || s->head_dim <= 0 || s->head_dim > 1024 || s->n_ctx <= 0)
    return kv_err_set(err, KV_EINVAL, "kv cache: bad shape");
  kv_dense *d = calloc(1, sizeof *d);
  if (!d) return kv_err_set(err, KV_ENOMEM, "out of memory");
  d->s = *s;
  d->row = (size_t)s->n_head_kv * s->head_dim;
  size_t n = (size_t)s->n_layer * s->n_ctx * d->row;
  d->k = malloc(n * sizeof *d->k);
  d->v = malloc(n * sizeof *d->v);
  if (!d->k || !d->v) {
    kd_free(d);
    return kv_err_set(err, KV_ENOMEM, "kv cache: out of memory for %zu floats", 2 * n);
  }
  *out = d;
  *ops = &k_dense_ops;
  return 0;
}
