/*
 * model.c — open a GGUF model: find its architecture's row (arch.c), read
 * the hyper-parameters, find every weight tensor the row asks for and check
 * its type and shape against them, so the forward pass can index weights
 * without further checks. Weights stay in the mapping; nothing is converted
 * at load.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/internal.h"
#include "kernels/kernels.h"

const char *eng_version(void) { return "0.1.0"; }

int eng_default_model_path(char *buf, size_t n) {
  char dir[4096];
  if (kv_xdg_dir(dir, sizeof dir, "cache")) return KV_ELIMIT;
  int k = snprintf(buf, n, "%s/models/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
  return k < 0 || (size_t)k >= n ? KV_ELIMIT : 0;
}

static int kint(const eng_model *m, const char *suffix, int64_t *out, int required, int64_t def, kv_err *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
  if (!eng_gguf_has(m->g, key)) {
    if (required) return kv_err_set(err, KV_EFORMAT, "%s: missing key '%s'", eng_gguf_name(m->g), key);
    *out = def;
    return 0;
  }
  int rc = eng_gguf_get_int(m->g, key, out, err);
  if (!rc && (*out < 0 || *out > (1 << 24)))
    return kv_err_set(err, KV_EFORMAT, "%s: key '%s' = %lld is out of range", eng_gguf_name(m->g), key,
                      (long long)*out);
  return rc;
}
static int kf32(const eng_model *m, const char *suffix, float *out, float def, kv_err *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
  if (!eng_gguf_has(m->g, key)) { *out = def; return 0; }
  return eng_gguf_get_f32(m->g, key, out, err);
}

/* Find a tensor and check its shape [ne0, ne1] (ne1 = 1 for vectors). */
static int want(const eng_model *m, const eng_tensor **out, const char *name, uint64_t ne0, uint64_t ne1,
                int required, int f32_only, kv_err *err) {
  const eng_tensor *t = eng_gguf_tensor(m->g, name);
  *out = t;
  if (!t) return required ? kv_err_set(err, KV_EFORMAT, "%s: missing tensor '%s'", eng_gguf_name(m->g), name) : 0;
  if (t->ne[0] != ne0 || t->ne[1] != ne1 || t->ne[2] != 1 || t->ne[3] != 1)
    return kv_err_set(err, KV_EFORMAT, "%s: tensor '%s' has shape [%llu, %llu, %llu], expected [%llu, %llu]",
                      eng_gguf_name(m->g), name, (unsigned long long)t->ne[0], (unsigned long long)t->ne[1],
                      (unsigned long long)t->ne[2], (unsigned long long)ne0, (unsigned long long)ne1);
  if (f32_only ? t->type != KRN_F32 : !krn_type_block_bytes(t->type))
    return kv_err_set(err, KV_EUNSUPPORTED, "%s: tensor '%s' has type %s, which kvasir cannot compute here",
                      eng_gguf_name(m->g), name, krn_type_name(t->type));
  return 0;
}

static void layer_rope(const eng_model *m, eng_layer *L);

/* The layer fields repack_weights may replace. */
#define N_LAYER_MATS 7
static const eng_tensor **layer_mat(eng_layer *L, int i) {
  const eng_tensor **f[N_LAYER_MATS] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->ffn_gate, &L->ffn_up, &L->ffn_down};
  return f[i];
}

static int repackable(const eng_model *m, const eng_tensor *t) {
  return t && t != m->tok_embd && t != m->output && krn_repack_type(t->type, (size_t)t->ne[1], (size_t)t->ne[0]) >= 0;
}

/* Layer matrices that the CPU kernels run faster repacked (Q4_K with a
 * multiple of 8 rows: krn_repack, 8 rows interleaved, results bit-identical)
 * are repacked once here into one anonymous mapping (huge pages where the
 * kernel gives them: a decode token streams every byte once, and 4 KiB pages
 * cost a TLB miss each 4 KiB), and the file pages they came from are handed
 * back (eng_gguf_release), so resident memory stays about the file's size
 * rather than growing by the repacked bytes. The embedding and the output
 * head are never repacked: rows of the embedding are dequantized one by one,
 * and the KV store's model hash reads both. Repacking is an optimisation:
 * when the mapping cannot be had the file's layout stays. KVASIR_REPACK=0
 * keeps the file's layout (A/B benchmarks in one build). */
