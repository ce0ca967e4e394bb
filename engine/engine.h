/*
 * engine — GGUF models on the CPU: a validating GGUF reader, tokenizers built
 * from GGUF metadata (GPT-2 byte-level BPE, SentencePiece-style with byte
 * fallback, BERT WordPiece), the llama (with Llama 3's rope_freqs) / qwen2 /
 * qwen3 / gemma3 architectures and the bert encoder (one row each in
 * engine/arch.c), a sampler, chat
 * templates, and the KV cache behind a narrow interface (eng_kv_ops) that the
 * compressed KV memory (kvm_*) replaces later. Prefix: eng_.
 *
 * Threading: an eng_model is immutable after eng_model_open and may be shared
 * by any number of contexts on any threads; an eng_ctx (and an eng_sampler)
 * is used by one thread at a time.
 * Errors: every fallible call returns 0 or a negative KV_E* code and fills
 * kv_err with a message naming the file, key/tensor and byte offset.
 */
#ifndef KVASIR_ENGINE_H
#define KVASIR_ENGINE_H
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *eng_version(void);

/* ---------------------------------------------------------------- GGUF -- */
/* A byte string inside the mapped file (not NUL-terminated). */
typedef struct eng_str {
  const char *p;
  size_t n;
} eng_str;

enum { /* GGUF metadata value types */
  ENG_GGUF_U8 = 0, ENG_GGUF_I8, ENG_GGUF_U16, ENG_GGUF_I16, ENG_GGUF_U32, ENG_GGUF_I32, ENG_GGUF_F32,
  ENG_GGUF_BOOL, ENG_GGUF_STRING, ENG_GGUF_ARRAY, ENG_GGUF_U64, ENG_GGUF_I64, ENG_GGUF_F64
};

typedef struct eng_tensor {
  eng_str name;
  int type;          /* ggml/krn type id */
  int n_dims;
  uint64_t ne[4];    /* ne[0] = contiguous (row) length; unused dims are 1 */
  uint64_t offset;   /* relative to the data section */
  size_t nbytes;
  const void *data;  /* inside the mapping */
} eng_tensor;

typedef struct eng_gguf eng_gguf;
/* Open and validate (see gguf.c for the invariants). */
int eng_gguf_open(eng_gguf **out, const char *path, kv_err *err);
/* Same over a caller-owned buffer that must outlive the handle (fuzzing, tests). */
int eng_gguf_open_mem(eng_gguf **out, const void *data, size_t len, const char *name, kv_err *err);
void eng_gguf_free(eng_gguf *g);
/* The caller will not read bytes [p, p + n) of a file-backed handle again
 * (they were copied elsewhere): the whole pages inside are handed back to the
 * OS, so they stop counting as resident (the file stays in the page cache,
 * and a read would fault them in again, unchanged). No-op for a handle over
 * a caller's buffer (eng_gguf_open_mem). */
void eng_gguf_release(const eng_gguf *g, const void *p, size_t n);
const char *eng_gguf_name(const eng_gguf *g);
size_t eng_gguf_n_tensors(const eng_gguf *g);
const eng_tensor *eng_gguf_tensor_at(const eng_gguf *g, size_t i);
const eng_tensor *eng_gguf_tensor(const eng_gguf *g, const char *name); /* NULL if absent */
int eng_gguf_has(const eng_gguf *g, const char *key);
int eng_gguf_get_int(const eng_gguf *g, const char *key, int64_t *out, kv_err *err);
int eng_gguf_get_f32(const eng_gguf *g, const char *key, float *out, kv_err *err);
int eng_gguf_get_str(const eng_gguf *g, const char *key, eng_str *out, kv_err *err);
/* Arrays: *data points at the first element; for string arrays walk it with
 * eng_gguf_arr_str_next (layout validated at open). */
int eng_gguf_get_arr(const eng_gguf *g, const char *key, int *elem_type, uint64_t *n, const void **data,
                     kv_err *err);
const char *eng_gguf_arr_str_next(const void **cursor, size_t *len);
/* Bytes per block and elements per block of a GGUF tensor type; 0 = unknown. */
size_t eng_gguf_type_size(int type, size_t *block_elems);

/* --------------------------------------------------------------- model -- */
typedef struct eng_model eng_model;

