/*
 * store.c — schema, migrations and the write path of the index (store.h).
 *
 * Invariants: a blob row and all its symbols/refs/chunks (and their FTS
 * entries) are written in one transaction, so a blob present in `blobs` is
 * complete; `blobs.oid` and `files.path` are unique, so re-running a sync
 * after a crash can never duplicate rows. The schema version lives in
 * PRAGMA user_version: a new database gets the current schema at once, an
 * older one runs the upgrades in order, all inside one transaction.
 */
#include "store_internal.h"

#include "parse_internal.h"

#include <stdlib.h>
#include <string.h>

struct idx_store {
  sqlite3 *db;
  sqlite3_stmt *blob_get, *blob_put, *sym_put, *ref_put, *chunk_put, *fts_put, *ident_put,
      *tri_put, *file_put, *file_del, *file_changed, *meta_get, *meta_set;
  /* identifiers written by this sync (idx_store_forget), by 64-bit hash:
   * open addressing, 0 = empty. Two identifiers sharing a hash (odds about
   * n^2 / 2^65: 1e-9 for Django's 150k) would leave the second out of
   * idents, so grep could miss it; strings would cost the writer 10%. */
  uint64_t *seen;
  size_t nseen, capseen;
};

/* 1 if h was added, 0 if present, KV_ENOMEM. */
static int seen_add(idx_store *s, uint64_t h) {
  if (h == 0) h = 1;
  if ((s->nseen + 1) * 2 > s->capseen) {
    size_t nc = s->capseen ? s->capseen * 2 : 4096;
    uint64_t *nv = calloc(nc, sizeof *nv);
    if (!nv) return KV_ENOMEM;
    for (size_t i = 0; i < s->capseen; i++)
      if (s->seen[i]) {
        size_t j = (size_t)s->seen[i] & (nc - 1);
        while (nv[j]) j = (j + 1) & (nc - 1);
        nv[j] = s->seen[i];
      }
    free(s->seen);
    s->seen = nv;
    s->capseen = nc;
  }
  size_t j = (size_t)h & (s->capseen - 1);
  while (s->seen[j]) {
    if (s->seen[j] == h) return 0;
    j = (j + 1) & (s->capseen - 1);
  }
  s->seen[j] = h;
  s->nseen++;
  return 1;
}

/* The derived tables of schema version 2 (the 1 -> 2 step creates them). */
#define DERIVED_TABLES_V2 \
  "CREATE TABLE symbols(id INTEGER PRIMARY KEY, blob INTEGER NOT NULL, name TEXT NOT NULL," \
  " kind TEXT, scope TEXT, sig TEXT, line0 INTEGER, line1 INTEGER);" \
  "CREATE INDEX symbols_name ON symbols(name);" \
  "CREATE TABLE refs(blob INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT, line INTEGER);" \
  "CREATE TABLE chunks(id INTEGER PRIMARY KEY, blob INTEGER NOT NULL, line0 INTEGER," \
  " line1 INTEGER, symbol TEXT, text TEXT, sub TEXT, defs TEXT);" \
  "CREATE INDEX chunks_blob ON chunks(blob);" \
  "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, sub, defs, content='chunks'," \
  " content_rowid='id', detail='column', tokenize=\"porter unicode61 tokenchars '_'\");" \
  "CREATE VIRTUAL TABLE chunks_tri USING fts5(idents, content='', tokenize='trigram'," \
  " detail='none');"

/* The derived tables of the current schema (everything a blob's parse
 * produces). `idents` holds every distinct identifier of the index once, and
 * idents_tri its trigrams: grep finds the identifiers holding a needle there,
 * then their chunks through chunks_fts (a trigram row per chunk cost the
 * writer more than all the rest of SQLite together). */
