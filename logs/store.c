/*
 * store.c — the SQLite store of one log database.
 *
 * Schema, version 1 (PRAGMA user_version):
 *   files(id, path UNIQUE, dev, inode, offset, head_len, head_hash, line_no,
 *         year, updated_ms)       — resume point of each ingested file: the
 *         byte offset of the first record not yet stored (in decompressed
 *         bytes for .gz/.zst), the line number there, and a hash of the
 *         first head_len (<= 4096) bytes to notice a replaced file.
 *   records(id, file_id, line_no, ts, level, component, pid, pattern_id,
 *           text, params)         — one per record (a header line plus its
 *         continuation lines); params = "\x1f"-joined variable values with
 *         leading and trailing "\x1f" so instr() finds exact values.
 *   params_fts(params)            — contentless FTS5 (rowid = record id) over
 *         the variable values, each value one token where possible
 *         (tokenchars . : - _ / @ +), so a parameter lookup is an index hit.
 *   patterns(id, template_id)     — exact masked sequence -> template; the
 *         mapping changes when the miner merges, records never do.
 *   templates(id, text)  + templates_fts(text) (FTS5 trigram, rowid = id).
 *   meta(key, value)              — 'miner': the serialised miner (blob).
 * A log_db is used by one thread at a time (SQLITE_OPEN_NOMUTEX): the daemon
 * runs each store's work on one worker.
 * Invariant: records, patterns, templates, the miner blob and the files
 * resume point are written in the same transaction, so a crash at any point
 * leaves a store whose resume points match its records exactly.
 */
#include "logs/store_int.h"

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
    "CREATE TABLE IF NOT EXISTS records(id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, line_no INTEGER NOT NULL,"
    " ts INTEGER, level INTEGER NOT NULL, component TEXT, pid INTEGER, pattern_id INTEGER NOT NULL,"
    " text TEXT NOT NULL, params TEXT);"
    "CREATE INDEX IF NOT EXISTS records_ts ON records(ts);"
    "CREATE INDEX IF NOT EXISTS records_pattern ON records(pattern_id);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS params_fts USING fts5(params, content='', detail=none,"
    " tokenize=\"unicode61 tokenchars '.:-_/@+'\");"
    "CREATE TABLE IF NOT EXISTS patterns(id INTEGER PRIMARY KEY, template_id INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS patterns_template ON patterns(template_id);"
    "CREATE TABLE IF NOT EXISTS templates(id INTEGER PRIMARY KEY, text TEXT NOT NULL);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS templates_fts USING fts5(text, tokenize='trigram');"
    "PRAGMA user_version=1;";

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
  int rc = log_db_exec(db, SCHEMA, err);
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

int log_db_save_miner(log_db *db, kv_err *err) {
  void *b;
  size_t n;
  int rc = log_miner_save(db->miner, &b, &n, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  if ((rc = log_db_prepare(db, &st, "INSERT OR REPLACE INTO meta(key, value) VALUES('miner', ?)", err))) {
    free(b);
    return rc;
  }
  sqlite3_bind_blob(st, 1, b, (int)n, SQLITE_TRANSIENT);
  if (sqlite3_step(st) != SQLITE_DONE) rc = sqlerr(db, err, "saving the miner");
  sqlite3_finalize(st);
  free(b);
  return rc;
}

/* After a merge: write every pattern whose template changed, and the text
 * of every template some pattern points to whose text changed. `known` is
 * the per-pattern template last written (grown here). */
int log_db_sync_templates(log_db *db, kv_err *err) {
  log_miner *m = db->miner;
  uint32_t np = log_miner_patterns(m);
  if (np + 1 > db->known_cap) {
    size_t nc = (np + 1) * 2;
    uint32_t *nk = realloc(db->known, nc * sizeof *nk);
    if (!nk) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    memset(nk + db->known_cap, 0, (nc - db->known_cap) * sizeof *nk);
    db->known = nk;
    db->known_cap = nc;
  }
  uint32_t nt = log_miner_count(m);
  if (nt + 1 > db->thash_cap) {
    size_t nc = (nt + 1) * 2;
    uint64_t *nh = realloc(db->thash, nc * sizeof *nh);
    if (!nh) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    memset(nh + db->thash_cap, 0, (nc - db->thash_cap) * sizeof *nh);
    db->thash = nh;
    db->thash_cap = nc;
  }
  sqlite3_stmt *sp = NULL, *st = NULL, *fd = NULL, *fi = NULL;
  int rc = log_db_prepare(db, &sp, "INSERT OR REPLACE INTO patterns(id, template_id) VALUES(?, ?)", err);
  if (!rc) rc = log_db_prepare(db, &st, "INSERT OR REPLACE INTO templates(id, text) VALUES(?, ?)", err);
  if (!rc) rc = log_db_prepare(db, &fd, "DELETE FROM templates_fts WHERE rowid = ?", err);
  if (!rc) rc = log_db_prepare(db, &fi, "INSERT INTO templates_fts(rowid, text) VALUES(?, ?)", err);
  if (nt + 1 > db->tmark_cap) {
    size_t nc = (nt + 1) * 2;
    uint8_t *nm = realloc(db->tmark, nc);
    if (!nm) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    else db->tmark = nm, db->tmark_cap = nc;
  }
  if (!rc) memset(db->tmark, 0, nt + 1);
  for (uint32_t p = 1; p <= np && !rc; p++) {
    uint32_t t = log_miner_resolve(m, p);
    if (t <= nt) db->tmark[t] = 1;
    if (db->known[p] == t) continue;
    sqlite3_bind_int64(sp, 1, p);
    sqlite3_bind_int64(sp, 2, t);
    if (sqlite3_step(sp) != SQLITE_DONE) rc = sqlerr(db, err, "writing patterns");
    sqlite3_reset(sp);
    db->known[p] = t;
  }
  for (uint32_t t = 1; t <= nt && !rc; t++) {
    if (!db->tmark[t]) continue;
    const char *txt = log_miner_template(m, t);
    uint64_t h = 1469598103934665603ULL;
    for (const char *c = txt; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    h |= 1;
    if (db->thash[t] == h) continue;
    db->thash[t] = h;
    sqlite3_bind_int64(st, 1, t);
    sqlite3_bind_text(st, 2, txt, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) != SQLITE_DONE) rc = sqlerr(db, err, "writing templates");
    sqlite3_reset(st);
    sqlite3_bind_int64(fd, 1, t);
    if (sqlite3_step(fd) != SQLITE_DONE) rc = sqlerr(db, err, "writing templates_fts");
    sqlite3_reset(fd);
    sqlite3_bind_int64(fi, 1, t);
    sqlite3_bind_text(fi, 2, txt, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(fi) != SQLITE_DONE) rc = sqlerr(db, err, "writing templates_fts");
    sqlite3_reset(fi);
  }
  sqlite3_finalize(sp);
  sqlite3_finalize(st);
  sqlite3_finalize(fd);
  sqlite3_finalize(fi);
  return rc;
}
