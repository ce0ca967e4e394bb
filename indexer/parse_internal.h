/*
 * parse.h — private: from the bytes of one blob to what the store keeps.
 * idx_classify() decides whether a blob is indexed at all (skip reasons) and
 * with which note; idx_parse() runs the grammar and its tags query and cuts
 * chunks along syntax boundaries. One idx_parser per thread (it owns a
 * TSParser and a TSQueryCursor); the idx_langset is shared read-only.
 */
#ifndef KVASIR_INDEXER_PARSE_H
#define KVASIR_INDEXER_PARSE_H

#include "indexer/indexer.h"
#include "langs_internal.h"

#include <stddef.h>

typedef struct idx_psym {
  char *name, *scope, *sig;
  const char *kind;   /* points into the query's capture names, or a literal */
  int line0, line1;
  uint32_t b0, b1;    /* byte range of the definition node (for scopes) */
} idx_psym;

typedef struct idx_pref {
  char *name;
  const char *kind;
  int line;
} idx_pref;

typedef struct idx_pchunk {
  int line0, line1;
  size_t b0, b1;      /* byte range in text */
  int sym;            /* index of the first definition starting inside, or -1 */
  /* what the FTS table gets besides the text, built by the parse thread so
   * the writer only writes: sub-words of the identifiers, the names of the
   * definitions starting here (+ their parts) */
  char *sub, *defs;
  size_t nsub, ndefs;
} idx_pchunk;

typedef struct idx_arena idx_arena;

typedef struct idx_parsed {
  int skip, note;
  idx_arena *arena;   /* the names, scopes and signatures of syms and refs */
  char *text;         /* the indexed text (invalid UTF-8 replaced by '?'); owned */
  size_t len;
  int nlines;
  char *ids;          /* the blob's distinct identifiers, space-separated (idx_idents) */
  size_t nids;
  idx_psym *syms;  size_t nsyms, capsyms;
  idx_pref *refs;  size_t nrefs, caprefs;
  idx_pchunk *chunks; size_t nchunks, capchunks;
} idx_parsed;

typedef struct idx_parser idx_parser;
int idx_parser_new(idx_parser **out, const idx_langset *ls);
void idx_parser_free(idx_parser *p);

/* Skip reason from the path alone (vendored, lockfiles, minified names). */
int idx_classify_path(const char *path);
/* Skip reason / note from the content (binary, minified, generated). */
int idx_classify_content(const char *buf, size_t len, int *note);

/* Parse buf (len bytes, need not be NUL-terminated) as lang (NULL = plain
 * text). Fills out (zeroed first); returns 0 or KV_ENOMEM. out->skip is set
 * when the content says the blob should not be indexed. */
int idx_parse(idx_parser *p, const char *lang, const char *buf, size_t len, idx_parsed *out);
void idx_parsed_free(idx_parsed *r);

/* For bench_indexer's time split: the grammar's parse alone (no tags query,
 * no chunks), the tree thrown away. Returns 0, or KV_ENOTFOUND without a
 * grammar for lang. */
int idx_parse_syntax_only(idx_parser *p, const char *lang, const char *buf, size_t len);

/* Split an identifier-rich text into lower-case sub-words ("parseHTTPRequest
 * foo_bar" -> "parse http request foo bar"), appended to *out (malloc'd,
 * grown as needed). Digits stay with their letters. Only words of 2+ chars that differ from their parent
 * token are emitted. Returns 0 or KV_ENOMEM. */
int idx_subwords(const char *s, size_t n, char **out, size_t *len, size_t *cap);

/* The distinct identifier-like words (3..200 bytes of [A-Za-z0-9_] or
 * non-ASCII) of s, space-separated, appended to *out: what the trigram
 * table indexes for substring search. */
int idx_idents(const char *s, size_t n, char **out, size_t *len, size_t *cap);

/* Is the line s (n bytes, no '\n') a comment line: after blanks, slash-star,
 * '*', '//', '--', or a '#' that starts no C preprocessor directive? Used to
 * keep a definition's doc comment with it (chunks, rank.c's documents). */
int idx_comment_line(const char *s, size_t n);

/* The first line (>= floor) of the doc comment that ends right above line a
 * of text, whose line l starts at off[l] (off[a] is needed): a run of
 * comment lines (idx_comment_line), and whole block comments, however their
 * inner lines look, whose opening line starts with slash-star. a when none. */
int idx_doc_top(const char *text, const size_t *off, int a, int floor);

#endif
