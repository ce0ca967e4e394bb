/*
 * block.c — blocks of records: the unit of storage.
 *
 * A block is a run of at most BLK_MAX consecutive records of one file (a
 * commit closes the block in progress, so blocks never straddle a resume
 * point). It is stored as two rows:
 *
 *   bsum(id, file_id, n, ts_min, ts_max, lvl_mask, summ)   small, scanned
 *   bdata(id, meta, data)                                   compressed
 *
 * id is the id of the block's first record; record ids are consecutive
 * (id .. id+n-1) and global over the store. Formats (version BLK_FORMAT,
 * first byte of summ and of the decompressed meta; uv = LEB128 varint,
 * zz = zigzag varint, "delta" = difference from the previous value in
 * two's-complement 64-bit arithmetic, the first from 0; ts INT64_MIN means
 * "no timestamp" and takes part in the arithmetic like any value):
 *
 *   summ: 1, uv npat, npat x (uv pattern, uv ts-ts_min, uv count,
 *                                uv latest ts-ts_min, uv first index << 3 | worst level),
 *            uv ncomp, ncomp x (uv comp, uv ts-ts_min),
 *            for each bit L set in lvl_mask (low to high): uv ts-ts_min,
 *            uv log2(bloom bits) (0 = no bloom), the bloom's bytes
 *         — each the earliest ts of that pattern / component / level in
 *         the block: a lower bound that lets a query skip or postpone it
 *         (and for patterns what triage counts, so a block that falls in
 *         one of its time bins is counted without being decoded);
 *         the bloom filter holds the block's identifier-like parameter
 *         values (exact bytes; 4 probes from one 64-bit hash, bloom_hash() below; about
 *         10 bits a value, so ~1 % false positives), the parameter index.
 *   bsum.nbloom: the same kind of filter, 6+ bits a value (~5 % false
 *         positives), over the numbers and durations, which are too many
 *         to keep in memory: read from the table by a query for a number.
 *   meta: (uncompressed) 1, uv n, n x zz ts delta, n x level byte, n x uv comp,
 *            n x uv pattern, n x zz pid, n x zz line delta, n x uv text
 *            length, n x uv params length (what filters need first).
 *   data: 1, uv nframes, nframes x (uv records, uv compressed size), then
 *         the frames: each zstd of the texts of its (up to BLK_FRAME)
 *         records, then their params ("\x1f"-joined variable values with a
 *         leading and trailing "\x1f", so an exact value is a substring
 *         "\x1fVALUE\x1f"). Frames keep reading one record cheap.
 *
 * Every decoder checks counts and lengths against the blob it reads and
 * names the block on error.
 */
#include "logs/block_internal.h"

#include <stdlib.h>
#include <string.h>

