/*
 * redact.c — what may leave the machine. pol_redact replaces secrets with
 * "[REDACTED:<kind>]" in one left-to-right pass (no regex engine, linear in
 * the input): private key blocks (with their BEGIN/END markers, and key
 * bodies without them: a line of base64 in PEM shape, a run of base64 lines
 * ending at an END marker), AWS / GCP / GitHub / Slack / OpenAI-style
 * tokens, passwords in URLs, JWTs, values assigned to secret-like names
 * (assign.c), and long high-entropy strings (Shannon entropy over the
 * token's own characters at or above what random base64 of that length
 * reaches (entropy_floor), not all hex, with letters and digits mixed, and
 * not made mostly of words — so git SHAs, which are hex and top out at 4
 * bits per character, identifiers and paths survive; hex after a secret
 * name is caught by the name).
 *
 * Invariant: a redacted span keeps its newlines (the marker, then one '\n'
 * per line it covered), so the output has exactly the input's line count
 * and path:line citations into a redacted file stay valid; redacting the
 * output again finds nothing new but entropy false alarms. Chunks are
 * redacted on their own too (payload.c): every rule decides from what the
 * chunk holds, never from what came before it in the file.
 */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

#define ENTROPY_MIN_LEN 24

/* Shannon entropy (bits/char) that 99% of random base64 strings of a given
 * length reach (the 1st percentile over 20,000 samples per length, Python
 * os.urandom + base64): short strings cannot show their alphabet's full
 * entropy, so the bar rises with length. Linear in between, flat after. */
static const struct { double len, bits; } ENTROPY_P1[] = {
    {24, 3.89}, {28, 4.07}, {32, 4.23}, {40, 4.47}, {48, 4.66}, {64, 4.92}, {88, 5.18},
};
static double entropy_floor(size_t n) {
  size_t k = sizeof ENTROPY_P1 / sizeof *ENTROPY_P1;
  if ((double)n <= ENTROPY_P1[0].len) return ENTROPY_P1[0].bits;
  for (size_t i = 1; i < k; i++)
    if ((double)n <= ENTROPY_P1[i].len) {
      double t = ((double)n - ENTROPY_P1[i - 1].len) / (ENTROPY_P1[i].len - ENTROPY_P1[i - 1].len);
      return ENTROPY_P1[i - 1].bits + t * (ENTROPY_P1[i].bits - ENTROPY_P1[i - 1].bits);
    }
  return ENTROPY_P1[k - 1].bits;
}

static const char *const RED_NAMES[POL_RED__COUNT] = {"private_key", "aws", "gcp", "github", "slack", "openai",
                                                      "url_password", "jwt", "high_entropy", "secret_value"};
const char *pol_redaction_name(pol_redaction_kind k) { return (unsigned)k < POL_RED__COUNT ? RED_NAMES[k] : "?"; }

static void mark(kv_buf *b, pol_redactions *c, pol_redaction_kind k) {
  kv_buf_puts(b, "[REDACTED:");
  kv_buf_puts(b, RED_NAMES[k]);
  kv_buf_puts(b, "]");
  c->counts[k]++, c->total++;
}

/* Characters of a base64-ish run ('=' only as trailing padding, so that
 * "key=value" splits at the '='). */
static int tokch(int c) { return isalnum(c) || c == '_' || c == '-' || c == '+' || c == '/'; }
static int b64url(int c) { return isalnum(c) || c == '_' || c == '-'; }

static int starts(const char *s, size_t n, const char *pre) {
  size_t l = strlen(pre);
  return n >= l && !memcmp(s, pre, l);
}

static size_t span(const char *s, size_t n, int (*ok)(int)) {
  size_t i = 0;
  while (i < n && ok((unsigned char)s[i])) i++;
  return i;
}

/* A run of tokch characters that stops before "--" (the dashes of a PEM
 * "-----BEGIN" line are never part of a token next to it). */
static size_t tokrun(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && tokch((unsigned char)s[i]) && !(s[i] == '-' && i + 1 < n && s[i + 1] == '-')) i++;
  return i;
}

