/*
 * policy — decides where a request may be answered (a local tier, a hosted
 * tier, or nowhere), prepares exactly what may leave the machine, enforces
 * budgets, talks to OpenAI-compatible endpoints, and records every decision
 * and every outbound byte in an audit database. Prefix: pol_.
 *
 * Typical use by the daemon, before every generation:
 *
 *   pol_policy *p;  pol_policy_open(&p, project_root, &err);   // once per project
 *   pol_decision d; pol_decide(p, &req, &d, &err);              // which tier, why
 *   if (d.tier_kind == POL_TIER_REFUSE) -> answer "refused by rule d.rule"
 *   if (d.tier_kind == POL_TIER_LOCAL)  -> generate with model d.model
 *   if (d.tier_kind == POL_TIER_HOSTED) {
 *     pol_payload *pl; pol_payload_prepare(p, &req, &pl, &err);   // strip + redact
 *     pol_send_result r; pol_hosted_send(p, audit, &d, pl, &opts, &r, &err);
 *     if (r.fallback) -> generate with r.fallback_tier, prefix answer with r.note
 *   }
 *   on config change: pol_policy_reload(p, &err)  // keeps the old policy on error
 *
 * Invariants: a pol_policy is immutable between reloads and may be shared by
 * threads for pol_decide / pol_payload_prepare; pol_policy_reload must not
 * run concurrently with them. Nothing is ever sent when the project policy
 * says `offline: true`, when a budget is exhausted, or when the decision is
 * not a hosted tier; every outbound attempt is audited before it is sent.
 * The schema of config.yaml and policy.yaml is documented in docs/policy.md.
 */
#ifndef KVASIR_POLICY_H
#define KVASIR_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *pol_version(void);

/* ---- requests and decisions ------------------------------------------- */

typedef enum { POL_KIND_ASK = 0, POL_KIND_COMPLETE, POL_KIND_TRIAGE, POL_KIND__COUNT } pol_kind;
typedef enum { POL_DEPTH_FAST = 0, POL_DEPTH_THINK, POL_DEPTH_THINK_MAX, POL_DEPTH__COUNT } pol_depth;
typedef enum { POL_TIER_LOCAL = 0, POL_TIER_HOSTED, POL_TIER_REFUSE } pol_tier_kind;

/* Parse "ask"/"complete"/"triage" and "fast"/"think"/"think-max"; -1 if unknown. */
int pol_kind_parse(const char *s);
int pol_depth_parse(const char *s);
const char *pol_kind_name(pol_kind k);
const char *pol_depth_name(pol_depth d);

/* One file of the request's context. path is relative to the project root
 * ("src/main.c") or absolute; language may be NULL (then derived from the
 * extension). Every rule, never_send and label_paths glob sees the path as
 * pol_path_resolve resolves it against the policy's project (symlinks
 * followed, "." ".." "//" gone), never the string as given: a path that
 * resolves outside the project makes pol_decide / pol_payload_prepare /
 * pol_explain fail with KV_EDENIED naming it. Without a project directory
 * the path must be relative and is normalized lexically (".." above the
 * top and absolute paths are refused). */
typedef struct pol_file {
  const char *path;
  const char *content;
  size_t len;
  const char *language;
} pol_file;

/* Where an excerpt (a retrieved chunk, the lines around the cursor) was cut
 * from: the whole file's text and the 1-based line the excerpt starts at.
 * Given one, pol_payload_prepare redacts the whole file (pol_redact_file)
 * and sends the excerpt's lines of that output, so a secret whose context
 * (a BEGIN marker, the name before a value) lies outside the excerpt is
 * still caught. Used only when the excerpt's first line matches the file
 * at line0 (a stale index falls back to redacting the excerpt alone). */
typedef struct pol_file_origin {
  const char *text; /* NULL = none for this file */
  size_t len;
  unsigned line0;
} pol_file_origin;

typedef struct pol_request {
  pol_kind kind;
  pol_depth depth;
  const char *question;        /* may be NULL */
  const pol_file *files;
  size_t n_files;
  const pol_file_origin *origins; /* NULL, or n_files entries parallel to files */
  const char *const *labels;   /* labels set by the caller (e.g. --label) */
  size_t n_labels;
  uint64_t context_tokens;     /* 0 = estimate from bytes (len/4) */
  int has_draft;               /* 1 when draft_logprob is set */
  double draft_logprob;        /* mean token log-probability of a local draft */
  /* POL_KIND_COMPLETE: the editor's cursor, a byte offset into
   * files[0].content (the lines around the cursor, whole lines; its
   * origin, when given, is the whole file). Unset: the end of files[0]. */
  int has_cursor;
  size_t cursor;
} pol_request;