static void repack_weights(eng_model *m) {
  const char *env = getenv("KVASIR_REPACK");
  if (env && !strcmp(env, "0")) return;
  size_t n = 0, bytes = 0;
  for (int il = 0; il < m->info.n_layer; il++)
    for (int i = 0; i < N_LAYER_MATS; i++) {
      const eng_tensor *t = *layer_mat(&m->layers[il], i);
      if (repackable(m, t)) n++, bytes += (t->nbytes + 63) & ~(size_t)63;
    }
  if (!n) return;
  const size_t huge = (size_t)2 << 20, len = bytes + huge;
  void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (map == MAP_FAILED) return;
  uint8_t *arena = (uint8_t *)(((uintptr_t)map + huge - 1) & ~(uintptr_t)(huge - 1));
#ifdef MADV_HUGEPAGE
  madvise(arena, bytes, MADV_HUGEPAGE);
#endif
  eng_tensor *packed = calloc(n, sizeof *packed);
  if (!packed) {
    munmap(map, len);
    return;
  }
  size_t k = 0, off = 0;
  for (int il = 0; il < m->info.n_layer; il++)
    for (int i = 0; i < N_LAYER_MATS; i++) {
      const eng_tensor **f = layer_mat(&m->layers[il], i), *t = *f;
      if (!repackable(m, t)) continue;
      eng_tensor *c = &packed[k];
      *c = *t;
      if (krn_repack(t->type, t->data, (size_t)t->ne[1], (size_t)t->ne[0], arena + off)) continue;
      c->type = krn_repack_type(t->type, (size_t)t->ne[1], (size_t)t->ne[0]);
      c->data = arena + off;
      eng_gguf_release(m->g, t->data, t->nbytes);
      *f = c;
      m->info.repacked_bytes += t->nbytes;
      off += (t->nbytes + 63) & ~(size_t)63;
      k++;
    }
  m->packed = packed;
  m->n_packed = k;
  m->pack_map = map;
  m->pack_len = len;
}

static int load_layers(eng_model *m, kv_err *err) {
  const eng_model_info *I = &m->info;
  uint64_t d = (uint64_t)I->n_embd, q = (uint64_t)I->n_head * I->head_dim, kv = (uint64_t)I->n_head_kv * I->head_dim;
  m->layers = calloc((size_t)I->n_layer, sizeof *m->layers);
  if (!m->layers) return kv_err_set(err, KV_ENOMEM, "out of memory");
  for (int il = 0; il < I->n_layer; il++) {
    eng_layer *L = &m->layers[il];
    char n[96];
    int rc = 0;
#define W(field, nm, a, b, req, f32)                                       \
  do {                                                                     \
    snprintf(n, sizeof n, "blk.%d.%s", il, nm);                            \
    if (!rc) rc = want(m, &L->field, n, a, b, req, f32, err);              \
  } while (0)
    W(attn_norm, "attn_norm.weight", d, 1, 1, 1);
    W(wq, "attn_q.weight", d, q, 1, 0);
    W(wk, "attn_k.weight", d, kv, 1, 0);
    W(wv, "attn_v.weight", d, kv, 1, 0);
    W(wo, "attn_output.weight", q, d, 1, 0);
    W(ffn_norm, "ffn_norm.weight", d, 1, 1, 1);
    W(ffn_gate, "ffn_gate.weight", d, (uint64_t)I->n_ff, 1, 0);
    W(ffn_up, "ffn_up.weight", d, (uint64_t)I->n_ff, 1, 0);
    W(ffn_down, "ffn_down.weight", (uint64_t)I->n_ff, d, 1, 0);
    const unsigned need = m->a->need; /* a group another row needs is read when present */
    int bias = !!(need & ENG_T_QKV_BIAS), qk = !!(need & ENG_T_QK_NORM), post = !!(need & ENG_T_POST_NORMS);
    W(bq, "attn_q.bias", q, 1, bias, 1);
    W(bk, "attn_k.bias", kv, 1, bias, 1);
    W(bv, "attn_v.bias", kv, 1, bias, 1);
    W(q_norm, "attn_q_norm.weight", (uint64_t)I->head_dim, 1, qk, 1);
    W(k_norm, "attn_k_norm.weight", (uint64_t)I->head_dim, 1, qk, 1);
    W(post_attn_norm, "post_attention_norm.weight", d, 1, post, 1);
    W(post_ffn_norm, "post_ffw_norm.weight", d, 1, post, 1);
#undef W
    if (rc) return rc;
    const int period = m->a->swa_period;
    L->swa = period > 0 && m->n_swa > 0 && (il + 1) % period != 0;
    L->rope_base = L->swa ? m->rope_base_swa : m->rope_base;
    layer_rope(m, L);
  }
  return 0;
}