static int isdigit_(int c) { return isdigit(c); }
static int upalnum(int c) { return isupper(c) || isdigit(c); }

double pol_entropy(const char *s, size_t n) {
  unsigned cnt[256] = {0};
  for (size_t i = 0; i < n; i++) cnt[(unsigned char)s[i]]++;
  double h = 0;
  for (int i = 0; i < 256; i++)
    if (cnt[i]) {
      double p = (double)cnt[i] / (double)n;
      h -= p * log2(p);
    }
  return h;
}

/* Identifiers and paths (crypto_secretstream_xchacha20poly1305_TAG_FINAL,
 * models/DeepSeek-R1-Distill-Qwen-7B) are mostly natural-case words of four
 * or more letters ("crypto", "Distill", "FINAL"); random base64 almost never
 * is (about 1.7% of random 24-88 character tokens reach half coverage,
 * measured with Python over 240k samples). Half coverage = not a secret. */
static int wordy(const char *s, size_t n) {
  size_t covered = 0, i = 0;
  while (i < n) {
    size_t j = i;
    if (isupper((unsigned char)s[j]) && j + 1 < n && islower((unsigned char)s[j + 1])) {
      j++;
      while (j < n && islower((unsigned char)s[j])) j++;
    } else if (islower((unsigned char)s[j])) {
      while (j < n && islower((unsigned char)s[j])) j++;
    } else if (isupper((unsigned char)s[j])) {
      while (j < n && isupper((unsigned char)s[j]) && !(j + 1 < n && islower((unsigned char)s[j + 1]))) j++;
      if (j == i) j++;
    } else {
      i++;
      continue;
    }
    if (j - i >= 4) covered += j - i;
    i = j;
  }
  return covered * 2 >= n;
}

/* snake_case, kebab-case, UPPER_SNAKE and lowercase paths
 * (kernels/cpu/dot_x86_body): separated segments that are each single-case.
 * Random base64 with a separator has single-case segments with probability
 * around (36/64)^len — negligible for 24+ characters. */
static int conventional(const char *s, size_t n) {
  int seps = 0, lower = 0, upper = 0;
  for (size_t i = 0; i <= n; i++) {
    int c = i < n ? (unsigned char)s[i] : '/';
    if (c == '/' || c == '_' || c == '-') {
      if (lower && upper) return 0;
      seps += i < n, lower = upper = 0;
    } else if (islower(c)) lower = 1;
    else if (isupper(c)) upper = 1;
    else if (!isdigit(c)) return 0;
  }
  return seps > 0;
}

/* A token starting at s (a word boundary): which kind of secret, and how
 * long. 0 = not a secret. whole_run: s also starts a run of tokch
 * characters, so the entropy test applies. */
/* Long enough for a prefixed token of prefix length pl and body span sp: the
 * kind's minimum, or — when the body runs to the end of the text (a chunk
 * cut inside the token) — any piece of 12 characters or more. */
static int long_enough(size_t pl, size_t sp, size_t n, size_t min) { return sp >= min || (pl + sp == n && pl + sp >= 12); }

