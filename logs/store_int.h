/*
 * store_int.h — private to the logs module: the log_db struct and the
 * helpers that ingest.c, query.c and triage.c share with store.c. Not part
 * of the public API (that is logs.h).
 */
#ifndef KVASIR_LOGS_STORE_INT_H
#define KVASIR_LOGS_STORE_INT_H
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
};

int log_db_exec(log_db *db, const char *sql, kv_err *err);
int log_db_prepare(log_db *db, sqlite3_stmt **st, const char *sql, kv_err *err);
int log_db_miner(log_db *db, kv_err *err);
int log_db_save_miner(log_db *db, kv_err *err);
int log_db_sync_templates(log_db *db, kv_err *err);

#endif