/* rope.scaling.{type,factor,attn_factor,original_context_length} (and the
 * old rope.scale_linear), read as llama.cpp reads them: the type defaults
 * to linear, a factor of 0 or none means no scaling, and YaRN's
 * extrapolation mix (ext_factor 1, beta_fast 32, beta_slow 1) is on for
 * type yarn. An unknown type is refused, naming it. */
static int rope_scaling(eng_model *m, kv_err *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
  int type = 1;
  if (eng_gguf_has(m->g, key)) {
    eng_str s;
    int rc = eng_gguf_get_str(m->g, key, &s, err);
    if (rc) return rc;
    if (s.n == 4 && !memcmp(s.p, "none", 4)) type = 0;
    else if (s.n == 6 && !memcmp(s.p, "linear", 6)) type = 1;
    else if (s.n == 4 && !memcmp(s.p, "yarn", 4)) type = 2;
    else
      return kv_err_set(err, KV_EUNSUPPORTED, "%s: %s '%.*s' is not supported (none, linear, yarn)", eng_gguf_name(m->g),
                        key, (int)(s.n < 32 ? s.n : 32), s.p);
  }
  float factor = 0;
  int rc = kf32(m, "rope.scaling.factor", &factor, 0.f, err);
  if (!rc && factor == 0.f) rc = kf32(m, "rope.scale_linear", &factor, 0.f, err);
  if (!rc) rc = kf32(m, "rope.scaling.attn_factor", &m->rope_attn_factor, 1.f, err);
  if (!rc) rc = kint(m, "rope.scaling.original_context_length", &m->rope_n_ctx_orig, 0, m->info.n_ctx_train, err);
  if (rc) return rc;
  if (m->rope_n_ctx_orig <= 0) m->rope_n_ctx_orig = m->info.n_ctx_train > 0 ? m->info.n_ctx_train : 2048; /* 0: unset, as llama.cpp */
  if (!(factor >= 0.f && factor < 1e6f) || !(m->rope_attn_factor > 0.f && m->rope_attn_factor < 1e3f))
    return kv_err_set(err, KV_EFORMAT, "%s: rope.scaling factor %g / attn_factor %g out of range", eng_gguf_name(m->g),
                      (double)factor, (double)m->rope_attn_factor);
  m->rope_freq_scale = factor == 0.f || type == 0 ? 1.f : 1.f / factor; /* type none never scales */
  m->rope_scaling = type == 0 ? 0 : m->rope_freq_scale != 1.f || type == 2 ? type : 0;
  return 0;
}

/* ggml_rope_yarn_corr_dims: the dims where YaRN's ramp starts and ends. */
static float corr_dim(int n_dims, int64_t n_ctx_orig, float n_rot, float base) {
  return (float)n_dims * logf((float)n_ctx_orig / (n_rot * 2 * 3.14159265358979323846f)) / (2 * logf(base));
}

/* The layer's RoPE: its base; scaling on every layer but the sliding-window
 * ones of a row that keeps them unscaled (gemma3: llama.cpp sets their
 * freq_scale to 1; its default copies the scaling to them). */
