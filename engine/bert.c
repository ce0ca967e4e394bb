/*
 * bert.c — the encoder row of the architecture table (`bert`): sentence
 * embeddings as sentence-transformers computes them with a BertModel
 * (all-MiniLM-L6-v2 is the model kvasir ships a converter for,
 * scripts/convert-minilm):
 *
 *   x   = LN(tok_embd[t] + position_embd[i] + token_types[0])   (one segment)
 *   per layer:  a = softmax(Q·Kᵀ / sqrt(head_dim)) · V over every position
 *               (bidirectional, no mask: one sequence, no padding)
 *               x = LN(x + a·Woᵀ + bo)
 *               x = LN(x + GELU(x·Wupᵀ + bup)·Wdownᵀ + bdown)   (erf GELU)
 *   out = mean of x over the positions ([CLS] and [SEP] included), L2-normed.
 *
 * The file layout (llama.cpp's names): token_embd, position_embd,
 * token_types, token_embd_norm.{weight,bias}; per layer blk.N.attn_{q,k,v,
 * output}.{weight,bias}, attn_output_norm, ffn_up, ffn_down,
 * layer_output_norm (.weight/.bias each). Matrices of any weight type the
 * kernels have (the converter writes f16); vectors, position and token-type
 * tables f32. Keys: bert.{embedding_length, block_count,
 * attention.head_count, feed_forward_length, context_length} and
 * bert.attention.layer_norm_epsilon; every shape is checked at load, so the
 * forward pass indexes without checks. Scratch is allocated per call (the
 * model stays immutable and shareable).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"
#include "kernels/kernels.h"

typedef struct bert_layer {
  const eng_tensor *wq, *bq, *wk, *bk, *wv, *bv, *wo, *bo, *ln1_w, *ln1_b, *wup, *bup, *wdown, *bdown, *ln2_w,
      *ln2_b;
} bert_layer;

typedef struct eng_bert eng_bert;
struct eng_bert {
  const eng_tensor *tok, *pos, *types, *ln_w, *ln_b;
  bert_layer *L;
  float eps;
};

static int geti(const eng_model *m, const char *suffix, int64_t *out, int required, int64_t def, kv_err *err) {
  char key[128];
  snprintf(key, sizeof key, "bert.%s", suffix);
  if (!eng_gguf_has(m->g, key)) {
    if (required) return kv_err_set(err, KV_EFORMAT, "%s: missing key '%s'", eng_gguf_name(m->g), key);
    *out = def;
    return 0;
  }
  int rc = eng_gguf_get_int(m->g, key, out, err);
  if (!rc && (*out <= 0 || *out > (1 << 20)))
    return kv_err_set(err, KV_EFORMAT, "%s: key '%s' = %lld is out of range", eng_gguf_name(m->g), key,
                      (long long)*out);
  return rc;
}

/* A tensor of shape [ne0, ne1]; matrices (mat) of a weight type, else f32. */
static int want(const eng_model *m, const eng_tensor **out, const char *name, uint64_t ne0, uint64_t ne1, int mat,
                kv_err *err) {
  const eng_tensor *t = eng_gguf_tensor(m->g, name);
  *out = t;
  if (!t) return kv_err_set(err, KV_EFORMAT, "%s: missing tensor '%s'", eng_gguf_name(m->g), name);
  if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
    return kv_err_set(err, KV_EFORMAT, "%s: tensor '%s' has shape [%llu, %llu, %llu], expected [%llu, %llu]",
                      eng_gguf_name(m->g), name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                      (unsigned long long)t->ne[2], (unsigned long long)ne0, (unsigned long long)ne1);
  if (mat ? !krn_type_is_weight(t->type) || ne0 % krn_type_block_elems(t->type) : t->type != KRN_F32)
    return kv_err_set(err, KV_EUNSUPPORTED, "%s: tensor '%s' has type %s, which kvasir cannot compute here",
                      eng_gguf_name(m->g), name, krn_type_name(t->type));
  return 0;
}

