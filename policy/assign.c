/*
 * assign.c — secrets recognised by the name they are given rather than by
 * their shape: `DB_PASSWORD = "…"`, `password: …` in YAML,
 * `api_secret=…` (40 hex digits are caught by the name, not the shape), `"apiKey": "…"`, `<password>…</password>`,
 * `Password=…;` in a connection string, `#define API_TOKEN "…"`, a `value`
 * whose sibling names the secret (`- name: DB_PASSWORD` / `value: …`,
 * `<add key="DbPassword" value="…"/>`), and in a
 * question "my password is hunter2". pol_assign_at looks at one
 * identifier and says whether it names a secret and, if a literal value is
 * assigned to it, where that value lies; redact.c then replaces it.
 *
 * A name is secret-like when one of its segments (split at '_', '-', '.',
 * and lower->Upper case changes) is a secret word (password, passwd, pwd,
 * passphrase, secret, token, credentials, auth, apikey, …) or it has a
 * "key" segment qualified by api/access/private/secret/signing/… — and no
 * segment says it holds something else about the secret (api_key_env,
 * token_file, max_tokens, password_hash, auth_url, secret_id: the name of
 * a variable, a path, a count, a digest, an address, an id).
 *
 * A value is literal when it is quoted, or — in configuration formats
 * (YAML, INI, .env, TOML, properties, unknown text) — the rest of the line
 * without a trailing comment, unless it is empty, a keyword (true, null,
 * none…), a number (except for password names), a reference ($VAR, ${…},
 * {{…}}, %(…)s, <…>), a structure ([, {, (), or already a redaction
 * marker. In code (C, Python, JS, Go…) an unquoted value is an expression
 * and is left alone unless it is a long mixed letter-digit run. The scan
 * of one value is capped (VALUE_MAX), so the whole pass stays linear.
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

#define NAME_MAX_ 96
#define VALUE_MAX 4096

/* "pass" only with another segment (db_pass, PASS alone is a test verdict). */
static const char *const STRONG[] = {"password", "passwd", "pwd",   "pw", "passphrase", "secret",
                                     "secrets",  "token",  "creds", "credential", "credentials", "auth",
                                     "apikey",   "authorization", "bearer", "privatekey", "accesskey", "secretkey",
                                     "clientsecret", "authtoken", "accesstoken", "refreshtoken", "sessiontoken",
                                     "apitoken", "apisecret", "passcode", "otp", "cookie", "sessionkey"};
static const char *const KEY_QUAL[] = {"api",     "access", "private", "secret", "signing", "encryption", "master",
                                       "client",  "license", "session", "app",   "ssh",     "account",    "auth",
                                       "service", "shared", "root",    "deploy", "admin",   "aws",        "hmac",
                                       "jwt",     "webhook", "gpg",    "pgp",    "x"};
static const char *const EXCLUDE[] = {
    "env", "file", "files", "path", "dir", "name", "names", "id", "ids", "count", "len", "length", "size", "max",
    "min", "limit", "type", "types", "kind", "field", "prefix", "url", "uri", "endpoint", "host", "port", "user",
    "username", "timeout", "ttl", "expiry", "expires", "expire", "index", "idx", "num", "bytes", "budget", "cost",
    "price", "stream", "regex", "pattern", "format", "fmt", "mode", "hash", "hashed", "sha", "sha256", "digest",
    "label", "policy", "required", "enabled", "enable", "disable", "provider", "method", "scheme", "style", "cmd",
    "command", "var", "class", "valid", "reset", "placeholder", "hint", "help", "prompt", "message", "msg", "error",
    "err", "rotation", "ref", "store", "storage", "manager", "source", "backend", "version", "algorithm", "algo",
    "strength", "cb", "fn", "func", "callback", "handler", "parse", "parser", "tokens", "tokenizer", "list", "set",
    "check", "text", "input", "title", "desc", "description", "level",
    "flag", "flags", "state", "status", "ok", "result", "response", "request", "bits", "start", "end", "pos",
    "offset", "buf", "buffer", "ptr", "str", "string", "char", "chars", "line", "lines", "kinds", "rule", "rules",
    "dict", "map", "table", "schema", "doc", "docs", "example", "sample", "test", "mock", "fake", "dummy", "out",
    "in"};

/* "[REDACTED:" inside s[0..n): the value was redacted already. */
static int has_marker(const char *s, size_t n) {
  for (size_t i = 0; i + 10 <= n; i++)
    if (s[i] == '[' && !memcmp(s + i, "[REDACTED:", 10)) return 1;
  return 0;
}

