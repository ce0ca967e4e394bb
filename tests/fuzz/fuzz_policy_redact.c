/*
 * fuzz_policy_redact.c — pol_redact on arbitrary bytes: no crash, output
 * length bounded, and redacting the output again changes nothing (a
 * "[REDACTED:kind]" marker never hides a second secret or breaks the
 * surrounding text in a way a second pass would notice).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *a = NULL, *b = NULL;
  size_t al = 0, bl = 0;
  kv_err err;
  pol_redactions c = {{0}, 0};
  if (pol_redact((const char *)data, size, &a, &al, &c, &err) != 0) return 0;
  if (al > size + 32 * (size_t)c.total + 1) abort(); /* each marker is at most ~30 bytes */
  pol_redactions c2 = {{0}, 0};
  if (pol_redact(a, al, &b, &bl, &c2, &err) == 0) {
    if (c2.total != c2.counts[POL_RED_ENTROPY]) abort();
    free(b);
  }
  free(a);
  return 0;
}