typedef struct eng_model_info {
  const char *arch;      /* "llama", "qwen2", "qwen3", "gemma3" */
  const char *name;      /* general.name or the file name */
  int n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train;
  size_t file_size;      /* bytes of the GGUF file */
  size_t n_params;       /* elements over all tensors */
  size_t repacked_bytes; /* layer matrices repacked at load for the CPU kernels (same
                            results; KVASIR_REPACK=0: none); their file pages are released */
} eng_model_info;

/* Open a GGUF model (mmap'd; weights are used in place, except Q4_K layer
 * matrices, repacked once for the CPU kernels: model.c repack_weights). */
int eng_model_open(eng_model **out, const char *path, kv_err *err);
void eng_model_free(eng_model *m);
const eng_model_info *eng_model_get_info(const eng_model *m);
/* The default model path: $XDG_CACHE_HOME/kvasir/models/SmolLM2-135M-Instruct.Q4_1.gguf */
int eng_default_model_path(char *buf, size_t n);
/* 1 when a GGUF general.architecture has a row in the architecture table
 * (engine/arch.c); eng_arch_list() names the rows ("llama, qwen2, ..."). */
int eng_arch_supported(const char *arch);
const char *eng_arch_list(void);

/* ---------------------------------------------------- models registry -- */
/* The models the user registered (`kvasir models add`), by name, so that a
 * tier of config.yaml can say `model: NAME` (engine/registry.c documents
 * the file). Adding opens the GGUF, checks its architecture against the
 * table and stores the file's sha256 and size. */
typedef struct eng_reg_entry {
  char name[64];
  char sha256[65];  /* hex */
  uint64_t size;    /* bytes of the file when it was registered */
  char arch[32];
  char path[4096];  /* absolute, symlinks resolved */
} eng_reg_entry;
typedef struct eng_registry {
  eng_reg_entry *v;
  size_t n, cap;
} eng_registry;
/* The registry file: $XDG_DATA_HOME/kvasir/models.tsv. */
int eng_registry_path(char *buf, size_t n);
/* Reads file (NULL = eng_registry_path); an absent file is an empty registry.
 * Errors name file:line. */
int eng_registry_load(eng_registry *r, const char *file, kv_err *err);
void eng_registry_free(eng_registry *r);
const eng_reg_entry *eng_registry_find(const eng_registry *r, const char *name);
const eng_reg_entry *eng_registry_find_path(const eng_registry *r, const char *abs_path);
/* Registers the GGUF at path under name (NULL: the file name without
 * ".gguf"): KV_EUNSUPPORTED naming the architecture and the supported ones,
 * KV_EINVAL when the name is taken or not a valid name. The file is rewritten
 * under a lock (flock on file.lock) and renamed into place. */
int eng_registry_add(const char *file, const char *path, const char *name, eng_reg_entry *out, kv_err *err);
/* KV_ENOTFOUND when no model has that name. */
int eng_registry_remove(const char *file, const char *name, kv_err *err);

/* ----------------------------------------------------------- tokenizer -- */
/* Tokenize text (len bytes). add_special: add BOS when the model asks for it
 * (tokenizer.ggml.add_bos_token). parse_special: text such as "<|im_start|>"
 * becomes the control token instead of being spelled out. Writes up to cap
 * ids to out and the full count to *n_out (KV_ELIMIT if cap was too small). */
int eng_tokenize(const eng_model *m, const char *text, size_t len, int add_special, int parse_special,
                 int32_t *out, size_t cap, size_t *n_out, kv_err *err);
/* The bytes of one token (byte tokens decode to their byte; SentencePiece's
 * "▁" to a space). Returns the byte count (may exceed n; then nothing is
 * written past n), or a negative code for an out-of-range id. */
int eng_token_piece(const eng_model *m, int32_t id, char *buf, size_t n);
/* Decode ids into a malloc'd NUL-terminated string. */
int eng_detokenize(const eng_model *m, const int32_t *ids, size_t n, char **out, size_t *len, kv_err *err);
int32_t eng_token_bos(const eng_model *m);
int32_t eng_token_eos(const eng_model *m);
/* End of generation: eos, or the chat end-of-turn (<|im_end|>, <end_of_turn>). */
int eng_token_is_eog(const eng_model *m, int32_t id);
int eng_n_vocab(const eng_model *m);
/* Fill-in-the-middle tokens: the ids of the prefix, suffix and middle
 * markers (the prompt is PRE prefix SUF suffix MID, the model writes the
 * middle). From tokenizer.ggml.fim_{pre,suf,mid}_token_id when the file has
 * all three, else from a family of known spellings present in the
 * vocabulary (Qwen <|fim_prefix|>, StarCoder <fim_prefix>, DeepSeek
 * <｜fim▁begin｜>/<｜fim▁hole｜>/<｜fim▁end｜>, CodeLlama <PRE>, …).
 * 0, or KV_ENOTFOUND (ids set to -1) when the model has no FIM tokens. */
