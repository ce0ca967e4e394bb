/*
 * triage.c — what to look at first, without a model.
 *
 * For every template in the time range: its count, first/last time, worst
 * level, first record, and its rate over nbins equal time bins. Signals:
 *   rare  — count small against all records: log2(N / count), when count
 *           <= max(3, N/1000);
 *   new   — first seen in the last fifth of the range (the log was running
 *           before it appeared);
 *   burst — the fullest bin against the template's mean over the others:
 *           log2(ratio) * log2(1 + peak) when ratio >= 4 and peak >= 5;
 *   rate  — second half vs first half count, |log2 ratio| >= 2, count >= 10;
 *   error — level >= ERROR (error clusters: one template = one cluster).
 * score = (rare + new + burst + rate + error) * severity (WARN 1.5, ERROR 3,
 * FATAL 4): an error cluster outranks a warning storm of the same shape;
 * the item's kind is its strongest signal. Every item points to its first
 * record (file, line) so a user can jump to it.
 */
#include "logs/store_int.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *log_triage_kind(int k) {
  static const char *N[] = {"", "new", "rare", "burst", "rate", "error"};
  return k >= 1 && k <= LOG_TRI_ERROR ? N[k] : "";
}

void log_triage_free(log_triage *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->items[i].template_text);
    free(t->items[i].first_file);
    free(t->items[i].bins);
    free(t->items[i].why);
  }
  free(t->items);
  memset(t, 0, sizeof *t);
}

static int cmp_score(const void *a, const void *b) {
  const log_triage_item *x = a, *y = b;
  return (x->score < y->score) - (x->score > y->score);
}

static void range_sql(char *buf, size_t n, const log_triage_opts *o) {
  snprintf(buf, n, "%s%s", o && o->since_ms ? " AND r.ts >= :since" : "", o && o->until_ms ? " AND r.ts < :until" : "");
}

static void bind_range(sqlite3_stmt *st, const log_triage_opts *o) {
  int ix;
  if (o && o->since_ms && (ix = sqlite3_bind_parameter_index(st, ":since"))) sqlite3_bind_int64(st, ix, o->since_ms);
  if (o && o->until_ms && (ix = sqlite3_bind_parameter_index(st, ":until"))) sqlite3_bind_int64(st, ix, o->until_ms);
}

