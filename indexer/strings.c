/*
 * strings.c — from a log template to the source lines that print it
 * (idx_log_sites, idx_literal_match).
 *
 * A template is constant text with variable slots (logs/ writes them "<*>";
 * the caller names the marker, so the indexer knows nothing of logs/). A
 * candidate is a string literal of indexed code, read by literal.c as a
 * slot-string (constant chars, a SLOT per format placeholder); adjacent
 * literals ("a" "b") and `+` concatenations ("a " + x + " b") join into
 * one literal with a slot per operand.
 *
 * Matching is an alignment of the two slot-strings (whitespace runs are one
 * space and free to skip): a constant char matches the same char; a format
 * slot absorbs any run of the template (its value may have been constant in
 * the log, "%s: draining" -> "stop requested: draining"); a template slot
 * aligned to a format slot is the expected case; it may also eat code
 * constants inside its one token (the miner masks whole tokens:
 * "%s://%s:%s" -> <*>, "HTTP/%s" -> <*>), but a constant word it eats
 * whole is unexplained, and a slot with nothing under it costs. A literal is a
 * match when >= 80% of its constant chars and of the template's chars (less
 * those its slots absorbed) match literally (quotes match quotes), at most
 * one char on either side (10% past 20 chars) is left unexplained — so
 * "%s unregistered" is not "<*> registered" — at most one template slot is
 * not aligned to a format slot, and the alignment quality q (matched chars
 * and aligned slots over all) is >= 0.8. Evidence against false links: the
 * words of the literal that matched literally carry log2(N / df) bits each
 * (df: chunks holding the word as written, N: chunks, at least 1000 so a small repo
 * does not make every word rare; a common log word, STOP below, 1 bit); a
 * link needs >= MIN_BITS, or >= MIN_BITS_UNIQUE when it is the only literal
 * of the repository that matches with q >= WEAK_Q (0.99: "%s registered";
 * a bare "registered" JSON key leaves the template's slot unexplained, q
 * 0.95, and is no rival). So a template of variables only, or of one common word,
 * links to nothing. Ranking: q x bits / (bits + 4), halved for a literal
 * whose leading slot absorbed the message's first words (a __repr__ piece
 * of "Incremented Retry for %r"), and between equal literals the call that
 * names the record's level (log.info( vs log.debug() first.
 *
 * Candidates come from chunks_fts (the template's constant words, OR-ed,
 * best BM25 first, code files only: prose and logs hold the rendered
 * messages, not the code that printed them). Reads run on the reader
 * connection under rlock, like search.c.
 */
#include "internal.h"
#include "literal_internal.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_T 1024      /* template items considered */
#define MAX_F 2048      /* literal items considered */
#define POOL 1000       /* candidate chunks per template */
#define MIN_Q 0.8
#define MIN_BITS 8.0
#define WEAK_Q 0.99 /* a weak site links only as the one literal matching this well */
#define MIN_BITS_UNIQUE 4.0 /* enough for the one literal of the repo that matches */
#define N_FLOOR 1000.0

/* ------------------------------------------------------------- alignment */

/* Scores of one alignment step (see the file's comment). */
enum { W_MATCH = 2, W_SLOTS = 3, C_SKIP = 3, C_EAT = 1, C_LONE = 4 };

typedef struct align {
  int *D, *E;
  size_t cap;
} align;

typedef struct astats {
  int m;              /* constant chars matched (non-space) */
  int ft, tt;         /* constant chars (non-space) of the literal, of the template */
  int ta;             /* template chars absorbed by format slots */
  int tu, fu;         /* unexplained chars: template, literal (skipped or eaten by a template slot) */
  int sa, st, su;     /* template slots aligned to format slots, all template slots, lone ones */
  int seat;           /* template slots that ate literal constants */
  int fe;             /* literal chars eaten by template slots (inside one token: "%s://%s" -> <*>) */
  int lead_abs;       /* a leading format slot absorbed template constants (the literal is a piece of the message) */
  int fs_used;        /* format slots that absorbed something */
  double q;
} astats;

#define AT(X, i, j) (X)[(size_t)(i) * (nf + 1) + (size_t)(j)]

