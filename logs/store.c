/*
 * store.c — the SQLite store of one log database.
 *
 * Schema, version 2 (PRAGMA user_version):
 *   files(id, path UNIQUE, dev, inode, offset, head_len, head_hash, line_no,
 *         year, updated_ms)       — resume point of each ingested file: the
 *         byte offset of the first record not yet stored (in decompressed
 *         bytes for .gz/.zst), the line number there, and a hash of the
 *         first head_len (<= 4096) bytes to notice a replaced file.
 *   bsum(id, file_id, n, ts_min, ts_max, lvl_mask, summ, nbloom) and
 *   bdata(id, meta, data)         — the records, in blocks of up to 1024
 *         consecutive records of one file (format in block.c); record ids
 *         are global and consecutive, a block's id is its first record's.
 *         There is no per-record row and no per-record index: a query
 *         prunes blocks with their summaries (kept in memory) and decodes
 *         the rest.
 *   comps(id, name UNIQUE)        — component names (records hold the id).
   The parameter index is a bloom filter per block in its summary (the
 *         identifier-like variable values), so a parameter lookup decodes
 *         only the blocks that (probably) hold the value.
 *   patterns(id, template_id)     — exact masked sequence -> template; the
 *         mapping changes when the miner merges, records never do.
 *   templates(id, text)  + templates_fts(text) (FTS5 trigram, rowid = id).
 *   meta(key, value)              — 'miner': the serialised miner (blob).
 * Version 1 (a row and two index entries per record, text in the row) is
 * not read: such a store is refused with a message to ingest again.
 * A log_db is used by one thread at a time (SQLITE_OPEN_NOMUTEX); during an
 * ingest the writer thread owns it while the parsing thread waits for it
 * (ingest.c). Invariant: blocks, patterns, templates, the miner blob and
 * the files resume point are written in the same transaction, so a crash
 * at any point leaves a store whose resume points match its records.
 */
#include "logs/internal.h"

#include "logs/logs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *SCHEMA =
    "PRAGMA page_size=16384;"
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=NORMAL;"
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value BLOB);"
    "CREATE TABLE IF NOT EXISTS files(id INTEGER PRIMARY KEY, path TEXT UNIQUE NOT NULL, dev INTEGER,"
    " inode INTEGER, offset INTEGER NOT NULL DEFAULT 0, head_len INTEGER NOT NULL DEFAULT 0,"
    " head_hash INTEGER NOT NULL DEFAULT 0, line_no INTEGER NOT NULL DEFAULT 0, year INTEGER,"
    " updated_ms INTEGER);"
    "CREATE TABLE IF NOT EXISTS bsum(id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, n INTEGER NOT NULL,"
    " ts_min INTEGER NOT NULL, ts_max INTEGER NOT NULL, lvl_mask INTEGER NOT NULL, summ BLOB NOT NULL, nbloom BLOB);"
    "CREATE TABLE IF NOT EXISTS bdata(id INTEGER PRIMARY KEY, meta BLOB NOT NULL, data BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS comps(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL);"
    "CREATE TABLE IF NOT EXISTS patterns(id INTEGER PRIMARY KEY, template_id INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS patterns_template ON patterns(template_id);"
    "CREATE TABLE IF NOT EXISTS templates(id INTEGER PRIMARY KEY, text TEXT NOT NULL);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS templates_fts USING fts5(text, tokenize='trigram');"
    "PRAGMA user_version=2;";

int log_db_path(char *buf, size_t n, const char *name, kv_err *err) {
  char dir[1024];
  if (!name || !*name || strchr(name, '/') || !strcmp(name, "..") || !strcmp(name, "."))
    return kv_err_set(err, KV_EINVAL, "logs: bad database name '%s' (no '/', not empty)", name ? name : "");
  if (kv_xdg_dir(dir, sizeof dir, "data")) return kv_err_set(err, KV_ELIMIT, "logs: XDG data path too long");
  int k = snprintf(buf, n, "%s/logs/%s.db", dir, name);
  if (k < 0 || (size_t)k >= n) return kv_err_set(err, KV_ELIMIT, "logs: database path too long");
  char d2[1100];
  snprintf(d2, sizeof d2, "%s/logs", dir);
  return kv_mkdirs(d2, 0700, err);
}

