/*
 * mine.c — online template mining.
 *
 * A message is cut into tokens at whitespace and at punctuation that glues
 * a key to its value ("rhost=1.2.3.4" -> "rhost=", "1.2.3.4"; "(0x0)" ->
 * "(", "0x0", ")"; an escaped quote \" reads as "). Tokens that carry a digit, look like a path or URL, or
 * are long hex are variables before clustering (typed: number, hex, IP,
 * UUID, path, duration, id; a weekday or month name next to a day, year,
 * clock or another such name: time). The masked sequence is then clustered the Drain
 * way: a bucket per (token count, first token), the most similar template
 * of the bucket taken when similarity >= sim, and differing positions turned
 * into variables. An exact-sequence cache skips the bucket scan for masked
 * sequences already seen. log_miner_merge() later unites templates that
 * differ only where one has a variable, or whose variable runs differ only
 * in length; ids stay valid and map through a union-find.
 *
 * Invariants: template ids are 1-based and never reused; every token id is
 * an index into the intern table; no message byte is read past len.
 */
#include "logs/logs.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "logs/internal.h"
#include "logs/mine_internal.h"

/* ---- hash maps (open addressing, key 0 reserved -> stored as 1) -------- */

static int map_grow(log_hslot **tab, uint32_t *cap) {
  uint32_t nc = *cap ? *cap * 2 : 1024;
  log_hslot *nt = calloc(nc, sizeof *nt);
  if (!nt) return -1;
  for (uint32_t i = 0; i < *cap; i++) {
    if (!(*tab)[i].h) continue;
    uint32_t j = (uint32_t)(*tab)[i].h & (nc - 1);
    while (nt[j].h) j = (j + 1) & (nc - 1);
    nt[j] = (*tab)[i];
  }
  free(*tab);
  *tab = nt;
  *cap = nc;
  return 0;
}

/* ---- interning ----------------------------------------------------------- */

int log_m_intern(log_miner *m, const char *s, uint32_t n, uint32_t *id) {
  uint64_t h = kv_hash64(s, n) | 1;
  if (m->shcap == 0 || (m->nstr + 1) * 2 > m->shcap)
    if (map_grow(&m->shash, &m->shcap)) return KV_ENOMEM;
  uint32_t j = (uint32_t)h & (m->shcap - 1);
  while (m->shash[j].h) {
    if (m->shash[j].h == h) {
      uint32_t v = m->shash[j].v;
      if (m->slen[v] == n && !memcmp(m->str[v], s, n)) {
        *id = v;
        return 0;
      }
    }
    j = (j + 1) & (m->shcap - 1);
  }
  if (KV_GROW(m->str, m->capstr, (size_t)m->nstr + 1) || KV_GROW(m->slen, m->capslen, (size_t)m->nstr + 1)) return KV_ENOMEM;
  char *c = malloc(n + 1);
  if (!c) return KV_ENOMEM;
  memcpy(c, s, n);
  c[n] = 0;
  m->str[m->nstr] = c;
  m->slen[m->nstr] = n;
  m->shash[j].h = h;
  m->shash[j].v = m->nstr;
  *id = m->nstr++;
  return 0;
}

int log_miner_new(log_miner **out, const log_miner_opts *o, kv_err *err) {
  log_miner *m = calloc(1, sizeof *m);
  if (!m) return kv_err_set(err, KV_ENOMEM, "logs: out of memory creating a template miner");
  m->sim = o && o->sim > 0 ? o->sim : 0.7;
  m->max_tokens = o && o->max_tokens > 0 ? o->max_tokens : 256;
  m->off = o ? o->rules_off : 0;
  uint32_t dummy;
  m->t = calloc(1, sizeof *m->t);
  m->capt = 1;
  m->nt = 1;
  m->lv = calloc(1, sizeof *m->lv);
  m->capl = 1;
  m->nl = 1;
  if (!m->t || !m->lv || log_m_intern(m, "<*>", 3, &dummy)) { /* id 0 == VAR */
    log_miner_free(m);
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory creating a template miner");
  }
  *out = m;
  return 0;
}

void log_miner_free(log_miner *m) {
  if (!m) return;
  for (uint32_t i = 0; i < m->nstr; i++) free(m->str[i]);
  free(m->str);
  free(m->slen);
  free(m->shash);
  for (uint32_t i = 1; i < m->nt; i++) free(m->t[i].ids), free(m->t[i].space);
  free(m->t);
  free(m->bucket);
  free(m->cache);
  for (uint32_t i = 1; i < m->nl; i++) free(m->lv[i].ids);
  free(m->lv);
  free(m->subs);
  free(m->toks);
  free(m->ids);
  free(m->text);
  free(m);
}