static size_t token_secret_(const char *s, size_t n, int whole_run, pol_redaction_kind *kind) {
  static const char *const AWS[] = {"AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"};
  static const char *const GH[] = {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"};
  if (!n || !strchr("Aygxse", s[0])) goto entropy; /* no prefixed kind starts with another letter */
  for (size_t i = 0; i < sizeof AWS / sizeof *AWS; i++)
    if (starts(s, n, AWS[i]) && long_enough(4, span(s + 4, n - 4, upalnum), n, 16))
      return *kind = POL_RED_AWS, 4 + span(s + 4, n - 4, upalnum);
  if (starts(s, n, "AIza") && long_enough(4, span(s + 4, n - 4, b64url), n, 30))
    return *kind = POL_RED_GCP, 4 + span(s + 4, n - 4, b64url);
  if (starts(s, n, "ya29.") && long_enough(5, span(s + 5, n - 5, b64url), n, 20))
    return *kind = POL_RED_GCP, 5 + span(s + 5, n - 5, b64url);
  for (size_t i = 0; i < sizeof GH / sizeof *GH; i++)
    if (starts(s, n, GH[i]) && long_enough(4, span(s + 4, n - 4, b64url), n, 30))
      return *kind = POL_RED_GITHUB, 4 + span(s + 4, n - 4, b64url);
  if (starts(s, n, "github_pat_") && long_enough(11, span(s + 11, n - 11, b64url), n, 30))
    return *kind = POL_RED_GITHUB, 11 + span(s + 11, n - 11, b64url);
  if (n > 5 && starts(s, n, "xox") && strchr("baprs", s[3]) && s[4] == '-' && long_enough(5, span(s + 5, n - 5, b64url), n, 10))
    return *kind = POL_RED_SLACK, 5 + span(s + 5, n - 5, b64url);
  if (starts(s, n, "sk-") && long_enough(3, span(s + 3, n - 3, b64url), n, 20))
    return *kind = POL_RED_OPENAI, 3 + span(s + 3, n - 3, b64url);
  /* JWT: three base64url parts, the first a JSON header ("eyJ" = '{"'); cut short at the end of the text, any part. */
  if (starts(s, n, "eyJ")) {
    size_t a = span(s, n, b64url);
    if (a >= 10 && a < n && s[a] == '.') {
      size_t b = span(s + a + 1, n - a - 1, b64url);
      if (a + 1 + b == n && n >= 12) return *kind = POL_RED_JWT, n;
      if (b >= 4 && a + 1 + b < n && s[a + 1 + b] == '.') {
        size_t c = span(s + a + 2 + b, n - a - 2 - b, b64url);
        if (c >= 4 || a + 2 + b + c == n) return *kind = POL_RED_JWT, a + 2 + b + c;
      }
    } else if (a == n && a >= 12) return *kind = POL_RED_JWT, a;
  }
entropy:
  /* Subresource-integrity digests (package-lock.json) are hashes, not secrets. */
  if (starts(s, n, "sha512-") || starts(s, n, "sha384-") || starts(s, n, "sha256-") || starts(s, n, "sha1-")) return 0;
  size_t run = whole_run ? tokrun(s, n) : 0;
  while (run && run < n && s[run] == '=' && run < 4096) run++; /* padding */
  if (run >= ENTROPY_MIN_LEN) {
    int alpha = 0, digit = 0;
    for (size_t i = 0; i < run; i++) alpha |= isalpha((unsigned char)s[i]) != 0, digit |= isdigit((unsigned char)s[i]) != 0;
    int hex = 1;
    for (size_t i = 0; i < run && hex; i++) hex = isxdigit((unsigned char)s[i]) != 0;
    if (alpha && digit && !hex && pol_entropy(s, run) >= entropy_floor(run) && !wordy(s, run) &&
        !conventional(s, run))
      return *kind = POL_RED_ENTROPY, run;
  }
  return 0;
}

/* A prefixed secret takes the rest of the word glued to it with it
 * ("AKIA…XYZpi_ke…"): what follows without a boundary is never left behind. */
static size_t token_secret(const char *s, size_t n, int whole_run, pol_redaction_kind *kind) {
  size_t l = token_secret_(s, n, whole_run, kind);
  if (l && *kind != POL_RED_ENTROPY) l += span(s + l, n - l, b64url);
  return l;
}


/* ---- the pass ---------------------------------------------------------- */

/* The password of a documented example URL (user:password@host), not a secret. */
static int placeholder(const char *s, size_t n) {
  static const char *const P[] = {"password", "pass", "passwd", "secret", "xxx", "xxxx", "***", "****"};
  for (size_t i = 0; i < sizeof P / sizeof *P; i++)
    if (strlen(P[i]) == n && !strncasecmp(s, P[i], n)) return 1;
  return 0;
}

typedef struct scan {
  const char *t;
  size_t len;
  int fmt;
  kv_buf *b;
  pol_redactions *c;
  size_t from;     /* t[from..i) is clean and not yet copied */
  int run;         /* a run of base64-only lines is open */
  int run_flag;    /* ... and it is a key body: its lines are being dropped */
  size_t run_in;   /* input offset of the run's first line */
  size_t run_out;  /* output length where the run's first line starts */
} scan;

/* The marker for t[from..to), then one '\n' per newline inside it. */
static void mark_span(scan *sc, pol_redaction_kind k, size_t from, size_t to) {
  mark(sc->b, sc->c, k);
  for (size_t i = from; i < to; i++)
    if (sc->t[i] == '\n') kv_buf_putc(sc->b, '\n');
}

static int b64ch(int c) { return isalnum(c) || c == '+' || c == '/'; }

/* A line that is base64 and nothing else (indentation, a quote, a trailing
 * "\n" escape, quote, comma, '+' or ';' allowed around it, as when a key is
 * pasted into source). *ll = the line's length without its '\n'.
 * 0: not such a line; 1: base64-ish but proves nothing alone; 2: PEM-shaped
 * (40..100 characters, upper, lower and a digit or '+' '/'); 3: shorter
 * (12..39) but mixed like a key's last line and not words. */
static int b64_line(const char *s, size_t n, size_t *ll) {
  const char *nl = memchr(s, '\n', n);
  size_t L = nl ? (size_t)(nl - s) : n, i = 0;
  *ll = L;
  while (i < L && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i < L && s[i] == '+') i++;
  while (i < L && (s[i] == ' ' || s[i] == '\t')) i++;
  if (i < L && (s[i] == '"' || s[i] == '\'')) i++;
  size_t b0 = i;
  int up = 0, lo = 0, dig = 0, sym = 0;
  while (i < L && b64ch((unsigned char)s[i])) {
    unsigned char c = (unsigned char)s[i++];
    up |= isupper(c) != 0, lo |= islower(c) != 0, dig |= isdigit(c) != 0, sym |= c == '+' || c == '/';
  }
  size_t bl = i - b0;
  size_t pad = 0;
  while (i < L && s[i] == '=' && pad < 2) i++, pad++;
  if (i + 1 < L && s[i] == '\\' && s[i + 1] == 'n') i += 2;
  while (i < L && strchr("\"',+;\\ \t\r", s[i])) i++;
  if (i != L || bl == 0) return 0;
  int mixed = up && lo && (dig || sym || pad);
  if (bl >= 40 && bl <= 100 && mixed) return 2;
  if (bl >= 12 && mixed && !wordy(s + b0, bl) && !conventional(s + b0, bl)) return 3;
  return 1;
}

/* After the whole line of a base64 run: is this line (possibly cut short at
 * the end of the text) the END marker of a key block? */
static int end_marker(const char *s, size_t n) {
  size_t i = 0;
  while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '"' || s[i] == '\'')) i++;
  static const char END[] = "-----END";
  size_t k = 0;
  while (i + k < n && k < 8 && s[i + k] == END[k]) k++;
  if (k == 8) return 1;
  return k > 0 && i + k == n; /* the text stops inside the marker */
}

