/*
 * kv_dense.c — the reference KV cache behind eng_kv_ops: every position of
 * every layer kept, K and V rounded to IEEE half like llama.cpp's default
 * f16 cache (stored widened to f32 so attention reads need no conversion).
 * Layout: k[layer][pos][kv_head][head_dim], same for v. attend() is
 * read-only and safe to call from several threads at once. Its sums follow
 * llama.cpp's orders (below), with explicit AVX2 or AVX-512 loops where the
 * CPU has them (kv_dense_body.h; same bits, ~5x faster than the portable
 * loops at AVX-512).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ggml_math_internal.h"
#include "engine/internal.h"
#include "kvmem/kvmem.h"

typedef struct kv_dense {
  eng_kv_shape s;
  size_t row;  /* n_head_kv * head_dim */
  int n;       /* positions held */
  int n_batch; /* tokens in the batch being evaluated (set by begin_batch) */
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


/* llama.cpp (no flash attention) computes K·Q and V·softmax as two f16
 * matrix products. With one token in the batch ggml_vec_dot_f16 does them:
 * four 16-lane accumulators over 64-element steps, summed pairwise, reduced,
 * the rest added in double. With two or more, llamafile's tinyBLAS: one
 * 16-lane accumulator over 16-element steps, then reduced. Products of two
 * halves are exact in float, so only the summation order matters; it is
 * reproduced here with element e of a product in lane e % 16 (and, for
 * vec_dot, accumulator (e / 16) % 4). n_lead elements before x[0] are zero
 * (masked positions: they only shift the lanes). */
static float dot_ggml(const float *a, size_t sa, const float *b, size_t sb, int n_lead, int n, int n_total, int batch) {
  float acc[4][16] = {{0}};
  if (batch > 1) {
    for (int e = 0; e < n; e++) acc[0][(n_lead + e) & 15] += a[(size_t)e * sa] * b[(size_t)e * sb];
    return eng_reduce16(acc[0]);
  }
  const int np = n_total & ~63;
  double tail = 0;
  for (int e = 0; e < n; e++) {
    const int g = n_lead + e;
    const float p = a[(size_t)e * sa] * b[(size_t)e * sb];
    if (g < np) acc[(g >> 4) & 3][g & 15] += p;
    else tail += (double)p;
  }
  for (int l = 0; l < 16; l++) {
    acc[0][l] += acc[2][l];
    acc[1][l] += acc[3][l];
  }
  for (int l = 0; l < 16; l++) acc[0][l] += acc[1][l];
  return (float)((double)eng_reduce16(acc[0]) + tail);
}

/* The same orders, vectorizable, for head_dim % 16 == 0 (every real model):
 * K·q over the head dimension, and V·p over positions 16 dimensions at a
 * time with one accumulator lane per position lane. */
static inline float kq_ggml(const float *q, const float *k, int hd, int batch) {
  float acc[4][16] = {{0}};
  if (batch > 1) {
    for (int c = 0; c < hd; c += 16)
      for (int l = 0; l < 16; l++) acc[0][l] += q[c + l] * k[c + l];
    return eng_reduce16(acc[0]);
  }
  const int np = hd & ~63;
  double tail = 0;
  for (int c = 0; c < np; c += 64)
    for (int g = 0; g < 4; g++)
      for (int l = 0; l < 16; l++) acc[g][l] += q[c + 16 * g + l] * k[c + 16 * g + l];
  for (int e = np; e < hd; e++) tail += (double)(q[e] * k[e]);
  for (int l = 0; l < 16; l++) {
    acc[0][l] += acc[2][l];
    acc[1][l] += acc[3][l];
  }
  for (int l = 0; l < 16; l++) acc[0][l] += acc[1][l];
  return (float)((double)eng_reduce16(acc[0]) + tail);
}

static inline void kqv_ggml(const float *V, size_t row, const float *p, int p0, int n, int n_total, int batch, int hd,
                            float *out) {
  const int np = batch > 1 ? p0 + n : n_total & ~63;
  for (int i0 = 0; i0 < hd; i0 += 16) {
    float A[4][16][16];
    double tail[16] = {0};
    memset(A, 0, sizeof A);
    for (int j = 0; j < n; j++) {
      const int g = p0 + j;
      const float *v = V + (size_t)g * row + i0;
      const float pj = p[j];
      if (g < np) {
        float *a = A[batch > 1 ? 0 : (g >> 4) & 3][g & 15];
        for (int e = 0; e < 16; e++) a[e] += v[e] * pj;
      } else {
        for (int e = 0; e < 16; e++) tail[e] += (double)(v[e] * pj);
      }
    }
    if (batch <= 1)
      for (int l = 0; l < 16; l++)
        for (int e = 0; e < 16; e++) {
          A[0][l][e] += A[2][l][e];
          A[1][l][e] += A[3][l][e];
          A[0][l][e] += A[1][l][e];
        }
    for (int e = 0; e < 16; e++) {
      float lanes[16];
      for (int l = 0; l < 16; l++) lanes[l] = A[0][l][e];
      out[i0 + e] = batch > 1 ? eng_reduce16(lanes) : (float)((double)eng_reduce16(lanes) + tail[e]);
    }
  }
}