/* A printf conversion ("%s", "%.*s", "%d", "%zu"): a format string, not a value. */
static int printf_like(const char *s, size_t n) {
  static const char *const CONV[] = {"%s", "%d", "%.*s", "%zu", "%lu", "%llu", "%i"};
  for (size_t i = 0; i + 1 < n; i++)
    for (size_t k = 0; s[i] == '%' && k < sizeof CONV / sizeof *CONV; k++) {
      size_t l = strlen(CONV[k]);
      if (i + l <= n && !memcmp(s + i, CONV[k], l)) return 1;
    }
  return 0;
}

static int in_list(const char *w, const char *const *list, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!strcmp(w, list[i])) return 1;
  return 0;
}
#define IN(w, L) in_list(w, L, sizeof L / sizeof *L)

int pol_name_is_secret(const char *name, size_t n) {
  if (n == 0 || n >= NAME_MAX_) return 0;
  char segs[16][NAME_MAX_];
  size_t ns = 0, k = 0;
  for (size_t i = 0; i <= n && ns < 16; i++) {
    int c = i < n ? (unsigned char)name[i] : '_';
    int brk = c == '_' || c == '-' || c == '.' || c == ' ';
    /* camelCase: a lower letter or digit followed by an upper one starts a segment;
     * so does the last upper of an UPPER run followed by a lower ("APIKey" -> API, Key) */
    int camel = i > 0 && i < n && isupper(c) &&
                (islower((unsigned char)name[i - 1]) ||
                 (isupper((unsigned char)name[i - 1]) && i + 1 < n && islower((unsigned char)name[i + 1])));
    if ((brk || camel) && k) segs[ns][k] = 0, ns++, k = 0;
    if (!brk && ns < 16 && k + 1 < NAME_MAX_) segs[ns][k++] = (char)tolower(c);
  }
  int strong = 0, key = 0, qual = 0;
  for (size_t i = 0; i < ns; i++) {
    if (IN(segs[i], EXCLUDE)) return 0;
    size_t sl = strlen(segs[i]);
    strong |= IN(segs[i], STRONG) || strstr(segs[i], "password") || strstr(segs[i], "passwd") ||
              (sl > 6 && (!strcmp(segs[i] + sl - 6, "secret") || !strcmp(segs[i] + sl - 5, "token") ||
                          !strcmp(segs[i] + sl - 6, "apikey"))); /* PGPASSWORD, clientsecret, authtoken */
    key |= !strcmp(segs[i], "key") || !strcmp(segs[i], "keys");
    qual |= IN(segs[i], KEY_QUAL);
  }
  for (size_t i = 0; i < ns && ns > 1 && !strong; i++) strong = !strcmp(segs[i], "pass");
  return strong || (key && qual);
}

static int password_like(const char *name, size_t n) {
  char low[NAME_MAX_];
  size_t k = 0;
  for (size_t i = 0; i < n && k + 1 < sizeof low; i++) low[k++] = (char)tolower((unsigned char)name[i]);
  low[k] = 0;
  return strstr(low, "pass") || strstr(low, "pwd") || strstr(low, "pin");
}

static int identch(int c) { return isalnum(c) || c == '_' || c == '-' || c == '.'; }

static const char *const KEYWORDS[] = {"true", "false", "yes", "no", "on", "off", "null", "none", "nil", "undefined",
                                       "~", "required", "optional", "redacted", "empty", "unset", "default", "env",
                                       "string", "str", "bool", "int", "bytes", "secret", "password", "token"};
static const char *const TEXT_STOP[] = {"a",      "an",      "the",     "not",     "wrong",    "correct",  "missing",
                                        "empty",  "set",     "unset",   "invalid", "valid",    "required", "incorrect",
                                        "expired", "null",   "none",    "ok",      "fine",     "there",    "here",
                                        "being",  "still",   "also",    "now",     "too",      "same",     "different",
                                        "in",     "on",      "at",      "stored",  "saved",    "used",     "hashed",
                                        "encrypted", "my",   "your",    "rejected", "accepted", "changed", "leaked"};

static int all_digits(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!isdigit((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_') return 0;
  return n > 0;
}

static int is_keyword(const char *s, size_t n, const char *const *list, size_t nl) {
  char w[32];
  if (n >= sizeof w) return 0;
  for (size_t i = 0; i < n; i++) w[i] = (char)tolower((unsigned char)s[i]);
  w[n] = 0;
  return in_list(w, list, nl);
}

/* An unquoted run that is a long mix of letters and digits (a key, not a variable). */
static int mixed_run(const char *s, size_t n) {
  int a = 0, d = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isalnum((unsigned char)s[i]) && !strchr("+/=_-", s[i])) return 0;
    a |= isalpha((unsigned char)s[i]) != 0, d |= isdigit((unsigned char)s[i]) != 0;
  }
  return n >= 16 && a && d;
}