static int sp(int c) { return c == ' '; }
/* Chars that match: the same, or two quotes (loggers re-quote: kvasird
 * writes '"' as '\''). */
static int same(int a, int b) { return a == b || ((a == '"' || a == '\'') && (b == '"' || b == '\'')); }

/* Fills D (best score aligning T[i:] with F[j:]) and E (the same with the
 * template slot i open, having eaten >= 1 literal char). */
static int align_run(align *A, const int *T, size_t nt, const int *F, size_t nf, astats *st) {
  size_t cells = (nt + 1) * (nf + 1);
  if (cells > A->cap) {
    free(A->D), free(A->E);
    A->D = malloc(cells * sizeof *A->D);
    A->E = malloc(cells * sizeof *A->E);
    A->cap = A->D && A->E ? cells : 0;
    if (!A->cap) return KV_ENOMEM;
  }
  int *D = A->D, *E = A->E;
  const int NEG = -1000000;
  for (size_t ii = nt + 1; ii-- > 0;)
    for (size_t jj = nf + 1; jj-- > 0;) {
      size_t i = ii, j = jj;
      int best = NEG, e = NEG;
      if (i == nt && j == nf) best = 0;
      else if (j < nf && F[j] == SLOT) {
        best = AT(D, i, j + 1);
        if (i < nt) {
          int g = T[i] == SLOT ? W_SLOTS : 0;
          if (AT(D, i + 1, j) + g > best) best = AT(D, i + 1, j) + g;
        }
      } else if (i < nt && T[i] == SLOT) {
        /* a template slot is one token: it eats no space */
        best = AT(D, i + 1, j) - C_LONE;
        if (j < nf && !sp(F[j]) && AT(E, i, j + 1) - C_EAT > best) best = AT(E, i, j + 1) - C_EAT;
      } else {
        if (i < nt && j < nf && same(T[i], F[j])) best = AT(D, i + 1, j + 1) + (sp(T[i]) ? 0 : W_MATCH);
        if (i < nt && AT(D, i + 1, j) - (sp(T[i]) ? 0 : C_SKIP) > best) best = AT(D, i + 1, j) - (sp(T[i]) ? 0 : C_SKIP);
        if (j < nf && AT(D, i, j + 1) - (sp(F[j]) ? 0 : C_SKIP) > best) best = AT(D, i, j + 1) - (sp(F[j]) ? 0 : C_SKIP);
      }
      /* E: template slot i open after eating; may end here or eat on */
      if (i < nt && T[i] == SLOT) {
        e = AT(D, i + 1, j);
        if (j < nf && F[j] == SLOT) {
          if (AT(D, i + 1, j + 1) + W_SLOTS > e) e = AT(D, i + 1, j + 1) + W_SLOTS;
          if (AT(E, i, j + 1) + W_SLOTS > e) e = AT(E, i, j + 1) + W_SLOTS;
        } else if (j < nf && !sp(F[j])) {
          if (AT(E, i, j + 1) - C_EAT > e) e = AT(E, i, j + 1) - C_EAT;
        }
      }
      AT(D, i, j) = best;
      AT(E, i, j) = e;
    }
  /* trace back the best alignment for its statistics */
  memset(st, 0, sizeof *st);
  for (size_t i = 0; i < nt; i++) {
    if (T[i] == SLOT) st->st++;
    else if (!sp(T[i])) st->tt++;
  }
  for (size_t j = 0; j < nf; j++)
    if (F[j] != SLOT && !sp(F[j])) st->ft++;
  size_t i = 0, j = 0;
  int inE = 0, slot_used = 0;
  /* the run a template slot eats: its length, letters in it, an F slot in it */
  int run = 0, run_alpha = 0, run_slot = 0;
#define RUN_END()                                                                                  \
  do {                                                                                             \
    if (run && run_alpha && !run_slot) st->fe -= run, st->fu += run; /* a constant word: not a variable */ \
    run = run_alpha = run_slot = 0;                                                                \
  } while (0)
  while (i < nt || j < nf) {
    int cur = inE ? AT(E, i, j) : AT(D, i, j);
    if (inE) { /* T[i] is an open slot */
      if (cur == AT(D, i + 1, j)) {
        RUN_END();
        i++, inE = 0;
      } else if (j < nf && F[j] == SLOT && cur == AT(D, i + 1, j + 1) + W_SLOTS) {
        run_slot = 1;
        RUN_END();
        st->sa++, st->fs_used++, i++, j++, inE = 0;
      } else if (j < nf && F[j] == SLOT) {
        run_slot = 1;
        st->fs_used++, j++;
      } else {
        st->fe++, run++, run_alpha |= isalpha(F[j]) != 0;
        j++;
      }
      continue;
    }
    if (j < nf && F[j] == SLOT) {
      if (cur == AT(D, i, j + 1)) {
        st->fs_used += slot_used;
        slot_used = 0;
        j++;
      } else {
        if (T[i] == SLOT) st->sa++;
        else if (!sp(T[i])) {
          st->ta++;
          if (j == 0 && isalnum(T[i])) st->lead_abs = 1;
        }
        slot_used = 1;
        i++;
      }
      continue;
    }
    if (i < nt && T[i] == SLOT) {
      if (cur == AT(D, i + 1, j) - C_LONE) {
        st->su++, i++;
      } else {
        st->seat++;
        st->fe++;
        run = 1, run_alpha = isalpha(F[j]) != 0, run_slot = 0;
        j++, inE = 1;
      }
      continue;
    }
    if (i < nt && j < nf && same(T[i], F[j]) && cur == AT(D, i + 1, j + 1) + (sp(T[i]) ? 0 : W_MATCH)) {
      if (!sp(T[i])) st->m++;
      i++, j++;
    } else if (i < nt && cur == AT(D, i + 1, j) - (sp(T[i]) ? 0 : C_SKIP)) {
      if (!sp(T[i])) st->tu++;
      i++;
    } else {
      if (!sp(F[j])) st->fu++;
      j++;
    }
  }
  RUN_END();
#undef RUN_END
  /* q <= 1: m is at most either side's constants, sa at most st, and a
   * format slot that absorbed several template slots counts once */
  double num = 2.0 * st->m + st->sa + (st->sa < st->fs_used ? st->sa : st->fs_used), den = (st->ft - st->fe) + (st->tt - st->ta) + st->st + st->fs_used;
  st->q = den > 0 ? num / den : 0;
  if (st->q > 1) st->q = 1;
  return 0;
}

