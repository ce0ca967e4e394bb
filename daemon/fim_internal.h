/*
 * fim_internal.h — fill-in-the-middle prompts for `complete` (daemon/fim.c):
 * the cursor's byte offset from an editor's line and column (VS Code counts
 * UTF-16 units, Neovim bytes), and the prompt as tokens in the model's own
 * FIM format (ids from eng_token_fim), with Qwen2.5-Coder's repo-level
 * header (<|repo_name|>, <|file_sep|>) and snippets from the index when the
 * vocabulary has those tokens.
 */
#ifndef KVASIR_DAEMON_FIM_INTERNAL_H
#define KVASIR_DAEMON_FIM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "engine/engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Byte offset in text of 1-based `line` and 0-based `col`; utf16: col counts
 * UTF-16 code units (a code point above U+FFFF is two), else bytes. A column
 * past the line's end is its end; one inside a UTF-8 sequence moves to its
 * start. */
size_t dmn_fim_offset(const char *text, int line, int col, int utf16);

typedef struct dmn_fim_snippet {
  const char *path;
  const char *text;
} dmn_fim_snippet;

typedef struct dmn_fim_prompt {
  int32_t *toks;
  size_t n, cap;
  int fim;            /* 1: the model's FIM tokens were used; 0: plain prefix */
  const char *format; /* "qwen-repo", "psm" or "prefix" */
} dmn_fim_prompt;

/* Tokens of the prompt for completing between prefix[0..npre) and
 * suffix[0..nsuf): [repo header + snippets +] PRE prefix SUF suffix MID.
 * repo/path/snippets are used only with the repo-level format. */
int dmn_fim_build(eng_model *m, const char *repo, const char *path, const dmn_fim_snippet *snip, size_t nsnip,
                  const char *prefix, size_t npre, const char *suffix, size_t nsuf, dmn_fim_prompt *out,
                  kv_err *err);
void dmn_fim_prompt_free(dmn_fim_prompt *p);

#ifdef __cplusplus
}
#endif
#endif