/* At a line start: open, extend, flag or close a base64 run. Returns 1 when
 * the line's content was consumed (dropped as part of a key body). */
static int line_start(scan *sc, size_t *pi) {
  size_t i = *pi, ll;
  int shape = b64_line(sc->t + i, sc->len - i, &ll);
  if (!shape) {
    if (sc->run && !sc->run_flag && end_marker(sc->t + i, sc->len - i)) {
      kv_buf_append(sc->b, sc->t + sc->from, i - sc->from), sc->from = i;
      kv_buf_truncate(sc->b, sc->run_out);
      mark_span(sc, POL_RED_PRIVATE_KEY, sc->run_in, i);
    }
    sc->run = sc->run_flag = 0;
    return 0;
  }
  if (!sc->run) {
    kv_buf_append(sc->b, sc->t + sc->from, i - sc->from), sc->from = i;
    sc->run = 1, sc->run_flag = 0, sc->run_in = i, sc->run_out = sc->b->len;
  }
  if (shape < 2 && !sc->run_flag) return 0; /* scanned like any text; replaced later if the run proves a key */
  if (!sc->run_flag) {
    kv_buf_append(sc->b, sc->t + sc->from, i - sc->from), sc->from = i;
    kv_buf_truncate(sc->b, sc->run_out);
    mark_span(sc, POL_RED_PRIVATE_KEY, sc->run_in, i);
    sc->run_flag = 1;
  }
  kv_buf_append(sc->b, sc->t + sc->from, i - sc->from); /* the '\n' before this line */
  *pi = i + ll, sc->from = *pi;                        /* the content goes, its own '\n' stays */
  return 1;
}