int eng_token_fim(const eng_model *m, int32_t *pre, int32_t *suf, int32_t *mid);

/* -------------------------------------------------------------- chat ---- */
typedef struct eng_chat_msg {
  const char *role; /* "system", "user", "assistant" */
  const char *content;
} eng_chat_msg;
/* Chat formats kvasir writes by hand (kvasir runs no Jinja). */
enum { ENG_CHAT_CHATML = 0, ENG_CHAT_GEMMA = 1, ENG_CHAT_LLAMA3 = 2 };
/* The family of a tokenizer.chat_template by its markers: <start_of_turn>
 * Gemma, <|start_header_id|> Llama 3, <|im_start|> ChatML (tried in that
 * order); `fallback` when chat_template is NULL; ChatML for a template of
 * no known family. */
int eng_chat_family(const char *chat_template, int fallback);
/* "chatml", "gemma" or "llama3". */
const char *eng_chat_family_name(int family);
/* Render messages with the model's chat format: the family of the GGUF's
 * tokenizer.chat_template, or the architecture's default when it has none.
 * add_assistant: end with the opening of the assistant turn. *out is malloc'd. */
int eng_chat_apply(const eng_model *m, const eng_chat_msg *msgs, size_t n, int add_assistant, char **out,
                   kv_err *err);
/* eng_chat_family_name of the model's format. */
const char *eng_chat_format(const eng_model *m);

/* ---------------------------------------------------- KV cache interface -- */
/* One cache instance holds K and V for every layer of one context. Positions
 * are appended in order; attention reads positions [max(0,pos-window+1), pos]
 * (window 0 = all) of one layer for one query head. The engine calls attend
 * from several threads at once (distinct heads/tokens), never concurrently
 * with append/truncate/copy_prefix. */
typedef struct eng_kv_ops {
  const char *name;
  /* k, v: n_head_kv * head_dim floats for token `pos` of `layer`. */
  int (*append)(void *kv, int layer, int pos, const float *k, const float *v);
  /* out[head_dim] = softmax(scale * q·K[kvh]ᵀ) · V[kvh] over the window ending at pos. */
  void (*attend)(void *kv, int layer, int kv_head, const float *q, int pos, int window, float scale, float *out);
  /* Forget every position >= n. */
  void (*truncate)(void *kv, int n);
  /* Make dst hold src's first n positions (dst was created with the same shape). */
  int (*copy_prefix)(void *dst, const void *src, int n);
  void (*free)(void *kv);
  /* Optional (NULL: the forward pass calls attend per token and head). A
   * batch's attention in one call: g query heads of kv_head (all of its
   * group, or a run of consecutive ones: a decode step splits a group
   * across threads) for the n positions pos0..pos0+n-1 (head j of position
   * pos0+t at q + t*stride + j*head_dim, its output at the same offset of
   * out), each what attend gives it. Thread-safe as attend. */
  void (*attend_rows)(void *kv, int layer, int kv_head, int g, const float *q, size_t stride, int pos0, int n,
                      int window, float scale, float *out);
} eng_kv_ops;

typedef struct eng_kv_shape {
  int n_layer, n_head_kv, head_dim, n_ctx;
} eng_kv_shape;
/* A cache factory: the default is eng_kv_dense (f16 K/V, like llama.cpp's cache). */
typedef int (*eng_kv_create_fn)(void **out, const eng_kv_shape *shape, const eng_kv_ops **ops, kv_err *err);
int eng_kv_dense_create(void **out, const eng_kv_shape *shape, const eng_kv_ops **ops, kv_err *err);

/* ------------------------------------------------------ compute backend -- */
/* The compute the forward pass needs, as a table so a CUDA backend can slot in.
 * eng_backend_cpu() wraps kernels/ (krn_*). `state` is the backend's own. */
