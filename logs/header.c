/*
 * header.c — learning a file's header layout from its first lines, with no
 * per-system configuration, and splitting lines into header fields and
 * content.
 *
 * A line is cut into columns: a timestamp span (which may cover several
 * whitespace tokens: "Jun 14 15:16:01"), a bracket group ("[IPC Server
 * handler 5]"), or a whitespace token. Each column gets a class: T time,
 * N number, L level, D dash, C component ending in ':', B bracket group,
 * H identifier-like (digits, dots, caps), W plain word. Over the sample the
 * modal class of each column position and its share are computed; the
 * header is the longest prefix of columns whose modal class is header-like
 * and shared by >= 80% of lines, stopping after the first C column (the
 * "component:" that ends most headers). Columns up to the last T/L/C of
 * that prefix are the "core": a line must match them to have a header at
 * all (other lines are continuations or stray). Trailing H/N/B/D columns
 * are stripped only when the line's class matches. A column of digits and
 * date/time separators holding a clock is a time column even when ts.c
 * cannot read it (time_shaped). The core does not run through a quoted
 * string (a column opening a quote it does not close is message text). A
 * file mixing layouts gets a chain of them (learn_mixed); a line takes the
 * layout of the chain it fits best (fewest core columns of another class).
 * A "(logger)" token ending nearly every line is a trailer, not content
 * (learn_trailer).
 *
 * Invariant: parsing never reads outside [line, line+len) and never fails.
 */
#include "logs/internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HCOLS 12

enum { C_NONE = 0, C_T, C_N, C_L, C_D, C_C, C_B, C_H, C_W, C_NCLASS };
static const char CLS_CH[] = "?TNLDCBHW";

struct log_fmt {
  int ncols;       /* header columns */
  int core;        /* columns that must match */
  int cls[HCOLS];
  log_rules off; /* LOG_R_* switched off */
  char delim;   /* '|' or '\t': the header is the first ndelim delimited fields */
  int ndelim;
  struct log_fmt *alt; /* the next layout of a file that mixes several (tried in order), or NULL */
  char trail;          /* '(' or '[': the line ends in a "(name)" trailer that is not content (first layout only) */
};

typedef struct col {
  size_t b, e;  /* byte range [b, e) */
  int cls;
  int64_t ms;   /* C_T: the time parsed when the column was cut */
} col;

static int is_sp(char c) { return c == ' ' || c == '\t'; }

static int classify(const char *s, size_t n, log_rules roff) {
  if (n == 0) return C_NONE;
  if (log_level_word(s, n) && !(n == 1 && 0)) return C_L;
  if ((n == 1 && (s[0] == '-' || s[0] == '|' || s[0] == '*')) || (n == 2 && s[0] == '-' && s[1] == '-')) return C_D;
  if (n >= 2 && s[n - 1] == ':' && s[n - 2] != ':' && !(n >= 3 && s[n - 2] == ']' && s[0] == '[')) return C_C;
  if (s[0] == '[' || s[0] == '(' || s[0] == '<') {
    char close = s[0] == '[' ? ']' : s[0] == '(' ? ')' : '>';
    size_t e = n;
    while (e > 1 && (s[e - 1] == ':' || s[e - 1] == ',')) e--;
    if (s[e - 1] == close) return C_B;
  }
  size_t core = n;
  while (core > 0 && (s[core - 1] == ',' || s[core - 1] == ';')) core--;
  /* a signed integer ("-1", "+3") is a number too (a flag, an exit status) */
  size_t d0 = core > 1 && (s[0] == '-' || s[0] == '+') && !(roff & LOG_R_H_SIGNED) ? 1 : 0;
  int alld = core > d0;
  for (size_t i = d0; i < core; i++)
    if (!isdigit((unsigned char)s[i])) alld = 0;
  if (alld) return C_N;
  if (n >= 2 && s[n - 1] == ':' && s[n - 2] != ':') return C_C;
  int digit = 0, punct = 0, upper = 0, lower = 0, camel = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isdigit(c)) digit = 1;
    else if (isupper(c)) {
      upper++;
      if (i && islower((unsigned char)s[i - 1])) camel = 1;
    } else if (islower(c)) lower++;
    else if (c == '.' || c == '_' || c == '-' || c == '$' || c == '/' || c == '@') punct = 1;
  }
  if (digit || punct || camel || (upper >= 2 && lower == 0)) return C_H;
  return C_W;
}

/* A timestamp in a shape the parser does not know ("20171223-22:15:29:606",
 * "16:49:06.123", "10.30 16:49:06"): digits and date/time separators only,
 * >= 4 digits, and a clock: 1-2 digits, ':', exactly 2 digits. Such a
 * column anchors the header like a time (its value is not read). */
static int time_shaped(const char *s, size_t n, log_rules roff) {
  if ((roff & LOG_R_H_TIME_SHAPE) || n < 4 || n > 40) return 0;
  int d = 0, clock = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isdigit(c)) d++;
    else if (!strchr("-:./,_ ", c)) return 0;
  }
  for (size_t i = 1; i + 2 < n + 0 && !clock; i++) {
    if (s[i] != ':' || !isdigit((unsigned char)s[i - 1])) continue;
    size_t b = i - 1;
    if (b > 0 && isdigit((unsigned char)s[b - 1])) b--;
    if (b > 0 && isdigit((unsigned char)s[b - 1])) continue; /* 3+ digits before ':' */
    if (isdigit((unsigned char)s[i + 1]) && isdigit((unsigned char)s[i + 2]) &&
        (i + 3 == n || !isdigit((unsigned char)s[i + 3])))
      clock = 1;
  }
  return clock && d >= 4;
}

