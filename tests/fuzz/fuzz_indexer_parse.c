/*
 * fuzz_indexer_parse — arbitrary bytes through the indexer's parse layer:
 * classification, UTF-8 repair, every grammar with its tags query, chunking
 * and sub-word / identifier splitting. The first byte picks the language
 * (or plain text). Invariants checked: line numbers within the text, chunks
 * ordered and disjoint, definitions' ranges sane.
 */
#include "indexer/indexer.h"
#include "indexer/parse_internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const langs[] = {NULL, "c", "cpp", "python", "javascript", "typescript", "tsx",
                                     "go", "rust", "java", "bash", "ruby"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  static idx_langset *ls; /* fuzz harness only: compiled once per process */
  kv_err err;
  if (!ls && idx_langset_new(&ls, &err) != 0) abort();
  idx_parser *p;
  if (idx_parser_new(&p, ls) != 0) abort();
  const char *lang = langs[data[0] % (sizeof langs / sizeof langs[0])];
  idx_parsed r;
  if (idx_parse(p, lang, (const char *)data + 1, size - 1, &r) != 0) abort();
  int prev = 0;
  for (size_t i = 0; i < r.nchunks; i++) {
    if (r.chunks[i].line0 <= prev || r.chunks[i].line1 < r.chunks[i].line0 || r.chunks[i].line1 > r.nlines) abort();
    if (r.chunks[i].b1 > r.len || r.chunks[i].b0 > r.chunks[i].b1) abort();
    prev = r.chunks[i].line1;
  }
  for (size_t i = 0; i < r.nsyms; i++)
    if (r.syms[i].line0 < 1 || r.syms[i].line1 < r.syms[i].line0 || !r.syms[i].name || !r.syms[i].sig) abort();
  char *s = NULL;
  size_t len = 0, cap = 0;
  if (idx_subwords((const char *)data, size, &s, &len, &cap) != 0) abort();
  len = 0;
  if (idx_idents((const char *)data, size, &s, &len, &cap) != 0) abort();
  free(s);
  /* the log -> code literal matcher on the same bytes, with a template cut
   * from them (slots "<*>") and a fixed one: a line inside the text or 0 */
  char tmpl[65];
  size_t tl = size - 1 < 64 ? size - 1 : 64;
  memcpy(tmpl, data + 1, tl);
  tmpl[tl] = 0;
  const char *fixed = "conn=<*> closed after <*> s: %s {x}";
  for (int k = 0; k < 2; k++) {
    int line = -1;
    double q = idx_literal_match(lang, (const char *)data + 1, size - 1, k ? fixed : tmpl, "<*>", &line);
    if (q < 0 || q > 1.0001 || line < 0 || (q > 0 && (line < 1 || line > r.nlines + 1))) abort();
  }
  idx_parsed_free(&r);
  idx_parser_free(p);
  return 0;
}
