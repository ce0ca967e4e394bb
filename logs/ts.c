/*
 * ts.c — timestamp and level recognition. log_ts_parse() tries a fixed list
 * of shapes at one position and never reads past n; it accepts a shape only
 * if every field is in range, so a random number is not taken for a date
 * (epoch values must fall in 2000..2040). Results are UTC milliseconds; a
 * zone offset, when present, is applied; a missing year comes from the hint.
 */
#include "logs/internal.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int64_t mk_ms(int y, int mo, int d, int h, int mi, int s, int ms) {
  return ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000LL + s * 1000LL + ms;
}

/* Read between lo and hi digits at s[*i]; returns digits read (0 = fail). */
static int digits(const char *s, size_t n, size_t *i, int lo, int hi, int *val) {
  int k = 0, v = 0;
  while (*i + k < n && k < hi && isdigit((unsigned char)s[*i + k])) v = v * 10 + (s[*i + k++] - '0');
  if (k < lo) return 0;
  *i += k;
  *val = v;
  return k;
}

static const char *MONTHS[12] = {"jan", "feb", "mar", "apr", "may", "jun",
                                 "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *WDAYS[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int month_at(const char *s, size_t n, size_t i) {
  if (i + 3 > n) return 0;
  for (int m = 0; m < 12; m++)
    if (tolower((unsigned char)s[i]) == MONTHS[m][0] && tolower((unsigned char)s[i + 1]) == MONTHS[m][1] &&
        tolower((unsigned char)s[i + 2]) == MONTHS[m][2])
      return m + 1;
  return 0;
}

static int wday_at(const char *s, size_t n, size_t i) {
  if (i + 3 > n) return 0;
  for (int w = 0; w < 7; w++)
    if (tolower((unsigned char)s[i]) == WDAYS[w][0] && tolower((unsigned char)s[i + 1]) == WDAYS[w][1] &&
        tolower((unsigned char)s[i + 2]) == WDAYS[w][2])
      return 1;
  return 0;
}

/* A weekday or month name as a whole word (the ones the shapes above read:
 * "Sun", "sunday", "JUL", "July"): 1 weekday, 2 month, 0 neither. The
 * miner types such a word as part of a time when a number or another time
 * piece stands next to it (m_time_piece, mine.c). */
int log_ts_calendar_word(const char *s, size_t n) {
  static const char *const FULLM[12] = {"january", "february", "march",     "april",   "may",      "june",
                                        "july",    "august",   "september", "october", "november", "december"};
  static const char *const FULLW[7] = {"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"};
  if (n < 3 || n > 9 || !isalpha((unsigned char)s[0])) return 0;
  int m = month_at(s, n, 0), w = wday_at(s, n, 0);
  if (!m && !w) return 0;
  if (n == 3) return w ? 1 : 2;
  if (m && strlen(FULLM[m - 1]) == n && !strncasecmp(s, FULLM[m - 1], n)) return 2;
  for (int k = 0; k < 7; k++)
    if (strlen(FULLW[k]) == n && !strncasecmp(s, FULLW[k], n)) return 1;
  return 0;
}

static int is_alnum_at(const char *s, size_t n, size_t i) { return i < n && isalnum((unsigned char)s[i]); }

static int valid(int y, int mo, int d, int h, int mi, int sec) {
  static const int DIM[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo >= 1 && mo <= 12 && d > DIM[mo - 1]) return 0;
  if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 0;
  return y >= 1970 && y <= 2100 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h >= 0 && h <= 23 && mi >= 0 &&
         mi <= 59 && sec >= 0 && sec <= 60;
}