#define POL_MAX_REASONS 16
typedef struct pol_decision {
  pol_tier_kind tier_kind;
  char tier[64];          /* "flash", "pro", a hosted tier name, or "refuse" */
  char rule[64];          /* the rule that fired, or "default" */
  char model[256];        /* model of the tier ("" = the daemon's default) */
  int offline_downgraded; /* 1 when a hosted decision became local because offline */
  uint64_t context_tokens;/* the estimate the rules saw */
  size_t n_reasons;       /* why: one line per evaluated rule and the outcome */
  char reasons[POL_MAX_REASONS][256];
} pol_decision;

/* ---- loading ----------------------------------------------------------- */

typedef struct pol_policy pol_policy;

/* Load $XDG_CONFIG_HOME/kvasir/config.yaml (absent = built-in tiers only)
 * and <project_dir>/.kvasir/policy.yaml (absent = default flash, no rules,
 * default never_send). Errors name file:line:column and the field. */
int pol_policy_open(pol_policy **out, const char *project_dir, kv_err *err);
/* Same, from buffers (tests, fuzzing). Either buffer may be NULL (= absent);
 * the names are used in error messages; project_dir may be NULL. */
int pol_policy_from_buffers(pol_policy **out, const char *config_yaml, size_t config_len, const char *config_name,
                            const char *policy_yaml, size_t policy_len, const char *policy_name,
                            const char *project_dir, kv_err *err);
/* Re-read the files pol_policy_open read. On error *p is unchanged (the last
 * good policy stays in force) and the error is returned. */
int pol_policy_reload(pol_policy *p, kv_err *err);
void pol_policy_free(pol_policy *p);

/* Walk up from dir to find a directory holding .kvasir/policy.yaml; writes it
 * into out. KV_ENOTFOUND when none up to /. */
int pol_find_project(const char *dir, char *out, size_t n, kv_err *err);

/* A local tier of config.yaml as the daemon loads it: `model` (a registered
 * model's name or a GGUF path; NULL = the daemon's default model), `context`
 * (0 = the model's own), and where the tier was declared (config file,
 * line, col; 0 for a built-in tier). KV_ENOTFOUND when there is no local
 * tier of that name. */
typedef struct pol_local_tier {
  const char *model;
  uint64_t context;
  const char *file;
  int line, col;
} pol_local_tier;
int pol_tier_local(const pol_policy *p, const char *name, pol_local_tier *out);
/* The local tier a hosted tier falls back to (its `fallback`, "flash" when
 * unset or when name is not a hosted tier). */
const char *pol_tier_fallback(const pol_policy *p, const char *name);
/* config.yaml `model_memory:` — the cap on loaded local models (files + KV):
 * bytes (*bytes) or a fraction of RAM (*frac); both 0 when not set. */
void pol_policy_model_memory(const pol_policy *p, uint64_t *bytes, double *frac);
/* Parses a size for model_memory / kvasird --model-memory: "75%", "8GiB",
 * "512MiB", "64KiB", "1234" (bytes; also KB/MB/GB as powers of 1000).
 * 0, or KV_EINVAL. */
int pol_parse_size(const char *s, uint64_t *bytes, double *frac);

const char *pol_policy_project(const pol_policy *p); /* absolute root or "" */
const char *pol_policy_file(const pol_policy *p);    /* policy.yaml path or "" */
int pol_policy_offline(const pol_policy *p);

/* ---- paths --------------------------------------------------------------- */

typedef struct pol_resolved {
  size_t root;     /* index in roots of the (deepest) root holding the path */
  char abs[4096];  /* canonical absolute path, every symlink followed */
  char rel[4096];  /* relative to that root: '/'-separated, no ".", "..", "//"; "" = the root */
  int exists;      /* 1 when the file itself exists (0: resolved through its parent) */
} pol_resolved;

/* Resolve path (absolute, or relative to roots[0]) the way the kernel would
 * open it: realpath, symlinks followed; a file not on disk yet is resolved
 * through its deepest existing ancestor. Returns KV_EDENIED (message names
 * the path and where it leads) when the result is not a registered root or
 * below one, or when it passes through a dangling symlink; roots are
 * canonicalized the same way (a root that does not exist is compared as
 * spelled). The daemon calls this on every path an editor sends before it
 * reads the file, reads out->abs, and passes out->rel as pol_file.path. */
