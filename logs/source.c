/*
 * source.c — byte sources and the line splitter for ingest: plain files,
 * gzip (zlib) and zstd streams (recognised by their magic bytes, not by the
 * name), and stdin. A truncated compressed stream is not an error: what was
 * decoded is used and the source is flagged `truncated`.
 *
 * The line splitter never holds more than cap bytes: a line longer than
 * max_line is cut at max_line (flagged) and the rest of it skipped, so a
 * 10 MB line costs no more memory than a short one. Offsets are in bytes of
 * the decoded stream, which is what resume points are measured in.
 */
#include "logs/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int log_src_open(log_src *s, const char *path, kv_err *err) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  if (!strcmp(path, "-")) {
    s->fd = 0;
    s->kind = SRC_STDIN;
    return 0;
  }
  s->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (s->fd < 0) return kv_err_set(err, KV_EIO, "%s: cannot open: %s", path, strerror(errno));
  unsigned char m[4] = {0};
  ssize_t k = pread(s->fd, m, 4, 0);
  if (k >= 2 && m[0] == 0x1f && m[1] == 0x8b) {
    int fd2 = dup(s->fd);
    s->gz = fd2 >= 0 ? gzdopen(fd2, "rb") : NULL;
    if (!s->gz) {
      if (fd2 >= 0) close(fd2);
      close(s->fd);
      return kv_err_set(err, KV_ENOMEM, "%s: cannot start gzip decoding", path);
    }
    gzbuffer(s->gz, 1 << 18);
    s->kind = SRC_GZ;
  } else if (k == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) {
    s->z = ZSTD_createDCtx();
    s->zcap = ZSTD_DStreamInSize();
    s->zin = malloc(s->zcap);
    if (!s->z || !s->zin) {
      log_src_close(s);
      return kv_err_set(err, KV_ENOMEM, "%s: cannot start zstd decoding", path);
    }
    s->kind = SRC_ZST;
  } else {
    s->kind = SRC_PLAIN;
  }
  return 0;
}

void log_src_close(log_src *s) {
  if (s->gz) gzclose(s->gz);
  if (s->z) ZSTD_freeDCtx(s->z);
  free(s->zin);
  if (s->fd > 0) close(s->fd);
  memset(s, 0, sizeof *s);
  s->fd = -1;
}

/* Read up to n decoded bytes; 0 at end (or on a decoding error, flagged). */
long log_src_read(log_src *s, char *buf, size_t n) {
  if (s->kind == SRC_PLAIN || s->kind == SRC_STDIN) {
    for (;;) {
      ssize_t k = read(s->fd, buf, n);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) {
        s->error = 1;
        return 0;
      }
      return (long)k;
    }
  }
  if (s->kind == SRC_GZ) {
    if (s->done) return 0;
    int k = gzread(s->gz, buf, (unsigned)(n > (1u << 30) ? (1u << 30) : n));
    if (k > 0) return k;
    int e;
    gzerror(s->gz, &e);
    if (k < 0 || (e != Z_OK && e != Z_STREAM_END)) s->truncated = 1;
    s->done = 1;
    return 0;
  }
  /* zstd */
  ZSTD_outBuffer out = {buf, n, 0};
  while (out.pos == 0 && !s->done) {
    if (s->zpos == s->zlen) {
      ssize_t k = read(s->fd, s->zin, s->zcap);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        if (s->zlast != 0) s->truncated = 1; /* a frame was left unfinished */
        s->done = 1;
        break;
      }
      s->zlen = (size_t)k;
      s->zpos = 0;
    }
    ZSTD_inBuffer in = {s->zin, s->zlen, s->zpos};
    size_t r = ZSTD_decompressStream(s->z, &out, &in);
    s->zpos = in.pos;
    if (ZSTD_isError(r)) {
      s->truncated = 1;
      s->done = 1;
      break;
    }
    s->zlast = r;
  }
  return (long)out.pos;
}

/* Skip `off` decoded bytes (seek for plain files). 0, or -1 if the stream
 * is shorter. */
int log_src_skip(log_src *s, uint64_t off) {
  if (off == 0) return 0;
  if (s->kind == SRC_PLAIN) return lseek(s->fd, (off_t)off, SEEK_SET) == (off_t)off ? 0 : -1;
  char tmp[65536];
  while (off) {
    long k = log_src_read(s, tmp, off < sizeof tmp ? (size_t)off : sizeof tmp);
    if (k <= 0) return -1;
    off -= (uint64_t)k;
  }
  return 0;
}

int log_lines_init(log_lines *L, log_src *s, size_t max_line, uint64_t off, kv_err *err) {
  memset(L, 0, sizeof *L);
  L->s = s;
  L->max_line = max_line;
  L->cap = max_line + (1u << 20);
  L->buf = malloc(L->cap);
  L->off = off;
  if (!L->buf) return kv_err_set(err, KV_ENOMEM, "logs: out of memory for a %zu-byte line buffer", L->cap);
  return 0;
}

void log_lines_free(log_lines *L) {
  free(L->buf);
  L->buf = NULL;
}

int log_lines_fill(log_lines *L) {
  if (L->eof) return 0;
  if (L->beg > 0) {
    memmove(L->buf, L->buf + L->beg, L->end - L->beg);
    L->end -= L->beg;
    L->beg = 0;
  }
  if (L->end == L->cap) return 1;
  long k = log_src_read(L->s, L->buf + L->end, L->cap - L->end);
  if (k <= 0) {
    L->eof = 1;
    return 0;
  }
  L->end += (size_t)k;
  return 1;
}

int log_lines_next(log_lines *L, const char **p, size_t *n, uint64_t *start, int *cut) {
  for (;;) {
    if (L->skipping) {
      char *nl = memchr(L->buf + L->beg, '\n', L->end - L->beg);
      if (nl) {
        size_t adv = (size_t)(nl - (L->buf + L->beg)) + 1;
        L->beg += adv, L->off += adv;
        L->skipping = 0;
      } else {
        L->off += L->end - L->beg;
        L->beg = L->end;
        if (!log_lines_fill(L)) return 0;
        continue;
      }
    }
    char *b = L->buf + L->beg;
    size_t avail = L->end - L->beg;
    char *nl = memchr(b, '\n', avail < L->max_line + 1 ? avail : L->max_line + 1);
    if (nl) {
      *p = b, *n = (size_t)(nl - b), *start = L->off, *cut = 0;
      L->beg += *n + 1, L->off += *n + 1;
      return 1;
    }
    if (avail > L->max_line) {
      *p = b, *n = L->max_line, *start = L->off, *cut = 1;
      L->beg += L->max_line, L->off += L->max_line;
      L->skipping = 1;
      return 1;
    }
    if (L->eof || !log_lines_fill(L)) {
      avail = L->end - L->beg;
      if (!avail) return 0;
      *p = L->buf + L->beg, *n = avail, *start = L->off, *cut = 0;
      L->beg = L->end, L->off += avail;
      return 1;
    }
  }
}
