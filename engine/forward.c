/*
 * forward.c — the transformer forward pass for a batch of tokens, shared by
 * llama, qwen2 and gemma3; the differences are data (the architecture's row
 * in arch.c, eng_model fields and optional tensors), not code paths:
 *   llama:  RMSNorm -> attention (RoPE, adjacent pairs; Llama 3's
 *           rope_freqs divide each pair's angle) -> SwiGLU FFN
 *   qwen2:  as llama with Q/K/V biases and NeoX RoPE (split halves)
 *   qwen3:  as qwen2 without biases, each Q/K head RMS-normed before RoPE
 *   gemma3: embeddings scaled by sqrt(n_embd), QK-norm, post-attention and
 *           post-FFN norms, GELU-tanh gate, sliding-window layers (5 of 6)
 *           with their own RoPE base.
 * Numerics follow llama.cpp's CPU path op for op (bit-identical on
 * SmolLM2): activations quantized inside krn_matmul, K/V and Q rounded to
 * f16 in the cache, attention sums in ggml's order (kv_dense.c), RoPE with
 * the FMAs ggml's -march=native build contracts to, SiLU through ggml's
 * vector expf (ggml_math_internal.h), GELU through f16 like ggml's table.
 * All buffers come from the context; nothing is allocated per token.
 */
#include <math.h>
#include <string.h>

#include "engine/ctx_internal.h"
#include "engine/ggml_math_internal.h"
#include "kernels/kernels.h"

/* GELU-tanh as ggml computes it: through the half-precision table. */
static float gelu_tab(const uint16_t *tab, float x) {
  if (x <= -10.f) return 0.f;
  if (x >= 10.f) return x;
  return eng_h2f(tab[eng_f2h(x)]);
}

/* g = GELU(g) * u through the table, as ggml_vec_geglu_f32. */
static void geglu(float *g, const float *u, size_t n, const uint16_t *tab) {
  for (size_t i = 0; i < n; i++) g[i] = gelu_tab(tab, g[i]) * u[i];
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* The same 8 at a time with F16C's conversions (round to nearest even both
 * ways, the bits of eng_f2h / eng_h2f): the table index conversion was most
 * of this loop's time. */
__attribute__((target("avx2,f16c"))) static void geglu_f16c(float *g, const float *u, size_t n, const uint16_t *tab) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(g + i);
    uint16_t hx[8], t[8];
    _mm_storeu_si128((__m128i *)hx, _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    for (int k = 0; k < 8; k++) t[k] = tab[hx[k]];
    __m256 y = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)t));
    y = _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, _mm256_set1_ps(10.f), _CMP_GE_OQ));
    y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, _mm256_set1_ps(-10.f), _CMP_LE_OQ));
    _mm256_storeu_ps(g + i, _mm256_mul_ps(y, _mm256_loadu_ps(u + i)));
  }
  geglu(g + i, u + i, n - i, tab);
}
#endif

/* RMSNorm rounded exactly as ggml's RMS_NORM followed by MUL: squares in
 * f32 summed in double, mean and scale in f32, then x*scale, then *w. In
 * place is allowed. (krn_rmsnorm sums differently; in these small models
 * 1e-7 differences are amplified into visible logit changes, and the
 * reference we are held to is llama.cpp.) */