int log_buf_uv(kv_buf *b, uint64_t v) {
  /* hot (several per record): write in place, keeping kv_buf's NUL */
  if (b->len + 11 > b->cap && kv_buf_reserve(b, 10)) return KV_ENOMEM;
  uint8_t *p = (uint8_t *)b->data + b->len, *p0 = p;
  while (v >= 0x80) {
    *p++ = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  *p++ = (uint8_t)v;
  b->len += (size_t)(p - p0);
  b->data[b->len] = 0;
  return 0;
}

int log_get_uv(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  uint64_t r = 0;
  const uint8_t *q = *p;
  for (int s = 0; s < 64; s += 7) {
    if (q >= end) return -1;
    uint8_t c = *q++;
    r |= (uint64_t)(c & 0x7f) << s;
    if (!(c & 0x80)) {
      *v = r, *p = q;
      return 0;
    }
  }
  return -1;
}

static uint64_t zz(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzz(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

void log_blk_reset(log_block *b, int64_t id, int64_t file_id) {
  b->id = id, b->file_id = file_id;
  b->c.n = 0;
  kv_buf_reset(&b->text), kv_buf_reset(&b->par), kv_buf_reset(&b->fts), kv_buf_reset(&b->nums);
  kv_buf_reset(&b->summ), kv_buf_reset(&b->meta), kv_buf_reset(&b->data), kv_buf_reset(&b->nbloom);
}

void log_blk_free(log_block *b) {
  if (!b) return;
  kv_buf_free(&b->text), kv_buf_free(&b->par), kv_buf_free(&b->fts), kv_buf_free(&b->nums);
  kv_buf_free(&b->summ), kv_buf_free(&b->meta), kv_buf_free(&b->data), kv_buf_free(&b->nbloom);
}

/* distinct keys of a block with the earliest ts of each and, for patterns,
 * count, latest ts, first record and worst level (open addressing) */
typedef struct kmin {
  uint32_t key[2 * BLK_MAX], cnt[2 * BLK_MAX], fl[2 * BLK_MAX];
  int64_t min[2 * BLK_MAX], max[2 * BLK_MAX];
  uint8_t used[2 * BLK_MAX];
  uint32_t order[BLK_MAX], n;
} kmin;

static void kmin_add(kmin *k, uint32_t key, int64_t ts, uint32_t idx, int lvl) {
  uint32_t j = (key * 2654435761u) & (2 * BLK_MAX - 1);
  while (k->used[j] && k->key[j] != key) j = (j + 1) & (2 * BLK_MAX - 1);
  if (!k->used[j]) {
    k->used[j] = 1, k->key[j] = key, k->min[j] = k->max[j] = ts, k->cnt[j] = 1;
    k->fl[j] = idx << 3 | (uint32_t)lvl;
    k->order[k->n++] = j;
    return;
  }
  if (ts < k->min[j]) k->min[j] = ts;
  if (ts > k->max[j]) k->max[j] = ts;
  k->cnt[j]++;
  if ((uint32_t)lvl > (k->fl[j] & 7)) k->fl[j] = (k->fl[j] & ~7u) | (uint32_t)lvl;
}

static int kmin_put(kv_buf *o, const kmin *k, int64_t base, int full) {
  int rc = log_buf_uv(o, k->n);
  for (uint32_t i = 0; i < k->n && !rc; i++) {
    uint32_t j = k->order[i];
    rc = log_buf_uv(o, k->key[j]);
    if (!rc) rc = log_buf_uv(o, (uint64_t)k->min[j] - (uint64_t)base);
    if (!rc && full) rc = log_buf_uv(o, k->cnt[j]);
    if (!rc && full) rc = log_buf_uv(o, (uint64_t)k->max[j] - (uint64_t)base);
    if (!rc && full) rc = log_buf_uv(o, k->fl[j]);
  }
  return rc;
}

/* the bloom filters' hash: 8 bytes a step, multiply and fold. Not FNV-1a
 * (only its basis is borrowed), so not kv_hash64: the blooms are persisted
 * (bsum.summ, bsum.nbloom), so it stays bit-identical. */
static uint64_t bloom_hash(const void *p, size_t n) {
  const uint8_t *s = p;
  uint64_t h = 1469598103934665603ULL ^ (n * 0x9e3779b97f4a7c15ULL);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    memcpy(&w, s + i, 8);
    h = (h ^ w) * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
  }
  uint64_t t = 0;
  for (size_t k = 0; i + k < n; k++) t |= (uint64_t)s[i + k] << (8 * k);
  h = (h ^ t) * 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 31;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 29);
}

static void bloom_set(uint8_t *bl, uint32_t bits, uint64_t h) {
  uint32_t a = (uint32_t)h, d = (uint32_t)(h >> 32) | 1;
  for (int k = 0; k < 4; k++, a += d) bl[(a & (bits - 1)) >> 3] |= (uint8_t)(1u << (a & 7));
}

/* the bloom of the "\x1f"-joined values in v (bpv bits a value), appended
 * to s; with `lgout` its log2 size first as a varint */
static int bloom_build(kv_buf *s, const kv_buf *v, size_t bpv, int lgout) {
  size_t nv = 0;
  const uint8_t *vp = (const uint8_t *)v->data;
  for (size_t i = 0; i < v->len; i++) nv += vp[i] == 0x1f;
  if (v->len) nv++;
  if (!nv) return lgout ? log_buf_uv(s, 0) : 0;
  uint32_t lg = 9;
  while (lg < 17 && ((size_t)1 << lg) < nv * bpv) lg++;
  uint32_t bits = 1u << lg;
  if ((lgout && log_buf_uv(s, lg)) || kv_buf_reserve(s, bits / 8)) return KV_ENOMEM;
  uint8_t *bl = (uint8_t *)s->data + s->len;
  memset(bl, 0, bits / 8);
  size_t st = 0;
  for (size_t i = 0; i <= v->len; i++)
    if (i == v->len || vp[i] == 0x1f) {
      bloom_set(bl, bits, bloom_hash(vp + st, i - st));
      st = i + 1;
    }
  s->len += bits / 8;
  s->data[s->len] = 0; /* kv_buf keeps a NUL after its bytes */
  return 0;
}

int log_blk_bloom_test(const uint8_t *bl, size_t bytes, const char *v, size_t n) {
  if (!bl || bytes == 0 || (bytes & (bytes - 1))) return 0;
  uint32_t bits = (uint32_t)(bytes * 8);
  uint64_t h = bloom_hash(v, n);
  uint32_t a = (uint32_t)h, d = (uint32_t)(h >> 32) | 1;
  for (int k = 0; k < 4; k++, a += d) {
    uint32_t bit = a & (bits - 1);
    if (!(bl[bit >> 3] & (1u << (bit & 7)))) return 0;
  }
  return 1;
}

int log_blk_bloom_has(const log_blk_sum *s, const char *v, size_t n) { return log_blk_bloom_test(s->bloom, s->bloom_bits / 8, v, n); }

static int zput(kv_buf *out, const kv_buf *in, ZSTD_CCtx *cc, int64_t id, kv_err *err) {
  size_t bound = ZSTD_compressBound(in->len);
  kv_buf_reset(out);
  if (kv_buf_reserve(out, bound)) return kv_err_set(err, KV_ENOMEM, "logs: out of memory compressing block %lld", (long long)id);
  size_t z = ZSTD_compressCCtx(cc, out->data, bound, in->data, in->len, BLK_ZLEVEL);
  if (ZSTD_isError(z))
    return kv_err_set(err, KV_EIO, "logs: compressing block %lld: %s", (long long)id, ZSTD_getErrorName(z));
  out->len = z;
  return 0;
}

int log_blk_encode(log_block *b, ZSTD_CCtx *cc, kv_err *err) {
  const log_blk_cols *c = &b->c;
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  int64_t lmin[8];
  uint32_t mask = 0;
  for (int l = 0; l < 8; l++) lmin[l] = INT64_MAX;
  kmin *kp = malloc(sizeof *kp), *kc = malloc(sizeof *kc);
  if (!kp || !kc) {
    free(kp), free(kc);
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory encoding block %lld", (long long)b->id);
  }
  memset(kp->used, 0, sizeof kp->used), kp->n = 0;
  memset(kc->used, 0, sizeof kc->used), kc->n = 0;
  for (uint32_t i = 0; i < c->n; i++) {
    int64_t t = c->ts[i];
    if (t < lo) lo = t;
    if (t > hi) hi = t;
    int l = c->lvl[i] & 7;
    mask |= 1u << l;
    if (t < lmin[l]) lmin[l] = t;
    kmin_add(kp, c->pat[i], t, i, l);
    if (c->comp[i]) kmin_add(kc, c->comp[i], t, i, l);
  }
  b->ts_min = lo, b->ts_max = hi, b->lvl_mask = mask;
  kv_buf *s = &b->summ;
  kv_buf_reset(s);
  int rc = log_buf_uv(s, BLK_FORMAT);
  if (!rc) rc = kmin_put(s, kp, lo, 1);
  if (!rc) rc = kmin_put(s, kc, lo, 0);
  for (int l = 0; l < 8 && !rc; l++)
    if (mask & (1u << l)) rc = log_buf_uv(s, (uint64_t)lmin[l] - (uint64_t)lo);
  free(kp), free(kc);
  if (!rc) rc = bloom_build(s, &b->fts, 10, 1);
  kv_buf_reset(&b->nbloom);
  if (!rc) rc = bloom_build(&b->nbloom, &b->nums, 6, 0);
  /* meta, raw then compressed (the summary buffer's neighbour serves as scratch) */
  kv_buf raw = {0};
  if (!rc) rc = kv_buf_reserve(&raw, 16 + (size_t)c->n * 40);
  if (!rc) {
    log_buf_uv(&raw, BLK_FORMAT);
    log_buf_uv(&raw, c->n);
    int64_t prev = 0;
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, zz((int64_t)((uint64_t)c->ts[i] - (uint64_t)prev))), prev = c->ts[i];
    kv_buf_append(&raw, c->lvl, c->n);
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, c->comp[i]);
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, c->pat[i]);
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, zz(c->pid[i]));
    prev = 0;
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, zz((int64_t)((uint64_t)c->line[i] - (uint64_t)prev))), prev = c->line[i];
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, c->tlen[i]);
    for (uint32_t i = 0; i < c->n; i++) log_buf_uv(&raw, c->plen[i]);
    if (!kv_buf_ok(&raw)) rc = kv_err_set(err, KV_ENOMEM, "logs: block %lld: meta overflow", (long long)b->id);
  }
  /* meta stays uncompressed: queries decode many blocks' columns, and
   * varints are already compact (zstd took half of a query's time) */
  kv_buf_reset(&b->meta);
  if (!rc && kv_buf_append(&b->meta, raw.data, raw.len))
    rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory encoding block %lld", (long long)b->id);
  /* data: frames of BLK_FRAME records, each its texts then its params */
  uint32_t nf = (c->n + BLK_FRAME - 1) / BLK_FRAME;
  kv_buf *d = &b->data, z = {0};
  kv_buf_reset(d);
  if (!rc) rc = log_buf_uv(d, BLK_FORMAT);
  if (!rc) rc = log_buf_uv(d, nf);
  size_t to = 0, po = 0;
  kv_buf zs = {0}; /* the compressed frames, appended after the frame table */
  for (uint32_t f = 0; f < nf && !rc; f++) {
    uint32_t r0 = f * BLK_FRAME, r1 = r0 + BLK_FRAME < c->n ? r0 + BLK_FRAME : c->n;
    size_t tn = 0, pn = 0;
    for (uint32_t i = r0; i < r1; i++) tn += c->tlen[i], pn += c->plen[i];
    kv_buf_reset(&raw);
    if (kv_buf_append(&raw, b->text.data + to, tn) || kv_buf_append(&raw, b->par.data + po, pn)) {
      rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory encoding block %lld", (long long)b->id);
      break;
    }
    to += tn, po += pn;
    if ((rc = zput(&z, &raw, cc, b->id, err))) break;
    if (log_buf_uv(d, r1 - r0) || log_buf_uv(d, z.len) || kv_buf_append(&zs, z.data, z.len))
      rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory encoding block %lld", (long long)b->id);
  }
  if (!rc && kv_buf_append(d, zs.data, zs.len)) rc = kv_err_set(err, KV_ENOMEM, "logs: out of memory encoding block %lld", (long long)b->id);
  kv_buf_free(&z);
  kv_buf_free(&zs);
  kv_buf_free(&raw);
  return rc;
}

