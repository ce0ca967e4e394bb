/*
 * verify.c — what the model writes is shown only after it was checked
 * against the repository (see verify_internal.h).
 *
 * The text is cut into units: a sentence (ending in ". ", "! ", "? "), a
 * line, or a whole ``` fenced block. Within a unit, text is released word
 * by word: at each white space outside a backtick span, every code-like
 * token before it (a backticked span's identifiers, snake_case, camelCase
 * or PascalCase-with-inner-capital words, Name( calls, path:line
 * locations) is complete — a token never runs past white space — and goes
 * to the caller's `known` function once; a word that is not code-like
 * needs no check. One unknown token ends the unit: nothing more of it is
 * shown, and when a part of it was shown already, the cut is marked in the
 * text (DMN_VERIFY_CUT), since a sentence built around an invented name is
 * not made true by deleting the name; a unit found bad before any of it
 * was shown is dropped whole, as before. With require_anchor, a unit is
 * held until it names known code (a unit that never does is dropped: a
 * small model's unverifiable prose). A unit equal to one already shown,
 * or a unit that loops on itself, ends the text (small models repeat
 * themselves); a unit is held while what it has said so far occurs in the
 * text shown before (so a repeated unit is never shown) or while its last
 * words repeat its own earlier words (so a loop is shown at most once).
 *
 * A ``` block is released line by line the same way (a cut closes the
 * block before its mark, DMN_VERIFY_CUT_BLOCK; a fence is ``` or ~~~
 * after up to three spaces); with require_quotes each of its lines other
 * than comments must also occur in a code file of the repository (`known`
 * with DMN_TOK_QUOTE, white space runs collapsed), or the block is cut
 * there. That is a check of each line, not of the block: lines of
 * different files, or a part of a line, pass.
 *
 * Invariants: no code-like token reaches `out` before it was judged known;
 * text is released in order; `known` is
 * asked at most once per distinct token per verifier (a 256-entry cache; a
 * collision only asks again), and each token of a unit is judged once.
 */
#include "daemon/verify_internal.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

static int is_id0(int c) { return isalpha(c) || c == '_'; }
static int is_id(int c) { return isalnum(c) || c == '_'; }

/* Where the mark of a fence line at p[0..n) starts: up to three spaces,
 * then ``` or ~~~ (CommonMark); -1 when p does not open with one. */
static int fence_at(const char *p, size_t n) {
  size_t i = 0;
  while (i < 3 && i < n && p[i] == ' ') i++;
  if (i + 3 > n) return -1;
  return (!memcmp(p + i, "```", 3) || !memcmp(p + i, "~~~", 3)) ? (int)i : -1;
}

static int is_fence(const char *p, size_t n) { return fence_at(p, n) >= 0; }

/* The cut mark for the unit p[0..n): DMN_VERIFY_CUT after a sentence;
 * for a block, DMN_VERIFY_CUT_BLOCK with the block closed by its own
 * fence (its indentation and ``` or ~~~), so the rest renders as text. */
static int put_cut(kv_buf *out, const char *p, size_t n) {
  int f = fence_at(p, n);
  if (f < 0) return kv_buf_puts(out, DMN_VERIFY_CUT);
  if (f == 0 && p[0] == '`') return kv_buf_puts(out, DMN_VERIFY_CUT_BLOCK);
  return kv_buf_append(out, p, (size_t)f + 3) || kv_buf_puts(out, DMN_VERIFY_CUT_BLOCK + 3);
}

/* Could p[0..n) still become a fence line (spaces, then a prefix of a mark)? */
static int may_be_fence(const char *p, size_t n) {
  size_t i = 0;
  while (i < 3 && i < n && p[i] == ' ') i++;
  size_t r = n - i < 3 ? n - i : 3;
  return r < 3 && (!memcmp(p + i, "```", r) || !memcmp(p + i, "~~~", r));
}

