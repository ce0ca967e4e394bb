/*
 * block_internal.h — private to the logs module: blocks of records, the unit of
 * storage (see block.c for the on-disk format), built in kv_bufs.
 */
#ifndef KVASIR_LOGS_BLOCK_INTERNAL_H
#define KVASIR_LOGS_BLOCK_INTERNAL_H
#include "base/base.h"

#include <stdint.h>
#include <zstd.h>

#define BLK_MAX 1024                 /* records per block */
#define BLK_TEXT_MAX (256u << 10)    /* a block closes once its texts pass this */
#define BLK_FRAME 256                /* records per compressed text frame */
#define BLK_FORMAT 1                 /* first byte of every meta and summary blob */
#define BLK_ZLEVEL 1                 /* zstd level */

/* Append v as a LEB128 varint. 0, or KV_ENOMEM. */
int log_buf_uv(kv_buf *b, uint64_t v);
/* Bounds-checked varint read: 0 on success, -1 past end or overlong. */
int log_get_uv(const uint8_t **p, const uint8_t *end, uint64_t *v);

/* Per-record columns of one block (a run of consecutive records of one
 * file). ts INT64_MIN = none, pid -1 = none, comp 0 = none. */
typedef struct log_blk_cols {
  uint32_t n;
  int64_t ts[BLK_MAX], pid[BLK_MAX], line[BLK_MAX];
  uint32_t pat[BLK_MAX], comp[BLK_MAX], tlen[BLK_MAX], plen[BLK_MAX];
  uint8_t lvl[BLK_MAX];
  /* decoding: the decompressed columns, of which pid, line, tlen and plen
   * are decoded only on demand (log_blk_meta_rest) */
  uint8_t *raw;
  size_t rn, rest;
  int full;
} log_blk_cols;

/* A block being built (ingest) and, after log_blk_encode, its blobs. */
typedef struct log_block {
  int64_t id, file_id;  /* id = id of its first record */
  log_blk_cols c;
  kv_buf text, par, fts;  /* texts, "\x1f"-joined params, "\x1f"-joined indexed values */
  kv_buf nums;            /* "\x1f"-joined numbers and durations (the second bloom) */
  /* set by log_blk_encode */
  int64_t ts_min, ts_max;
  uint32_t lvl_mask;
  kv_buf summ, meta, data, nbloom;
} log_block;

void log_blk_reset(log_block *b, int64_t id, int64_t file_id);
void log_blk_free(log_block *b);
/* Compress the columns and texts and build the summary. */
int log_blk_encode(log_block *b, ZSTD_CCtx *cc, kv_err *err);

/* Decoded summary of a block, kept in memory by the query side. */
typedef struct log_blk_sum {
  int64_t id, file_id, ts_min, ts_max;
  uint32_t n, lvl_mask, npat, ncomp;
  int64_t lvl_min[8];   /* earliest ts of each level present */
  uint32_t *pat;        /* distinct patterns ... */
  int64_t *pat_min;     /* ... the earliest ts of each, */
  int64_t *pat_max;     /* the latest, */
  uint32_t *pat_cnt;    /* their records, */
  uint32_t *pat_fl;     /* index of the first << 3 | worst level */
  uint32_t *comp;
  int64_t *comp_min;
  uint8_t *bloom;       /* indexed parameter values (log_blk_bloom_has), or NULL */
  uint32_t bloom_bits;
} log_blk_sum;

/* 1 if the block may hold the parameter value (exact bytes), 0 if not. */
int log_blk_bloom_has(const log_blk_sum *s, const char *v, size_t n);
/* The same test on a bloom of `bytes` bytes (a power of two), e.g. the
 * numbers bloom (bsum.nbloom). */
int log_blk_bloom_test(const uint8_t *bl, size_t bytes, const char *v, size_t n);

int log_blk_sum_decode(log_blk_sum *s, const void *p, size_t n, kv_err *err);
void log_blk_sum_free(log_blk_sum *s);
/* Read the columns of a block (meta blob) and decode ts, lvl, comp
 * and pat; pid, line, tlen and plen wait for log_blk_meta_rest. c->raw is
 * allocated on first use: free it with log_blk_cols_free. */
int log_blk_meta_decode(log_blk_cols *c, const void *z, size_t zn, ZSTD_DCtx *dc, int64_t id, kv_err *err);
int log_blk_meta_rest(log_blk_cols *c, int64_t id, kv_err *err);
void log_blk_cols_free(log_blk_cols *c);
/* The text frame holding record `rec`, from the head of the data blob
 * (hn of its `total` bytes): it covers records [*r0, *r1) and lies at
 * [*off, *off + *zlen) of the blob. Returns 1 if hn was too short for the
 * frame table (read more and call again). Decodes c's lengths first. */
int log_blk_frame_find(log_blk_cols *c, const void *hdr, size_t hn, size_t total, uint32_t rec, uint32_t *r0, uint32_t *r1,
                   size_t *off, size_t *zlen, int64_t id, kv_err *err);
/* Decompress a frame found by log_blk_frame_find into out: record i's text is
 * at toff[i - r0] (c->tlen[i] bytes), its params at poff[i - r0] (c->plen[i]
 * bytes). toff and poff hold BLK_FRAME entries. */
int log_blk_frame_unpack(const log_blk_cols *c, const void *z, size_t zlen, uint32_t r0, uint32_t r1, ZSTD_DCtx *dc, kv_buf *out,
                     size_t *toff, size_t *poff, int64_t id, kv_err *err);

#endif