/* Judge an unquoted value s[0..n) (trailing blanks already trimmed). */
static int literal_unquoted(const char *s, size_t n, int fmt, const char *name, size_t nl) {
  if (n < 4 || n > VALUE_MAX) return 0;
  if (strchr("$%{<[(@&*!`|>\\#", s[0])) return 0; /* references, structures, YAML tags/anchors/blocks */
  if (has_marker(s, n) || printf_like(s, n)) return 0;
  if (is_keyword(s, n, KEYWORDS, sizeof KEYWORDS / sizeof *KEYWORDS)) return 0;
  if (all_digits(s, n) && !password_like(name, nl)) return 0;
  if (fmt == POL_FMT_CODE) return mixed_run(s, n);
  if (fmt == POL_FMT_TEXT) {
    if (is_keyword(s, n, TEXT_STOP, sizeof TEXT_STOP / sizeof *TEXT_STOP)) return 0;
    int odd = 0, up = 0, lo = 0;
    for (size_t i = 0; i < n; i++) {
      unsigned char c = (unsigned char)s[i];
      odd |= isdigit(c) || (ispunct(c) && c != '-' && c != '\'');
      up |= isupper(c) != 0, lo |= islower(c) != 0;
    }
    return n >= 6 && (odd || (up && lo));
  }
  if (memchr(s, '(', n) && memchr(s, ')', n)) return 0; /* a call or an expression */
  return 1;
}

/* In t[a..b): a "name"/"key" field, and whether its (quoted or bare) value
 * is a secret-like name (`- name: DB_PASSWORD`, `key="DbPassword"`,
 * `{"name": "API_TOKEN", …`): 1 yes, 0 a field naming something else,
 * -1 no such field. */
static int names_secret(const char *t, size_t a, size_t b) {
  int seen = -1;
  for (size_t p = a; p + 4 < b; p++) {
    size_t k = !strncasecmp(t + p, "name", 4) ? 4 : !strncasecmp(t + p, "key", 3) ? 3 : 0;
    if (!k || (p > a && identch((unsigned char)t[p - 1])) || identch((unsigned char)t[p + k])) continue;
    size_t q = p + k;
    while (q < b && (t[q] == '"' || t[q] == '\'' || t[q] == ' ')) q++;
    if (q >= b || (t[q] != ':' && t[q] != '=')) continue;
    q++;
    while (q < b && (t[q] == ' ' || t[q] == '"' || t[q] == '\'')) q++;
    size_t e = q;
    while (e < b && identch((unsigned char)t[e]) && e - q < NAME_MAX_) e++;
    if (e > q && pol_name_is_secret(t + q, e - q)) return 1;
    seen = 0;
  }
  return seen;
}

/* A `value` field whose sibling names a secret: the same line before it
 * (XML attributes, JSON objects) or, in YAML, the line before
 * (Kubernetes env: `- name: DB_PASSWORD` then `value: …`). */
static int value_of_secret(const char *t, size_t len, size_t i, size_t nl) {
  if (nl != 5 || strncasecmp(t + i, "value", 5)) return 0;
  size_t ls = i;
  while (ls > 0 && t[ls - 1] != '\n') ls--;
  int same = names_secret(t, ls, i);
  if (same >= 0 || ls == 0) return same == 1; /* a sibling on this line decides */
  size_t ps = ls - 1;
  while (ps > 0 && t[ps - 1] != '\n') ps--;
  (void)len;
  return names_secret(t, ps, ls - 1) == 1;
}

