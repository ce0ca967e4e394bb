/*
 * answer.c — the grounded part of an answer, built from what the index
 * knows (idx_fact) before the model writes anything: the `ask.facts` event
 * (definitions with path:line, signature, doc comment, callers, tests,
 * callees and last commits, which editors show as clickable locations), the
 * lead sentence of the answer, the facts block of the model's prompt, and
 * the answer's citations (the places its final text refers to).
 *
 * Invariant: every identifier and path:line these functions write is copied
 * from an idx_fact, so the lead is true by construction; the model's text is
 * checked separately (verify.c).
 */
#include "daemon/answer_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The doc comment's first sentence, without comment markers (at most n-1
 * bytes into buf); "" when there is none. */
void dmn_doc_sentence(const char *doc, char *buf, size_t n) {
  size_t o = 0;
  buf[0] = 0;
  if (!doc || n == 0) return;
  const char *p = doc;
  int space = 0;
  while (*p && o + 1 < n) {
    /* at a line start: skip indentation and comment markers */
    while (*p == ' ' || *p == '\t') p++;
    while (*p == '/' || *p == '*' || *p == '#' || *p == '"' || *p == '\'' || (*p == '-' && p[1] == '-') || *p == '!')
      p++;
    while (*p == ' ' || *p == '\t') p++;
    /* @param / :param lines end the summary */
    if (*p == '@' || (*p == ':' && isalpha((unsigned char)p[1]))) break;
    const char *eol = strchr(p, '\n');
    size_t ll = eol ? (size_t)(eol - p) : strlen(p);
    while (ll && (p[ll - 1] == ' ' || p[ll - 1] == '/' || p[ll - 1] == '*' || p[ll - 1] == '"' || p[ll - 1] == '\''))
      ll--;
    if (!ll && o) break; /* a blank comment line ends the paragraph */
    for (size_t i = 0; i < ll && o + 1 < n; i++) {
      if (space && o) buf[o++] = ' ';
      space = 0;
      if (o + 1 >= n) break;
      buf[o++] = p[i];
      if (p[i] == '.' && (i + 1 == ll || p[i + 1] == ' ')) {
        buf[o] = 0;
        return;
      }
    }
    space = 1;
    if (!eol) break;
    p = eol + 1;
  }
  /* cut at a character boundary */
  while (o > 0 && ((unsigned char)buf[o] & 0xc0) == 0x80) o--;
  buf[o] = 0;
}

static cJSON *ref_json(const idx_ref *r) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "path", r->path);
  cJSON_AddNumberToObject(o, "line", r->line);
  if (r->in && *r->in) cJSON_AddStringToObject(o, "in", r->in);
  return o;
}

cJSON *dmn_facts_json(const idx_fact *f, size_t n) {
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < n; i++) {
    const idx_fact *x = &f[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "symbol", x->def.name);
    cJSON_AddStringToObject(o, "kind", x->def.kind ? x->def.kind : "");
    cJSON_AddStringToObject(o, "path", x->def.path);
    cJSON_AddNumberToObject(o, "start_line", x->def.line0);
    cJSON_AddNumberToObject(o, "end_line", x->def.line1);
    if (x->def.signature && *x->def.signature) cJSON_AddStringToObject(o, "signature", x->def.signature);
    if (x->doc) cJSON_AddStringToObject(o, "doc", x->doc);
    cJSON *c = cJSON_AddArrayToObject(o, "callers");
    for (size_t k = 0; k < x->ncallers; k++) cJSON_AddItemToArray(c, ref_json(&x->callers[k]));
    cJSON *t = cJSON_AddArrayToObject(o, "tests");
    for (size_t k = 0; k < x->ntests; k++) cJSON_AddItemToArray(t, ref_json(&x->tests[k]));
    cJSON *e = cJSON_AddArrayToObject(o, "callees");
    for (size_t k = 0; k < x->ncallees; k++) cJSON_AddItemToArray(e, cJSON_CreateString(x->callees[k]));
    cJSON *m = cJSON_AddArrayToObject(o, "commits");
    for (size_t k = 0; k < x->ncommits; k++) {
      cJSON *cm = cJSON_CreateObject();
      cJSON_AddStringToObject(cm, "id", x->commits[k].id);
      cJSON_AddNumberToObject(cm, "time", (double)x->commits[k].time);
      cJSON_AddStringToObject(cm, "summary", x->commits[k].summary ? x->commits[k].summary : "");
      cJSON_AddItemToArray(m, cm);
    }
    cJSON_AddItemToArray(arr, o);
  }
  return arr;
}

