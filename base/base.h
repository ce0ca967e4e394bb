/*
 * base — the few things every kvasir module shares: the error record that
 * every fallible call fills, XDG paths, a terminal progress bar, bounded file
 * reads, and one copy each of the small structures: the growable byte buffer
 * kv_buf (base/buf.h), the grow-by-doubling kv_grow (base/vec.h) and the
 * frozen 64-bit hash kv_hash64 (base/hash.h). This is the module's public
 * header: it includes those three, so a module includes base/base.h only.
 * Nothing here allocates behind the caller's back except the kv_buf and
 * kv_grow calls and kv_read_file (documented); nothing keeps global state.
 */
#ifndef KVASIR_BASE_H
#define KVASIR_BASE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/hash.h"
#include "base/vec.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes shared by all modules (negative return values). */
enum {
  KV_OK = 0,
  KV_EIO = -1,      /* read/write/open failed; errno-level cause in msg */
  KV_EFORMAT = -2,  /* malformed input: file, field and offset in msg */
  KV_ENOMEM = -3,
  KV_EINVAL = -4,   /* bad argument from the caller */
  KV_ENOTFOUND = -5,
  KV_EUNSUPPORTED = -6,
  KV_ECANCELED = -7,
  KV_ECRYPTO = -8,  /* authentication / key failure */
  KV_EBUSY = -9,
  KV_ELIMIT = -10,  /* size cap, budget or quota exceeded */
  KV_EDENIED = -11, /* policy refused */
};

/* What went wrong, in words that name the file, field or byte offset. */
typedef struct kv_err {
  int code;
  char msg[512];
} kv_err;

/* Fill err (may be NULL) and return code; printf-style message. */
int kv_err_set(kv_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void kv_err_clear(kv_err *err);
const char *kv_err_name(int code);

/* XDG base directories with the kvasir suffix, e.g. "$XDG_CACHE_HOME/kvasir".
 * Writes into buf (size n); returns 0, or KV_ELIMIT if it does not fit. */
int kv_xdg_dir(char *buf, size_t n, const char *kind /* "cache","data","config","runtime" */);
/* mkdir -p with mode for every created component. */
int kv_mkdirs(const char *path, unsigned mode, kv_err *err);

/* Read a whole file (up to max bytes) into a malloc'd NUL-terminated buffer. */
int kv_read_file(const char *path, size_t max, char **out, size_t *len, kv_err *err);

/* Wall clock in seconds (monotonic). */
double kv_now(void);
/* Peak resident set size of this process in bytes (from getrusage). */
size_t kv_peak_rss(void);

/* Progress reporting: a bar on a TTY, nothing (or periodic lines) otherwise. */
typedef struct kv_progress {
  FILE *out;
  const char *label;
  uint64_t total;     /* 0 = unknown */
  uint64_t done;
  double t0, last;
  int tty;
  int quiet;
} kv_progress;
void kv_progress_init(kv_progress *p, FILE *out, const char *label, uint64_t total);
/* Update to `done` units; `extra` (may be NULL) is shown after the bar. */
void kv_progress_update(kv_progress *p, uint64_t done, const char *extra);
void kv_progress_finish(kv_progress *p, const char *extra);

#ifdef __cplusplus
}
#endif
#endif
