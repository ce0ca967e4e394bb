/*
 * base.c — errors, XDG paths, files, clocks and the progress bar. Every
 * function here is reentrant; none keeps state between calls.
 */
#define _GNU_SOURCE
#include "base/base.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int kv_err_set(kv_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void kv_err_clear(kv_err *err) {
  if (err) {
    err->code = 0;
    err->msg[0] = 0;
  }
}

const char *kv_err_name(int code) {
  switch (code) {
  case KV_OK: return "ok";
  case KV_EIO: return "io";
  case KV_EFORMAT: return "format";
  case KV_ENOMEM: return "nomem";
  case KV_EINVAL: return "invalid";
  case KV_ENOTFOUND: return "notfound";
  case KV_EUNSUPPORTED: return "unsupported";
  case KV_ECANCELED: return "canceled";
  case KV_ECRYPTO: return "crypto";
  case KV_EBUSY: return "busy";
  case KV_ELIMIT: return "limit";
  case KV_EDENIED: return "denied";
  default: return "error";
  }
}

int kv_xdg_dir(char *buf, size_t n, const char *kind) {
  const char *env = NULL, *fallback = NULL;
  if (!strcmp(kind, "cache")) env = "XDG_CACHE_HOME", fallback = ".cache";
  else if (!strcmp(kind, "data")) env = "XDG_DATA_HOME", fallback = ".local/share";
  else if (!strcmp(kind, "config")) env = "XDG_CONFIG_HOME", fallback = ".config";
  else if (!strcmp(kind, "runtime")) env = "XDG_RUNTIME_DIR", fallback = NULL;
  else return KV_EINVAL;
  const char *v = getenv(env);
  int w;
  if (v && *v) {
    w = snprintf(buf, n, "%s/kvasir", v);
  } else if (fallback) {
    const char *home = getenv("HOME");
    w = snprintf(buf, n, "%s/%s/kvasir", home && *home ? home : "/tmp", fallback);
  } else {
    /* No XDG_RUNTIME_DIR (e.g. a CI container): a per-uid dir in /tmp. */
    w = snprintf(buf, n, "/tmp/kvasir-%u", (unsigned)getuid());
  }
  return (w < 0 || (size_t)w >= n) ? KV_ELIMIT : KV_OK;
}

int kv_mkdirs(const char *path, unsigned mode, kv_err *err) {
  char tmp[4096];
  size_t len = strlen(path);
  if (len == 0 || len >= sizeof tmp) return kv_err_set(err, KV_EINVAL, "path too long: %s", path);
  memcpy(tmp, path, len + 1);
  for (char *p = tmp + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(tmp, mode) != 0 && errno != EEXIST)
      return kv_err_set(err, KV_EIO, "mkdir %s: %s", tmp, strerror(errno));
    *p = '/';
  }
  if (mkdir(tmp, mode) != 0 && errno != EEXIST)
    return kv_err_set(err, KV_EIO, "mkdir %s: %s", tmp, strerror(errno));
  return KV_OK;
}

int kv_read_file(const char *path, size_t max, char **out, size_t *len, kv_err *err) {
  *out = NULL;
  if (len) *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  if (!buf) { fclose(f); return kv_err_set(err, KV_ENOMEM, "%s: out of memory", path); }
  for (;;) {
    if (n == cap) {
      if (cap >= max) { free(buf); fclose(f); return kv_err_set(err, KV_ELIMIT, "%s: larger than %zu bytes", path, max); }
      size_t ncap = cap * 2 > max ? max : cap * 2;
      char *nb = realloc(buf, ncap + 1);
      if (!nb) { free(buf); fclose(f); return kv_err_set(err, KV_ENOMEM, "%s: out of memory", path); }
      buf = nb, cap = ncap;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad) { free(buf); return kv_err_set(err, KV_EIO, "%s: read error", path); }
  buf[n] = 0;
  *out = buf;
  if (len) *len = n;
  return KV_OK;
}

double kv_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

size_t kv_peak_rss(void) {
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
  return (size_t)ru.ru_maxrss * 1024u;
}

void kv_progress_init(kv_progress *p, FILE *out, const char *label, uint64_t total) {
  memset(p, 0, sizeof *p);
  p->out = out;
  p->label = label;
  p->total = total;
  p->tty = out && isatty(fileno(out));
  p->t0 = p->last = kv_now();
  p->quiet = getenv("KVASIR_QUIET") != NULL;
}

static void progress_draw(kv_progress *p, const char *extra, int final) {
  double el = kv_now() - p->t0;
  double rate = el > 0 ? (double)p->done / el : 0;
  if (p->tty) {
    char bar[31];
    int fill = p->total ? (int)(30.0 * (double)p->done / (double)p->total) : (int)(p->done / 1) % 31;
    if (fill > 30) fill = 30;
    for (int i = 0; i < 30; i++) bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    if (p->total)
      fprintf(p->out, "\r%s [%s] %llu/%llu %.0f/s %s\033[K", p->label, bar, (unsigned long long)p->done,
              (unsigned long long)p->total, rate, extra ? extra : "");
    else
      fprintf(p->out, "\r%s %llu %.0f/s %s\033[K", p->label, (unsigned long long)p->done, rate, extra ? extra : "");
    if (final) fputc('\n', p->out);
  } else if (final) {
    fprintf(p->out, "%s: %llu in %.2fs (%.0f/s) %s\n", p->label, (unsigned long long)p->done, el, rate,
            extra ? extra : "");
  }
  fflush(p->out);
}

void kv_progress_update(kv_progress *p, uint64_t done, const char *extra) {
  p->done = done;
  if (!p->out || p->quiet) return;
  double now = kv_now();
  if (now - p->last < 0.1) return;
  p->last = now;
  progress_draw(p, extra, 0);
}

void kv_progress_finish(kv_progress *p, const char *extra) {
  if (!p->out || p->quiet) return;
  progress_draw(p, extra, 1);
}
