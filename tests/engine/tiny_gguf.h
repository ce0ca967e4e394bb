/*
 * tiny_gguf.h — writes small GGUF v3 files for the engine's unit tests: a
 * few metadata keys, a toy vocabulary and F32 tensors filled from a fixed
 * LCG, so a test can open a model of any architecture row (arch.c) without
 * downloading one. tg_model() lays out a whole model of a given row with the
 * tensor groups asked for; a test adds or leaves out keys and tensors to
 * probe the loader. The files are deterministic (same calls, same bytes),
 * so tests/reference/engine/tiny_ref.py can compute reference outputs from
 * the very file a test writes.
 */
#ifndef ENG_TINY_GGUF_H
#define ENG_TINY_GGUF_H
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "engine/engine.h"

enum { TG_MAX_T = 64 };

typedef struct tg_tensor {
  char name[64];
  uint64_t ne0, ne1;
  float scale, bias; /* values: bias + scale * uniform(-1, 1) from the LCG */
} tg_tensor;

typedef struct tg {
  kv_buf kv; /* the metadata section as written */
  uint64_t n_kv;
  tg_tensor t[TG_MAX_T];
  int nt;
  uint64_t lcg;
} tg;

static inline void tg_init(tg *g) {
  memset(g, 0, sizeof *g);
  g->lcg = 20261203;
}
static inline void tg__u32(kv_buf *b, uint32_t v) { kv_buf_append(b, &v, 4); }
static inline void tg__u64(kv_buf *b, uint64_t v) { kv_buf_append(b, &v, 8); }
static inline void tg__str(kv_buf *b, const char *s) {
  tg__u64(b, strlen(s));
  kv_buf_append(b, s, strlen(s));
}
static inline void tg__key(tg *g, const char *k, uint32_t type) {
  tg__str(&g->kv, k);
  tg__u32(&g->kv, type);
  g->n_kv++;
}
static inline void tg_str(tg *g, const char *k, const char *v) {
  tg__key(g, k, ENG_GGUF_STRING);
  tg__str(&g->kv, v);
}
static inline void tg_u32(tg *g, const char *k, uint32_t v) {
  tg__key(g, k, ENG_GGUF_U32);
  tg__u32(&g->kv, v);
}
static inline void tg_f32(tg *g, const char *k, float v) {
  tg__key(g, k, ENG_GGUF_F32);
  kv_buf_append(&g->kv, &v, 4);
}
static inline void tg_strarr(tg *g, const char *k, const char *const *v, size_t n) {
  tg__key(g, k, ENG_GGUF_ARRAY);
  tg__u32(&g->kv, ENG_GGUF_STRING);
  tg__u64(&g->kv, n);
  for (size_t i = 0; i < n; i++) tg__str(&g->kv, v[i]);
}
static inline void tg_i32arr(tg *g, const char *k, const int32_t *v, size_t n) {
  tg__key(g, k, ENG_GGUF_ARRAY);
  tg__u32(&g->kv, ENG_GGUF_I32);
  tg__u64(&g->kv, n);
  kv_buf_append(&g->kv, v, n * 4);
}
static inline void tg_tensor_add(tg *g, const char *name, uint64_t ne0, uint64_t ne1, float scale, float bias) {
  if (g->nt == TG_MAX_T) abort();
  tg_tensor *t = &g->t[g->nt++];
  snprintf(t->name, sizeof t->name, "%s", name);
  t->ne0 = ne0;
  t->ne1 = ne1;
  t->scale = scale;
  t->bias = bias;
}
static inline float tg__urand(tg *g) {
  g->lcg = g->lcg * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((g->lcg >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

/* Writes the file (alignment 32); 0 on success. */
static inline int tg_write(tg *g, const char *path) {
  kv_buf b = KV_BUF_INIT;
  tg__u32(&b, 0x46554747u);
  tg__u32(&b, 3);
  tg__u64(&b, (uint64_t)g->nt);
  tg__u64(&b, g->n_kv);
  kv_buf_append(&b, g->kv.data, g->kv.len);
  uint64_t off = 0;
  for (int i = 0; i < g->nt; i++) {
    const tg_tensor *t = &g->t[i];
    tg__str(&b, t->name);
    int nd = t->ne1 > 1 ? 2 : 1;
    tg__u32(&b, (uint32_t)nd);
    tg__u64(&b, t->ne0);
    if (nd == 2) tg__u64(&b, t->ne1);
    tg__u32(&b, 0); /* F32 */
    tg__u64(&b, off);
    off += (t->ne0 * t->ne1 * 4 + 31) / 32 * 32;
  }
  while (b.len % 32) kv_buf_putc(&b, 0);
  for (int i = 0; i < g->nt; i++) {
    const tg_tensor *t = &g->t[i];
    for (uint64_t j = 0; j < t->ne0 * t->ne1; j++) {
      float v = t->bias + t->scale * tg__urand(g);
      kv_buf_append(&b, &v, 4);
    }
    while (b.len % 32) kv_buf_putc(&b, 0);
  }
  int rc = -1;
  FILE *f = kv_buf_ok(&b) && kv_buf_ok(&g->kv) ? fopen(path, "wb") : NULL;
  if (f) {
    rc = fwrite(b.data, 1, b.len, f) == b.len ? 0 : -1;
    if (fclose(f)) rc = -1;
  }
  kv_buf_free(&b);
  kv_buf_free(&g->kv);
  return rc;
}

/* Shape of the tiny models: 2 layers, d = 32, 4 query heads / 2 KV heads of
 * head_dim 16 (q width 64 != d, as in Qwen 3), FFN 48, 40 tokens. */
enum { TG_D = 32, TG_NH = 4, TG_NKV = 2, TG_HD = 16, TG_FF = 48, TG_NL = 2, TG_NV = 40 };
/* Tensor groups for tg_model (mirror engine/internal.h's ENG_T_*, which the
 * tests cannot include). */
enum { TG_BIAS = 1, TG_QK_NORM = 2, TG_POST_NORMS = 4, TG_ROPE_FREQS = 8, TG_NO_OUTPUT = 16,
       TG_ROPE_LINEAR = 32, /* rope.scaling linear, factor 4 */
       TG_ROPE_YARN = 64 };  /* rope.scaling yarn, factor 4, original_context_length 128, attn_factor 1.1 */

/* A vocabulary of TG_NV tokens: <s>, </s>, then `extra` (special tokens,
 * e.g. FIM markers, typed control), then single letters to fill it up. */
static inline void tg_vocab(tg *g, const char *const *extra, size_t n_extra) {
  const char *tok[TG_NV];
  char letters[TG_NV][4];
  int32_t type[TG_NV];
  size_t n = 0;
  tok[n] = "<s>", type[n++] = 3;
  tok[n] = "</s>", type[n++] = 3;
  for (size_t i = 0; i < n_extra && n < TG_NV; i++) tok[n] = extra[i], type[n++] = 3;
  for (int c = 0; n < TG_NV; c++) {
    snprintf(letters[n], sizeof letters[n], "%c", 'a' + c % 26);
    if (c >= 26) snprintf(letters[n], sizeof letters[n], "%c%c", 'a' + c % 26, 'a' + c / 26 - 1);
    tok[n] = letters[n], type[n++] = 1;
  }
  tg_str(g, "tokenizer.ggml.model", "gpt2");
  tg_strarr(g, "tokenizer.ggml.tokens", tok, n);
  tg_i32arr(g, "tokenizer.ggml.token_type", type, n);
  tg_strarr(g, "tokenizer.ggml.merges", NULL, 0);
  tg_u32(g, "tokenizer.ggml.bos_token_id", 0);
  tg_u32(g, "tokenizer.ggml.eos_token_id", 1);
}

/* Hyper-parameters of architecture `arch` (the tiny shape). */
static inline void tg_hparams(tg *g, const char *arch) {
  char k[96];
  tg_str(g, "general.architecture", arch);
  tg_str(g, "general.name", "tiny");
#define TGK(sfx) (snprintf(k, sizeof k, "%s.%s", arch, sfx), k)
  tg_u32(g, TGK("block_count"), TG_NL);
  tg_u32(g, TGK("context_length"), 256);
  tg_u32(g, TGK("embedding_length"), TG_D);
  tg_u32(g, TGK("feed_forward_length"), TG_FF);
  tg_u32(g, TGK("attention.head_count"), TG_NH);
  tg_u32(g, TGK("attention.head_count_kv"), TG_NKV);
  tg_u32(g, TGK("attention.key_length"), TG_HD);
  tg_f32(g, TGK("rope.freq_base"), 10000.0f);
  tg_f32(g, TGK("attention.layer_norm_rms_epsilon"), 1e-6f);
#undef TGK
}

/* The tensors of a model with the groups in `groups` (TG_*); `skip` names one
 * tensor to leave out (NULL: none). */
static inline void tg_tensors(tg *g, unsigned groups, const char *skip) {
  const float s = 1.0f / sqrtf((float)TG_D);
  char n[64];
#define TGT(nm, a, b, sc, bi) \
  do { if (!skip || strcmp(skip, nm)) tg_tensor_add(g, nm, a, b, sc, bi); } while (0)
  TGT("token_embd.weight", TG_D, TG_NV, 1.0f, 0);
  TGT("output_norm.weight", TG_D, 1, 0.1f, 1.0f);
  if (!(groups & TG_NO_OUTPUT)) TGT("output.weight", TG_D, TG_NV, 0.5f, 0);
  if (groups & TG_ROPE_FREQS) TGT("rope_freqs.weight", TG_HD / 2, 1, 1.5f, 2.5f); /* divisors in [1, 4] */
  for (int l = 0; l < TG_NL; l++) {
#define TGL(sfx, a, b, sc, bi) do { snprintf(n, sizeof n, "blk.%d.%s", l, sfx); TGT(n, a, b, sc, bi); } while (0)
    TGL("attn_norm.weight", TG_D, 1, 0.1f, 1.0f);
    TGL("attn_q.weight", TG_D, TG_NH * TG_HD, 2 * s, 0);
    TGL("attn_k.weight", TG_D, TG_NKV * TG_HD, 2 * s, 0);
    TGL("attn_v.weight", TG_D, TG_NKV * TG_HD, 2 * s, 0);
    if (groups & TG_BIAS) {
      TGL("attn_q.bias", TG_NH * TG_HD, 1, 0.2f, 0);
      TGL("attn_k.bias", TG_NKV * TG_HD, 1, 0.2f, 0);
      TGL("attn_v.bias", TG_NKV * TG_HD, 1, 0.2f, 0);
    }
    if (groups & TG_QK_NORM) {
      TGL("attn_q_norm.weight", TG_HD, 1, 0.1f, 1.0f);
      TGL("attn_k_norm.weight", TG_HD, 1, 0.1f, 1.0f);
    }
    TGL("attn_output.weight", TG_NH * TG_HD, TG_D, s, 0);
    if (groups & TG_POST_NORMS) TGL("post_attention_norm.weight", TG_D, 1, 0.1f, 1.0f);
    TGL("ffn_norm.weight", TG_D, 1, 0.1f, 1.0f);
    TGL("ffn_gate.weight", TG_D, TG_FF, 2 * s, 0);
    TGL("ffn_up.weight", TG_D, TG_FF, 2 * s, 0);
    TGL("ffn_down.weight", TG_FF, TG_D, 1.0f / sqrtf((float)TG_FF), 0);
    if (groups & TG_POST_NORMS) TGL("post_ffw_norm.weight", TG_D, 1, 0.1f, 1.0f);
#undef TGL
  }
#undef TGT
}

/* A whole tiny model of `arch` with `groups` and an optional chat template,
 * written at `path`. 0 on success. */
static inline int tg_model_at(const char *path, const char *arch, unsigned groups, const char *chat_template) {
  tg g;
  tg_init(&g);
  tg_hparams(&g, arch);
  char k[96];
  if (groups & (TG_ROPE_LINEAR | TG_ROPE_YARN)) {
    snprintf(k, sizeof k, "%s.rope.scaling.type", arch);
    tg_str(&g, k, groups & TG_ROPE_YARN ? "yarn" : "linear");
    snprintf(k, sizeof k, "%s.rope.scaling.factor", arch);
    tg_f32(&g, k, 4.0f);
  }
  if (groups & TG_ROPE_YARN) {
    snprintf(k, sizeof k, "%s.rope.scaling.original_context_length", arch);
    tg_u32(&g, k, 128);
    snprintf(k, sizeof k, "%s.rope.scaling.attn_factor", arch);
    tg_f32(&g, k, 1.1f);
  }
  tg_vocab(&g, NULL, 0);
  if (chat_template) tg_str(&g, "tokenizer.chat_template", chat_template);
  tg_tensors(&g, groups, NULL);
  return tg_write(&g, path);
}
/* The same at a fresh temporary path, written to `path` (n >= 32). */
static inline int tg_model(char *path, size_t n, const char *arch, unsigned groups, const char *chat_template) {
  snprintf(path, n, "/tmp/kvasir-tiny-XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  close(fd);
  return tg_model_at(path, arch, groups, chat_template);
}

/* The models held to the numpy reference (tests/reference/engine/tiny_ref.py
 * reads the files tiny_write writes; golden_tiny_arch.json has its logits
 * for every position of TG_REF_TOKENS, evaluated as one batch). */
static const struct tg_case {
  const char *name, *arch;
  unsigned groups;
} TG_CASES[] = {
    {"llama", "llama", 0},
    {"llama-rope-freqs", "llama", TG_ROPE_FREQS},
    {"qwen2", "qwen2", TG_BIAS},
    {"qwen3", "qwen3", TG_QK_NORM},
    {"qwen3-tied", "qwen3", TG_QK_NORM | TG_NO_OUTPUT},
    {"llama-rope-linear", "llama", TG_ROPE_LINEAR},
    {"qwen2-yarn", "qwen2", TG_BIAS | TG_ROPE_YARN},
};
static const int32_t TG_REF_TOKENS[] = {0, 5, 7, 9, 11, 13, 2, 30, 17, 3, 39, 21};
#endif