/* Length of an identifier chain at p ("a", "a.b", "a::b", "a->b"). */
static size_t chain_len(const char *p, const char *end) {
  if (p >= end || !is_id0((unsigned char)*p)) return 0;
  const char *q = p;
  for (;;) {
    while (q < end && is_id((unsigned char)*q)) q++;
    if (q + 1 < end && q[0] == '.' && is_id0((unsigned char)q[1])) q += 1;
    else if (q + 2 < end && q[0] == ':' && q[1] == ':' && is_id0((unsigned char)q[2])) q += 2;
    else if (q + 2 < end && q[0] == '-' && q[1] == '>' && is_id0((unsigned char)q[2])) q += 2;
    else break;
  }
  return (size_t)(q - p);
}

/* Is the word p[0..n) code-like on its own (outside backticks)? */
static int code_like(const char *p, size_t n, const char *end) {
  int under = 0, inner_cap = 0, sep = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)p[i];
    if (c == '_' && i > 0 && i + 1 < n) under = 1;
    if (c == '.' || c == ':' || c == '>') sep = 1;
    if (i > 0 && isupper(c) && islower((unsigned char)p[i - 1])) inner_cap = 1;
  }
  int call = p + n < end && p[n] == '(';
  /* "e.g" and "i.e" are prose */
  if (sep && n <= 4) sep = 0;
  return under || inner_cap || call || (sep && (under || inner_cap || call));
}

/* A path:line location at p: [A-Za-z0-9_./-]+ holding '.' or '/', then
 * ':' digits, optionally '-' digits. Returns its length, 0 if none. */
static size_t loc_len(const char *p, const char *end) {
  const char *q = p;
  int dot = 0;
  while (q < end && (is_id((unsigned char)*q) || *q == '.' || *q == '/' || *q == '-')) {
    if (*q == '.' || *q == '/') dot = 1;
    q++;
  }
  if (q == p || !dot || q >= end || *q != ':' || q + 1 >= end || !isdigit((unsigned char)q[1])) return 0;
  q++;
  while (q < end && isdigit((unsigned char)*q)) q++;
  if (q + 1 < end && *q == '-' && isdigit((unsigned char)q[1])) {
    q++;
    while (q < end && isdigit((unsigned char)*q)) q++;
  }
  return (size_t)(q - p);
}

/* 1 when p begins a word: nothing of a name, path or chain before it, or
 * only a dot that itself begins the word (".name(": a method named alone),
 * or two dots ("e.g..name", "so..name": no chain goes on past those). */
static int joins(const char *floor, const char *p) {
  return p > floor && (is_id((unsigned char)p[-1]) || p[-1] == '.' || p[-1] == '/' || p[-1] == '-');
}
/* (floor: the text's start, or the end of a location, which nothing joins) */
static int word_start(const char *floor, const char *p) {
  return !joins(floor, p) || (p[-1] == '.' && (!joins(floor, p - 1) || (p - 1 > floor && p[-2] == '.')));
}

int dmn_code_tokens(const char *text, size_t n, void (*fn)(void *ud, const char *tok, size_t len, int kind),
                    void *ud) {
  const char *p = text, *end = text + n, *loc_end = NULL;
  int count = 0;
  while (p < end) {
    unsigned char c = (unsigned char)*p;
    if (c == '`' && !(p + 2 < end && p[1] == '`' && p[2] == '`')) {
      const char *q = p + 1;
      while (q < end && *q != '`' && *q != '\n') q++;
      if (q < end && *q == '`') { /* a span: every identifier chain in it */
        for (const char *s = p + 1, *le = NULL; s < q;) {
          size_t l = loc_len(s, q);
          if (l) {
            fn(ud, s, l, DMN_TOK_LOC), count++;
            s += l;
            le = s;
            continue;
          }
          l = chain_len(s, q);
          if (l >= 2 && (s == p + 1 || s == le || !is_id((unsigned char)s[-1]))) {
            fn(ud, s, l, DMN_TOK_IDENT), count++;
            s += l;
          } else {
            s += l ? l : 1;
          }
        }
        p = q + 1;
        continue;
      }
    }
    if (word_start(loc_end ? loc_end : text, p)) { /* text glued to a location is a word of its own */
      size_t l = loc_len(p, end);
      if (l) {
        fn(ud, p, l, DMN_TOK_LOC), count++;
        p += l;
        loc_end = p;
        continue;
      }
      l = chain_len(p, end);
      if (l) {
        if (code_like(p, l, end)) fn(ud, p, l, DMN_TOK_IDENT), count++;
        p += l;
        continue;
      }
    }
    p++;
  }
  return count;
}