#define DERIVED_TABLES \
  "CREATE TABLE symbols(id INTEGER PRIMARY KEY, blob INTEGER NOT NULL, name TEXT NOT NULL," \
  " kind TEXT, scope TEXT, sig TEXT, line0 INTEGER, line1 INTEGER);" \
  "CREATE INDEX symbols_name ON symbols(name);" \
  "CREATE INDEX symbols_blob ON symbols(blob, line0);" \
  "CREATE TABLE refs(blob INTEGER NOT NULL, name TEXT NOT NULL, kind TEXT, line INTEGER);" \
  "CREATE TABLE chunks(id INTEGER PRIMARY KEY, blob INTEGER NOT NULL, line0 INTEGER," \
  " line1 INTEGER, symbol TEXT, text TEXT, sub TEXT, defs TEXT);" \
  "CREATE INDEX chunks_blob ON chunks(blob);" \
  "CREATE VIRTUAL TABLE chunks_fts USING fts5(text, sub, defs, content='chunks'," \
  " content_rowid='id', detail='column', tokenize=\"porter unicode61 tokenchars '_'\");" \
  "CREATE TABLE idents(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);" \
  "CREATE VIRTUAL TABLE idents_tri USING fts5(name, content='', tokenize='trigram', detail='none');"

/* A new database gets the current schema in one step. */
static const char schema_current[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;"
    "CREATE TABLE blobs(id INTEGER PRIMARY KEY, oid TEXT NOT NULL UNIQUE, lang TEXT,"
    " size INTEGER, skip INTEGER, note INTEGER, nlines INTEGER);"
    "CREATE TABLE files(path TEXT PRIMARY KEY, oid TEXT NOT NULL, head_oid TEXT, lang TEXT,"
    " size INTEGER, skip INTEGER, note INTEGER, worktree INTEGER, changed INTEGER, gen INTEGER);"
    "CREATE INDEX files_oid ON files(oid);" DERIVED_TABLES;

/* upgrades[v - 1] takes an existing database from version v to v + 1. */
static const char *const upgrades[] = {
    /* 1 -> 2: chunks gained `defs` (definition names for ranking), the FTS
     * table indexes it with detail='column', the trigram table holds
     * identifiers (contentless). The derived data is rebuilt: blobs, files
     * and meta are cleared so the next sync parses everything again. */
    "DROP TABLE IF EXISTS chunks_fts; DROP TABLE IF EXISTS chunks_tri;"
    "DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS symbols; DROP TABLE IF EXISTS refs;"
    "DELETE FROM blobs; DELETE FROM files; DELETE FROM meta;" DERIVED_TABLES_V2,
    /* 2 -> 3: search's second stage (rank.c) reads the definitions of each
     * candidate chunk by blob and line; the data is kept. */
    "CREATE INDEX IF NOT EXISTS symbols_blob ON symbols(blob, line0);",
    /* 3 -> 4: the per-chunk trigram table gives way to one row per distinct
     * identifier (idents, idents_tri). Rebuilt like 1 -> 2: the next sync
     * parses everything again. */
    "DROP TABLE IF EXISTS chunks_fts; DROP TABLE IF EXISTS chunks_tri;"
    "DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS symbols; DROP TABLE IF EXISTS refs;"
    "DROP TABLE IF EXISTS idents; DROP TABLE IF EXISTS idents_tri;"
    "DELETE FROM blobs; DELETE FROM files; DELETE FROM meta;" DERIVED_TABLES,
};
#define NUPGRADES (sizeof upgrades / sizeof upgrades[0])
_Static_assert(NUPGRADES + 1 == IDX_SCHEMA_VERSION, "one upgrade per version step");

static int db_err(sqlite3 *db, kv_err *err, const char *what) {
  return kv_err_set(err, KV_EIO, "index: %s: %s", what, db ? sqlite3_errmsg(db) : "no database");
}

static int prep(idx_store *s, sqlite3_stmt **st, const char *sql, kv_err *err) {
  if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
    return db_err(s->db, err, sql);
  return 0;
}

static int migrate(idx_store *s, const char *path, kv_err *err) {
  sqlite3_stmt *st;
  int v = 0;
  if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
    return db_err(s->db, err, path);
  if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  if (v > IDX_SCHEMA_VERSION)
    return kv_err_set(err, KV_EUNSUPPORTED,
                      "%s: index schema version %d is newer than this kvasir's (%d)", path, v,
                      IDX_SCHEMA_VERSION);
  if (v == IDX_SCHEMA_VERSION) return 0;
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return db_err(s->db, err, path);
  for (int i = v; i < IDX_SCHEMA_VERSION; i = i ? i + 1 : IDX_SCHEMA_VERSION) {
    char *msg = NULL;
    const char *sql = i == 0 ? schema_current : upgrades[i - 1];
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
      kv_err_set(err, KV_EIO, "%s: migration %d -> %d failed: %s", path, i,
                 i ? i + 1 : IDX_SCHEMA_VERSION, msg ? msg : "?");
      sqlite3_free(msg);
      sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
      return KV_EIO;
    }
  }
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version=%d", IDX_SCHEMA_VERSION);
  if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return db_err(s->db, err, path);
  }
  return 0;
}

