/*
 * ingest_int.h — private to the logs module: the stages of an ingest after
 * the reading thread (ingest.c): the mining stage and the writer stage,
 * each a thread with a short queue (ingest_pipe.c).
 *
 *   reading (caller's thread)  bytes -> lines -> records      ingest.c
 *     -> rbatch -> mining stage: templates, blocks            ingest_pipe.c
 *     -> wbatch -> writer stage: compress, one transaction    ingest_pipe.c
 *
 * The stream of an rbatch is records plus markers: RR_FILE (the following
 * records belong to file `line`), RR_COMMIT (close the transaction here;
 * resume point off/line), RR_ABORT (drop what was not committed: the
 * reading side failed in a file). Order is kept end to end.
 */
#ifndef KVASIR_LOGS_INGEST_INT_H
#define KVASIR_LOGS_INGEST_INT_H
#include "logs/store_int.h"

enum { RR_REC = 0, RR_COMMIT, RR_FILE, RR_ABORT };

typedef struct rrec {
  uint8_t kind, level;
  int64_t ts, line, pid; /* RR_COMMIT: line = resume line; RR_FILE: line = file id */
  uint64_t off;          /* RR_COMMIT: resume offset */
  uint32_t text, tlen;   /* the record text: offset in the arena, length */
  uint32_t content, clen;
  uint32_t comp, complen; /* complen 0 = no component */
} rrec;

typedef struct rbatch {
  rrec *r;
  size_t n, cap;
  lbuf arena;
} rbatch;

rbatch *rbatch_new(void);
void rbatch_free(rbatch *b);
/* A new entry at the end (zeroed, kind set), or NULL when out of memory. */
rrec *rbatch_add(rbatch *b, int kind);

typedef struct ipipe ipipe;

/* Start the mining and writer stages on db (its miner loaded). */
int ipipe_start(ipipe **out, log_db *db, kv_err *err);
/* An empty record batch (a recycled one when there is one), or NULL. */
rbatch *ipipe_rbatch(ipipe *p);
/* Hand over a batch (taken in all cases); waits while the queue is full.
 * Returns a stage's error once one has failed. */
int ipipe_push(ipipe *p, rbatch *b, kv_err *err);
/* Wait until everything handed over is written; the caller may then use
 * the connection until its next push. */
int ipipe_drain(ipipe *p, kv_err *err);
/* Drain, stop and free; returns the first error of a stage. */
int ipipe_stop(ipipe *p, kv_err *err);

#endif
