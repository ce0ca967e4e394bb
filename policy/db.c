/*
 * db.c — opens the policy module's SQLite databases (audit.db,
 * calibration.db): an explicit path, or the named file in
 * $XDG_DATA_HOME/kvasir/ (the directory created 0700). Connections are
 * serialized (FULLMUTEX) and wait up to 5 s on a lock held by another
 * process, so the daemon and the CLI can share the files.
 */
#include <stdio.h>

#include <sqlite3.h>

#include "policy/internal.h"

int pol_db_open(const char *path, const char *fallback_name, sqlite3 **db, char *used, size_t n, kv_err *err) {
  char p[4096];
  if (path) snprintf(p, sizeof p, "%s", path);
  else {
    char dir[4000];
    if (kv_xdg_dir(dir, sizeof dir, "data") != 0) return kv_err_set(err, KV_ELIMIT, "data dir path too long");
    int rc = kv_mkdirs(dir, 0700, err);
    if (rc) return rc;
    snprintf(p, sizeof p, "%s/%s", dir, fallback_name);
  }
  if (used) snprintf(used, n, "%s", p);
  if (sqlite3_open_v2(p, db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    int rc = kv_err_set(err, KV_EIO, "%s: %s", p, *db ? sqlite3_errmsg(*db) : "cannot open");
    sqlite3_close(*db);
    *db = NULL;
    return rc;
  }
  sqlite3_busy_timeout(*db, 5000);
  return 0;
}
