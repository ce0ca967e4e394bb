/*
 * glob.c — gitignore-style path patterns for rules, never_send and
 * label_paths. Paths are '/'-separated and relative to the project root.
 * Semantics (checked against Python's pathspec "gitwildmatch", see
 * tests/reference/policy/): a pattern without an inner '/' matches a name
 * at any depth; with one it is anchored at the root (a leading '/' is
 * dropped); '**' as a whole segment spans zero or more directories (one or
 * more when it is the last segment); '*' and '?' never cross '/';
 * [abc], [a-z], [!x] and backslash escapes work within a segment; a
 * trailing '/' matches directories only; a pattern that matches a directory
 * matches everything below it. In a list the last matching pattern wins
 * and '!' negates. No allocation; recursion depth is bounded by the number
 * of segments (patterns and paths are capped at 64 segments) and a memo
 * keeps the work polynomial.
 */
#include <string.h>

#include "policy/internal.h"

#define MAX_SEGS 64

typedef struct seg { const char *s; size_t n; } seg;

static size_t split(const char *s, size_t len, seg *out) {
  size_t n = 0, start = 0;
  for (size_t i = 0; i <= len; i++) {
    if (i == len || s[i] == '/') {
      if (i > start) {
        if (n == MAX_SEGS) return MAX_SEGS + 1;
        out[n].s = s + start, out[n].n = i - start, n++;
      }
      start = i + 1;
    }
  }
  return n;
}

/* Match a bracket expression at p (after '['); returns chars consumed or 0 if malformed. */
static size_t bracket(const char *p, size_t pn, char c, int *hit) {
  size_t i = 0;
  int neg = 0, ok = 0;
  if (i < pn && (p[i] == '!' || p[i] == '^')) neg = 1, i++;
  size_t first = i;
  while (i < pn && (p[i] != ']' || i == first)) {
    char lo = p[i];
    if (lo == '\\' && i + 1 < pn) lo = p[++i];
    if (i + 2 < pn && p[i + 1] == '-' && p[i + 2] != ']') {
      char hi = p[i + 2];
      if (hi == '\\' && i + 3 < pn) hi = p[++i + 2];
      if (c >= lo && c <= hi) ok = 1;
      i += 3;
    } else {
      if (c == lo) ok = 1;
      i++;
    }
  }
  if (i >= pn) return 0;
  *hit = ok != neg;
  return i + 1;
}

/* One segment against one name; '*' backtracks to its last position. */
static int seg_match(const char *p, size_t pn, const char *s, size_t sn) {
  size_t pi = 0, si = 0, star_p = (size_t)-1, star_s = 0;
  while (si < sn) {
    if (pi < pn && p[pi] == '*') {
      while (pi < pn && p[pi] == '*') pi++;
      star_p = pi, star_s = si;
      continue;
    }
    if (pi < pn) {
      if (p[pi] == '?') { pi++, si++; continue; }
      if (p[pi] == '[') {
        int hit = 0;
        size_t used = bracket(p + pi + 1, pn - pi - 1, s[si], &hit);
        if (used) {
          if (hit) { pi += used + 1, si++; continue; }
        } else if (s[si] == '[') { pi++, si++; continue; }
      } else {
        char pc = p[pi];
        size_t adv = 1;
        if (pc == '\\' && pi + 1 < pn) pc = p[pi + 1], adv = 2;
        if (pc == s[si]) { pi += adv, si++; continue; }
      }
    }
    if (star_p == (size_t)-1) return 0;
    pi = star_p, si = ++star_s;
  }
  while (pi < pn && p[pi] == '*') pi++;
  return pi == pn;
}

static int is_dstar(const seg *g) { return g->n == 2 && g->s[0] == '*' && g->s[1] == '*'; }

/* Does pattern pat[i..] match a prefix of path[j..] ending at a component
 * boundary? dir_only: the matched prefix must leave at least one component.
 * memo[i][j] caches answers (0 unknown, 1 no, 2 yes) so runs of '**' stay
 * polynomial. */
typedef struct mctx {
  const seg *pat, *path;
  size_t np, nq;
  int dir_only;
  unsigned char memo[MAX_SEGS + 1][MAX_SEGS + 1];
} mctx;

static int segs_match(mctx *m, size_t i, size_t j) {
  if (i == m->np) return m->dir_only ? j < m->nq : 1;
  if (m->memo[i][j]) return m->memo[i][j] == 2;
  int r = 0;
  if (is_dstar(&m->pat[i])) {
    if (i + 1 == m->np) r = m->dir_only ? j + 1 < m->nq : j < m->nq; /* trailing '**': one or more */
    else
      for (size_t k = j; k <= m->nq && !r; k++) r = segs_match(m, i + 1, k);
  } else if (j < m->nq && seg_match(m->pat[i].s, m->pat[i].n, m->path[j].s, m->path[j].n)) {
    r = segs_match(m, i + 1, j + 1);
  }
  m->memo[i][j] = r ? 2 : 1;
  return r;
}

int pol_glob_match(const char *pattern, const char *path) {
  size_t pl = strlen(pattern);
  if (pl == 0 || pattern[0] == '#') return 0;
  while (pl > 0 && pattern[pl - 1] == ' ' && !(pl > 1 && pattern[pl - 2] == '\\')) pl--; /* trailing spaces */
  int dir_only = 0;
  if (pl > 0 && pattern[pl - 1] == '/') dir_only = 1, pl--;
  int anchored = memchr(pattern, '/', pl) != NULL;
  seg pat[MAX_SEGS], pth[MAX_SEGS];
  size_t np = split(pattern, pl, pat);
  size_t nq = split(path, strlen(path), pth);
  if (np == 0 || np > MAX_SEGS || nq > MAX_SEGS) return 0;
  mctx m;
  memset(&m, 0, sizeof m);
  m.pat = pat, m.path = pth, m.np = np, m.nq = nq, m.dir_only = dir_only;
  if (anchored) return segs_match(&m, 0, 0);
  for (size_t j = 0; j < nq; j++)
    if (segs_match(&m, 0, j)) return 1;
  return 0;
}

int pol_globs_match(const char *const *patterns, size_t n, const char *path) {
  int hit = 0;
  for (size_t i = 0; i < n; i++) {
    const char *p = patterns[i];
    int neg = p[0] == '!';
    if (pol_glob_match(neg ? p + 1 : p, path)) hit = !neg;
  }
  return hit;
}