static int accept(const astats *s) {
  if (s->m == 0 || s->ft == 0) return 0;
  int fl = s->ft - s->fe; /* the literal's constants outside the template's tokens */
  if (fl <= 0 || s->fe > s->ft / 2 || s->m < 0.8 * fl || s->fu > (fl >= 20 ? 0.1 * fl : 1)) return 0;
  int tl = s->tt - s->ta;
  if (s->m < 0.8 * tl || s->tu > (tl >= 20 ? 0.1 * tl : 1)) return 0;
  if (s->su > 1) return 0;
  return s->q >= MIN_Q;
}

/* --------------------------------------------------------------- scanning */

typedef struct best_lit {
  double q;
  int lead_abs;
  int lvl;        /* the call before the literal names the record's level */
  int line;       /* 1-based, relative to the text */
  char words[512]; /* the literal's words that matched, space-separated */
} best_lit;

/* The words (alnum runs of >= 2 chars, not all digits) of F that matched
 * literally: recomputed by a greedy left-to-right scan of the template. */
static void matched_words(const int *T, size_t nt, const int *F, size_t nf, char *out, size_t outn) {
  size_t ol = 0;
  out[0] = 0;
  /* the template's text with slots as NUL, to search words in */
  char *tx = malloc(nt + 1);
  if (!tx) return;
  for (size_t i = 0; i < nt; i++) tx[i] = T[i] == SLOT ? '\n' : (char)T[i];
  tx[nt] = 0;
  const char *from = tx;
  for (size_t j = 0; j < nf;) {
    while (j < nf && !(F[j] != SLOT && (isalnum(F[j]) || F[j] == '_' || F[j] >= 0x80))) j++;
    size_t a = j;
    while (j < nf && F[j] != SLOT && (isalnum(F[j]) || F[j] == '_' || F[j] >= 0x80)) j++;
    if (j - a < 2 || j - a > 60) continue;
    char w[64];
    int digits = 1;
    for (size_t k = a; k < j; k++) {
      w[k - a] = (char)F[k];
      if (!isdigit(F[k])) digits = 0;
    }
    w[j - a] = 0;
    if (digits) continue;
    /* as a whole word, in order */
    const char *h = from;
    for (; (h = strstr(h, w)); h++) {
      int lb = h == tx || !(isalnum((unsigned char)h[-1]) || h[-1] == '_');
      int rb = !(isalnum((unsigned char)h[j - a]) || h[j - a] == '_');
      if (lb && rb) break;
    }
    if (!h) continue;
    from = h + (j - a);
    if (ol + (j - a) + 2 < outn) ol += (size_t)snprintf(out + ol, outn - ol, "%s%s", ol ? " " : "", w);
  }
  free(tx);
}