int pol_assign_at(const char *text, size_t len, size_t i, int fmt, size_t *v0, size_t *v1) {
  size_t j = i;
  while (j < len && j - i < NAME_MAX_ && identch((unsigned char)text[j])) j++;
  size_t nl = j - i;
  while (nl && (text[i + nl - 1] == '.' || text[i + nl - 1] == '-')) nl--;
  if (!nl || nl >= NAME_MAX_ || !(pol_name_is_secret(text + i, nl) || value_of_secret(text, len, i, nl))) return 0;
  j = i + nl;
  int xml_elem = i > 0 && text[i - 1] == '<';
  int define = i >= 8 && !memcmp(text + i - 8, "#define ", 8);
  /* the name's closing quote / bracket, then the operator */
  while (j < len && (text[j] == '"' || text[j] == '\'' || text[j] == '\\' || text[j] == ']')) j++;
  while (j < len && (text[j] == ' ' || text[j] == '\t')) j++;
  int op = 0;
  if (xml_elem) {
    while (j < len && text[j] != '>' && text[j] != '\n' && j - i < 256) j++; /* attributes */
    if (j < len && text[j] == '>' && text[j - 1] != '/') {
      j++;
      size_t e = j;
      while (e < len && text[e] != '<' && text[e] != '\n' && e - j < VALUE_MAX) e++;
      while (e > j && isspace((unsigned char)text[e - 1])) e--;
      if (e - j >= 4 && !has_marker(text + j, e - j)) return *v0 = j, *v1 = e, 1;
    }
    return 0;
  }
  if (j + 1 < len && text[j] == ':' && text[j + 1] == '=') op = 2;
  else if (j + 1 < len && text[j] == '=' && text[j + 1] == '>') op = 2;
  else if (j + 1 < len && text[j] == '=' && text[j + 1] == '=') op = 2;
  else if (j < len && (text[j] == '=' || text[j] == ':')) op = 1;
  else if (fmt == POL_FMT_TEXT && j + 2 < len && !strncasecmp(text + j, "is ", 3)) op = 2;
  else if (define) op = 0;
  else return 0;
  j += (size_t)op;
  if (op == 1 && text[j - 1] == ':' && j < len && text[j] == ':') return 0; /* C++ / Rust paths: auth::x */
  while (j < len && (text[j] == ' ' || text[j] == '\t')) j++;
  if (j >= len || text[j] == '\n' || text[j] == '\r') return 0;
  if (text[j] == '\\' && j + 1 < len && (text[j + 1] == '"' || text[j + 1] == '\'')) j++; /* \"value\" in a string */
  char q = text[j];
  if (q == '"' || q == '\'' || q == '`') {
    size_t s = j + 1, e = s;
    if (s < len && (text[s] == ' ' || text[s] == '\t')) return 0; /* "` is an…": prose around a code span */
    while (e < len && text[e] != q && text[e] != '\n' && e - s < VALUE_MAX) {
      if (text[e] == '\\' && e + 1 < len && text[e + 1] != '\n') {
        if (text[e + 1] == q) break; /* \" closes an escaped quote */
        e++;
      }
      e++;
    }
    if (e - s < 4 || has_marker(text + s, e - s) || printf_like(text + s, e - s)) return 0;
    if (e - s < 12 && is_keyword(text + s, e - s, KEYWORDS, sizeof KEYWORDS / sizeof *KEYWORDS)) return 0;
    if (text[s] == '$' && e - s > 1 && text[s + 1] == '{') return 0; /* "${VAR}" */
    return *v0 = s, *v1 = e, 1;
  }
  if (op == 0) return 0;
  /* unquoted: to the end of the line (one word in a question), without a trailing comment */
  size_t s = j, e = s;
  if (fmt == POL_FMT_TEXT) {
    while (e < len && !isspace((unsigned char)text[e]) && e - s < VALUE_MAX) e++;
    while (e > s && strchr(".,;:?)\"'", text[e - 1])) e--; /* a '!' may end a password */
  } else {
    int url_param = i > 0 && (text[i - 1] == '?' || text[i - 1] == '&');
    while (e < len && text[e] != '\n' && e - s < VALUE_MAX) {
      if ((text[e] == '#' || text[e] == ';') && e > s && (text[e - 1] == ' ' || text[e - 1] == '\t')) break;
      if (text[e] == '/' && e + 1 < len && text[e + 1] == '/' && e > s && text[e - 1] == ' ') break;
      if (text[e] == ';' || (url_param && (text[e] == '&' || text[e] == ' '))) break;
      if (fmt == POL_FMT_CODE && (text[e] == ',' || text[e] == ' ' || text[e] == ')')) break;
      e++;
    }
    while (e > s && (isspace((unsigned char)text[e - 1]) || text[e - 1] == ',')) e--;
  }
  if (!literal_unquoted(text + s, e - s, fmt, text + i, nl)) return 0;
  return *v0 = s, *v1 = e, 1;
}

int pol_format_of(const char *path) {
  if (!path || !*path) return POL_FMT_CONFIG;
  const char *lang = pol_language_of(path);
  if (!strcmp(lang, "markdown")) return POL_FMT_TEXT; /* prose: "token: the next word" is no assignment */
  static const char *const CODE[] = {"c",    "cpp",   "python", "rust",   "go",    "javascript", "typescript",
                                     "java", "ruby",  "csharp", "kotlin", "swift", "php",        "lua"};
  for (size_t i = 0; i < sizeof CODE / sizeof *CODE; i++)
    if (!strcmp(lang, CODE[i])) return POL_FMT_CODE;
  return POL_FMT_CONFIG;
}