/* Cut the first HCOLS columns of a line. Returns the number of columns. */
static int columns(const char *s, size_t n, col *cols, int year_hint, int maxcols, log_rules roff) {
  int k = 0;
  size_t i = 0;
  while (k < maxcols && k < HCOLS) {
    while (i < n && is_sp(s[i])) i++;
    if (i >= n) break;
    int64_t ms;
    size_t off = (s[i] == '[' && !(roff & LOG_R_H_BRACKET_TS)) ? 1 : 0;
    size_t t = log_ts_parse_rules(s + i + off, n - i - off, year_hint, roff, &ms);
    size_t e;
    int cls;
    cols[k].ms = INT64_MIN;
    if (t >= 6) {
      e = i + off + t;
      while (e < n && !is_sp(s[e])) e++;
      cls = C_T;
      cols[k].ms = ms;
    } else if (s[i] == '[') {
      int depth = 0;
      e = i;
      while (e < n && e - i < 512) {
        if (s[e] == '[') depth++;
        else if (s[e] == ']' && --depth == 0) break;
        e++;
      }
      if (e < n && s[e] == ']') {
        size_t in = e;
        e++;
        while (e < n && !is_sp(s[e])) e++;
        cls = log_level_word(s + i, e - i) ? C_L : time_shaped(s + i + 1, in - i - 1, roff) ? C_T : C_B;
      } else {
        e = i;
        while (e < n && !is_sp(s[e])) e++;
        cls = classify(s + i, e - i, roff);
      }
    } else {
      e = i;
      while (e < n && !is_sp(s[e])) e++;
      cls = time_shaped(s + i, e - i, roff) ? C_T : classify(s + i, e - i, roff);
    }
    cols[k].b = i;
    cols[k].e = e;
    cols[k].cls = cls;
    k++;
    i = e;
  }
  return k;
}

/* Class of the first column only (cheap; used to pick the usual lines). */
static int columns1(const char *s, size_t n, col *c, log_rules roff) {
  col tmp[HCOLS];
  if (columns(s, n, tmp, 2000, 1, roff) <= 0) return 0;
  c[0] = tmp[0];
  return 1;
}

static int header_like(int c) { return c != C_W && c != C_NONE; }

/* One delimited field [b, e) of a line, trimmed: what it holds. */
static void delim_field(const char *s, size_t b, size_t e, int year_hint, log_rules roff, log_line *out, int *saw_ts,
                        int *saw_lvl) {
  while (b < e && is_sp(s[b])) b++;
  while (e > b && is_sp(s[e - 1])) e--;
  if (b == e) return;
  int64_t ms;
  size_t t = log_ts_parse_rules(s + b, e - b, year_hint, roff, &ms);
  if ((t >= 6 && t + 1 >= e - b) || time_shaped(s + b, e - b, roff)) {
    if (out && out->ts_ms == INT64_MIN && t >= 6) out->ts_ms = ms;
    if (saw_ts) *saw_ts = 1;
    return;
  }
  int l = log_level_word(s + b, e - b);
  if (l) {
    if (out && !out->level) out->level = l;
    if (saw_lvl) *saw_lvl = 1;
    return;
  }
  if (out && !out->comp) out->comp = s + b, out->comp_len = e - b;
}

static int cmp_size(const void *a, const void *b) {
  size_t x = *(const size_t *)a, y = *(const size_t *)b;
  return (x > y) - (x < y);
}

/* Delimited layouts ("2016-03-01 08:00:00|INFO|app|msg", tab-separated):
 * when '|' or tab occurs at least twice in >= 90% of the lines, and the
 * fields before the k-th (k = the count 90% of lines reach) hold a time or
 * a level in >= 80% of them, the header is those k fields. A message may
 * hold the delimiter too: only the first k count. */
static void learn_delim(log_fmt *f, const char *const *lines, const size_t *lens, size_t n) {
  static const char D[2] = {'|', '\t'};
  size_t *cnt = malloc((n ? n : 1) * sizeof *cnt);
  if (!cnt) return;
  for (int di = 0; di < 2; di++) {
    size_t m = 0;
    for (size_t li = 0; li < n; li++) {
      if (lens[li] == 0 || lines[li][0] == ' ') continue;
      size_t c = 0, l = lens[li] < 4096 ? lens[li] : 4096;
      for (size_t i = 0; i < l; i++) c += lines[li][i] == D[di];
      cnt[m++] = c;
    }
    if (m < 5) break;
    qsort(cnt, m, sizeof *cnt, cmp_size);
    size_t k = cnt[m / 10];
    if (k < 2 || k > 11) continue;
    size_t anchored = 0, used = 0;
    for (size_t li = 0; li < n; li++) {
      if (lens[li] == 0 || lines[li][0] == ' ') continue;
      const char *s = lines[li];
      size_t b = 0, got = 0;
      int ts = 0, lv = 0;
      for (size_t i = 0; i < lens[li] && got < k; i++)
        if (s[i] == D[di]) delim_field(s, b, i, 2000, f->off, NULL, &ts, &lv), b = i + 1, got++;
      used++;
      anchored += got == k && (ts || lv);
    }
    if (used && anchored * 10 >= used * 8) {
      f->delim = D[di], f->ndelim = (int)k;
      if (f->ncols == 0) f->ncols = f->core = (int)k;
      break;
    }
  }
  free(cnt);
}

