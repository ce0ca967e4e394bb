/*
 * cmd_policy.c — `kvasir policy explain|check` and `kvasir audit`, run
 * offline against the policy module: explain finds .kvasir/policy.yaml
 * upward from the current directory, reads the --file arguments, and shows
 * which rule fires, why, and what would leave the machine — without sending
 * anything. audit lists the outbound rows of audit.db.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/cli.h"
#include "policy/policy.h"

#define MAX_FILES 256
#define MAX_LABELS 32
#define FILE_MAX (8u << 20)

static void explain_usage(FILE *o) {
  fprintf(o,
          "usage: kvasir policy explain [--kind ask|complete|triage] [--depth fast|think|think-max]\n"
          "                             [--file PATH]... [--label L]... [--tokens N] [--draft-logprob X]\n"
          "                             [--json] \"question\"\n"
          "       kvasir policy check      validate config.yaml and .kvasir/policy.yaml\n\n"
          "Run inside a project: .kvasir/policy.yaml is found upward from the current directory.\n"
          "explain shows which rule fires and why, and what would be sent after never_send\n"
          "stripping and redaction. Nothing is sent.\n");
}

static int open_here(pol_policy **p, kv_err *err) {
  char root[PATH_MAX];
  if (pol_find_project(".", root, sizeof root, err) != 0) {
    fprintf(stderr, "kvasir policy: %s (using built-in defaults)\n", err->msg);
    return pol_policy_open(p, NULL, err);
  }
  return pol_policy_open(p, root, err);
}

/* Path of f relative to the project root, when inside it. */
static const char *rel_to(const char *root, const char *f, char *buf, size_t n) {
  char abs[PATH_MAX];
  if (!root[0] || !realpath(f, abs)) return f;
  size_t l = strlen(root);
  if (strncmp(abs, root, l) || abs[l] != '/') return f;
  snprintf(buf, n, "%s", abs + l + 1);
  return buf;
}

static int explain(int argc, char **argv) {
  pol_request req;
  memset(&req, 0, sizeof req);
  const char *fnames[MAX_FILES], *labels[MAX_LABELS], *question = NULL;
  size_t nf = 0, nl = 0;
  int json = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help")) { explain_usage(stdout); return 0; }
    if (!strcmp(a, "--json")) { json = 1; continue; }
    if (a[0] == '-' && a[1] == '-' && !v) { fprintf(stderr, "kvasir policy explain: %s needs a value\n", a); return 2; }
    if (!strcmp(a, "--kind")) {
      int k = pol_kind_parse(v);
      if (k < 0) { fprintf(stderr, "kvasir policy explain: --kind: unknown '%s'\n", v); return 2; }
      req.kind = (pol_kind)k, i++;
    } else if (!strcmp(a, "--depth")) {
      int d = pol_depth_parse(v);
      if (d < 0) { fprintf(stderr, "kvasir policy explain: --depth: unknown '%s'\n", v); return 2; }
      req.depth = (pol_depth)d, i++;
    } else if (!strcmp(a, "--file")) {
      if (nf == MAX_FILES) { fprintf(stderr, "kvasir policy explain: more than %d files\n", MAX_FILES); return 2; }
      fnames[nf++] = v, i++;
    } else if (!strcmp(a, "--label")) {
      if (nl == MAX_LABELS) { fprintf(stderr, "kvasir policy explain: more than %d labels\n", MAX_LABELS); return 2; }
      labels[nl++] = v, i++;
    } else if (!strcmp(a, "--tokens")) {
      req.context_tokens = strtoull(v, NULL, 10), i++;
    } else if (!strcmp(a, "--draft-logprob")) {
      req.has_draft = 1, req.draft_logprob = strtod(v, NULL), i++;
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "kvasir policy explain: unknown option %s\n", a);
      return 2;
    } else question = a;
  }
  kv_err err;
  pol_policy *p;
  if (open_here(&p, &err) != 0) { fprintf(stderr, "kvasir policy explain: %s\n", err.msg); return 1; }
  pol_file files[MAX_FILES];
  char *bufs[MAX_FILES] = {0}, rels[MAX_FILES][PATH_MAX];
  int rc = 0;
  for (size_t i = 0; i < nf; i++) {
    size_t len;
    if (kv_read_file(fnames[i], FILE_MAX, &bufs[i], &len, &err) != 0) {
      fprintf(stderr, "kvasir policy explain: %s\n", err.msg);
      rc = 1;
      break;
    }
    files[i] = (pol_file){rel_to(pol_policy_project(p), fnames[i], rels[i], sizeof rels[i]), bufs[i], len, NULL};
  }
  if (!rc) {
    req.question = question, req.files = files, req.n_files = nf, req.labels = labels, req.n_labels = nl;
    char *out;
    if (pol_explain(p, &req, json, &out, &err) != 0) {
      fprintf(stderr, "kvasir policy explain: %s\n", err.msg);
      rc = 1;
    } else {
      fputs(out, stdout);
      if (json) fputc('\n', stdout);
      free(out);
    }
  }
  for (size_t i = 0; i < nf; i++) free(bufs[i]);
  pol_policy_free(p);
  return rc;
}