static const char *kind_word(const char *kind) {
  if (!kind || !*kind) return "definition";
  if (!strcmp(kind, "function") || !strcmp(kind, "method") || !strcmp(kind, "class") || !strcmp(kind, "struct") ||
      !strcmp(kind, "macro") || !strcmp(kind, "type") || !strcmp(kind, "variable") || !strcmp(kind, "constant") ||
      !strcmp(kind, "interface") || !strcmp(kind, "module") || !strcmp(kind, "enum"))
    return kind;
  return "definition";
}

static void refs_text(kv_buf *b, const idx_ref *r, size_t n, size_t max) {
  for (size_t k = 0; k < n && k < max; k++) {
    if (k) kv_buf_puts(b, k + 1 == n || k + 1 == max ? " and " : ", ");
    if (r[k].in && *r[k].in) kv_buf_printf(b, "`%s` (%s:%d)", r[k].in, r[k].path, r[k].line);
    else kv_buf_printf(b, "%s:%d", r[k].path, r[k].line);
  }
  if (n > max) kv_buf_printf(b, " (%zu more)", n - max);
}

int dmn_answer_lead(kv_buf *b, const idx_fact *f, size_t n, const dmn_confidence *conf) {
  if (n == 0) {
    kv_buf_puts(b, "The index holds no definition that matches this question, so there is nothing to ground an answer on.");
    return kv_buf_ok(b) ? 0 : KV_ENOMEM;
  }
  const idx_fact *x = &f[0];
  char doc[320];
  dmn_doc_sentence(x->doc, doc, sizeof doc);
  kv_buf_printf(b, "%s `%s` (%s:%d-%d), a %s", conf && conf->unsure ? "Possibly" : "The best match is",
                x->def.name, x->def.path, x->def.line0, x->def.line1, kind_word(x->def.kind));
  if (*doc) kv_buf_printf(b, ": %s%s", doc, doc[strlen(doc) - 1] == '.' ? "" : ".");
  else kv_buf_puts(b, ".");
  if (x->ncallers) {
    if (x->ndefs > 1) kv_buf_printf(b, " %d definitions share its name; the name is used by ", x->ndefs);
    else kv_buf_puts(b, " It is used by ");
    refs_text(b, x->callers, x->ncallers, 3);
    kv_buf_puts(b, ".");
  }
  if (x->ntests) {
    kv_buf_puts(b, " Tests: ");
    refs_text(b, x->tests, x->ntests, 2);
    kv_buf_puts(b, ".");
  }
  if (x->ncommits) {
    char day[16];
    time_t t = (time_t)x->commits[0].time;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(day, sizeof day, "%Y-%m-%d", &tm);
    kv_buf_printf(b, " Its file last changed in %s (%s).", x->commits[0].id, day);
  }
  if (n > 1) {
    kv_buf_puts(b, " Also relevant: ");
    for (size_t i = 1; i < n; i++)
      kv_buf_printf(b, "%s`%s` (%s:%d)", i > 1 ? (i + 1 == n ? " and " : ", ") : "", f[i].def.name, f[i].def.path,
                    f[i].def.line0);
    kv_buf_puts(b, ".");
  }
  if (conf && conf->unsure)
    kv_buf_printf(b, "\n\nRetrieval is unsure here (%s).", conf->why[0] ? conf->why : "several candidates score alike");
  if (conf && conf->escalate[0]) kv_buf_printf(b, "%s%s", conf->unsure ? " " : "\n\n", conf->escalate);
  kv_buf_puts(b, "\n\n");
  return kv_buf_ok(b) ? 0 : KV_ENOMEM;
}

int dmn_facts_prompt(kv_buf *b, const idx_fact *f, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const idx_fact *x = &f[i];
    kv_buf_printf(b, "- %s `%s` at %s:%d-%d", kind_word(x->def.kind), x->def.name, x->def.path, x->def.line0,
                  x->def.line1);
    if (x->def.signature && *x->def.signature) kv_buf_printf(b, ": %s", x->def.signature);
    kv_buf_putc(b, '\n');
    char doc[320];
    dmn_doc_sentence(x->doc, doc, sizeof doc);
    if (*doc) kv_buf_printf(b, "  doc: %s\n", doc);
    /* every name here is prefill before the first token: the best match
     * with a few users and callees, the others with one user */
    if (x->ncallers) {
      kv_buf_puts(b, "  used by: ");
      refs_text(b, x->callers, x->ncallers, i ? 1 : 3);
      kv_buf_putc(b, '\n');
    }
    if (x->ncallees && i == 0) {
      kv_buf_puts(b, "  calls: ");
      for (size_t k = 0; k < x->ncallees && k < 4; k++) kv_buf_printf(b, "%s`%s`", k ? ", " : "", x->callees[k]);
      kv_buf_putc(b, '\n');
    }
  }
  return kv_buf_ok(b) ? 0 : KV_ENOMEM;
}

