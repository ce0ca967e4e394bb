/*
 * internal.h — structures shared by the engine's own files (never included
 * from outside engine/; engine.h is the public header). The model owns the
 * mapped GGUF, the vocabulary and pointers to the weights; all immutable
 * after eng_model_open.
 */
#ifndef KVASIR_ENGINE_INTERNAL_H
#define KVASIR_ENGINE_INTERNAL_H
#include <string.h>

#include "engine/engine.h"

/* IEEE half <-> float, round to nearest even (the same results as F16C and
 * as ggml's software path), inline because the forward pass rounds every
 * K/V element and every GELU input through half. */
static inline float eng_h2f(uint16_t h) {
  const uint32_t w = (uint32_t)h << 16, sign = w & 0x80000000u, two_w = w + w;
  uint32_t r, a = (two_w >> 4) + (0xE0u << 23), b = (two_w >> 17) | (126u << 23);
  float fa, fb;
  memcpy(&fa, &a, 4);
  memcpy(&fb, &b, 4);
  fa *= 0x1.0p-112f;
  fb -= 0.5f;
  float f = two_w < (1u << 27) ? fb : fa;
  memcpy(&r, &f, 4);
  r |= sign;
  memcpy(&f, &r, 4);
  return f;
}
static inline uint16_t eng_f2h(float f) {
  float a = f < 0 ? -f : f, base = (a * 0x1.0p+112f) * 0x1.0p-110f, t;
  uint32_t w, bias, bits;
  memcpy(&w, &f, 4);
  const uint32_t shl1_w = w + w, sign = w & 0x80000000u;
  bias = shl1_w & 0xFF000000u;
  if (bias < 0x71000000u) bias = 0x71000000u;
  bits = (bias >> 1) + 0x07800000u;
  memcpy(&t, &bits, 4);
  base = t + base;
  memcpy(&bits, &base, 4);
  const uint32_t nonsign = ((bits >> 13) & 0x00007C00u) + (bits & 0x00000FFFu);
  return (uint16_t)((sign >> 16) | (shl1_w > 0xFF000000u ? 0x7E00u : nonsign));
}
static inline float eng_round_h(float x) { return eng_h2f(eng_f2h(x)); }

/* Tell the dense cache (a no-op for other caches) how many tokens the batch
 * being evaluated has: llama.cpp's attention sums in a different order for
 * one token than for several, and kv_dense follows it. */
void eng__kv_dense_batch(const eng_kv_ops *ops, void *kv, int n_tokens);

/* kv_dense_avx2.c, kv_dense_avx512.c (kv_dense_body.h): the dense cache's
 * K·q (sc[j] = K row p0+j · q * scale) and V·p loops in SIMD, the bits of
 * kv_dense.c's portable loops; head_dim % 16 == 0. */
typedef struct eng_kd_simd {
  const char *name;
  void (*kq)(const float *q, const float *K, size_t row, int p0, int n, int hd, int batch, float scale, float *sc);
  void (*kqv)(const float *V, size_t row, const float *p, int p0, int n, int n_total, int batch, int hd, float *out);
} eng_kd_simd;
extern const eng_kd_simd eng__kd_avx2, eng__kd_avx512;
/* The loops the dense cache's attention runs for head_dim now: "avx2",
 * "avx512" or "portable" (for tests). */
const char *eng__kv_dense_loops(int head_dim);

enum { VOCAB_BPE = 1, VOCAB_SPM = 2, VOCAB_WPM = 3 /* BERT WordPiece (wordpiece.c) */ };
enum { PRE_GPT2 = 0, PRE_SMOLLM, PRE_QWEN2, PRE_LLAMA3 };
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };
enum { ARCH_LLAMA = 1, ARCH_QWEN2, ARCH_QWEN3, ARCH_GEMMA3, ARCH_BERT };

/* Tensor groups beyond the common set (arch.c): per layer, or model-wide. */
enum {
  ENG_T_QKV_BIAS = 1 << 0,   /* blk.N.attn_{q,k,v}.bias */
  ENG_T_QK_NORM = 1 << 1,    /* blk.N.attn_{q,k}_norm.weight, one head_dim vector each */
  ENG_T_POST_NORMS = 1 << 2, /* blk.N.post_attention_norm / post_ffw_norm.weight */
  ENG_T_ROPE_FREQS = 1 << 3, /* rope_freqs.weight: Llama 3's per-dimension RoPE divisors */
};
enum { ENG_FFN_SILU = 0, ENG_FFN_GELU = 1 };