static int check(void) {
  kv_err err;
  pol_policy *p;
  if (open_here(&p, &err) != 0) { fprintf(stderr, "kvasir policy check: %s\n", err.msg); return 1; }
  printf("ok: %s%s\n", pol_policy_file(p)[0] ? pol_policy_file(p) : "(no project policy)",
         pol_policy_offline(p) ? " (offline)" : "");
  pol_policy_free(p);
  return 0;
}

int cmd_policy(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    explain_usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "explain")) return explain(argc - 1, argv + 1);
  if (!strcmp(argv[1], "check")) return cli_has_flag(argc, argv, "--help") ? (explain_usage(stdout), 0) : check();
  fprintf(stderr, "kvasir policy: unknown subcommand '%s'\n", argv[1]);
  explain_usage(stderr);
  return 2;
}

typedef struct list_ctx { int json; cJSON *arr; unsigned n; } list_ctx;

static int print_row(const pol_audit_row *r, void *ud) {
  list_ctx *c = ud;
  c->n++;
  if (c->json) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return 1;
    cJSON_AddNumberToObject(o, "id", (double)r->id);
    cJSON_AddNumberToObject(o, "time", (double)r->time);
    cJSON_AddStringToObject(o, "project", r->project);
    cJSON_AddStringToObject(o, "rule", r->rule);
    cJSON_AddStringToObject(o, "tier", r->tier);
    cJSON_AddStringToObject(o, "endpoint", r->endpoint);
    cJSON_AddNumberToObject(o, "bytes", (double)r->bytes);
    cJSON_AddStringToObject(o, "sha256", r->sha256);
    cJSON_AddNumberToObject(o, "redactions", r->redactions);
    cJSON *d = cJSON_Parse(r->redaction_detail);
    if (d) cJSON_AddItemToObject(o, "redaction_detail", d);
    cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(o, "cost", r->cost);
    cJSON_AddStringToObject(o, "status", r->status);
    cJSON_AddNumberToObject(o, "http_status", r->http_status);
    cJSON_AddItemToArray(c->arr, o);
    return 0;
  }
  char when[32];
  time_t t = (time_t)r->time;
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", gmtime_r(&t, &tm));
  printf("%s  %-14s %-16s %7llu B  sha256 %.16s…  redactions %u  %s (HTTP %d)\n    %s  %s\n", when, r->tier, r->rule,
         (unsigned long long)r->bytes, r->sha256, r->redactions, r->status, r->http_status, r->project, r->endpoint);
  return 0;
}

int cmd_audit(int argc, char **argv) {
  int json = 0, all = 0;
  unsigned limit = 50;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      printf("usage: kvasir audit [--json] [--all] [--limit N]\n\n"
             "Lists what left the machine (outbound requests recorded in $XDG_DATA_HOME/kvasir/audit.db):\n"
             "time, project, rule, tier, endpoint, bytes, sha256 of the body, redactions, status.\n"
             "Inside a project only its rows are shown unless --all; --limit 0 shows every row.\n");
      return 0;
    }
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--all")) all = 1;
    else if (!strcmp(argv[i], "--limit") && i + 1 < argc) limit = (unsigned)strtoul(argv[++i], NULL, 10);
    else { fprintf(stderr, "kvasir audit: unknown option %s\n", argv[i]); return 2; }
  }
  char root[PATH_MAX];
  kv_err err;
  const char *project = (!all && pol_find_project(".", root, sizeof root, &err) == 0) ? root : NULL;
  pol_audit *a;
  if (pol_audit_open(&a, NULL, &err) != 0) { fprintf(stderr, "kvasir audit: %s\n", err.msg); return 1; }
  list_ctx c = {json, json ? cJSON_CreateArray() : NULL, 0};
  int rc = pol_audit_list(a, project, limit, print_row, &c, &err);
  pol_audit_close(a);
  if (rc) { fprintf(stderr, "kvasir audit: %s\n", err.msg); cJSON_Delete(c.arr); return 1; }
  if (json) {
    char *s = cJSON_Print(c.arr);
    if (s) puts(s);
    free(s);
    cJSON_Delete(c.arr);
  } else if (c.n == 0) printf("nothing has left the machine%s.\n", project ? " for this project" : "");
  return 0;
}