/* HH:MM:SS with optional fraction ([.,]digits); sep is ':' or '.'. */
static int time_at(const char *s, size_t n, size_t *i, int *h, int *mi, int *sec, int *ms) {
  size_t j = *i;
  if (!digits(s, n, &j, 1, 2, h)) return 0;
  if (j >= n || (s[j] != ':' && s[j] != '.')) return 0;
  char sep = s[j++];
  if (!digits(s, n, &j, 2, 2, mi)) return 0;
  if (j >= n || s[j] != sep) return 0;
  j++;
  if (!digits(s, n, &j, 2, 2, sec)) return 0;
  *ms = 0;
  if (j + 1 < n && (s[j] == '.' || s[j] == ',') && isdigit((unsigned char)s[j + 1])) {
    j++;
    int k = 0, v = 0;
    while (j < n && isdigit((unsigned char)s[j])) {
      if (k < 3) v = v * 10 + (s[j] - '0');
      k++, j++;
    }
    while (k < 3) v *= 10, k++;
    *ms = v;
  }
  *i = j;
  return 1;
}

/* Optional zone: Z, +hh, +hhmm, +hh:mm. Returns offset minutes applied. */
static int zone_at(const char *s, size_t n, size_t *i, int *off_min) {
  size_t j = *i;
  *off_min = 0;
  if (j < n && s[j] == ' ' && j + 1 < n && (s[j + 1] == '+' || s[j + 1] == '-') && j + 5 < n &&
      isdigit((unsigned char)s[j + 2]))
    j++;
  if (j < n && s[j] == 'Z') {
    *i = j + 1;
    return 1;
  }
  if (j < n && (s[j] == '+' || s[j] == '-')) {
    int sign = s[j] == '-' ? -1 : 1, hh, mm = 0;
    size_t k = j + 1;
    if (!digits(s, n, &k, 2, 2, &hh)) return 0;
    if (k < n && s[k] == ':') k++;
    size_t k2 = k;
    if (digits(s, n, &k2, 2, 2, &mm)) k = k2;
    if (hh > 14 || mm > 59 || is_alnum_at(s, n, k)) return 0;
    *off_min = sign * (hh * 60 + mm);
    *i = k;
    return 1;
  }
  return 0;
}

size_t log_ts_parse(const char *s, size_t n, int year_hint, int64_t *ms) { return log_ts_parse_rules(s, n, year_hint, 0, ms); }

