/*
 * literal.c — reads the string literals of indexed code for idx_log_sites
 * (strings.c): C/JS/Go/Java/Rust/Python/Ruby/shell quotes, Python prefixes
 * (f, r, b), triple quotes, JS and Go backticks, Rust raw strings. Inside a
 * literal, format slots are printf specifiers (%s %d %zu %.2f %llu %-8s %*d,
 * Go's %v %q %w, Python's %(x)s), braces ({} {0} {name} {:?} {x:>8}: Python,
 * Rust, SLF4J) in the languages that use them, JS/shell ${...}, Ruby #{...},
 * shell $name; %% and {{ }} are one char.
 *
 * Invariant: a literal that does not close is not a literal (NULL), so a
 * stray quote never swallows the rest of a file.
 */
#include "internal.h"
#include "literal_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void idx_ss_push(sstr *s, int c) {
  if (s->oom) return;
  if (c != SLOT && c != ' ' && isspace(c)) c = ' ';
  if (c == ' ' && (s->n == 0 || s->v[s->n - 1] == ' ')) return;
  if (KV_GROW(s->v, s->cap, s->n + 1)) {
    s->oom = 1;
    return;
  }
  s->v[s->n++] = c;
}

/* ------------------------------------------------------------ languages */

int idx_lit_lang(const char *lang) {
  if (!lang) return L_CLIKE;
  if (!strcmp(lang, "python")) return L_PY;
  if (!strcmp(lang, "javascript") || !strcmp(lang, "typescript") || !strcmp(lang, "tsx")) return L_JS;
  if (!strcmp(lang, "ruby")) return L_RUBY;
  if (!strcmp(lang, "bash")) return L_SH;
  if (!strcmp(lang, "rust")) return L_RUST;
  if (!strcmp(lang, "java")) return L_JAVA;
  return L_CLIKE; /* c, cpp, go */
}

/* A printf conversion at s[0] == '%': its length, or 0. */
static size_t printf_spec(const char *s, const char *e) {
  const char *p = s + 1;
  if (p < e && *p == '(') { /* Python %(name)s */
    const char *c = memchr(p, ')', (size_t)(e - p));
    if (!c || c - p > 64) return 0;
    p = c + 1;
  }
  while (p < e && strchr("-+ #0'", *p)) p++;
  if (p < e && *p == '*') p++;
  else
    while (p < e && isdigit((unsigned char)*p)) p++;
  if (p < e && *p == '.') {
    p++;
    if (p < e && *p == '*') p++;
    else
      while (p < e && isdigit((unsigned char)*p)) p++;
  }
  const char *len0 = p;
  while (p < e && strchr("hlLqjztI", *p)) p++;
  if (p < e && *p && strchr("diouxXeEfFgGaAcspqvwTtbrSn", *p)) return (size_t)(p + 1 - s);
  if (p > len0 && strchr("qt", p[-1])) return (size_t)(p - s); /* Go's %q, %t */
  return 0;
}

/* A {...} slot at s[0] == '{' (no nested braces, one line, <= 80 bytes): its length, or 0. */
static size_t brace_spec(const char *s, const char *e) {
  for (const char *p = s + 1; p < e && p - s <= 80; p++) {
    if (*p == '}') return (size_t)(p + 1 - s);
    if (*p == '{' || *p == '\n' || *p == '"' ) return 0;
  }
  return 0;
}

/* Skips a balanced {...} or (...) from s[0]; returns its end or NULL. */
static const char *skip_balanced(const char *s, const char *e, char open, char close) {
  int d = 0;
  for (const char *p = s; p < e; p++) {
    if (*p == open) d++;
    else if (*p == close && --d == 0) return p + 1;
    else if (*p == '\n' && open == '(') return NULL;
  }
  return NULL;
}

/* Reads the body of a literal starting at p (after its opening quote) into
 * F; returns the position after the closing quote, or NULL when it does
 * not close (then the quote was not a literal's). */
