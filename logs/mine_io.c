/*
 * mine_io.c — saving and restoring a template miner (the blob the store
 * keeps in meta('miner') and rewrites in the same transaction as the
 * records that reference its patterns). Loading trusts nothing: every
 * count, id and length is checked against the buffer.
 */
#include "logs/mine_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- persistence ----------------------------------------------------------
 * Format "KVLM" version 1, host byte order (x86-64 and arm64: little endian):
 *   magic[8] = "KVLM\1\0\0\0"
 *   u32 nstr, then nstr-1 strings (id 0 is "<*>"): u32 len, bytes
 *   u32 nt,   then nt-1 templates: u32 n, parent, next; u64 bkey, size; u32 ids[n]; u8 space[n]
 *   u32 nl,   then nl-1 patterns:  u32 tpl, final, n; u64 count; u32 ids[n]
 *   u32 nsub, then nsub pairs:     u64 key; u32 template
 * Hash tables are rebuilt on load. Every count and id is checked on load. */

int log_miner_save(const log_miner *m, void **out, size_t *len, kv_err *err) {
  kv_buf w = KV_BUF_INIT; /* failed appends are sticky: checked once at the end */
  kv_buf_append(&w, "KVLM\1\0\0\0", 8);
  kv_buf_append(&w, &m->nstr, 4);
  for (uint32_t i = 1; i < m->nstr; i++) kv_buf_append(&w, &m->slen[i], 4), kv_buf_append(&w, m->str[i], m->slen[i]);
  kv_buf_append(&w, &m->nt, 4);
  for (uint32_t i = 1; i < m->nt; i++) {
    const log_tpl *t = &m->t[i];
    kv_buf_append(&w, &t->n, 4), kv_buf_append(&w, &t->parent, 4), kv_buf_append(&w, &t->next, 4);
    kv_buf_append(&w, &t->bkey, 8), kv_buf_append(&w, &t->size, 8);
    kv_buf_append(&w, t->ids, 4 * (size_t)t->n), kv_buf_append(&w, t->space, t->n);
  }
  kv_buf_append(&w, &m->nl, 4);
  for (uint32_t i = 1; i < m->nl; i++) {
    const log_leaf *l = &m->lv[i];
    kv_buf_append(&w, &l->tpl, 4), kv_buf_append(&w, &l->final, 4), kv_buf_append(&w, &l->n, 4), kv_buf_append(&w, &l->count, 8);
    kv_buf_append(&w, l->ids, 4 * (size_t)l->n);
  }
  kv_buf_append(&w, &m->subn, 4);
  for (uint32_t i = 0; i < m->subcap; i++)
    if (m->subs[i].h) kv_buf_append(&w, &m->subs[i].h, 8), kv_buf_append(&w, &m->subs[i].v, 4);
  if (!kv_buf_ok(&w)) {
    kv_buf_free(&w);
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory saving the template miner");
  }
  *out = kv_buf_detach(&w, len);
  return 0;
}

typedef struct rbuf {
  const uint8_t *p;
  size_t n, off;
  int bad;
} rbuf;

static void rget(rbuf *r, void *d, size_t n) {
  if (r->bad || n > r->n - r->off) {
    r->bad = 1;
    memset(d, 0, n);
    return;
  }
  memcpy(d, r->p + r->off, n);
  r->off += n;
}

int log_miner_load(log_miner **out, const void *data, size_t len, kv_err *err) {
  log_miner *m;
  int rc = log_miner_new(&m, NULL, err);
  if (rc) return rc;
  rbuf r = {data, len, 0, 0};
  char magic[8];
  rget(&r, magic, 8);
  if (r.bad || memcmp(magic, "KVLM\1\0\0\0", 8)) goto bad;
  uint32_t ns, nt, nl, nsub, n;
  rget(&r, &ns, 4);
  if (r.bad || ns == 0 || ns > len) goto bad;
  for (uint32_t i = 1; i < ns; i++) {
    rget(&r, &n, 4);
    if (r.bad || n > len - r.off) goto bad;
    uint32_t id;
    if (log_m_intern(m, (const char *)r.p + r.off, n, &id)) goto oom;
    if (id != i) goto bad; /* duplicate string */
    r.off += n;
  }
  rget(&r, &nt, 4);
  if (r.bad || nt == 0 || nt > len) goto bad;
  for (uint32_t i = 1; i < nt; i++) {
    log_tpl t;
    memset(&t, 0, sizeof t);
    rget(&r, &t.n, 4), rget(&r, &t.parent, 4), rget(&r, &t.next, 4);
    rget(&r, &t.bkey, 8), rget(&r, &t.size, 8);
    if (r.bad || t.n > (len - r.off) / 5 || t.parent >= nt || (t.next >= nt && t.next != UINT32_MAX)) goto bad;
    uint32_t id;
    if (KV_GROW(m->t, m->capt, (size_t)m->nt + 1)) goto oom;
    id = m->nt;
    t.ids = malloc((t.n ? t.n : 1) * sizeof *t.ids);
    t.space = malloc(t.n ? t.n : 1);
    if (!t.ids || !t.space) {
      free(t.ids), free(t.space);
      goto oom;
    }
    rget(&r, t.ids, 4 * (size_t)t.n), rget(&r, t.space, t.n);
    m->t[m->nt++] = t;
    for (uint32_t k = 0; k < t.n; k++)
      if (t.ids[k] >= ns) goto bad;
    if (t.next != UINT32_MAX && log_m_map_put(&m->bucket, &m->bcap, &m->bn, t.bkey, id)) goto oom;
  }
  rget(&r, &nl, 4);
  if (r.bad || nl == 0 || nl > len) goto bad;
  for (uint32_t i = 1; i < nl; i++) {
    uint32_t tp, fin;
    uint64_t cnt;
    rget(&r, &tp, 4), rget(&r, &fin, 4), rget(&r, &n, 4), rget(&r, &cnt, 8);
    if (r.bad || tp == 0 || tp >= nt || fin >= nt || n > (len - r.off) / 4) goto bad;
    uint32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) goto oom;
    rget(&r, ids, 4 * (size_t)n);
    uint64_t h = KV_HASH64_INIT;
    for (uint32_t k = 0; k < n; k++) {
      if (ids[k] >= ns) {
        free(ids);
        goto bad;
      }
      h = kv_hash64_more(h, &ids[k], sizeof ids[k]);
    }
    h = kv_hash64_more(h, &n, sizeof n) | 1;
    uint32_t pat;
    if (log_m_new_leaf(m, tp, ids, n, &pat)) {
      free(ids);
      goto oom;
    }
    free(ids);
    m->lv[pat].final = fin;
    m->lv[pat].count = cnt;
    if (log_m_map_put(&m->cache, &m->ccap, &m->cn, h, pat)) goto oom;
  }
  rget(&r, &nsub, 4);
  if (r.bad || nsub > len) goto bad;
  for (uint32_t i = 0; i < nsub; i++) {
    uint64_t h;
    uint32_t v;
    rget(&r, &h, 8), rget(&r, &v, 4);
    if (r.bad || v >= nt || !h) goto bad;
    if (log_m_map_put(&m->subs, &m->subcap, &m->subn, h, v)) goto oom;
  }
  if (r.off != len) goto bad;
  *out = m;
  return 0;
bad:
  log_miner_free(m);
  return kv_err_set(err, KV_EFORMAT, "logs: saved template miner is corrupt near byte %zu of %zu", r.off, len);
oom:
  log_miner_free(m);
  return kv_err_set(err, KV_ENOMEM, "logs: out of memory loading the template miner");
}