static int bad(kv_err *err, int64_t id, const char *what) {
  return kv_err_set(err, KV_EFORMAT, "logs: block %lld: corrupt %s", (long long)id, what);
}

int log_blk_sum_decode(log_blk_sum *s, const void *p, size_t n, kv_err *err) {
  const uint8_t *q = p, *end = q + n;
  uint64_t v, np, nc;
  s->pat = NULL, s->pat_min = NULL, s->comp = NULL, s->comp_min = NULL;
  if (log_get_uv(&q, end, &v) || v != BLK_FORMAT) return bad(err, s->id, "summary (format)");
  if (log_get_uv(&q, end, &np) || np > BLK_MAX) return bad(err, s->id, "summary (patterns)");
  const uint8_t *pq = q;
  for (uint64_t i = 0; i < 5 * np; i++)
    if (log_get_uv(&q, end, &v)) return bad(err, s->id, "summary (patterns)");
  if (log_get_uv(&q, end, &nc) || nc > BLK_MAX) return bad(err, s->id, "summary (components)");
  /* one allocation: 8-byte arrays first, then the 4-byte ones */
  void *mem = malloc((size_t)np * 28 + (size_t)nc * 12 + 1);
  if (!mem) return kv_err_set(err, KV_ENOMEM, "logs: out of memory reading block %lld", (long long)s->id);
  s->pat_min = mem;
  s->pat_max = s->pat_min + np;
  s->comp_min = s->pat_max + np;
  s->pat = (uint32_t *)(s->comp_min + nc);
  s->pat_cnt = s->pat + np;
  s->pat_fl = s->pat_cnt + np;
  s->comp = s->pat_fl + np;
  s->npat = (uint32_t)np, s->ncomp = (uint32_t)nc;
  for (uint64_t i = 0; i < np; i++) {
    log_get_uv(&pq, end, &v), s->pat[i] = (uint32_t)v;
    log_get_uv(&pq, end, &v), s->pat_min[i] = (int64_t)((uint64_t)s->ts_min + v);
    log_get_uv(&pq, end, &v), s->pat_cnt[i] = (uint32_t)v;
    log_get_uv(&pq, end, &v), s->pat_max[i] = (int64_t)((uint64_t)s->ts_min + v);
    log_get_uv(&pq, end, &v), s->pat_fl[i] = (uint32_t)v;
    if (s->pat_cnt[i] == 0 || s->pat_cnt[i] > s->n || (s->pat_fl[i] >> 3) >= s->n) goto fail;
  }
  for (uint64_t i = 0; i < nc; i++) {
    uint64_t k;
    if (log_get_uv(&q, end, &k) || log_get_uv(&q, end, &v)) goto fail;
    s->comp[i] = (uint32_t)k, s->comp_min[i] = (int64_t)((uint64_t)s->ts_min + v);
  }
  for (int l = 0; l < 8; l++) {
    s->lvl_min[l] = INT64_MAX;
    if (!(s->lvl_mask & (1u << l))) continue;
    if (log_get_uv(&q, end, &v)) goto fail;
    s->lvl_min[l] = (int64_t)((uint64_t)s->ts_min + v);
  }
  s->bloom = NULL, s->bloom_bits = 0;
  if (log_get_uv(&q, end, &v) || (v != 0 && (v < 3 || v > 20))) goto fail;
  if (v) {
    size_t nb = ((size_t)1 << v) / 8;
    if ((size_t)(end - q) < nb || !(s->bloom = malloc(nb))) goto fail;
    memcpy(s->bloom, q, nb);
    s->bloom_bits = 1u << v;
  }
  return 0;
fail:
  log_blk_sum_free(s);
  return bad(err, s->id, "summary");
}