/* One matrix of a grouped matmul: y[m][n_out] = x · Wᵀ. */
typedef struct eng_mm_part {
  int type;
  const void *W;
  size_t n_out;
  float *y;
} eng_mm_part;

typedef struct eng_backend {
  const char *name;
  void *state;
  /* y[m][n_out] = x[m][k] · Wᵀ, W a GGUF tensor of `type` (row-major, ne0 = k). */
  void (*matmul)(void *state, int type, const void *W, size_t n_out, size_t k, const float *x, size_t m, float *y);
  /* fn(ctx, i) for i in [0, n) in parallel. */
  void (*parallel)(void *state, void (*fn)(void *ctx, int i), void *ctx, int n);
  void (*dequant_row)(void *state, int type, const void *src, float *dst, size_t n);
  int n_threads;
  /* Optional (NULL: one matmul per part): n matrices over the same x [m][k]
   * (Q/K/V, gate/up) as one job; each y has the bits matmul gives it. */
  void (*matmul_n)(void *state, const eng_mm_part *parts, int n, size_t k, const float *x, size_t m);
} eng_backend;
/* CPU backend with n_threads workers (<= 0: one per CPU). Free with eng_backend_free. */
int eng_backend_cpu(eng_backend **out, int n_threads, kv_err *err);
void eng_backend_free(eng_backend *b);

/* ------------------------------------------------------------- encoder -- */
/* Sentence embeddings from an encoder model (the `bert` row, engine/bert.c:
 * sentence-transformers' mean pooling, L2-normalised). An encoder has no
 * eng_ctx (eng_ctx_create refuses it). eng_embed_dim: the embedding's
 * length, 0 for a model that is not an encoder. */
int eng_embed_dim(const eng_model *m);
/* out[eng_embed_dim(m)] = the embedding of text (len bytes, any bytes),
 * WordPiece-tokenized with [CLS]/[SEP] and cut to max_tokens (0: 256, at
 * most the model's context_length) as the Hugging Face tokenizer truncates.
 * *n_tokens (may be NULL): the tokens encoded. Thread-safe on a shared model;
 * the backend is used as by eng_ctx_eval. */
int eng_embed(const eng_model *m, eng_backend *b, const char *text, size_t len, size_t max_tokens, float *out,
              size_t *n_tokens, kv_err *err);

/* ------------------------------------------------------------- context -- */
typedef struct eng_ctx eng_ctx;
typedef struct eng_ctx_params {
  int n_ctx;                 /* 0: min(model's training context, 4096) */
  int n_threads;             /* 0: all CPUs (ignored when backend is given) */
  eng_backend *backend;      /* NULL: a CPU backend owned by the context */
  eng_kv_create_fn kv_create; /* NULL: eng_kv_dense_create */
} eng_ctx_params;
void eng_ctx_params_default(eng_ctx_params *p);
int eng_ctx_create(eng_ctx **out, eng_model *m, const eng_ctx_params *p, kv_err *err);
void eng_ctx_free(eng_ctx *c);
/* Tokens held in the cache so far. */
int eng_ctx_n_past(const eng_ctx *c);
int eng_ctx_n_ctx(const eng_ctx *c);
/* The model the context was created on. */
const eng_model *eng_ctx_model(const eng_ctx *c);
const int32_t *eng_ctx_tokens(const eng_ctx *c);
/* Run n tokens at positions n_past.. and append them to the cache. With
 * all_logits, logits of every token are kept (eng_ctx_logits(c, i), i < n);
 * otherwise only the last token's (i = 0). KV_ELIMIT when the context is full. */
int eng_ctx_eval(eng_ctx *c, const int32_t *toks, size_t n, int all_logits, kv_err *err);
const float *eng_ctx_logits(const eng_ctx *c, size_t i);
/* Forget tokens >= n (e.g. to re-use a shared prefix). */
int eng_ctx_truncate(eng_ctx *c, int n);
/* Make dst (same model, same n_ctx) start with src's first n tokens. */
int eng_ctx_copy_prefix(eng_ctx *dst, const eng_ctx *src, int n, kv_err *err);
/* Save/restore the whole state (cache + tokens) in memory. */
typedef struct eng_state eng_state;
int eng_ctx_save(const eng_ctx *c, eng_state **out, kv_err *err);
int eng_ctx_restore(eng_ctx *c, const eng_state *s, kv_err *err);
void eng_state_free(eng_state *s);
/* Benches that need a long cache without its prefill (a 32k prefill of a
 * 7B model takes the best part of an hour on 2 cores): appends n positions
 * to the cache with keys and values from fill (n_head_kv * head_dim floats
 * each, RoPE already applied, for `layer` at position `pos`), as if toks
 * (may be NULL: token 0 each) had been evaluated, without a forward pass.
 * The cache sees exactly the appends a prefill makes, so any cache works.
 * KV_ELIMIT when n does not fit, KV_EINVAL for a token outside the
 * vocabulary (nothing appended either way); when an append fails midway,
 * the positions filled before it stay (n_past counts them). No logits
 * until the next eng_ctx_eval. */
