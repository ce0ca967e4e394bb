/*
 * internal.h — structures shared by the policy module's files and nowhere
 * else (the public header keeps them opaque). A pol_policy owns every
 * string it points to; it is built whole by config.c and never mutated
 * afterwards except by pol_policy_reload, which swaps a complete new one in.
 */
#ifndef KVASIR_POLICY_INTERNAL_H
#define KVASIR_POLICY_INTERNAL_H

#include "policy/policy.h"

/* ---- a YAML document as a small tree (yaml.c) ---- */
typedef enum { POL_YAML_SCALAR, POL_YAML_SEQ, POL_YAML_MAP } pol_yaml_type;
typedef struct pol_yaml_node pol_yaml_node;
struct pol_yaml_node {
  pol_yaml_type type;
  int line, col;         /* 1-based, of the node's start */
  char *value;           /* scalar text (NUL-terminated) */
  int plain;             /* scalar was unquoted */
  pol_yaml_node **items; /* seq items, or map keys/values interleaved */
  size_t n, cap;         /* items (seq) or 2*pairs (map); capacity of items */
};
/* Parse one document; NULL root for an empty document. Errors name
 * file:line:column. Aliases are rejected; depth and size are bounded. */
int pol_yaml_parse(const char *buf, size_t len, const char *name, pol_yaml_node **root, kv_err *err);
void pol_yaml_free(pol_yaml_node *n);

/* ---- the loaded configuration ---- */
typedef struct pol_tier {
  char name[64];
  pol_tier_kind kind;
  char *model;               /* may be NULL */
  uint64_t context;          /* tokens the local tier handles well (0 = unknown) */
  char *base_url;            /* hosted: ".../v1" */
  char *api_key_env;         /* hosted: env var holding the key */
  char *api_key_file;        /* hosted: 0600 file holding the key */
  unsigned timeout_ms, connect_timeout_ms, retries, backoff_ms;
  double price_in, price_out; /* per million tokens */
  char fallback[64];         /* local tier on failure / offline */
  int allow_plaintext;       /* hosted: http:// off loopback accepted (config says so) */
  int line, col;
} pol_tier;

enum { POL_MC_NONE = 0, POL_MC_TOKENS, POL_MC_LOCAL, POL_MC_CALIBRATED };

typedef struct pol_strs { char **v; size_t n, cap; } pol_strs;

typedef struct pol_rule {
  char name[64];
  int line, col;
  unsigned kinds;    /* bit per pol_kind; 0 = any */
  unsigned depths;   /* bit per pol_depth; 0 = any */
  pol_strs paths, languages, labels;
  int max_context_mode;
  uint64_t max_context;
  double min_accuracy;
  int has_confidence;
  double confidence_below;
  char tier[64];
} pol_rule;

typedef struct pol_label_paths { char label[64]; pol_strs globs; } pol_label_paths;

struct pol_policy {
  char config_path[4096];
  char policy_path[4096];
  char project[4096];
  int from_files;
  pol_tier *tiers;
  size_t n_tiers, cap_tiers;
  pol_rule *rules;
  size_t n_rules, cap_rules;
  char default_tier[64];
  pol_strs never_send;
  pol_label_paths *label_paths;
  size_t n_label_paths, cap_label_paths;
  int offline;
  uint64_t budget_requests, budget_tokens; /* per day; 0 = unlimited */
  double budget_cost;
  uint64_t model_memory;      /* config.yaml model_memory: bytes (0 = unset) ... */
  double model_memory_frac;   /* ... or a fraction of RAM (0 = unset) */
  int model_memory_line, model_memory_col;
};

const pol_tier *pol_tier_find(const pol_policy *p, const char *name);
void pol_policy_clear(pol_policy *p);
char *pol_strdup(const char *s);
const char *pol_language_of(const char *path);
uint64_t pol_estimate_tokens(const pol_request *req);
void pol_sha256_hex(const void *data, size_t len, char hex[65]);
int pol_key_load(const pol_tier *t, char *key, size_t n, kv_err *err);
/* 1 when url is http:// (or https://) to 127.0.0.0/8, [::1] or localhost. */
int pol_url_loopback(const char *url);

/* ---- paths (path.c) ---- */
/* Lexical normalization of a relative path (no filesystem): KV_EDENIED for
 * absolute paths and ".." above the top. */
int pol_path_normalize(const char *path, char *out, size_t cap, kv_err *err);
/* The request's file paths as the rules see them: rel[i] for files[i],
 * resolved against p->project (pol_path_resolve) or, without a project,
 * normalized. Fails (KV_EDENIED, naming the path) when any file leads out. */
typedef struct pol_paths { char **rel; size_t n; } pol_paths;
int pol_request_paths(const pol_policy *p, const pol_request *req, pol_paths *out, kv_err *err);
void pol_paths_free(pol_paths *ps);

/* ---- databases (db.c) and the two-step outbound record (audit.c) ---- */
struct sqlite3;
/* path NULL = $XDG_DATA_HOME/kvasir/<fallback_name>; used (may be NULL) gets the path opened. */
int pol_db_open(const char *path, const char *fallback_name, struct sqlite3 **db, char *used, size_t n, kv_err *err);
/* A row is written before the bytes go out (status 'sending') and completed after. */
int pol_audit_outbound_begin(pol_audit *a, const char *project, const char *rule, const char *tier,
                             const char *endpoint, const pol_payload *pl, uint64_t tokens, double cost, int64_t *id,
                             kv_err *err);
int pol_audit_outbound_end(pol_audit *a, int64_t id, const char *status, int http_status, uint64_t extra_tokens,
                           double extra_cost, kv_err *err);

/* ---- redaction (redact.c, assign.c) ---- */
/* Shannon entropy in bits per character of s[0..n). */
double pol_entropy(const char *s, size_t n);
/* How values after secret-like names are judged: typed text (a question:
 * "password is X", one word), configuration (an unquoted value is the rest
 * of the line), code (an unquoted value is an expression). */
enum { POL_FMT_TEXT = 0, POL_FMT_CONFIG, POL_FMT_CODE };
int pol_format_of(const char *path); /* by extension; unknown = configuration */
/* 1 when name[0..n) names a secret (password, api_key, clientSecret, …) and
 * says nothing that makes it a non-secret (api_key_env, max_tokens, …). */
int pol_name_is_secret(const char *name, size_t n);
/* At text[i], the start of an identifier: 1 when it is a secret-like name
 * with a literal value assigned (=, :, :=, =>, XML element, #define, "is"
 * in text), the value being text[*v0..*v1) (inside its quotes). */
int pol_assign_at(const char *text, size_t len, size_t i, int fmt, size_t *v0, size_t *v1);
/* pol_redact with the rules for typed text. */
int pol_redact_question(const char *text, size_t len, char **out, size_t *out_len, pol_redactions *counts,
                        kv_err *err);

#endif