void log_blk_sum_free(log_blk_sum *s) {
  free(s->pat_min);
  free(s->bloom);
  s->bloom = NULL;
  s->pat_min = NULL, s->pat = NULL, s->comp = NULL, s->comp_min = NULL;
}

/* varint read, one-byte values inline */
#define GET_UV(q, end, v, fail)                 \
  do {                                          \
    if ((q) < (end) && *(q) < 0x80) {           \
      (v) = *(q)++;                             \
    } else if (log_get_uv(&(q), (end), &(v))) { \
      goto fail;                                \
    }                                           \
  } while (0)

int log_blk_meta_decode(log_blk_cols *c, const void *z, size_t zn, ZSTD_DCtx *dc, int64_t id, kv_err *err) {
  const size_t cap = 16 + (size_t)BLK_MAX * 64;
  c->full = 0, c->rn = 0;
  if (!c->raw && !(c->raw = malloc(cap))) return kv_err_set(err, KV_ENOMEM, "logs: out of memory reading block %lld", (long long)id);
  (void)dc;
  if (zn > cap) return bad(err, id, "columns (size)");
  memcpy(c->raw, z, zn);
  size_t rn = zn;
  const uint8_t *q = c->raw, *end = c->raw + rn;
  uint64_t v, n;
  const char *what = "format";
  GET_UV(q, end, v, fail);
  if (v != BLK_FORMAT) goto fail;
  what = "count";
  GET_UV(q, end, n, fail);
  if (n > BLK_MAX) goto fail;
  c->n = (uint32_t)n;
  uint64_t prev = 0;
  what = "ts";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    prev += (uint64_t)unzz(v);
    c->ts[i] = (int64_t)prev;
  }
  what = "level";
  if ((size_t)(end - q) < n) goto fail;
  memcpy(c->lvl, q, n);
  q += n;
  what = "component";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    c->comp[i] = (uint32_t)v;
  }
  what = "pattern";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    c->pat[i] = (uint32_t)v;
  }
  c->rn = rn, c->rest = (size_t)(q - c->raw);
  return 0;