int pol_path_resolve(const char *const *roots, size_t nroots, const char *path, pol_resolved *out, kv_err *err);

/* ---- deciding ------------------------------------------------------------ */

/* First matching rule wins; no match = the policy's `default`. A hosted
 * decision under `offline: true` becomes the tier's local fallback (flagged
 * and explained). Fills every field of *out. */
int pol_decide(const pol_policy *p, const pol_request *req, pol_decision *out, kv_err *err);

/* gitignore-style match of one pattern against a '/'-separated relative path
 * (leading '/' anchors, no '/' = any depth, '**', '*', '?', [a-z], [!x],
 * trailing '/' = directory, a pattern also matches everything below a
 * matched directory). Returns 1/0. */
int pol_glob_match(const char *pattern, const char *path);
/* A list of patterns with gitignore semantics: the last matching pattern
 * wins and a leading '!' negates. Returns 1/0. */
int pol_globs_match(const char *const *patterns, size_t n, const char *path);

/* ---- what may leave the machine ---------------------------------------- */

typedef enum {
  POL_RED_PRIVATE_KEY = 0, POL_RED_AWS, POL_RED_GCP, POL_RED_GITHUB, POL_RED_SLACK, POL_RED_OPENAI,
  POL_RED_URL_PASSWORD, POL_RED_JWT, POL_RED_ENTROPY,
  POL_RED_SECRET_VALUE, /* a value assigned to a secret-like name (password, token, api_key, …) */
  POL_RED__COUNT
} pol_redaction_kind;
const char *pol_redaction_name(pol_redaction_kind k);

typedef struct pol_redactions {
  unsigned counts[POL_RED__COUNT];
  unsigned total;
} pol_redactions;

/* Replace secrets in text with "[REDACTED:<kind>]"; *out is malloc'd and
 * NUL-terminated. counts (may be NULL) are added to. A redacted span keeps
 * its newlines (marker, then one '\n' per line covered), so the output has
 * the input's line count. Values of secret-like names are judged as in a
 * configuration file (pol_redact_file knows the format from the path). */
int pol_redact(const char *text, size_t len, char **out, size_t *out_len, pol_redactions *counts, kv_err *err);

/* Redact a whole file before it is chunked, indexed or sent: the rules of
 * pol_redact with path's format (by extension: code, where an unquoted
 * value is an expression, or configuration, where it is a literal), same
 * line count as the input, so path:line of any chunk cut from the output
 * stays valid. counts->counts[POL_RED_PRIVATE_KEY] > 0 says the file holds
 * key material (a caller may then treat the whole file as never_send).
 * path may be NULL (= configuration rules). */
int pol_redact_file(const char *path, const char *text, size_t len, char **out, size_t *out_len,
                    pol_redactions *counts, kv_err *err);

typedef struct pol_payload {
  char *body;              /* the exact JSON request body to POST */
  size_t body_len;
  char *prompt;            /* the user message after stripping + redaction
                              (a completion: the redacted text before the cursor) */
  size_t prompt_len;
  char *suffix;            /* a completion: the redacted text after the cursor */
  const char *endpoint;    /* path below base_url: "chat/completions", or
                              "completions" for POL_KIND_COMPLETE */
  char **stripped;         /* paths left out by never_send */
  size_t n_stripped;
  pol_redactions redactions;
} pol_payload;

/* Build the outbound request for a hosted tier. A completion
 * (POL_KIND_COMPLETE) is a /completions body {"prompt", "suffix"} cut at
 * req->cursor from the redaction of files[0] (of its whole file when an
 * origin is given); KV_EDENIED, and nothing to send, when files[0] matches
 * never_send or a redaction touches the cursor's line (the cut would split
 * a secret's marker or show part of it): the caller completes locally.
 * Otherwise a chat request: files whose resolved
 * path matches never_send are left out (listed in stripped, by resolved
 * path); the question (with the rules for typed text: "my password is …")
 * and each file (pol_redact_file with its resolved path) are redacted on
 * their own, so a key block open in one file never runs into the next.
 * model / max_tokens fill the JSON body ("stream": true). */
int pol_payload_prepare(const pol_policy *p, const pol_request *req, const char *model, unsigned max_tokens,
                        pol_payload **out, kv_err *err);
void pol_payload_free(pol_payload *pl);

/* ---- audit, budgets, calibration ---------------------------------------- */