static void rmsnorm(float *out, const float *x, const float *w, size_t n, float eps) {
  double sum = 0.0;
  for (size_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
  const float mean = (float)(sum / (double)n);
  const float scale = 1.0f / sqrtf(mean + eps);
  for (size_t i = 0; i < n; i++) out[i] = (x[i] * scale) * w[i];
}

/* g = silu(g) * u as ggml_vec_swiglu_f32 (its vector SiLU). */
ENG_FMA_CLONES static void silu_mul(float *g, const float *u, size_t n) {
  for (size_t i = 0; i < n; i++) g[i] = eng_ggml_silu(g[i]) * u[i];
}

/* RoPE on one head in place, as ggml_rope_ext: r's base, linear/YaRN
 * scaling (rope_yarn: the interpolated angle freq_scale * theta, mixed
 * toward the extrapolated one below dims corr[0..1] when ext_factor is
 * set, cos/sin times mscale). ff: Llama 3's rope_freqs (dimension pair i
 * turns by theta / ff[i], as ggml's freq_factors), or NULL. */
static void rope(float *x, int rope_dim, int pos, const eng_rope *r, int neox, const float *ff) {
  const float theta_scale = powf(r->base, -2.0f / (float)rope_dim);
  const int plain = r->freq_scale == 1.0f && r->ext_factor == 0.0f && r->mscale == 1.0f;
  float theta = (float)pos;
  for (int i = 0; i < rope_dim / 2; i++) {
    const float te = ff ? theta / ff[i] : theta;
    float c, s;
    if (plain) {
      c = cosf(te), s = sinf(te);
    } else {
      float t = r->freq_scale * te, ms = r->mscale;
      if (r->ext_factor != 0.0f) {
        float y = ((float)i - r->corr[0]) / fmaxf(0.001f, r->corr[1] - r->corr[0]); /* i0 / 2 = i */
        float mix = (1.0f - fminf(1.0f, fmaxf(0.0f, y))) * r->ext_factor;
        t = t * (1 - mix) + te * mix;
        ms *= 1.0f + 0.1f * logf(1.0f / r->freq_scale);
      }
      c = cosf(t) * ms, s = sinf(t) * ms;
    }
    int a = neox ? i : 2 * i, b = neox ? i + rope_dim / 2 : 2 * i + 1;
    const float x0 = x[a], x1 = x[b];
    x[a] = fmaf(x0, c, -(x1 * s)); /* ggml's build contracts these to FMA */
    x[b] = fmaf(x0, s, x1 * c);
    theta *= theta_scale;
  }
}

typedef struct attn_job {
  eng_ctx *c;
  int layer, m, pos0, window;
  int chunk, n_chunks; /* attend_rows: tokens per task, tasks per KV head */
  float scale;
} attn_job;

static void attn_task(void *p, int i) {
  attn_job *j = p;
  eng_ctx *c = j->c;
  const eng_model_info *I = &c->m->info;
  int t = i / I->n_head, hh = i % I->n_head;
  int kvh = hh / (I->n_head / I->n_head_kv);
  size_t nq = (size_t)I->n_head * I->head_dim;
  c->kvo->attend(c->kv, j->layer, kvh, c->q + t * nq + (size_t)hh * I->head_dim, j->pos0 + t, j->window, j->scale,
                 c->att + t * nq + (size_t)hh * I->head_dim);
}

/* Task i of a batch through attend_rows: KV head i / n_chunks, its g query
 * heads, for the chunk (i % n_chunks) of the batch's tokens. */
static void attn_rows_task(void *p, int i) {
  attn_job *j = p;
  eng_ctx *c = j->c;
  const eng_model_info *I = &c->m->info;
  int kvh = i / j->n_chunks, t0 = (i % j->n_chunks) * j->chunk, nt = j->m - t0 < j->chunk ? j->m - t0 : j->chunk;
  int g = I->n_head / I->n_head_kv;
  size_t nq = (size_t)I->n_head * I->head_dim, off = (size_t)t0 * nq + (size_t)kvh * g * I->head_dim;
  c->kvo->attend_rows(c->kv, j->layer, kvh, g, c->q + off, nq, j->pos0 + t0, nt, j->window, j->scale, c->att + off);
}

/* Decode (one token) through attend_rows: task i is KV head i / n_chunks
 * with its query heads' (i % n_chunks)-th group of j->chunk heads, so a
 * cache reads each KV head's rows once per group instead of once per query
 * head (GQA: 7 query heads per KV head at 7B). */
static void attn_group_task(void *p, int i) {
  attn_job *j = p;
  eng_ctx *c = j->c;
  const eng_model_info *I = &c->m->info;
  int kvh = i / j->n_chunks, h0 = kvh * (I->n_head / I->n_head_kv) + (i % j->n_chunks) * j->chunk;
  size_t off = (size_t)h0 * I->head_dim, nq = (size_t)I->n_head * I->head_dim;
  c->kvo->attend_rows(c->kv, j->layer, kvh, j->chunk, c->q + off, nq, j->pos0, 1, j->window, j->scale, c->att + off);
}

/* The batch's attention: for a decode step through attend_rows per (KV
 * head, group of its query heads); else per (token, head), or, when the cache reads a
 * batch at once (attend_rows), per (KV head, chunk of tokens), the chunks
 * as long as the threads allow (longer ones read each block for more
 * queries) and at most 16 tokens (more tasks than threads to balance). */
static void attention(eng_ctx *c, attn_job *job) {
  const eng_model_info *I = &c->m->info;
  int want = 2 * (c->be->n_threads > 0 ? c->be->n_threads : 1); /* tasks */
  if (c->kvo->attend_rows && job->m == 1) {
    /* the fewest groups per KV head (a divisor of g) that still give each
     * thread two tasks */
    int g = I->n_head / I->n_head_kv, s = 1;
    while (s < g && (g % s || I->n_head_kv * s < want)) s++;
    job->chunk = g / s;
    job->n_chunks = s;
    c->be->parallel(c->be->state, attn_group_task, job, I->n_head_kv * s);
    return;
  }
  if (!c->kvo->attend_rows || job->m < 2) {
    c->be->parallel(c->be->state, attn_task, job, job->m * I->n_head);
    return;
  }
  int per_kv = (want + I->n_head_kv - 1) / I->n_head_kv;
  int chunk = (job->m + per_kv - 1) / per_kv;
  if (chunk > 16) chunk = 16;
  if (chunk < 1) chunk = 1;
  job->chunk = chunk;
  job->n_chunks = (job->m + chunk - 1) / chunk;
  c->be->parallel(c->be->state, attn_rows_task, job, I->n_head_kv * job->n_chunks);
}

static void add_bias(float *y, const eng_tensor *b, size_t m, size_t n) {
  if (!b) return;
  const float *bb = b->data;
  for (size_t t = 0; t < m; t++)
    for (size_t i = 0; i < n; i++) y[t * n + i] += bb[i];
}

static void mm(eng_ctx *c, const eng_tensor *W, const float *x, size_t m, float *y) {
  c->be->matmul(c->be->state, W->type, W->data, (size_t)W->ne[1], (size_t)W->ne[0], x, m, y);
}

/* Up to three matrices over the same x (Q/K/V, gate/up) as one backend job
 * where the backend has one: one activation quantization and one barrier
 * instead of one per matrix; at 7B decode the small K/V matvecs otherwise
 * spend more time in the fork/join than in their rows. Same bits either way. */
static void mm3(eng_ctx *c, const float *x, size_t m, const eng_tensor *W0, float *y0, const eng_tensor *W1, float *y1,
                const eng_tensor *W2, float *y2) {
  const eng_tensor *W[3] = {W0, W1, W2};
  float *Y[3] = {y0, y1, y2};
  const int n = W2 ? 3 : 2;
  if (!c->be->matmul_n) {
    for (int i = 0; i < n; i++) mm(c, W[i], x, m, Y[i]);
    return;
  }
  eng_mm_part parts[3];
  for (int i = 0; i < n; i++) parts[i] = (eng_mm_part){W[i]->type, W[i]->data, (size_t)W[i]->ne[1], Y[i]};
  c->be->matmul_n(c->be->state, parts, n, (size_t)W0->ne[0], x, m);
}

/* Forward m (<= c->B) tokens at positions pos0..; rows listed in want_rows
 * (or the last row when logits_out has room for one) get logits. */
int eng__forward(eng_ctx *c, const int32_t *toks, int m, int pos0, float *logits, int all) {
  const eng_model *M = c->m;
  const eng_model_info *I = &M->info;
  const size_t d = (size_t)I->n_embd, hd = (size_t)I->head_dim, nq = (size_t)I->n_head * hd,
               nkv = (size_t)I->n_head_kv * hd, ff = (size_t)I->n_ff;
  const size_t erow = krn_row_bytes(M->tok_embd->type, d);
  for (int t = 0; t < m; t++) {
    if (toks[t] < 0 || toks[t] >= I->n_vocab) return KV_EINVAL;
    c->be->dequant_row(c->be->state, M->tok_embd->type, (const uint8_t *)M->tok_embd->data + (size_t)toks[t] * erow,
                       c->x + t * d, d);
    if (M->emb_scale != 1.0f)
      for (size_t i = 0; i < d; i++) c->x[t * d + i] *= M->emb_scale;
  }
  const float *rf = M->rope_freqs ? M->rope_freqs->data : NULL;
  eng__kv_dense_batch(c->kvo, c->kv, m);
  for (int il = 0; il < I->n_layer; il++) {
    const eng_layer *L = &M->layers[il];
    for (int t = 0; t < m; t++) rmsnorm(c->xn + t * d, c->x + t * d, L->attn_norm->data, d, M->eps);
    mm3(c, c->xn, (size_t)m, L->wq, c->q, L->wk, c->k, L->wv, c->v);
    add_bias(c->q, L->bq, (size_t)m, nq);
    add_bias(c->k, L->bk, (size_t)m, nkv);
    add_bias(c->v, L->bv, (size_t)m, nkv);
    float qscale = 1.0f;
    for (int t = 0; t < m; t++) {
      for (int hh = 0; hh < I->n_head; hh++) {
        float *q = c->q + t * nq + (size_t)hh * hd;
        if (L->q_norm) rmsnorm(q, q, L->q_norm->data, hd, M->eps);
        rope(q, M->rope_dim, pos0 + t, &L->rope, M->rope_neox, rf);
        if (M->a->scale_q)
          for (size_t i = 0; i < hd; i++) q[i] *= M->attn_scale; /* gemma scales Q, then kq_scale = 1 */
      }
      for (int hh = 0; hh < I->n_head_kv; hh++) {
        float *k = c->k + t * nkv + (size_t)hh * hd;
        if (L->k_norm) rmsnorm(k, k, L->k_norm->data, hd, M->eps);
        rope(k, M->rope_dim, pos0 + t, &L->rope, M->rope_neox, rf);
      }
      int rc = c->kvo->append(c->kv, il, pos0 + t, c->k + t * nkv, c->v + t * nkv);
      if (rc) return rc;
    }
    if (!M->a->scale_q) qscale = M->attn_scale;
    attn_job job = {c, il, m, pos0, L->swa ? M->n_swa : 0, 0, 0, qscale};
    attention(c, &job);
    mm(c, L->wo, c->att, (size_t)m, c->o);
    for (int t = 0; t < m; t++) {
      float *o = c->o + t * d, *x = c->x + t * d;
      if (L->post_attn_norm) rmsnorm(o, o, L->post_attn_norm->data, d, M->eps);
      for (size_t i = 0; i < d; i++) x[i] += o[i];
      rmsnorm(c->xn + t * d, x, L->ffn_norm->data, d, M->eps);
    }
    mm3(c, c->xn, (size_t)m, L->ffn_gate, c->g, L->ffn_up, c->u, NULL, NULL);
    if (M->gelu_tab) {
#if defined(__x86_64__) && defined(__GNUC__)
      if (krn_cpu_features()->f16c && krn_cpu_features()->avx2) geglu_f16c(c->g, c->u, (size_t)m * ff, M->gelu_tab);
      else
#endif
        geglu(c->g, c->u, (size_t)m * ff, M->gelu_tab);
    } else
      silu_mul(c->g, c->u, (size_t)m * ff);
    mm(c, L->ffn_down, c->g, (size_t)m, c->o);
    for (int t = 0; t < m; t++) {
      float *o = c->o + t * d, *x = c->x + t * d;
      if (L->post_ffn_norm) rmsnorm(o, o, L->post_ffn_norm->data, d, M->eps);
      for (size_t i = 0; i < d; i++) x[i] += o[i];
    }
  }
  if (!logits) return 0;
  int r0 = all ? 0 : m - 1;
  for (int t = r0; t < m; t++) rmsnorm(c->xn + (t - r0) * d, c->x + t * d, M->out_norm->data, d, M->eps);
  mm(c, M->output, c->xn, (size_t)(m - r0), logits);
  return 0;
}