/* ---- tokenizing and typing ---------------------------------------------- */

/* , ; ( ) [ ] { } " ' < > | */
static const uint8_t SPLIT[256] = {[','] = 1, [';'] = 1, ['('] = 1, [')'] = 1, ['['] = 1, [']'] = 1, ['{'] = 1,
                                   ['}'] = 1, ['"'] = 1, ['\''] = 1, ['<'] = 1, ['>'] = 1, ['|'] = 1};

static int is_split(char c) { return SPLIT[(unsigned char)c]; }

static int is_hexword(const char *s, size_t n) {
  if (n >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
    for (size_t i = 2; i < n; i++)
      if (!isxdigit((unsigned char)s[i])) return 0;
    return 1;
  }
  if (n < 8) return 0;
  for (size_t i = 0; i < n; i++)
    if (!isxdigit((unsigned char)s[i]) && s[i] != '-') return 0;
  return 1;
}

static int type_of(const char *s, size_t n) {
  if (n < 8) { /* fast path: short tokens without digits or slashes are words */
    int plain = 1;
    for (size_t i = 0; i < n && plain; i++)
      if (isdigit((unsigned char)s[i]) || s[i] == '/' || s[i] == '\\' || s[i] == ':') plain = 0;
    if (plain) return LOG_P_NONE;
  }
  int digit = 0, alpha = 0, dots = 0, colons = 0, dashes = 0, slashes = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isdigit(c)) digit++;
    else if (isalpha(c)) alpha++;
    else if (c == '.') dots++;
    else if (c == ':') colons++;
    else if (c == '-') dashes++;
    else if (c == '/' || c == '\\') slashes++;
  }
  if (n >= 2 && (s[0] == '/' || s[0] == '~' || (n > 3 && isalpha((unsigned char)s[0]) && s[1] == ':' && s[2] == '\\')) &&
      slashes >= 2)
    return LOG_P_PATH;
  if (n > 3) {
    for (size_t i = 0; i + 3 <= n; i++)
      if (s[i] == ':' && s[i + 1] == '/' && s[i + 2] == '/') return LOG_P_PATH;
  }
  if (!digit) {
    if (is_hexword(s, n) && alpha >= 8) return LOG_P_HEX;
    return LOG_P_NONE;
  }
  if (n == 36 && dashes == 4 && s[8] == '-' && s[13] == '-') return LOG_P_UUID;
  if (dots == 3 && !alpha && !slashes) return LOG_P_IP;
  if (is_hexword(s, n)) return alpha ? LOG_P_HEX : (dashes ? LOG_P_ID : LOG_P_NUM);
  size_t i = 0;
  if (s[0] == '-' || s[0] == '+') i = 1;
  while (i < n && (isdigit((unsigned char)s[i]) || s[i] == '.' || s[i] == ',')) i++;
  if (i == n) return LOG_P_NUM;
  static const char *const U[] = {"ms", "s", "us", "ns", "sec", "secs", "m", "min", "h", "KB", "MB", "GB", "kB",
                                  "B", "%", NULL};
  for (int k = 0; U[k]; k++)
    if (strlen(U[k]) == n - i && !memcmp(s + i, U[k], n - i)) return LOG_P_DURATION;
  (void)colons;
  return LOG_P_ID;
}

int log_m_type(const char *s, size_t n) { return n ? type_of(s, n) : LOG_P_NONE; }

/* A token that can stand next to a weekday or month name in a date: a day
 * (1-31), a year (1970-2100), a clock (digits, ':' '.' ',' only, with
 * d:dd), or another such name. */
static int time_neighbour(const char *s, size_t n) {
  if (n == 0) return 0;
  if (log_ts_calendar_word(s, n)) return 1;
  int v = 0, alld = 1, clock = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (isdigit(c)) v = v < 100000 ? v * 10 + (c - '0') : v;
    else if (c == ':' || c == '.' || c == ',') {
      alld = 0;
      if (c == ':' && i > 0 && i + 2 < n && isdigit((unsigned char)s[i - 1]) && isdigit((unsigned char)s[i + 1]) &&
          isdigit((unsigned char)s[i + 2]))
        clock = 1;
    } else return 0;
  }
  if (alld) return (n <= 2 && v >= 1 && v <= 31) || (n == 4 && v >= 1970 && v <= 2100);
  return clock;
}