static void layer_rope(const eng_model *m, eng_layer *L) {
  eng_rope *r = &L->rope;
  r->base = L->rope_base;
  const int unscaled = L->swa && m->a->swa_rope_unscaled;
  r->freq_scale = unscaled ? 1.f : m->rope_freq_scale;
  r->ext_factor = !unscaled && m->rope_scaling == 2 ? 1.f : 0.f;
  r->mscale = m->rope_attn_factor;
  float start = floorf(corr_dim(m->rope_dim, m->rope_n_ctx_orig, 32.f, r->base));
  float end = ceilf(corr_dim(m->rope_dim, m->rope_n_ctx_orig, 1.f, r->base));
  r->corr[0] = start > 0 ? start : 0;
  r->corr[1] = end < (float)(m->rope_dim - 1) ? end : (float)(m->rope_dim - 1);
}

static int load(eng_model *m, kv_err *err) {
  eng_str s;
  int rc = eng_gguf_get_str(m->g, "general.architecture", &s, err);
  if (rc) return rc;
  snprintf(m->arch_name, sizeof m->arch_name, "%.*s", (int)(s.n < 31 ? s.n : 31), s.p);
  if (!(m->a = eng__arch_find(m->arch_name)))
    return kv_err_set(err, KV_EUNSUPPORTED, "%s: architecture '%s' is not supported (%s)", eng_gguf_name(m->g),
                      m->arch_name, eng__arch_names());
  m->arch = m->a->id;
  if (eng_gguf_has(m->g, "general.name") && !eng_gguf_get_str(m->g, "general.name", &s, NULL))
    snprintf(m->name, sizeof m->name, "%.*s", (int)(s.n < 127 ? s.n : 127), s.p);
  else snprintf(m->name, sizeof m->name, "%s", eng_gguf_name(m->g));
  eng_model_info *I = &m->info;
  I->arch = m->arch_name;
  I->name = m->name;
  if (m->a->encoder) return eng__bert_load(m, err);
  int64_t x;
#define GETI(field, key, req, def) \
  if ((rc = kint(m, key, &x, req, def, err))) return rc; \
  I->field = (int)x;
  GETI(n_embd, "embedding_length", 1, 0);
  GETI(n_layer, "block_count", 1, 0);
  GETI(n_head, "attention.head_count", 1, 0);
  GETI(n_head_kv, "attention.head_count_kv", 0, I->n_head);
  GETI(n_ff, "feed_forward_length", 1, 0);
  GETI(n_ctx_train, "context_length", 0, 2048);
  if (I->n_embd <= 0 || I->n_layer <= 0 || I->n_head <= 0 || I->n_head_kv <= 0 || I->n_ff <= 0 ||
      I->n_head % I->n_head_kv || I->n_layer > 4096)
    return kv_err_set(err, KV_EFORMAT, "%s: inconsistent hyper-parameters (embd %d, layers %d, heads %d/%d, ff %d)",
                      eng_gguf_name(m->g), I->n_embd, I->n_layer, I->n_head, I->n_head_kv, I->n_ff);
  GETI(head_dim, "attention.key_length", 0, I->n_embd / I->n_head);
  if ((rc = kint(m, "rope.dimension_count", &x, 0, I->head_dim, err))) return rc;
  m->rope_dim = (int)x;
  if (I->head_dim <= 0 || I->head_dim > 1024 || I->head_dim % 2 || m->rope_dim > I->head_dim || m->rope_dim % 2)
    return kv_err_set(err, KV_EFORMAT, "%s: bad head/rope dimension (%d/%d)", eng_gguf_name(m->g), I->head_dim,
                      m->rope_dim);
  if (m->a->swa_period > 0) {
    if ((rc = kint(m, "attention.sliding_window", &x, 0, 0, err))) return rc;
    m->n_swa = (int)x;
  }
#undef GETI
  float eps_def = 1e-5f;
  if ((rc = kf32(m, "attention.layer_norm_rms_epsilon", &m->eps, eps_def, err)) ||
      (rc = kf32(m, "rope.freq_base", &m->rope_base, 10000.f, err)))
    return rc;
  m->rope_base_swa = m->a->swa_period > 0 ? m->a->rope_base_swa : m->rope_base;
  m->rope_neox = m->a->rope_neox;
  if ((rc = rope_scaling(m, err))) return rc;
  m->attn_scale = 1.0f / sqrtf((float)I->head_dim);
  m->emb_scale = m->a->emb_scale_sqrt ? sqrtf((float)I->n_embd) : 1.0f;
  if ((rc = eng_vocab_load(&m->vocab, m->g, err))) return rc;
  I->n_vocab = m->vocab.n;
  if ((rc = want(m, &m->tok_embd, "token_embd.weight", (uint64_t)I->n_embd, (uint64_t)I->n_vocab, 1, 0, err)) ||
      (rc = want(m, &m->out_norm, "output_norm.weight", (uint64_t)I->n_embd, 1, 1, 1, err)) ||
      (rc = want(m, &m->output, "output.weight", (uint64_t)I->n_embd, (uint64_t)I->n_vocab, 0, 0, err)))
    return rc;
  if (!m->output) m->output = m->tok_embd; /* tied embeddings */
  if ((m->a->may & ENG_T_ROPE_FREQS) &&
      (rc = want(m, &m->rope_freqs, "rope_freqs.weight", (uint64_t)m->rope_dim / 2, 1, 0, 1, err)))
    return rc;
  if ((rc = load_layers(m, err))) return rc;
  repack_weights(m);
  for (size_t i = 0; i < eng_gguf_n_tensors(m->g); i++) {
    const eng_tensor *t = eng_gguf_tensor_at(m->g, i);
    I->n_params += (size_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
    I->file_size = (size_t)(t->offset + t->nbytes); /* upper bound refined below */
  }
  if (eng_gguf_has(m->g, "tokenizer.chat_template") &&
      !eng_gguf_get_str(m->g, "tokenizer.chat_template", &s, NULL)) {
    if (!(m->chat_template = malloc(s.n + 1))) return kv_err_set(err, KV_ENOMEM, "out of memory");
    memcpy(m->chat_template, s.p, s.n);
    m->chat_template[s.n] = 0;
  }
  if (m->a->ffn == ENG_FFN_GELU) { /* ggml evaluates GELU through a half-precision table */
    if (!(m->gelu_tab = malloc(65536 * sizeof *m->gelu_tab))) return kv_err_set(err, KV_ENOMEM, "out of memory");
    for (uint32_t h = 0; h < 65536; h++) {
      float x = eng_h2f((uint16_t)h);
      /* ggml_gelu_f32 as its -march=native build contracts it: the inner
       * 1 + a·x·x is one FMA (without it, 1 of the 65536 entries differs
       * from ggml's table, enough to change Gemma 3's perplexity) */
      float y = 0.5f * x * (1.0f + tanhf(0.79788456080286535587989211986876f * x * fmaf(0.044715f * x, x, 1.0f)));
      m->gelu_tab[h] = eng_f2h(y);
    }
  }
  m->chat_family = eng_chat_family(m->chat_template, m->a->chat_default);
  return 0;
}


int eng_model_open(eng_model **out, const char *path, kv_err *err) {
  *out = NULL;
  eng_model *m = calloc(1, sizeof *m);
  if (!m) return kv_err_set(err, KV_ENOMEM, "out of memory");
  int rc = eng_gguf_open(&m->g, path, err);
  if (!rc) rc = load(m, err);
  if (rc) {
    eng_model_free(m);
    return rc;
  }
  FILE *f = fopen(path, "rb");
  if (f) {
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    if (sz > 0) m->info.file_size = (size_t)sz;
    fclose(f);
  }
  *out = m;
  return 0;
}

void eng_model_free(eng_model *m) {
  if (!m) return;
  eng_vocab_free(&m->vocab);
  free(m->layers);
  free(m->packed);
  if (m->pack_map) munmap(m->pack_map, m->pack_len);
  free(m->chat_template);
  free(m->gelu_tab);
  eng__bert_free(m);
  eng_gguf_free(m->g);
  free(m);
}

const eng_model_info *eng_model_get_info(const eng_model *m) { return &m->info; }