size_t log_ts_parse_rules(const char *s, size_t n, int year_hint, log_rules off_rules, int64_t *ms) {
  int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
  size_t i = 0;
  if (n == 0 || !s) return 0;
  /* every format starts with a digit or with a day or month name followed
   * by ' ' or ',' (F, E below): reject the rest at once */
  if (!isdigit((unsigned char)s[0]) && (n < 5 || (s[3] != ' ' && s[3] != ','))) return 0;
  if (isdigit((unsigned char)s[0])) {
    /* and one starting with a digit has 4 (A), 2 or 1 (B, D, G), 6 (C),
     * 10 or 13 (H) of them, followed by what that format needs: most
     * numbers are rejected here */
    size_t k = 0;
    while (k < n && k < 14 && isdigit((unsigned char)s[k])) k++;
    char nx = k < n ? s[k] : 0;
    int maybe = (k == 4 && (nx == '-' || nx == '/' || nx == '.')) || (k == 2 && (nx == '/' || nx == '-')) ||
                (k == 1 && nx == '/') || (k == 6 && nx == ' ') || k == 10 || k == 13;
    if (!maybe) return 0;
  }
  if (year_hint < 1970 || year_hint > 2100) year_hint = 2000;
  /* A. YYYY-MM-DD[ T_-]HH:MM:SS[.f][zone]  (also / and . separators) */
  if (digits(s, n, &i, 4, 4, &y) && i < n && (s[i] == '-' || s[i] == '/' || s[i] == '.')) {
    char ds = s[i++];
    if (digits(s, n, &i, 1, 2, &mo) && i < n && s[i] == ds && (i++, digits(s, n, &i, 1, 2, &d))) {
      size_t dateend = i;
      if (i + 1 < n && (s[i] == 'T' || s[i] == ' ' || (s[i] == '-' && !(off_rules & LOG_R_TS_DOTTED)) || s[i] == '_' ||
                        s[i] == ':')) {
        size_t j = i + 1;
        if (time_at(s, n, &j, &h, &mi, &sec, &frac)) {
          i = j;
          zone_at(s, n, &i, &off);
          if (valid(y, mo, d, h, mi, sec) && !is_alnum_at(s, n, i)) {
            *ms = mk_ms(y, mo, d, h, mi, sec, frac) - off * 60000LL;
            return i;
          }
        }
      }
      if (valid(y, mo, d, 0, 0, 0) && !is_alnum_at(s, n, dateend)) {
        *ms = mk_ms(y, mo, d, 0, 0, 0, 0);
        return dateend;
      }
    }
    return 0;
  }
  i = 0;
  /* B. yy/mm/dd HH:MM:SS ; C. yymmdd HHMMSS ; D. MM-DD HH:MM:SS.mmm ;
   * G. DD/Mon/YYYY:HH:MM:SS zone ; H. epoch */
  if (isdigit((unsigned char)s[0])) {
    int a, b, c;
    size_t j = 0;
    if (!(off_rules & LOG_R_TS_YY_SLASH) && digits(s, n, &j, 2, 2, &a) && j < n && s[j] == '/' &&
        (j++, digits(s, n, &j, 2, 2, &b)) && j < n &&
        s[j] == '/' && (j++, digits(s, n, &j, 2, 2, &c)) && j + 1 < n && s[j] == ' ') {
      size_t k = j + 1;
      if (time_at(s, n, &k, &h, &mi, &sec, &frac) && valid(2000 + a, b, c, h, mi, sec) && !is_alnum_at(s, n, k)) {
        *ms = mk_ms(2000 + a, b, c, h, mi, sec, frac);
        return k;
      }
    }
    j = 0;
    if (!(off_rules & LOG_R_TS_YYMMDD) && digits(s, n, &j, 6, 6, &a) && j == 6 && j + 7 <= n && s[6] == ' ') {
      size_t k = 7;
      if (digits(s, n, &k, 6, 6, &b) && k == 13 && !is_alnum_at(s, n, 13)) {
        int yy = a / 10000, mm = a / 100 % 100, dd = a % 100;
        int hh = b / 10000, m2 = b / 100 % 100, ss = b % 100;
        if (valid(2000 + yy, mm, dd, hh, m2, ss)) {
          *ms = mk_ms(2000 + yy, mm, dd, hh, m2, ss, 0);
          return 13;
        }
      }
    }
    j = 0;
    if (!(off_rules & LOG_R_TS_MMDD) && digits(s, n, &j, 2, 2, &a) && j < n && s[j] == '-' &&
        (j++, digits(s, n, &j, 2, 2, &b)) && j + 1 < n &&
        s[j] == ' ' && !(j + 1 < n && s[j + 1] == '-')) {
      size_t k = j + 1;
      if (time_at(s, n, &k, &h, &mi, &sec, &frac) && valid(year_hint, a, b, h, mi, sec) &&
          !is_alnum_at(s, n, k)) {
        *ms = mk_ms(year_hint, a, b, h, mi, sec, frac);
        return k;
      }
    }
    j = 0;
    if (digits(s, n, &j, 1, 2, &a) && j < n && s[j] == '/' && (mo = month_at(s, n, j + 1)) && j + 4 < n &&
        s[j + 4] == '/') {
      size_t k = j + 5;
      if (digits(s, n, &k, 4, 4, &y) && k < n && s[k] == ':' && (k++, time_at(s, n, &k, &h, &mi, &sec, &frac)) &&
          valid(y, mo, a, h, mi, sec)) {
        zone_at(s, n, &k, &off);
        *ms = mk_ms(y, mo, a, h, mi, sec, frac) - off * 60000LL;
        return k;
      }
    }
    j = 0;
    int64_t v = 0;
    while (j < n && j < 14 && isdigit((unsigned char)s[j])) v = v * 10 + (s[j++] - '0');
    if ((j == 10 || j == 13) && !is_alnum_at(s, n, j) && !(j < n && (s[j] == '.' || s[j] == '-'))) {
      int64_t sec10 = j == 13 ? v / 1000 : v;
      if (sec10 >= 946684800LL && sec10 < 2208988800LL) {
        *ms = j == 13 ? v : v * 1000;
        return j;
      }
    }
    return 0;
  }
  /* F. Www Mon DD HH:MM:SS YYYY ; E. Mon DD HH:MM:SS [YYYY] */
  if (wday_at(s, n, 0) && n > 4 && (s[3] == ' ' || s[3] == ',')) {
    i = 4;
    while (i < n && s[i] == ' ') i++;
  }
  if ((mo = month_at(s, n, i)) && i + 4 < n && s[i + 3] == ' ') {
    size_t j = i + 4;
    while (j < n && s[j] == ' ') j++;
    if (digits(s, n, &j, 1, 2, &d) && j < n && s[j] == ' ') {
      j++;
      if (time_at(s, n, &j, &h, &mi, &sec, &frac)) {
        y = year_hint;
        size_t k = j;
        if (k + 5 <= n && s[k] == ' ' && (k++, digits(s, n, &k, 4, 4, &y)) && !is_alnum_at(s, n, k))
          j = k;
        else
          y = year_hint;
        if (valid(y, mo, d, h, mi, sec) && !is_alnum_at(s, n, j)) {
          *ms = mk_ms(y, mo, d, h, mi, sec, frac);
          return j;
        }
      }
    }
  }
  return 0;
}

