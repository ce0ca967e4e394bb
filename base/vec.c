/*
 * vec.c — kv_grow (see vec.h): doubling growth with overflow checks.
 */
#include "base/vec.h"

#include "base/base.h"

#include <stdint.h>
#include <stdlib.h>

int kv_grow(void **p, size_t *cap, size_t need, size_t size) {
  if (need <= *cap) return 0;
  if (size == 0) return KV_EINVAL;
  size_t c = *cap ? *cap : 8;
  while (c < need) {
    if (c > SIZE_MAX / 2) {
      c = need;
      break;
    }
    c *= 2;
  }
  if (c > SIZE_MAX / size) return KV_ENOMEM;
  void *q = realloc(*p, c * size);
  if (!q) return KV_ENOMEM;
  *p = q;
  *cap = c;
  return 0;
}