/* The kind to report for an assigned value v: a known token inside it (from
 * a word start to the value's end: "Bearer ghp_…") is reported as itself,
 * and only it is replaced; otherwise the whole value is a secret_value. */
static pol_redaction_kind value_kind(const char *t, size_t v0, size_t *v1p, size_t *start) {
  size_t v1 = *v1p;
  *start = v0;
  for (size_t p = v0; p < v1; p++) {
    if (p > v0 && t[p - 1] != ' ') continue;
    pol_redaction_kind k;
    size_t l = token_secret(t + p, v1 - p, 1, &k);
    if (l && p + l >= v1) return *start = p, k;
    if (l) break;
  }
  return POL_RED_SECRET_VALUE;
}

static void pass(scan *sc) {
  const char *text = sc->t;
  size_t len = sc->len, i = 0;
  size_t pw_from = (size_t)-1, pw_to = 0; /* a URL password ahead, found at its "://" */
  kv_buf *b = sc->b;
  pol_redactions *c = sc->c;
#define FLUSH() (kv_buf_append(b, text + sc->from, i - sc->from), sc->from = i)
  while (i < len && kv_buf_ok(b)) {
    const char *s = text + i;
    size_t n = len - i;
    if ((i == 0 || text[i - 1] == '\n') && line_start(sc, &i)) continue;
    if (i >= pw_from) { /* the user name before it was scanned like any text */
      if (i == pw_from) {
        FLUSH();
        mark(b, c, POL_RED_URL_PASSWORD);
        i = pw_to, sc->from = i;
      }
      pw_from = (size_t)-1;
      continue;
    }
    if (*s == '-' && starts(s, n, "-----BEGIN ")) {
      /* "-----BEGIN [A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*": the label alone decides, so the
       * verdict never depends on what follows it. */
      size_t k = 11;
      while (k < n && k < 64 && (isupper((unsigned char)s[k]) || isdigit((unsigned char)s[k]) || s[k] == ' ')) k++;
      int pk = 0; /* anywhere in the label: "PGP PRIVATE KEY BLOCK" too */
      for (size_t q = 11; q + 11 <= k && !pk; q++) pk = !memcmp(s + q, "PRIVATE KEY", 11);
      size_t hl = k;
      if (pk) {
        size_t e = n;
        for (size_t k = hl; k + 9 <= n; k++)
          if (!memcmp(s + k, "-----END ", 9)) {
            const char *tail = s + k + 9;
            size_t rest = n - k - 9;
            const char *close = NULL;
            for (size_t q = 0; q + 5 <= rest && !close; q++)
              if (!memcmp(tail + q, "-----", 5)) close = tail + q + 5;
            e = close ? (size_t)(close - s) : n;
            break;
          }
        FLUSH();
        mark_span(sc, POL_RED_PRIVATE_KEY, i, i + e);
        i += e, sc->from = i;
        sc->run = sc->run_flag = 0;
        continue;
      }
    }
    if (*s == ':' && starts(s, n, "://")) {
      size_t j = 3, colon = 0;
      while (j < n && j < 512 && !strchr("@/[] \t\r\n\"'<>`", s[j])) { /* userinfo: short, no gen-delims */
        if (s[j] == ':' && !colon) colon = j;
        j++;
      }
      /* a chunk may end inside the password: a userinfo running to the end of the text
       * counts unless what follows the colon is a port */
      int cut = j == n && colon && span(s + colon + 1, j - colon - 1, isdigit_) != j - colon - 1;
      if (((j < n && s[j] == '@') || cut) && colon && colon + 1 < j && !placeholder(s + colon + 1, j - colon - 1)) {
        pw_from = i + colon + 1, pw_to = i + j;
        i += 3;
        continue;
      }
    }
    if (*s == '-' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t') &&
        (starts(s, n, "-u ") || starts(s, n, "--user ") || starts(s, n, "--user="))) {
      /* curl -u user:password (and --user): the part after the colon */
      size_t j = s[1] == 'u' ? 3 : 7, colon = 0;
      size_t u = j;
      if (j < n && (s[j] == '\'' || s[j] == '"')) j++, u++;
      while (j < n && j - u < 256 && !isspace((unsigned char)s[j]) && !strchr("'\"`", s[j])) {
        if (s[j] == ':' && !colon) colon = j;
        j++;
      }
      if (colon && colon > u && colon + 1 < j && s[colon + 1] != '[' && !placeholder(s + colon + 1, j - colon - 1)) {
        i += colon + 1;
        FLUSH();
        mark(b, c, POL_RED_URL_PASSWORD);
        i += j - colon - 1, sc->from = i;
        continue;
      }
    }
    if (*s == 'h' && starts(s, n, "hooks.slack.com/services/")) {
      size_t j = 25 + span(s + 25, n - 25, tokch);
      if (j > 35) {
        FLUSH();
        mark(b, c, POL_RED_SLACK);
        i += j, sc->from = i;
        continue;
      }
    }
    /* Prefixed tokens start at a word boundary ("key=AKIA…" counts); the
     * entropy test looks at whole runs of base64-ish characters only. */
    int c0 = i ? (unsigned char)text[i - 1] : ' ';
    if (!(isalnum(c0) || c0 == '_' || c0 == '-')) {
      pol_redaction_kind k;
      size_t l = token_secret(s, n, !tokch(c0), &k);
      if (l) {
        FLUSH();
        mark(b, c, k);
        i += l, sc->from = i;
        continue;
      }
      size_t v0, v1;
      if ((isalpha((unsigned char)*s) || *s == '_') && pol_assign_at(text, len, i, sc->fmt, &v0, &v1)) {
        size_t start;
        pol_redaction_kind vk = value_kind(text, v0, &v1, &start);
        i = start;
        FLUSH();
        mark_span(sc, vk, start, v1);
        i = v1, sc->from = i;
        continue;
      }
    }
    i++;
  }
  i = len;
  FLUSH();
#undef FLUSH
}