/* logfmt ("ts=... level=info logger=x msg=\"...\""): a line whose first
 * token is key=value and which has a msg/message key. Values are bare or
 * double-quoted (backslash escapes kept as they are in the content). */
static int parse_logfmt(const char *s, size_t n, int year_hint, log_rules roff, log_line *out) {
  size_t i = 0;
  if (!(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == '@')) return 0;
  while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '.' || s[i] == '@')) i++;
  if (i >= n || s[i] != '=') return 0;
  const char *msg = NULL, *ts = NULL, *lv = NULL, *cp = NULL;
  size_t msgl = 0, tsl = 0, lvl = 0, cpl = 0;
  i = 0;
  while (i < n) {
    while (i < n && is_sp(s[i])) i++;
    size_t kb = i;
    while (i < n && s[i] != '=' && !is_sp(s[i])) i++;
    if (i >= n || s[i] != '=') break;
    size_t kl = i - kb;
    const char *k = s + kb;
    i++;
    size_t vb = i, ve;
    if (i < n && s[i] == '"') {
      vb = ++i;
      while (i < n && s[i] != '"') i += (s[i] == '\\' && i + 1 < n) ? 2 : 1;
      ve = i < n ? i : n;
      if (i < n) i++;
    } else {
      while (i < n && !is_sp(s[i])) i++;
      ve = i;
    }
#define KEY(w) (kl == sizeof(w) - 1 && !memcmp(k, w, kl))
    if (KEY("msg") || KEY("message")) msg = s + vb, msgl = ve - vb;
    else if (KEY("ts") || KEY("time") || KEY("timestamp") || KEY("t") || KEY("@timestamp")) ts = s + vb, tsl = ve - vb;
    else if (KEY("level") || KEY("lvl") || KEY("severity")) lv = s + vb, lvl = ve - vb;
    else if (KEY("logger") || KEY("component") || KEY("module") || KEY("source") || KEY("caller")) cp = s + vb, cpl = ve - vb;
#undef KEY
  }
  if (!msg) return 0;
  out->has_header = 1;
  out->content = msg, out->content_len = msgl;
  int64_t ms;
  if (ts && log_ts_parse_rules(ts, tsl, year_hint, roff, &ms)) out->ts_ms = ms;
  if (lv) out->level = log_level_word(lv, lvl);
  if (cp) out->comp = cp, out->comp_len = cpl;
  return 1;
}

