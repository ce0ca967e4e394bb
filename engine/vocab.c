/*
 * vocab.c — the vocabulary read from GGUF metadata (tokenizer.ggml.*):
 * token texts, types, scores, BPE merges and special ids, with hash maps for
 * text -> id and (left, right) -> merge rank. Also the pre-tokenizer regexes
 * (PCRE2, UTF + Unicode properties), chosen by tokenizer.ggml.pre exactly as
 * llama.cpp chooses them. Every id read from the file is range-checked.
 */
#define _GNU_SOURCE /* memmem, qsort_r */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "engine/internal.h"

static uint64_t mix(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  return k;
}

int32_t eng_vocab_find(const eng_vocab *v, const char *s, size_t n) {
  size_t m = v->hcap - 1;
  for (size_t i = kv_hash64(s, n) & m;; i = (i + 1) & m) {
    uint32_t e = v->hmap[i];
    if (!e) return -1;
    const eng_str *t = &v->text[e - 1];
    if (t->n == n && !memcmp(t->p, s, n)) return (int32_t)(e - 1);
  }
}

static size_t pow2_at_least(size_t n) {
  size_t c = 16;
  while (c < n * 2) c <<= 1;
  return c;
}

/* Llama.cpp's pre-tokenizer regexes, by tokenizer.ggml.pre. */
static const char *const RE_GPT2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const RE_QWEN2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const RE_LLAMA3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static int compile_re(eng_vocab *v, const char *pat, kv_err *err) {
  int ec;
  PCRE2_SIZE eo;
  pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
                                 PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &ec, &eo, NULL);
  if (!re) return kv_err_set(err, KV_EINVAL, "pre-tokenizer regex failed to compile at %zu", (size_t)eo);
  pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; errors ignored */
  v->re[v->n_re++] = re;
  return 0;
}

static int cmp_special(const void *a, const void *b, void *vv) {
  const eng_vocab *v = vv;
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  if (v->text[x].n != v->text[y].n) return v->text[x].n > v->text[y].n ? -1 : 1;
  return x < y ? -1 : x > y;
}

static int get_id(const eng_gguf *g, const char *key, int n, int32_t *out, kv_err *err) {
  int64_t x;
  *out = -1;
  if (!eng_gguf_has(g, key)) return 0;
  int rc = eng_gguf_get_int(g, key, &x, err);
  if (rc) return rc;
  if (x < 0 || x >= n) return kv_err_set(err, KV_EFORMAT, "%s: key '%s' = %lld is not a token id (vocab %d)",
                                         eng_gguf_name(g), key, (long long)x, n);
  *out = (int32_t)x;
  return 0;
}

/* Fill-in-the-middle markers, as llama.cpp finds them: the three ids named
 * by the file, else the first family of spellings whose three markers are
 * all tokens (a family at a time, so prefix and suffix never come from two
 * different conventions). FIM is optional: a key that is not an integer or
 * not a token id counts as absent rather than failing the whole model. */
static const char *const FIM_SPELLINGS[][3] = {
    {"<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"}, /* Qwen 2.5 Coder */
    {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"},       /* StarCoder */
    {"<fim-prefix>", "<fim-suffix>", "<fim-middle>"},       /* Refact, SantaCoder */
    {"<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"},    /* DeepSeek Coder (UTF-8 as in its vocabulary) */
    {"<PRE>", "<SUF>", "<MID>"},                            /* CodeLlama */
    {"▁<PRE>", "▁<SUF>", "▁<MID>"},                         /* CodeLlama, SentencePiece spelling */
    {"<|code_prefix|>", "<|code_suffix|>", "<|code_middle|>"}, /* GLM-4 */
};

static void load_fim(eng_vocab *v, const eng_gguf *g) {
  static const char *const keys[3] = {"tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.fim_suf_token_id",
                                      "tokenizer.ggml.fim_mid_token_id"};
  int32_t id[3];
  int found = 0;
  for (int i = 0; i < 3; i++) {
    int64_t x;
    id[i] = eng_gguf_has(g, keys[i]) && !eng_gguf_get_int(g, keys[i], &x, NULL) && x >= 0 && x < v->n ? (int32_t)x : -1;
    found += id[i] >= 0;
  }
  if (found < 3)
    for (size_t f = 0; f < sizeof FIM_SPELLINGS / sizeof *FIM_SPELLINGS; f++) {
      for (found = 0; found < 3; found++)
        if ((id[found] = eng_vocab_find(v, FIM_SPELLINGS[f][found], strlen(FIM_SPELLINGS[f][found]))) < 0) break;
      if (found == 3) break;
    }
  for (int i = 0; i < 3; i++) v->fim[i] = found == 3 ? id[i] : -1;
}

static int load_merges(eng_vocab *v, const eng_gguf *g, kv_err *err) {
  int et;
  uint64_t n;
  const void *cur;
  int rc = eng_gguf_get_arr(g, "tokenizer.ggml.merges", &et, &n, &cur, err);
  if (rc) return rc;
  if (et != ENG_GGUF_STRING)
    return kv_err_set(err, KV_EFORMAT, "%s: key 'tokenizer.ggml.merges' is not a string array", eng_gguf_name(g));
  v->mcap = pow2_at_least((size_t)n + 1);
  v->mkey = calloc(v->mcap, sizeof *v->mkey);
  v->mrank = calloc(v->mcap, sizeof *v->mrank);
  if (!v->mkey || !v->mrank) return kv_err_set(err, KV_ENOMEM, "out of memory for merges");
  for (uint64_t i = 0; i < n; i++) {
    size_t len;
    const char *s = eng_gguf_arr_str_next(&cur, &len);
    /* "left right": split at the first space that is not the first byte */
    const char *sp = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!sp) return kv_err_set(err, KV_EFORMAT, "%s: tokenizer.ggml.merges[%llu] has no space", eng_gguf_name(g),
                               (unsigned long long)i);
    int32_t a = eng_vocab_find(v, s, (size_t)(sp - s)), b = eng_vocab_find(v, sp + 1, len - (size_t)(sp - s) - 1);
    if (a < 0 || b < 0) continue; /* llama.cpp ignores merges of unknown tokens too */
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    size_t m = v->mcap - 1, j;
    for (j = mix(key) & m; v->mkey[j] && v->mkey[j] != key; j = (j + 1) & m) {}
    if (!v->mkey[j]) { v->mkey[j] = key; v->mrank[j] = (int32_t)i; }
  }
  return 0;
}