/* The same orders in explicit SIMD (kv_dense_body.h) at the attention
 * loops' level (kvm_simd_level: the CPU, KVASIR_ISA, kvm_simd_force), for
 * head_dim % 16 == 0; NULL: the loops above. */
static const eng_kd_simd *kd_simd(int hd) {
#if defined(__x86_64__) && defined(__GNUC__)
  if (hd % 16 == 0) {
    const int l = kvm_simd_level();
    if (l >= KVM_SIMD_AVX512) return &eng__kd_avx512;
    if (l >= KVM_SIMD_AVX2) return &eng__kd_avx2;
  }
#endif
  (void)hd;
  return NULL;
}

const char *eng__kv_dense_loops(int head_dim) {
  const eng_kd_simd *vx = kd_simd(head_dim);
  return vx ? vx->name : "portable";
}

ENG_FMA_CLONES static void kd_attend(void *kv, int layer, int kvh, const float *q, int pos, int window, float scale, float *out) {
  const kv_dense *d = kv;
  const int hd = d->s.head_dim;
  int p0 = window > 0 && pos - window + 1 > 0 ? pos - window + 1 : 0, n = pos - p0 + 1;
  /* llama.cpp's attention row covers cells [0, n_kv), n_kv = used cells rounded up to 32 */
  int used = d->n_batch > 1 ? d->n : pos + 1, n_kv = (used + 31) & ~31;
  if (n_kv > d->s.n_ctx) n_kv = d->s.n_ctx;
  const int batch = d->n_batch > 1 && hd % 16 == 0 ? 2 : 1;
  float qh[1024], stackbuf[4096];
  float *sc = n <= 4096 ? stackbuf : malloc((size_t)n * sizeof *sc);
  if (!sc) { memset(out, 0, (size_t)hd * sizeof *out); return; }
  for (int i = 0; i < hd; i++) qh[i] = h(q[i]); /* llama.cpp multiplies f16 K by f16 Q */
  const float *K = d->k + (size_t)layer * d->s.n_ctx * d->row + (size_t)kvh * hd;
  const float *V = d->v + (size_t)layer * d->s.n_ctx * d->row + (size_t)kvh * hd;
  float mx = -INFINITY;
  const eng_kd_simd *vx = kd_simd(hd);
  if (vx) vx->kq(qh, K, d->row, p0, n, hd, batch, scale, sc);
  for (int j = 0; j < n; j++) {
    const float *kj = K + (size_t)(p0 + j) * d->row;
    if (!vx) sc[j] = (hd % 16 ? dot_ggml(qh, 1, kj, 1, 0, hd, hd, batch) : kq_ggml(qh, kj, hd, batch)) * scale;
    if (sc[j] > mx) mx = sc[j];
  }
  /* ggml_vec_soft_max_f32: v_expf over 16-cell chunks, each chunk reduced
   * in float and added in double; then scaled by (float)(1 / sum). */
  double sum = 0;
  for (int j = 0; j < n;) {
    float lanes[16] = {0};
    const int c0 = (p0 + j) & ~15;
    for (; j < n && ((p0 + j) & ~15) == c0; j++) lanes[(p0 + j) & 15] = sc[j] = eng_ggml_expf(sc[j] - mx);
    sum += (double)eng_reduce16(lanes);
  }
  const float inv = (float)(1.0 / sum);
  for (int j = 0; j < n; j++) sc[j] = h(sc[j] * inv);
  if (vx) vx->kqv(V, d->row, sc, p0, n, n_kv, batch, hd, out);
  else if (hd % 16 == 0) kqv_ggml(V, d->row, sc, p0, n, n_kv, batch, hd, out);
  else
    for (int i = 0; i < hd; i++) out[i] = dot_ggml(V + (size_t)p0 * d->row + i, d->row, sc, 1, p0, n, n_kv, batch);
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

static const eng_kv_ops k_dense_ops = {"dense-f16", kd_append, kd_attend, kd_truncate, kd_copy_prefix, kd_free, NULL};

void eng__kv_dense_batch(const eng_kv_ops *ops, void *kv, int n_tokens) {
  if (ops == &k_dense_ops) ((kv_dense *)kv)->n_batch = n_tokens;
}

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