/* m_time_piece: a weekday or month name that a day, a year, a clock or
 * another such name stands next to is a piece of a time, so a variable
 * ("at Sun Jul 10 09:37:22 2005" when the whole does not parse as one
 * timestamp, "on Jul 10"); a name alone ("Sun Microsystems") stays a word. */
static void time_pieces(const char *s, log_tok *t, uint32_t k) {
  /* first letters of the weekday and month names (either case): most words are out at once */
  static const uint8_t FIRST[256] = {['S'] = 1, ['M'] = 1, ['T'] = 1, ['W'] = 1, ['F'] = 1, ['J'] = 1, ['A'] = 1,
                                     ['O'] = 1, ['N'] = 1, ['D'] = 1, ['s'] = 1, ['m'] = 1, ['t'] = 1, ['w'] = 1,
                                     ['f'] = 1, ['j'] = 1, ['a'] = 1, ['o'] = 1, ['n'] = 1, ['d'] = 1};
  /* the names' first three letters, lower case, packed, in a 64-slot table
   * with no collisions under this multiplier: one load per candidate word */
  static const uint32_t K3[64] = {
      0x6a756c, 0, 0, 0, 0, 0, 0x736570, 0, 0, 0, 0, 0, 0x6d6172, 0x617072, 0, 0, 0x747565, 0, 0, 0, 0, 0x6d6f6e,
      0x73756e, 0, 0, 0, 0, 0, 0, 0, 0x746875, 0, 0x6a756e, 0x667269, 0, 0x6a616e, 0, 0x6e6f76, 0, 0, 0, 0, 0, 0,
      0, 0x6f6374, 0x646563, 0, 0, 0, 0, 0, 0, 0, 0x776564, 0, 0x666562, 0x617567, 0, 0x736174, 0, 0, 0x6d6179, 0};
  for (uint32_t i = 0; i < k; i++) {
    if (t[i].type != LOG_P_NONE || t[i].len < 3 || t[i].len > 9 || !FIRST[(unsigned char)s[t[i].off]]) continue;
    const unsigned char *w = (const unsigned char *)s + t[i].off;
    uint32_t key = (uint32_t)(w[0] | 0x20) << 16 | (uint32_t)(w[1] | 0x20) << 8 | (uint32_t)(w[2] | 0x20);
    int hit = K3[(uint32_t)(key * 0x414c343du) >> 26] == key;
    if (!hit || !log_ts_calendar_word(s + t[i].off, t[i].len)) continue;
    int next = i + 1 < k && t[i + 1].space && time_neighbour(s + t[i + 1].off, t[i + 1].len);
    int prev = i > 0 && t[i].space && time_neighbour(s + t[i - 1].off, t[i - 1].len);
    if (next || prev) t[i].type = LOG_P_TIME;
  }
}

