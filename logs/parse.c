/*
 * parse.c — whole-buffer parsing the LogHub way, for `kvasir logs parse`
 * and the accuracy bench: learn the header from the first 2000 lines, mine
 * every line's content, merge once, then map each line to its template.
 * Nothing is stored. One line = one message here (no multi-line joining),
 * which is what LogHub's ground truth assumes.
 */
#include "logs/logs.h"

#include <stdlib.h>

int log_parse_buffer(const char *buf, size_t len, log_miner **mout, uint32_t **idsout, size_t *nout, kv_err *err) {
  return log_parse_buffer_rules(buf, len, 0, 0, mout, idsout, nout, err);
}

int log_parse_buffer_rules(const char *buf, size_t len, log_rules rules_off, double sim, log_miner **mout,
                           uint32_t **idsout, size_t *nout, kv_err *err) {
  size_t cap = 0, lcap = 0, n = 0;
  const char **lines = NULL;
  size_t *lens = NULL;
  for (size_t i = 0; i < len;) {
    size_t e = i;
    while (e < len && buf[e] != '\n') e++;
    if (KV_GROW(lines, cap, n + 1) || KV_GROW(lens, lcap, n + 1)) goto oom;
    lines[n] = buf + i;
    lens[n] = e - i;
    n++;
    i = e + 1;
  }
  log_fmt *f = NULL;
  int rc = log_fmt_learn_rules(&f, lines, lens, n < 2000 ? n : 2000, rules_off, err);
  if (rc) goto fail;
  log_miner *m = NULL;
  log_miner_opts mo = {0};
  mo.sim = sim;
  mo.rules_off = rules_off;
  if ((rc = log_miner_new(&m, &mo, err))) {
    log_fmt_free(f);
    goto fail;
  }
  uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
  if (!ids) {
    log_fmt_free(f);
    log_miner_free(m);
    goto oom;
  }
  for (size_t i = 0; i < n; i++) {
    log_line ln;
    log_line_parse(f, lines[i], lens[i], 2000, &ln);
    if ((rc = log_miner_add(m, ln.content, ln.content_len, &ids[i], NULL, 0, NULL, err))) {
      free(ids);
      log_fmt_free(f);
      log_miner_free(m);
      goto fail;
    }
  }
  log_miner_merge(m);
  for (size_t i = 0; i < n; i++) ids[i] = log_miner_resolve(m, ids[i]);
  log_fmt_free(f);
  free(lines);
  free(lens);
  *mout = m;
  *idsout = ids;
  *nout = n;
  return 0;
oom:
  rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory splitting lines");
fail:
  free(lines);
  free(lens);
  return rc;
}