int log_fmt_learn(log_fmt **out, const char *const *lines, const size_t *lens, size_t n, kv_err *err) {
  return log_fmt_learn_rules(out, lines, lens, n, 0, err);
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static uint64_t masked_hash(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (isdigit((unsigned char)s[i])) return 1; /* anything with a digit: one value, as the miner types it */
  return kv_hash64(s, n) | 2;
}

/* Fan-out (h_fanout): is column j, right after a header that ends in a
 * level or a time, a header field made of plain words (a program name
 * without ':', "LEVEL sshd(pam_unix) msg")? A message's first word mostly
 * decides its second (a template is a fixed sequence): on the header set's
 * messages, the column after a word has <= 1.9 distinct values per value of
 * it. A field is followed by many messages: >= 2.5 per value. Also needed:
 * the column in >= 90% of the lines, a time, level or "comp:" in <= 5%, and
 * repeating (at most a tenth as many values as lines). */
static int fan_column(const char *const *lines, const size_t *lens, size_t n, int c0, int j, log_rules roff) {
  uint64_t *v = malloc((n ? n : 1) * 2 * sizeof *v);
  if (!v) return 0;
  size_t used = 0, got = 0, bad = 0;
  for (size_t li = 0; li < n; li++) {
    if (lens[li] == 0 || is_sp(lines[li][0])) continue;
    col cols[HCOLS];
    int k = columns(lines[li], lens[li], cols, 2000, j + 2, roff);
    if (k == 0 || (c0 >= 0 && cols[0].cls != c0)) continue;
    used++;
    if (k < j + 2) continue;
    int c = cols[j].cls;
    if (c == C_T || c == C_L || c == C_C) {
      bad++;
      continue;
    }
    uint64_t a = masked_hash(lines[li] + cols[j].b, cols[j].e - cols[j].b);
    uint64_t b = masked_hash(lines[li] + cols[j + 1].b, cols[j + 1].e - cols[j + 1].b);
    v[got] = a, v[n + got] = kv_hash64_more(a, &b, sizeof b), got++;
  }
  int ok = 0;
  if (bad * 20 <= used && used >= 20 && got * 10 >= used * 9) {
    qsort(v, got, sizeof *v, cmp_u64);
    qsort(v + n, got, sizeof *v, cmp_u64);
    size_t dv = 0, dp = 0;
    for (size_t i = 0; i < got; i++) dv += !i || v[i] != v[i - 1], dp += !i || v[n + i] != v[n + i - 1];
    ok = dv * 10 <= got && dp * 2 >= dv * 5;
  }
  free(v);
  return ok;
}

/* One layout from sample lines (all of a file's, or one group's). */
static void learn_one(log_fmt *f, const char *const *lines, const size_t *lens, size_t n, log_rules roff, double trail_min) {
  f->off = roff;
  unsigned cnt[HCOLS][C_NCLASS];
  unsigned have[HCOLS], quoted[HCOLS];
  memset(quoted, 0, sizeof quoted);
  memset(cnt, 0, sizeof cnt);
  memset(have, 0, sizeof have);
  /* Lines whose first column differs from the usual one (stack frames,
   * exception lines, junk) say nothing about the header: count the others. */
  unsigned first[C_NCLASS] = {0};
  for (size_t li = 0; li < n; li++) {
    if (lens[li] == 0 || is_sp(lines[li][0])) continue;
    col c1[1];
    size_t l1 = lens[li] < 256 ? lens[li] : 256;
    if (columns1(lines[li], l1, c1, roff)) first[c1[0].cls]++;
  }
  int c0 = 1;
  for (int c = 1; c < C_NCLASS; c++)
    if (first[c] > first[c0]) c0 = c;
  if (roff & LOG_R_H_ODD_FIRST) c0 = -1; /* every line counts */
  size_t used = 0;
  for (size_t li = 0; li < n; li++) {
    if (lens[li] == 0 || is_sp(lines[li][0])) continue; /* continuation lines say nothing */
    col cols[HCOLS];
    int k = columns(lines[li], lens[li], cols, 2000, HCOLS, roff);
    if (k == 0 || (c0 >= 0 && cols[0].cls != c0)) continue;
    for (int j = 0; j < k; j++) {
      cnt[j][cols[j].cls]++, have[j]++;
      /* a column that opens a quote it does not close (or closes one): a piece of a quoted message */
      const char *c = lines[li] + cols[j].b;
      size_t cl = cols[j].e - cols[j].b;
      if (cl && (c[0] == '"') != (cl > 1 && c[cl - 1] == '"')) quoted[j]++;
    }
    used++;
  }
  /* Strong columns (time, level, component) anchor the header; the columns
   * between them may vary in shape (hosts, ids, names) and only need to be
   * id-like. Columns after the last strong one are kept while they have a
   * consistent header-like shape. */
  int modal[HCOLS], h = 0, core = 0;
  double share[HCOLS], idshare[HCOLS];
  for (int j = 0; j < HCOLS; j++) {
    int best = 0;
    for (int c = 1; c < C_NCLASS; c++)
      if (cnt[j][c] > cnt[j][best]) best = c;
    modal[j] = best;
    share[j] = used ? (double)cnt[j][best] / used : 0;
    idshare[j] = used ? (double)(used - cnt[j][C_T] - cnt[j][C_NONE]) / used : 0;
  }
  for (int j = 0; j < HCOLS && used; j++) {
    int strong = (modal[j] == C_T || modal[j] == C_L) ? share[j] >= 0.8
                 : modal[j] == C_C                    ? share[j] >= 0.7
                 : modal[j] == C_D && j > 0 && !(roff & LOG_R_H_DASH_ANCHOR) ? share[j] >= 0.8
                                                                             : 0;
    int ok = strong || (header_like(modal[j]) && share[j] >= 0.8) || (!(roff & LOG_R_H_IDSHARE) && idshare[j] >= 0.9);
    /* the header does not run through a quoted string: what follows is message (h_quote_stop) */
    if (!(roff & LOG_R_H_MSG_SHAPE) && quoted[j] * 2 >= used) ok = 0;
    if (!ok || j > core + 5) break;
    if (strong) {
      for (int a = core; a < j; a++) f->cls[a] = modal[a] == C_W ? C_H : modal[a];
      f->cls[j] = modal[j];
      core = j + 1;
      if (modal[j] == C_C) break;
    }
  }
  h = core;
  int dash_end = core && f->cls[core - 1] == C_D && !(roff & LOG_R_H_DASH_ANCHOR); /* "- -", " - ": the header ends there */
  for (int j = core; j < HCOLS && core && f->cls[core - 1] != C_C && !dash_end && !(roff & LOG_R_H_TRAIL); j++) {
    if (!header_like(modal[j]) || share[j] < trail_min) break;
    f->cls[j] = modal[j];
    h = j + 1;
  }
  /* A header without any time, level or component column is not a header. */
  if (core == 0) h = 0;
  if (!(roff & LOG_R_H_FANOUT) && h && h + 1 < HCOLS && (f->cls[h - 1] == C_L || f->cls[h - 1] == C_T) &&
      fan_column(lines, lens, n, c0, h, roff))
    f->cls[h] = C_W, h++;
  f->ncols = h;
  f->core = core;
  if (!(roff & LOG_R_H_DELIM)) learn_delim(f, lines, lens, n);
}

static void parse_one(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out);
static void parse_fit(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out, int *miss);
static int parse_logfmt(const char *s, size_t n, int year_hint, log_rules roff, log_line *out);

static void line_init(const char *s, size_t n, log_line *out) {
  memset(out, 0, sizeof *out);
  out->ts_ms = INT64_MIN;
  out->pid = -1;
  out->content = s;
  out->content_len = n;
}

/* A line that should have a header: not a continuation, JSON or logfmt. */
static int plain_line(const char *s, size_t n, log_rules roff) {
  if (n == 0 || is_sp(s[0]) || s[0] == '{' || log_is_continuation(s, n)) return 0;
  log_line ln;
  line_init(s, n, &ln);
  return (roff & LOG_R_H_LOGFMT) || !parse_logfmt(s, n, 2000, roff, &ln);
}

/* A layout strong enough to stand beside another: a time column, or at
 * least three columns ending in "component:" (syslog with a priority glued
 * to the month, "<11>Mar  1 08:00:00 host prog[1]:", has no time column). */
static int strong_layout(const log_fmt *f) {
  for (int j = 0; j < f->core; j++)
    if (f->cls[j] == C_T) return 1;
  return f->delim != 0 || (f->core >= 3 && f->cls[f->core - 1] == C_C);
}

#define MAXALT 6 /* layouts in one file */

static int strong_cls(int c) { return c == C_T || c == C_L || c == C_C; }

/* Anchors among the first three columns (the ones lines are grouped by:
 * further out, a "status:" of the message passes for a component). */
static int strong_count(const log_fmt *f) {
  int k = 0;
  for (int j = 0; j < f->core && j < 3; j++) k += strong_cls(f->cls[j]);
  return k;
}

/* Two layouts that agree on every time, level and component column both
 * have (one may be longer): the same layout seen on different lines. */
static int compatible(const log_fmt *a, const log_fmt *b) {
  if (a->delim || b->delim) return a->delim == b->delim && a->ndelim == b->ndelim;
  int n = a->ncols < b->ncols ? a->ncols : b->ncols;
  for (int j = 0; j < n; j++)
    if (a->cls[j] != b->cls[j] && (strong_cls(a->cls[j]) || strong_cls(b->cls[j]))) return 0;
  return 1;
}

/* Several layouts mixed in one file (lines from different programs merged,
 * a format change in the middle): when the layout learnt from all lines
 * leaves >= 10% of the lines that should have a header (>= 20 of them)
 * without one, the lines are grouped by the classes of their first three
 * columns and a layout is learnt from each group in turn, largest first,
 * from the lines no layout so far parses. Every layout of the chain
 * must be strong (strong_layout: a stray group of junk lines is not one). The
 * chain replaces the single layout when it gives more lines a header, or as
 * many when two of its layouts disagree on a time, level or component column
 * or has more of them than the single layout and fits other groups' lines
 * too (the single layout was a compromise between two, "T LEVEL comp:" and
 * "T LEVEL [thread] class:" learnt as "T LEVEL"). */
static void learn_mixed(log_fmt *f, const char *const *lines, const size_t *lens, size_t n, log_rules roff) {
  uint8_t *left = calloc(n ? n : 1, 1);
  uint16_t *sig = calloc(n ? n : 1, sizeof *sig);
  const char **sl = malloc((n ? n : 1) * sizeof *sl);
  size_t *sn = malloc((n ? n : 1) * sizeof *sn);
  log_fmt *chain[MAXALT] = {0};
  size_t ext[MAXALT] = {0}; /* lines of other groups each layout gave a header */
  int nch = 0;
  if (!left || !sig || !sl || !sn) goto out;
  size_t cand = 0, miss = 0;
  for (size_t i = 0; i < n; i++) {
    if (!plain_line(lines[i], lens[i], roff)) continue;
    cand++;
    log_line ln;
    line_init(lines[i], lens[i], &ln);
    parse_one(f, lines[i], lens[i], 2000, &ln);
    miss += !ln.has_header;
    left[i] = 1;
    col c[3];
    int k = columns(lines[i], lens[i] < 512 ? lens[i] : 512, c, 2000, 3, roff);
    /* words, ids and numbers stand for each other in a layout: one class here */
    int s3[3] = {0, 0, 0};
    for (int j = 0; j < k && j < 3; j++) s3[j] = c[j].cls == C_W || c[j].cls == C_N ? C_H : c[j].cls;
    sig[i] = (uint16_t)(1 + s3[0] * 100 + s3[1] * 10 + s3[2]);
  }
  int missing = miss >= 20 && miss * 10 >= cand;
  if (cand < 20) goto out;
  size_t got = 0;
  while (nch < MAXALT) {
    uint16_t key[64];
    size_t kc[64];
    int nk = 0;
    for (size_t i = 0; i < n; i++) {
      if (!left[i]) continue;
      int j = 0;
      while (j < nk && key[j] != sig[i]) j++;
      if (j == nk) {
        if (nk == 64) continue;
        key[nk] = sig[i], kc[nk] = 0, nk++;
      }
      kc[j]++;
    }
    int b = -1;
    for (int j = 0; j < nk; j++)
      if (b < 0 || kc[j] > kc[b]) b = j;
    if (b < 0 || kc[b] < 10 || kc[b] * 20 < cand) break;
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
      if (left[i] && sig[i] == key[b]) sl[m] = lines[i], sn[m] = lens[i], m++, left[i] = 0;
    log_fmt *g = calloc(1, sizeof *g);
    if (!g) break;
    learn_one(g, sl, sn, m, roff, roff & LOG_R_H_MSG_SHAPE ? 0.8 : 0.95);
    if (g->ncols == 0 || !strong_layout(g)) {
      free(g);
      continue;
    }
    chain[nch++] = g;
    for (size_t i = 0; i < n; i++) {
      if (!left[i] && !(sig[i] == key[b])) continue;
      log_line ln;
      line_init(lines[i], lens[i], &ln);
      parse_one(g, lines[i], lens[i], 2000, &ln);
      if (ln.has_header) got++, left[i] = 0, ext[nch - 1] += sig[i] != key[b];
    }
  }
  /* accepted when it gives more lines a header than the single layout did
   * (which left many without), or as many when two of its layouts disagree
   * on a time, level or component column (one layout was a compromise) */
  int clash = 0;
  for (int a = 0; a < nch; a++) {
    for (int b2 = a + 1; b2 < nch; b2++) clash |= !compatible(chain[a], chain[b2]);
    /* a layout with more anchors than the single one, that fits other
     * groups' lines too: the single layout was what two had in common */
    if (ext[a] >= 20 && ext[a] * 20 >= cand && strong_count(chain[a]) > strong_count(f)) clash = 1;
  }
  if (nch == 0 || !(missing ? got > cand - miss : clash && got >= cand - miss)) goto out;
  /* the chain replaces the single layout: f takes the first one's place */
  *f = *chain[0];
  free(chain[0]);
  for (int j = 0; j + 1 < nch; j++) (j ? chain[j] : f)->alt = chain[j + 1];
  nch = 0;
out:
  for (int j = 0; j < nch; j++) free(chain[j]);
  free(left), free(sig), free(sl), free(sn);
}

/* A trailer: the last token of the line is "(name)" or "[name]", a name of
 * letters, digits, . _ $ : / - and nested brackets, with a letter and
 * nothing else (no '=', no space): log4j's "%m (%c)" (Kafka: "msg (kafka.server.KafkaServer)").
 * Returns where the token starts, or n. */
static size_t trailer_at(const char *s, size_t n, char open) {
  char close = open == '(' ? ')' : ']';
  while (n && is_sp(s[n - 1])) n--;
  if (n < 4 || s[n - 1] != close) return n;
  size_t b = n - 1;
  int alpha = 0, depth = 1; /* brackets nest: "(kafka.sshd(pam_unix))" */
  while (b > 0) {
    unsigned char c = (unsigned char)s[b - 1];
    if (c == (unsigned char)open && --depth == 0) break;
    if (c == (unsigned char)close) depth++;
    else if (isalpha(c)) alpha = 1;
    else if (c != (unsigned char)open && !isdigit(c) && !strchr("._$:/-", c)) return n;
    b--;
  }
  if (b == 0 || !alpha || b + 1 >= n - 1) return n;
  b--; /* the opening bracket */
  if (b == 0 || !is_sp(s[b - 1])) return n;
  return b;
}

/* The trailer is the file's when >= 90% of the lines that have a header end
 * in one, and its names repeat (at most a quarter as many names as lines: a
 * logger, not a message's last word). */
static void learn_trailer(log_fmt *f, const char *const *lines, const size_t *lens, size_t n, log_rules roff) {
  static const char OPEN[2] = {'(', '['};
  uint64_t *h = malloc((n ? n : 1) * sizeof *h);
  if (!h) return;
  for (int o = 0; o < 2 && !f->trail; o++) {
    size_t cand = 0, got = 0;
    for (size_t i = 0; i < n; i++) {
      if (!plain_line(lines[i], lens[i], roff)) continue;
      log_line ln;
      line_init(lines[i], lens[i], &ln);
      parse_one(f, lines[i], lens[i], 2000, &ln);
      if (!ln.has_header) continue;
      cand++;
      size_t b = trailer_at(ln.content, ln.content_len, OPEN[o]);
      if (b == ln.content_len || b == 0) continue;
      size_t e = ln.content_len;
      while (e && is_sp(ln.content[e - 1])) e--;
      h[got++] = kv_hash64(ln.content + b, e - b);
    }
    if (cand < 20 || got * 10 < cand * 9) continue;
    qsort(h, got, sizeof *h, cmp_u64);
    size_t distinct = 0;
    for (size_t i = 0; i < got; i++) distinct += !i || h[i] != h[i - 1];
    if (distinct * 4 <= got) f->trail = OPEN[o];
  }
  free(h);
}

int log_fmt_learn_rules(log_fmt **out, const char *const *lines, const size_t *lens, size_t n, log_rules roff,
                        kv_err *err) {
  log_fmt *f = calloc(1, sizeof *f);
  if (!f) return kv_err_set(err, KV_ENOMEM, "logs: out of memory learning a header");
  learn_one(f, lines, lens, n, roff, 0.8);
  if (!(roff & LOG_R_H_MIXED)) learn_mixed(f, lines, lens, n, roff);
  if (!(roff & LOG_R_H_TRAILER) && f->ncols && !f->alt) learn_trailer(f, lines, lens, n, roff);
  *out = f;
  return 0;
}

void log_fmt_free(log_fmt *f) {
  while (f) {
    log_fmt *a = f->alt;
    free(f);
    f = a;
  }
}
int log_fmt_columns(const log_fmt *f) { return f ? f->ncols : 0; }

void log_fmt_describe(const log_fmt *f, char *buf, size_t n) {
  if (!n) return;
  size_t k = 0;
  buf[0] = 0;
  for (; f && k + 4 < n; f = f->alt) {
    if (k) buf[k++] = ' ', buf[k++] = '/', buf[k++] = ' ';
    if (f->delim) {
      k += (size_t)snprintf(buf + k, n - k, "%d %s-separated fields", f->ndelim, f->delim == '|' ? "|" : "tab");
      if (k >= n) k = n - 1;
      continue;
    }
    for (int j = 0; j < f->ncols && k + 2 < n; j++) {
      buf[k++] = CLS_CH[f->cls[j]];
      if (j + 1 == f->core && k + 2 < n) buf[k++] = '|';
    }
    if (f->trail && k + 6 < n) {
      k += (size_t)snprintf(buf + k, n - k, " %c..%c", f->trail, f->trail == '(' ? ')' : ']');
      if (k >= n) k = n - 1;
    }
  }
  buf[k] = 0;
}

/* Component "sshd(pam_unix)[19939]:" -> name "sshd(pam_unix)", pid 19939. */
static void component(const char *s, size_t n, log_line *out) {
  while (n && (s[n - 1] == ':' || s[n - 1] == ',')) n--;
  if (n >= 3 && s[n - 1] == ']') {
    size_t o = n - 1;
    while (o > 0 && s[o - 1] != '[') o--;
    if (o > 0) {
      int64_t v = 0;
      int ok = o < n - 1;
      for (size_t i = o; i < n - 1; i++) {
        if (!isdigit((unsigned char)s[i]) || v > (int64_t)1e15) ok = 0;
        else v = v * 10 + (s[i] - '0');
      }
      if (ok) {
        out->pid = v;
        n = o - 1;
      }
    }
  }
  out->comp = s;
  out->comp_len = n;
}

/* JSON-lines: pick ts/time/@timestamp, level/severity, msg/message. Only a
 * shallow scan for string or number values of top-level-looking keys. */
static int json_field(const char *s, size_t n, const char *const *keys, const char **v, size_t *vl) {
  for (int k = 0; keys[k]; k++) {
    size_t kl = strlen(keys[k]);
    for (size_t i = 0; i + kl + 3 < n; i++) {
      if (s[i] != '"' || memcmp(s + i + 1, keys[k], kl) || s[i + 1 + kl] != '"') continue;
      size_t j = i + kl + 2;
      while (j < n && (is_sp(s[j]) || s[j] == ':')) j++;
      if (j >= n) break;
      if (s[j] == '"') {
        size_t e = j + 1;
        while (e < n && s[e] != '"') e += (s[e] == '\\') ? 2 : 1;
        if (e > n) e = n;
        *v = s + j + 1;
        *vl = e - j - 1;
      } else {
        size_t e = j;
        while (e < n && s[e] != ',' && s[e] != '}') e++;
        *v = s + j;
        *vl = e - j;
      }
      return 1;
    }
  }
  return 0;
}

static int parse_json(const char *s, size_t n, int year_hint, log_rules roff, log_line *out) {
  static const char *const TK[] = {"@timestamp", "timestamp", "time", "ts", "t", NULL};
  static const char *const LK[] = {"level", "severity", "lvl", "loglevel", NULL};
  static const char *const MK[] = {"message", "msg", "log", NULL};
  static const char *const CK[] = {"logger", "component", "source", "name", NULL};
  const char *v;
  size_t vl;
  if (!json_field(s, n, MK, &v, &vl)) return 0;
  out->content = v;
  out->content_len = vl;
  out->has_header = 1;
  const char *t;
  size_t tl;
  if (json_field(s, n, TK, &t, &tl)) {
    int64_t ms;
    size_t used = log_ts_parse_rules(t, tl, year_hint, roff, &ms);
    if (used) {
      /* epoch with fraction: 1700000000.123 */
      if (used == 10 && tl > 11 && t[10] == '.') {
        int64_t f = 0, k = 0;
        for (size_t i = 11; i < tl && k < 3 && isdigit((unsigned char)t[i]); i++, k++) f = f * 10 + (t[i] - '0');
        while (k++ < 3) f *= 10;
        ms += f;
      }
      out->ts_ms = ms;
    }
  }
  if (json_field(s, n, LK, &t, &tl)) out->level = log_level_word(t, tl);
  if (json_field(s, n, CK, &t, &tl)) out->comp = t, out->comp_len = tl;
  return 1;
}

static void parse_layouts(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out);

void log_line_parse(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out) {
  while (n && (s[n - 1] == '\r' || s[n - 1] == '\n')) n--;
  line_init(s, n, out);
  log_rules roff = f ? f->off : 0;
  if (n > 1 && s[0] == '{' && parse_json(s, n, year_hint, roff, out)) return;
  if (n > 2 && !(roff & LOG_R_H_LOGFMT) && parse_logfmt(s, n, year_hint, roff, out)) return;
  parse_layouts(f, s, n, year_hint, out);
  if (f && f->trail && out->has_header) {
    size_t b = trailer_at(out->content, out->content_len, f->trail);
    if (b < out->content_len && b > 0) {
      size_t e = out->content_len;
      while (e && is_sp(out->content[e - 1])) e--;
      if (!out->comp) out->comp = out->content + b + 1, out->comp_len = e - b - 2;
      while (b && is_sp(out->content[b - 1])) b--;
      out->content_len = b;
    }
  }
}

static void parse_layouts(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out) {
  log_rules roff = f ? f->off : 0;
  if (f && f->alt && !(roff & LOG_R_H_BEST_FIT)) {
    /* Several layouts: the line takes the one it fits best (fewest core
     * columns of another class), the first of those on a tie. A loose fit
     * to an earlier layout (log4j's "[thread]" read where a Python line's
     * " - " stands) would cut the message at the wrong column. */
    log_line best;
    int bmiss = -1;
    for (const log_fmt *g = f; g; g = g->alt) {
      int miss;
      line_init(s, n, out);
      parse_fit(g, s, n, year_hint, out, &miss);
      if (out->has_header && (bmiss < 0 || miss < bmiss)) best = *out, bmiss = miss;
      if (bmiss == 0) break;
    }
    if (bmiss >= 0) *out = best;
    else line_init(s, n, out);
    return;
  }
  for (const log_fmt *g = f; g; g = g->alt) {
    parse_one(g, s, n, year_hint, out);
    if (out->has_header || !g->alt) return;
    line_init(s, n, out);
  }
}

/* The line under one layout; has_header = 0 (content = the line) when it
 * does not match. */
static void parse_one(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out) {
  int miss;
  parse_fit(f, s, n, year_hint, out, &miss);
}

/* parse_one, counting in *miss the core columns of the line whose class is
 * not the layout's (an id for a number, a word where a bracket group is
 * wanted: accepted, but a looser fit). */
static void parse_fit(const log_fmt *f, const char *s, size_t n, int year_hint, log_line *out, int *miss) {
  log_rules roff = f ? f->off : 0;
  *miss = 0;
  if (!f || f->ncols == 0 || n == 0 || is_sp(s[0])) return;
  if (f->delim) {
    size_t b = 0, got = 0, i;
    for (i = 0; i < n && got < (size_t)f->ndelim; i++)
      if (s[i] == f->delim) {
        if (!got) out->has_header = 1;
        delim_field(s, b, i, year_hint, roff, out, NULL, NULL);
        b = i + 1, got++;
      }
    if (got < (size_t)f->ndelim) { /* not this file's layout: content is the whole line */
      out->has_header = 0, out->ts_ms = INT64_MIN, out->level = 0, out->comp = NULL, out->comp_len = 0;
      return;
    }
    while (b < n && is_sp(s[b])) b++;
    out->content = s + b, out->content_len = n - b;
    return;
  }
  col cols[HCOLS];
  int k = columns(s, n, cols, year_hint, f->ncols + 3, roff);
  if (k < f->core) return;
  int j;
  for (j = 0; j < f->core; j++) {
    int want = f->cls[j], got = cols[j].cls;
    if (got == want) continue;
    /* A component with spaces ("Google Chrome Helper[123]:"): absorb up to
     * three more columns until one ends in ':'. */
    if (want == C_C && !(roff & LOG_R_H_ABSORB_COMP)) {
      int m = j;
      while (m + 1 < k && m < j + 3 && cols[m].cls != C_C) m++;
      if (cols[m].cls == C_C) {
        cols[j].e = cols[m].e;
        k = j + 1;
        (*miss)++;
        break;
      }
    }
    /* N and H both stand for ids/hosts; T and N for epoch-like stamps. */
    if (want != C_T && want != C_L && want != C_C && got != C_T) {
      (*miss)++;
      continue;
    }
    return;
  }
  int end = j < f->core ? j + 1 : f->core;
  if (end > k) end = k;
  for (j = end; j < f->ncols && j < k; j++) {
    /* a fan-out column (C_W) is any token but a time */
    if (cols[j].cls != f->cls[j] && !(f->cls[j] == C_W && cols[j].cls != C_T && cols[j].cls != C_NONE)) break;
    end = j + 1;
  }
  out->has_header = 1;
  int saw_num = 0;
  for (j = 0; j < end; j++) {
    const char *b = s + cols[j].b;
    size_t l = cols[j].e - cols[j].b;
    switch (f->cls[j]) {
    case C_T:
      if (out->ts_ms == INT64_MIN) {
        int64_t ms;
        size_t off = b[0] == '[' ? 1 : 0;
        if (cols[j].cls == C_T) out->ts_ms = cols[j].ms; /* parsed when cut */
        else if (log_ts_parse_rules(b + off, n - cols[j].b - off, year_hint, roff, &ms)) out->ts_ms = ms;
      }
      break;
    case C_L:
      if (!out->level) out->level = log_level_word(b, l);
      break;
    case C_C: component(b, l, out); break;
    case C_B:
      if (!out->thread) out->thread = b + 1, out->thread_len = l >= 2 ? l - 2 : 0;
      break;
    case C_N:
      if (!saw_num && l < 16) {
        int64_t v = 0;
        for (size_t i = 0; i < l && isdigit((unsigned char)b[i]); i++) v = v * 10 + (b[i] - '0');
        if (out->pid < 0) out->pid = v;
        saw_num = 1;
      }
      break;
    case C_W:
      if (!out->comp) out->comp = b, out->comp_len = l;
      break;
    case C_H:
      if (!out->comp && j + 1 < end && f->cls[j + 1] != C_T) out->comp = b, out->comp_len = l;
      break;
    default: break;
    }
  }
  size_t c = cols[end - 1].e;
  while (c < n && is_sp(s[c])) c++;
  /* "- message" after a thread group (log4j/zookeeper style) */
  if (c + 1 < n && s[c] == '-' && s[c + 1] == ' ' && f->cls[end - 1] != C_D && !(roff & LOG_R_H_DASH_MSG)) {
    c += 2;
    while (c < n && is_sp(s[c])) c++;
  }
  out->content = s + c;
  out->content_len = n - c;
}

int log_is_continuation(const char *s, size_t n) {
  if (n == 0) return 1;
  if (is_sp(s[0])) return 1;
  static const char *const P[] = {"at ", "Caused by", "Traceback", "...", "File \"", "During handling",
                                  "Suppressed:", "}", ")", "]", NULL};
  for (int k = 0; P[k]; k++) {
    size_t l = strlen(P[k]);
    if (n >= l && !memcmp(s, P[k], l)) return 1;
  }
  /* "java.lang.IllegalStateException: msg" / "ValueError: x" exception lines */
  size_t i = 0;
  int dots = 0;
  while (i < n && (isalnum((unsigned char)s[i]) || s[i] == '.' || s[i] == '_' || s[i] == '$')) dots += s[i++] == '.';
  if (i > 3 && i < n && s[i] == ':' && (i + 1 == n || s[i + 1] == ' ')) {
    if (dots >= 1 || (i > 5 && (!memcmp(s + i - 5, "Error", 5) || (i > 9 && !memcmp(s + i - 9, "Exception", 9)))))
      return 1;
  }
  return 0;
}
