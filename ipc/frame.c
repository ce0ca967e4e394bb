/*
 * frame.c — the transport framing: each frame is a 4-byte big-endian payload
 * length followed by the payload. ipc_framer is an incremental decoder for a
 * byte stream that arrives in arbitrary pieces.
 *
 * Invariants: a header announcing more than `max` bytes is rejected as soon
 * as its 4 bytes are seen, so a hostile peer can never make us buffer more
 * than max + 4 bytes per connection; the buffer only holds bytes that have
 * not been returned yet (after compaction on the next feed).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

struct ipc_framer {
  uint8_t *buf;
  size_t cap, start, end; /* live bytes are buf[start, end) */
  size_t max;
  uint64_t consumed;      /* bytes handed out (headers + payloads) */
};

const char *ipc_version(void) { return "1"; }

int ipc_socket_path(char *buf, size_t n) {
  char dir[4096];
  if (kv_xdg_dir(dir, sizeof dir, "runtime")) return KV_ELIMIT;
  int w = snprintf(buf, n, "%s/kvasird.sock", dir);
  return (w < 0 || (size_t)w >= n) ? KV_ELIMIT : 0;
}

int ipc_secret_path(char *buf, size_t n) {
  char dir[4096];
  if (kv_xdg_dir(dir, sizeof dir, "config")) return KV_ELIMIT;
  int w = snprintf(buf, n, "%s/keys/secret", dir);
  return (w < 0 || (size_t)w >= n) ? KV_ELIMIT : 0;
}

void ipc_frame_header(uint8_t hdr[4], uint32_t len) {
  hdr[0] = (uint8_t)(len >> 24);
  hdr[1] = (uint8_t)(len >> 16);
  hdr[2] = (uint8_t)(len >> 8);
  hdr[3] = (uint8_t)len;
}

static uint32_t be32(const uint8_t *p) {
  return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

int ipc_framer_new(ipc_framer **out, size_t max, kv_err *err) {
  ipc_framer *f = calloc(1, sizeof *f);
  if (!f) return kv_err_set(err, KV_ENOMEM, "ipc framer: out of memory");
  f->max = max;
  *out = f;
  return 0;
}

void ipc_framer_free(ipc_framer *f) {
  if (!f) return;
  free(f->buf);
  free(f);
}

void ipc_framer_set_max(ipc_framer *f, size_t max) { f->max = max; }
size_t ipc_framer_pending(const ipc_framer *f) { return f->end - f->start; }

int ipc_framer_ready(const ipc_framer *f) {
  size_t avail = f->end - f->start;
  return avail >= 4 && avail - 4 >= be32(f->buf + f->start);
}
uint64_t ipc_framer_offset(const ipc_framer *f) { return f->consumed; }

/* Checks the header at the head of the buffer (if complete) against max. */
static int check_head(const ipc_framer *f, kv_err *err) {
  if (f->end - f->start < 4) return 0;
  uint32_t len = be32(f->buf + f->start);
  if (len > f->max)
    return kv_err_set(err, KV_ELIMIT, "frame at byte offset %llu: length %u exceeds the cap of %zu bytes",
                      (unsigned long long)f->consumed, len, f->max);
  return 0;
}

int ipc_framer_feed(ipc_framer *f, const uint8_t *data, size_t n, kv_err *err) {
  if (n == 0) return 0;
  int rc = check_head(f, err);
  if (rc) return rc;
  if (f->start > 0) { /* compact: drop bytes already returned */
    memmove(f->buf, f->buf + f->start, f->end - f->start);
    f->end -= f->start;
    f->start = 0;
  }
  if (n > SIZE_MAX / 2 - f->end) return kv_err_set(err, KV_ELIMIT, "ipc framer: feed of %zu bytes too large", n);
  size_t need = f->end + n < 256 ? 256 : f->end + n; /* 256 bytes at least, then doubling */
  if (KV_GROW(f->buf, f->cap, need))
    return kv_err_set(err, KV_ENOMEM, "ipc framer: out of memory (%zu bytes)", need);
  memcpy(f->buf + f->end, data, n);
  f->end += n;
  /* The head frame's header is checked now, so an oversize announcement is
   * refused before its payload arrives; later headers are checked by next(). */
  return check_head(f, err);
}

int ipc_framer_next(ipc_framer *f, const uint8_t **payload, size_t *len, kv_err *err) {
  size_t avail = f->end - f->start;
  if (avail < 4) return 0;
  uint32_t n = be32(f->buf + f->start);
  if (n > f->max)
    return kv_err_set(err, KV_ELIMIT, "frame at byte offset %llu: length %u exceeds the cap of %zu bytes",
                      (unsigned long long)f->consumed, n, f->max);
  if (avail - 4 < n) return 0;
  *payload = f->buf + f->start + 4;
  *len = n;
  f->start += 4 + (size_t)n;
  f->consumed += 4 + (uint64_t)n;
  return 1;
}
