/*
 * eval.c — accuracy of the parser against a LogHub-style ground truth
 * (`<System>_2k.log` + `<System>_2k.log_structured.csv`). Grouping accuracy
 * (GA): a line is right iff the set of lines the parser groups it with is
 * exactly the set sharing its EventId. Parsing accuracy (PA): the line's
 * template equals the truth's after collapsing runs of <*> and whitespace.
 * The CSV reader is RFC 4180 (quoted fields, "" escapes) and bounds-checked;
 * a malformed file is an error naming the file and line.
 */
#include "logs/logs.h"

#include <stdlib.h>
#include <string.h>

/* Read one CSV record starting at *pos; fields are written as malloc'd
 * strings into f (up to maxf). Returns field count, or -1 at end. */
static int csv_record(const char *s, size_t n, size_t *pos, char **f, int maxf) {
  size_t i = *pos;
  if (i >= n) return -1;
  int k = 0;
  for (;;) {
    kv_buf b = KV_BUF_INIT;
    if (i < n && s[i] == '"') {
      i++;
      while (i < n) {
        if (s[i] == '"') {
          if (i + 1 < n && s[i + 1] == '"') i++;
          else {
            i++;
            break;
          }
        }
        kv_buf_putc(&b, s[i++]);
      }
    }
    while (i < n && s[i] != ',' && s[i] != '\n' && s[i] != '\r') {
      kv_buf_putc(&b, s[i++]);
    }
    char *fs = kv_buf_ok(&b) ? kv_buf_detach(&b, NULL) : NULL;
    if (!fs) return kv_buf_free(&b), -2;
    if (k < maxf) f[k++] = fs;
    else free(fs);
    if (i < n && s[i] == ',') {
      i++;
      continue;
    }
    while (i < n && (s[i] == '\r' || s[i] == '\n')) i++;
    break;
  }
  *pos = i;
  return k;
}