fail:
  return kv_err_set(err, KV_EFORMAT, "logs: block %lld: corrupt columns (%s)", (long long)id, what);
}

int log_blk_meta_rest(log_blk_cols *c, int64_t id, kv_err *err) {
  if (c->full) return 0;
  if (!c->raw || c->rest > c->rn) return bad(err, id, "columns (state)");
  const uint8_t *q = c->raw + c->rest, *end = c->raw + c->rn;
  uint64_t v, prev = 0;
  uint32_t n = c->n;
  const char *what = "pid";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    c->pid[i] = unzz(v);
  }
  what = "line";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    prev += (uint64_t)unzz(v);
    c->line[i] = (int64_t)prev;
  }
  what = "text length";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    if (v > (1u << 30)) goto fail;
    c->tlen[i] = (uint32_t)v;
  }
  what = "params length";
  for (uint32_t i = 0; i < n; i++) {
    GET_UV(q, end, v, fail);
    if (v > (1u << 30)) goto fail;
    c->plen[i] = (uint32_t)v;
  }
  c->full = 1;
  return 0;
fail:
  return kv_err_set(err, KV_EFORMAT, "logs: block %lld: corrupt columns (%s)", (long long)id, what);
}

void log_blk_cols_free(log_blk_cols *c) {
  free(c->raw);
  c->raw = NULL;
  c->full = 0, c->rn = c->rest = 0;
}

