/*
 * rules.c — pol_decide: the first rule whose every condition holds picks
 * the tier, else the policy's default. Conditions inside a rule are ANDed;
 * the values listed for one condition are ORed. A condition that cannot be
 * evaluated (no draft yet for confidence_below, no known limit for
 * max_context) does not hold, and the reasons say so — the decision is
 * always explainable from pol_decision.reasons alone. Offline downgrades a
 * hosted decision to the tier's local fallback here, before any caller can
 * reach the network code. Paths are matched as path.c resolves them; a
 * context path that leads out of the project refuses the request.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "policy/internal.h"

static const char *const KINDS[POL_KIND__COUNT] = {"ask", "complete", "triage"};
static const char *const DEPTHS[POL_DEPTH__COUNT] = {"fast", "think", "think-max"};

int pol_kind_parse(const char *s) {
  for (int i = 0; i < POL_KIND__COUNT; i++)
    if (!strcmp(s, KINDS[i])) return i;
  return -1;
}
int pol_depth_parse(const char *s) {
  for (int i = 0; i < POL_DEPTH__COUNT; i++)
    if (!strcmp(s, DEPTHS[i])) return i;
  return -1;
}
const char *pol_kind_name(pol_kind k) { return (unsigned)k < POL_KIND__COUNT ? KINDS[k] : "?"; }
const char *pol_depth_name(pol_depth d) { return (unsigned)d < POL_DEPTH__COUNT ? DEPTHS[d] : "?"; }

static const struct { const char *ext, *lang; } LANGS[] = {
    {".c", "c"},           {".h", "c"},          {".cc", "cpp"},       {".cpp", "cpp"},     {".cxx", "cpp"},
    {".hpp", "cpp"},       {".py", "python"},    {".rs", "rust"},      {".go", "go"},       {".js", "javascript"},
    {".mjs", "javascript"},{".ts", "typescript"},{".tsx", "typescript"},{".java", "java"},  {".rb", "ruby"},
    {".sh", "shell"},      {".bash", "shell"},   {".tf", "terraform"}, {".tfvars", "terraform"},
    {".tfstate", "terraform"}, {".yaml", "yaml"}, {".yml", "yaml"},    {".json", "json"},   {".md", "markdown"},
    {".lua", "lua"},       {".sql", "sql"},      {".toml", "toml"},    {".cs", "csharp"},   {".kt", "kotlin"},
    {".swift", "swift"},   {".php", "php"},
};

const char *pol_language_of(const char *path) {
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  const char *dot = strrchr(base, '.');
  if (!dot) return "";
  for (size_t i = 0; i < sizeof LANGS / sizeof *LANGS; i++)
    if (!strcasecmp(dot, LANGS[i].ext)) return LANGS[i].lang;
  return "";
}

uint64_t pol_estimate_tokens(const pol_request *req) {
  if (req->context_tokens) return req->context_tokens;
  uint64_t bytes = req->question ? strlen(req->question) : 0;
  for (size_t i = 0; i < req->n_files; i++) bytes += req->files[i].len;
  return (bytes + 3) / 4; /* ~4 bytes per token for code and English */
}


