/*
 * store.h — private: the SQLite side of the index (schema in docs/index.md).
 * One idx_store = one connection. The writer connection is used only by the
 * syncing thread; readers open their own (read-only) connections. Every
 * write happens inside idx_store_begin/commit, so a killed process leaves
 * the last committed state, which is always consistent.
 */
#ifndef KVASIR_INDEXER_STORE_H
#define KVASIR_INDEXER_STORE_H

#include "parse_internal.h"

#include <sqlite3.h>

#define IDX_SCHEMA_VERSION 4

typedef struct idx_store idx_store;

typedef struct idx_blobinfo {
  int64_t id;
  char lang[16];
  uint64_t size;
  int skip, note;
} idx_blobinfo;

typedef struct idx_filerow {
  const char *path;
  const char *oid, *head_oid;  /* head_oid NULL: not in HEAD */
  const char *lang;
  uint64_t size;
  int skip, note, worktree;    /* worktree: 0 HEAD, 1 worktree content, 2 deleted in worktree */
  int64_t changed;
} idx_filerow;

int idx_store_open(idx_store **out, const char *path, int readonly, kv_err *err);
void idx_store_close(idx_store *s);
sqlite3 *idx_store_db(idx_store *s);

int idx_store_begin(idx_store *s, kv_err *err);
int idx_store_commit(idx_store *s, kv_err *err);

int idx_meta_get(idx_store *s, const char *key, char *buf, size_t n);  /* 0 or KV_ENOTFOUND */
int idx_meta_set(idx_store *s, const char *key, const char *val, kv_err *err);

/* 1 and *bi filled when the blob is known, 0 when not, <0 on error. */
int idx_blob_get(idx_store *s, const char *oid, idx_blobinfo *bi, kv_err *err);
/* Insert a blob with what parsing gave (r may be NULL for a skipped blob). */
/* Forget which identifiers this sync wrote (the end of a sync). */
void idx_store_forget(idx_store *s);
int idx_blob_put(idx_store *s, const char *oid, const char *lang, uint64_t size, int skip,
                 int note, const idx_parsed *r, uint64_t counts[3], kv_err *err);

int idx_file_put(idx_store *s, const idx_filerow *f, int64_t gen, kv_err *err);
int idx_file_del(idx_store *s, const char *path, kv_err *err);
int idx_file_set_changed(idx_store *s, const char *path, int64_t t, kv_err *err);

#endif
