/*
 * langs.h — private: the languages the indexer parses. Maps a path to a
 * language, holds each grammar's TSLanguage and its compiled tags query
 * (upstream tags.scm + ours from indexer/queries/, embedded at build time by
 * embed.cmake), and evaluates the query predicates tree-sitter 0.20 leaves to
 * the caller (#eq?, #not-eq?, #match?, #not-match?; any other predicate —
 * #strip!, #select-adjacent!, #set-adjacent!, #is-not? — is ignored).
 * A compiled idx_langset is immutable and may be shared by parse threads.
 */
#ifndef KVASIR_INDEXER_LANGS_H
#define KVASIR_INDEXER_LANGS_H

#include "base/base.h"

#include <regex.h>
#include <tree_sitter/api.h>

typedef struct idx_lang_queries {
  const char *name, *up, *ours;
} idx_lang_queries;
extern const idx_lang_queries idx_lang_query_table[];

/* One predicate of one pattern: op 0 eq, 1 not-eq, 2 match, 3 not-match. */
typedef struct idx_pred {
  int op;
  uint32_t cap;        /* capture id of the first argument */
  int rhs_is_cap;
  uint32_t rhs_cap;
  char *rhs;           /* string argument (eq) */
  regex_t re;          /* compiled (match) */
} idx_pred;

typedef struct idx_lang {
  const char *name;
  const TSLanguage *ts;
  TSQuery *query;      /* NULL: text only */
  uint32_t npatterns;
  idx_pred **preds;    /* per pattern */
  uint32_t *npreds;
  /* per capture id: 0 other, 1 name, 2 definition.*, 3 reference.* ; and
   * the kind after the dot */
  uint8_t *cap_role;
  const char **cap_kind;
  uint32_t ncaps;
  char query_note[160]; /* why the query fell back, if it did */
} idx_lang;

typedef struct idx_langset {
  idx_lang *v;
  size_t n;
} idx_langset;

/* Compile every grammar's query. Never fails for a bad query: the language
 * falls back to ours alone, then upstream alone, then text only. */
int idx_langset_new(idx_langset **out, kv_err *err);
void idx_langset_free(idx_langset *ls);
const idx_lang *idx_langset_get(const idx_langset *ls, const char *name);

/* Language of a path by extension / file name; NULL when none we parse.
 * text_ok is set to 1 for text formats indexed without a grammar. */
const char *idx_lang_for_path(const char *path, int *text_ok);

/* Do the predicates of match m hold? src is the parsed text. */
int idx_match_ok(const idx_lang *l, const TSQueryMatch *m, const char *src);

#endif