int eng__bert_load(eng_model *m, kv_err *err) {
  eng_model_info *I = &m->info;
  int64_t x;
  int rc;
#define GETI(field, key, req, def)                     \
  if ((rc = geti(m, key, &x, req, def, err))) return rc; \
  I->field = (int)x;
  GETI(n_embd, "embedding_length", 1, 0);
  GETI(n_layer, "block_count", 1, 0);
  GETI(n_head, "attention.head_count", 1, 0);
  GETI(n_ff, "feed_forward_length", 1, 0);
  GETI(n_ctx_train, "context_length", 0, 512);
#undef GETI
  if (I->n_embd % I->n_head || I->n_layer > 4096)
    return kv_err_set(err, KV_EFORMAT, "%s: inconsistent hyper-parameters (embd %d, layers %d, heads %d)",
                      eng_gguf_name(m->g), I->n_embd, I->n_layer, I->n_head);
  I->n_head_kv = I->n_head;
  I->head_dim = I->n_embd / I->n_head;
  if (!(m->bert = calloc(1, sizeof *m->bert))) return kv_err_set(err, KV_ENOMEM, "out of memory");
  eng_bert *B = m->bert;
  B->eps = 1e-12f;
  if (eng_gguf_has(m->g, "bert.attention.layer_norm_epsilon") &&
      (rc = eng_gguf_get_f32(m->g, "bert.attention.layer_norm_epsilon", &B->eps, err)))
    return rc;
  if ((rc = eng_vocab_load(&m->vocab, m->g, err))) return rc;
  if (m->vocab.kind != VOCAB_WPM)
    return kv_err_set(err, KV_EFORMAT, "%s: a bert model needs a WordPiece vocabulary (tokenizer.ggml.model bert)",
                      eng_gguf_name(m->g));
  I->n_vocab = m->vocab.n;
  const uint64_t d = (uint64_t)I->n_embd, ff = (uint64_t)I->n_ff;
  if ((rc = want(m, &B->tok, "token_embd.weight", d, (uint64_t)I->n_vocab, 1, err)) ||
      (rc = want(m, &B->pos, "position_embd.weight", d, (uint64_t)I->n_ctx_train, 0, err)) ||
      (rc = want(m, &B->ln_w, "token_embd_norm.weight", d, 1, 0, err)) ||
      (rc = want(m, &B->ln_b, "token_embd_norm.bias", d, 1, 0, err)))
    return rc;
  B->types = eng_gguf_tensor(m->g, "token_types.weight");
  if (B->types && (rc = want(m, &B->types, "token_types.weight", d, B->types->ne[1], 0, err))) return rc;
  if (!(B->L = calloc((size_t)I->n_layer, sizeof *B->L))) return kv_err_set(err, KV_ENOMEM, "out of memory");
  for (int il = 0; il < I->n_layer && !rc; il++) {
    bert_layer *L = &B->L[il];
    char n[96];
#define W(field, nm, a, b, mat)                               \
  if (!rc) {                                                  \
    snprintf(n, sizeof n, "blk.%d.%s", il, nm);               \
    rc = want(m, &L->field, n, a, b, mat, err);               \
  }
    W(wq, "attn_q.weight", d, d, 1) W(bq, "attn_q.bias", d, 1, 0);
    W(wk, "attn_k.weight", d, d, 1) W(bk, "attn_k.bias", d, 1, 0);
    W(wv, "attn_v.weight", d, d, 1) W(bv, "attn_v.bias", d, 1, 0);
    W(wo, "attn_output.weight", d, d, 1) W(bo, "attn_output.bias", d, 1, 0);
    W(ln1_w, "attn_output_norm.weight", d, 1, 0) W(ln1_b, "attn_output_norm.bias", d, 1, 0);
    W(wup, "ffn_up.weight", d, ff, 1) W(bup, "ffn_up.bias", ff, 1, 0);
    W(wdown, "ffn_down.weight", ff, d, 1) W(bdown, "ffn_down.bias", d, 1, 0);
    W(ln2_w, "layer_output_norm.weight", d, 1, 0) W(ln2_b, "layer_output_norm.bias", d, 1, 0);
#undef W
  }
  if (rc) return rc;
  for (size_t i = 0; i < eng_gguf_n_tensors(m->g); i++) {
    const eng_tensor *t = eng_gguf_tensor_at(m->g, i);
    I->n_params += (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
  }
  return 0;
}

void eng__bert_free(eng_model *m) {
  if (!m->bert) return;
  free(m->bert->L);
  free(m->bert);
  m->bert = NULL;
}

int eng_embed_dim(const eng_model *m) { return m && m->bert ? m->info.n_embd : 0; }

/* x[n][d] = LN(x + add) with weight/bias (add may be NULL). */
static void layer_norm(float *x, const float *add, size_t n, size_t d, const float *w, const float *b, float eps) {
  for (size_t i = 0; i < n; i++) {
    float *r = x + i * d;
    if (add)
      for (size_t j = 0; j < d; j++) r[j] += add[i * d + j];
    double s = 0, s2 = 0;
    for (size_t j = 0; j < d; j++) s += r[j];
    const double mean = s / (double)d;
    for (size_t j = 0; j < d; j++) s2 += (r[j] - mean) * (r[j] - mean);
    const float inv = (float)(1.0 / sqrt(s2 / (double)d + eps));
    for (size_t j = 0; j < d; j++) r[j] = (float)(r[j] - mean) * inv * w[j] + b[j];
  }
}

/* y[n][o] = x[n][k] · Wᵀ + bias */
static void linear(eng_backend *be, const eng_tensor *W, const eng_tensor *bias, const float *x, size_t n, float *y) {
  const size_t k = (size_t)W->ne[0], o = (size_t)W->ne[1];
  be->matmul(be->state, W->type, W->data, o, k, x, n, y);
  const float *b = bias->data;
  for (size_t i = 0; i < n; i++)
    for (size_t j = 0; j < o; j++) y[i * o + j] += b[j];
}

typedef struct attn_job {
  const float *q, *k, *v;
  float *out, *scores; /* scores: n per head */
  size_t n, d, hd;
  float scale;
} attn_job;

static void attn_head(void *ctx, int h) {
  const attn_job *J = ctx;
  const size_t n = J->n, d = J->d, hd = J->hd, off = (size_t)h * hd;
  float *sc = J->scores + (size_t)h * n;
  for (size_t i = 0; i < n; i++) {
    const float *qi = J->q + i * d + off;
    float mx = -INFINITY;
    for (size_t j = 0; j < n; j++) {
      sc[j] = krn_dot_f32(qi, J->k + j * d + off, hd) * J->scale;
      if (sc[j] > mx) mx = sc[j];
    }
    double sum = 0;
    for (size_t j = 0; j < n; j++) sum += (sc[j] = expf(sc[j] - mx));
    float *o = J->out + i * d + off;
    memset(o, 0, hd * sizeof *o);
    for (size_t j = 0; j < n; j++) krn_axpy_f32(o, (float)(sc[j] / sum), J->v + j * d + off, hd);
  }
}

static int encode(const eng_model *m, eng_backend *be, const int32_t *t, size_t n, float *out, kv_err *err) {
  const eng_bert *B = m->bert;
  const size_t d = (size_t)m->info.n_embd, ff = (size_t)m->info.n_ff, nh = (size_t)m->info.n_head;
  float *x = malloc(n * d * sizeof *x), *q = malloc(n * d * sizeof *q), *k = malloc(n * d * sizeof *k),
        *v = malloc(n * d * sizeof *v), *a = malloc(n * d * sizeof *a), *h = malloc(n * ff * sizeof *h),
        *sc = malloc(nh * n * sizeof *sc);
  int rc = 0;
  if (!x || !q || !k || !v || !a || !h || !sc) {
    rc = kv_err_set(err, KV_ENOMEM, "eng_embed: out of memory for %zu tokens", n);
    goto done;
  }
  const size_t row = krn_row_bytes(B->tok->type, d);
  const float *pos = B->pos->data, *typ = B->types ? B->types->data : NULL;
  for (size_t i = 0; i < n; i++) {
    float *r = x + i * d;
    be->dequant_row(be->state, B->tok->type, (const char *)B->tok->data + (size_t)t[i] * row, r, d);
    for (size_t j = 0; j < d; j++) r[j] += pos[i * d + j] + (typ ? typ[j] : 0.f);
  }
  layer_norm(x, NULL, n, d, B->ln_w->data, B->ln_b->data, B->eps);
  attn_job J = {q, k, v, a, sc, n, d, d / nh, 1.0f / sqrtf((float)(d / nh))};
  for (int il = 0; il < m->info.n_layer; il++) {
    const bert_layer *L = &B->L[il];
    linear(be, L->wq, L->bq, x, n, q);
    linear(be, L->wk, L->bk, x, n, k);
    linear(be, L->wv, L->bv, x, n, v);
    be->parallel(be->state, attn_head, &J, (int)nh);
    linear(be, L->wo, L->bo, a, n, q); /* q is free again */
    layer_norm(x, q, n, d, L->ln1_w->data, L->ln1_b->data, B->eps);
    linear(be, L->wup, L->bup, x, n, h);
    for (size_t i = 0; i < n * ff; i++) h[i] = 0.5f * h[i] * (1.0f + erff(h[i] * 0.70710678118654752f));
    linear(be, L->wdown, L->bdown, h, n, q);
    layer_norm(x, q, n, d, L->ln2_w->data, L->ln2_b->data, B->eps);
  }
  double norm = 0;
  for (size_t j = 0; j < d; j++) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i * d + j];
    out[j] = (float)(s / (double)n);
    norm += (double)out[j] * out[j];
  }
  const float inv = norm > 0 ? (float)(1.0 / sqrt(norm)) : 0.f;
  for (size_t j = 0; j < d; j++) out[j] *= inv;
