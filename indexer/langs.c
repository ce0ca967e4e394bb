/*
 * langs.c — language detection, grammar table and tags-query compilation
 * (see langs.h). Invariant: every idx_lang in a set has a valid TSLanguage;
 * query may be NULL (text only) but then npatterns == 0.
 */
#include "langs_internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_java(void);
const TSLanguage *tree_sitter_bash(void);
const TSLanguage *tree_sitter_ruby(void);

static const struct {
  const char *name;
  const TSLanguage *(*fn)(void);
} grammars[] = {
    {"c", tree_sitter_c},       {"cpp", tree_sitter_cpp},   {"python", tree_sitter_python},
    {"javascript", tree_sitter_javascript}, {"typescript", tree_sitter_typescript},
    {"tsx", tree_sitter_tsx},   {"go", tree_sitter_go},     {"rust", tree_sitter_rust},
    {"java", tree_sitter_java}, {"bash", tree_sitter_bash}, {"ruby", tree_sitter_ruby},
};

static const struct {
  const char *ext;
  const char *lang;
} exts[] = {
    {".c", "c"},         {".h", "c"},         {".cc", "cpp"},      {".cpp", "cpp"},
    {".cxx", "cpp"},     {".hpp", "cpp"},     {".hh", "cpp"},      {".hxx", "cpp"},
    {".py", "python"},   {".pyi", "python"},  {".js", "javascript"}, {".mjs", "javascript"},
    {".cjs", "javascript"}, {".jsx", "javascript"}, {".ts", "typescript"}, {".mts", "typescript"},
    {".cts", "typescript"}, {".tsx", "tsx"},  {".go", "go"},       {".rs", "rust"},
    {".java", "java"},   {".sh", "bash"},     {".bash", "bash"},   {".rb", "ruby"},
};

/* Text formats worth chunking for retrieval even without a grammar. */
static const char *const text_exts[] = {
    ".md", ".txt", ".rst", ".json", ".yaml", ".yml", ".toml", ".cmake", ".html", ".css",
    ".xml", ".ini", ".cfg", ".scm", ".lua", ".pl", ".php", ".cs", ".kt", ".swift", ".m",
    ".mk", ".S", ".s", ".sql", ".proto", ".tex", ".el", ".vim", ".zig", ".hs", ".ml", ".scala",
};
static const char *const text_names[] = {"Makefile", "CMakeLists.txt", "Dockerfile", "README",
                                         "Kconfig", "Kbuild", "LICENSE", "COPYING"};

const char *idx_lang_for_path(const char *path, int *text_ok) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  if (text_ok) *text_ok = 0;
  if (dot) {
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
      if (strcmp(dot, exts[i].ext) == 0) return exts[i].lang;
    for (size_t i = 0; i < sizeof text_exts / sizeof text_exts[0]; i++)
      if (strcasecmp(dot, text_exts[i]) == 0) {
        if (text_ok) *text_ok = 1;
        return NULL;
      }
  }
  for (size_t i = 0; i < sizeof text_names / sizeof text_names[0]; i++)
    if (strncmp(base, text_names[i], strlen(text_names[i])) == 0) {
      if (text_ok) *text_ok = 1;
      return NULL;
    }
  return NULL;
}

static void free_query(idx_lang *l) {
  if (l->preds) {
    for (uint32_t p = 0; p < l->npatterns; p++) {
      for (uint32_t i = 0; i < l->npreds[p]; i++) {
        idx_pred *pr = &l->preds[p][i];
        free(pr->rhs);
        if (pr->op >= 2) regfree(&pr->re);
      }
      free(l->preds[p]);
    }
  }
  free(l->preds);
  free(l->npreds);
  free(l->cap_role);
  free(l->cap_kind);
  if (l->query) ts_query_delete(l->query);
  l->preds = NULL;
  l->npreds = NULL;
  l->cap_role = NULL;
  l->cap_kind = NULL;
  l->query = NULL;
  l->npatterns = l->ncaps = 0;
}

/* Translate the predicates of pattern p; unknown ones are dropped. Returns -1
 * on a regex that does not compile (the query then falls back). */
static int load_preds(idx_lang *l, uint32_t p) {
  uint32_t nsteps = 0;
  const TSQueryPredicateStep *s = ts_query_predicates_for_pattern(l->query, p, &nsteps);
  l->npreds[p] = 0;
  l->preds[p] = NULL;
  uint32_t i = 0;
  while (i < nsteps) {
    uint32_t j = i;
    while (j < nsteps && s[j].type != TSQueryPredicateStepTypeDone) j++;
    /* steps i..j-1: name, args */
    if (j - i == 3 && s[i].type == TSQueryPredicateStepTypeString &&
        s[i + 1].type == TSQueryPredicateStepTypeCapture) {
      uint32_t len;
      const char *op = ts_query_string_value_for_id(l->query, s[i].value_id, &len);
      int code = -1;
      if (strcmp(op, "eq?") == 0) code = 0;
      else if (strcmp(op, "not-eq?") == 0) code = 1;
      else if (strcmp(op, "match?") == 0) code = 2;
      else if (strcmp(op, "not-match?") == 0) code = 3;
      if (code >= 0) {
        idx_pred *np = realloc(l->preds[p], (l->npreds[p] + 1) * sizeof *np);
        if (!np) return -1;
        l->preds[p] = np;
        idx_pred *pr = &np[l->npreds[p]];
        memset(pr, 0, sizeof *pr);
        pr->op = code;
        pr->cap = s[i + 1].value_id;
        if (s[i + 2].type == TSQueryPredicateStepTypeCapture) {
          if (code >= 2) return -1;
          pr->rhs_is_cap = 1;
          pr->rhs_cap = s[i + 2].value_id;
        } else {
          const char *v = ts_query_string_value_for_id(l->query, s[i + 2].value_id, &len);
          if (code >= 2) {
            if (regcomp(&pr->re, v, REG_EXTENDED | REG_NOSUB) != 0) return -1;
          } else {
            pr->rhs = strdup(v);
            if (!pr->rhs) return -1;
          }
        }
        l->npreds[p]++;
      }
    }
    i = j + 1;
  }
  return 0;
}