/* Cut content into tokens; returns the count (<= max). */
static uint32_t tokenize(const char *s, size_t n, log_tok *t, uint32_t max, log_rules off) {
  uint32_t k = 0;
  size_t i = 0;
  while (i < n && k < max) {
    int sp = 0;
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) i++, sp = 1;
    if (i >= n) break;
    if (!(off & LOG_R_M_TS_IN_MSG) && (isdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))) {
      /* a timestamp inside the message is one variable, spaces and all */
      int64_t ms;
      size_t tl = log_ts_parse_rules(s + i, n - i, 2000, off, &ms);
      if (tl >= 8) {
        t[k].off = (uint32_t)i;
        t[k].len = (uint32_t)tl;
        t[k].space = (uint8_t)sp;
        t[k].type = LOG_P_TIME;
        k++;
        i += tl;
        continue;
      }
    }
    size_t e = i;
    while (e < n && !(s[e] == ' ' || s[e] == '\t' || s[e] == '\r' || s[e] == '\n')) e++;
    /* a path or URL stays whole; IPv6 and MAC addresses keep their colons */
    int whole = !(off & LOG_R_M_PATH_WHOLE) && memchr(s + i, '/', e - i) && type_of(s + i, e - i) == LOG_P_PATH;
    int colons = 0, keyval = !(off & LOG_R_M_KEYVAL);
    if (!(off & LOG_R_M_COLONS))
      for (size_t q = i; q < e; q++) colons += s[q] == ':';
    size_t p = i;
    int esc = !(off & LOG_R_M_ESC_QUOTE);
    while (p < e && k < max) {
      /* an escaped quote (\" from a JSON or logfmt string) reads as the quote */
      if (esc && !whole && s[p] == '\\' && p + 1 < e && (s[p + 1] == '"' || s[p + 1] == '\'')) {
        if (p == i) i++; /* the quote takes the space before the backslash */
        p++;
        continue;
      }
      size_t q = p;
      if (whole) q = e;
      else if (is_split(s[p])) q = p + 1;
      else {
        while (q < e && !is_split(s[q])) {
          if (esc && s[q] == '\\' && q + 1 < e && (s[q + 1] == '"' || s[q + 1] == '\'')) break;
          if (keyval && s[q] == '=') {
            q++;
            break;
          }
          if (keyval && s[q] == ':' && colons < 3 && q > p && isalpha((unsigned char)s[q - 1]) && (q + 1 == e || s[q + 1] != ':') &&
              !(q + 2 < e && s[q + 1] == '/' && s[q + 2] == '/')) {
            q++;
            break;
          }
          q++;
        }
      }
      t[k].off = (uint32_t)p;
      t[k].len = (uint32_t)(q - p);
      t[k].space = (uint8_t)(p == i ? sp : 0);
      t[k].type = (uint8_t)(is_split(s[p]) && q == p + 1 ? LOG_P_NONE : type_of(s + p, q - p));
      k++;
      p = q;
    }
    i = e;
  }
  if (!(off & LOG_R_M_TIME_PIECE)) time_pieces(s, t, k);
  return k;
}

/* ---- clustering ---------------------------------------------------------- */

static uint32_t find(const log_miner *m, uint32_t id) {
  while (m->t[id].parent != id) id = m->t[id].parent;
  return id;
}

uint32_t log_miner_resolve(const log_miner *m, uint32_t pat) {
  if (!m || pat == 0 || pat >= m->nl) return 0;
  return m->lv[pat].final ? m->lv[pat].final : find(m, m->lv[pat].tpl);
}

uint32_t log_miner_patterns(const log_miner *m) { return m ? m->nl - 1 : 0; }

int log_m_new_leaf(log_miner *m, uint32_t tplid, const uint32_t *ids, uint32_t n, uint32_t *out) {
  if (KV_GROW(m->lv, m->capl, (size_t)m->nl + 1)) return KV_ENOMEM;
  log_leaf *l = &m->lv[m->nl];
  memset(l, 0, sizeof *l);
  l->ids = malloc((n ? n : 1) * sizeof *l->ids);
  if (!l->ids) return KV_ENOMEM;
  memcpy(l->ids, ids, n * sizeof *ids);
  l->n = n;
  l->tpl = tplid;
  *out = m->nl++;
  return 0;
}

static uint64_t bucket_key(uint32_t n, uint32_t first) { return (((uint64_t)n << 32) ^ first ^ 0x9e3779b97f4a7c15ULL) | 1; }

log_hslot *log_m_map_find(log_hslot *tab, uint32_t cap, uint64_t h) {
  if (!cap) return NULL;
  uint32_t j = (uint32_t)h & (cap - 1);
  while (tab[j].h) {
    if (tab[j].h == h) return &tab[j];
    j = (j + 1) & (cap - 1);
  }
  return &tab[j];
}

int log_m_map_put(log_hslot **tab, uint32_t *cap, uint32_t *cnt, uint64_t h, uint32_t v) {
  if ((*cnt + 1) * 2 > *cap && map_grow(tab, cap)) return KV_ENOMEM;
  log_hslot *s = log_m_map_find(*tab, *cap, h);
  if (!s->h) (*cnt)++;
  s->h = h;
  s->v = v;
  return 0;
}

static int new_template(log_miner *m, const uint32_t *ids, const log_tok *t, uint32_t n, uint32_t *out) {
  if (KV_GROW(m->t, m->capt, (size_t)m->nt + 1)) return KV_ENOMEM;
  log_tpl *p = &m->t[m->nt];
  memset(p, 0, sizeof *p);
  p->n = n;
  p->ids = malloc((n ? n : 1) * sizeof *p->ids);
  p->space = malloc(n ? n : 1);
  if (!p->ids || !p->space) {
    free(p->ids);
    free(p->space);
    return KV_ENOMEM;
  }
  memcpy(p->ids, ids, n * sizeof *ids);
  for (uint32_t i = 0; i < n; i++) p->space[i] = t[i].space;
  p->parent = m->nt;
  *out = m->nt++;
  return 0;
}