int idx_store_open(idx_store **out, const char *path, int readonly, kv_err *err) {
  idx_store *s = calloc(1, sizeof *s);
  if (!s) return kv_err_set(err, KV_ENOMEM, "index: out of memory");
  int fl = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (sqlite3_open_v2(path, &s->db, fl | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
    int rc = db_err(s->db, err, path);
    idx_store_close(s);
    return rc;
  }
  sqlite3_busy_timeout(s->db, 10000);
  int rc = 0;
  if (!readonly) {
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA cache_size=-65536;", NULL, NULL,
                     NULL) != SQLITE_OK)
      rc = db_err(s->db, err, path);
    if (!rc) rc = migrate(s, path, err);
    if (!rc) rc = prep(s, &s->blob_put, "INSERT INTO blobs(oid,lang,size,skip,note,nlines) VALUES(?,?,?,?,?,?)", err);
    if (!rc) rc = prep(s, &s->sym_put, "INSERT INTO symbols(blob,name,kind,scope,sig,line0,line1) VALUES(?,?,?,?,?,?,?)", err);
    if (!rc) rc = prep(s, &s->ref_put, "INSERT INTO refs(blob,name,kind,line) VALUES(?,?,?,?)", err);
    if (!rc) rc = prep(s, &s->chunk_put, "INSERT INTO chunks(blob,line0,line1,symbol,text,sub,defs) VALUES(?,?,?,?,?,?,?)", err);
    if (!rc) rc = prep(s, &s->fts_put, "INSERT INTO chunks_fts(rowid,text,sub,defs) VALUES(?,?,?,?)", err);
    if (!rc) rc = prep(s, &s->ident_put, "INSERT OR IGNORE INTO idents(name) VALUES(?)", err);
    if (!rc) rc = prep(s, &s->tri_put, "INSERT INTO idents_tri(rowid,name) VALUES(?,?)", err);
    if (!rc) rc = prep(s, &s->file_put,
                       "INSERT INTO files(path,oid,head_oid,lang,size,skip,note,worktree,changed,gen)"
                       " VALUES(?,?,?,?,?,?,?,?,?,?) ON CONFLICT(path) DO UPDATE SET oid=excluded.oid,"
                       " head_oid=excluded.head_oid, lang=excluded.lang, size=excluded.size,"
                       " skip=excluded.skip, note=excluded.note, worktree=excluded.worktree,"
                       " changed=CASE WHEN excluded.changed>0 THEN excluded.changed ELSE files.changed END,"
                       " gen=excluded.gen", err);
    if (!rc) rc = prep(s, &s->file_del, "DELETE FROM files WHERE path=?", err);
    if (!rc) rc = prep(s, &s->file_changed, "UPDATE files SET changed=? WHERE path=?", err);
    if (!rc) rc = prep(s, &s->meta_set, "INSERT OR REPLACE INTO meta(key,value) VALUES(?,?)", err);
  } else {
    int v = 0;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
      if (sqlite3_step(st) == SQLITE_ROW) v = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
    }
    if (v != IDX_SCHEMA_VERSION)
      rc = kv_err_set(err, KV_EFORMAT, "%s: index schema version %d, expected %d", path, v,
                      IDX_SCHEMA_VERSION);
  }
  if (!rc) rc = prep(s, &s->blob_get, "SELECT id,lang,size,skip,note FROM blobs WHERE oid=?", err);
  if (!rc) rc = prep(s, &s->meta_get, "SELECT value FROM meta WHERE key=?", err);
  if (rc) {
    idx_store_close(s);
    return rc;
  }
  *out = s;
  return 0;
}

