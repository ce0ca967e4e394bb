/*
 * bench_answers — does kvasir find (and, with --answers, name) the code that
 * answers a natural-language question about a real repository?
 *
 *   bench_answers [--questions FILE] [--tree NAME=PATH]... [--repo NAME]...
 *                 [--split tune|heldout] [--answers] [--max-tokens N] [--limit N] [--warm]
 *                 [-v [--depth N]] [--dense ENCODER.gguf]
 *
 * Questions: tests/reference/answers/questions.tsv (`repo, question, path,
 * symbol, split`; how they were written: its README). Trees: the output of
 * bench/answers/fetch (registry packages pinned by sha256, one git commit
 * each), or --tree for each repo. Each tree is indexed into a fresh
 * database (KVASIR_BENCH_DB=DIR keeps DIR/<name>.db across runs).
 * --limit N takes the first N questions of each repository (and split);
 * --warm first asks each repository one unscored question with max_tokens
 * 1, so its resident prefix is built before the scored asks ("repo warm").
 *
 * Retrieval, from the indexer directly (idx_search(question, 5), as
 * bench_retrieval): file@1, file@5 — the expected path is the first / among
 * the five hits; symbol@5 — a hit's line range covers the first line of the
 * expected definition (a definition of that name, and of that scope when
 * the symbol is `Scope.name`, in the expected file).
 *
 * Dense (--dense, e.g. `scripts/fetch-model minilm`): every definition
 * (KVASIR_DENSE_UNIT=chunks: every code chunk) is embedded after the sync (idx_dense_sync; seconds and chunks printed per
 * repository, then a second call that must embed nothing), and retrieval
 * is idx_search_fused (BM25 ranking + cosine ranking, reciprocal rank
 * fusion; KVASIR_DENSE_W and KVASIR_DENSE_K set the dense weight and the
 * RRF constant, KVASIR_DENSE_TOKENS the encoder's token cut, default 64); the latency line gives idx_search's and the fused
 * search's milliseconds, measured on the same questions.
 *
 * Answers (--answers, optional and slow): each question goes to a running
 * kvasird as `ask` (the protocol of docs/protocol.md, as `kvasir ask` sends
 * it; KVASIR_SOCKET picks the socket), after `repo.add` with wait. From the
 * result (answer text + citations): names-symbol (the expected name occurs
 * in the answer), fabricated (code-like tokens of the answer — `backticked`,
 * snake_case, camelCase, Name( — that occur nowhere in the repository, by
 * idx_grep, over all such tokens), citation precision (cited ranges that
 * contain the expected definition's first line, over all cited ranges; the
 * issue also counts a range holding "a fact the answer states", which this
 * does not judge), first-byte (first ask.token) and total
 * latency, medians. Printed per repository and overall, tune and held-out
 * apart, with a second line of latencies (medians): facts (ask.facts
 * arrived), first model token (the first ask.token whose kind is not
 * "facts": the first verified words of the model's text), first verified
 * unit (the model's text seen so far holds a whole sentence or line:
 * ". ", "! ", "? " or a newline; the end of the ask when it never does),
 * and from the result's `timing`: the daemon's first generated token,
 * the per-question prefill (tokens after the resident prefix, ms) and ms
 * per decoded token.
 */
#define _GNU_SOURCE
#include "engine/engine.h"
#include "indexer/indexer.h"
#include "ipc/ipc.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_REPOS 8

typedef struct question {
  char *repo, *text, *path, *symbol, *split;
  int heldout, skip; /* skip: left out by --limit */
  /* retrieval */
  int file1, file5, sym5, resolved;
  /* answers */
  int asked, names, ntok, nfab, ncite, ncite_ok;
  int ncite_fact; /* cited ranges holding the expected definition or the name the answer puts beside them */
  double first_byte, total;
  double first_facts, first_model; /* ask.facts arrived; the first generated (not kind "facts") text */
  double first_unit;               /* the generated text first held a whole unit (-1: no model text) */
  double gen_first, prefill_ms, prefill_tokens, decode_ms; /* from the result's timing (-1: absent) */
} question;

typedef struct tree {
  char name[64], path[4096];
} tree;

/* ---- input ----------------------------------------------------------------- */

