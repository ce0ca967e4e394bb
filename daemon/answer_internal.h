/*
 * answer_internal.h — the grounded part of an answer (daemon/answer.c):
 * facts from the index as an event, a lead sentence and a prompt block, and
 * the judgement of how sure retrieval is.
 */
#ifndef KVASIR_DAEMON_ANSWER_INTERNAL_H
#define KVASIR_DAEMON_ANSWER_INTERNAL_H

#include <cjson/cJSON.h>

#include "base/base.h"
#include "indexer/indexer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Retrieval is unsure when the best two hits are within this share of the
 * best score (see docs/protocol.md, "Grounded answers"). */
#define DMN_UNSURE_MARGIN 0.10

typedef struct dmn_confidence {
  int unsure;          /* small margin or nothing found */
  int reasoning;       /* the request asked for depth think / think-max */
  double margin;       /* (s1 - s2) / s1 */
  char why[160];       /* why unsure, in words */
  char escalate[512];  /* what policy explain says an escalation would do ("" if nothing) */
} dmn_confidence;

void dmn_confidence_judge(dmn_confidence *c, const double *scores, size_t n, const char *depth);
/* The `facts` array of the ask.facts event. */
cJSON *dmn_facts_json(const idx_fact *f, size_t n);
/* The answer's lead: the best definition, its doc sentence, users, tests,
 * last change, other candidates, and the uncertainty when there is one. */
int dmn_answer_lead(kv_buf *b, const idx_fact *f, size_t n, const dmn_confidence *conf);
/* The facts as a list for the model's prompt: each definition with its
 * signature and doc sentence; the first with up to 3 users and 4 callees,
 * the others with one user (the prompt's size is the wait before the
 * model's first token). */
int dmn_facts_prompt(kv_buf *b, const idx_fact *f, size_t n);
/* 1 when text holds name (3+ chars) as a whole identifier, not part of a
 * longer one. */
int dmn_names_word(const char *text, const char *name);
/* The answer's citations (a new array of {path, start_line, end_line,
 * symbol, score}): the definitions of the facts whose names the final
 * text states, then the retrieved ranges (`cites`, best first) it refers
 * to — their symbol named as a word, or a path:line inside them — that do
 * not overlap one already listed; all of `cites` when it refers to none. */
cJSON *dmn_answer_citations(const char *answer, const cJSON *cites, const idx_fact *f, size_t n);
/* The first sentence of a doc comment without its markers. */
void dmn_doc_sentence(const char *doc, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