void idx_store_close(idx_store *s) {
  if (!s) return;
  sqlite3_stmt *all[] = {s->blob_get, s->blob_put, s->sym_put, s->ref_put, s->chunk_put,
                         s->fts_put, s->ident_put, s->tri_put, s->file_put, s->file_del,
                         s->file_changed, s->meta_get, s->meta_set};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) sqlite3_finalize(all[i]);
  free(s->seen);
  sqlite3_close(s->db);
  free(s);
}

sqlite3 *idx_store_db(idx_store *s) { return s->db; }

int idx_store_begin(idx_store *s, kv_err *err) {
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
    return db_err(s->db, err, "begin");
  return 0;
}

int idx_store_commit(idx_store *s, kv_err *err) {
  if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
    int rc = db_err(s->db, err, "commit");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
  }
  return 0;
}

int idx_meta_get(idx_store *s, const char *key, char *buf, size_t n) {
  sqlite3_stmt *st = s->meta_get;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  int rc = KV_ENOTFOUND;
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    snprintf(buf, n, "%s", (const char *)sqlite3_column_text(st, 0));
    rc = 0;
  }
  sqlite3_reset(st);
  return rc;
}

static int step_done(idx_store *s, sqlite3_stmt *st, kv_err *err, const char *what) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_err(s->db, err, what);
  return 0;
}

int idx_meta_set(idx_store *s, const char *key, const char *val, kv_err *err) {
  sqlite3_bind_text(s->meta_set, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(s->meta_set, 2, val, -1, SQLITE_STATIC);
  return step_done(s, s->meta_set, err, "meta");
}

int idx_blob_get(idx_store *s, const char *oid, idx_blobinfo *bi, kv_err *err) {
  sqlite3_stmt *st = s->blob_get;
  sqlite3_reset(st);
  sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) {
    bi->id = sqlite3_column_int64(st, 0);
    const unsigned char *l = sqlite3_column_text(st, 1);
    snprintf(bi->lang, sizeof bi->lang, "%s", l ? (const char *)l : "");
    bi->size = (uint64_t)sqlite3_column_int64(st, 2);
    bi->skip = sqlite3_column_int(st, 3);
    bi->note = sqlite3_column_int(st, 4);
    sqlite3_reset(st);
    return 1;
  }
  sqlite3_reset(st);
  if (rc != SQLITE_DONE) return db_err(s->db, err, "blob lookup");
  return 0;
}

/* The blob's distinct identifiers (space-separated) into idents and its
 * trigram table, each identifier once per index: the set skips the ones
 * this sync already wrote, INSERT OR IGNORE the ones earlier syncs did. */
static int put_idents(idx_store *s, const char *ids, size_t n, kv_err *err) {
  char w[256];
  for (size_t i = 0; i < n;) {
    while (i < n && ids[i] == ' ') i++;
    size_t a = i;
    while (i < n && ids[i] != ' ') i++;
    if (i == a || i - a >= sizeof w) continue;
    memcpy(w, ids + a, i - a);
    w[i - a] = 0;
    int added = seen_add(s, kv_hash64(w, i - a));
    if (added < 0) return kv_err_set(err, KV_ENOMEM, "index: out of memory");
    if (added == 0) continue;
    sqlite3_bind_text(s->ident_put, 1, w, (int)(i - a), SQLITE_STATIC);
    int rc = step_done(s, s->ident_put, err, "identifier insert");
    if (rc) return rc;
    if (sqlite3_changes(s->db) != 1) continue;
    sqlite3_bind_int64(s->tri_put, 1, sqlite3_last_insert_rowid(s->db));
    sqlite3_bind_text(s->tri_put, 2, w, (int)(i - a), SQLITE_STATIC);
    if ((rc = step_done(s, s->tri_put, err, "trigram insert"))) return rc;
  }
  return 0;
}

void idx_store_forget(idx_store *s) {
  free(s->seen);
  s->seen = NULL;
  s->nseen = s->capseen = 0;
}