static const struct {
  const char *w;
  unsigned char len;
  int lvl;
} LEVELS[] = {
    {"trace", 5, LOG_LVL_TRACE},   {"debug", 5, LOG_LVL_DEBUG},    {"dbg", 3, LOG_LVL_DEBUG},
    {"fine", 4, LOG_LVL_DEBUG},    {"verbose", 7, LOG_LVL_DEBUG},  {"info", 4, LOG_LVL_INFO},
    {"information", 11, LOG_LVL_INFO}, {"notice", 6, LOG_LVL_NOTICE}, {"warn", 4, LOG_LVL_WARN},
    {"warning", 7, LOG_LVL_WARN},  {"error", 5, LOG_LVL_ERROR},    {"err", 3, LOG_LVL_ERROR},
    {"severe", 6, LOG_LVL_ERROR},  {"fatal", 5, LOG_LVL_FATAL},    {"critical", 8, LOG_LVL_FATAL},
    {"crit", 4, LOG_LVL_FATAL},    {"alert", 5, LOG_LVL_FATAL},    {"emerg", 5, LOG_LVL_FATAL},
    {"panic", 5, LOG_LVL_FATAL},   {"failure", 7, LOG_LVL_ERROR},
};

int log_level_word(const char *s, size_t n) {
  while (n && (*s == '[' || *s == '<' || *s == '(')) s++, n--;
  while (n && (s[n - 1] == ']' || s[n - 1] == '>' || s[n - 1] == ')' || s[n - 1] == ':' || s[n - 1] == ','))
    n--;
  if (n == 1) {
    switch (s[0]) {
    case 'V': return LOG_LVL_TRACE;
    case 'D': return LOG_LVL_DEBUG;
    case 'I': return LOG_LVL_INFO;
    case 'W': return LOG_LVL_WARN;
    case 'E': return LOG_LVL_ERROR;
    case 'F': return LOG_LVL_FATAL;
    default: return LOG_LVL_NONE;
    }
  }
  if (n < 3 || n > 11) return LOG_LVL_NONE;
  int c0 = tolower((unsigned char)s[0]);
  for (size_t k = 0; k < sizeof LEVELS / sizeof LEVELS[0]; k++)
    if (LEVELS[k].len == n && LEVELS[k].w[0] == c0 && !strncasecmp(LEVELS[k].w, s, n)) {
      /* all-lower, all-upper or Capitalised only: "Error" yes, "eRRor" no */
      int up = 0;
      for (size_t i = 1; i < n; i++) up += isupper((unsigned char)s[i]) != 0;
      return up && up != (int)n - 1 ? LOG_LVL_NONE : LEVELS[k].lvl;
    }
  return LOG_LVL_NONE;
}

const char *log_level_name(int lvl) {
  static const char *N[] = {"", "TRACE", "DEBUG", "INFO", "NOTICE", "WARN", "ERROR", "FATAL"};
  return lvl >= 0 && lvl <= LOG_LVL_FATAL ? N[lvl] : "";
}
