/*
 * internal.h — structures shared by the engine's own files (never included
 * from outside engine/; engine.h is the public header). The model owns the
 * mapped GGUF, the vocabulary and pointers to the weights; all immutable
 * after eng_model_open.
 */
#ifndef KVASIR_ENGINE_INTERNAL_H
#define KVASIR_ENGINE_INTERNAL_H
#include "engine/engine.h"

enum { VOCAB_BPE = 1, VOCAB_SPM = 2 };
enum { PRE_GPT2 = 0, PRE_SMOLLM, PRE_QWEN2, PRE_LLAMA3 };
enum { TT_NORMAL = 1, TT_UNKNOWN = 2, TT_CONTROL = 3, TT_USER = 4, TT_UNUSED = 5, TT_BYTE = 6 };
enum { ARCH_LLAMA = 1, ARCH_QWEN2, ARCH_GEMMA3 };

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
  int add_bos, add_space_prefix;
  void *re[2];          /* pcre2_code* pre-tokenizer stages */
  int n_re;
} eng_vocab;

typedef struct eng_layer {
  const eng_tensor *attn_norm, *wq, *wk, *wv, *wo, *bq, *bk, *bv, *q_norm, *k_norm, *post_attn_norm;
  const eng_tensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down, *post_ffn_norm;
  int swa;            /* 1: local (sliding window) layer */
  float rope_base;
} eng_layer;

struct eng_model {
  eng_gguf *g;
  int arch;
  eng_model_info info;
  char arch_name[32], name[128];
  float eps, rope_base, rope_base_swa, attn_scale, emb_scale;
  int n_swa, rope_neox, rope_dim;
  const eng_tensor *tok_embd, *out_norm, *output;
  eng_layer *layers;
  eng_vocab vocab;
  char *chat_template; /* NUL-terminated copy, or NULL */
  int chat_kind;       /* 0 chatml, 1 gemma */
};

int eng_vocab_load(eng_vocab *v, const eng_gguf *g, kv_err *err);
void eng_vocab_free(eng_vocab *v);
int32_t eng_vocab_find(const eng_vocab *v, const char *s, size_t n);

#endif
