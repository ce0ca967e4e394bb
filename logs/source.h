/*
 * source.h — private to the logs module: decoded byte sources (plain, gzip,
 * zstd, stdin) and a bounded line splitter. See source.c.
 */
#ifndef KVASIR_LOGS_SOURCE_H
#define KVASIR_LOGS_SOURCE_H
#include "base/base.h"

#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

enum { SRC_PLAIN = 1, SRC_GZ, SRC_ZST, SRC_STDIN };

typedef struct src {
  int kind, fd;
  gzFile gz;
  ZSTD_DCtx *z;
  uint8_t *zin;
  size_t zcap, zlen, zpos, zlast;
  int done, truncated, error;
} src;

int src_open(src *s, const char *path, kv_err *err);
void src_close(src *s);
long src_read(src *s, char *buf, size_t n);
int src_skip(src *s, uint64_t off);

typedef struct lines {
  src *s;
  char *buf;
  size_t cap, beg, end, max_line;
  uint64_t off; /* decoded offset of buf[beg] */
  int eof, skipping;
} lines;

int lines_init(lines *L, src *s, size_t max_line, uint64_t off, kv_err *err);
void lines_free(lines *L);
int lines_fill(lines *L);
/* Next line (without '\n'); *cut = 1 if it was longer than max_line. */
int lines_next(lines *L, const char **p, size_t *n, uint64_t *start, int *cut);

#endif
