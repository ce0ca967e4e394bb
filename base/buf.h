/*
 * buf.h — kv_buf, the one growable byte buffer of kvasir (Redis's sds is the
 * model: one small structure, each function's contract stated).
 *
 * Invariants: `data` is NULL or points to `cap` bytes with data[len] == 0, so
 * a kv_buf is always a valid C string once anything was appended; `len` never
 * exceeds cap - 1. A failed allocation leaves the contents as they were and
 * sets the sticky `oom` flag, so a caller may append many times and check
 * once (kv_buf_ok). A zeroed kv_buf is an empty buffer (KV_BUF_INIT).
 */
#ifndef KVASIR_BASE_BUF_H
#define KVASIR_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kv_buf {
  char *data;
  size_t len;
  size_t cap;
  int oom; /* set by any failed growth; cleared only by kv_buf_free */
} kv_buf;

#define KV_BUF_INIT {NULL, 0, 0, 0}

/* Make room for `extra` more bytes (plus the NUL). 0, or KV_ENOMEM. */
int kv_buf_reserve(kv_buf *b, size_t extra);
/* Append n bytes (p may hold NULs). 0, or KV_ENOMEM. */
int kv_buf_append(kv_buf *b, const void *p, size_t n);
/* Append a NUL-terminated string. */
int kv_buf_puts(kv_buf *b, const char *s);
int kv_buf_putc(kv_buf *b, char c);
/* Append printf-formatted text. 0, or KV_ENOMEM. */
int kv_buf_printf(kv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int kv_buf_vprintf(kv_buf *b, const char *fmt, va_list ap);
/* Empty the buffer, keeping its memory. */
void kv_buf_reset(kv_buf *b);
/* Cut the contents to n bytes (n <= len). */
void kv_buf_truncate(kv_buf *b, size_t n);
/* Hand the contents to the caller (malloc'd, NUL-terminated, never NULL
 * unless out of memory); the buffer is left empty. *len may be NULL. */
char *kv_buf_detach(kv_buf *b, size_t *len);
/* Release the memory; the buffer is empty and usable again. */
void kv_buf_free(kv_buf *b);
/* 1 if no growth has failed since init/free. */
static inline int kv_buf_ok(const kv_buf *b) { return !b->oom; }
/* The contents as a C string ("" when nothing was appended). */
static inline const char *kv_buf_str(const kv_buf *b) { return b->data ? b->data : ""; }

#ifdef __cplusplus
}
#endif
#endif
