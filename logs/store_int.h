/*
 * store_int.h — private to the logs module: the log_db struct and the
 * helpers that ingest.c, query.c and triage.c share with store.c. Not part
 * of the public API (that is logs.h).
 */
#ifndef KVASIR_LOGS_STORE_INT_H
#define KVASIR_LOGS_STORE_INT_H
#include "logs/block.h"
#include "logs/logs.h"

#include <sqlite3.h>

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
  blk_sum *sums;
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
  size_t nt, ct;
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

#endif