void dmn_confidence_judge(dmn_confidence *c, const double *scores, size_t n, const char *depth) {
  memset(c, 0, sizeof *c);
  if (n == 0) {
    c->unsure = 1;
    snprintf(c->why, sizeof c->why, "nothing matched");
  } else if (n > 1) {
    /* the two best scores, whatever order the facts are in */
    double s1 = scores[0], s2 = scores[1];
    if (s2 > s1) s1 = scores[1], s2 = scores[0];
    for (size_t i = 2; i < n; i++)
      if (scores[i] > s1) s2 = s1, s1 = scores[i];
      else if (scores[i] > s2) s2 = scores[i];
    c->margin = s1 > 0 ? (s1 - s2) / s1 : 0;
    if (c->margin < DMN_UNSURE_MARGIN) {
      c->unsure = 1;
      snprintf(c->why, sizeof c->why, "the two best matches score within %.0f%% of each other", c->margin * 100);
    }
  } else {
    c->margin = 1;
  }
  c->reasoning = depth && (!strcmp(depth, "think") || !strcmp(depth, "think-max"));
}

/* ---------------------------------------------------------------- citations */

static int ident_char(int c) { return isalnum(c) || c == '_'; }

int dmn_names_word(const char *text, const char *name) {
  size_t n = name ? strlen(name) : 0;
  if (n < 3) return 0;
  for (const char *p = strstr(text, name); p; p = strstr(p + 1, name))
    if ((p == text || !ident_char((unsigned char)p[-1])) && !ident_char((unsigned char)p[n])) return 1;
  return 0;
}

static int path_char(int c) { return isalnum(c) || c == '_' || c == '-' || c == '.' || c == '/'; }

/* text names "path:L" or "path:L-M" (the path whole, not the tail of a
 * longer one) with a range overlapping [l0, l1]. */
static int names_location(const char *text, const char *path, int l0, int l1) {
  size_t n = strlen(path);
  if (!n) return 0;
  for (const char *p = strstr(text, path); p; p = strstr(p + 1, path)) {
    if ((p > text && path_char((unsigned char)p[-1])) || p[n] != ':' || !isdigit((unsigned char)p[n + 1])) continue;
    char *end;
    long a = strtol(p + n + 1, &end, 10), b = a;
    if (*end == '-' && isdigit((unsigned char)end[1])) b = strtol(end + 1, NULL, 10);
    if (a <= l1 && b >= l0) return 1;
  }
  return 0;
}

static cJSON *cite_json(const char *path, int l0, int l1, const char *symbol, double score) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "path", path);
  cJSON_AddNumberToObject(c, "start_line", l0);
  cJSON_AddNumberToObject(c, "end_line", l1);
  cJSON_AddStringToObject(c, "symbol", symbol ? symbol : "");
  cJSON_AddNumberToObject(c, "score", score);
  return c;
}

static int overlaps(const cJSON *out, const char *path, int l0, int l1) {
  const cJSON *c;
  cJSON_ArrayForEach(c, out) {
    const char *cp = cJSON_GetStringValue(cJSON_GetObjectItem(c, "path"));
    int c0 = cJSON_GetObjectItem(c, "start_line")->valueint, c1 = cJSON_GetObjectItem(c, "end_line")->valueint;
    if (cp && !strcmp(cp, path) && l0 <= c1 && c0 <= l1) return 1;
  }
  return 0;
}

cJSON *dmn_answer_citations(const char *answer, const cJSON *cites, const idx_fact *f, size_t n) {
  cJSON *out = cJSON_CreateArray();
  if (!out) return NULL;
  const char *t = answer ? answer : "";
  for (size_t i = 0; i < n; i++) {
    const idx_symbol *d = &f[i].def;
    if (!dmn_names_word(t, d->name) || overlaps(out, d->path, d->line0, d->line1)) continue;
    cJSON_AddItemToArray(out, cite_json(d->path, d->line0, d->line1, d->name, 0));
  }
  const cJSON *c;
  cJSON_ArrayForEach(c, cites) {
    const char *cp = cJSON_GetStringValue(cJSON_GetObjectItem(c, "path"));
    const char *sym = cJSON_GetStringValue(cJSON_GetObjectItem(c, "symbol"));
    const cJSON *j0 = cJSON_GetObjectItem(c, "start_line"), *j1 = cJSON_GetObjectItem(c, "end_line");
    if (!cp || !cJSON_IsNumber(j0) || !cJSON_IsNumber(j1)) continue;
    int l0 = j0->valueint, l1 = j1->valueint;
    if (!(dmn_names_word(t, sym) || names_location(t, cp, l0, l1)) || overlaps(out, cp, l0, l1)) continue;
    cJSON_AddItemToArray(out, cJSON_Duplicate(c, 1));
  }
  if (cJSON_GetArraySize(out) == 0) {
    cJSON_Delete(out);
    return cJSON_Duplicate(cites, 1);
  }
  return out;
}