int log_triage_run(log_db *db, const log_triage_opts *o, log_triage *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  int nb = o && o->nbins > 0 ? (o->nbins > 512 ? 512 : o->nbins) : 24;
  int limit = o && o->limit > 0 ? o->limit : 20;
  char rng[128], sql[1024];
  range_sql(rng, sizeof rng, o);
  sqlite3_stmt *st;
  snprintf(sql, sizeof sql, "SELECT min(r.ts), max(r.ts), count(*) FROM records r WHERE r.ts IS NOT NULL%s", rng);
  int rc = log_db_prepare(db, &st, sql, err);
  if (rc) return rc;
  bind_range(st, o);
  int64_t t0 = 0, t1 = 0, total = 0;
  if (sqlite3_step(st) == SQLITE_ROW) {
    t0 = sqlite3_column_int64(st, 0), t1 = sqlite3_column_int64(st, 1), total = sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
  out->t0 = t0, out->t1 = t1;
  if (total == 0) return 0;
  int64_t span = t1 - t0 + 1;
  snprintf(sql, sizeof sql,
           "SELECT p.template_id, count(*), min(r.ts), max(r.ts), max(r.level), min(r.id), t.text "
           "FROM records r JOIN patterns p ON p.id = r.pattern_id LEFT JOIN templates t ON t.id = p.template_id "
           "WHERE r.ts IS NOT NULL%s GROUP BY p.template_id",
           rng);
  if ((rc = log_db_prepare(db, &st, sql, err))) return rc;
  bind_range(st, o);
  size_t cap = 0;
  int64_t maxid = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    if (out->n == cap) {
      cap = cap ? cap * 2 : 256;
      log_triage_item *ni = realloc(out->items, cap * sizeof *ni);
      if (!ni) {
        rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
        break;
      }
      out->items = ni;
    }
    log_triage_item *it = &out->items[out->n++];
    memset(it, 0, sizeof *it);
    it->template_id = sqlite3_column_int64(st, 0);
    it->count = (uint64_t)sqlite3_column_int64(st, 1);
    it->first_ts = sqlite3_column_int64(st, 2);
    it->last_ts = sqlite3_column_int64(st, 3);
    it->level = sqlite3_column_int(st, 4);
    it->first_record = sqlite3_column_int64(st, 5);
    const unsigned char *tx = sqlite3_column_text(st, 6);
    it->template_text = strdup(tx ? (const char *)tx : "");
    it->nbins = nb;
    it->bins = calloc((size_t)nb, sizeof *it->bins);
    if (!it->template_text || !it->bins) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
    if (it->template_id > maxid) maxid = it->template_id;
    if (rc) break;
  }
  sqlite3_finalize(st);
  if (rc) goto fail;
  /* template id -> item index */
  int64_t *ix = malloc((size_t)(maxid + 1) * sizeof *ix);
  if (!ix) {
    rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
    goto fail;
  }
  for (int64_t i = 0; i <= maxid; i++) ix[i] = -1;
  for (size_t i = 0; i < out->n; i++) ix[out->items[i].template_id] = (int64_t)i;
  snprintf(sql, sizeof sql,
           "SELECT p.template_id, ((r.ts - :t0) * :nb) / :span AS b, count(*) FROM records r "
           "JOIN patterns p ON p.id = r.pattern_id WHERE r.ts IS NOT NULL%s GROUP BY 1, 2",
           rng);
  if ((rc = log_db_prepare(db, &st, sql, err))) {
    free(ix);
    goto fail;
  }
  bind_range(st, o);
  sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":t0"), t0);
  sqlite3_bind_int(st, sqlite3_bind_parameter_index(st, ":nb"), nb);
  sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":span"), span);
  while (sqlite3_step(st) == SQLITE_ROW) {
    int64_t tid = sqlite3_column_int64(st, 0), b = sqlite3_column_int64(st, 1);
    if (tid < 0 || tid > maxid || ix[tid] < 0 || b < 0 || b >= nb) continue;
    out->items[ix[tid]].bins[b] += (uint32_t)sqlite3_column_int64(st, 2);
  }
  sqlite3_finalize(st);
  free(ix);
  /* score */
  double N = (double)total;
  for (size_t i = 0; i < out->n; i++) {
    log_triage_item *it = &out->items[i];
    double rare = 0, fresh = 0, burst = 0, rate = 0, errs = 0;
    double c = (double)it->count;
    if (c <= fmax(3, N / 1000)) rare = log2(N / c) / 2;
    if (span > 1 && it->first_ts >= t0 + (span * 4) / 5 && out->n > 1) fresh = 4;
    uint32_t peak = 0;
    int pb = 0;
    for (int b = 0; b < nb; b++)
      if (it->bins[b] > peak) peak = it->bins[b], pb = b;
    double others = (c - peak) / (nb > 1 ? nb - 1 : 1);
    double ratio = peak / fmax(1.0, others);
    if (peak >= 5 && ratio >= 4) burst = log2(ratio) * log2(1 + peak) / 2;
    it->burst_ts = t0 + (span * pb) / nb;
    double c1 = 0, c2 = 0;
    for (int b = 0; b < nb; b++) *(b < nb / 2 ? &c1 : &c2) += it->bins[b];
    double ch = log2((c2 + 1) / (c1 + 1));
    if (c >= 10 && fabs(ch) >= 2) rate = fabs(ch);
    if (it->level >= LOG_LVL_ERROR) errs = 2 + log2(1 + c) / 4;
    double w = it->level >= LOG_LVL_FATAL ? 4 : it->level >= LOG_LVL_ERROR ? 3 : it->level >= LOG_LVL_WARN ? 1.5 : 1;
    it->score = (rare + fresh + burst + rate + errs) * w;
    double best = -1;
    const double sig[5] = {fresh, rare, burst, rate, errs};
    for (int k = 0; k < 5; k++)
      if (sig[k] > best) best = sig[k], it->kind = k + 1;
    char why[256];
    int k = 0;
    if (fresh > 0) k += snprintf(why + k, sizeof why - (size_t)k, "new in the last fifth; ");
    if (rare > 0 && k < 200) k += snprintf(why + k, sizeof why - (size_t)k, "rare (%llu of %lld); ",
                                           (unsigned long long)it->count, (long long)total);
    if (burst > 0 && k < 200) k += snprintf(why + k, sizeof why - (size_t)k, "burst x%.0f (%u in one bin); ", ratio, peak);
    if (rate > 0 && k < 200) k += snprintf(why + k, sizeof why - (size_t)k, "rate %s x%.0f; ", ch > 0 ? "up" : "down",
                                           pow(2, fabs(ch)));
    if (errs > 0 && k < 200) snprintf(why + k, sizeof why - (size_t)k, "%s level", log_level_name(it->level));
    it->why = strdup(why);
  }
  qsort(out->items, out->n, sizeof *out->items, cmp_score);
  while (out->n > (size_t)limit) {
    log_triage_item *it = &out->items[--out->n];
    free(it->template_text), free(it->bins), free(it->why), free(it->first_file);
  }
  /* where each item starts */
  if ((rc = log_db_prepare(db, &st, "SELECT f.path, r.line_no FROM records r JOIN files f ON f.id = r.file_id WHERE r.id = ?",
                           err)))
    goto fail;
  for (size_t i = 0; i < out->n; i++) {
    sqlite3_bind_int64(st, 1, out->items[i].first_record);
    if (sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char *p = sqlite3_column_text(st, 0);
      out->items[i].first_file = strdup(p ? (const char *)p : "");
      out->items[i].first_line = sqlite3_column_int64(st, 1);
    }
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  return 0;
fail:
  log_triage_free(out);
  return rc;
}