int log_miner_add(log_miner *m, const char *s, size_t n, uint32_t *out, log_param *params, int max_params,
                  int *nparams, kv_err *err) {
  if (nparams) *nparams = 0;
  uint32_t cap = (uint32_t)m->max_tokens;
  if (KV_GROW(m->toks, m->captok, cap) || KV_GROW(m->ids, m->capids, cap))
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory tokenizing");
  uint32_t k = tokenize(s, n, m->toks, cap, m->off);
  uint64_t h = KV_HASH64_INIT;
  for (uint32_t i = 0; i < k; i++) {
    if (m->toks[i].type != LOG_P_NONE) m->ids[i] = VAR;
    else if (log_m_intern(m, s + m->toks[i].off, m->toks[i].len, &m->ids[i]))
      return kv_err_set(err, KV_ENOMEM, "logs: out of memory interning tokens");
    h = kv_hash64_more(h, &m->ids[i], sizeof m->ids[i]);
  }
  h = kv_hash64_more(h, &k, sizeof k) | 1;
  uint32_t pat = 0, id;
  log_hslot *c = log_m_map_find(m->cache, m->ccap, h);
  if (c && c->h) {
    pat = c->v;
    if (m->lv[pat].n != k || memcmp(m->lv[pat].ids, m->ids, k * sizeof *m->ids)) pat = 0; /* collision */
  }
  if (!pat) {
    id = 0;
    uint64_t bk = bucket_key(k, k ? m->ids[0] : 0);
    log_hslot *b = log_m_map_find(m->bucket, m->bcap, bk);
    uint32_t best = 0;
    double bsim = -1;
    int bvars = -1;
    for (uint32_t ti = b && b->h ? b->v : 0; ti; ti = m->t[ti].next) {
      if (m->t[ti].parent != ti) continue;
      const log_tpl *p = &m->t[ti];
      int eq = 0, vars = 0;
      for (uint32_t i = 0; i < k; i++) {
        if (p->ids[i] == VAR) vars++;
        else if (p->ids[i] == m->ids[i]) eq++;
      }
      double sim = k ? (double)eq / k : 1.0;
      if (sim > bsim || (sim == bsim && vars > bvars)) bsim = sim, bvars = vars, best = ti;
    }
    if (best && (bsim >= m->sim || k == 0 || (!(m->off & LOG_R_M_VAR_FILL) && bsim + (double)bvars / k >= 0.999))) {
      log_tpl *p = &m->t[best];
      for (uint32_t i = 0; i < k; i++)
        if (p->ids[i] != m->ids[i]) p->ids[i] = VAR;
      id = best;
    } else {
      if (new_template(m, m->ids, m->toks, k, &id)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
      log_hslot *b2 = log_m_map_find(m->bucket, m->bcap, bk);
      m->t[id].next = b2 && b2->h ? b2->v : 0;
      m->t[id].bkey = bk;
      if (log_m_map_put(&m->bucket, &m->bcap, &m->bn, bk, id)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
    }
    if (log_m_new_leaf(m, id, m->ids, k, &pat) || log_m_map_put(&m->cache, &m->ccap, &m->cn, h, pat))
      return kv_err_set(err, KV_ENOMEM, "logs: out of memory");
  }
  m->lv[pat].count++;
  id = log_miner_resolve(m, pat);
  m->t[id].size++;
  *out = pat;
  if (params && max_params > 0) {
    const log_tpl *p = &m->t[id];
    int np = 0;
    for (uint32_t i = 0; i < k && np < max_params; i++) {
      if (m->ids[i] != VAR && !(p->n == k && p->ids[i] == VAR)) continue;
      params[np].pos = (int)i;
      params[np].type = m->toks[i].type ? m->toks[i].type : LOG_P_WORD;
      params[np].val = s + m->toks[i].off;
      params[np].len = m->toks[i].len;
      np++;
    }
    if (nparams) *nparams = np;
  }
  return 0;
}

/* ---- merging ------------------------------------------------------------- */

static void unite(log_miner *m, uint32_t a, uint32_t b) {
  a = find(m, a), b = find(m, b);
  if (a == b) return;
  if (b < a) {
    uint32_t x = a;
    a = b, b = x;
  }
  log_tpl *pa = &m->t[a], *pb = &m->t[b];
  if (pa->n == pb->n)
    for (uint32_t i = 0; i < pa->n; i++)
      if (pa->ids[i] != pb->ids[i]) pa->ids[i] = VAR;
  pb->parent = a;
  pa->size += pb->size;
  pb->size = 0;
}

/* Signature without its variables: templates whose variable runs differ
 * only in length ("()" vs "(<*>)") share it. Needs >= 2 constants. */
/* A dotted/underscored name (bundle id, class, file): "com.apple.x:". */
static int m_is_ident(const log_miner *m, uint32_t id) {
  const char *s = m->str[id];
  for (uint32_t i = 0; i + 1 < m->slen[id]; i++)
    if ((s[i] == '.' || s[i] == '_' || s[i] == '$' || s[i] == '/') && i > 0) return 1;
  return 0;
}

/* A unit word (size, duration, percent): "12 KB" vs "12 B" is one value. */
static int m_is_unit(const log_miner *m, uint32_t id) {
  static const char *const U[] = {"B", "KB", "MB", "GB", "TB", "kB", "KiB", "MiB", "GiB", "bytes", "ms", "s", "us", "ns", "sec", "min", "%", NULL};
  for (int k = 0; U[k]; k++)
    if (strlen(U[k]) == m->slen[id] && !memcmp(U[k], m->str[id], m->slen[id])) return 1;
  return 0;
}

static int m_is_sep(const log_miner *m, uint32_t id) {
  return m->slen[id] == 1 && (m->str[id][0] == ',' || m->str[id][0] == ';');
}

static uint64_t skeleton(const log_miner *m, const log_tpl *p) {
  uint64_t h = KV_HASH64_INIT;
  int consts = 0;
  uint32_t comma = UINT32_MAX;
  for (uint32_t i = 0; i < p->n; i++) {
    if (p->ids[i] == VAR) continue;
    /* "<*>,<*>": a list separator between variables belongs to them */
    if (!(m->off & LOG_R_M_LIST_SEP) && i && p->ids[i - 1] == VAR && i + 1 < p->n && p->ids[i + 1] == VAR &&
        m_is_sep(m, p->ids[i]))
      continue;
    h = kv_hash64_more(h, &p->ids[i], sizeof p->ids[i]);
    consts++;
  }
  (void)comma;
  return consts >= 2 ? h | 1 : 0;
}

#define SPLIT_MAX 3 /* a position with at most this many distinct words ... */
#define SPLIT_MIN 1 /* ... each seen at least this often is a constant */
/* A closed vocabulary (m_closed_vocab): up to VOCAB_MAX distinct words, every
 * one of them frequent (>= VOCAB_MIN times and >= 1/VOCAB_DIV of the
 * position's messages), is constant too ("VM Started|Paused|Resumed|Stopped");
 * a word seen once or rarely says the vocabulary is open (user names). */
#define VOCAB_MAX 6
#define VOCAB_MIN 2
#define VOCAB_DIV 20

static int cmp_ent(const void *a, const void *b) {
  const uint64_t *x = a, *y = b;
  return (*x > *y) - (*x < *y);
}

static int cmp_root(const void *a, const void *b) {
  const uint32_t *x = a, *y = b;
  return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* Frequency rule: positions of root r (length n) where the patterns hold only
 * a few distinct words, each frequent, are constants; the patterns are then
 * mapped to sub-templates keyed by those words. Unit words after a variable
 * ("size <*> B|KB|MB") stay a variable (m_unit_var). */
static void split_root(log_miner *m, uint32_t r, const uint32_t *pats, size_t np) {
  log_tpl *R = &m->t[r];
  uint32_t n = R->n;
  uint8_t *splitpos = calloc(n ? n : 1, 1);
  if (!splitpos) return;
  int any = 0;
  for (uint32_t p = 0; p < n; p++) {
    if (R->ids[p] != VAR || (m->off & LOG_R_M_FREQ_SPLIT)) continue;
    int dmax = (m->off & LOG_R_M_CLOSED_VOCAB) ? SPLIT_MAX : VOCAB_MAX;
    uint32_t val[VOCAB_MAX + 1];
    uint64_t w[VOCAB_MAX + 1];
    int d = 0, ok = 1;
    for (size_t i = 0; i < np && ok; i++) {
      const log_leaf *l = &m->lv[pats[i]];
      if (l->n != n) continue;
      uint32_t v = l->ids[p];
      int j = 0;
      while (j < d && val[j] != v) j++;
      if (j == d) {
        if (d == dmax) {
          ok = 0;
          break;
        }
        val[d] = v, w[d] = 0, d++;
      }
      w[j] += l->count;
    }
    if (!ok || d < 2) continue;
    if (!(m->off & LOG_R_M_UNIT_VAR) && p > 0 && R->ids[p - 1] == VAR) { /* units after a variable: part of its value */
      int units = 1;
      for (int j = 0; j < d && units; j++) units = val[j] != VAR && m_is_unit(m, val[j]);
      if (units) continue;
    }
    uint64_t tot = 0, wvar = 0;
    for (int j = 0; j < d; j++) tot += w[j], wvar += val[j] == VAR ? w[j] : 0;
    if (!(m->off & LOG_R_M_SPLIT_TYPED) && wvar * 2 >= tot) continue; /* mostly typed variables: a variable */
    int smin = SPLIT_MIN;
    for (int j = 0; j < d; j++)
      if (w[j] < (uint64_t)smin || (d > SPLIT_MAX && (w[j] < VOCAB_MIN || w[j] * VOCAB_DIV < tot))) ok = 0;
    if (ok) splitpos[p] = 1, any = 1;
  }
  for (size_t i = 0; i < np; i++) {
    log_leaf *l = &m->lv[pats[i]];
    l->final = r;
    if (!any || l->n != n) continue;
    uint64_t h = kv_hash64(&r, sizeof r);
    for (uint32_t p = 0; p < n; p++)
      if (splitpos[p]) h = kv_hash64_more(kv_hash64_more(h, &p, sizeof p), &l->ids[p], sizeof l->ids[p]);
    h |= 1;
    log_hslot *sl = log_m_map_find(m->subs, m->subcap, h);
    uint32_t sub = sl && sl->h ? sl->v : 0;
    if (!sub) {
      if (m->nt == m->capt) {
        if (KV_GROW(m->t, m->capt, (size_t)m->nt + 1)) break;
        R = &m->t[r];
      }
      log_tpl *S = &m->t[m->nt];
      memset(S, 0, sizeof *S);
      S->n = n;
      S->ids = malloc((n ? n : 1) * sizeof *S->ids);
      S->space = malloc(n ? n : 1);
      if (!S->ids || !S->space) {
        free(S->ids), free(S->space);
        break;
      }
      for (uint32_t p = 0; p < n; p++) S->ids[p] = splitpos[p] ? l->ids[p] : R->ids[p];
      memcpy(S->space, R->space, n);
      S->parent = m->nt;
      S->next = UINT32_MAX; /* a sub-template: not in any bucket, never united */
      sub = m->nt++;
      if (log_m_map_put(&m->subs, &m->subcap, &m->subn, h, sub)) break;
    }
    l->final = sub;
  }
  free(splitpos);
}

/* Templates of one length that are equal except at one position p, more
 * than SPLIT_MAX of them: p is a variable (Drain keys its tree on the first
 * token, so "com.apple.a: msg" and "com.apple.b: msg" never meet there). */
static void near_dups(log_miner *m, uint32_t ndrain) {
  typedef struct { uint64_t h; uint32_t t; } ent;
  ent *e = malloc((size_t)(ndrain ? ndrain : 1) * sizeof *e);
  if (!e) return;
  for (uint32_t p = 0; p < 64; p++) {
    size_t k = 0;
    for (uint32_t a = 1; a < ndrain; a++) {
      const log_tpl *t = &m->t[a];
      if (find(m, a) != a || t->next == UINT32_MAX || t->n <= p || t->ids[p] == VAR) continue;
      if (t->n < 3 || !m_is_ident(m, t->ids[p])) continue;
      uint64_t h = kv_hash64(&t->n, sizeof t->n);
      for (uint32_t i = 0; i < t->n; i++)
        if (i != p) h = kv_hash64_more(h, &t->ids[i], sizeof t->ids[i]);
      e[k].h = h | 1, e[k].t = a, k++;
    }
    if (k < 2) continue;
    qsort(e, k, sizeof *e, cmp_ent);
    for (size_t i = 0; i < k;) {
      size_t j = i;
      while (j < k && e[j].h == e[i].h) j++;
      if (j - i > SPLIT_MAX)
        for (size_t q = i + 1; q < j; q++) unite(m, e[i].t, e[q].t);
      i = j;
    }
  }
  free(e);
}

void log_miner_merge(log_miner *m) {
  if (m->merged_nl == m->nl) return; /* no new pattern since the last merge */
  m->merged_nl = m->nl;
  uint32_t ndrain = m->nt;
  /* 1. same length, compatible everywhere (equal or one side a variable) */
  for (uint32_t a = 1; a < ndrain && !(m->off & LOG_R_M_COMPAT); a++) {
    if (find(m, a) != a || m->t[a].next == UINT32_MAX) continue;
    for (uint32_t b = a + 1; b < ndrain; b++) {
      if (m->t[b].n != m->t[a].n || find(m, b) != b || m->t[b].next == UINT32_MAX) continue;
      const log_tpl *pa = &m->t[a], *pb = &m->t[b];
      int ok = 1, consts = 0;
      for (uint32_t i = 0; i < pa->n && ok; i++) {
        if (pa->ids[i] == VAR || pb->ids[i] == VAR) continue;
        if (pa->ids[i] != pb->ids[i]) ok = 0;
        else consts++;
      }
      if (ok && consts > 0 && consts * 2 >= (int)pa->n) unite(m, a, b);
    }
  }
  /* 1b. many templates equal but at one position: that position varies */
  if (!(m->off & LOG_R_M_NEAR_DUPS)) near_dups(m, ndrain);
  /* 2. variable runs that differ only in length */
  log_hslot *tab = NULL;
  uint32_t cap = 0, cnt = 0;
  for (uint32_t a = 1; a < ndrain && !(m->off & LOG_R_M_SKELETON); a++) {
    if (find(m, a) != a || m->t[a].next == UINT32_MAX) continue;
    uint64_t h = skeleton(m, &m->t[a]);
    if (!h) continue;
    log_hslot *s = log_m_map_find(tab, cap, h);
    if (s && s->h) unite(m, s->v, a);
    else if (log_m_map_put(&tab, &cap, &cnt, h, a)) break;
  }
  free(tab);
  /* 3. frequency rule, per root over its patterns */
  size_t np = m->nl - 1;
  uint32_t *pr = malloc((np ? np : 1) * 2 * sizeof *pr);
  if (!pr) return;
  for (size_t i = 0; i < np; i++) pr[2 * i] = find(m, m->lv[i + 1].tpl), pr[2 * i + 1] = (uint32_t)(i + 1);
  qsort(pr, np, 2 * sizeof *pr, cmp_root);
  uint32_t *pats = malloc((np ? np : 1) * sizeof *pats);
  if (pats) {
    for (size_t i = 0; i < np;) {
      size_t j = i;
      while (j < np && pr[2 * j] == pr[2 * i]) pats[j - i] = pr[2 * j + 1], j++;
      split_root(m, pr[2 * i], pats, j - i);
      i = j;
    }
    /* sizes follow the mapping */
    for (uint32_t t = 1; t < m->nt; t++) m->t[t].size = 0;
    for (size_t i = 1; i < m->nl; i++) m->t[log_miner_resolve(m, (uint32_t)i)].size += m->lv[i].count;
  }
  free(pats);
  free(pr);
}

uint32_t log_miner_count(const log_miner *m) { return m ? m->nt - 1 : 0; }
uint64_t log_miner_size(const log_miner *m, uint32_t id) {
  return m && id && id < m->nt ? m->t[find(m, id)].size : 0;
}

const char *log_miner_template(const log_miner *cm, uint32_t id) {
  log_miner *m = (log_miner *)cm;
  if (!m || id == 0 || id >= m->nt) return "";
  const log_tpl *p = &m->t[find(m, id)];
  size_t need = 1;
  for (uint32_t i = 0; i < p->n; i++) need += m->slen[p->ids[i]] + 1;
  if (KV_GROW(m->text, m->captext, need)) return "";
  size_t k = 0;
  for (uint32_t i = 0; i < p->n; i++) {
    if (p->space[i] && k) m->text[k++] = ' ';
    /* adjacent variables glued together read as one <*> */
    if (p->ids[i] == VAR && k >= 3 && !memcmp(m->text + k - 3, "<*>", 3) && !p->space[i]) continue;
    memcpy(m->text + k, m->str[p->ids[i]], m->slen[p->ids[i]]);
    k += m->slen[p->ids[i]];
  }
  m->text[k] = 0;
  return m->text;
}

const char *log_ptype_name(int t) {
  static const char *N[] = {"", "num", "hex", "ip", "uuid", "path", "duration", "id", "word", "time"};
  return t >= 0 && t <= LOG_P_TIME ? N[t] : "";
}

