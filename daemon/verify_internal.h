/*
 * verify_internal.h — the answer verifier of daemon/verify.c: the model's
 * text is shown word by word, each code-like token (backticked spans,
 * snake_case, camelCase, Name(), path:line) only once it is complete and
 * found in what the index knows. A sentence that names something the
 * repository does not hold is cut there, never shown as fact: dropped whole
 * when none of it was shown, else its shown part is followed by
 * DMN_VERIFY_CUT (a code block goes line by line, and a cut one is closed
 * before DMN_VERIFY_CUT_BLOCK); both are counted. A repeated sentence or phrase stops the
 * generation.
 */
#ifndef KVASIR_DAEMON_VERIFY_INTERNAL_H
#define KVASIR_DAEMON_VERIFY_INTERNAL_H

#include <stddef.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { DMN_TOK_IDENT = 1, DMN_TOK_LOC = 2, DMN_TOK_QUOTE = 3 };

/* What follows the shown part of a sentence that went on to name code the
 * index does not hold (the rest of it is not shown). */
#define DMN_VERIFY_CUT " _(the rest of this sentence is not shown: it names code that is not in the index)_"
/* The same for a ``` code block shown line by line: the block is closed first. */
#define DMN_VERIFY_CUT_BLOCK \
  "```\n_(the rest of this code block is not shown: it names or quotes code that is not in the repository)_\n"

/* 1 when `tok` (n bytes; kind DMN_TOK_IDENT: an identifier such as
 * "kv_buf_append" or "ipc.handshake"; DMN_TOK_LOC: "path:line" or
 * "path:l0-l1"; DMN_TOK_QUOTE: a line of a ``` block, with require_quotes)
 * exists in the repository, 0 when it does not. */
typedef int (*dmn_known_fn)(void *ud, const char *tok, size_t n, int kind);

typedef struct dmn_verify_stats {
  int sentences;  /* units seen (sentences, list items, code blocks) */
  int dropped;    /* of which removed (whole, or the rest after a cut) */
  int cut;        /* of those, units cut after a part of them was shown */
  int tokens;     /* code-like tokens checked */
  int unknown;    /* of which not found */
  int repeated;   /* 1 when repetition stopped the text */
  int unanchored; /* units dropped for naming no code at all (require_anchor) */
} dmn_verify_stats;

typedef struct dmn_verifier {
  dmn_known_fn known;
  void *ud;
  kv_buf pending; /* the unfinished unit (sentence), from its start */
  size_t judged;   /* bytes of pending whose code-like tokens were judged */
  size_t released; /* bytes of pending shown (<= judged) */
  int unit_tokens; /* code-like tokens judged in the unit so far */
  int unit_bad;    /* the unit named unknown code: no more of it is shown */
  int cut_marked;  /* DMN_VERIFY_CUT was appended for this unit */
  kv_buf shown;   /* every unit shown so far (for repetition) */
  dmn_verify_stats st;
  /* drop units that name no code at all: for models too small to reason, a
   * sentence that points at nothing in the repository is prose that cannot
   * be checked, so it is not shown */
  int require_anchor;
  /* every line of a ``` block must be a line of the repository's code
   * (DMN_TOK_QUOTE): a small model's code block is a quote or it is
   * invented, and invented code dressed as the repository's is not shown */
  int require_quotes;
  /* a small cache of answers from `known` */
  struct { uint64_t h; int v; } cache[256];
} dmn_verifier;

void dmn_verifier_init(dmn_verifier *v, dmn_known_fn known, void *ud);
void dmn_verifier_free(dmn_verifier *v);
/* Feeds generated text; what it settles is appended to `out`: the words of
 * the current unit whose tokens are known (held while an anchor is
 * required and missing, or while the unit so far repeats shown text), and
 * every completed unit that holds. Returns 1 when the text started repeating (the
 * caller stops generating), 0 otherwise, KV_ENOMEM on allocation failure. */
int dmn_verifier_feed(dmn_verifier *v, const char *p, size_t n, kv_buf *out);
/* Judges what is left (end of generation) and appends it if it holds. */
int dmn_verifier_finish(dmn_verifier *v, kv_buf *out);

/* The code-like tokens of text[0..n), as the benchmark counts them; calls
 * fn(ud, tok, len, kind) for each and returns how many there were. */
int dmn_code_tokens(const char *text, size_t n, void (*fn)(void *ud, const char *tok, size_t len, int kind),
                    void *ud);

#ifdef __cplusplus
}
#endif
#endif
