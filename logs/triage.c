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
 *
 * Counting uses a block's summary when the block lies wholly inside the
 * range and inside one time bin (per pattern: count, first/last time,
 * first record, worst level — block.c), and otherwise reads its columns
 * (timestamps, levels, patterns; never the texts); either way the result
 * is the same. The range's first and last time come first, from the
 * summaries where a block lies wholly inside the range, else its columns.
 */
#include "logs/internal.h"

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

/* the columns of block i (meta blob) */
static int read_cols(log_db *db, sqlite3_stmt *qm, size_t i, log_blk_cols *c, kv_err *err) {
  int64_t id = db->sums[i].id;
  sqlite3_bind_int64(qm, 1, id);
  int rc;
  if (sqlite3_step(qm) != SQLITE_ROW)
    rc = kv_err_set(err, KV_EFORMAT, "%s: block %lld has no data row", db->path, (long long)id);
  else
    rc = log_blk_meta_decode(c, sqlite3_column_blob(qm, 0), (size_t)sqlite3_column_bytes(qm, 0), db->dc, id, err);
  sqlite3_reset(qm);
  return rc;
}

typedef struct tacc {
  uint64_t count;
  int64_t first_ts, last_ts, first_id;
  int level;
} tacc;

static int triage_run(log_db *db, const log_triage_opts *o, log_triage *out, kv_err *err);

int log_triage_run(log_db *db, const log_triage_opts *o, log_triage *out, kv_err *err) {
  int began = log_db_read_begin(db);
  int rc = triage_run(db, o, out, err);
  log_db_read_end(db, began);
  return rc;
}

