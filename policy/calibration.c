/*
 * calibration.c — the context-length calibration that `kvasir eval needle`
 * records and the rules' `max_context: calibrated` reads (rules.c is its
 * user, which is why it is not in audit.c: the audit log depends on the
 * rules' names, the rules depend on this).
 *
 * On-disk format, $XDG_DATA_HOME/kvasir/calibration.db (SQLite):
 *   calibration(model, project, ctx, accuracy, time), one row per
 *   (model, project, ctx), the latest measurement wins.
 */
#include <time.h>

#include <sqlite3.h>

#include "policy/internal.h"

static int prep(sqlite3 *db, const char *sql, sqlite3_stmt **st, kv_err *err) {
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
    return kv_err_set(err, KV_EIO, "calibration.db: %s", sqlite3_errmsg(db));
  return 0;
}

static int cal_open(sqlite3 **db, kv_err *err) {
  int rc = pol_db_open(NULL, "calibration.db", db, NULL, 0, err);
  if (!rc && sqlite3_exec(*db,
                          "CREATE TABLE IF NOT EXISTS calibration(model TEXT NOT NULL, project TEXT NOT NULL,"
                          " ctx INTEGER NOT NULL, accuracy REAL NOT NULL, time INTEGER,"
                          " PRIMARY KEY(model, project, ctx))",
                          NULL, NULL, NULL) != SQLITE_OK) {
    rc = kv_err_set(err, KV_EIO, "calibration.db: %s", sqlite3_errmsg(*db));
    sqlite3_close(*db);
  }
  return rc;
}

int pol_calibration_record(const char *model, const char *project, uint64_t ctx, double accuracy, kv_err *err) {
  if (!model || !project || !(accuracy >= 0 && accuracy <= 1))
    return kv_err_set(err, KV_EINVAL, "calibration: bad model, project or accuracy");
  sqlite3 *db;
  int rc = cal_open(&db, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  rc = prep(db, "INSERT OR REPLACE INTO calibration(model,project,ctx,accuracy,time) VALUES(?,?,?,?,?)", &st, err);
  if (!rc) {
    sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, project, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)ctx);
    sqlite3_bind_double(st, 4, accuracy);
    sqlite3_bind_int64(st, 5, (sqlite3_int64)time(NULL));
    int r = sqlite3_step(st);
    rc = r == SQLITE_DONE ? 0 : kv_err_set(err, KV_EIO, "calibration.db: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return rc;
}

int pol_calibration_limit(const char *model, const char *project, double min_accuracy, uint64_t *out, kv_err *err) {
  *out = 0;
  sqlite3 *db;
  int rc = cal_open(&db, err);
  if (rc) return rc;
  sqlite3_stmt *st;
  rc = prep(db, "SELECT ctx, accuracy FROM calibration WHERE model=? AND project=? ORDER BY ctx", &st, err);
  if (!rc) {
    sqlite3_bind_text(st, 1, model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, project ? project : "", -1, SQLITE_TRANSIENT);
    uint64_t best = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
      if (sqlite3_column_double(st, 1) < min_accuracy) break; /* first length that fails */
      best = (uint64_t)sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    if (best) *out = best;
    else rc = kv_err_set(err, KV_ENOTFOUND, "calibration: no passing measurement for %s in %s", model, project);
  }
  sqlite3_close(db);
  return rc;
}