static int load_questions(const char *file, question **out, size_t *n) {
  char *buf;
  size_t len;
  kv_err err;
  if (kv_read_file(file, 1 << 24, &buf, &len, &err) != 0) {
    fprintf(stderr, "bench_answers: %s\n", err.msg);
    return -1;
  }
  size_t cap = 0, lineno = 0;
  *out = NULL;
  *n = 0;
  char *save = NULL;
  for (char *ln = strtok_r(buf, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
    lineno++;
    if (lineno == 1 && !strncmp(ln, "repo\t", 5)) continue; /* header */
    char *f[5];
    int k = 0;
    for (char *p = ln; k < 5; k++) {
      f[k] = p;
      char *t = strchr(p, '\t');
      if (!t) {
        k++;
        break;
      }
      *t = 0;
      p = t + 1;
    }
    if (k < 5) {
      fprintf(stderr, "bench_answers: %s:%zu: want 5 tab-separated fields\n", file, lineno);
      free(buf);
      return -1;
    }
    if (KV_GROW(*out, cap, *n + 1)) {
      free(buf);
      return -1;
    }
    question *q = &(*out)[(*n)++];
    memset(q, 0, sizeof *q);
    q->repo = strdup(f[0]);
    q->text = strdup(f[1]);
    q->path = strdup(f[2]);
    q->symbol = strdup(f[3]);
    q->split = strdup(f[4]);
    q->heldout = !strcmp(f[4], "heldout");
  }
  free(buf);
  return 0;
}

static int fetch_trees(tree *T, int *nt) {
  FILE *p = popen(KVASIR_SOURCE_DIR "/bench/answers/fetch", "r");
  char line[4200];
  while (p && *nt < MAX_REPOS && fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    char *t = strchr(line, '\t');
    if (!t) continue;
    *t = 0;
    snprintf(T[*nt].name, sizeof T[*nt].name, "%.63s", line);
    snprintf(T[*nt].path, sizeof T[*nt].path, "%.4000s", t + 1);
    (*nt)++;
  }
  int rc = p ? pclose(p) : -1;
  if (rc != 0 || *nt == 0) {
    fprintf(stderr, "bench_answers: bench/answers/fetch failed (needs pip, npm and network or its cache)\n");
    return -1;
  }
  return 0;
}

/* ---- retrieval ------------------------------------------------------------- */

/* The first lines of the expected definition (name, scope when "Scope.name",
 * in the expected file); returns how many, at most cap. */
static size_t expected_lines(idx_index *ix, const question *q, int *lines, size_t cap) {
  const char *dot = strrchr(q->symbol, '.');
  const char *name = dot ? dot + 1 : q->symbol;
  char scope[256] = "";
  if (dot) snprintf(scope, sizeof scope, "%.*s", (int)(dot - q->symbol), q->symbol);
  idx_symbol_list sl = {0};
  kv_err err;
  size_t n = 0;
  if (idx_symbols(ix, name, 0, &sl, &err) != 0) return 0;
  for (size_t i = 0; i < sl.n && n < cap; i++)
    if (!strcmp(sl.v[i].path, q->path) && (!*scope || !strcmp(sl.v[i].scope, scope))) lines[n++] = sl.v[i].line0;
  idx_symbol_list_free(&sl);
  return n;
}

static int depth = 0; /* --depth N: with -v, where the expected file and symbol first rank in the top N */

/* The 1-based rank of the first of the top `depth` hits in the expected file
 * (*rf) and covering the expected definition (*rs); 0 where none. */
static void deep_ranks(idx_index *ix, const question *q, const int *lines, size_t nl, int *rf, int *rs) {
  *rf = *rs = 0;
  idx_hits h;
  kv_err err;
  if (idx_search(ix, q->text, (size_t)depth, &h, &err) != 0) return;
  for (size_t r = 0; r < h.n; r++) {
    if (strcmp(h.v[r].path, q->path)) continue;
    if (!*rf) *rf = (int)r + 1;
    for (size_t k = 0; !*rs && k < nl; k++)
      if (h.v[r].line0 <= lines[k] && lines[k] <= h.v[r].line1) *rs = (int)r + 1;
  }
  idx_hits_free(&h);
}

typedef struct encoder {
  eng_model *m;
  eng_backend *be;
} encoder;
static size_t g_dense_tokens = 64; /* KVASIR_DENSE_TOKENS */
static int embed_cb(void *ud, const char *text, size_t len, float *out, kv_err *err) {
  encoder *e = ud;
  return eng_embed(e->m, e->be, text, len, g_dense_tokens, out, NULL, err);
}
static const idx_dense *g_dense; /* NULL: idx_search alone */
/* CPU seconds of the whole process (every thread: the encoder's pool too). */
static double cpu_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
static double g_lex_s, g_fused_s;

static void score_retrieval(idx_index *ix, question *q, int verbose) {
  int lines[64];
  size_t nl = expected_lines(ix, q, lines, 64);
  q->resolved = nl > 0;
  idx_hits h;
  kv_err err;
  if (g_dense) { /* the plain search's latency on the same question, then the fused one */
    double t0 = kv_now();
    if (idx_search(ix, q->text, 5, &h, &err) == 0) idx_hits_free(&h);
    double t1 = kv_now();
    g_lex_s += t1 - t0;
  }
  double t1 = kv_now();
  if ((g_dense ? idx_search_fused(ix, g_dense, q->text, 5, &h, &err) : idx_search(ix, q->text, 5, &h, &err)) != 0) {
    fprintf(stderr, "bench_answers: search: %s\n", err.msg);
    return;
  }
  g_fused_s += kv_now() - t1;
  for (size_t r = 0; r < h.n; r++) {
    int same = !strcmp(h.v[r].path, q->path);
    if (same && r == 0) q->file1 = 1;
    if (same) q->file5 = 1;
    for (size_t k = 0; same && k < nl; k++)
      if (h.v[r].line0 <= lines[k] && lines[k] <= h.v[r].line1) q->sym5 = 1;
  }
  if (verbose) {
    printf("%s %-7s f1=%d f5=%d s5=%d%s  %s  [want %s %s]\n", q->repo, q->split, q->file1, q->file5, q->sym5,
           q->resolved ? "" : " (expected symbol not in the index)", q->text, q->path, q->symbol);
    if (depth > 5) {
      int rf, rs;
      deep_ranks(ix, q, lines, nl, &rf, &rs);
      printf("      (in the top %d: file at %d, symbol at %d; 0 = absent)\n", depth, rf, rs);
    }
    for (size_t r = 0; r < h.n; r++)
      printf("      %d. %s:%d-%d %s (%.2f)\n", (int)r + 1, h.v[r].path, h.v[r].line0, h.v[r].line1, h.v[r].symbol,
             h.v[r].score);
  }
  idx_hits_free(&h);
}

/* ---- answers --------------------------------------------------------------- */

typedef struct ask_ud {
  double t0, first, facts, model, unit;
  char text[512]; /* the generated text so far, until it holds a unit */
  size_t len;
} ask_ud;

/* 1 when s holds a whole verified unit: a sentence end or a line end. */
static int holds_unit(const char *s) {
  for (; *s; s++)
    if (*s == '\n' || ((*s == '.' || *s == '!' || *s == '?') && (s[1] == ' ' || s[1] == '\n'))) return 1;
  return 0;
}

static int on_note(void *ud, const char *method, const cJSON *params) {
  ask_ud *a = ud;
  if (!strcmp(method, "ask.token") && a->first < 0) a->first = kv_now() - a->t0;
  if (!strcmp(method, "ask.facts") && a->facts < 0) a->facts = kv_now() - a->t0;
  if (!strcmp(method, "ask.token") && a->model < 0) {
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(params, "kind");
    if (!cJSON_IsString(k)) a->model = kv_now() - a->t0; /* generated text, not kvasir's lead */
  }
  const cJSON *k = cJSON_GetObjectItemCaseSensitive(params, "kind");
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(params, "text");
  if (!strcmp(method, "ask.token") && a->unit < 0 && !cJSON_IsString(k) && cJSON_IsString(t)) {
    a->len += (size_t)snprintf(a->text + a->len, sizeof a->text - a->len, "%s", t->valuestring);
    if (a->len >= sizeof a->text) a->len = sizeof a->text - 1;
    if (holds_unit(a->text)) a->unit = kv_now() - a->t0;
  }
  return 0;
}

static double num_of(const cJSON *o, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
  return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A field of the result's timing; from a daemon older than `timing`, the
 * prefill and decode figures from its top-level fields (else -1). */
static double timing_num(const cJSON *r, const char *name) {
  const cJSON *t = cJSON_GetObjectItemCaseSensitive(r, "timing");
  if (t) return num_of(t, name);
  double np = num_of(r, "prompt_tokens"), nr = num_of(r, "reused_tokens"), ng = num_of(r, "tokens");
  if (!strcmp(name, "prefill_tokens") && np >= 0 && nr >= 0) return np - nr;
  if (!strcmp(name, "prefill_ms") && num_of(r, "prompt_seconds") >= 0) return 1e3 * num_of(r, "prompt_seconds");
  if (!strcmp(name, "decode_ms_per_token") && ng > 0 && num_of(r, "gen_seconds") >= 0)
    return 1e3 * num_of(r, "gen_seconds") / ng;
  return -1;
}

static int ident_ch(int c) { return isalnum(c) || c == '_'; }

/* Counts the code-like tokens of the answer and those that occur nowhere in
 * the repository (idx_grep finds no chunk holding them). */
static void fabricated(idx_index *ix, const char *s, int *ntok, int *nfab) {
  size_t n = strlen(s);
  int tick = 0;
  for (size_t i = 0; i < n;) {
    if (i + 2 < n && !strncmp(s + i, "```", 3)) { /* a fence and its language tag ("```javascript") */
      while (i < n && s[i] != '\n') i++;
      continue;
    }
    if (s[i] == '`') {
      tick = !tick;
      i++;
      continue;
    }
    if (!ident_ch((unsigned char)s[i])) {
      i++;
      continue;
    }
    size_t a = i;
    while (i < n && ident_ch((unsigned char)s[i])) i++;
    size_t len = i - a;
    /* a piece of a path or path:line (lib/help.js:12, tests/test_x.py) names
     * a file, not an identifier: the citation check judges those */
    size_t w0 = a, w1 = i;
    while (w0 > 0 && !isspace((unsigned char)s[w0 - 1]) && s[w0 - 1] != '(' && s[w0 - 1] != '`') w0--;
    while (w1 < n && !isspace((unsigned char)s[w1]) && s[w1] != ')' && s[w1] != '`') w1++;
    int pathy = 0;
    for (size_t j = w0; j < w1; j++)
      if (s[j] == '/' || (s[j] == ':' && j + 1 < w1 && isdigit((unsigned char)s[j + 1]) && memchr(s + w0, '.', j - w0)))
        pathy = 1;
    if (pathy) continue;
    int snake = 0, camel = 0, call = i < n && s[i] == '(', alpha = 0;
    for (size_t j = a; j < i; j++) {
      if (s[j] == '_' && j > a && j + 1 < i) snake = 1;
      if (j > a && islower((unsigned char)s[j - 1]) && isupper((unsigned char)s[j])) camel = 1;
      if (isalpha((unsigned char)s[j])) alpha = 1;
    }
    if (len < 3 || len > 120 || !alpha || !(tick || snake || camel || call)) continue;
    char tok[128];
    memcpy(tok, s + a, len);
    tok[len] = 0;
    (*ntok)++;
    idx_hits h;
    kv_err err;
    if (idx_grep(ix, tok, 1, &h, &err) == 0) {
      if (h.n == 0) {
        (*nfab)++;
        if (getenv("BENCH_ANSWERS_SHOW")) fprintf(stderr, "  fabricated? `%s`\n", tok);
      }
      idx_hits_free(&h);
    }
  }
}

static int repo_add(ipc_client *c, const char *path) {
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "path", path);
  cJSON_AddBoolToObject(p, "wait", 1);
  kv_err err;
  int rc = ipc_client_call(c, "repo.add", p, NULL, NULL, 0, &r, &err);
  if (rc) fprintf(stderr, "bench_answers: repo.add %s: %s\n", path, err.msg);
  cJSON_Delete(p);
  cJSON_Delete(r);
  return rc;
}

/* Does a line in l0..l1 of tree/path hold one of the names (NULL: none)?
 * Scope.name: the last part; a one-letter name is in any range, so it
 * counts for nothing. */
static int range_has(const char *tree, const char *path, int l0, int l1, const char *const names[2]) {
  char want[2][128];
  int nw = 0;
  for (int k = 0; k < 2; k++) {
    if (!names[k]) continue;
    snprintf(want[nw], sizeof want[nw], "%s", names[k]);
    char *dot = strrchr(want[nw], '.'), *w = dot ? dot + 1 : want[nw], *paren = strchr(w, '(');
    if (paren) *paren = 0;
    memmove(want[nw], w, strlen(w) + 1);
    if (strlen(want[nw]) >= 2) nw++;
  }
  if (!nw) return 0;
  char fp[8400];
  snprintf(fp, sizeof fp, "%s/%s", tree, path);
  FILE *f = fopen(fp, "r");
  if (!f) return 0;
  char *line = NULL;
  size_t cap = 0;
  int ln = 0, ok = 0;
  while (!ok && getline(&line, &cap, f) >= 0) {
    if (++ln > l1) break;
    for (int k = 0; k < nw && !ok && ln >= l0; k++) ok = strstr(line, want[k]) != NULL;
  }
  free(line);
  fclose(f);
  return ok;
}

/* Does the cited range path:l0-l1 of tree hold the name the answer puts
 * right before its mention of it ("`name` (path:l0" or "`name` at
 * path:l0", the path as cited)? The check reads the file itself, not the index: the
 * answer's statement "`make_parser` (src/click/core.py:1314)" holds when
 * that line says make_parser; "used by `make_parser` (core.py:1314)"
 * holds when that line uses the answer's subject, its first backticked
 * name. Scope.name: the last part. */
static int cite_holds_stated(const char *tree, const char *text, const char *path, int l0, int l1) {
  char mention[4200];
  snprintf(mention, sizeof mention, "%s:%d", path, l0);
  const char *at = text;
  size_t ml = strlen(mention);
  while ((at = strstr(at, mention)) && isdigit((unsigned char)at[ml])) at += ml; /* path:12 is not path:123 */
  if (!at) return 0;
  const char *e = at, *lo = at - text > 80 ? at - 80 : text;
  while (e > lo && e[-1] != '`') e--; /* the closing backtick before the mention */
  if (e <= lo) return 0;
  const char *b = e - 1;
  while (b > lo && b[-1] != '`') b--;
  if (b <= lo || e - 1 - b < 1 || e - 1 - b > 120) return 0;
  char name[128], subj[128] = "";
  size_t n = (size_t)(e - 1 - b);
  memcpy(name, b, n);
  name[n] = 0;
  const char *s0 = strchr(text, '`'), *s1 = s0 ? strchr(s0 + 1, '`') : NULL;
  if (s1 && s1 - s0 - 1 < (long)sizeof subj) {
    memcpy(subj, s0 + 1, (size_t)(s1 - s0 - 1));
    subj[s1 - s0 - 1] = 0;
  }
  const char *names[2] = {name, *subj ? subj : NULL};
  return range_has(tree, path, l0, l1, names);
}

static void ask_one(ipc_client *c, idx_index *ix, const char *tree, question *q, int max_tokens, int verbose) {
  cJSON *p = cJSON_CreateObject(), *r = NULL;
  cJSON_AddStringToObject(p, "repo", tree);
  cJSON_AddStringToObject(p, "question", q->text);
  if (max_tokens > 0) cJSON_AddNumberToObject(p, "max_tokens", max_tokens);
  ask_ud ud = {kv_now(), -1, -1, -1, -1, "", 0};
  kv_err err;
  int rc = ipc_client_call(c, "ask", p, on_note, &ud, 0, &r, &err);
  double total = kv_now() - ud.t0;
  cJSON_Delete(p);
  if (rc) {
    fprintf(stderr, "bench_answers: ask: %s\n", err.msg);
    cJSON_Delete(r);
    return;
  }
  const cJSON *ans = cJSON_GetObjectItemCaseSensitive(r, "answer");
  const char *text = cJSON_IsString(ans) ? ans->valuestring : "";
  const char *dot = strrchr(q->symbol, '.');
  q->asked = 1;
  q->names = strstr(text, dot ? dot + 1 : q->symbol) != NULL;
  fabricated(ix, text, &q->ntok, &q->nfab);
  int lines[64];
  size_t nl = expected_lines(ix, q, lines, 64);
  const cJSON *ci;
  cJSON_ArrayForEach(ci, cJSON_GetObjectItemCaseSensitive(r, "citations")) {
    const cJSON *cp = cJSON_GetObjectItemCaseSensitive(ci, "path");
    const cJSON *c0 = cJSON_GetObjectItemCaseSensitive(ci, "start_line");
    const cJSON *c1 = cJSON_GetObjectItemCaseSensitive(ci, "end_line");
    q->ncite++;
    if (!cJSON_IsString(cp) || !cJSON_IsNumber(c0) || !cJSON_IsNumber(c1)) continue;
    int ok = 0;
    if (!strcmp(cp->valuestring, q->path))
      for (size_t k = 0; k < nl && !ok; k++) ok = c0->valuedouble <= lines[k] && lines[k] <= c1->valuedouble;
    q->ncite_ok += ok;
    int fact = ok || cite_holds_stated(tree, text, cp->valuestring, (int)c0->valuedouble, (int)c1->valuedouble);
    q->ncite_fact += fact;
    if (!fact && getenv("BENCH_ANSWERS_SHOW"))
      fprintf(stderr, "  citation %s:%d-%d holds neither %s nor the name stated beside it\n", cp->valuestring,
              (int)c0->valuedouble, (int)c1->valuedouble, q->symbol);
  }
  q->first_byte = ud.first >= 0 ? ud.first : total;
  q->first_facts = ud.facts >= 0 ? ud.facts : total;
  q->first_model = ud.model; /* -1: the model's text was all dropped or not generated */
  q->first_unit = ud.unit >= 0 ? ud.unit : ud.model >= 0 ? total : -1;
  q->gen_first = timing_num(r, "first_token_ms");
  q->prefill_ms = timing_num(r, "prefill_ms");
  q->prefill_tokens = timing_num(r, "prefill_tokens");
  q->decode_ms = timing_num(r, "decode_ms_per_token");
  q->total = total;
  if (verbose) {
    printf("  answer (%.1f s, first byte %.1f s, %d/%d fabricated, %d/%d citations hold %s, %d/%d it or the stated "
           "name): %.300s\n",
           q->total, q->first_byte, q->nfab, q->ntok, q->ncite_ok, q->ncite, q->symbol, q->ncite_fact, q->ncite, text);
    printf("  timing: facts %.2f s, model token %.2f s, unit %.2f s, generated first %.0f ms, prefill %.0f tokens "
           "%.0f ms, decode %.1f ms/token\n",
           q->first_facts, q->first_model, q->first_unit, q->gen_first, q->prefill_tokens, q->prefill_ms, q->decode_ms);
  }
  cJSON_Delete(r);
}

/* ---- report ---------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, size_t n) {
  if (!n) return 0;
  qsort(v, n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One line: the questions of repo (NULL = all) and split (0 tune, 1 held-out). */
static void report(const question *Q, size_t nq, const char *repo, int heldout, int answers) {
  size_t n = 0, f1 = 0, f5 = 0, s5 = 0, unres = 0, asked = 0, names = 0, ntok = 0, nfab = 0, nc = 0, nco = 0, ncf = 0;
  double *fb = malloc((nq ? nq : 1) * sizeof *fb), *tt = malloc((nq ? nq : 1) * sizeof *tt);
  double *ff = malloc((nq ? nq : 1) * sizeof *ff), *fm = malloc((nq ? nq : 1) * sizeof *fm);
  double *fu = malloc((nq ? nq : 1) * sizeof *fu), *tv[4];
  size_t nfm = 0, nfu = 0, ntv[4] = {0, 0, 0, 0};
  for (int k = 0; k < 4; k++) tv[k] = malloc((nq ? nq : 1) * sizeof *tv[k]);
  if (!fb || !tt || !ff || !fm || !fu || !tv[0] || !tv[1] || !tv[2] || !tv[3]) {
    free(fb);
    free(tt);
    free(ff);
    free(fm);
    free(fu);
    for (int k = 0; k < 4; k++) free(tv[k]);
    return;
  }
  for (size_t i = 0; i < nq; i++) {
    const question *q = &Q[i];
    if (q->skip || q->heldout != heldout || (repo && strcmp(q->repo, repo))) continue;
    n++;
    f1 += (size_t)q->file1;
    f5 += (size_t)q->file5;
    s5 += (size_t)q->sym5;
    unres += !q->resolved;
    if (q->asked) {
      fb[asked] = q->first_byte;
      tt[asked] = q->total;
      ff[asked] = q->first_facts;
      if (q->first_model >= 0) fm[nfm++] = q->first_model;
      if (q->first_unit >= 0) fu[nfu++] = q->first_unit;
      const double tq[4] = {q->gen_first, q->prefill_tokens, q->prefill_ms, q->decode_ms};
      for (int k = 0; k < 4; k++)
        if (tq[k] >= 0) tv[k][ntv[k]++] = tq[k];
      asked++;
      names += (size_t)q->names;
      ntok += (size_t)q->ntok;
      nfab += (size_t)q->nfab;
      nc += (size_t)q->ncite;
      nco += (size_t)q->ncite_ok;
      ncf += (size_t)q->ncite_fact;
    }
  }
  if (n) {
    printf("%-10s %-8s %3zu   %.3f   %.3f   %.3f", repo ? repo : "overall", heldout ? "heldout" : "tune", n,
           (double)f1 / n, (double)f5 / n, (double)s5 / n);
    if (unres) printf("  (%zu expected symbol(s) not found in the index)", unres);
    if (answers && asked)
      printf("   | %3zu  %.3f  %zu/%zu=%.3f  %.3f  %6.1f s  %6.1f s", asked, (double)names / asked, nfab, ntok,
             ntok ? (double)nfab / ntok : 0.0, nc ? (double)nco / nc : 0.0, median(fb, asked), median(tt, asked));
    printf("\n");
    if (answers && asked)
      printf("%-10s %-8s       citations: %zu, holding the expected definition %.3f, it or the name the answer "
             "states beside them %.3f\n",
             "", "", nc, nc ? (double)nco / nc : 0.0, nc ? (double)ncf / nc : 0.0);
    if (answers && asked)
      printf("%-10s %-8s       latency: facts %.2f s, model text %zu/%zu, first model token %.2f s, first verified "
             "unit %.2f s | daemon: first generated token %.0f ms, prefill %.0f tokens %.0f ms, decode %.1f ms/token\n",
             "", "", median(ff, asked), nfm, asked, nfm ? median(fm, nfm) : 0.0, nfu ? median(fu, nfu) : 0.0,
             median(tv[0], ntv[0]), median(tv[1], ntv[1]), median(tv[2], ntv[2]), median(tv[3], ntv[3]));
  }
  free(fb);
  free(tt);
  free(ff);
  free(fm);
  free(fu);
  for (int k = 0; k < 4; k++) free(tv[k]);
}

static int usage(int rc) {
  printf("usage: bench_answers [--questions FILE] [--tree NAME=PATH]... [--repo NAME]...\n"
         "                     [--split tune|heldout] [--answers] [--max-tokens N] [--limit N] [--warm]\n"
         "                     [-v [--depth N]] [--dense ENCODER.gguf]\n"
         "  file@1, file@5, symbol@5 of idx_search per repository and overall, tune and held-out\n"
         "  apart; --answers also asks a running kvasird each question (names-symbol, fabricated\n"
         "  identifiers, citation precision, first-byte and total latency).\n");
  return rc;
}

int main(int argc, char **argv) {
  const char *qfile = KVASIR_SOURCE_DIR "/tests/reference/answers/questions.tsv";
  const char *only_split = NULL, *only_repo[MAX_REPOS];
  int nonly = 0, answers = 0, verbose = 0, max_tokens = 0, nt = 0, limit = 0, warm = 0;
  const char *dense_path = NULL;
  tree T[MAX_REPOS];
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage(0);
    else if (!strcmp(a, "--answers")) answers = 1;
    else if (!strcmp(a, "-v")) verbose = 1;
    else if (!strcmp(a, "--warm")) warm = 1;
    else if (i + 1 < argc && !strcmp(a, "--questions")) qfile = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--dense")) dense_path = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--split")) only_split = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--max-tokens")) max_tokens = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--depth")) depth = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--limit")) limit = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--repo") && nonly < MAX_REPOS) only_repo[nonly++] = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--tree") && nt < MAX_REPOS) {
      const char *v = argv[++i], *eq = strchr(v, '=');
      if (!eq) return usage(2);
      snprintf(T[nt].name, sizeof T[nt].name, "%.*s", (int)(eq - v), v);
      snprintf(T[nt].path, sizeof T[nt].path, "%s", eq + 1);
      nt++;
    } else return usage(2);
  }
  question *Q;
  size_t nq;
  if (load_questions(qfile, &Q, &nq) != 0) return 1;
  if (nt == 0 && fetch_trees(T, &nt) != 0) return 1;
  ipc_client *c = NULL;
  kv_err err;
  if (answers && ipc_client_connect(&c, getenv("KVASIR_SOCKET"), NULL, &err) != 0) {
    fprintf(stderr, "bench_answers: --answers needs a running kvasird: %s\n", err.msg);
    return 1;
  }
  encoder enc = {0};
  idx_dense dense = {0};
  if (dense_path) {
    if (eng_model_open(&enc.m, dense_path, &err) != 0 || eng_backend_cpu(&enc.be, 0, &err) != 0) {
      fprintf(stderr, "bench_answers: --dense: %s\n", err.msg);
      return 1;
    }
    if (!eng_embed_dim(enc.m)) {
      fprintf(stderr, "bench_answers: --dense: %s is not an encoder model\n", dense_path);
      return 1;
    }
    const char *tk = getenv("KVASIR_DENSE_TOKENS");
    if (tk && atoi(tk) >= 2) g_dense_tokens = (size_t)atoi(tk);
    static char model_name[160]; /* the token cut is part of what the vectors are */
    snprintf(model_name, sizeof model_name, "%s@%zu", eng_model_get_info(enc.m)->name, g_dense_tokens);
    dense = (idx_dense){.embed = embed_cb, .ud = &enc, .dim = eng_embed_dim(enc.m), .model = model_name};
    const char *w = getenv("KVASIR_DENSE_W"), *k = getenv("KVASIR_DENSE_K");
    if (w) dense.weight = atof(w);
    if (k) dense.rrf_k = atoi(k);
    const char *u = getenv("KVASIR_DENSE_UNIT");
    if (u && !strcmp(u, "chunks")) dense.unit = IDX_DENSE_CHUNKS;
    g_dense = &dense;
  }
  char tmp[] = "/tmp/kvasir-bench-answers.XXXXXX";
  if (!mkdtemp(tmp)) return 1;
  const char *keep = getenv("KVASIR_BENCH_DB");
  double search_s = 0;
  size_t searched = 0;
  for (int t = 0; t < nt; t++) {
    int want = nonly == 0;
    for (int k = 0; k < nonly; k++) want |= !strcmp(only_repo[k], T[t].name);
    if (!want) { /* its questions are left out of the report too */
      for (size_t i = 0; i < nq; i++) Q[i].skip |= !strcmp(Q[i].repo, T[t].name);
      continue;
    }
    char db[4300];
    snprintf(db, sizeof db, "%.4000s/%.63s.db", keep ? keep : tmp, T[t].name);
    idx_options o = {0};
    o.db_path = db;
    idx_index *ix;
    idx_sync_stats st;
    double c0 = cpu_now();
    if (idx_open(&ix, T[t].path, &o, &err) != 0 || idx_sync(ix, 0, NULL, NULL, NULL, &st, &err) != 0) {
      fprintf(stderr, "bench_answers: %s: %s\n", T[t].path, err.msg);
      return 1;
    }
    const double sync_cpu = cpu_now() - c0;
    if (c && repo_add(c, T[t].path) != 0) return 1;
    if (g_dense) {
      idx_dense_stats ds, ds2;
      double d0 = cpu_now();
      if (idx_dense_sync(ix, g_dense, NULL, &ds, &err) != 0) {
        fprintf(stderr, "bench_answers: %s: dense: %s\n", T[t].name, err.msg);
        return 1;
      }
      const double dense_cpu = cpu_now() - d0;
      if (idx_dense_sync(ix, g_dense, NULL, &ds2, &err) != 0) {
        fprintf(stderr, "bench_answers: %s: dense: %s\n", T[t].name, err.msg);
        return 1;
      }
      printf("dense %-10s embedded %llu %s in %.1f s wall, %.1f s CPU (%.1f ms CPU each; %llu vectors);"
             " idx_sync %.1f s wall, %.1f s CPU (%llu blobs parsed); again: %llu embedded in %.2f s\n",
             T[t].name, (unsigned long long)ds.embedded, g_dense->unit == IDX_DENSE_CHUNKS ? "chunks" : "definitions",
             ds.seconds, dense_cpu,
             ds.embedded ? 1e3 * dense_cpu / (double)ds.embedded : 0.0, (unsigned long long)ds.vectors, st.seconds,
             sync_cpu, (unsigned long long)st.blobs_parsed, (unsigned long long)ds2.embedded, ds2.seconds);
      fflush(stdout);
    }
    if (c && warm) {
      cJSON *p = cJSON_CreateObject(), *r = NULL;
      cJSON_AddStringToObject(p, "repo", T[t].path);
      cJSON_AddStringToObject(p, "question", "What does this project do?");
      cJSON_AddNumberToObject(p, "max_tokens", 1);
      if (ipc_client_call(c, "ask", p, NULL, NULL, 0, &r, &err)) fprintf(stderr, "bench_answers: warm-up: %s\n", err.msg);
      cJSON_Delete(p);
      cJSON_Delete(r);
    }
    int taken[2] = {0, 0};
    for (size_t i = 0; i < nq; i++) {
      question *q = &Q[i];
      if (strcmp(q->repo, T[t].name) || (only_split && strcmp(q->split, only_split))) continue;
      if (limit > 0 && taken[q->heldout]++ >= limit) {
        q->skip = 1;
        continue;
      }
      double t0 = kv_now();
      score_retrieval(ix, q, verbose);
      search_s += kv_now() - t0;
      searched++;
      if (c) ask_one(c, ix, T[t].path, q, max_tokens, verbose);
    }
    idx_close(ix);
  }
  ipc_client_close(c);
  printf("\n%-10s %-8s %3s   %-5s   %-5s   %-5s", "repo", "split", "n", "file@1", "file@5", "sym@5");
  if (answers) printf("   | %3s  %-5s  %-11s  %-5s  %-8s  %-8s", "ans", "names", "fabricated", "cite", "1st byte", "total");
  printf("\n");
  for (int h = 0; h < 2; h++) {
    if (only_split && strcmp(only_split, h ? "heldout" : "tune")) continue;
    for (int t = 0; t < nt; t++) report(Q, nq, T[t].name, h, answers);
    report(Q, nq, NULL, h, answers);
  }
  if (searched && g_dense)
    printf("(%.1f ms per idx_search, %.1f ms per idx_search_fused, same questions; dense weight %.2f, k %d)\n",
           1e3 * g_lex_s / (double)searched, 1e3 * g_fused_s / (double)searched, dense.weight > 0 ? dense.weight : 0.3,
           dense.rrf_k > 0 ? dense.rrf_k : 5);
  else if (searched) printf("(%.1f ms per idx_search)\n", 1e3 * search_s / (double)searched);
  eng_backend_free(enc.be);
  eng_model_free(enc.m);
  for (size_t i = 0; i < nq; i++) {
    free(Q[i].repo);
    free(Q[i].text);
    free(Q[i].path);
    free(Q[i].symbol);
    free(Q[i].split);
  }
  free(Q);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
  return system(cmd) == 0 ? 0 : 1;
}