static int sqlerr(log_db *db, kv_err *err, const char *what) {
  return kv_err_set(err, KV_EIO, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->db));
}

int log_db_exec(log_db *db, const char *sql, kv_err *err) {
  char *msg = NULL;
  if (sqlite3_exec(db->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = kv_err_set(err, KV_EIO, "%s: %s", db->path, msg ? msg : "sqlite error");
    sqlite3_free(msg);
    return rc;
  }
  return 0;
}

int log_db_prepare(log_db *db, sqlite3_stmt **st, const char *sql, kv_err *err) {
  if (sqlite3_prepare_v2(db->db, sql, -1, st, NULL) != SQLITE_OK) return sqlerr(db, err, sql);
  return 0;
}

int log_db_open(log_db **out, const char *path, kv_err *err) {
  log_db *db = calloc(1, sizeof *db);
  if (!db) return kv_err_set(err, KV_ENOMEM, "logs: out of memory opening %s", path);
  snprintf(db->path, sizeof db->path, "%s", path);
  if (sqlite3_open_v2(path, &db->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    int rc = kv_err_set(err, KV_EIO, "%s: cannot open: %s", path, db->db ? sqlite3_errmsg(db->db) : "?");
    sqlite3_close(db->db);
    free(db);
    return rc;
  }
  sqlite3_busy_timeout(db->db, 5000);
  int rc = 0, ver = 0;
  sqlite3_stmt *vs;
  if (sqlite3_prepare_v2(db->db, "PRAGMA user_version", -1, &vs, NULL) == SQLITE_OK) {
    if (sqlite3_step(vs) == SQLITE_ROW) ver = sqlite3_column_int(vs, 0);
    sqlite3_finalize(vs);
  }
  if (ver != 0 && ver != 2)
    rc = kv_err_set(err, KV_EUNSUPPORTED,
                    "%s: store format %d is not read by this version (format 2): delete it and ingest again", path, ver);
  if (!rc) rc = log_db_exec(db, SCHEMA, err);
  if (rc) {
    log_db_close(db);
    return rc;
  }
  *out = db;
  return 0;
}

void log_db_close(log_db *db) {
  if (!db) return;
  log_miner_free(db->miner);
  free(db->known);
  free(db->thash);
  free(db->tmark);
  for (size_t i = 0; i < db->nsums; i++) log_blk_sum_free(&db->sums[i]);
  free(db->sums);
  ZSTD_freeDCtx(db->dc);
  sqlite3_close(db->db);
  free(db);
}

int log_db_miner(log_db *db, kv_err *err) {
  if (db->miner) return 0;
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, "SELECT value FROM meta WHERE key='miner'", err);
  if (rc) return rc;
  if (sqlite3_step(st) == SQLITE_ROW) {
    const void *b = sqlite3_column_blob(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    rc = log_miner_load(&db->miner, b, (size_t)n, err);
    if (rc) kv_err_set(err, rc, "%s: meta 'miner': %s", db->path, err ? err->msg : "");
  } else {
    rc = log_miner_new(&db->miner, NULL, err);
  }
  sqlite3_finalize(st);
  if (!rc) db->saved_patterns = log_miner_patterns(db->miner);
  return rc;
}

int log_db_write_miner(log_db *db, const void *b, size_t n, kv_err *err) {
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, "INSERT OR REPLACE INTO meta(key, value) VALUES('miner', ?)", err);
  if (rc) return rc;
  sqlite3_bind_blob(st, 1, b, (int)n, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE) rc = sqlerr(db, err, "saving the miner");
  sqlite3_finalize(st);
  return rc;
}

void log_db_forget(log_db *db) {
  if (db->known) memset(db->known, 0, db->known_cap * sizeof *db->known);
  if (db->thash) memset(db->thash, 0, db->thash_cap * sizeof *db->thash);
  log_miner_free(db->miner); /* reloaded from what was committed */
  db->miner = NULL;
}

/* After a merge: the rows of every pattern whose template changed, and the
 * text of every template some pattern points to whose text changed. `known`
 * is the per-pattern template last handed out (grown here). */
static int ops_pair(log_tpl_ops *o, uint32_t p, uint32_t t) {
  if (KV_GROW(o->pairs, o->cpairs, o->npairs + 2)) return KV_ENOMEM;
  o->pairs[o->npairs++] = p;
  o->pairs[o->npairs++] = t;
  return 0;
}

static int ops_text(log_tpl_ops *o, uint32_t t, const char *txt) {
  if (KV_GROW(o->tid, o->ct, o->nt + 1) || KV_GROW(o->txt, o->ctxt, o->nt + 1)) return KV_ENOMEM;
  char *d = strdup(txt);
  if (!d) return KV_ENOMEM;
  o->tid[o->nt] = t, o->txt[o->nt++] = d;
  return 0;
}

void log_tpl_ops_free(log_tpl_ops *o) {
  for (size_t i = 0; i < o->nt; i++) free(o->txt[i]);
  free(o->pairs), free(o->tid), free(o->txt);
  memset(o, 0, sizeof *o);
}

int log_db_template_ops(log_db *db, log_tpl_ops *ops, kv_err *err) {
  log_miner *m = db->miner;
  uint32_t np = log_miner_patterns(m);
  size_t oldk = db->known_cap;
  if (KV_GROW(db->known, db->known_cap, (size_t)np + 1)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  memset(db->known + oldk, 0, (db->known_cap - oldk) * sizeof *db->known);
  uint32_t nt = log_miner_count(m);
  size_t oldh = db->thash_cap;
  if (KV_GROW(db->thash, db->thash_cap, (size_t)nt + 1)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  memset(db->thash + oldh, 0, (db->thash_cap - oldh) * sizeof *db->thash);
  if (KV_GROW(db->tmark, db->tmark_cap, (size_t)nt + 1)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  memset(db->tmark, 0, nt + 1);
  for (uint32_t p = 1; p <= np; p++) {
    uint32_t t = log_miner_resolve(m, p);
    if (t <= nt) db->tmark[t] = 1;
    if (db->known[p] == t) continue;
    if (ops_pair(ops, p, t)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    db->known[p] = t;
  }
  for (uint32_t t = 1; t <= nt; t++) {
    if (!db->tmark[t]) continue;
    const char *txt = log_miner_template(m, t);
    uint64_t h = kv_hash64_str(txt) | 1;
    if (db->thash[t] == h) continue;
    db->thash[t] = h;
    if (ops_text(ops, t, txt)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  }
  return 0;
}

int log_db_write_template_ops(log_db *db, const log_tpl_ops *o, kv_err *err) {
  if (!o->npairs && !o->nt) return 0;
  sqlite3_stmt *sp = NULL, *st = NULL, *fd = NULL, *fi = NULL;
  int rc = log_db_prepare(db, &sp, "INSERT OR REPLACE INTO patterns(id, template_id) VALUES(?, ?)", err);
  if (!rc) rc = log_db_prepare(db, &st, "INSERT OR REPLACE INTO templates(id, text) VALUES(?, ?)", err);
  if (!rc) rc = log_db_prepare(db, &fd, "DELETE FROM templates_fts WHERE rowid = ?", err);
  if (!rc) rc = log_db_prepare(db, &fi, "INSERT INTO templates_fts(rowid, text) VALUES(?, ?)", err);
  for (size_t i = 0; i + 1 < o->npairs && !rc; i += 2) {
    sqlite3_bind_int64(sp, 1, o->pairs[i]);
    sqlite3_bind_int64(sp, 2, o->pairs[i + 1]);
    if (sqlite3_step(sp) != SQLITE_DONE) rc = sqlerr(db, err, "writing patterns");
    sqlite3_reset(sp);
  }
  for (size_t i = 0; i < o->nt && !rc; i++) {
    sqlite3_bind_int64(st, 1, o->tid[i]);
    sqlite3_bind_text(st, 2, o->txt[i], -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) rc = sqlerr(db, err, "writing templates");
    sqlite3_reset(st);
    sqlite3_bind_int64(fd, 1, o->tid[i]);
    if (!rc && sqlite3_step(fd) != SQLITE_DONE) rc = sqlerr(db, err, "writing templates_fts");
    sqlite3_reset(fd);
    sqlite3_bind_int64(fi, 1, o->tid[i]);
    sqlite3_bind_text(fi, 2, o->txt[i], -1, SQLITE_STATIC);
    if (!rc && sqlite3_step(fi) != SQLITE_DONE) rc = sqlerr(db, err, "writing templates_fts");
    sqlite3_reset(fi);
  }
  sqlite3_finalize(sp);
  sqlite3_finalize(st);
  sqlite3_finalize(fd);
  sqlite3_finalize(fi);
  return rc;
}

/* ---- query side ------------------------------------------------------------ */

int log_db_sums(log_db *db, kv_err *err) {
  int64_t after = db->nsums ? db->sums[db->nsums - 1].id : 0;
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, "SELECT id, file_id, n, ts_min, ts_max, lvl_mask, summ FROM bsum WHERE id > ? ORDER BY id", err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, after);
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (KV_GROW(db->sums, db->sums_cap, db->nsums + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory loading block summaries");
      break;
    }
    log_blk_sum *b = &db->sums[db->nsums];
    memset(b, 0, sizeof *b);
    b->id = sqlite3_column_int64(st, 0);
    b->file_id = sqlite3_column_int64(st, 1);
    int64_t n = sqlite3_column_int64(st, 2);
    b->ts_min = sqlite3_column_int64(st, 3);
    b->ts_max = sqlite3_column_int64(st, 4);
    b->lvl_mask = (uint32_t)sqlite3_column_int64(st, 5) & 0xff;
    if (n < 1 || n > BLK_MAX) {
      rc = kv_err_set(err, KV_EFORMAT, "%s: bsum %lld: bad record count %lld", db->path, (long long)b->id, (long long)n);
      break;
    }
    b->n = (uint32_t)n;
    if ((rc = log_blk_sum_decode(b, sqlite3_column_blob(st, 6), (size_t)sqlite3_column_bytes(st, 6), err))) break;
    db->nsums++;
  }
  if (!rc && s != SQLITE_DONE) rc = sqlerr(db, err, "reading block summaries");
  sqlite3_finalize(st);
  if (!rc && !db->dc && !(db->dc = ZSTD_createDCtx())) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  return rc;
}

int log_db_read_begin(log_db *db) {
  if (!sqlite3_get_autocommit(db->db)) return 0;
  return sqlite3_exec(db->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

void log_db_read_end(log_db *db, int began) {
  if (began) sqlite3_exec(db->db, "COMMIT", NULL, NULL, NULL);
}

long log_db_block_of(const log_db *db, int64_t id) {
  size_t lo = 0, hi = db->nsums;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (db->sums[mid].id <= id) lo = mid + 1;
    else hi = mid;
  }
  if (lo == 0) return -1;
  const log_blk_sum *b = &db->sums[lo - 1];
  return id < b->id + b->n ? (long)(lo - 1) : -1;
}

int log_db_pattern_map(log_db *db, uint32_t **map, size_t *n, kv_err *err) {
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, "SELECT coalesce(max(id), 0) FROM patterns", err);
  if (rc) return rc;
  int64_t mx = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
  sqlite3_finalize(st);
  if (mx < 0 || mx > (1 << 28)) return kv_err_set(err, KV_EFORMAT, "%s: patterns: bad id %lld", db->path, (long long)mx);
  *n = (size_t)mx + 1;
  *map = calloc(*n, sizeof **map);
  if (!*map) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  if ((rc = log_db_prepare(db, &st, "SELECT id, template_id FROM patterns", err))) {
    free(*map);
    *map = NULL;
    return rc;
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t p = sqlite3_column_int64(st, 0), t = sqlite3_column_int64(st, 1);
    if (p >= 0 && p <= mx && t >= 0 && t <= UINT32_MAX) (*map)[p] = (uint32_t)t;
  }
  sqlite3_finalize(st);
  return 0;
}

void log_db_file_path(log_db *db, int64_t file_id, char *buf, size_t n) {
  sqlite3_stmt *st;
  if (n) buf[0] = 0;
  if (sqlite3_prepare_v2(db->db, "SELECT path FROM files WHERE id = ?", -1, &st, NULL) != SQLITE_OK) return;
  sqlite3_bind_int64(st, 1, file_id);
  if (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char *p = sqlite3_column_text(st, 0);
    snprintf(buf, n, "%s", p ? (const char *)p : "");
  }
  sqlite3_finalize(st);
}
