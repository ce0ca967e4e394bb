/*
 * internal.h — private to the logs module: what its parts share that is
 * not the public API (logs/logs.h).
 *
 *   1. sources and lines (source.c): decoded byte sources (plain, gzip,
 *      zstd, stdin) and a bounded line splitter;
 *   2. the store (store.c): the log_db struct and the helpers that
 *      ingest.c, query.c and triage.c share with it;
 *   3. the ingest stages after the reading thread (ingest_pipe.c): the
 *      mining stage and the writer stage, each a thread with a short queue.
 *
 *   reading (caller's thread)  bytes -> lines -> records         ingest.c
 *     -> log_rbatch -> mining stage: templates, blocks           ingest_pipe.c
 *     -> wbatch -> writer stage: compress, one transaction       ingest_pipe.c
 *
 * The stream of a log_rbatch is records plus markers: RR_FILE (the
 * following records belong to file `line`), RR_COMMIT (close the
 * transaction here; resume point off/line), RR_ABORT (drop what was not
 * committed: the reading side failed in a file). Order is kept end to end.
 *
 * Blocks (the unit of storage) have their own header, block_internal.h;
 * the template miner's structures are in mine_internal.h.
 */
#ifndef KVASIR_LOGS_INTERNAL_H
#define KVASIR_LOGS_INTERNAL_H
#include "logs/block_internal.h"
#include "logs/logs.h"

#include <sqlite3.h>

/* ---- 2. the store (store.c) ---- */

struct log_db {
  sqlite3 *db;
  char path[1024];
  log_miner *miner;        /* loaded lazily by log_db_miner() */
  uint32_t saved_patterns; /* patterns in the last saved miner */
  uint32_t *known;         /* pattern -> template last written */
  size_t known_cap;
  uint64_t *thash;         /* template -> hash of the text last written */
  size_t thash_cap;
  uint8_t *tmark;          /* scratch: templates referenced in one sync */
  size_t tmark_cap;
  /* query side: summaries of every block, in id order (log_db_sums) */
  log_blk_sum *sums;
  size_t nsums, sums_cap;
  ZSTD_DCtx *dc;
};

/* Pattern and template rows to write after a merge (computed on the ingest
 * thread, written by the writer thread in the batch's transaction). */
typedef struct log_tpl_ops {
  uint32_t *pairs; /* pattern, template */
  size_t npairs, cpairs;
  uint32_t *tid;
  char **txt;
  size_t nt, ct, ctxt;
} log_tpl_ops;

int log_db_exec(log_db *db, const char *sql, kv_err *err);
int log_db_prepare(log_db *db, sqlite3_stmt **st, const char *sql, kv_err *err);
int log_db_miner(log_db *db, kv_err *err);
int log_db_write_miner(log_db *db, const void *blob, size_t n, kv_err *err);
/* Forget what was written (after a failed ingest): the next sync rewrites. */
void log_db_forget(log_db *db);
int log_db_template_ops(log_db *db, log_tpl_ops *ops, kv_err *err);
int log_db_write_template_ops(log_db *db, const log_tpl_ops *ops, kv_err *err);
void log_tpl_ops_free(log_tpl_ops *o);
/* Load the summaries of blocks written since the last call. */
int log_db_sums(log_db *db, kv_err *err);
/* One read transaction around a query's many statements (one snapshot,
 * one lock): begin returns 1 if it started one, end commits it. */
int log_db_read_begin(log_db *db);
void log_db_read_end(log_db *db, int began);
/* Index in db->sums of the block holding record `id`, or -1. */
long log_db_block_of(const log_db *db, int64_t id);
/* pattern -> template for every pattern (caller frees); *n = array size. */
int log_db_pattern_map(log_db *db, uint32_t **map, size_t *n, kv_err *err);
/* Path of a file id into buf ("" if unknown). */
void log_db_file_path(log_db *db, int64_t file_id, char *buf, size_t n);

#include <zlib.h>

/* log_ts_parse with some LOG_R_TS_* formats switched off (ts.c). */
size_t log_ts_parse_rules(const char *s, size_t n, int year_hint, log_rules off_rules, int64_t *ms);
/* A weekday (1) or month (2) name as a whole word, else 0 (ts.c). */
int log_ts_calendar_word(const char *s, size_t n);

/* ---- 1. sources and lines (source.c) ---- */


enum { SRC_PLAIN = 1, SRC_GZ, SRC_ZST, SRC_STDIN };

typedef struct log_src {
  int kind, fd;
  gzFile gz;
  ZSTD_DCtx *z;
  uint8_t *zin;
  size_t zcap, zlen, zpos, zlast;
  int done, truncated, error;
} log_src;

int log_src_open(log_src *s, const char *path, kv_err *err);
void log_src_close(log_src *s);
long log_src_read(log_src *s, char *buf, size_t n);
int log_src_skip(log_src *s, uint64_t off);

typedef struct log_lines {
  log_src *s;
  char *buf;
  size_t cap, beg, end, max_line;
  uint64_t off; /* decoded offset of buf[beg] */
  int eof, skipping;
} log_lines;

int log_lines_init(log_lines *L, log_src *s, size_t max_line, uint64_t off, kv_err *err);
void log_lines_free(log_lines *L);
int log_lines_fill(log_lines *L);
/* Next line (without '\n'); *cut = 1 if it was longer than max_line. */
int log_lines_next(log_lines *L, const char **p, size_t *n, uint64_t *start, int *cut);

/* ---- 3. ingest stages (ingest_pipe.c) ---- */

enum { RR_REC = 0, RR_COMMIT, RR_FILE, RR_ABORT };

typedef struct log_rrec {
  uint8_t kind, level;
  int64_t ts, line, pid; /* RR_COMMIT: line = resume line; RR_FILE: line = file id */
  uint64_t off;          /* RR_COMMIT: resume offset */
  uint32_t text, tlen;   /* the record text: offset in the arena, length */
  uint32_t content, clen;
  uint32_t comp, complen; /* complen 0 = no component */
} log_rrec;

typedef struct log_rbatch {
  log_rrec *r;
  size_t n, cap;
  kv_buf arena;
} log_rbatch;

log_rbatch *log_rbatch_new(void);
void log_rbatch_free(log_rbatch *b);
/* A new entry at the end (zeroed, kind set), or NULL when out of memory. */
log_rrec *log_rbatch_add(log_rbatch *b, int kind);

typedef struct log_pipe log_pipe;

/* Start the mining and writer stages on db (its miner loaded). */
int log_pipe_start(log_pipe **out, log_db *db, kv_err *err);
/* An empty record batch (a recycled one when there is one), or NULL. */
log_rbatch *log_pipe_rbatch(log_pipe *p);
/* Hand over a batch (taken in all cases); waits while the queue is full.
 * Returns a stage's error once one has failed. */
int log_pipe_push(log_pipe *p, log_rbatch *b, kv_err *err);
/* Wait until everything handed over is written; the caller may then use
 * the connection until its next push. */
int log_pipe_drain(log_pipe *p, kv_err *err);
/* Drain, stop and free; returns the first error of a stage. */
int log_pipe_stop(log_pipe *p, kv_err *err);

#endif