static int try_query(idx_lang *l, const char *src) {
  if (!src || !*src) return -1;
  uint32_t off = 0;
  TSQueryError qe = TSQueryErrorNone;
  l->query = ts_query_new(l->ts, src, (uint32_t)strlen(src), &off, &qe);
  if (!l->query) {
    snprintf(l->query_note, sizeof l->query_note, "query error %d at byte %u", (int)qe, off);
    return -1;
  }
  l->npatterns = ts_query_pattern_count(l->query);
  l->ncaps = ts_query_capture_count(l->query);
  l->preds = calloc(l->npatterns ? l->npatterns : 1, sizeof *l->preds);
  l->npreds = calloc(l->npatterns ? l->npatterns : 1, sizeof *l->npreds);
  l->cap_role = calloc(l->ncaps ? l->ncaps : 1, 1);
  l->cap_kind = calloc(l->ncaps ? l->ncaps : 1, sizeof *l->cap_kind);
  if (!l->preds || !l->npreds || !l->cap_role || !l->cap_kind) {
    free_query(l);
    return -1;
  }
  for (uint32_t c = 0; c < l->ncaps; c++) {
    uint32_t len;
    const char *n = ts_query_capture_name_for_id(l->query, c, &len);
    l->cap_kind[c] = "";
    if (strcmp(n, "name") == 0) l->cap_role[c] = 1;
    else if (strncmp(n, "definition.", 11) == 0) {
      l->cap_role[c] = 2;
      l->cap_kind[c] = n + 11;
    } else if (strncmp(n, "reference.", 10) == 0) {
      l->cap_role[c] = 3;
      l->cap_kind[c] = n + 10;
    }
  }
  for (uint32_t p = 0; p < l->npatterns; p++)
    if (load_preds(l, p) != 0) {
      snprintf(l->query_note, sizeof l->query_note, "bad predicate in pattern %u", p);
      free_query(l);
      return -1;
    }
  return 0;
}

int idx_langset_new(idx_langset **out, kv_err *err) {
  size_t n = sizeof grammars / sizeof grammars[0];
  idx_langset *ls = calloc(1, sizeof *ls);
  if (!ls || !(ls->v = calloc(n, sizeof *ls->v))) {
    free(ls);
    return kv_err_set(err, KV_ENOMEM, "indexer: out of memory for the language table");
  }
  ls->n = n;
  for (size_t i = 0; i < n; i++) {
    idx_lang *l = &ls->v[i];
    l->name = grammars[i].name;
    l->ts = grammars[i].fn();
    const idx_lang_queries *q = NULL;
    for (const idx_lang_queries *t = idx_lang_query_table; t->name; t++)
      if (strcmp(t->name, l->name) == 0) q = t;
    if (!q) continue;
    /* upstream + ours, then ours, then upstream */
    size_t a = strlen(q->up), b = strlen(q->ours);
    char *both = malloc(a + b + 2);
    if (!both) {
      idx_langset_free(ls);
      return kv_err_set(err, KV_ENOMEM, "indexer: out of memory for queries");
    }
    memcpy(both, q->up, a);
    both[a] = '\n';
    memcpy(both + a + 1, q->ours, b + 1);
    if (try_query(l, both) != 0 && try_query(l, q->ours) != 0) try_query(l, q->up);
    free(both);
  }
  *out = ls;
  return 0;
}

void idx_langset_free(idx_langset *ls) {
  if (!ls) return;
  for (size_t i = 0; i < ls->n; i++) free_query(&ls->v[i]);
  free(ls->v);
  free(ls);
}

const idx_lang *idx_langset_get(const idx_langset *ls, const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < ls->n; i++)
    if (strcmp(ls->v[i].name, name) == 0) return &ls->v[i];
  return NULL;
}

/* Text of the first node captured as `cap` in m, copied into buf. */
static const char *cap_text(const TSQueryMatch *m, uint32_t cap, const char *src, char *buf,
                            size_t n) {
  for (uint16_t i = 0; i < m->capture_count; i++)
    if (m->captures[i].index == cap) {
      uint32_t a = ts_node_start_byte(m->captures[i].node), b = ts_node_end_byte(m->captures[i].node);
      size_t len = b > a ? b - a : 0;
      if (len >= n) len = n - 1;
      memcpy(buf, src + a, len);
      buf[len] = 0;
      return buf;
    }
  return NULL;
}

int idx_match_ok(const idx_lang *l, const TSQueryMatch *m, const char *src) {
  if (m->pattern_index >= l->npatterns) return 1;
  for (uint32_t i = 0; i < l->npreds[m->pattern_index]; i++) {
    const idx_pred *p = &l->preds[m->pattern_index][i];
    char a[256], b[256];
    const char *x = cap_text(m, p->cap, src, a, sizeof a);
    if (!x) continue;
    int ok;
    if (p->op <= 1) {
      const char *y = p->rhs_is_cap ? cap_text(m, p->rhs_cap, src, b, sizeof b) : p->rhs;
      ok = y && strcmp(x, y) == 0;
      if (p->op == 1) ok = !ok;
    } else {
      ok = regexec(&p->re, x, 0, NULL, 0) == 0;
      if (p->op == 3) ok = !ok;
    }
    if (!ok) return 0;
  }
  return 1;
}