/* The literal chains of text in language L, each aligned with T; the best
 * accepted one goes to *b (b->q = 0 when none). */
/* 1 when the 160 bytes before lit name the level (log.info(, DMN_WARN,
 * logger.warning(, Level.ERROR): a word starting with it, case aside. */
static int names_level(const char *s, const char *lit, const char *level) {
  size_t ll = level ? strlen(level) : 0;
  if (!ll) return 0;
  const char *p = lit - s > 160 ? lit - 160 : s;
  for (; p + ll <= lit; p++)
    if (!strncasecmp(p, level, ll) && (p == s || !isalpha((unsigned char)p[-1]))) return 1;
  return 0;
}

static int scan_text(int L, const char *text, size_t len, const int *T, size_t nt, const char *twords,
                     const char *level, align *A, best_lit *b) {
  const char *s = text, *e = text + len, *p = text;
  int line = 1;
  b->q = 0;
  sstr F = {0};
  int rc = 0;
  while (p < e && !rc) {
    char c = *p;
    if (c == '\n') {
      line++, p++;
      continue;
    }
    /* comments */
    if ((L != L_PY && L != L_RUBY && L != L_SH) && c == '/' && p + 1 < e && (p[1] == '/' || p[1] == '*')) {
      if (p[1] == '/') {
        while (p < e && *p != '\n') p++;
      } else {
        const char *q = p + 2;
        while (q + 1 < e && !(q[0] == '*' && q[1] == '/')) line += *q++ == '\n';
        p = q + 1 < e ? q + 2 : e;
      }
      continue;
    }
    if ((L == L_PY || L == L_RUBY || L == L_SH) && c == '#' && (L != L_SH || p == s || isspace((unsigned char)p[-1]))) {
      while (p < e && *p != '\n') p++;
      continue;
    }
    qkind k;
    const char *body = idx_lit_open(p, s, e, L, &k);
    if (!body) {
      if (c == '\'' && (L == L_CLIKE || L == L_JAVA)) { /* a char literal: skip it */
        const char *q = p + 1;
        if (q < e && *q == '\\') q += 2;
        else q++;
        if (q < e && *q == '\'') p = q;
      }
      p++;
      continue;
    }
    /* one chain of literals from here */
    F.n = 0;
    F.oom = 0;
    int line0 = line;
    const char *back = p;
    while (back > s && (back[-1] == ' ' || back[-1] == '\t' || back[-1] == '\n')) back--;
    if (back > s && back[-1] == '+' && !(back - 1 > s && back[-2] == '+')) idx_ss_push(&F, SLOT);
    const char *q = body, *last = NULL;
    int last_line = line;
    for (;;) {
      const char *end = idx_lit_body(q, e, &k, &F);
      if (!end) break;
      for (const char *r = q; r < end; r++) line += *r == '\n';
      last = end, last_line = line;
      const char *r = idx_lit_skip_ws(end, e);
      qkind k2;
      const char *b2 = NULL;
      int slot = 0;
      if (r < e && *r == '+' && !(r + 1 < e && (r[1] == '+' || r[1] == '='))) {
        r = idx_lit_skip_ws(r + 1, e);
        while (!(b2 = idx_lit_open(r, s, e, L, &k2))) {
          const char *o = idx_lit_skip_operand(r, e);
          if (o == r) break;
          slot = 1;
          r = idx_lit_skip_ws(o, e);
          if (r < e && *r == '+' && !(r + 1 < e && (r[1] == '+' || r[1] == '='))) r = idx_lit_skip_ws(r + 1, e);
          else break;
        }
      } else if (L == L_CLIKE || L == L_PY) {
        b2 = idx_lit_open(r, s, e, L, &k2);
      }
      if (slot) idx_ss_push(&F, SLOT);
      if (!b2) break;
      for (const char *t = end; t < r; t++) line += *t == '\n';
      k = k2;
      q = b2;
    }
    line = last_line;
    if (!last) { /* not a literal after all */
      p++;
      continue;
    }
    if (F.oom) rc = KV_ENOMEM;
    else if (F.n > 0 && F.n <= MAX_F) {
      /* cheap filter: a word of the literal in the template */
      int any = 0;
      for (size_t j = 0; j < F.n && !any;) {
        while (j < F.n && !(F.v[j] != SLOT && isalnum(F.v[j]))) j++;
        size_t a = j;
        while (j < F.n && F.v[j] != SLOT && (isalnum(F.v[j]) || F.v[j] == '_')) j++;
        if (j - a >= 2 && j - a < 60) {
          char w[64];
          for (size_t t = a; t < j; t++) w[t - a] = (char)F.v[t];
          w[j - a] = 0;
          any = strstr(twords, w) != NULL;
        }
      }
      if (any) {
        astats st;
        if ((rc = align_run(A, T, nt, F.v, F.n, &st))) break;
        if (accept(&st) && st.q * (st.lead_abs ? 0.5 : 1) > b->q * (b->lead_abs ? 0.5 : 1)) {
          b->q = st.q;
          b->lead_abs = st.lead_abs;
          b->lvl = names_level(s, p, level);
          b->line = line0;
          matched_words(T, nt, F.v, F.n, b->words, sizeof b->words);
        }
      }
    }
    p = last; /* go on after the chain (its lines are counted) */
  }
  free(F.v);
  return rc;
}