typedef void (*eng_kv_fill_fn)(void *user, int layer, int pos, float *k, float *v);
int eng_ctx_fill_kv(eng_ctx *c, size_t n, eng_kv_fill_fn fill, void *user, const int32_t *toks, kv_err *err);
/* Longest common prefix of the cached tokens and toks (to skip re-evaluation). */
size_t eng_ctx_common_prefix(const eng_ctx *c, const int32_t *toks, size_t n);

/* Perplexity as llama-perplexity computes it, with chunks of the context's
 * n_ctx tokens (at most max_chunks, 0 = all); cb (may be NULL) sees the
 * running value after each chunk and may cancel by returning non-zero.
 * token_nll / token_top (may be NULL; n_chunks * (n_ctx - 1 - n_ctx/2)
 * entries) receive each scored token's negative log-likelihood and the
 * model's most likely token at that position. */
typedef int (*eng_ppl_cb)(void *user, int chunk, int n_chunks, double ppl_so_far);
int eng_perplexity(eng_ctx *c, const int32_t *toks, size_t n, int max_chunks, eng_ppl_cb cb, void *user,
                   double *ppl, float *token_nll, int32_t *token_top, kv_err *err);

/* ------------------------------------------------------------- sampler -- */
typedef struct eng_sampler_params {
  float temp;           /* <= 0: greedy (argmax) */
  int top_k;            /* 0: off */
  float top_p;          /* 1: off */
  float min_p;          /* 0: off */
  float repeat_penalty; /* 1: off (llama.cpp semantics: divide positive logits, multiply negative) */
  int repeat_last_n;    /* how many recent tokens the penalty looks at */
  uint64_t seed;
} eng_sampler_params;
typedef struct eng_sampler eng_sampler;
void eng_sampler_params_default(eng_sampler_params *p); /* greedy, penalties off */
int eng_sampler_create(eng_sampler **out, const eng_sampler_params *p, int n_vocab, kv_err *err);
void eng_sampler_free(eng_sampler *s);
/* Pick a token from logits (not modified); history = recent tokens for the
 * repetition penalty. *logprob (may be NULL) = log p(token) under the model's
 * unmodified softmax — the confidence measure. */
int32_t eng_sample(eng_sampler *s, const float *logits, const int32_t *history, size_t n_hist, float *logprob);

/* ------------------------------------------------------------ generate -- */
/* Called once per generated token with its text; return non-zero to stop
 * (generation stops before evaluating another token). */
typedef int (*eng_token_cb)(void *user, int32_t token, const char *piece, size_t len);
typedef struct eng_gen_params {
  int max_tokens;              /* 0: until end of generation or the context is full */
  const char *const *stop;     /* stop strings (generation stops once the output ends with one) */
  size_t n_stop;
  eng_token_cb on_token;       /* may be NULL */
  void *user;
} eng_gen_params;
typedef struct eng_gen_result {
  int n_prompt, n_reused, n_gen; /* n_reused: prompt tokens found in the cache */
  double mean_logprob;         /* mean log p of generated tokens (confidence) */
  int stop_reason;             /* ENG_STOP_* */
  double t_prompt, t_gen;      /* seconds */
} eng_gen_result;
enum { ENG_STOP_EOG = 1, ENG_STOP_LENGTH, ENG_STOP_STRING, ENG_STOP_CALLBACK, ENG_STOP_CTX };
/* Evaluate the prompt (re-using the cached common prefix) and sample until a
 * stop condition. */
int eng_generate(eng_ctx *c, eng_sampler *s, const int32_t *prompt, size_t n_prompt, const eng_gen_params *gp,
                 eng_gen_result *res, kv_err *err);

#ifdef __cplusplus
}
#endif
#endif
