/*
 * audit_internal.h — the two-step outbound record used by remote.c: a row
 * is written before the bytes go out and completed after.
 */
#ifndef KVASIR_POLICY_AUDIT_INTERNAL_H
#define KVASIR_POLICY_AUDIT_INTERNAL_H
#include "policy/policy.h"

int pol_audit_outbound_begin(pol_audit *a, const char *project, const char *rule, const char *tier,
                             const char *endpoint, const pol_payload *pl, uint64_t tokens, double cost, int64_t *id,
                             kv_err *err);
int pol_audit_outbound_end(pol_audit *a, int64_t id, const char *status, int http_status, uint64_t extra_tokens,
                           double extra_cost, kv_err *err);
double pol_entropy(const char *s, size_t n);
#endif
