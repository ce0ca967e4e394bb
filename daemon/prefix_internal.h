/*
 * prefix_internal.h — a repository's resident prefix (prefix.c).
 */
#ifndef KVASIR_DAEMON_PREFIX_INTERNAL_H
#define KVASIR_DAEMON_PREFIX_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "daemon/model_internal.h"

/* The system message for repo from its index; *stable: the paths of the
 * stable files it holds (array, caller owns). */
int dmn_prefix_build_text(const char *repo, idx_index *ix, char **out, cJSON **stable, kv_err *err);
/* The context size for model: the tier's `context` when > 0, else the GGUF
 * context_length; cut to the KV budget. */
int dmn_prefix_n_ctx(const eng_model *model, int tier_context);
/* Tokens of toks[0..n) that are the system message rendered alone. */
size_t dmn_prefix_len(eng_model *model, const char *system, const int32_t *toks, size_t n);
/* Make pre->ctx hold toks[0..p): in place, forked from the store (RAM or a
 * snapshot), or computed and then stored. Sets pre->prefix_source. */
void dmn_prefix_ensure(dmn_backend *b, dmn_prefix *pre, const int32_t *toks, size_t p);

#endif
