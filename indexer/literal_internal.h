/*
 * literal_internal.h — the string-literal reader behind idx_log_sites
 * (literal.c, used by strings.c): a literal of indexed code as a
 * slot-string, its constant chars with one SLOT per format placeholder or
 * concatenated operand. Internal to the indexer.
 */
#ifndef KVASIR_INDEXER_LITERAL_INTERNAL_H
#define KVASIR_INDEXER_LITERAL_INTERNAL_H
#include <stddef.h>

#define SLOT (-1)

/* A slot-string: chars (0..255) and SLOT, whitespace runs as one ' '. */
typedef struct sstr {
  int *v;
  size_t n, cap;
  int oom;
} sstr;

enum { L_CLIKE, L_JS, L_PY, L_RUBY, L_SH, L_RUST, L_JAVA };

/* The literal being read: its quote and what counts as a slot inside. */
typedef struct qkind {
  char q;         /* quote char */
  int triple;     /* """ or ''' */
  int raw;        /* no escapes */
  int hashes;     /* Rust r#"..."# */
  int braces;     /* {} {name} slots */
  int dollar;     /* ${...} (and $name in shell) */
  int hash_brace; /* Ruby #{...} */
  int printf_;    /* %s ... */
  int multiline;  /* may span lines */
} qkind;

/* Appends c to s (whitespace runs become one ' '); s->oom on failure. */
void idx_ss_push(sstr *s, int c);
/* The quoting rules of a language name (L_*). */
int idx_lit_lang(const char *lang);
/* A literal opening at p (s0: start of the text, for what precedes it) in
 * language L: fills k and returns the position after the opening quote,
 * or NULL when p does not open one. */
const char *idx_lit_open(const char *p, const char *s0, const char *e, int L, qkind *k);
/* Reads the literal's body from p into F; the position after the closing
 * quote, or NULL when it does not close. */
const char *idx_lit_body(const char *p, const char *e, const qkind *k, sstr *F);
/* Skips one operand of a `+` chain ("a" + x.y(z) + "b"); returns its end. */
const char *idx_lit_skip_operand(const char *p, const char *e);
/* Skips whitespace, newlines and line continuations. */
const char *idx_lit_skip_ws(const char *p, const char *e);

#endif