/* The template as a slot-string, and its text (slots as '\n') for the
 * cheap filter. */
static int template_sstr(const char *tmpl, const char *slot, sstr *T, char **text) {
  size_t sl = slot ? strlen(slot) : 0, n = strlen(tmpl);
  for (size_t i = 0; i < n && T->n < MAX_T;) {
    if (sl && !strncmp(tmpl + i, slot, sl)) {
      idx_ss_push(T, SLOT);
      i += sl;
    } else idx_ss_push(T, (unsigned char)tmpl[i++]);
  }
  while (T->n && T->v[T->n - 1] == ' ') T->n--;
  *text = malloc(T->n + 1);
  if (T->oom || !*text) return KV_ENOMEM;
  for (size_t i = 0; i < T->n; i++) (*text)[i] = T->v[i] == SLOT ? '\n' : (char)T->v[i];
  (*text)[T->n] = 0;
  return 0;
}

double idx_literal_match(const char *lang, const char *text, size_t len, const char *tmpl, const char *slot,
                         int *line) {
  sstr T = {0};
  char *tx = NULL;
  align A = {0};
  best_lit b = {0};
  if (line) *line = 0;
  if (text && tmpl && template_sstr(tmpl, slot, &T, &tx) == 0 &&
      scan_text(idx_lit_lang(lang), text, len, T.v, T.n, tx, NULL, &A, &b) == 0 && b.q > 0 && line)
    *line = b.line;
  free(T.v), free(tx), free(A.D), free(A.E);
  return b.q;
}

/* ------------------------------------------------------------ the index */

static const char *const STOP[] = {
    "error", "errors", "failed", "fail", "failure", "warning", "warn", "info", "debug", "done", "ok", "start",
    "started", "starting", "stop", "stopped", "success", "exception", "timeout", "retry", "true", "false",
    "null", "none", "nil", "unknown", "invalid", "the", "an", "to", "of", "in", "for", "on", "with", "is", "not",
    "from", "at", "by", "and", "or", "be", "was", "no", "it", "this", "that", "as", "value", "name", "id"};