void dmn_verifier_init(dmn_verifier *v, dmn_known_fn known, void *ud) {
  memset(v, 0, sizeof *v);
  v->known = known;
  v->ud = ud;
}

void dmn_verifier_free(dmn_verifier *v) {
  kv_buf_free(&v->pending);
  kv_buf_free(&v->shown);
}

typedef struct judge {
  dmn_verifier *v;
  int bad;
} judge;

static void judge_tok(void *ud, const char *tok, size_t len, int kind) {
  judge *j = ud;
  dmn_verifier *v = j->v;
  v->st.tokens++;
  if (j->bad) return; /* the unit is dropped already: ask no more */
  uint64_t h = kv_hash64_more(kv_hash64(tok, len), &kind, sizeof kind);
  size_t slot = h % (sizeof v->cache / sizeof v->cache[0]);
  int known;
  if (v->cache[slot].h == h && h) {
    known = v->cache[slot].v;
  } else {
    known = v->known ? v->known(v->ud, tok, len, kind) : 0;
    v->cache[slot].h = h;
    v->cache[slot].v = known;
  }
  if (!known) {
    v->st.unknown++;
    j->bad = 1;
  }
}

/* The unit without surrounding white space, for the repetition check. */
static void trimmed(const char *p, size_t n, const char **s, size_t *l) {
  while (n && isspace((unsigned char)*p)) p++, n--;
  while (n && isspace((unsigned char)p[n - 1])) n--;
  *s = p;
  *l = n;
}

/* 1 when s[0..l) occurs in shown (min: the shortest length that counts). */
static int seen_before(const kv_buf *shown, const char *s, size_t l, size_t min) {
  if (l < min || !l || !shown->len) return 0;
  const char *h = shown->data, *e = shown->data + shown->len;
  while ((size_t)(e - h) >= l) {
    const char *f = memchr(h, s[0], (size_t)(e - h) - l + 1);
    if (!f) return 0;
    if (!memcmp(f, s, l)) return 1;
    h = f + 1;
  }
  return 0;
}

/* With require_quotes, the lines of a fenced block in unit[from, k) (complete
 * lines: lines_end) other than its fences, each as one DMN_TOK_QUOTE. */
static int judge_quotes(judge *j, const char *unit, size_t from, size_t k) {
  int n = 0;
  size_t i = from;
  if (i == 0) { /* the opening fence line */
    const char *nl = memchr(unit, '\n', k);
    if (!nl) return 0;
    i = (size_t)(nl - unit) + 1;
  }
  while (i < k) {
    const char *nl = memchr(unit + i, '\n', k - i);
    size_t e = nl ? (size_t)(nl - unit) : k;
    const char *s;
    size_t l;
    trimmed(unit + i, e - i, &s, &l);
    int alnum = 0;
    for (size_t t = 0; t < l && !alnum; t++) alnum = isalnum((unsigned char)s[t]);
    /* a comment line is the writer's words (its code-like tokens are still
     * checked), as is an elision such as `// ...` */
    int comment = (l >= 2 && (!memcmp(s, "//", 2) || !memcmp(s, "/*", 2) || !memcmp(s, "--", 2) ||
                              !memcmp(s, "# ", 2))) ||
                  s[0] == '*' || (l == 1 && s[0] == '#');
    if (alnum && !comment && fence_at(s, l) < 0) {
      judge_tok(j, s, l, DMN_TOK_QUOTE);
      n++;
    }
    i = e + 1;
  }
  return n;
}

/* Judges the tokens of the current unit's bytes [judged, k): k and judged
 * are white-space positions outside any span (safe_end), so the tokens
 * found there are exactly the finished unit's tokens in that range. */
static void judge_upto(dmn_verifier *v, const char *unit, size_t k) {
  if (k <= v->judged) return;
  judge j = {v, v->unit_bad};
  if (v->require_quotes && is_fence(unit, k)) v->unit_tokens += judge_quotes(&j, unit, v->judged, k);
  v->unit_tokens += dmn_code_tokens(unit + v->judged, k - v->judged, judge_tok, &j);
  v->judged = k;
  v->unit_bad = j.bad;
}

