/*
 * buf.c — the growable byte buffer (see buf.h for the invariants). Growth
 * doubles the capacity (at least 64 bytes) so n appends cost O(n) copies.
 */
#include "base/buf.h"

#include "base/base.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kv_buf_reserve(kv_buf *b, size_t extra) {
  if (extra > SIZE_MAX - b->len - 1) {
    b->oom = 1;
    return KV_ENOMEM;
  }
  size_t need = b->len + extra + 1;
  if (need <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
  char *p = realloc(b->data, cap);
  if (!p) {
    b->oom = 1;
    return KV_ENOMEM;
  }
  if (!b->data) p[0] = 0;
  b->data = p;
  b->cap = cap;
  return 0;
}

int kv_buf_append(kv_buf *b, const void *p, size_t n) {
  if (kv_buf_reserve(b, n)) return KV_ENOMEM;
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
  b->data[b->len] = 0;
  return 0;
}

int kv_buf_puts(kv_buf *b, const char *s) { return kv_buf_append(b, s, strlen(s)); }

int kv_buf_putc(kv_buf *b, char c) { return kv_buf_append(b, &c, 1); }

int kv_buf_vprintf(kv_buf *b, const char *fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  char small[256];
  int n = vsnprintf(small, sizeof small, fmt, ap2);
  va_end(ap2);
  if (n < 0) return KV_EINVAL;
  if ((size_t)n < sizeof small) return kv_buf_append(b, small, (size_t)n);
  if (kv_buf_reserve(b, (size_t)n)) return KV_ENOMEM;
  vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
  b->len += (size_t)n;
  return 0;
}

int kv_buf_printf(kv_buf *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = kv_buf_vprintf(b, fmt, ap);
  va_end(ap);
  return rc;
}

void kv_buf_reset(kv_buf *b) {
  b->len = 0;
  if (b->data) b->data[0] = 0;
}

void kv_buf_truncate(kv_buf *b, size_t n) {
  if (n < b->len) {
    b->len = n;
    b->data[n] = 0;
  }
}

char *kv_buf_detach(kv_buf *b, size_t *len) {
  if (!b->data && kv_buf_reserve(b, 0)) return NULL;
  char *p = b->data;
  if (len) *len = b->len;
  b->data = NULL;
  b->len = b->cap = 0;
  return p;
}

void kv_buf_free(kv_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
  b->oom = 0;
}
