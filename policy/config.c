/*
 * config.c — builds a pol_policy from the user's config.yaml (tiers,
 * endpoints, default budget) and the project's .kvasir/policy.yaml (rules,
 * default, never_send, offline, budget, label_paths). The schema is strict:
 * an unknown key, a wrong type or a rule naming an undeclared tier is an
 * error "file:line:column: field: what", so a typo never silently widens
 * what may leave the machine. API keys are never read from either file:
 * only the name of an environment variable or of a 0600 file outside the
 * project. A policy is built completely or not at all; reload swaps whole
 * policies so a broken edit leaves the last good one in force.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "policy/internal.h"

#define CONFIG_MAX (1u << 20)

const char *pol_version(void) { return "0.1.0"; }

/* Defaults for never_send, before the project's own list (gitignore syntax). */
static const char *const DEFAULT_NEVER_SEND[] = {
    ".env*", "*.pem", "*.key", "*.p12", "*.pfx", "*.crt", "*.cer", "*.der", "*.jks", "*.keystore",
    "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", ".ssh/", ".aws/", ".gnupg/", ".netrc", ".npmrc", ".pypirc",
    "private_logs/", "private-logs/", "logs/private/", ".kvasir/keys/",
};

char *pol_strdup(const char *s) {
  size_t n = strlen(s);
  char *d = malloc(n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

typedef struct ctx {
  const char *file;
  kv_err *err;
} ctx;

static int fail(ctx *c, const pol_yaml_node *n, const char *field, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int fail(ctx *c, const pol_yaml_node *n, const char *field, const char *fmt, ...) {
  char msg[384];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return kv_err_set(c->err, KV_EFORMAT, "%s:%d:%d: %s: %s", c->file, n ? n->line : 1, n ? n->col : 1, field, msg);
}

static int want_map(ctx *c, const pol_yaml_node *n, const char *field) {
  return n->type == POL_YAML_MAP ? 0 : fail(c, n, field, "expected a mapping");
}

static int get_str(ctx *c, const pol_yaml_node *n, const char *field, char *buf, size_t cap, char **dup) {
  if (n->type != POL_YAML_SCALAR) return fail(c, n, field, "expected a string");
  if (buf) {
    if (strlen(n->value) >= cap) return fail(c, n, field, "longer than %zu characters", cap - 1);
    strcpy(buf, n->value);
  }
  if (dup && *dup) return fail(c, n, field, "given twice");
  if (dup && !(*dup = pol_strdup(n->value))) return kv_err_set(c->err, KV_ENOMEM, "%s: out of memory", c->file);
  return 0;
}

static int get_u64(ctx *c, const pol_yaml_node *n, const char *field, uint64_t *out) {
  if (n->type != POL_YAML_SCALAR || !n->value[0]) return fail(c, n, field, "expected a non-negative integer");
  errno = 0;
  char *end;
  unsigned long long v = strtoull(n->value, &end, 10);
  if (errno || *end || n->value[0] == '-') return fail(c, n, field, "expected a non-negative integer, got '%s'", n->value);
  *out = v;
  return 0;
}

static int get_uint(ctx *c, const pol_yaml_node *n, const char *field, unsigned *out, unsigned max) {
  uint64_t v;
  int rc = get_u64(c, n, field, &v);
  if (rc) return rc;
  if (v > max) return fail(c, n, field, "%llu is larger than %u", (unsigned long long)v, max);
  *out = (unsigned)v;
  return 0;
}

static int get_double(ctx *c, const pol_yaml_node *n, const char *field, double *out) {
  if (n->type != POL_YAML_SCALAR || !n->value[0]) return fail(c, n, field, "expected a number");
  char *end;
  double v = strtod(n->value, &end);
  if (*end || !isfinite(v)) return fail(c, n, field, "expected a number, got '%s'", n->value);
  *out = v;
  return 0;
}

static int get_bool(ctx *c, const pol_yaml_node *n, const char *field, int *out) {
  if (n->type == POL_YAML_SCALAR) {
    const char *v = n->value;
    if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on")) return *out = 1, 0;
    if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off")) return *out = 0, 0;
  }
  return fail(c, n, field, "expected true or false");
}

static void strs_free(pol_strs *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  s->v = NULL, s->n = s->cap = 0;
}

static int strs_add(pol_strs *s, const char *v) {
  char *d = pol_strdup(v);
  if (!d || KV_PUSH(s->v, s->n, s->cap, d)) {
    free(d);
    return KV_ENOMEM;
  }
  return 0;
}

/* A string or a list of strings. */
static int get_strs(ctx *c, const pol_yaml_node *n, const char *field, pol_strs *out) {
  if (n->type == POL_YAML_SCALAR) {
    if (!n->value[0]) return fail(c, n, field, "empty string");
    return strs_add(out, n->value) ? kv_err_set(c->err, KV_ENOMEM, "%s: out of memory", c->file) : 0;
  }
  if (n->type != POL_YAML_SEQ) return fail(c, n, field, "expected a string or a list of strings");
  for (size_t i = 0; i < n->n; i++) {
    const pol_yaml_node *it = n->items[i];
    if (it->type != POL_YAML_SCALAR || !it->value[0]) return fail(c, it, field, "expected a non-empty string");
    if (strs_add(out, it->value)) return kv_err_set(c->err, KV_ENOMEM, "%s: out of memory", c->file);
  }
  return 0;
}

void pol_policy_clear(pol_policy *p) {
  for (size_t i = 0; i < p->n_tiers; i++) {
    pol_tier *t = &p->tiers[i];
    free(t->model), free(t->base_url), free(t->api_key_env), free(t->api_key_file);
  }
  free(p->tiers);
  for (size_t i = 0; i < p->n_rules; i++) {
    strs_free(&p->rules[i].paths), strs_free(&p->rules[i].languages), strs_free(&p->rules[i].labels);
  }
  free(p->rules);
  strs_free(&p->never_send);
  for (size_t i = 0; i < p->n_label_paths; i++) strs_free(&p->label_paths[i].globs);
  free(p->label_paths);
  p->tiers = NULL, p->rules = NULL, p->label_paths = NULL;
  p->n_tiers = p->n_rules = p->n_label_paths = 0;
  p->cap_tiers = p->cap_rules = p->cap_label_paths = 0;
}

const pol_tier *pol_tier_find(const pol_policy *p, const char *name) {
  for (size_t i = 0; i < p->n_tiers; i++)
    if (!strcmp(p->tiers[i].name, name)) return &p->tiers[i];
  return NULL;
}

static pol_tier *tier_add(pol_policy *p, const char *name) {
  if (KV_GROW(p->tiers, p->cap_tiers, p->n_tiers + 1)) return NULL;
  pol_tier *t = &p->tiers[p->n_tiers++];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->kind = POL_TIER_LOCAL;
  t->timeout_ms = 60000, t->connect_timeout_ms = 5000, t->retries = 2, t->backoff_ms = 250;
  strcpy(t->fallback, "flash");
  return t;
}

static int parse_budget(ctx *c, const pol_yaml_node *n, pol_policy *p) {
  if (want_map(c, n, "budget")) return KV_EFORMAT;
  for (size_t i = 0; i + 1 < n->n; i += 2) {
    const char *k = n->items[i]->value;
    const pol_yaml_node *v = n->items[i + 1];
    int rc;
    if (!k) rc = fail(c, n->items[i], "budget", "keys must be strings");
    else if (!strcmp(k, "requests_per_day")) rc = get_u64(c, v, "budget.requests_per_day", &p->budget_requests);
    else if (!strcmp(k, "tokens_per_day")) rc = get_u64(c, v, "budget.tokens_per_day", &p->budget_tokens);
    else if (!strcmp(k, "cost_per_day")) {
      rc = get_double(c, v, "budget.cost_per_day", &p->budget_cost);
      if (!rc && p->budget_cost < 0) rc = fail(c, v, "budget.cost_per_day", "must not be negative");
    } else rc = fail(c, n->items[i], "budget", "unknown key '%s' (requests_per_day, tokens_per_day, cost_per_day)", k);
    if (rc) return rc;
  }
  return 0;
}

static int parse_tier(ctx *c, const char *name, const pol_yaml_node *key, const pol_yaml_node *n, pol_policy *p) {
  char field[128];
  snprintf(field, sizeof field, "tiers.%s", name);
  if (!strcmp(name, "refuse") || !name[0] || strlen(name) >= 64)
    return fail(c, key, field, "'%s' is not a valid tier name", name);
  if (pol_tier_find(p, name)) return fail(c, key, field, "declared twice");
  if (want_map(c, n, field)) return KV_EFORMAT;
  pol_tier *t = tier_add(p, name);
  if (!t) return kv_err_set(c->err, KV_ENOMEM, "%s: out of memory", c->file);
  t->line = key->line, t->col = key->col;
  int kind_set = 0;
  for (size_t i = 0; i + 1 < n->n; i += 2) {
    const char *k = n->items[i]->value;
    const pol_yaml_node *v = n->items[i + 1];
    char f[192];
    snprintf(f, sizeof f, "%s.%s", field, k ? k : "?");
    int rc = 0;
    if (!k) rc = fail(c, n->items[i], field, "keys must be strings");
    else if (!strcmp(k, "kind")) {
      if (v->type != POL_YAML_SCALAR || (strcmp(v->value, "local") && strcmp(v->value, "hosted")))
        rc = fail(c, v, f, "expected 'local' or 'hosted'");
      else t->kind = strcmp(v->value, "local") ? POL_TIER_HOSTED : POL_TIER_LOCAL, kind_set = 1;
    } else if (!strcmp(k, "model")) rc = get_str(c, v, f, NULL, 0, &t->model);
    else if (!strcmp(k, "context")) rc = get_u64(c, v, f, &t->context);
    else if (!strcmp(k, "base_url")) rc = get_str(c, v, f, NULL, 0, &t->base_url);
    else if (!strcmp(k, "api_key_env")) rc = get_str(c, v, f, NULL, 0, &t->api_key_env);
    else if (!strcmp(k, "api_key_file")) rc = get_str(c, v, f, NULL, 0, &t->api_key_file);
    else if (!strcmp(k, "api_key"))
      rc = fail(c, n->items[i], f, "keys are never stored in config: use api_key_env or api_key_file (mode 0600)");
    else if (!strcmp(k, "timeout_ms")) rc = get_uint(c, v, f, &t->timeout_ms, 3600000);
    else if (!strcmp(k, "connect_timeout_ms")) rc = get_uint(c, v, f, &t->connect_timeout_ms, 600000);
    else if (!strcmp(k, "retries")) rc = get_uint(c, v, f, &t->retries, 10);
    else if (!strcmp(k, "backoff_ms")) rc = get_uint(c, v, f, &t->backoff_ms, 60000);
    else if (!strcmp(k, "price_in")) rc = get_double(c, v, f, &t->price_in);
    else if (!strcmp(k, "price_out")) rc = get_double(c, v, f, &t->price_out);
    else if (!strcmp(k, "fallback")) rc = get_str(c, v, f, t->fallback, sizeof t->fallback, NULL);
    else if (!strcmp(k, "allow_plaintext")) rc = get_bool(c, v, f, &t->allow_plaintext);
    else rc = fail(c, n->items[i], field, "unknown key '%s'", k);
    if (rc) return rc;
  }
  if (!kind_set && t->base_url) t->kind = POL_TIER_HOSTED;
  if ((!strcmp(name, "flash") || !strcmp(name, "pro")) && t->kind != POL_TIER_LOCAL)
    return fail(c, key, field, "'%s' is a local tier", name);
  if (t->kind == POL_TIER_HOSTED) {
    if (!t->base_url) return fail(c, key, field, "a hosted tier needs base_url");
    const pol_yaml_node *bu = NULL;
    for (size_t i = 0; i + 1 < n->n; i += 2)
      if (n->items[i]->value && !strcmp(n->items[i]->value, "base_url")) bu = n->items[i + 1];
    char f[192];
    snprintf(f, sizeof f, "%s.base_url", field);
    if (strncasecmp(t->base_url, "http://", 7) && strncasecmp(t->base_url, "https://", 8))
      return fail(c, bu, f, "must start with https:// (or http:// on loopback)");
    if (!strncasecmp(t->base_url, "http://", 7) && !t->allow_plaintext && !pol_url_loopback(t->base_url))
      return fail(c, bu, f,
                  "http:// off loopback would send the prompt and the API key in clear: use https://, or set "
                  "%s.allow_plaintext: true",
                  field);
    if (!t->model) return fail(c, key, field, "a hosted tier needs model");
    if (!t->api_key_env && !t->api_key_file) return fail(c, key, field, "a hosted tier needs api_key_env or api_key_file");
    if (t->timeout_ms == 0) return fail(c, key, field, "timeout_ms must be positive");
  }
  return 0;
}

static int parse_config(ctx *c, const pol_yaml_node *root, pol_policy *p) {
  if (!root || (root->type == POL_YAML_SCALAR && !root->value[0])) return 0;
  if (want_map(c, root, "(top level)")) return KV_EFORMAT;
  for (size_t i = 0; i + 1 < root->n; i += 2) {
    const char *k = root->items[i]->value;
    const pol_yaml_node *v = root->items[i + 1];
    int rc = 0;
    if (!k) rc = fail(c, root->items[i], "(top level)", "keys must be strings");
    else if (!strcmp(k, "tiers")) {
      if (want_map(c, v, "tiers")) return KV_EFORMAT;
      for (size_t j = 0; j + 1 < v->n && !rc; j += 2) {
        if (v->items[j]->type != POL_YAML_SCALAR) rc = fail(c, v->items[j], "tiers", "tier names must be strings");
        else rc = parse_tier(c, v->items[j]->value, v->items[j], v->items[j + 1], p);
      }
    } else if (!strcmp(k, "budget")) rc = parse_budget(c, v, p);
    else if (!strcmp(k, "model_memory")) {
      if (v->type != POL_YAML_SCALAR || pol_parse_size(v->value, &p->model_memory, &p->model_memory_frac) ||
          (!p->model_memory && !p->model_memory_frac))
        rc = fail(c, v, "model_memory", "expected a size such as 75%%, 8GiB or 512MiB, got '%s'",
                  v->type == POL_YAML_SCALAR ? v->value : "(not a scalar)");
      p->model_memory_line = v->line, p->model_memory_col = v->col;
    } else rc = fail(c, root->items[i], "(top level)", "unknown key '%s' (tiers, budget, model_memory)", k);
    if (rc) return rc;
  }
  return 0;
}

static int check_tier_ref(ctx *c, const pol_policy *p, const pol_yaml_node *n, const char *field, const char *name) {
  if (!strcmp(name, "refuse") || pol_tier_find(p, name)) return 0;
  char known[256] = "refuse";
  for (size_t i = 0; i < p->n_tiers; i++) {
    size_t l = strlen(known);
    snprintf(known + l, sizeof known - l, ", %s", p->tiers[i].name);
  }
  return fail(c, n, field, "unknown tier '%s' (declared: %s)", name, known);
}

static int parse_enum_set(ctx *c, const pol_yaml_node *v, const char *field, int (*parse)(const char *), unsigned *mask) {
  pol_strs s = {0};
  int rc = get_strs(c, v, field, &s);
  for (size_t i = 0; !rc && i < s.n; i++) {
    int e = parse(s.v[i]);
    if (e < 0) rc = fail(c, v, field, "unknown value '%s'", s.v[i]);
    else *mask |= 1u << e;
  }
  strs_free(&s);
  return rc;
}

static int parse_rule(ctx *c, const pol_yaml_node *n, size_t idx, pol_policy *p) {
  char field[64];
  snprintf(field, sizeof field, "rules[%zu]", idx);
  if (want_map(c, n, field)) return KV_EFORMAT;
  if (KV_GROW(p->rules, p->cap_rules, p->n_rules + 1)) return kv_err_set(c->err, KV_ENOMEM, "%s: out of memory", c->file);
  pol_rule *r = &p->rules[p->n_rules++];
  memset(r, 0, sizeof *r);
  r->line = n->line, r->col = n->col;
  r->min_accuracy = 0.8;
  const pol_yaml_node *tier_node = NULL;
  for (size_t i = 0; i + 1 < n->n; i += 2) {
    const char *k = n->items[i]->value;
    const pol_yaml_node *v = n->items[i + 1];
    char f[128];
    snprintf(f, sizeof f, "%s.%s", field, k ? k : "?");
    int rc = 0;
    if (!k) rc = fail(c, n->items[i], field, "keys must be strings");
    else if (!strcmp(k, "name")) rc = get_str(c, v, f, r->name, sizeof r->name, NULL);
    else if (!strcmp(k, "tier")) rc = get_str(c, v, f, r->tier, sizeof r->tier, NULL), tier_node = v;
    else if (!strcmp(k, "kind")) rc = parse_enum_set(c, v, f, pol_kind_parse, &r->kinds);
    else if (!strcmp(k, "depth")) rc = parse_enum_set(c, v, f, pol_depth_parse, &r->depths);
    else if (!strcmp(k, "paths")) rc = get_strs(c, v, f, &r->paths);
    else if (!strcmp(k, "languages")) rc = get_strs(c, v, f, &r->languages);
    else if (!strcmp(k, "labels")) rc = get_strs(c, v, f, &r->labels);
    else if (!strcmp(k, "max_context")) {
      if (v->type == POL_YAML_SCALAR && !strcmp(v->value, "calibrated")) r->max_context_mode = POL_MC_CALIBRATED;
      else if (v->type == POL_YAML_SCALAR && !strcmp(v->value, "local")) r->max_context_mode = POL_MC_LOCAL;
      else {
        rc = get_u64(c, v, f, &r->max_context);
        if (rc) rc = fail(c, v, f, "expected a token count, 'local' or 'calibrated'");
        r->max_context_mode = POL_MC_TOKENS;
      }
    } else if (!strcmp(k, "min_accuracy")) {
      rc = get_double(c, v, f, &r->min_accuracy);
      if (!rc && (r->min_accuracy < 0 || r->min_accuracy > 1)) rc = fail(c, v, f, "must be between 0 and 1");
    } else if (!strcmp(k, "confidence_below")) rc = get_double(c, v, f, &r->confidence_below), r->has_confidence = 1;
    else rc = fail(c, n->items[i], field, "unknown key '%s'", k);
    if (rc) return rc;
  }
  if (!r->name[0]) return fail(c, n, field, "a rule needs a name");
  for (size_t i = 0; i + 1 < p->n_rules; i++)
    if (!strcmp(p->rules[i].name, r->name)) return fail(c, n, field, "rule name '%s' used twice", r->name);
  if (!tier_node) return fail(c, n, field, "rule '%s' needs a tier", r->name);
  char f[128];
  snprintf(f, sizeof f, "%s.tier", field);
  return check_tier_ref(c, p, tier_node, f, r->tier);
}

static int parse_project(ctx *c, const pol_yaml_node *root, pol_policy *p) {
  if (!root || (root->type == POL_YAML_SCALAR && !root->value[0])) return 0;
  if (want_map(c, root, "(top level)")) return KV_EFORMAT;
  for (size_t i = 0; i + 1 < root->n; i += 2) {
    const char *k = root->items[i]->value;
    const pol_yaml_node *v = root->items[i + 1];
    int rc = 0;
    if (!k) rc = fail(c, root->items[i], "(top level)", "keys must be strings");
    else if (!strcmp(k, "default")) {
      rc = get_str(c, v, "default", p->default_tier, sizeof p->default_tier, NULL);
      if (!rc) rc = check_tier_ref(c, p, v, "default", p->default_tier);
    } else if (!strcmp(k, "rules")) {
      if (v->type != POL_YAML_SEQ) rc = fail(c, v, "rules", "expected a list of rules");
      for (size_t j = 0; !rc && j < v->n; j++) rc = parse_rule(c, v->items[j], j, p);
    } else if (!strcmp(k, "never_send")) rc = get_strs(c, v, "never_send", &p->never_send);
    else if (!strcmp(k, "offline")) rc = get_bool(c, v, "offline", &p->offline);
    else if (!strcmp(k, "budget")) rc = parse_budget(c, v, p);
    else if (!strcmp(k, "label_paths")) {
      if (want_map(c, v, "label_paths")) return KV_EFORMAT;
      for (size_t j = 0; j + 1 < v->n && !rc; j += 2) {
        const pol_yaml_node *lk = v->items[j];
        if (lk->type != POL_YAML_SCALAR || !lk->value[0] || strlen(lk->value) >= 64) {
          rc = fail(c, lk, "label_paths", "label names must be short strings");
          break;
        }
        if (KV_GROW(p->label_paths, p->cap_label_paths, p->n_label_paths + 1))
          return kv_err_set(c->err, KV_ENOMEM, "%s: out of memory", c->file);
        pol_label_paths *l = &p->label_paths[p->n_label_paths++];
        memset(l, 0, sizeof *l);
        strcpy(l->label, lk->value);
        char f[96];
        snprintf(f, sizeof f, "label_paths.%s", lk->value);
        rc = get_strs(c, v->items[j + 1], f, &l->globs);
      }
    } else
      rc = fail(c, root->items[i], "(top level)",
                "unknown key '%s' (default, rules, never_send, offline, budget, label_paths)", k);
    if (rc) return rc;
  }
  return 0;
}

/* Build a complete policy into *p (which must be zeroed); on error *p is cleared. */
static int build(pol_policy *p, const char *cy, size_t cl, const char *cn, const char *py, size_t pl, const char *pn,
                 kv_err *err) {
  int rc = 0;
  pol_yaml_node *root = NULL;
  ctx c = {cn ? cn : "config.yaml", err};
  for (size_t i = 0; i < sizeof DEFAULT_NEVER_SEND / sizeof *DEFAULT_NEVER_SEND && !rc; i++)
    if (strs_add(&p->never_send, DEFAULT_NEVER_SEND[i])) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  strcpy(p->default_tier, "flash");
  if (!rc && cy) rc = pol_yaml_parse(cy, cl, c.file, &root, err);
  if (!rc && cy) rc = parse_config(&c, root, p);
  pol_yaml_free(root), root = NULL;
  if (!rc && !pol_tier_find(p, "flash") && !tier_add(p, "flash")) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  if (!rc && !pol_tier_find(p, "pro") && !tier_add(p, "pro")) rc = kv_err_set(err, KV_ENOMEM, "out of memory");
  for (size_t i = 0; !rc && i < p->n_tiers; i++) {
    const pol_tier *t = &p->tiers[i], *f = pol_tier_find(p, t->fallback);
    if (!f || f->kind != POL_TIER_LOCAL)
      rc = kv_err_set(err, KV_EFORMAT, "%s:%d:%d: tiers.%s.fallback: '%s' is not a local tier", c.file, t->line, t->col,
                      t->name, t->fallback);
  }
  c.file = pn ? pn : "policy.yaml";
  if (!rc && py) rc = pol_yaml_parse(py, pl, c.file, &root, err);
  if (!rc && py) rc = parse_project(&c, root, p);
  pol_yaml_free(root);
  if (rc) pol_policy_clear(p);
  return rc;
}

int pol_policy_from_buffers(pol_policy **out, const char *config_yaml, size_t config_len, const char *config_name,
                            const char *policy_yaml, size_t policy_len, const char *policy_name,
                            const char *project_dir, kv_err *err) {
  *out = NULL;
  pol_policy *p = calloc(1, sizeof *p);
  if (!p) return kv_err_set(err, KV_ENOMEM, "out of memory");
  int rc = build(p, config_yaml, config_len, config_name, policy_yaml, policy_len, policy_name, err);
  if (rc) { free(p); return rc; }
  if (project_dir) { /* canonical when it exists, so key-file and audit paths compare equal */
    char abs[PATH_MAX];
    snprintf(p->project, sizeof p->project, "%s", realpath(project_dir, abs) ? abs : project_dir);
  }
  *out = p;
  return 0;
}

/* Read a file that may be absent (*buf = NULL then). */
static int read_optional(const char *path, char **buf, size_t *len, kv_err *err) {
  *buf = NULL, *len = 0;
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? 0 : kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  return kv_read_file(path, CONFIG_MAX, buf, len, err);
}

static int load_files(pol_policy *p, kv_err *err) {
  char *cb = NULL, *pb = NULL;
  size_t cl = 0, pl = 0;
  int rc = read_optional(p->config_path, &cb, &cl, err);
  if (!rc && p->policy_path[0]) rc = read_optional(p->policy_path, &pb, &pl, err);
  if (!rc) rc = build(p, cb, cl, p->config_path, pb, pl, p->policy_path, err);
  free(cb), free(pb);
  return rc;
}

int pol_policy_open(pol_policy **out, const char *project_dir, kv_err *err) {
  *out = NULL;
  pol_policy *p = calloc(1, sizeof *p);
  if (!p) return kv_err_set(err, KV_ENOMEM, "out of memory");
  char dir[4096];
  if (kv_xdg_dir(dir, sizeof dir, "config") != 0 ||
      snprintf(p->config_path, sizeof p->config_path, "%s/config.yaml", dir) >= (int)sizeof p->config_path) {
    free(p);
    return kv_err_set(err, KV_ELIMIT, "config path too long");
  }
  if (project_dir) {
    char abs[PATH_MAX];
    if (!realpath(project_dir, abs)) {
      int e = errno;
      free(p);
      return kv_err_set(err, KV_EIO, "%s: %s", project_dir, strerror(e));
    }
    snprintf(p->project, sizeof p->project, "%s", abs);
    if (snprintf(p->policy_path, sizeof p->policy_path, "%s/.kvasir/policy.yaml", abs) >= (int)sizeof p->policy_path) {
      free(p);
      return kv_err_set(err, KV_ELIMIT, "%s: path too long", abs);
    }
  }
  p->from_files = 1;
  int rc = load_files(p, err);
  if (rc) { free(p); return rc; }
  *out = p;
  return 0;
}

int pol_policy_reload(pol_policy *p, kv_err *err) {
  if (!p->from_files) return kv_err_set(err, KV_EINVAL, "policy was not loaded from files");
  pol_policy fresh;
  memset(&fresh, 0, sizeof fresh);
  memcpy(fresh.config_path, p->config_path, sizeof fresh.config_path);
  memcpy(fresh.policy_path, p->policy_path, sizeof fresh.policy_path);
  memcpy(fresh.project, p->project, sizeof fresh.project);
  fresh.from_files = 1;
  int rc = load_files(&fresh, err);
  if (rc) return rc; /* the old policy stays in force */
  pol_policy_clear(p);
  *p = fresh;
  return 0;
}

void pol_policy_free(pol_policy *p) {
  if (!p) return;
  pol_policy_clear(p);
  free(p);
}

int pol_find_project(const char *dir, char *out, size_t n, kv_err *err) {
  char cur[PATH_MAX];
  if (!realpath(dir, cur)) return kv_err_set(err, KV_EIO, "%s: %s", dir, strerror(errno));
  for (;;) {
    char probe[PATH_MAX + 32];
    snprintf(probe, sizeof probe, "%s/.kvasir/policy.yaml", cur);
    if (access(probe, F_OK) == 0) {
      if (strlen(cur) >= n) return kv_err_set(err, KV_ELIMIT, "%s: path too long", cur);
      strcpy(out, cur);
      return 0;
    }
    char *slash = strrchr(cur, '/');
    if (!slash || slash == cur) break;
    *slash = 0;
  }
  return kv_err_set(err, KV_ENOTFOUND, "no .kvasir/policy.yaml in %s or any parent", dir);
}

int pol_parse_size(const char *s, uint64_t *bytes, double *frac) {
  *bytes = 0, *frac = 0;
  if (!s || !*s || *s == '-') return KV_EINVAL;
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !isfinite(v) || v <= 0) return KV_EINVAL;
  while (*end == ' ') end++;
  if (!strcmp(end, "%")) {
    if (v > 100) return KV_EINVAL;
    *frac = v / 100;
    return 0;
  }
  static const struct { const char *sfx; double mul; } U[] = {
      {"", 1}, {"B", 1}, {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
      {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}};
  for (size_t i = 0; i < sizeof U / sizeof *U; i++)
    if (!strcmp(end, U[i].sfx)) {
      double b = v * U[i].mul;
      if (b < 1 || b > 1.8e19) return KV_EINVAL;
      *bytes = (uint64_t)b;
      return 0;
    }
  return KV_EINVAL;
}

int pol_tier_local(const pol_policy *p, const char *name, pol_local_tier *out) {
  memset(out, 0, sizeof *out);
  const pol_tier *t = name ? pol_tier_find(p, name) : NULL;
  if (!t || t->kind != POL_TIER_LOCAL) return KV_ENOTFOUND;
  out->model = t->model;
  out->context = t->context;
  out->file = p->config_path[0] ? p->config_path : "config.yaml";
  out->line = t->line, out->col = t->col;
  return 0;
}

const char *pol_tier_fallback(const pol_policy *p, const char *name) {
  const pol_tier *t = name ? pol_tier_find(p, name) : NULL;
  return t && t->kind == POL_TIER_HOSTED && t->fallback[0] ? t->fallback : "flash";
}

void pol_policy_model_memory(const pol_policy *p, uint64_t *bytes, double *frac) {
  *bytes = p->model_memory;
  *frac = p->model_memory_frac;
}

const char *pol_policy_project(const pol_policy *p) { return p->project; }
const char *pol_policy_file(const pol_policy *p) { return p->policy_path; }
int pol_policy_offline(const pol_policy *p) { return p->offline; }

int pol_url_loopback(const char *url) {
  const char *h = strstr(url, "://");
  if (!h) return 0;
  h += 3;
  size_t end = strcspn(h, "/?#");
  const char *at = memchr(h, '@', end); /* userinfo */
  if (at) end -= (size_t)(at + 1 - h), h = at + 1;
  char host[256];
  size_t hl;
  if (*h == '[') {
    const char *rb = memchr(h, ']', end);
    if (!rb) return 0;
    hl = (size_t)(rb - h - 1), h++;
  } else {
    const char *colon = memchr(h, ':', end);
    hl = colon ? (size_t)(colon - h) : end;
  }
  if (hl == 0 || hl >= sizeof host) return 0;
  memcpy(host, h, hl);
  host[hl] = 0;
  if (!strcasecmp(host, "localhost") || !strcasecmp(host, "localhost.")) return 1;
  unsigned char a[16];
  if (inet_pton(AF_INET, host, a) == 1) return a[0] == 127;
  if (inet_pton(AF_INET6, host, a) == 1) {
    static const unsigned char one[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return !memcmp(a, one, 16);
  }
  return 0;
}

/* The key of a hosted tier: from its environment variable, or from a file
 * that only the user can read and that does not live inside a project. */
int pol_key_load(const pol_tier *t, char *key, size_t n, kv_err *err) {
  if (t->api_key_env) {
    const char *v = getenv(t->api_key_env);
    if (v && *v) {
      if (strlen(v) >= n) return kv_err_set(err, KV_ELIMIT, "tiers.%s: key in $%s too long", t->name, t->api_key_env);
      strcpy(key, v);
      return 0;
    }
    if (!t->api_key_file) return kv_err_set(err, KV_ENOTFOUND, "tiers.%s: $%s is not set", t->name, t->api_key_env);
  }
  struct stat st;
  if (stat(t->api_key_file, &st) != 0)
    return kv_err_set(err, KV_EIO, "tiers.%s.api_key_file: %s: %s", t->name, t->api_key_file, strerror(errno));
  if (st.st_mode & 077)
    return kv_err_set(err, KV_ECRYPTO, "tiers.%s.api_key_file: %s has mode %03o, must be 0600", t->name,
                      t->api_key_file, (unsigned)(st.st_mode & 0777));
  char *buf;
  size_t len;
  int rc = kv_read_file(t->api_key_file, 4096, &buf, &len, err);
  if (rc) return rc;
  while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ')) buf[--len] = 0;
  if (len == 0 || len >= n) { free(buf); return kv_err_set(err, KV_EFORMAT, "tiers.%s.api_key_file: bad key", t->name); }
  memcpy(key, buf, len + 1);

  memset(buf, 0, len);
  free(buf);
  return 0;
}