/* The state of a new unit. */
static void unit_reset(dmn_verifier *v) {
  v->judged = v->released = 0;
  v->unit_tokens = v->unit_bad = v->cut_marked = 0;
}

static int line_end(kv_buf *out, const char *p, size_t n) {
  /* keep the line structure so lists stay lists */
  return n && p[n - 1] == '\n' && kv_buf_putc(out, '\n') ? KV_ENOMEM : 0;
}

/* Judges one complete unit p[0..n) (its first v->judged bytes judged
 * already, v->released shown); 1 when it repeats what was shown. */
static int judge_unit(dmn_verifier *v, const char *p, size_t n, kv_buf *out) {
  const char *s;
  size_t l;
  trimmed(p, n, &s, &l);
  if (!l) return kv_buf_append(out, p + v->released, n - v->released) ? KV_ENOMEM : 0;
  v->st.sentences++;
  /* a unit whose released part was new cannot be a repeat as a whole */
  if (!v->released && seen_before(&v->shown, s, l, 12)) {
    v->st.repeated = 1;
    return 1;
  }
  judge_upto(v, p, n);
  int bad = v->unit_bad;
  if (!bad && v->require_anchor && v->unit_tokens == 0) {
    bad = 1;
    v->st.unanchored++;
  }
  if (bad) {
    v->st.dropped++;
    if (v->released && !v->cut_marked) { /* the unknown name came in its last word */
      v->st.cut++;
      if (put_cut(out, p, n)) return KV_ENOMEM;
    }
    return line_end(out, p, n);
  }
  if (kv_buf_append(out, p + v->released, n - v->released) || kv_buf_append(&v->shown, s, l) ||
      kv_buf_putc(&v->shown, '\n'))
    return KV_ENOMEM;
  return 0;
}

/* End of the first complete unit in p[0..n) (past its boundary), or 0. */
static size_t unit_end(const char *p, size_t n) {
  int f = fence_at(p, n);
  if (f >= 0) { /* a fenced block: up to the closing fence's line end */
    const char mark = p[f];
    for (size_t i = (size_t)f + 3; i < n; i++)
      if (p[i - 1] == '\n') {
        int g = fence_at(p + i, n - i);
        if (g < 0 || p[i + (size_t)g] != mark) continue;
        const char *nl = memchr(p + i + (size_t)g + 3, '\n', n - i - (size_t)g - 3);
        return nl ? (size_t)(nl - p) + 1 : 0;
      }
    return 0;
  }
  int tick = 0;
  for (size_t i = 0; i < n; i++) {
    char c = p[i];
    if (c == '`') tick = !tick;
    if (c == '\n') return i + 1;
    if (!tick && (c == '.' || c == '!' || c == '?') && i + 1 < n && (p[i + 1] == ' ' || p[i + 1] == '\n')) {
      /* "e.g. " and a number like "1. " at a line start are not ends */
      if (c == '.' && i >= 1 && i < 4 && isdigit((unsigned char)p[i - 1])) continue;
      if (c == '.' && i >= 3 && p[i - 2] == '.' && p[i - 3] != '.') continue;
      return i + 2 <= n && p[i + 1] == ' ' ? i + 2 : i + 1;
    }
  }
  return 0;
}

/* The last position k in the unfinished unit p[0..n) where p[k] is white
 * space outside every backtick span, with no backtick before k whose role
 * (span or not) the text to come could still change: the code-like tokens
 * of p[0..k) are then final (dmn_code_tokens never lets a token or its
 * lookahead run past white space). 0 when there is none, and always for a
 * unit that is or may become a ``` block (see lines_end). The backtick
 * rule mirrors dmn_code_tokens. */
static size_t safe_end(const char *p, size_t n) {
  if (fence_at(p, n) >= 0 || may_be_fence(p, n)) return 0;
  size_t best = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '`') {
      if (i + 2 >= n) return best; /* a fence mark or a span: not known yet */
      if (p[i + 1] == '`' && p[i + 2] == '`') continue;
      size_t q = i + 1;
      while (q < n && p[q] != '`' && p[q] != '\n') q++;
      if (q >= n) return best; /* the span may still close */
      if (p[q] == '`') i = q;  /* a span: nothing inside it is a word end */
      continue;
    }
    if (isspace((unsigned char)p[i])) best = i;
  }
  return best;
}