int eng_vocab_load(eng_vocab *v, const eng_gguf *g, kv_err *err) {
  memset(v, 0, sizeof *v);
  const char *fn = eng_gguf_name(g);
  eng_str model, pre = {"default", 7};
  int rc = eng_gguf_get_str(g, "tokenizer.ggml.model", &model, err);
  if (rc) return rc;
  if (eng_gguf_has(g, "tokenizer.ggml.pre") && (rc = eng_gguf_get_str(g, "tokenizer.ggml.pre", &pre, err)))
    return rc;
  if (model.n == 4 && !memcmp(model.p, "gpt2", 4)) v->kind = VOCAB_BPE;
  else if (model.n == 5 && !memcmp(model.p, "llama", 5)) v->kind = VOCAB_SPM;
  else if (model.n == 4 && !memcmp(model.p, "bert", 4)) v->kind = VOCAB_WPM;
  else return kv_err_set(err, KV_EUNSUPPORTED, "%s: tokenizer.ggml.model '%.*s' is not supported (gpt2, llama, bert)",
                         fn, (int)model.n, model.p);
  int et;
  uint64_t n;
  const void *cur;
  if ((rc = eng_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &cur, err))) return rc;
  if (et != ENG_GGUF_STRING || n == 0 || n > (1u << 24))
    return kv_err_set(err, KV_EFORMAT, "%s: key 'tokenizer.ggml.tokens' is not a string array of sane size", fn);
  v->n = (int)n;
  v->text = calloc(n, sizeof *v->text);
  v->ttype = malloc(n * sizeof *v->ttype);
  v->hcap = pow2_at_least(n);
  v->hmap = calloc(v->hcap, sizeof *v->hmap);
  if (!v->text || !v->ttype || !v->hmap) return kv_err_set(err, KV_ENOMEM, "out of memory for the vocabulary");
  for (int i = 0; i < v->n; i++) {
    v->text[i].p = eng_gguf_arr_str_next(&cur, &v->text[i].n);
    v->ttype[i] = TT_NORMAL;
    size_t m = v->hcap - 1, j;
    for (j = kv_hash64(v->text[i].p, v->text[i].n) & m; v->hmap[j]; j = (j + 1) & m) {
      const eng_str *t = &v->text[v->hmap[j] - 1];
      if (t->n == v->text[i].n && !memcmp(t->p, v->text[i].p, t->n)) break; /* duplicate: first wins */
    }
    if (!v->hmap[j]) v->hmap[j] = (uint32_t)i + 1;
  }
  if (eng_gguf_has(g, "tokenizer.ggml.token_type")) {
    const void *d;
    uint64_t nt;
    if ((rc = eng_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &nt, &d, err))) return rc;
    if ((et != ENG_GGUF_I32 && et != ENG_GGUF_U32) || nt != n)
      return kv_err_set(err, KV_EFORMAT, "%s: key 'tokenizer.ggml.token_type' must be %llu int32", fn,
                        (unsigned long long)n);
    memcpy(v->ttype, d, n * 4);
  }
  if (eng_gguf_has(g, "tokenizer.ggml.scores")) {
    const void *d;
    uint64_t ns;
    if ((rc = eng_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &ns, &d, err))) return rc;
    if (et != ENG_GGUF_F32 || ns != n)
      return kv_err_set(err, KV_EFORMAT, "%s: key 'tokenizer.ggml.scores' must be %llu f32", fn,
                        (unsigned long long)n);
    if (!(v->score = malloc(n * sizeof *v->score))) return kv_err_set(err, KV_ENOMEM, "out of memory");
    memcpy(v->score, d, n * 4);
  }
  if (v->kind == VOCAB_SPM && !v->score)
    return kv_err_set(err, KV_EFORMAT, "%s: SentencePiece vocabulary without tokenizer.ggml.scores", fn);
  if (v->kind == VOCAB_BPE && (rc = load_merges(v, g, err))) return rc;
  if ((rc = get_id(g, "tokenizer.ggml.bos_token_id", v->n, &v->bos, err)) ||
      (rc = get_id(g, "tokenizer.ggml.eos_token_id", v->n, &v->eos, err)) ||
      (rc = get_id(g, "tokenizer.ggml.eot_token_id", v->n, &v->eot, err)) ||
      (rc = get_id(g, "tokenizer.ggml.unknown_token_id", v->n, &v->unk, err)) ||
      (rc = get_id(g, "tokenizer.ggml.cls_token_id", v->n, &v->cls, err)) ||
      (rc = get_id(g, "tokenizer.ggml.seperator_token_id", v->n, &v->sep, err)))
    return rc;
  if (v->kind == VOCAB_WPM && (v->unk < 0 || v->cls < 0 || v->sep < 0))
    return kv_err_set(err, KV_EFORMAT, "%s: a WordPiece vocabulary needs tokenizer.ggml.{unknown,cls,seperator}_token_id",
                      fn);
  int64_t b = v->kind == VOCAB_SPM;
  if (eng_gguf_has(g, "tokenizer.ggml.add_bos_token") &&
      (rc = eng_gguf_get_int(g, "tokenizer.ggml.add_bos_token", &b, err)))
    return rc;
  v->add_bos = (int)b && v->bos >= 0;
  b = 0;
  if (eng_gguf_has(g, "tokenizer.ggml.add_space_prefix") &&
      (rc = eng_gguf_get_int(g, "tokenizer.ggml.add_space_prefix", &b, err)))
    return rc;
  v->add_space_prefix = (int)b;
  load_fim(v, g);
  /* the end-of-turn token of chat formats, when the file does not name one */
  static const char *const eot_names[] = {"<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"};
  for (size_t i = 0; v->eot < 0 && i < sizeof eot_names / sizeof *eot_names; i++)
    v->eot = eng_vocab_find(v, eot_names[i], strlen(eot_names[i]));
  for (int i = 0; i < 256; i++) {
    char name[8];
    snprintf(name, sizeof name, "<0x%02X>", i);
    v->byte_tok[i] = eng_vocab_find(v, name, 6);
  }
  int ns = 0;
  for (int i = 0; i < v->n; i++)
    if (v->ttype[i] == TT_CONTROL || v->ttype[i] == TT_USER || v->ttype[i] == TT_UNKNOWN) ns++;
  if (!(v->special = malloc((size_t)(ns ? ns : 1) * sizeof *v->special)))
    return kv_err_set(err, KV_ENOMEM, "out of memory");
  for (int i = 0; i < v->n; i++)
    if ((v->ttype[i] == TT_CONTROL || v->ttype[i] == TT_USER || v->ttype[i] == TT_UNKNOWN) && v->text[i].n)
      v->special[v->n_special++] = i;
  qsort_r(v->special, (size_t)v->n_special, sizeof *v->special, cmp_special, v);
  if (v->kind == VOCAB_BPE) {
    if (pre.n == 6 && !memcmp(pre.p, "smollm", 6)) {
      v->pre = PRE_SMOLLM;
      if ((rc = compile_re(v, "\\p{N}", err))) return rc;
      rc = compile_re(v, RE_GPT2, err);
    } else if ((pre.n == 5 && !memcmp(pre.p, "qwen2", 5)) || (pre.n == 16 && !memcmp(pre.p, "deepseek-r1-qwen", 16))) {
      v->pre = PRE_QWEN2;
      rc = compile_re(v, RE_QWEN2, err);
    } else if (pre.n == 11 && !memcmp(pre.p, "llama-bpe", 9)) {
      v->pre = PRE_LLAMA3;
      rc = compile_re(v, RE_LLAMA3, err);
    } else {
      v->pre = PRE_GPT2;
      rc = compile_re(v, RE_GPT2, err);
    }
    if (rc) return rc;
  }
  return 0;
}

void eng_vocab_free(eng_vocab *v) {
  free(v->text);
  free(v->score);
  free(v->ttype);
  free(v->hmap);
  free(v->mkey);
  free(v->mrank);
  free(v->special);
  for (int i = 0; i < v->n_re; i++) pcre2_code_free(v->re[i]);
  memset(v, 0, sizeof *v);
}