typedef struct pol_audit pol_audit;
/* path NULL = $XDG_DATA_HOME/kvasir/audit.db (created, dir 0700). */
int pol_audit_open(pol_audit **out, const char *path, kv_err *err);
void pol_audit_close(pol_audit *a);
int pol_audit_decision(pol_audit *a, const char *project, const pol_request *req, const pol_decision *d, kv_err *err);

/* One outbound request, as recorded. */
typedef struct pol_audit_row {
  int64_t id;
  int64_t time;            /* unix seconds */
  const char *project, *rule, *tier, *endpoint, *status;
  uint64_t bytes;
  char sha256[65];         /* hex of crypto_hash_sha256(body) */
  unsigned redactions;
  const char *redaction_detail; /* JSON object kind -> count */
  uint64_t tokens;
  double cost;
  int http_status;
} pol_audit_row;
typedef int (*pol_audit_cb)(const pol_audit_row *row, void *user); /* nonzero stops */
/* Outbound rows, newest last; project NULL = all; limit 0 = all. */
int pol_audit_list(pol_audit *a, const char *project, unsigned limit, pol_audit_cb cb, void *user, kv_err *err);

/* Today's (UTC day) outbound usage of a project. */
typedef struct pol_usage { uint64_t requests, tokens; double cost; } pol_usage;
int pol_budget_usage(pol_audit *a, const char *project, pol_usage *out, kv_err *err);
/* KV_ELIMIT (message names the budget) when one more request of `tokens`
 * tokens costing `cost` would exceed the policy's per-day budget. */
int pol_budget_check(const pol_policy *p, pol_audit *a, uint64_t tokens, double cost, kv_err *err);

/* `kvasir eval needle` results: accuracy at a context length, per model and
 * project, in $XDG_DATA_HOME/kvasir/calibration.db (a later record for the
 * same (model, project, ctx) replaces the earlier). */
int pol_calibration_record(const char *model, const char *project, uint64_t ctx, double accuracy, kv_err *err);
/* The largest measured context below the first length whose accuracy falls
 * under min_accuracy (all measured lengths pass = the largest measured).
 * KV_ENOTFOUND when nothing usable was recorded. */
int pol_calibration_limit(const char *model, const char *project, double min_accuracy, uint64_t *out, kv_err *err);

/* ---- hosted client ------------------------------------------------------- */

/* Called with each streamed token (content delta) in order; nonzero aborts. */
typedef int (*pol_token_cb)(const char *tok, size_t len, void *user);

typedef struct pol_send_result {
  int fallback;              /* 1: the hosted call failed, answer locally */
  char fallback_tier[64];    /* the local tier to use ("flash" by default) */
  char note[384];            /* to show in the answer when fallback is set */
  int http_status;           /* last HTTP status (0 = none) */
  unsigned attempts;         /* requests actually sent */
  uint64_t tokens_streamed;
} pol_send_result;

/* Send pl to the hosted tier of decision d, streaming content deltas to cb
 * in order (cb may be NULL). Never connects when: the project is offline
 * (KV_EDENIED, even for a forged decision), d is not a hosted tier
 * (KV_EDENIED), the key is missing / not 0600 / inside the project, or the
 * per-day budget would be exceeded (KV_ELIMIT, budget named in err). Every
 * attempt is written to audit first (may be NULL only where budgets are not
 * used) with the length and sha256 of the exact body. Connection errors,
 * timeouts, 429 and 5xx are retried up to the tier's `retries` with
 * doubling backoff while no token has reached cb; worst case before giving
 * up: (retries + 1) * timeout_ms + backoffs. Returns 0 on success. On any
 * refusal or failure except KV_ECANCELED (cb returned nonzero) res->fallback
 * is 1: answer with res->fallback_tier and show res->note in the answer. */
int pol_hosted_send(const pol_policy *p, pol_audit *audit, const pol_decision *d, const pol_payload *pl,
                    pol_token_cb cb, void *user, pol_send_result *res, kv_err *err);

/* ---- explain ------------------------------------------------------------- */

/* Human-readable (or JSON when json=1) account of a decision for req: the
 * rule that fired and why, the inputs the rules saw, and — for a hosted tier —
 * what would be sent after stripping and redaction. Nothing is sent.
 * *out is malloc'd. */
int pol_explain(const pol_policy *p, const pol_request *req, int json, char **out, kv_err *err);

#ifdef __cplusplus
}
#endif
#endif