/* In an unfinished ``` block p[0..n): the end of its last complete line
 * (no token runs past a line end), 0 when there is none but the fence's
 * own (a block is not opened before a line of it holds). */
static size_t lines_end(const char *p, size_t n) {
  const char *first = memchr(p, '\n', n);
  while (n && p[n - 1] != '\n') n--;
  return first && n > (size_t)(first - p) + 1 ? n : 0;
}

/* 1 when the last TAIL_REPEAT bytes of s[0..l) occur earlier in it: the
 * unit may be looping, so its words are held (loops() ends it; a unit that
 * only repeated a phrase goes on and is released once it moves on). */
#define TAIL_REPEAT 24
static int tail_repeats(const char *s, size_t l) {
  if (l < 2 * TAIL_REPEAT) return 0;
  const char *tail = s + l - TAIL_REPEAT;
  for (const char *h = s; h < tail; h++)
    if (*h == *tail && !memcmp(h, tail, TAIL_REPEAT)) return 1;
  return 0;
}

/* Shows what the unfinished unit has settled: its tokens up to safe_end
 * judged, and, unless it is held (not yet anchored; so far a repeat of
 * shown text), released. An unknown token cuts the unit, marked when a
 * part of it is out already. */
static int release_words(dmn_verifier *v, kv_buf *out) {
  if (v->unit_bad || !v->pending.len) return 0;
  const char *p = v->pending.data;
  size_t n = v->pending.len;
  judge_upto(v, p, is_fence(p, n) ? lines_end(p, n) : safe_end(p, n));
  if (v->unit_bad) {
    if (!v->released) return 0; /* dropped whole at its end */
    v->cut_marked = 1;
    v->st.cut++;
    return put_cut(out, p, n) ? KV_ENOMEM : 0;
  }
  if (v->judged <= v->released || (v->require_anchor && v->unit_tokens == 0)) return 0;
  const char *s;
  size_t l;
  trimmed(v->pending.data, v->judged, &s, &l);
  if (seen_before(&v->shown, s, l, 1) || tail_repeats(s, l)) return 0;
  if (kv_buf_append(out, v->pending.data + v->released, v->judged - v->released)) return KV_ENOMEM;
  v->released = v->judged;
  return 0;
}

/* A unit that runs on without an end and loops: its last 40 bytes occur
 * twice before within it. */
static int loops(const char *p, size_t n) {
  if (n < 400) return 0;
  const char *tail = p + n - 40;
  int hits = 0;
  for (const char *h = p; h < tail; h++)
    if (*h == *tail && !memcmp(h, tail, 40) && ++hits >= 2) return 1;
  return 0;
}

int dmn_verifier_feed(dmn_verifier *v, const char *p, size_t n, kv_buf *out) {
  if (v->st.repeated) return 1;
  if (kv_buf_append(&v->pending, p, n)) return KV_ENOMEM;
  size_t off = 0, e;
  int rc = 0;
  while ((e = unit_end(v->pending.data + off, v->pending.len - off)) > 0) {
    rc = judge_unit(v, v->pending.data + off, e, out);
    off += e;
    unit_reset(v);
    if (rc) break;
  }
  if (off) {
    memmove(v->pending.data, v->pending.data + off, v->pending.len - off);
    kv_buf_truncate(&v->pending, v->pending.len - off);
  }
  if (!rc) rc = release_words(v, out);
  if (!rc && loops(v->pending.data, v->pending.len)) {
    v->st.repeated = 1;
    kv_buf_reset(&v->pending);
    unit_reset(v);
    rc = 1;
  }
  return rc;
}

int dmn_verifier_finish(dmn_verifier *v, kv_buf *out) {
  int rc = 0;
  if (!v->st.repeated && v->pending.len) rc = judge_unit(v, v->pending.data, v->pending.len, out);
  kv_buf_reset(&v->pending);
  unit_reset(v);
  return rc < 0 ? rc : 0;
}
