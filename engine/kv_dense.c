/*
 * kv_dense.c — the reference KV cache behind eng_kv_ops: every position of
 * every layer kept, K and V rounded to IEEE half like llama.cpp's default
 * f16 cache (stored widened to f32 so attention reads need no conversion).
 * Layout: k[layer][pos][kv_head][head_dim], same for v. attend() is
 * read-only and safe to call from several threads at once. Its sums follow
 * llama.cpp's orders (below), with explicit AVX-512 loops where the CPU has
 * them (same bits, ~5x faster than the portable loops).
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ggml_math_internal.h"
#include "engine/internal.h"
#include "kernels/kernels.h"

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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define KD_HAVE_512 1
#define KD512 __attribute__((target("avx2,fma,avx512f")))

/* The same two orders with explicit AVX-512 (the machine llama.cpp's
 * reference build ran on): ggml's f16 products are exact in float, its
 * FMAs are these FMAs and _mm512_reduce_add_ps is eng_reduce16, so the
 * results are the bits of the loops above, at vector speed. */

/* sc[j] = (K row p0+j · q) * scale for j < n. */
KD512 static void kq512(const float *q, const float *K, size_t row, int p0, int n, int hd, int batch, float scale,
                        float *sc) {
  int j = 0;
  if (batch > 1) {
    for (; j + 4 <= n; j += 4) {
      const float *k0 = K + (size_t)(p0 + j) * row;
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int c = 0; c < hd; c += 16) {
        const __m512 qv = _mm512_loadu_ps(q + c);
        a0 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + c), a0);
        a1 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + row + c), a1);
        a2 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 2 * row + c), a2);
        a3 = _mm512_fmadd_ps(qv, _mm512_loadu_ps(k0 + 3 * row + c), a3);
      }
      sc[j] = _mm512_reduce_add_ps(a0) * scale;
      sc[j + 1] = _mm512_reduce_add_ps(a1) * scale;
      sc[j + 2] = _mm512_reduce_add_ps(a2) * scale;
      sc[j + 3] = _mm512_reduce_add_ps(a3) * scale;
    }
    for (; j < n; j++) {
      const float *k0 = K + (size_t)(p0 + j) * row;
      __m512 a0 = _mm512_setzero_ps();
      for (int c = 0; c < hd; c += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + c), _mm512_loadu_ps(k0 + c), a0);
      sc[j] = _mm512_reduce_add_ps(a0) * scale;
    }
    return;
  }
  const int np = hd & ~63;
  for (; j < n; j++) {
    const float *k0 = K + (size_t)(p0 + j) * row;
    __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
    for (int c = 0; c < np; c += 64)
      for (int g = 0; g < 4; g++)
        a[g] = _mm512_fmadd_ps(_mm512_loadu_ps(q + c + 16 * g), _mm512_loadu_ps(k0 + c + 16 * g), a[g]);
    double tail = 0;
    for (int e = np; e < hd; e++) tail += (double)(q[e] * k0[e]);
    a[0] = _mm512_add_ps(a[0], a[2]);
    a[1] = _mm512_add_ps(a[1], a[3]);
    a[0] = _mm512_add_ps(a[0], a[1]);
    sc[j] = (float)((double)_mm512_reduce_add_ps(a[0]) + tail) * scale;
  }
}

/* _mm512_reduce_add_ps's pairing across 16 registers, lane-wise: out[e] =
 * eng_reduce16 of (A[0][e], ..., A[15][e]). */
KD512 static __m512 reduce16x16(__m512 *A) {
  __m512 t3[8], t6[4];
  for (int i = 0; i < 8; i++) t3[i] = _mm512_add_ps(A[8 + i], A[i]);
  for (int i = 0; i < 4; i++) t6[i] = _mm512_add_ps(t3[4 + i], t3[i]);
  return _mm512_add_ps(_mm512_add_ps(t6[0], t6[2]), _mm512_add_ps(t6[1], t6[3]));
}

/* out = V·p over positions p0..p0+n-1, 16 dimensions at a time: one
 * accumulator register per position lane (and, for one token, per group of
 * 16 lanes of ggml_vec_dot_f16's four; positions from n_total & ~63 on are
 * summed in double per dimension). */
KD512 static void kqv512(const float *V, size_t row, const float *p, int p0, int n, int n_total, int batch, int hd,
                         float *out) {
  const int np = batch > 1 ? p0 + n : n_total & ~63;
  for (int i0 = 0; i0 < hd; i0 += 16) {
    __m512 A[4][16];
    for (int g = 0; g < 4; g++)
      for (int l = 0; l < 16; l++) A[g][l] = _mm512_setzero_ps();
    __m512d t0 = _mm512_setzero_pd(), t1 = _mm512_setzero_pd();
    for (int j = 0; j < n; j++) {
      const int g = p0 + j;
      const __m512 v = _mm512_loadu_ps(V + (size_t)g * row + i0), pj = _mm512_set1_ps(p[j]);
      if (g < np) {
        __m512 *a = &A[batch > 1 ? 0 : (g >> 4) & 3][g & 15];
        *a = _mm512_fmadd_ps(v, pj, *a);
      } else {
        const __m512 pr = _mm512_mul_ps(v, pj);
        t0 = _mm512_add_pd(t0, _mm512_cvtps_pd(_mm512_castps512_ps256(pr)));
        t1 = _mm512_add_pd(t1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(pr), 1))));
      }
    }
    if (batch <= 1)
      for (int l = 0; l < 16; l++) {
        A[0][l] = _mm512_add_ps(A[0][l], A[2][l]);
        A[1][l] = _mm512_add_ps(A[1][l], A[3][l]);
        A[0][l] = _mm512_add_ps(A[0][l], A[1][l]);
      }
    const __m512 r = reduce16x16(A[0]);
    if (batch > 1) _mm512_storeu_ps(out + i0, r);
    else {
      const __m512d lo = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(r)), t0);
      const __m512d hi = _mm512_add_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(r), 1))), t1);
      _mm256_storeu_ps(out + i0, _mm512_cvtpd_ps(lo));
      _mm256_storeu_ps(out + i0 + 8, _mm512_cvtpd_ps(hi));
    }
  }
}

/* The AVX-512 loops where the CPU has them, unless KVASIR_ISA caps the
 * level below avx512 (as it caps the kernels). */
static int kd_use512(void) {
  static _Atomic int cached = -1; /* a constant of the process, computed once */
  int v = atomic_load_explicit(&cached, memory_order_relaxed);
  if (v < 0) {
    const krn_cpu *c = krn_cpu_features();
    v = c->avx512f && c->fma && c->avx2 && !strcmp(krn_isa_name(), "avx512");
    atomic_store_explicit(&cached, v, memory_order_relaxed);
  }
  return v;
}
#else
#define KD_HAVE_512 0
#endif

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
#if KD_HAVE_512
  const int v512 = hd % 16 == 0 && kd_use512();
  if (v512) kq512(qh, K, d->row, p0, n, hd, batch, scale, sc);
#else
  const int v512 = 0;
#endif
  for (int j = 0; j < n; j++) {
    const float *kj = K + (size_t)(p0 + j) * d->row;
    if (!v512) sc[j] = (hd % 16 ? dot_ggml(qh, 1, kj, 1, 0, hd, hd, batch) : kq_ggml(qh, kj, hd, batch)) * scale;
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
#if KD_HAVE_512
  if (v512) kqv512(V, d->row, sc, p0, n, n_kv, batch, hd, out);
  else
#endif
  if (hd % 16 == 0) kqv_ggml(V, d->row, sc, p0, n, n_kv, batch, hd, out);
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
