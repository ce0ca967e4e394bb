/* fuzz_logs_parse.c — the record/header parser on arbitrary bytes: header
 * learning over the input's lines, line parsing, continuation detection,
 * timestamps, and template mining of the contents, plus the miner's
 * save/load round trip. Must never crash or read out of bounds. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logs/logs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *s = (const char *)data;
  const char *lines[64];
  size_t lens[64];
  size_t n = 0;
  for (size_t i = 0; i < size && n < 64;) {
    const char *nl = memchr(s + i, '\n', size - i);
    size_t e = nl ? (size_t)(nl - s) : size;
    lines[n] = s + i;
    lens[n] = e - i;
    n++;
    i = e + 1;
  }
  log_fmt *f = NULL;
  kv_err err;
  if (log_fmt_learn(&f, lines, lens, n, &err)) return 0;
  log_miner *m = NULL;
  if (log_miner_new(&m, NULL, &err)) {
    log_fmt_free(f);
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    log_line ln;
    log_line_parse(f, lines[i], lens[i], 2000, &ln);
    (void)log_is_continuation(lines[i], lens[i]);
    int64_t ms;
    (void)log_ts_parse(lines[i], lens[i], 2000, &ms);
    uint32_t pat;
    log_param p[8];
    int np;
    if (log_miner_add(m, ln.content, ln.content_len, &pat, p, 8, &np, &err) == 0) {
      for (int k = 0; k < np; k++)
        if (p[k].val < s || p[k].val + p[k].len > s + size) abort();
      (void)log_miner_template(m, log_miner_resolve(m, pat));
    }
  }
  log_miner_merge(m);
  void *blob;
  size_t bl;
  if (log_miner_save(m, &blob, &bl, &err) == 0) {
    log_miner *m2;
    if (log_miner_load(&m2, blob, bl, &err) == 0) log_miner_free(m2);
    /* and a corrupted copy must be rejected or loaded, never crash */
    if (bl > 16) {
      ((uint8_t *)blob)[bl / 2] ^= 0x5a;
      if (log_miner_load(&m2, blob, bl / 2 + 8, &err) == 0) log_miner_free(m2);
    }
    free(blob);
  }
  log_miner_free(m);
  log_fmt_free(f);
  return 0;
}