int idx_blob_put(idx_store *s, const char *oid, const char *lang, uint64_t size, int skip,
                 int note, const idx_parsed *r, uint64_t counts[3], kv_err *err) {
  sqlite3_stmt *st = s->blob_put;
  sqlite3_bind_text(st, 1, oid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, lang ? lang : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)size);
  sqlite3_bind_int(st, 4, skip);
  sqlite3_bind_int(st, 5, note);
  sqlite3_bind_int(st, 6, r ? r->nlines : 0);
  int rc = step_done(s, st, err, "blob insert");
  if (rc || !r || skip) return rc;
  int64_t id = sqlite3_last_insert_rowid(s->db);
  for (size_t i = 0; i < r->nsyms; i++) {
    const idx_psym *y = &r->syms[i];
    st = s->sym_put;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, y->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, y->kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, y->scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, y->sig, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 6, y->line0);
    sqlite3_bind_int(st, 7, y->line1);
    if ((rc = step_done(s, st, err, "symbol insert"))) return rc;
  }
  for (size_t i = 0; i < r->nrefs; i++) {
    st = s->ref_put;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_text(st, 2, r->refs[i].name, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, r->refs[i].kind, -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, r->refs[i].line);
    if ((rc = step_done(s, st, err, "ref insert"))) return rc;
  }
  for (size_t i = 0; i < r->nchunks && !rc; i++) {
    const idx_pchunk *c = &r->chunks[i];
    const char *sym = c->sym >= 0 ? r->syms[c->sym].name : "";
    st = s->chunk_put;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, c->line0);
    sqlite3_bind_int(st, 3, c->line1);
    sqlite3_bind_text(st, 4, sym, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->text + c->b0, (int)(c->b1 - c->b0), SQLITE_STATIC);
    sqlite3_bind_text(st, 6, c->sub ? c->sub : "", (int)c->nsub, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, c->defs ? c->defs : "", (int)c->ndefs, SQLITE_STATIC);
    if ((rc = step_done(s, st, err, "chunk insert"))) break;
    int64_t cid = sqlite3_last_insert_rowid(s->db);
    st = s->fts_put;
    sqlite3_bind_int64(st, 1, cid);
    sqlite3_bind_text(st, 2, r->text + c->b0, (int)(c->b1 - c->b0), SQLITE_STATIC);
    sqlite3_bind_text(st, 3, c->sub ? c->sub : "", (int)c->nsub, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, c->defs ? c->defs : "", (int)c->ndefs, SQLITE_STATIC);
    if ((rc = step_done(s, st, err, "fts insert"))) break;
  }
  if (!rc) rc = put_idents(s, r->ids, r->nids, err);
  if (counts) {
    counts[0] += r->nsyms;
    counts[1] += r->nrefs;
    counts[2] += r->nchunks;
  }
  return rc;
}

int idx_file_put(idx_store *s, const idx_filerow *f, int64_t gen, kv_err *err) {
  sqlite3_stmt *st = s->file_put;
  sqlite3_bind_text(st, 1, f->path, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, f->oid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 3, f->head_oid, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, f->lang ? f->lang : "", -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, (sqlite3_int64)f->size);
  sqlite3_bind_int(st, 6, f->skip);
  sqlite3_bind_int(st, 7, f->note);
  sqlite3_bind_int(st, 8, f->worktree);
  sqlite3_bind_int64(st, 9, f->changed);
  sqlite3_bind_int64(st, 10, gen);
  return step_done(s, st, err, "file upsert");
}

int idx_file_del(idx_store *s, const char *path, kv_err *err) {
  sqlite3_bind_text(s->file_del, 1, path, -1, SQLITE_STATIC);
  return step_done(s, s->file_del, err, "file delete");
}

int idx_file_set_changed(idx_store *s, const char *path, int64_t t, kv_err *err) {
  sqlite3_bind_int64(s->file_changed, 1, t);
  sqlite3_bind_text(s->file_changed, 2, path, -1, SQLITE_STATIC);
  return step_done(s, s->file_changed, err, "file changed");
}
