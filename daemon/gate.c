/*
 * gate.c — the policy gate the daemon passes before every generation. The
 * project's policy (.kvasir/policy.yaml + the user's config.yaml) decides
 * where an ask may be answered: `refuse` ends it with an error naming the
 * rule; a hosted tier gets the request with never_send files stripped and
 * secrets redacted, streamed back as ask.token, and falls back to the local
 * tier (said in the answer) when the endpoint fails; a local tier answers
 * with the engine. Every decision is written to the audit database before
 * anything is generated or sent.
 *
 * Invariants: nothing leaves the machine except through pol_hosted_send
 * (which re-checks offline, budgets and keys and audits the exact bytes);
 * a policy that fails to load refuses the ask (a broken policy must not
 * silently widen what may be sent).
 */
#include <stdlib.h>
#include <string.h>

#include "daemon/gate.h"

#if DMN_HAVE_POLICY
#include "policy/policy.h"

void dmn_gate_ctx_free(dmn_gate_ctx *g) {
  for (size_t i = 0; i < g->n; i++) {
    free(g->path[i]);
    free(g->text[i]);
  }
  g->n = 0;
}

int dmn_gate_add(dmn_gate_ctx *g, const char *path, const char *text, size_t len) {
  if (g->n >= DMN_GATE_MAX_FILES) return 0; /* the excerpts given to the model are capped too */
  char *p = strdup(path ? path : "");
  char *t = malloc(len + 1);
  if (!p || !t) {
    free(p);
    free(t);
    return KV_ENOMEM;
  }
  memcpy(t, text ? text : "", len);
  t[len] = 0;
  g->path[g->n] = p;
  g->text[g->n] = t;
  g->len[g->n] = len;
  g->n++;
  return 0;
}

static int stream_cb(const char *tok, size_t len, void *user) {
  dmn_gate_io *io = user;
  return io->on_token(io->user, tok, len);
}

int dmn_gate_run(const char *repo, const char *question, const char *depth, const dmn_gate_ctx *gc,
                 dmn_gate_io *io, cJSON *res, int *answered, kv_err *err) {
  *answered = 0;
  int d = depth ? pol_depth_parse(depth) : POL_DEPTH_FAST;
  if (d < 0) return kv_err_set(err, KV_EINVAL, "ask: unknown depth '%s' (fast, think, think-max)", depth);
  pol_file files[DMN_GATE_MAX_FILES];
  memset(files, 0, sizeof files);
  for (size_t i = 0; i < gc->n; i++) {
    files[i].path = gc->path[i];
    files[i].content = gc->text[i];
    files[i].len = gc->len[i];
  }
  pol_request req;
  memset(&req, 0, sizeof req);
  req.kind = POL_KIND_ASK;
  req.depth = (pol_depth)d;
  req.question = question;
  req.files = files;
  req.n_files = gc->n;

  pol_policy *p = NULL;
  int rc = pol_policy_open(&p, repo, err);
  if (rc) {
    char why[sizeof err->msg]; /* err->msg can't be both the format's source and its destination */
    snprintf(why, sizeof why, "%s", err->msg);
    return kv_err_set(err, KV_EDENIED, "policy: %.400s (fix the policy; nothing was generated or sent)", why);
  }
  pol_decision dec;
  if ((rc = pol_decide(p, &req, &dec, err))) goto out;
  pol_audit *audit = NULL;
  kv_err ae;
  if (pol_audit_open(&audit, NULL, &ae) == 0) pol_audit_decision(audit, repo, &req, &dec, &ae);
  cJSON_AddStringToObject(res, "tier", dec.tier);
  cJSON_AddStringToObject(res, "rule", dec.rule);
  if (dec.tier_kind == POL_TIER_REFUSE) {
    rc = kv_err_set(err, KV_EDENIED, "refused by policy rule '%s' (%s)", dec.rule,
                    pol_policy_file(p)[0] ? pol_policy_file(p) : "default policy");
  } else if (dec.tier_kind == POL_TIER_HOSTED) {
    pol_payload *pl = NULL;
    rc = pol_payload_prepare(p, &req, dec.model, 512, &pl, err);
    if (!rc) {
      pol_send_result sr;
      memset(&sr, 0, sizeof sr);
      kv_err se;
      int src = pol_hosted_send(p, audit, &dec, pl, stream_cb, io, &sr, &se);
      if (src == KV_ECANCELED) {
        rc = kv_err_set(err, KV_ECANCELED, "ask canceled");
      } else if (src == 0 && !sr.fallback) {
        *answered = 1;
        cJSON_AddNumberToObject(res, "redactions", (double)pl->redactions.total);
        cJSON_AddNumberToObject(res, "stripped_files", (double)pl->n_stripped);
      } else {
        /* answer locally and say so */
        cJSON_ReplaceItemInObject(res, "tier", cJSON_CreateString(sr.fallback_tier[0] ? sr.fallback_tier : "flash"));
        cJSON_AddStringToObject(res, "fallback", sr.note[0] ? sr.note : se.msg);
      }
      pol_payload_free(pl);
    }
  }
  pol_audit_close(audit);
out:
  pol_policy_free(p);
  return rc;
}
#else
void dmn_gate_ctx_free(dmn_gate_ctx *g) { (void)g; }
int dmn_gate_add(dmn_gate_ctx *g, const char *path, const char *text, size_t len) { return 0; }
int dmn_gate_run(const char *repo, const char *question, const char *depth, const dmn_gate_ctx *gc,
                 dmn_gate_io *io, cJSON *res, int *answered, kv_err *err) {
  *answered = 0;
  return 0;
}
#endif