static int redact_fmt(const char *text, size_t len, int fmt, char **out, size_t *out_len, pol_redactions *counts,
                      kv_err *err) {
  pol_redactions local = {{0}, 0};
  kv_buf b = KV_BUF_INIT;
  kv_buf_append(&b, "", 0);
  scan sc = {text, len, fmt, &b, counts ? counts : &local, 0, 0, 0, 0, 0};
  pass(&sc);
  if (!kv_buf_ok(&b)) {
    kv_buf_free(&b);
    return kv_err_set(err, KV_ENOMEM, "redact: out of memory");
  }
  *out = kv_buf_detach(&b, out_len);
  return 0;
}

int pol_redact(const char *text, size_t len, char **out, size_t *out_len, pol_redactions *counts, kv_err *err) {
  return redact_fmt(text, len, POL_FMT_CONFIG, out, out_len, counts, err);
}

int pol_redact_file(const char *path, const char *text, size_t len, char **out, size_t *out_len,
                    pol_redactions *counts, kv_err *err) {
  return redact_fmt(text, len, pol_format_of(path), out, out_len, counts, err);
}

int pol_redact_question(const char *text, size_t len, char **out, size_t *out_len, pol_redactions *counts,
                        kv_err *err) {
  return redact_fmt(text, len, POL_FMT_TEXT, out, out_len, counts, err);
}
