/*
 * policy.h — the daemon's policy gate (policy.c), as ask.c uses it: decide,
 * audit, refuse or send to a hosted tier before any generation. The gate's
 * lifecycle (new, free, reload, stats) and policy.explain are declared in
 * daemon/internal.h. Internal to the daemon.
 */
#ifndef KVASIR_DAEMON_POLICY_H
#define KVASIR_DAEMON_POLICY_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "daemon/internal.h"

#define DMN_GATE_MAX_FILES 40

/* The context an ask would give a model: one excerpt per file, by path
 * relative to the repository (what never_send globs are matched against). */
typedef struct dmn_gate_ctx {
  size_t n;
  char *path[DMN_GATE_MAX_FILES];
  char *text[DMN_GATE_MAX_FILES];
  size_t len[DMN_GATE_MAX_FILES];
  /* the whole file each excerpt was cut from (NULL: unknown) and the line
   * the excerpt starts at: redaction then sees the secret's context even
   * when it lies outside the excerpt (a PEM body without its BEGIN) */
  char *origin[DMN_GATE_MAX_FILES];
  size_t origin_len[DMN_GATE_MAX_FILES];
  unsigned line0[DMN_GATE_MAX_FILES];
  /* an excerpt marked by dmn_gate_origin_lazy has its whole file read only
   * when a payload goes to a hosted tier (most asks stay local), once per
   * path: read_file(read_ud, path, &text, &len) gives a malloc'd copy */
  int lazy[DMN_GATE_MAX_FILES];
  int (*read_file)(void *ud, const char *path, char **text, size_t *len);
  void *read_ud;
  /* what is asked: POL_KIND_ASK (0, the default) or POL_KIND_COMPLETE, whose
   * one excerpt holds the lines around the cursor, at byte `cursor` */
  int kind;
  size_t cursor;
  int max_tokens; /* what a hosted tier may generate; 0 = 512 */
} dmn_gate_ctx;

typedef struct dmn_gate_io {
  int (*on_token)(void *user, const char *piece, size_t len); /* nonzero = canceled */
  void *user;
} dmn_gate_io;

int dmn_gate_add(dmn_gate_ctx *g, const char *path, const char *text, size_t len);
/* The last excerpt added came from lines line0.. of the whole file `file`
 * (copied; file may be NULL). */
int dmn_gate_origin(dmn_gate_ctx *g, const char *file, size_t len, unsigned line0);
/* The last excerpt added starts at line0 of its file, which g->read_file
 * reads if the payload goes to a hosted tier. */
void dmn_gate_origin_lazy(dmn_gate_ctx *g, unsigned line0);
void dmn_gate_ctx_free(dmn_gate_ctx *g);

/* The gate's caches (each repo's parsed policy, read again when its files
 * change, and a pool of audit.db connections) are safe from any thread.
 * Decide for an ask on `repo`; adds "tier" and "rule" (and "fallback" when
 * a hosted tier failed, "policy_warning" when the policy files are broken
 * and the last good policy was used) to res. *answered = 1 when a hosted
 * tier streamed the answer through io (then res also has its "model"); 0 = answer locally. KV_EDENIED when the policy
 * refuses (message names the rule) or cannot be loaded. A completion the
 * payload step will not send (its file is never_send, a secret on the
 * cursor's line) is completed locally: res gets the local "tier" and a
 * "fallback" saying why. */
int dmn_gate_run(dmn_gate *g, const char *repo, const char *question, const char *depth,
                 const dmn_gate_ctx *gc, dmn_gate_io *io, cJSON *res, int *answered, kv_err *err);

#endif