const char *idx_lit_body(const char *p, const char *e, const qkind *k, sstr *F) {
  while (p < e) {
    char c = *p;
    if (k->triple) {
      if (e - p >= 3 && p[0] == k->q && p[1] == k->q && p[2] == k->q) return p + 3;
    } else if (c == k->q) {
      const char *q = p + 1;
      int h = 0;
      while (h < k->hashes && q < e && *q == '#') q++, h++;
      if (h == k->hashes) return q;
    }
    if (c == '\n' && !k->multiline) return NULL;
    if (c == '\\' && !k->raw && p + 1 < e) {
      char d = p[1];
      p += 2;
      switch (d) {
      case 'n': case 't': case 'r': case '\n': idx_ss_push(F, ' '); break;
      case 'x': {
        int v = 0, m = 0;
        while (m < 2 && p < e && isxdigit((unsigned char)*p)) {
          v = v * 16 + (isdigit((unsigned char)*p) ? *p - '0' : (tolower((unsigned char)*p) - 'a' + 10));
          p++, m++;
        }
        idx_ss_push(F, v & 0xff);
        break;
      }
      default: idx_ss_push(F, (unsigned char)d); break;
      }
      continue;
    }
    if (c == '%' && k->printf_) {
      if (p + 1 < e && p[1] == '%') {
        idx_ss_push(F, '%');
        p += 2;
        continue;
      }
      size_t n = printf_spec(p, e);
      if (n) {
        idx_ss_push(F, SLOT);
        p += n;
        continue;
      }
    }
    if (c == '{' && k->braces) {
      if (p + 1 < e && p[1] == '{') {
        idx_ss_push(F, '{');
        p += 2;
        continue;
      }
      size_t n = brace_spec(p, e);
      if (n) {
        idx_ss_push(F, SLOT);
        p += n;
        continue;
      }
    }
    if (c == '}' && k->braces && p + 1 < e && p[1] == '}') {
      idx_ss_push(F, '}');
      p += 2;
      continue;
    }
    if ((c == '$' && k->dollar) || (c == '#' && k->hash_brace)) {
      const char *q = NULL;
      if (p + 1 < e && p[1] == '{') q = skip_balanced(p + 1, e, '{', '}');
      else if (c == '$' && k->q == '"' && p + 1 < e && p[1] == '(') q = skip_balanced(p + 1, e, '(', ')');
      else if (c == '$' && k->q == '"' && p + 1 < e && (isalpha((unsigned char)p[1]) || p[1] == '_')) {
        q = p + 1;
        while (q < e && (isalnum((unsigned char)*q) || *q == '_')) q++;
      }
      if (q) {
        idx_ss_push(F, SLOT);
        p = q;
        continue;
      }
    }
    idx_ss_push(F, (unsigned char)c);
    p++;
  }
  return NULL;
}

/* A literal's opening at p (prefixes included) in language L: fills *k and
 * returns the position after the opening quote, or NULL. */
const char *idx_lit_open(const char *p, const char *s0, const char *e, int L, qkind *k) {
  memset(k, 0, sizeof *k);
  const char *q = p;
  int fstr = 0, raw = 0, hashes = 0;
  if (L == L_PY) {
    int np = 0;
    while (q < e && np < 2 && strchr("rRbBfFuU", *q)) {
      if (*q == 'f' || *q == 'F') fstr = 1;
      if (*q == 'r' || *q == 'R') raw = 1;
      q++, np++;
    }
    if (np && p > s0 && (isalnum((unsigned char)p[-1]) || p[-1] == '_')) return NULL;
  } else if (L == L_RUST && q < e && (*q == 'r' || *q == 'b')) {
    const char *r = q;
    if (*r == 'b') r++;
    if (r < e && *r == 'r') {
      r++;
      while (r < e && *r == '#') r++, hashes++;
      raw = 1;
    }
    if (r == q || (p > s0 && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))) return NULL;
    q = r;
  }
  if (q >= e) return NULL;
  char c = *q;
  if (c != '"' && c != '\'' && c != '`') return NULL;
  if (c == '`' && L != L_JS && L != L_CLIKE && L != L_SH) return NULL;
  if (c == '\'' && (L == L_CLIKE || L == L_RUST || L == L_JAVA)) return NULL; /* a char, or a lifetime */
  k->q = c;
  k->raw = raw || (c == '\'' && L == L_SH) || (c == '`' && L == L_CLIKE);
  k->hashes = hashes;
  k->printf_ = !(c == '\'' && L == L_SH) && !(c == '`' && L == L_SH);
  if (L == L_PY && e - q >= 3 && q[1] == c && q[2] == c) k->triple = 1, q += 2;
  if (L == L_JAVA && c == '"' && e - q >= 3 && q[1] == '"' && q[2] == '"') k->triple = 1, q += 2;
  k->multiline = k->triple || c == '`' || raw || L == L_SH || L == L_RUBY;
  k->braces = L == L_RUST || L == L_JAVA || (L == L_PY && (fstr || !raw));
  k->dollar = (L == L_JS && c == '`') || (L == L_SH && c == '"');
  k->hash_brace = L == L_RUBY && c == '"';
  if (c == '`' && L == L_SH) return NULL; /* command substitution */
  return q + 1;
}

/* Skips one operand of a `+` chain ("a" + x.y(z) + "b"): identifiers,
 * numbers, dots, arrows, balanced () and []. Returns the end. */
const char *idx_lit_skip_operand(const char *p, const char *e) {
  const char *s = p;
  while (p < e) {
    if (isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '$') p++;
    else if (*p == '-' && p + 1 < e && p[1] == '>') p += 2;
    else if (*p == '(' || *p == '[') {
      char open = *p, close = *p == '(' ? ')' : ']';
      int d = 0;
      const char *q = p;
      for (; q < e; q++) {
        if (*q == '"' || *q == '\'') {
          char qc = *q++;
          while (q < e && *q != qc && *q != '\n') q += *q == '\\' ? 2 : 1;
          if (q >= e) break;
          continue;
        }
        if (*q == open) d++;
        else if (*q == close && --d == 0) break;
      }
      if (q >= e) return p;
      p = q + 1;
    } else break;
  }
  return p > s ? p : s;
}

const char *idx_lit_skip_ws(const char *p, const char *e) {
  while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || (*p == '\\' && p + 1 < e && p[1] == '\n')))
    p++;
  return p;
}