void log_sparkline(const uint32_t *bins, int n, char *buf, size_t bufn) {
  static const char *B[8] = {"\u2581", "\u2582", "\u2583", "\u2584", "\u2585", "\u2586", "\u2587", "\u2588"};
  uint32_t mx = 0;
  for (int i = 0; i < n; i++)
    if (bins[i] > mx) mx = bins[i];
  size_t k = 0;
  for (int i = 0; i < n && k + 4 < bufn; i++) {
    if (bins[i] == 0) {
      buf[k++] = ' ';
      continue;
    }
    int lv = mx ? (int)((uint64_t)bins[i] * 7 / mx) : 0;
    memcpy(buf + k, B[lv], 3);
    k += 3;
  }
  if (bufn) buf[k < bufn ? k : bufn - 1] = 0;
}

cJSON *log_triage_json(const log_triage *t) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  cJSON_AddNumberToObject(o, "t0_ms", (double)t->t0);
  cJSON_AddNumberToObject(o, "t1_ms", (double)t->t1);
  cJSON *a = cJSON_AddArrayToObject(o, "items");
  for (size_t i = 0; a && i < t->n; i++) {
    const log_triage_item *it = &t->items[i];
    cJSON *e = cJSON_CreateObject();
    if (!e) break;
    cJSON_AddStringToObject(e, "kind", log_triage_kind(it->kind));
    cJSON_AddNumberToObject(e, "score", it->score);
    cJSON_AddNumberToObject(e, "template_id", (double)it->template_id);
    cJSON_AddStringToObject(e, "template", it->template_text ? it->template_text : "");
    cJSON_AddStringToObject(e, "level", log_level_name(it->level));
    cJSON_AddNumberToObject(e, "count", (double)it->count);
    cJSON_AddNumberToObject(e, "first_ts_ms", (double)it->first_ts);
    cJSON_AddNumberToObject(e, "last_ts_ms", (double)it->last_ts);
    cJSON_AddNumberToObject(e, "peak_ts_ms", (double)it->burst_ts);
    cJSON_AddNumberToObject(e, "first_record", (double)it->first_record);
    cJSON_AddStringToObject(e, "first_file", it->first_file ? it->first_file : "");
    cJSON_AddNumberToObject(e, "first_line", (double)it->first_line);
    cJSON_AddStringToObject(e, "why", it->why ? it->why : "");
    cJSON *b = cJSON_AddArrayToObject(e, "bins");
    for (int k = 0; b && k < it->nbins; k++) cJSON_AddItemToArray(b, cJSON_CreateNumber(it->bins[k]));
    cJSON_AddItemToArray(a, e);
  }
  return o;
}
