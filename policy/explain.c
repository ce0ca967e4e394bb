/*
 * explain.c — pol_explain: what `kvasir policy explain` and the daemon's
 * policy.explain method show. It runs the same pol_decide and
 * pol_payload_prepare the real path runs, so the explanation cannot drift
 * from the behaviour; it never opens a connection. For a hosted decision
 * (or one downgraded only because the project is offline) it shows the
 * exact prompt that would leave, the files never_send removed, the
 * redaction counts, and the body's length and sha256 as the audit would
 * record them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "policy/internal.h"

int pol_explain(const pol_policy *p, const pol_request *req, int json, char **out, kv_err *err) {
  *out = NULL;
  pol_decision d;
  int rc = pol_decide(p, req, &d, err);
  if (rc) return rc;
  pol_paths ps; /* pol_decide resolved them already, so this cannot fail on a path */
  if ((rc = pol_request_paths(p, req, &ps, err))) return rc;
  /* The hosted tier the rules chose, even when offline keeps it local. */
  const char *hosted = NULL;
  const pol_tier *t = pol_tier_find(p, d.tier);
  if (d.tier_kind == POL_TIER_HOSTED) hosted = d.tier;
  else if (d.offline_downgraded && d.rule[0]) {
    for (size_t i = 0; i < p->n_rules; i++)
      if (!strcmp(p->rules[i].name, d.rule)) hosted = p->rules[i].tier;
    if (!strcmp(d.rule, "default")) hosted = p->default_tier;
  }
  pol_payload *pl = NULL;
  char withheld[512] = ""; /* a completion the payload step keeps local */
  if (hosted) {
    const pol_tier *ht = pol_tier_find(p, hosted);
    kv_err pe;
    rc = pol_payload_prepare(p, req, ht && ht->model ? ht->model : "", 0, &pl, &pe);
    if (rc == KV_EDENIED && req->kind == POL_KIND_COMPLETE) {
      snprintf(withheld, sizeof withheld, "%s", pe.msg);
      rc = 0;
    } else if (rc) {
      if (err) *err = pe;
      pol_paths_free(&ps);
      return rc;
    }
  }
  char sha[65] = "";
  if (pl) pol_sha256_hex(pl->body, pl->body_len, sha);
  if (json) {
    cJSON *r = cJSON_CreateObject(), *in = cJSON_CreateObject(), *files = cJSON_CreateArray(), *rs = cJSON_CreateArray();
    if (!r || !in || !files || !rs) {
      cJSON_Delete(r), cJSON_Delete(in), cJSON_Delete(files), cJSON_Delete(rs), pol_payload_free(pl);
      pol_paths_free(&ps);
      return kv_err_set(err, KV_ENOMEM, "out of memory");
    }
    cJSON_AddStringToObject(r, "project", p->project);
    cJSON_AddStringToObject(r, "policy_file", p->policy_path);
    cJSON_AddBoolToObject(r, "offline", p->offline);
    cJSON_AddStringToObject(r, "rule", d.rule);
    cJSON_AddStringToObject(r, "tier", d.tier);
    cJSON_AddStringToObject(r, "tier_kind", d.tier_kind == POL_TIER_LOCAL ? "local" : d.tier_kind == POL_TIER_HOSTED ? "hosted" : "refuse");
    cJSON_AddStringToObject(r, "model", d.model);
    cJSON_AddBoolToObject(r, "offline_downgraded", d.offline_downgraded);
    cJSON_AddItemToObject(r, "inputs", in);
    cJSON_AddStringToObject(in, "kind", pol_kind_name(req->kind));
    cJSON_AddStringToObject(in, "depth", pol_depth_name(req->depth));
    cJSON_AddNumberToObject(in, "context_tokens", (double)d.context_tokens);
    if (req->has_draft) cJSON_AddNumberToObject(in, "draft_logprob", req->draft_logprob);
    cJSON *labels = cJSON_AddArrayToObject(in, "labels");
    for (size_t i = 0; i < req->n_labels; i++) cJSON_AddItemToArray(labels, cJSON_CreateString(req->labels[i]));
    cJSON_AddItemToObject(in, "files", files);
    for (size_t i = 0; i < req->n_files; i++) {
      cJSON *f = cJSON_CreateObject();
      const char *path = ps.rel[i];
      cJSON_AddStringToObject(f, "path", path);
      if (strcmp(req->files[i].path, path)) cJSON_AddStringToObject(f, "given_path", req->files[i].path);
      cJSON_AddStringToObject(f, "language", req->files[i].language ? req->files[i].language : pol_language_of(path));
      cJSON_AddNumberToObject(f, "bytes", (double)req->files[i].len);
      cJSON_AddBoolToObject(f, "never_send", pol_globs_match((const char *const *)p->never_send.v, p->never_send.n, path));
      cJSON_AddItemToArray(files, f);
    }
    cJSON_AddItemToObject(r, "reasons", rs);
    for (size_t i = 0; i < d.n_reasons; i++) cJSON_AddItemToArray(rs, cJSON_CreateString(d.reasons[i]));
    if (pl) {
      cJSON *o = cJSON_AddObjectToObject(r, "outbound");
      cJSON_AddStringToObject(o, "tier", hosted);
      cJSON_AddBoolToObject(o, "would_send", !p->offline);
      cJSON_AddNumberToObject(o, "bytes", (double)pl->body_len);
      cJSON_AddStringToObject(o, "sha256", sha);
      cJSON *st = cJSON_AddArrayToObject(o, "stripped");
      for (size_t i = 0; i < pl->n_stripped; i++) cJSON_AddItemToArray(st, cJSON_CreateString(pl->stripped[i]));
      cJSON *rd = cJSON_AddObjectToObject(o, "redactions");
      for (int k = 0; k < POL_RED__COUNT; k++)
        if (pl->redactions.counts[k]) cJSON_AddNumberToObject(rd, pol_redaction_name(k), pl->redactions.counts[k]);
      cJSON_AddStringToObject(o, "prompt", pl->prompt);
      if (pl->suffix) cJSON_AddStringToObject(o, "suffix", pl->suffix);
      cJSON_AddStringToObject(o, "endpoint", pl->endpoint);
    }
    if (withheld[0]) cJSON_AddStringToObject(r, "withheld", withheld);
    *out = cJSON_Print(r);
    cJSON_Delete(r);
    pol_payload_free(pl);
    pol_paths_free(&ps);
    return *out ? 0 : kv_err_set(err, KV_ENOMEM, "out of memory");
  }
  kv_buf b = KV_BUF_INIT;
  kv_buf_printf(&b, "project:  %s\npolicy:   %s%s\n", p->project[0] ? p->project : "(none)",
      p->policy_path[0] ? p->policy_path : "(none, built-in defaults)", p->offline ? "  [offline]" : "");
  kv_buf_printf(&b, "request:  kind=%s depth=%s context=%llu tokens", pol_kind_name(req->kind), pol_depth_name(req->depth),
      (unsigned long long)d.context_tokens);
  if (req->has_draft) kv_buf_printf(&b, " draft_logprob=%.3f", req->draft_logprob);
  for (size_t i = 0; i < req->n_labels; i++) kv_buf_printf(&b, "%s%s", i ? "," : " labels=", req->labels[i]);
  kv_buf_printf(&b, "\n");
  for (size_t i = 0; i < req->n_files; i++) {
    const char *path = ps.rel[i];
    const char *lang = req->files[i].language ? req->files[i].language : pol_language_of(path);
    int same = !strcmp(req->files[i].path, path);
    kv_buf_printf(&b, "  file %s%s%s (%s, %zu bytes)%s\n", path, same ? "" : " given as ", same ? "" : req->files[i].path,
                  *lang ? lang : "unknown", req->files[i].len,
                  pol_globs_match((const char *const *)p->never_send.v, p->never_send.n, path) ? " [never_send]" : "");
  }
  kv_buf_printf(&b, "\nrules:\n");
  for (size_t i = 0; i < d.n_reasons; i++) kv_buf_printf(&b, "  %s\n", d.reasons[i]);
  kv_buf_printf(&b, "\nfired:    %s\ntier:     %s (%s)%s%s\n", d.rule, d.tier,
      d.tier_kind == POL_TIER_LOCAL ? "local" : d.tier_kind == POL_TIER_HOSTED ? "hosted" : "refused",
      d.model[0] ? "  model " : "", d.model);
  (void)t;
  if (pl) {
    kv_buf_printf(&b, "\noutbound to '%s'%s: %zu bytes, sha256 %s\n", hosted, p->offline ? " (NOT sent: offline)" : " (not sent by explain)",
        pl->body_len, sha);
    for (size_t i = 0; i < pl->n_stripped; i++) kv_buf_printf(&b, "  stripped (never_send): %s\n", pl->stripped[i]);
    kv_buf_printf(&b, "  redactions: %u", pl->redactions.total);
    for (int k = 0; k < POL_RED__COUNT; k++)
      if (pl->redactions.counts[k]) kv_buf_printf(&b, " %s=%u", pol_redaction_name(k), pl->redactions.counts[k]);
    kv_buf_printf(&b, "\n--- prompt as it would be sent (to /%s) ---\n%s\n--- end ---\n", pl->endpoint, pl->prompt);
    if (pl->suffix) kv_buf_printf(&b, "--- suffix as it would be sent ---\n%s\n--- end ---\n", pl->suffix);
  } else if (withheld[0]) {
    kv_buf_printf(&b, "\nnothing leaves the machine: %s.\n", withheld);
  } else {
    kv_buf_printf(&b, "\nnothing leaves the machine.\n");
  }
  pol_payload_free(pl);
  pol_paths_free(&ps);
  if (!kv_buf_ok(&b) || !(*out = kv_buf_detach(&b, NULL))) {
    kv_buf_free(&b);
    return kv_err_set(err, KV_ENOMEM, "out of memory");
  }
  return 0;
}
