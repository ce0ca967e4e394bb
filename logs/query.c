/*
 * query.c — record queries and their JSON rendering.
 *
 * Filters combine with AND; all values are bound, never spliced into SQL.
 * Text search first asks the trigram FTS5 index of template texts; records
 * whose template matches are returned, and if no template matches, record
 * texts are scanned (instr) so a value inside a parameter is still found.
 * A parameter filter matches one variable value exactly: identifier-like
 * values through the params_fts index, plain numbers by a scan.
 */
#include "logs/store_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *dupcol(sqlite3_stmt *st, int i) {
  const unsigned char *t = sqlite3_column_text(st, i);
  return t ? strdup((const char *)t) : strdup("");
}

void log_result_free(log_result *r) {
  if (!r) return;
  for (size_t i = 0; i < r->n; i++) {
    free(r->rows[i].file);
    free(r->rows[i].component);
    free(r->rows[i].text);
    free(r->rows[i].template_text);
  }
  free(r->rows);
  memset(r, 0, sizeof *r);
}

/* FTS5 phrase: the text in double quotes, inner quotes doubled. */
static char *fts_phrase(const char *s) {
  size_t n = strlen(s), k = 0;
  char *o = malloc(2 * n + 3);
  if (!o) return NULL;
  o[k++] = '"';
  for (size_t i = 0; i < n; i++) {
    if (s[i] == '"') o[k++] = '"';
    o[k++] = s[i];
  }
  o[k++] = '"';
  o[k] = 0;
  return o;
}

static int template_hits(log_db *db, const char *text, int *hits, kv_err *err) {
  *hits = 0;
  if (strlen(text) < 3) return 0; /* trigram index needs 3 characters */
  char *ph = fts_phrase(text);
  if (!ph) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, "SELECT count(*) FROM templates_fts WHERE templates_fts MATCH ?", err);
  if (!rc) {
    sqlite3_bind_text(st, 1, ph, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(st) == SQLITE_ROW) *hits = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
  }
  free(ph);
  return rc;
}