done:
  free(x), free(q), free(k), free(v), free(a), free(h), free(sc);
  return rc;
}

int eng_embed(const eng_model *m, eng_backend *be, const char *text, size_t len, size_t max_tokens, float *out,
              size_t *n_tokens, kv_err *err) {
  if (n_tokens) *n_tokens = 0;
  if (!m || !m->bert) return kv_err_set(err, KV_EINVAL, "eng_embed: %s is not an encoder model", m ? m->name : "NULL");
  if (!be) return kv_err_set(err, KV_EINVAL, "eng_embed: no backend");
  size_t cap = (size_t)m->info.n_ctx_train;
  if (max_tokens == 0) max_tokens = 256; /* sentence-transformers' max_seq_length for MiniLM */
  if (max_tokens > cap) max_tokens = cap;
  if (max_tokens < 2) return kv_err_set(err, KV_EINVAL, "eng_embed: max_tokens %zu leaves no room for [CLS] [SEP]", max_tokens);
  /* tokenize everything (bounded by the text), then cut as tokenizers'
   * truncation does: the first max_tokens - 1 pieces, then [SEP] */
  size_t n = 0, tcap = len + 2;
  int32_t *t = malloc(tcap * sizeof *t);
  if (!t) return kv_err_set(err, KV_ENOMEM, "eng_embed: out of memory");
  int rc = eng__wpm_tokenize(&m->vocab, text, len, 1, t, tcap, &n, err);
  if (!rc) {
    if (n > max_tokens) {
      n = max_tokens;
      t[n - 1] = m->vocab.sep;
    }
    rc = encode(m, be, t, n, out, err);
    if (!rc && n_tokens) *n_tokens = n;
  }
  free(t);
  return rc;
}