int log_blk_frame_find(log_blk_cols *c, const void *hdr, size_t hn, size_t total, uint32_t rec, uint32_t *r0, uint32_t *r1,
                   size_t *off, size_t *zlen, int64_t id, kv_err *err) {
  int rc = log_blk_meta_rest(c, id, err);
  if (rc) return rc;
  const uint8_t *q = hdr, *end = q + hn;
  uint64_t v, nf;
  if (log_get_uv(&q, end, &v) || v != BLK_FORMAT) return bad(err, id, "texts (format)");
  if (log_get_uv(&q, end, &nf) || nf > BLK_MAX) return bad(err, id, "texts (frames)");
  uint64_t at = 0, skip = 0, zl0 = 0, nrec = 0;
  int found = 0;
  for (uint64_t f = 0; f < nf; f++) {
    uint64_t nr, zl;
    if (log_get_uv(&q, end, &nr) || log_get_uv(&q, end, &zl) || nr > BLK_MAX || zl > total)
      return hn < total ? 1 : bad(err, id, "texts (frame table)"); /* 1: read more of the header */
    if (!found && rec >= at && rec < at + nr) found = 1, *r0 = (uint32_t)at, nrec = nr, zl0 = zl;
    else if (!found) skip += zl;
    at += nr;
  }
  size_t table = (size_t)(q - (const uint8_t *)hdr);
  if (!found || at != c->n || total - table < skip + zl0) return bad(err, id, "texts (frame table)");
  *r1 = *r0 + (uint32_t)nrec;
  *off = table + skip, *zlen = zl0;
  return 0;
}

int log_blk_frame_unpack(const log_blk_cols *c, const void *z, size_t zlen, uint32_t r0, uint32_t r1, ZSTD_DCtx *dc, kv_buf *out,
                     size_t *toff, size_t *poff, int64_t id, kv_err *err) {
  size_t tt = 0, pt = 0;
  for (uint32_t i = r0; i < r1; i++) toff[i - r0] = tt, tt += c->tlen[i];
  for (uint32_t i = r0; i < r1; i++) poff[i - r0] = tt + pt, pt += c->plen[i];
  kv_buf_reset(out);
  if (kv_buf_reserve(out, tt + pt + 1))
    return kv_err_set(err, KV_ENOMEM, "logs: out of memory reading block %lld", (long long)id);
  size_t rn = ZSTD_decompressDCtx(dc, out->data, tt + pt + 1, z, zlen);
  if (ZSTD_isError(rn) || rn != tt + pt) return bad(err, id, "texts");
  out->len = rn;
  out->data[rn] = 0;
  return 0;
}