/* One architecture (arch.c has the table and what each field means for it). */
typedef struct eng_arch {
  int id;                /* ARCH_* */
  const char *name;      /* general.architecture */
  unsigned need;         /* ENG_T_* groups the file must have */
  unsigned may;          /* ENG_T_* model-wide groups read when present */
  int rope_neox;         /* 1: rotate split halves (NeoX); 0: adjacent pairs */
  int swa_period;        /* every swa_period-th layer global, the rest sliding-window; 0: none */
  float rope_base_swa;   /* RoPE base of the sliding-window layers */
  int swa_rope_unscaled; /* 1: rope.scaling does not apply to the sliding-window layers */
  int emb_scale_sqrt;    /* 1: embeddings scaled by sqrt(n_embd) */
  int scale_q;           /* 1: Q scaled by 1/sqrt(head_dim) before attention (then scale 1) */
  int ffn;               /* ENG_FFN_* gate activation */
  int chat_default;      /* ENG_CHAT_* for a file without tokenizer.chat_template */
  int encoder;           /* 1: a bidirectional encoder (bert.c loads and runs it; no eng_ctx) */
} eng_arch;
const eng_arch *eng__arch_find(const char *name); /* NULL: not in the table */
const char *eng__arch_names(void);                /* "llama, qwen2, …" for messages */

typedef struct eng_vocab {
  int kind, pre;
  int n;
  eng_str *text;        /* token texts (into the mapping) */
  float *score;         /* SPM scores (NULL for BPE) */
  int32_t *ttype;       /* TT_* */
  uint32_t *hmap;       /* open addressing text -> id+1 */
  size_t hcap;
  uint64_t *mkey;       /* BPE merges: (left id << 32 | right id) + 1, 0 = empty */
  int32_t *mrank;
  size_t mcap;
  int32_t *special;     /* control/user/unknown ids, longest text first */
  int n_special;
  int32_t byte_tok[256]; /* SPM: id of "<0xXX>", -1 if absent */
  int32_t bos, eos, eot, unk;
  int32_t cls, sep;     /* WordPiece: [CLS], [SEP] (-1 elsewhere) */
  int32_t fim[3];       /* prefix, suffix, middle ids, or -1 each (all or none) */
  int add_bos, add_space_prefix;
  void *re[2];          /* pcre2_code* pre-tokenizer stages */
  int n_re;
} eng_vocab;

/* RoPE of a layer as ggml_rope_ext computes it: angle theta = pos *
 * base^(-2i/d) (divided by rope_freqs[i] where given), interpolated by
 * freq_scale (linear and YaRN scaling: 1/rope.scaling.factor), YaRN's ramp
 * between interpolated and extrapolated angles over dims corr[0..1] when
 * ext_factor != 0, cos/sin scaled by mscale. Without scaling: freq_scale 1,
 * ext_factor 0, mscale 1 (plain RoPE). */
typedef struct eng_rope {
  float base, freq_scale, ext_factor, mscale;
  float corr[2];
} eng_rope;

typedef struct eng_layer {
  const eng_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm, *post_attn_norm;
  const eng_tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down, *post_ffn_norm;
  int swa;            /* 1: local (sliding window) layer */
  float rope_base;
  eng_rope rope;      /* the layer's RoPE (base: rope_base) */
} eng_layer;

struct eng_model {
  eng_gguf *g;
  int arch;
  eng_model_info info;
  char arch_name[32], name[128];
  float eps, rope_base, rope_base_swa, attn_scale, emb_scale;
  int n_swa, rope_neox, rope_dim;
  /* rope.scaling.*: type (0 none, 1 linear, 2 yarn), 1/factor, attn_factor,
   * the training context YaRN extends (original_context_length) */
  int rope_scaling;
  float rope_freq_scale, rope_attn_factor;
  int64_t rope_n_ctx_orig;
  const eng_tensor *tok_embd, *out_norm, *output;
  eng_layer *layers;
  eng_vocab vocab;
  const eng_arch *a;    /* the architecture's row */
  const eng_tensor *rope_freqs; /* Llama 3 RoPE scaling, or NULL */
  char *chat_template; /* NUL-terminated copy, or NULL */
  int chat_family;     /* ENG_CHAT_*, from the template's markers (eng_chat_family) */
  uint16_t *gelu_tab;  /* gemma3: GELU(tanh) of every half value, as ggml's table */
  struct eng_bert *bert; /* encoder rows: weights and hyper-parameters (bert.c) */
  /* Layer matrices repacked at load (model.c repack_weights): copies of
   * their eng_tensor with the repacked type, data in one anonymous mapping;
   * the layers point at these instead of the file's tensors. */
  eng_tensor *packed;
  size_t n_packed;
  void *pack_map;
  size_t pack_len;
};

int eng_vocab_load(eng_vocab *v, const eng_gguf *g, kv_err *err);
void eng_vocab_free(eng_vocab *v);
int32_t eng_vocab_find(const eng_vocab *v, const char *s, size_t n);
/* WordPiece (wordpiece.c), eng_tokenize's contract. */
int eng__wpm_tokenize(const eng_vocab *v, const char *text, size_t len, int add_special, int32_t *out,
                      size_t cap, size_t *n_out, kv_err *err);
/* Encoder rows (bert.c): read the weights after the vocabulary; free them. */
int eng__bert_load(eng_model *m, kv_err *err);
void eng__bert_free(eng_model *m);

#endif
