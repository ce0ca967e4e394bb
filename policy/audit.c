/*
 * audit.c — the record of what the policy decided and of every byte that
 * left the machine, plus the per-day budgets computed from it
 * (calibration.c keeps the context-length measurements, in their own db).
 *
 * On-disk format, audit.db (SQLite, user_version = 1):
 *   decisions(id, time, project, kind, depth, rule, tier, context_tokens, offline_downgraded)
 *   outbound(id, time, project, rule, tier, endpoint, bytes, sha256, redactions,
 *            redaction_detail JSON, tokens, cost, status, http_status)
 * An outbound row is inserted (status 'sending') before the bytes go out and
 * updated afterwards, so a crash mid-request still leaves the record; bytes
 * and sha256 describe the exact HTTP body. Budgets count outbound rows of the
 * current UTC day: every attempt that could have left the machine counts.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <sqlite3.h>

#include "policy/internal.h"

struct pol_audit {
  sqlite3 *db;
  char path[4096];
};

void pol_sha256_hex(const void *data, size_t len, char hex[65]) {
  unsigned char h[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(h, data, len);
  sodium_bin2hex(hex, 65, h, sizeof h);
}

static int exec(sqlite3 *db, const char *sql, const char *path, kv_err *err) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    int rc = kv_err_set(err, KV_EIO, "%s: %s", path, msg ? msg : "sqlite error");
    sqlite3_free(msg);
    return rc;
  }
  return 0;
}

int pol_audit_open(pol_audit **out, const char *path, kv_err *err) {
  *out = NULL;
  pol_audit *a = calloc(1, sizeof *a);
  if (!a) return kv_err_set(err, KV_ENOMEM, "out of memory");
  int rc = pol_db_open(path, "audit.db", &a->db, a->path, sizeof a->path, err);
  if (!rc)
    rc = exec(a->db,
              "PRAGMA journal_mode=WAL;"
              "CREATE TABLE IF NOT EXISTS decisions(id INTEGER PRIMARY KEY, time INTEGER NOT NULL, project TEXT,"
              " kind TEXT, depth TEXT, rule TEXT, tier TEXT, context_tokens INTEGER, offline_downgraded INTEGER);"
              "CREATE TABLE IF NOT EXISTS outbound(id INTEGER PRIMARY KEY, time INTEGER NOT NULL, project TEXT,"
              " rule TEXT, tier TEXT, endpoint TEXT, bytes INTEGER, sha256 TEXT, redactions INTEGER,"
              " redaction_detail TEXT, tokens INTEGER, cost REAL, status TEXT, http_status INTEGER);"
              "CREATE INDEX IF NOT EXISTS outbound_day ON outbound(project, time);"
              "PRAGMA user_version=1;",
              a->path, err);
  if (rc) { pol_audit_close(a); return rc; }
  *out = a;
  return 0;
}

void pol_audit_close(pol_audit *a) {
  if (!a) return;
  sqlite3_close(a->db);
  free(a);
}

static int prep(pol_audit *a, sqlite3 *db, const char *sql, sqlite3_stmt **st, kv_err *err) {
  if (sqlite3_prepare_v2(db, sql, -1, st, NULL) != SQLITE_OK)
    return kv_err_set(err, KV_EIO, "%s: %s", a ? a->path : "calibration.db", sqlite3_errmsg(db));
  return 0;
}

static int step_done(pol_audit *a, sqlite3 *db, sqlite3_stmt *st, kv_err *err) {
  int r = sqlite3_step(st);
  int rc = (r == SQLITE_DONE || r == SQLITE_ROW) ? 0 : kv_err_set(err, KV_EIO, "%s: %s", a ? a->path : "db", sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return rc;
}

int pol_audit_decision(pol_audit *a, const char *project, const pol_request *req, const pol_decision *d, kv_err *err) {
  sqlite3_stmt *st;
  int rc = prep(a, a->db,
                "INSERT INTO decisions(time,project,kind,depth,rule,tier,context_tokens,offline_downgraded)"
                " VALUES(?,?,?,?,?,?,?,?)",
                &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
  sqlite3_bind_text(st, 2, project ? project : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, pol_kind_name(req->kind), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 4, pol_depth_name(req->depth), -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 5, d->rule, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 6, d->tier, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 7, (sqlite3_int64)d->context_tokens);
  sqlite3_bind_int(st, 8, d->offline_downgraded);
  return step_done(a, a->db, st, err);
}

int pol_audit_outbound_begin(pol_audit *a, const char *project, const char *rule, const char *tier,
                             const char *endpoint, const pol_payload *pl, uint64_t tokens, double cost, int64_t *id,
                             kv_err *err) {
  char hex[65], detail[512] = "{";
  pol_sha256_hex(pl->body, pl->body_len, hex);
  for (int k = 0; k < POL_RED__COUNT; k++) {
    if (!pl->redactions.counts[k]) continue;
    size_t l = strlen(detail);
    snprintf(detail + l, sizeof detail - l, "%s\"%s\":%u", l > 1 ? "," : "", pol_redaction_name(k),
             pl->redactions.counts[k]);
  }
  strcat(detail, "}");
  sqlite3_stmt *st;
  int rc = prep(a, a->db,
                "INSERT INTO outbound(time,project,rule,tier,endpoint,bytes,sha256,redactions,redaction_detail,"
                "tokens,cost,status,http_status) VALUES(?,?,?,?,?,?,?,?,?,?,?,'sending',0)",
                &st, err);
  if (rc) return rc;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)time(NULL));
  sqlite3_bind_text(st, 2, project ? project : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 3, rule, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 4, tier, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(st, 5, endpoint, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 6, (sqlite3_int64)pl->body_len);
  sqlite3_bind_text(st, 7, hex, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 8, (int)pl->redactions.total);
  sqlite3_bind_text(st, 9, detail, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 10, (sqlite3_int64)tokens);
  sqlite3_bind_double(st, 11, cost);
  rc = step_done(a, a->db, st, err);
  if (!rc) *id = sqlite3_last_insert_rowid(a->db);
  return rc;
}

int pol_audit_outbound_end(pol_audit *a, int64_t id, const char *status, int http_status, uint64_t extra_tokens,
                           double extra_cost, kv_err *err) {
  sqlite3_stmt *st;
  int rc = prep(a, a->db, "UPDATE outbound SET status=?, http_status=?, tokens=tokens+?, cost=cost+? WHERE id=?", &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, status, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int(st, 2, http_status);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)extra_tokens);
  sqlite3_bind_double(st, 4, extra_cost);
  sqlite3_bind_int64(st, 5, id);
  return step_done(a, a->db, st, err);
}

static const char *col_text(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? (const char *)t : "";
}

int pol_audit_list(pol_audit *a, const char *project, unsigned limit, pol_audit_cb cb, void *user, kv_err *err) {
  sqlite3_stmt *st;
  int rc = prep(a, a->db,
                "SELECT * FROM (SELECT id,time,project,rule,tier,endpoint,bytes,sha256,redactions,redaction_detail,"
                "tokens,cost,status,http_status FROM outbound WHERE (?1 IS NULL OR project=?1) ORDER BY id DESC"
                " LIMIT ?2) ORDER BY id",
                &st, err);
  if (rc) return rc;
  if (project) sqlite3_bind_text(st, 1, project, -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
  int r;
  while ((r = sqlite3_step(st)) == SQLITE_ROW) {
    pol_audit_row row;
    memset(&row, 0, sizeof row);
    row.id = sqlite3_column_int64(st, 0);
    row.time = sqlite3_column_int64(st, 1);
    row.project = col_text(st, 2), row.rule = col_text(st, 3), row.tier = col_text(st, 4);
    row.endpoint = col_text(st, 5);
    row.bytes = (uint64_t)sqlite3_column_int64(st, 6);
    snprintf(row.sha256, sizeof row.sha256, "%s", col_text(st, 7));
    row.redactions = (unsigned)sqlite3_column_int(st, 8);
    row.redaction_detail = col_text(st, 9);
    row.tokens = (uint64_t)sqlite3_column_int64(st, 10);
    row.cost = sqlite3_column_double(st, 11);
    row.status = col_text(st, 12);
    row.http_status = sqlite3_column_int(st, 13);
    if (cb(&row, user)) break;
  }
  rc = (r == SQLITE_ROW || r == SQLITE_DONE) ? 0 : kv_err_set(err, KV_EIO, "%s: %s", a->path, sqlite3_errmsg(a->db));
  sqlite3_finalize(st);
  return rc;
}

int pol_budget_usage(pol_audit *a, const char *project, pol_usage *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  time_t now = time(NULL);
  int64_t day0 = (int64_t)now - (int64_t)now % 86400;
  sqlite3_stmt *st;
  int rc = prep(a, a->db,
                "SELECT COUNT(*), COALESCE(SUM(tokens),0), COALESCE(SUM(cost),0) FROM outbound"
                " WHERE project=? AND time>=?",
                &st, err);
  if (rc) return rc;
  sqlite3_bind_text(st, 1, project ? project : "", -1, SQLITE_TRANSIENT);
  sqlite3_bind_int64(st, 2, day0);
  if (sqlite3_step(st) == SQLITE_ROW) {
    out->requests = (uint64_t)sqlite3_column_int64(st, 0);
    out->tokens = (uint64_t)sqlite3_column_int64(st, 1);
    out->cost = sqlite3_column_double(st, 2);
  } else rc = kv_err_set(err, KV_EIO, "%s: %s", a->path, sqlite3_errmsg(a->db));
  sqlite3_finalize(st);
  return rc;
}

int pol_budget_check(const pol_policy *p, pol_audit *a, uint64_t tokens, double cost, kv_err *err) {
  if (!p->budget_requests && !p->budget_tokens && !(p->budget_cost > 0)) return 0;
  if (!a) return kv_err_set(err, KV_EINVAL, "budget: no audit database to count usage");
  pol_usage u;
  int rc = pol_budget_usage(a, p->project, &u, err);
  if (rc) return rc;
  if (p->budget_requests && u.requests + 1 > p->budget_requests)
    return kv_err_set(err, KV_ELIMIT, "budget.requests_per_day: %llu of %llu requests used today",
                      (unsigned long long)u.requests, (unsigned long long)p->budget_requests);
  if (p->budget_tokens && u.tokens + tokens > p->budget_tokens)
    return kv_err_set(err, KV_ELIMIT, "budget.tokens_per_day: %llu used + %llu for this request > %llu",
                      (unsigned long long)u.tokens, (unsigned long long)tokens, (unsigned long long)p->budget_tokens);
  if (p->budget_cost > 0 && u.cost + cost > p->budget_cost)
    return kv_err_set(err, KV_ELIMIT, "budget.cost_per_day: %.4f used + %.4f for this request > %.4f", u.cost, cost,
                      p->budget_cost);
  return 0;
}
