/*
 * fim.c — fill-in-the-middle prompts (see fim_internal.h).
 *
 * The FIM markers are put in as token ids, never as text to tokenize, so a
 * model whose markers are spelled differently, or source text that happens
 * to contain "<fim_prefix>", cannot confuse the two. Qwen2.5-Coder's
 * repo-level layout (from its model card):
 *   <|repo_name|>{repo}\n<|file_sep|>{path}\n{text}\n ... <|file_sep|>{path}\n
 *   <|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>
 * is used when the vocabulary has <|repo_name|> and <|file_sep|>; otherwise
 * the plain prefix-suffix-middle order; without FIM tokens, the prefix only.
 */
#include "daemon/fim_internal.h"

#include <stdlib.h>
#include <string.h>

size_t dmn_fim_offset(const char *text, int line, int col, int utf16) {
  const char *p = text;
  for (int l = 1; l < line && *p; l++) {
    const char *nl = strchr(p, '\n');
    p = nl ? nl + 1 : p + strlen(p);
  }
  size_t ll = strcspn(p, "\n");
  if (ll && p[ll - 1] == '\r') ll--;
  size_t i = 0;
  if (col <= 0) return (size_t)(p - text);
  if (!utf16) {
    i = (size_t)col > ll ? ll : (size_t)col;
    while (i > 0 && i < ll && ((unsigned char)p[i] & 0xc0) == 0x80) i--;
    return (size_t)(p - text) + i;
  }
  long units = 0;
  while (i < ll && units < col) {
    unsigned char c = (unsigned char)p[i];
    size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (i + len > ll) len = ll - i;
    units += len == 4 ? 2 : 1;
    i += len;
  }
  return (size_t)(p - text) + i;
}

static int push(dmn_fim_prompt *o, int32_t t, kv_err *err) {
  return KV_PUSH(o->toks, o->n, o->cap, t) ? kv_err_set(err, KV_ENOMEM, "complete: out of memory") : 0;
}

static int text_toks(eng_model *m, dmn_fim_prompt *o, const char *s, size_t n, kv_err *err) {
  if (!n) return 0;
  if (KV_GROW(o->toks, o->cap, o->n + n + 8)) return kv_err_set(err, KV_ENOMEM, "complete: out of memory");
  size_t got = 0;
  /* parse_special = 0: text from the user's file is never a control token */
  int rc = eng_tokenize(m, s, n, 0, 0, o->toks + o->n, o->cap - o->n, &got, err);
  if (!rc) o->n += got;
  return rc;
}

/* The id of a special token spelled `s`, or -1. */
static int32_t special(eng_model *m, const char *s) {
  int32_t t[4];
  size_t n = 0;
  kv_err e;
  if (eng_tokenize(m, s, strlen(s), 0, 1, t, 4, &n, &e) || n != 1) return -1;
  return t[0];
}

int dmn_fim_build(eng_model *m, const char *repo, const char *path, const dmn_fim_snippet *snip, size_t nsnip,
                  const char *prefix, size_t npre, const char *suffix, size_t nsuf, dmn_fim_prompt *out,
                  kv_err *err) {
  memset(out, 0, sizeof *out);
  int32_t pre, suf, mid;
  int rc = 0;
  if (eng_token_fim(m, &pre, &suf, &mid) != 0) {
    out->format = "prefix";
    int32_t bos = eng_token_bos(m);
    if (bos >= 0) rc = push(out, bos, err);
    if (!rc) rc = text_toks(m, out, prefix, npre, err);
    return rc;
  }
  out->fim = 1;
  int32_t rname = special(m, "<|repo_name|>"), fsep = special(m, "<|file_sep|>");
  if (rname >= 0 && fsep >= 0 && path) {
    out->format = "qwen-repo";
    const char *base = repo ? strrchr(repo, '/') : NULL;
    rc = push(out, rname, err);
    if (!rc) rc = text_toks(m, out, base ? base + 1 : (repo ? repo : ""), strlen(base ? base + 1 : (repo ? repo : "")), err);
    if (!rc) rc = text_toks(m, out, "\n", 1, err);
    for (size_t i = 0; !rc && i < nsnip; i++) {
      rc = push(out, fsep, err);
      if (!rc) rc = text_toks(m, out, snip[i].path, strlen(snip[i].path), err);
      if (!rc) rc = text_toks(m, out, "\n", 1, err);
      if (!rc) rc = text_toks(m, out, snip[i].text, strlen(snip[i].text), err);
      if (!rc) rc = text_toks(m, out, "\n", 1, err);
    }
    if (!rc) rc = push(out, fsep, err);
    if (!rc) rc = text_toks(m, out, path, strlen(path), err);
    if (!rc) rc = text_toks(m, out, "\n", 1, err);
  } else {
    out->format = "psm";
  }
  if (!rc) rc = push(out, pre, err);
  if (!rc) rc = text_toks(m, out, prefix, npre, err);
  if (!rc) rc = push(out, suf, err);
  if (!rc) rc = text_toks(m, out, suffix, nsuf, err);
  if (!rc) rc = push(out, mid, err);
  return rc;
}

void dmn_fim_prompt_free(dmn_fim_prompt *p) {
  free(p->toks);
  memset(p, 0, sizeof *p);
}
