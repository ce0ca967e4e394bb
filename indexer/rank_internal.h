/*
 * rank.h — private: the second stage of idx_search. The first stage (FTS5
 * BM25 over whole chunks, search.c) picks a pool of candidate chunks; this
 * stage scores every definition inside each of them as its own small
 * document and gives the chunk the score of its best definition (see rank.c
 * for the formula and why).
 *
 * Use: idx_rank_begin (query words -> stemmed terms, synonyms, IDF), then
 * idx_rank_add per pooled chunk, then idx_rank_scores, then idx_rank_end.
 * One idx_ranker per reader connection, used under the index's rlock.
 */
#ifndef KVASIR_INDEXER_RANK_H
#define KVASIR_INDEXER_RANK_H

#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

typedef struct idx_ranker idx_ranker;

/* Finds the porter tokenizer of db's FTS5 and prepares the statements.
 * Returns 0, or nonzero when FTS5 or the tokenizer is unavailable. */
int idx_ranker_new(idx_ranker **out, sqlite3 *db);
void idx_ranker_free(idx_ranker *r);

/* Start a query: words are the query's words and their identifier parts
 * (stop words already dropped). Each is stemmed with the index's tokenizer;
 * docstring verbs add code synonyms ("return" -> "get", ...). */
int idx_rank_begin(idx_ranker *r, char *const *words, size_t nwords);
/* A pooled chunk: its blob, line range and text. Its definitions come from
 * the symbols table. Returns 0 or KV_ENOMEM / KV_EIO. */
int idx_rank_add(idx_ranker *r, size_t slot, int64_t blob, int line0, int line1, const char *text);
/* scores[slot] = max(scores[slot], the best score among the chunk's
 * definitions) for every chunk added; other slots are left alone. */
void idx_rank_scores(idx_ranker *r, double *scores, size_t nslots);
void idx_rank_end(idx_ranker *r);

/* The stemmed query terms of the current query, for tests: term i (NUL-
 * terminated) and whether it is a synonym. NULL past the end. */
const char *idx_rank_term(const idx_ranker *r, size_t i, int *is_synonym);

#endif