static int is_stop(const char *w) {
  for (size_t i = 0; i < sizeof STOP / sizeof STOP[0]; i++)
    if (!strcasecmp(w, STOP[i])) return 1;
  return 0;
}

void idx_sites_free(idx_sites *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) free(s->v[i].path);
  free(s->v);
  s->v = NULL;
  s->n = 0;
}

static int cmp_site(const void *a, const void *b) {
  const idx_site *x = a, *y = b;
  if (x->score != y->score) return x->score > y->score ? -1 : 1;
  int c = strcmp(x->path, y->path);
  return c ? c : x->line - y->line;
}

/* Bits of one word: log2(max(N, N_FLOOR) / df), df the chunks whose text
 * holds the word as written (FTS finds its stem, instr the word: the stem
 * of "Redirecting" is in every chunk about redirects). */
static double word_bits(sqlite3 *db, sqlite3_stmt *df, double N, const char *w) {
  (void)db;
  if (is_stop(w)) return 1.0;
  char q[96];
  if (strlen(w) > 80) return 0;
  snprintf(q, sizeof q, "text : \"%s\"", w);
  sqlite3_reset(df);
  sqlite3_bind_text(df, 1, q, -1, SQLITE_TRANSIENT);
  sqlite3_bind_text(df, 2, w, -1, SQLITE_TRANSIENT);
  double n = 0;
  if (sqlite3_step(df) == SQLITE_ROW) n = sqlite3_column_double(df, 0);
  sqlite3_reset(df);
  return log2((N < N_FLOOR ? N_FLOOR : N) / (n + 1.0));
}