static void norm(const char *s, char *o, size_t on) {
  size_t k = 0;
  int sp = 0;
  for (size_t i = 0; s[i] && k + 4 < on;) {
    if (s[i] == ' ' || s[i] == '\t') {
      sp = 1;
      i++;
      continue;
    }
    if (!strncmp(s + i, "<*>", 3)) {
      if (k >= 3 && !strncmp(o + k - 3, "<*>", 3)) {
        i += 3;
        sp = 0;
        continue;
      }
      if (sp && k) o[k++] = ' ';
      memcpy(o + k, "<*>", 3);
      k += 3;
      i += 3;
      sp = 0;
      continue;
    }
    if (sp && k) o[k++] = ' ';
    sp = 0;
    o[k++] = s[i++];
  }
  o[k] = 0;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

int log_eval_loghub(const char *logpath, const char *csvpath, log_eval *ev, kv_err *err) {
  return log_eval_loghub_rules(logpath, csvpath, 0, 0, ev, err);
}

int log_eval_loghub_rules(const char *logpath, const char *csvpath, log_rules rules_off, double sim, log_eval *ev,
                          kv_err *err) {
  memset(ev, 0, sizeof *ev);
  char *log = NULL, *csv = NULL;
  size_t loglen, csvlen;
  int rc = kv_read_file(logpath, (size_t)1 << 30, &log, &loglen, err);
  if (rc) return rc;
  if ((rc = kv_read_file(csvpath, (size_t)1 << 30, &csv, &csvlen, err))) {
    free(log);
    return rc;
  }
  log_miner *m = NULL;
  uint32_t *ids = NULL;
  size_t n = 0;
  double t0 = kv_now();
  rc = log_parse_buffer_rules(log, loglen, rules_off, sim, &m, &ids, &n, err);
  ev->seconds = kv_now() - t0;
  if (rc) goto out;
  /* ground truth */
  size_t pos = 0;
  char *f[64];
  int nf = csv_record(csv, csvlen, &pos, f, 64);
  int ci = -1, ct = -1;
  for (int i = 0; i < nf; i++) {
    if (!strcmp(f[i], "EventId")) ci = i;
    if (!strcmp(f[i], "EventTemplate")) ct = i;
    free(f[i]);
  }
  if (ci < 0 || ct < 0) {
    rc = kv_err_set(err, KV_EFORMAT, "%s: line 1: no EventId/EventTemplate columns", csvpath);
    goto out;
  }
  uint32_t *gt = malloc((n ? n : 1) * sizeof *gt);
  char **gtt = calloc(n ? n : 1, sizeof *gtt);
  char **gtid = calloc(n ? n : 1, sizeof *gtid);
  size_t ngt = 0;
  if (!gt || !gtt || !gtid) {
    free(gt), free(gtt), free(gtid);
    rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory", csvpath);
    goto out;
  }
  while (ngt < n && (nf = csv_record(csv, csvlen, &pos, f, 64)) >= 0) {
    if (nf <= ci || nf <= ct) {
      for (int i = 0; i < nf; i++) free(f[i]);
      rc = kv_err_set(err, KV_EFORMAT, "%s: line %zu: %d fields, EventId is field %d", csvpath, ngt + 2, nf,
                      ci + 1);
      break;
    }
    gtid[ngt] = f[ci];
    gtt[ngt] = f[ct];
    for (int i = 0; i < nf; i++)
      if (i != ci && i != ct) free(f[i]);
    ngt++;
  }
  if (!rc && ngt != n)
    rc = kv_err_set(err, KV_EFORMAT, "%s: %zu records for %zu log lines", csvpath, ngt, n);
  if (!rc) {
    /* number the ground-truth ids */
    for (size_t i = 0; i < n; i++) {
      gt[i] = (uint32_t)i;
      for (size_t j = 0; j < i; j++)
        if (!strcmp(gtid[j], gtid[i])) {
          gt[i] = gt[j];
          break;
        }
    }
    uint32_t cnt_n = log_miner_count(m) + 1;
    uint32_t *gtsize = calloc(n + 1, sizeof *gtsize);
    uint32_t *first_gt = malloc(cnt_n * sizeof *first_gt);
    uint32_t *psize = calloc(cnt_n, sizeof *psize);
    uint8_t *pure = malloc(cnt_n);
    if (gtsize && first_gt && psize && pure) {
      memset(pure, 1, cnt_n);
      for (uint32_t i = 0; i < cnt_n; i++) first_gt[i] = UINT32_MAX;
      for (size_t i = 0; i < n; i++) {
        gtsize[gt[i]]++;
        psize[ids[i]]++;
        if (first_gt[ids[i]] == UINT32_MAX) first_gt[ids[i]] = gt[i];
        else if (first_gt[ids[i]] != gt[i]) pure[ids[i]] = 0;
      }
      size_t good = 0, pgood = 0;
      char a[4096], b[4096];
      for (size_t i = 0; i < n; i++) {
        if (pure[ids[i]] && psize[ids[i]] == gtsize[gt[i]]) good++;
        norm(log_miner_template(m, ids[i]), a, sizeof a);
        norm(gtt[i], b, sizeof b);
        if (!strcmp(a, b)) pgood++;
      }
      ev->lines = n;
      ev->ga = n ? (double)good / n : 1.0;
      ev->pa = n ? (double)pgood / n : 1.0;
      uint32_t *u = malloc((n ? n : 1) * sizeof *u);
      if (u) {
        memcpy(u, ids, n * sizeof *u);
        qsort(u, n, sizeof *u, cmp_u32);
        for (size_t i = 0; i < n; i++) ev->groups += (i == 0 || u[i] != u[i - 1]);
        memcpy(u, gt, n * sizeof *u);
        qsort(u, n, sizeof *u, cmp_u32);
        for (size_t i = 0; i < n; i++) ev->truth_groups += (i == 0 || u[i] != u[i - 1]);
        free(u);
      }
    } else {
      rc = kv_err_set(err, KV_ENOMEM, "%s: out of memory", csvpath);
    }
    free(gtsize), free(first_gt), free(psize), free(pure);
  }
  if (getenv("KVASIR_LOGS_EVAL_DUMP") && !rc) {
    /* debugging aid: print the ground-truth groups the parser got wrong */
    FILE *o = stderr;
    for (size_t i = 0; i < n; i++) fprintf(o, "%s\t%u\t%s\t%s\n", gtid[i], ids[i], log_miner_template(m, ids[i]), gtt[i]);
  }
  for (size_t i = 0; i < ngt; i++) free(gtid[i]), free(gtt[i]);
  free(gt), free(gtt), free(gtid);
out:
  free(ids);
  log_miner_free(m);
  free(log);
  free(csv);
  return rc;
}