static void add_reason(pol_decision *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_reason(pol_decision *d, const char *fmt, ...) {
  if (d->n_reasons >= POL_MAX_REASONS) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(d->reasons[d->n_reasons++], sizeof d->reasons[0], fmt, ap);
  va_end(ap);
}

static int file_has_label(const pol_policy *p, const pol_request *req, const pol_paths *ps, const char *label,
                          const char **why) {
  for (size_t i = 0; i < req->n_labels; i++)
    if (req->labels[i] && !strcmp(req->labels[i], label)) return *why = "request", 1;
  for (size_t l = 0; l < p->n_label_paths; l++) {
    if (strcmp(p->label_paths[l].label, label)) continue;
    for (size_t f = 0; f < ps->n; f++)
      if (pol_globs_match((const char *const *)p->label_paths[l].globs.v, p->label_paths[l].globs.n, ps->rel[f]))
        return *why = ps->rel[f], 1;
  }
  return 0;
}

/* The local tier whose limits max_context: local|calibrated refer to. */
static const pol_tier *local_tier(const pol_policy *p) {
  const pol_tier *t = pol_tier_find(p, p->default_tier);
  return t && t->kind == POL_TIER_LOCAL ? t : pol_tier_find(p, "flash");
}

/* Evaluate one rule; on a failing condition write why into buf and return 0. */
static int rule_holds(const pol_policy *p, const pol_rule *r, const pol_request *req, const pol_paths *ps, uint64_t est,
                      char *buf, size_t n) {
  char *w = buf;
  size_t left = n;
#define NOTE(...)                                                                   \
  do {                                                                              \
    int _k = snprintf(w, left, __VA_ARGS__);                                        \
    if (_k > 0 && (size_t)_k < left) w += _k, left -= (size_t)_k; else left = 1;   \
  } while (0)
  buf[0] = 0;
  if (r->kinds && !(r->kinds & (1u << req->kind))) return snprintf(buf, n, "kind %s not listed", pol_kind_name(req->kind)), 0;
  if (r->kinds) NOTE("kind=%s; ", pol_kind_name(req->kind));
  if (r->depths && !(r->depths & (1u << req->depth)))
    return snprintf(buf, n, "depth %s not listed", pol_depth_name(req->depth)), 0;
  if (r->depths) NOTE("depth=%s; ", pol_depth_name(req->depth));
  if (r->paths.n) {
    const char *hit = NULL;
    for (size_t i = 0; i < ps->n && !hit; i++)
      if (pol_globs_match((const char *const *)r->paths.v, r->paths.n, ps->rel[i])) hit = ps->rel[i];
    if (!hit) return snprintf(buf, n, "no context file matches paths (%zu files)", req->n_files), 0;
    const char *pat = "";
    for (size_t j = 0; j < r->paths.n; j++) /* the pattern that decided: the last one matching */
      if (pol_glob_match(r->paths.v[j][0] == '!' ? r->paths.v[j] + 1 : r->paths.v[j], hit)) pat = r->paths.v[j];
    NOTE("path %s matches %s; ", hit, pat);
  }
  if (r->languages.n) {
    const char *hit = NULL;
    for (size_t i = 0; i < ps->n && !hit; i++) {
      const char *lang = req->files[i].language ? req->files[i].language : pol_language_of(ps->rel[i]);
      for (size_t j = 0; j < r->languages.n && !hit; j++)
        if (*lang && !strcasecmp(lang, r->languages.v[j])) hit = ps->rel[i];
    }
    if (!hit) return snprintf(buf, n, "no context file in the listed languages"), 0;
    NOTE("language of %s listed; ", hit);
  }
  if (r->labels.n) {
    const char *why = NULL, *lab = NULL;
    for (size_t j = 0; j < r->labels.n && !lab; j++)
      if (file_has_label(p, req, ps, r->labels.v[j], &why)) lab = r->labels.v[j];
    if (!lab) return snprintf(buf, n, "no listed label on the request"), 0;
    NOTE("label %s (from %s); ", lab, why);
  }
  if (r->max_context_mode) {
    uint64_t limit = 0;
    const char *src = "rule";
    const pol_tier *lt = local_tier(p);
    if (r->max_context_mode == POL_MC_TOKENS) limit = r->max_context;
    if (r->max_context_mode == POL_MC_CALIBRATED) {
      kv_err e;
      const char *model = lt && lt->model ? lt->model : "flash";
      if (pol_calibration_limit(model, p->project, r->min_accuracy, &limit, &e) == 0) src = "calibrated";
      else limit = 0;
    }
    if (!limit && r->max_context_mode != POL_MC_TOKENS && lt && lt->context) limit = lt->context, src = "local tier";
    if (!limit) return snprintf(buf, n, "max_context: no limit known (no calibration, no tier context)"), 0;
    if (est <= limit)
      return snprintf(buf, n, "context %llu tokens <= %llu (%s limit)", (unsigned long long)est,
                      (unsigned long long)limit, src), 0;
    NOTE("context %llu > %llu tokens (%s limit); ", (unsigned long long)est, (unsigned long long)limit, src);
  }
  if (r->has_confidence) {
    if (!req->has_draft) return snprintf(buf, n, "confidence_below: no local draft yet"), 0;
    if (!(req->draft_logprob < r->confidence_below))
      return snprintf(buf, n, "draft mean logprob %.3f >= %.3f", req->draft_logprob, r->confidence_below), 0;
    NOTE("draft mean logprob %.3f < %.3f; ", req->draft_logprob, r->confidence_below);
  }
  if (w == buf) NOTE("no conditions (matches everything)");
  else if (w > buf + 1 && w[-2] == ';') w[-2] = 0;
#undef NOTE
  return 1;
}

static void set_tier(const pol_policy *p, const char *name, pol_decision *d) {
  snprintf(d->tier, sizeof d->tier, "%s", name);
  const pol_tier *t = pol_tier_find(p, name);
  d->tier_kind = !t ? POL_TIER_REFUSE : t->kind;
  snprintf(d->model, sizeof d->model, "%s", t && t->model ? t->model : "");
}

int pol_decide(const pol_policy *p, const pol_request *req, pol_decision *d, kv_err *err) {
  memset(d, 0, sizeof *d);
  if ((unsigned)req->kind >= POL_KIND__COUNT || (unsigned)req->depth >= POL_DEPTH__COUNT)
    return kv_err_set(err, KV_EINVAL, "pol_decide: bad kind or depth");
  pol_paths ps;
  int rc = pol_request_paths(p, req, &ps, err);
  if (rc) { /* a path that cannot be judged is refused, even by a caller that ignores rc */
    d->tier_kind = POL_TIER_REFUSE;
    strcpy(d->tier, "refuse");
    strcpy(d->rule, "path");
    add_reason(d, "refused: %.200s", err ? err->msg : "a context path leads outside the project");
    return rc;
  }
  uint64_t est = pol_estimate_tokens(req);
  d->context_tokens = est;
  const pol_rule *hit = NULL;
  for (size_t i = 0; i < p->n_rules && !hit; i++) {
    char why[200];
    const pol_rule *r = &p->rules[i];
    if (rule_holds(p, r, req, &ps, est, why, sizeof why)) {
      hit = r;
      add_reason(d, "rule '%s' (line %d) matched: %s", r->name, r->line, why);
    } else if (d->n_reasons < POL_MAX_REASONS - 3) {
      add_reason(d, "rule '%s' (line %d) skipped: %s", r->name, r->line, why);
    }
  }
  if (hit) {
    snprintf(d->rule, sizeof d->rule, "%s", hit->name);
    set_tier(p, hit->tier, d);
  } else {
    strcpy(d->rule, "default");
    set_tier(p, p->default_tier, d);
    add_reason(d, "no rule matched: default tier '%s'", p->default_tier);
  }
  if (d->tier_kind == POL_TIER_HOSTED && p->offline) {
    const pol_tier *t = pol_tier_find(p, d->tier);
    char was[64];
    snprintf(was, sizeof was, "%s", d->tier);
    set_tier(p, t->fallback, d);
    d->offline_downgraded = 1;
    add_reason(d, "offline: true forbids hosted tier '%s'; using local tier '%s'", was, d->tier);
  }
  add_reason(d, "decision: %s (%s)", d->tier,
             d->tier_kind == POL_TIER_LOCAL ? "local" : d->tier_kind == POL_TIER_HOSTED ? "hosted" : "refused");
  pol_paths_free(&ps);
  return 0;
}