static int triage_run(log_db *db, const log_triage_opts *o, log_triage *out, kv_err *err) {
  memset(out, 0, sizeof *out);
  int nb = o && o->nbins > 0 ? (o->nbins > 512 ? 512 : o->nbins) : 24;
  int limit = o && o->limit > 0 ? o->limit : 20;
  int64_t since = o ? o->since_ms : 0, until = o ? o->until_ms : 0;
  int rc = log_db_sums(db, err);
  if (rc) return rc;
  uint32_t *p2t = NULL;
  size_t np2t = 0, nt = 1;
  tacc *acc = NULL;
  uint32_t *bins = NULL;
  log_blk_cols *c = calloc(1, sizeof *c);
  sqlite3_stmt *qm = NULL;
  if (!c) return kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
  if ((rc = log_db_pattern_map(db, &p2t, &np2t, err))) goto fail;
  for (size_t i = 0; i < np2t; i++)
    if (p2t[i] + 1 > nt) nt = p2t[i] + 1;
  if ((rc = log_db_prepare(db, &qm, "SELECT meta FROM bdata WHERE id = ?", err))) goto fail;
  /* pass 1: first and last time, record count */
  int64_t t0 = INT64_MAX, t1 = INT64_MIN, total = 0;
  for (size_t i = 0; i < db->nsums && !rc; i++) {
    const log_blk_sum *b = &db->sums[i];
    if ((since && b->ts_max < since) || (until && b->ts_min >= until) || b->ts_max == INT64_MIN) continue;
    if (b->ts_min != INT64_MIN && (!since || b->ts_min >= since) && (!until || b->ts_max < until)) {
      if (b->ts_min < t0) t0 = b->ts_min;
      if (b->ts_max > t1) t1 = b->ts_max;
      total += b->n;
      continue;
    }
    if ((rc = read_cols(db, qm, i, c, err))) break;
    for (uint32_t j = 0; j < c->n; j++) {
      int64_t ts = c->ts[j];
      if (ts == INT64_MIN || (since && ts < since) || (until && ts >= until)) continue;
      if (ts < t0) t0 = ts;
      if (ts > t1) t1 = ts;
      total++;
    }
  }
  if (rc) goto fail;
  if (total == 0) {
    out->t0 = out->t1 = 0;
    goto done;
  }
  out->t0 = t0, out->t1 = t1;
  int64_t span = t1 - t0 + 1;
  /* pass 2: per template count, first/last time, worst level, first record, bins */
  acc = calloc(nt, sizeof *acc);
  bins = calloc(nt * (size_t)nb, sizeof *bins);
  if (!acc || !bins) {
    rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
    goto fail;
  }
  for (size_t i = 0; i < db->nsums && !rc; i++) {
    const log_blk_sum *b = &db->sums[i];
    if ((since && b->ts_max < since) || (until && b->ts_min >= until) || b->ts_max == INT64_MIN) continue;
    int64_t b0 = (int64_t)(((__int128)(b->ts_min - t0) * nb) / span);
    int64_t b1 = (int64_t)(((__int128)(b->ts_max - t0) * nb) / span);
    if (b->ts_min != INT64_MIN && (!since || b->ts_min >= since) && (!until || b->ts_max < until) && b0 == b1 &&
        b0 >= 0 && b0 < nb) {
      /* every record of the block is in the range and in bin b0: its
       * summary has the counts (the same result as decoding it) */
      for (uint32_t j = 0; j < b->npat; j++) {
        uint32_t t = b->pat[j] < np2t ? p2t[b->pat[j]] : 0;
        tacc *a = &acc[t];
        int64_t id = b->id + (b->pat_fl[j] >> 3);
        if (!a->count) a->first_ts = b->pat_min[j], a->last_ts = b->pat_max[j], a->first_id = id;
        if (id < a->first_id) a->first_id = id;
        if (b->pat_min[j] < a->first_ts) a->first_ts = b->pat_min[j];
        if (b->pat_max[j] > a->last_ts) a->last_ts = b->pat_max[j];
        if ((int)(b->pat_fl[j] & 7) > a->level) a->level = (int)(b->pat_fl[j] & 7);
        a->count += b->pat_cnt[j];
        bins[(size_t)t * (size_t)nb + (size_t)b0] += b->pat_cnt[j];
      }
      continue;
    }
    if ((rc = read_cols(db, qm, i, c, err))) break;
    for (uint32_t j = 0; j < c->n; j++) {
      int64_t ts = c->ts[j];
      if (ts == INT64_MIN || (since && ts < since) || (until && ts >= until)) continue;
      uint32_t t = c->pat[j] < np2t ? p2t[c->pat[j]] : 0;
      tacc *a = &acc[t];
      if (!a->count) a->first_ts = a->last_ts = ts, a->first_id = b->id + j;
      a->count++;
      if (ts < a->first_ts) a->first_ts = ts;
      if (ts > a->last_ts) a->last_ts = ts;
      if (c->lvl[j] > a->level) a->level = c->lvl[j];
      int64_t bi = (int64_t)(((__int128)(ts - t0) * nb) / span);
      if (bi >= 0 && bi < nb) bins[(size_t)t * (size_t)nb + (size_t)bi]++;
    }
  }
  if (rc) goto fail;
  size_t cap = 0;
  for (size_t t = 1; t < nt; t++) {
    if (!acc[t].count) continue;
    if (KV_GROW(out->items, cap, out->n + 1)) {
      rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
      goto fail;
    }
    log_triage_item *it = &out->items[out->n++];
    memset(it, 0, sizeof *it);
    it->template_id = (int64_t)t;
    it->count = acc[t].count;
    it->first_ts = acc[t].first_ts;
    it->last_ts = acc[t].last_ts;
    it->level = acc[t].level;
    it->first_record = acc[t].first_id;
    it->nbins = nb;
    it->bins = malloc((size_t)nb * sizeof *it->bins);
    if (!it->bins) {
      rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
      goto fail;
    }
    memcpy(it->bins, bins + t * (size_t)nb, (size_t)nb * sizeof *it->bins);
  }
  /* score */
  double N = (double)total;
  for (size_t i = 0; i < out->n; i++) {
    log_triage_item *it = &out->items[i];
    double rare = 0, fresh = 0, burst = 0, rate = 0, errs = 0;
    double cnt = (double)it->count;
    if (cnt <= fmax(3, N / 1000)) rare = log2(N / cnt) / 2;
    if (span > 1 && it->first_ts >= t0 + (span * 4) / 5 && out->n > 1) fresh = 4;
    uint32_t peak = 0;
    int pb = 0;
    for (int b = 0; b < nb; b++)
      if (it->bins[b] > peak) peak = it->bins[b], pb = b;
    double others = (cnt - peak) / (nb > 1 ? nb - 1 : 1);
    double ratio = peak / fmax(1.0, others);
    if (peak >= 5 && ratio >= 4) burst = log2(ratio) * log2(1 + peak) / 2;
    it->burst_ts = t0 + (span * pb) / nb;
    double c1 = 0, c2 = 0;
    for (int b = 0; b < nb; b++) *(b < nb / 2 ? &c1 : &c2) += it->bins[b];
    double ch = log2((c2 + 1) / (c1 + 1));
    if (cnt >= 10 && fabs(ch) >= 2) rate = fabs(ch);
    if (it->level >= LOG_LVL_ERROR) errs = 2 + log2(1 + cnt) / 4;
    double w = it->level >= LOG_LVL_FATAL ? 4 : it->level >= LOG_LVL_ERROR ? 3 : it->level >= LOG_LVL_WARN ? 1.5 : 1;
    it->score = (rare + fresh + burst + rate + errs) * w;
    double best = -1;
    const double sig[5] = {fresh, rare, burst, rate, errs};
    for (int k = 0; k < 5; k++)
      if (sig[k] > best) best = sig[k], it->kind = k + 1;
    char why[256] = "";
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
  /* template texts, and where each item starts */
  sqlite3_stmt *st;
  if ((rc = log_db_prepare(db, &st, "SELECT text FROM templates WHERE id = ?", err))) goto fail;
  for (size_t i = 0; i < out->n && !rc; i++) {
    log_triage_item *it = &out->items[i];
    sqlite3_bind_int64(st, 1, it->template_id);
    const unsigned char *tx = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    it->template_text = strdup(tx ? (const char *)tx : "");
    sqlite3_reset(st);
    long bi = log_db_block_of(db, it->first_record);
    char path[4096] = "";
    if (bi >= 0) {
      log_db_file_path(db, db->sums[bi].file_id, path, sizeof path);
      if (!(rc = read_cols(db, qm, (size_t)bi, c, err)) && !(rc = log_blk_meta_rest(c, db->sums[bi].id, err)))
        it->first_line = c->line[it->first_record - db->sums[bi].id];
    }
    it->first_file = strdup(path);
    if (!it->template_text || !it->first_file || !it->why) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory in triage");
  }
  sqlite3_finalize(st);
  if (rc) goto fail;
done:
  sqlite3_finalize(qm);
  log_blk_cols_free(c);
  free(p2t), free(acc), free(bins), free(c);
  return 0;
fail:
  sqlite3_finalize(qm);
  log_blk_cols_free(c);
  free(p2t), free(acc), free(bins), free(c);
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