int idx_log_sites(idx_index *ix, const char *tmpl, const char *slot, const char *level, size_t k, idx_sites *out,
                  kv_err *err) {
  memset(out, 0, sizeof *out);
  if (!tmpl) return kv_err_set(err, KV_EINVAL, "log sites: no template");
  if (k == 0) k = 3;
  sstr T = {0};
  char *tx = NULL;
  int rc = template_sstr(tmpl, slot, &T, &tx);
  if (rc) {
    free(T.v), free(tx);
    return kv_err_set(err, rc, "log sites: out of memory");
  }
  /* the FTS query: the template's constant words, OR-ed */
  kv_buf fq = KV_BUF_INIT;
  int nw = 0;
  for (size_t i = 0; tx[i] && nw < 24;) {
    while (tx[i] && !(isalnum((unsigned char)tx[i]) || tx[i] == '_' || (unsigned char)tx[i] >= 0x80)) i++;
    size_t a = i;
    int digits = 1;
    while (tx[i] && (isalnum((unsigned char)tx[i]) || tx[i] == '_' || (unsigned char)tx[i] >= 0x80))
      digits &= isdigit((unsigned char)tx[i]) != 0, i++;
    if (i - a < 2 || i - a > 80 || digits) continue;
    kv_buf_printf(&fq, "%s\"%.*s\"", nw ? " OR " : "text : (", (int)(i - a), tx + a);
    nw++;
  }
  if (nw == 0) goto done; /* variables only: nothing to link */
  kv_buf_putc(&fq, ')');
  if (!kv_buf_ok(&fq)) {
    rc = kv_err_set(err, KV_ENOMEM, "log sites: out of memory");
    goto done;
  }
  pthread_mutex_lock(&ix->rlock);
  sqlite3 *db = idx_store_db(ix->r);
  sqlite3_stmt *st = NULL, *df = NULL;
  double N = 0;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
    N = sqlite3_column_double(st, 0);
  sqlite3_finalize(st);
  st = NULL;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
                                 " WHERE chunks_fts MATCH ?1 AND instr(c.text, ?2) > 0", -1, &df, NULL) != SQLITE_OK ||
      sqlite3_prepare_v2(db,
                         "SELECT c.text, c.line0, f.path, b.lang FROM chunks_fts JOIN chunks c ON c.id = chunks_fts.rowid"
                         " JOIN blobs b ON b.id = c.blob JOIN files f ON f.oid = b.oid AND f.worktree < 2 AND f.skip = 0"
                         " WHERE chunks_fts MATCH ?1 AND b.lang IS NOT NULL AND b.lang <> ''"
                         " ORDER BY bm25(chunks_fts, 1.0, 0.5, 0.5) LIMIT ?2",
                         -1, &st, NULL) != SQLITE_OK) {
    rc = kv_err_set(err, KV_EIO, "%s: log sites: %s", ix->db_path, sqlite3_errmsg(db));
  } else {
    sqlite3_bind_text(st, 1, kv_buf_str(&fq), -1, SQLITE_STATIC);
    sqlite3_bind_int(st, 2, POOL);
    align A = {0};
    size_t cap = 0, rows = 0, weak = 0, pooled = 0;
    while (!rc && sqlite3_step(st) == SQLITE_ROW) {
      pooled++;
      const char *text = (const char *)sqlite3_column_text(st, 0);
      const char *path = (const char *)sqlite3_column_text(st, 2);
      const char *lang = (const char *)sqlite3_column_text(st, 3);
      if (!text || !path) continue;
      best_lit b;
      if ((rc = scan_text(idx_lit_lang(lang), text, (size_t)sqlite3_column_bytes(st, 0), T.v, T.n, tx, level, &A, &b)))
        break;
      if (b.q <= 0) continue;
      int line = sqlite3_column_int(st, 1) + b.line - 1;
      double bits = 0;
      char *save = NULL;
      for (char *w = strtok_r(b.words, " ", &save); w; w = strtok_r(NULL, " ", &save)) bits += word_bits(db, df, N, w);
      if (b.q >= WEAK_Q) rows++; /* a rival for uniqueness only when it matches (almost) exactly */
      if (bits < MIN_BITS_UNIQUE) continue;
      if (bits < MIN_BITS && b.q >= WEAK_Q) weak++;
      /* a literal whose leading slot absorbed the message's first words is a
       * piece of it (a __repr__ inside "Incremented Retry for %r"): half */
      double score = b.q * bits / (bits + 4.0) * (b.lead_abs ? 0.5 : 1) * (bits < MIN_BITS ? -1 : 1); /* < 0: weak */
      if (level && !b.lvl) score *= 0.98; /* between equal literals, the call at the record's level */
      int dup = 0;
      for (size_t i = 0; i < out->n; i++)
        if (out->v[i].line == line && !strcmp(out->v[i].path, path)) {
          if (score > out->v[i].score) out->v[i].score = score;
          dup = 1;
        }
      if (dup) continue;
      if (score < 0 && b.q < WEAK_Q) continue;
      if (KV_GROW(out->v, cap, out->n + 1) || !(out->v[out->n].path = strdup(path))) {
        rc = KV_ENOMEM;
        break;
      }
      out->v[out->n].line = line;
      out->v[out->n].score = score;
      out->n++;
    }
    free(A.D), free(A.E);
    if (rc) kv_err_set(err, rc, "log sites: out of memory");
    /* A weak site (MIN_BITS_UNIQUE <= bits < MIN_BITS) stays only when it is
     * the one literal of the repository that matches: it matched (almost)
     * exactly, nothing else matched, and the pool held every candidate. */
    int keep_weak = out->n == 1 && weak == 1 && rows == 1 && pooled < POOL;
    for (size_t i = 0; i < out->n;) {
      if (out->v[i].score >= 0) {
        i++;
      } else if (keep_weak) {
        out->v[i].score = -out->v[i].score;
        i++;
      } else {
        free(out->v[i].path);
        out->v[i] = out->v[--out->n];
      }
    }
  }
  sqlite3_finalize(st);
  sqlite3_finalize(df);
  pthread_mutex_unlock(&ix->rlock);
  if (!rc && out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_site);
  while (!rc && out->n > k) free(out->v[--out->n].path);
done:
  if (rc) idx_sites_free(out);
  kv_buf_free(&fq);
  free(T.v), free(tx);
  return rc;
}