int log_query_run(log_db *db, const log_query *q, log_result *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  char sql[2048];
  size_t k = 0;
  int pnum = 0;
  if (q->param) {
    /* numbers are not in the parameter index (see ingest.c): scan for them */
    pnum = 1;
    for (const char *c = q->param; *c; c++)
      if (!((*c >= '0' && *c <= '9') || *c == '.' || *c == ',' || *c == '-' || *c == '+')) pnum = 0;
  }
  /* An indexed parameter drives the query (CROSS JOIN keeps that order);
   * otherwise the planner picks from the ts/pattern indexes. */
  k += (size_t)snprintf(sql + k, sizeof sql - k,
                        "SELECT r.id, r.ts, p.template_id, r.line_no, r.level, f.path, r.component, r.text, t.text "
                        "FROM %s JOIN patterns p ON p.id = r.pattern_id "
                        "LEFT JOIN templates t ON t.id = p.template_id JOIN files f ON f.id = r.file_id WHERE 1",
                        q->param && !pnum ? "(SELECT rowid AS rid FROM params_fts WHERE params_fts MATCH :pfts) m "
                                            "CROSS JOIN records r ON r.id = m.rid"
                                          : "records r");
  int fts = 0;
  if (q->since_ms) k += (size_t)snprintf(sql + k, sizeof sql - k, " AND r.ts >= :since");
  if (q->until_ms) k += (size_t)snprintf(sql + k, sizeof sql - k, " AND r.ts < :until");
  if (q->min_level) k += (size_t)snprintf(sql + k, sizeof sql - k, " AND r.level >= :lvl");
  if (q->template_id) k += (size_t)snprintf(sql + k, sizeof sql - k, " AND p.template_id = :tpl");
  if (q->component) k += (size_t)snprintf(sql + k, sizeof sql - k, " AND r.component = :comp");
  if (q->param) k += (size_t)snprintf(sql + k, sizeof sql - k, " AND instr(r.params, :param) > 0");
  if (q->text) {
    int hits;
    int rc = template_hits(db, q->text, &hits, err);
    if (rc) return rc;
    fts = hits > 0;
    if (fts)
      k += (size_t)snprintf(sql + k, sizeof sql - k,
                            " AND p.template_id IN (SELECT rowid FROM templates_fts WHERE templates_fts MATCH :fts)");
    else
      k += (size_t)snprintf(sql + k, sizeof sql - k, " AND instr(r.text, :text) > 0");
  }
  k += (size_t)snprintf(sql + k, sizeof sql - k, " ORDER BY r.ts, r.id LIMIT :lim");
  sqlite3_stmt *st;
  int rc = log_db_prepare(db, &st, sql, err);
  if (rc) return rc;
  char *ph = NULL, *pv = NULL, *pph = NULL;
#define BIND(name, call)                                        \
  do {                                                          \
    int ix = sqlite3_bind_parameter_index(st, name);            \
    if (ix) call;                                               \
  } while (0)
  BIND(":since", sqlite3_bind_int64(st, ix, q->since_ms));
  BIND(":until", sqlite3_bind_int64(st, ix, q->until_ms));
  BIND(":lvl", sqlite3_bind_int(st, ix, q->min_level));
  BIND(":tpl", sqlite3_bind_int64(st, ix, q->template_id));
  BIND(":comp", sqlite3_bind_text(st, ix, q->component, -1, SQLITE_STATIC));
  if (q->param) {
    size_t l = strlen(q->param);
    pv = malloc(l + 3);
    if (!pv) {
      sqlite3_finalize(st);
      return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    }
    pv[0] = '\x1f';
    memcpy(pv + 1, q->param, l);
    pv[l + 1] = '\x1f';
    pv[l + 2] = 0;
    BIND(":param", sqlite3_bind_text(st, ix, pv, -1, SQLITE_STATIC));
    if (!pnum) {
      pph = fts_phrase(q->param);
      if (!pph) {
        sqlite3_finalize(st);
        free(pv);
        return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
      }
      BIND(":pfts", sqlite3_bind_text(st, ix, pph, -1, SQLITE_STATIC));
    }
  }
  if (q->text) {
    ph = fts_phrase(q->text);
    if (fts) BIND(":fts", sqlite3_bind_text(st, ix, ph, -1, SQLITE_STATIC));
    else BIND(":text", sqlite3_bind_text(st, ix, q->text, -1, SQLITE_STATIC));
  }
  BIND(":lim", sqlite3_bind_int(st, ix, q->limit > 0 ? q->limit : 100));
#undef BIND
  size_t cap = 0;
  int s;
  while ((s = sqlite3_step(st)) == SQLITE_ROW) {
    if (out->n == cap) {
      cap = cap ? cap * 2 : 64;
      log_row *nr = realloc(out->rows, cap * sizeof *nr);
      if (!nr) {
        rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory");
        break;
      }
      out->rows = nr;
    }
    log_row *r = &out->rows[out->n++];
    r->id = sqlite3_column_int64(st, 0);
    r->ts_ms = sqlite3_column_type(st, 1) == SQLITE_NULL ? INT64_MIN : sqlite3_column_int64(st, 1);
    r->template_id = sqlite3_column_int64(st, 2);
    r->line_no = sqlite3_column_int64(st, 3);
    r->level = sqlite3_column_int(st, 4);
    r->file = dupcol(st, 5);
    r->component = dupcol(st, 6);
    r->text = dupcol(st, 7);
    r->template_text = dupcol(st, 8);
  }
  if (!rc && s != SQLITE_DONE)
    rc = kv_err_set(err, KV_EIO, "%s: query: %s", db->path, sqlite3_errmsg(db->db));
  sqlite3_finalize(st);
  free(ph);
  free(pv);
  free(pph);
  if (rc) log_result_free(out);
  return rc;
}

static void add_ts(cJSON *o, const char *k, int64_t ms) {
  if (ms == INT64_MIN) cJSON_AddNullToObject(o, k);
  else cJSON_AddNumberToObject(o, k, (double)ms);
}

cJSON *log_result_json(const log_result *r) {
  cJSON *a = cJSON_CreateArray();
  if (!a) return NULL;
  for (size_t i = 0; i < r->n; i++) {
    const log_row *w = &r->rows[i];
    cJSON *o = cJSON_CreateObject();
    if (!o) break;
    cJSON_AddNumberToObject(o, "id", (double)w->id);
    add_ts(o, "ts_ms", w->ts_ms);
    cJSON_AddStringToObject(o, "level", log_level_name(w->level));
    cJSON_AddNumberToObject(o, "template_id", (double)w->template_id);
    cJSON_AddStringToObject(o, "template", w->template_text);
    cJSON_AddStringToObject(o, "file", w->file);
    cJSON_AddNumberToObject(o, "line", (double)w->line_no);
    cJSON_AddStringToObject(o, "component", w->component);
    cJSON_AddStringToObject(o, "text", w->text);
    cJSON_AddItemToArray(a, o);
  }
  return a;
}

cJSON *log_ingest_stats_json(const log_ingest_stats *s) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
#define N(f) cJSON_AddNumberToObject(o, #f, (double)s->f)
  N(files), N(files_skipped), N(bytes), N(lines), N(records), N(new_templates), N(binary_lines), N(invalid_utf8),
      N(long_lines), N(no_timestamp), N(clock_jumps), N(truncated), N(seconds);
#undef N
  return o;
}
