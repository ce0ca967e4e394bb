/*
 * snap.c — KV prefix snapshots on disk ($XDG_CACHE_HOME/kvasir/kv/),
 * written once, mmap'd on load, every byte covered by a checksum so that a
 * corrupt or stale file is detected and recomputed, never used.
 *
 * Format, version 3 (little-endian, every section a multiple of 8 bytes and
 * sections contiguous, so there is no byte that no checksum covers):
 *
 *   header, 64 bytes
 *     0  magic "KVMSNAP\0"        8  u32 version (3)     12 u32 n_sections
 *     16 u64 model_hash           24 u64 token_hash      32 u64 n_tokens
 *     40 u64 file_size            48 u64 table_hash      56 u64 header_hash (of bytes 0..55)
 *   section table, n_sections x 32 bytes
 *     u64 offset | u64 size | u64 hash (kvm_hash64 of the section, seed 0) | u32 kind | u32 layer
 *   sections, in table order, the first at 64 + 32*n_sections:
 *     CONFIG (kvm_config as i32: n_layers n_heads n_kv_heads head_dim sinks window
 *             block key_bits val_bits val_rot select, then per layer mode, layer_window; zero pad)
 *     SEGS   (u64 n_segs, u64 chain[n], u64 seg_end[n])
 *     META   (per layer i32 mode n n_sink win_start n_win n_blocks)
 *     then per layer: SINK_K SINK_V WIN_K WIN_V (f16 rows, [rows][n_kv_heads*head_dim],
 *             window rows in position order; FULL layers keep all rows in WIN_*),
 *             and one BLOCK section per compressed block (layout in internal.h).
 *
 * Versions: 2 records val_rot and select in CONFIG; 3 stores a block's
 * pooled summary in 4 bits (mean key as a code within the block's key range,
 * mean value symmetric; was int8 with two f16 scales), so a block's head
 * slice is D+2 bytes smaller before padding (3720 -> 3656 at D = B = 64). A file of another version is refused at its version
 * field (offset 8) before anything else is read.
 *
 * Invariant: kvm_snapshot_load returns a prefix only when magic, version,
 * both hashes of the header, every section hash, the file size, the config,
 * the model hash and every count check out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kvmem/internal.h"

enum { SEC_CONFIG = 1, SEC_SEGS, SEC_META, SEC_SINK_K, SEC_SINK_V, SEC_WIN_K, SEC_WIN_V, SEC_BLOCK };
#define SNAP_VERSION 3u
#define HDR 64
#define ENT 32

typedef struct sec {
  const void *p;
  size_t n;
  uint32_t kind, layer;
  void *own; /* malloc'd temp to free */
} sec;

static void put64(uint8_t *b, uint64_t v) { memcpy(b, &v, 8); }
static void put32(uint8_t *b, uint32_t v) { memcpy(b, &v, 4); }
static uint64_t get64(const uint8_t *b) { uint64_t v; memcpy(&v, b, 8); return v; }
static uint32_t get32(const uint8_t *b) { uint32_t v; memcpy(&v, b, 4); return v; }

static size_t config_bytes(const kvm_config *c) { return ((size_t)(11 + 2 * c->n_layers) * 4 + 7) & ~(size_t)7; }

static void config_write(const kvm_config *c, uint8_t *b) {
  int32_t f[11] = {c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->sinks, c->window,
                   c->block, c->key_bits, c->val_bits, c->val_rot, c->select};
  memset(b, 0, config_bytes(c));
  memcpy(b, f, sizeof f);
  for (int l = 0; l < c->n_layers; l++) {
    int32_t m = c->layer_mode[l], w = c->layer_mode[l] == KVM_LOCAL ? c->layer_window[l] : 0;
    memcpy(b + 44 + 8 * (size_t)l, &m, 4);
    memcpy(b + 48 + 8 * (size_t)l, &w, 4);
  }
}

int kvm_snapshot_write(const char *path, const kvm_cache *c, uint64_t model_hash, uint64_t token_hash,
                       const uint64_t *chain, const uint64_t *seg_end, int n_segs, kv_err *err) {
  const kvm_config *k = &c->cfg;
  size_t kvd = (size_t)c->kvd, rowb = kvd * 2;
  int nsec_max = 3;
  for (int l = 0; l < k->n_layers; l++) nsec_max += 4 + c->layers[l].n_blocks;
  sec *S = calloc((size_t)nsec_max, sizeof *S);
  uint8_t *cfgb = malloc(config_bytes(k)), *segb = malloc(8 + 16 * (size_t)n_segs),
          *meta = malloc(24 * (size_t)k->n_layers);
  int rc = 0, ns = 0;
  char tmp[4200];
  FILE *f = NULL;
  if (!S || !cfgb || !segb || !meta) {
    rc = kv_err_set(err, KV_ENOMEM, "%s: snapshot buffers", path);
    goto done;
  }
  config_write(k, cfgb);
  put64(segb, (uint64_t)n_segs);
  for (int i = 0; i < n_segs; i++) {
    put64(segb + 8 + 8 * (size_t)i, chain[i]);
    put64(segb + 8 + 8 * (size_t)n_segs + 8 * (size_t)i, seg_end[i]);
  }
  S[ns++] = (sec){cfgb, config_bytes(k), SEC_CONFIG, 0, NULL};
  S[ns++] = (sec){segb, 8 + 16 * (size_t)n_segs, SEC_SEGS, 0, NULL};
  S[ns++] = (sec){meta, 24 * (size_t)k->n_layers, SEC_META, 0, NULL};
  for (int l = 0; l < k->n_layers; l++) {
    const kvm_layer *ly = &c->layers[l];
    if (ly->mode == KVM_FULL && ly->base_n) {
      rc = kv_err_set(err, KV_EINVAL, "%s: layer %d shares rows with a parent; materialize first", path, l);
      goto done;
    }
    int32_t m[6] = {ly->mode, ly->n, ly->n_sink, ly->win_start, ly->n_win, ly->n_blocks};
    memcpy(meta + 24 * (size_t)l, m, 24);
    S[ns++] = (sec){ly->sk, rowb * (size_t)ly->n_sink, SEC_SINK_K, (uint32_t)l, NULL};
    S[ns++] = (sec){ly->sv, rowb * (size_t)ly->n_sink, SEC_SINK_V, (uint32_t)l, NULL};
    if (ly->mode == KVM_LOCAL) { /* ring -> position order */
      for (int w = 0; w < 2; w++) {
        uint8_t *t = malloc(rowb * (size_t)ly->n_win + 1);
        if (!t) {
          rc = kv_err_set(err, KV_ENOMEM, "%s: ring copy", path);
          goto done;
        }
        const uint16_t *src = w ? ly->wv : ly->wk;
        for (int i = 0; i < ly->n_win; i++) {
          int pos = ly->n - ly->n_win + i;
          memcpy(t + (size_t)i * rowb, src + (size_t)(pos % ly->win_cap) * kvd, rowb);
        }
        S[ns++] = (sec){t, rowb * (size_t)ly->n_win, w ? SEC_WIN_V : SEC_WIN_K, (uint32_t)l, t};
      }
    } else {
      S[ns++] = (sec){ly->wk, rowb * (size_t)ly->n_win, SEC_WIN_K, (uint32_t)l, NULL};
      S[ns++] = (sec){ly->wv, rowb * (size_t)ly->n_win, SEC_WIN_V, (uint32_t)l, NULL};
    }
    for (int b = 0; b < ly->n_blocks; b++) S[ns++] = (sec){ly->blocks[b], c->L.block_bytes, SEC_BLOCK, (uint32_t)l, NULL};
  }
  size_t tab = (size_t)ns * ENT, off = HDR + tab;
  uint8_t *hdr = calloc(1, HDR + tab);
  if (!hdr) {
    rc = kv_err_set(err, KV_ENOMEM, "%s: snapshot table", path);
    goto done;
  }
  for (int i = 0; i < ns; i++) {
    uint8_t *e = hdr + HDR + (size_t)i * ENT;
    put64(e, off);
    put64(e + 8, S[i].n);
    put64(e + 16, kvm_hash64(S[i].p, S[i].n, 0));
    put32(e + 24, S[i].kind);
    put32(e + 28, S[i].layer);
    off += S[i].n;
  }
  memcpy(hdr, "KVMSNAP", 8);
  put32(hdr + 8, SNAP_VERSION);
  put32(hdr + 12, (uint32_t)ns);
  put64(hdr + 16, model_hash);
  put64(hdr + 24, token_hash);
  put64(hdr + 32, (uint64_t)c->layers[0].n);
  put64(hdr + 40, off);
  put64(hdr + 48, kvm_hash64(hdr + HDR, tab, 0));
  put64(hdr + 56, kvm_hash64(hdr, 56, 0));
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  f = fopen(tmp, "wb");
  if (!f) {
    free(hdr);
    rc = kv_err_set(err, KV_EIO, "%s: %s", tmp, strerror(errno));
    goto done;
  }
  int ok = fwrite(hdr, 1, HDR + tab, f) == HDR + tab;
  free(hdr);
  for (int i = 0; i < ns && ok; i++) ok = S[i].n == 0 || fwrite(S[i].p, 1, S[i].n, f) == S[i].n;
  if (fclose(f) != 0) ok = 0;
  if (!ok || rename(tmp, path) != 0) {
    unlink(tmp);
    rc = kv_err_set(err, KV_EIO, "%s: writing snapshot: %s", path, strerror(errno));
  }
done:
  for (int i = 0; S && i < ns; i++) free(S[i].own);
  free(S);
  free(cfgb);
  free(segb);
  free(meta);
  return rc;
}

/* Checks the header and the table (and, when full, every section hash). */
static int verify(const uint8_t *m, size_t size, const char *path, int full, kv_err *err) {
  if (size < HDR) return kv_err_set(err, KV_EFORMAT, "%s: %zu bytes, shorter than the header", path, size);
  if (memcmp(m, "KVMSNAP", 8)) return kv_err_set(err, KV_EFORMAT, "%s: bad magic at offset 0", path);
  if (get32(m + 8) != SNAP_VERSION)
    return kv_err_set(err, KV_EFORMAT, "%s: version %u at offset 8, expected %u", path, get32(m + 8), SNAP_VERSION);
  if (get64(m + 56) != kvm_hash64(m, 56, 0)) return kv_err_set(err, KV_EFORMAT, "%s: header checksum (offset 56)", path);
  if (full && get64(m + 40) != size)
    return kv_err_set(err, KV_EFORMAT, "%s: file_size field %llu (offset 40) but file has %zu bytes", path,
                      (unsigned long long)get64(m + 40), size);
  uint64_t ns = get32(m + 12);
  if (ns < 3 || ns > (size - HDR) / ENT) return kv_err_set(err, KV_EFORMAT, "%s: n_sections %llu (offset 12)", path, (unsigned long long)ns);
  if (get64(m + 48) != kvm_hash64(m + HDR, ns * ENT, 0))
    return kv_err_set(err, KV_EFORMAT, "%s: section table checksum (offset 48)", path);
  uint64_t off = HDR + ns * ENT, fsz = get64(m + 40);
  for (uint64_t i = 0; i < ns; i++) {
    const uint8_t *e = m + HDR + i * ENT;
    uint64_t o = get64(e), n = get64(e + 8);
    if (o != off || n % 8 || n > fsz - o)
      return kv_err_set(err, KV_EFORMAT, "%s: section %llu at table offset %llu: offset %llu size %llu", path,
                        (unsigned long long)i, (unsigned long long)(HDR + i * ENT), (unsigned long long)o,
                        (unsigned long long)n);
    if ((full || i < 2) && (o + n > size || get64(e + 16) != kvm_hash64(m + o, n, 0)))
      return kv_err_set(err, KV_EFORMAT, "%s: section %llu (kind %u, layer %u) checksum, bytes %llu..%llu", path,
                        (unsigned long long)i, get32(e + 24), get32(e + 28), (unsigned long long)o,
                        (unsigned long long)(o + n));
    off = o + n;
  }
  if (off != fsz) return kv_err_set(err, KV_EFORMAT, "%s: sections end at %llu, file_size says %llu", path, (unsigned long long)off, (unsigned long long)fsz);
  return 0;
}

static const uint8_t *sec_at(const uint8_t *m, uint64_t i, uint32_t kind, uint32_t layer, size_t want, const char *path,
                             kv_err *err) {
  const uint8_t *e = m + HDR + i * ENT;
  if (get32(e + 24) != kind || get32(e + 28) != layer || get64(e + 8) != want) {
    kv_err_set(err, KV_EFORMAT, "%s: section %llu: kind %u layer %u size %llu, expected kind %u layer %u size %zu",
               path, (unsigned long long)i, get32(e + 24), get32(e + 28), (unsigned long long)get64(e + 8), kind,
               layer, want);
    return NULL;
  }
  return m + get64(e);
}

static int parse_segs(const uint8_t *m, const char *path, uint64_t **chain, uint64_t **seg_end, int *n_segs,
                      kv_err *err) {
  const uint8_t *e = m + HDR + ENT;
  uint64_t n = get64(e + 8);
  if (get32(e + 24) != SEC_SEGS || n < 8) return kv_err_set(err, KV_EFORMAT, "%s: section 1 is not SEGS", path);
  const uint8_t *s = m + get64(e);
  uint64_t k = get64(s);
  if (k > 1u << 20 || 8 + 16 * k != n) return kv_err_set(err, KV_EFORMAT, "%s: SEGS count %llu", path, (unsigned long long)k);
  *chain = malloc(8 * (size_t)(k ? k : 1));
  *seg_end = malloc(8 * (size_t)(k ? k : 1));
  if (!*chain || !*seg_end) {
    free(*chain);
    free(*seg_end);
    return kv_err_set(err, KV_ENOMEM, "%s: SEGS", path);
  }
  for (uint64_t i = 0; i < k; i++) {
    (*chain)[i] = get64(s + 8 + 8 * i);
    (*seg_end)[i] = get64(s + 8 + 8 * k + 8 * i);
  }
  *n_segs = (int)k;
  return 0;
}

int kvm_snapshot_peek(const char *path, const kvm_config *cfg, uint64_t model_hash, uint64_t **chain,
                      uint64_t **seg_end, int *n_segs, kv_err *err) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) || st.st_size < HDR) {
    close(fd);
    return kv_err_set(err, KV_EFORMAT, "%s: too short", path);
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return kv_err_set(err, KV_EIO, "%s: mmap: %s", path, strerror(errno));
  int rc = verify(m, (size_t)st.st_size, path, 0, err);
  if (!rc && get64((const uint8_t *)m + 16) != model_hash) rc = kv_err_set(err, KV_EFORMAT, "%s: stale: model hash differs", path);
  if (!rc) rc = parse_segs(m, path, chain, seg_end, n_segs, err);
  munmap(m, (size_t)st.st_size);
  (void)cfg;
  return rc;
}

static int load_layers(kvm_cache *c, const uint8_t *m, const char *path, uint64_t n_tokens, kv_err *err) {
  const kvm_config *k = &c->cfg;
  size_t rowb = (size_t)c->kvd * 2;
  const uint8_t *meta = sec_at(m, 2, SEC_META, 0, 24 * (size_t)k->n_layers, path, err);
  if (!meta) return KV_EFORMAT;
  uint64_t si = 3, ns = get32(m + 12);
  for (int l = 0; l < k->n_layers; l++) {
    kvm_layer *ly = &c->layers[l];
    int32_t f[6];
    memcpy(f, meta + 24 * (size_t)l, 24);
    int mode = f[0], n = f[1], nsk = f[2], ws = f[3], nw = f[4], nb = f[5];
    int ok = mode == k->layer_mode[l] && n >= 0 && (uint64_t)n == n_tokens && n <= k->max_tokens && nsk >= 0 &&
             nw >= 0 && nb >= 0 && ws >= 0;
    if (ok && mode == KVM_FULL) ok = nsk == 0 && nb == 0 && ws == 0 && nw == n;
    if (ok && mode == KVM_LOCAL) ok = nsk == 0 && nb == 0 && nw <= n && nw <= k->layer_window[l];
    if (ok && mode == KVM_COMPRESSED)
      ok = nsk == (n < k->sinks ? n : k->sinks) && nb <= k->max_tokens / k->block + 1 &&
           ws == nsk + nb * k->block && nw == n - ws && nw < k->window + k->block;
    if (!ok || si + 4 + (uint64_t)nb > ns)
      return kv_err_set(err, KV_EFORMAT, "%s: META of layer %d (mode %d n %d sinks %d start %d window %d blocks %d)",
                        path, l, mode, n, nsk, ws, nw, nb);
    const uint8_t *p[4];
    size_t want[4] = {rowb * nsk, rowb * nsk, rowb * nw, rowb * nw};
    for (int i = 0; i < 4; i++)
      if (!(p[i] = sec_at(m, si + i, SEC_SINK_K + i, (uint32_t)l, want[i], path, err))) return KV_EFORMAT;
    si += 4;
    ly->n = n;
    ly->n_sink = nsk;
    ly->win_start = ws;
    ly->n_win = nw;
    if (mode == KVM_LOCAL) {
      int rc = kvm_layer_reserve(c, ly, k->layer_window[l], err);
      if (rc) return rc;
      for (int i = 0; i < nw; i++) {
        size_t slot = (size_t)((n - nw + i) % ly->win_cap);
        memcpy(ly->wk + slot * c->kvd, p[2] + (size_t)i * rowb, rowb);
        memcpy(ly->wv + slot * c->kvd, p[3] + (size_t)i * rowb, rowb);
      }
      continue;
    }
    ly->borrowed = 1;
    ly->sk = (uint16_t *)(uintptr_t)p[0];
    ly->sv = (uint16_t *)(uintptr_t)p[1];
    ly->wk = (uint16_t *)(uintptr_t)p[2];
    ly->wv = (uint16_t *)(uintptr_t)p[3];
    ly->win_cap = nw;
    if (mode == KVM_COMPRESSED) {
      ly->cap_blocks = nb ? nb : 1;
      ly->blocks = calloc((size_t)ly->cap_blocks, sizeof *ly->blocks);
      ly->owned_mask = calloc((size_t)ly->cap_blocks, 1);
      if (!ly->blocks || !ly->owned_mask) return kv_err_set(err, KV_ENOMEM, "%s: block table", path);
      for (int b = 0; b < nb; b++) {
        const uint8_t *bp = sec_at(m, si++, SEC_BLOCK, (uint32_t)l, c->L.block_bytes, path, err);
        if (!bp) return KV_EFORMAT;
        ly->blocks[b] = bp;
      }
      ly->n_blocks = nb;
    }
  }
  if (si != ns) return kv_err_set(err, KV_EFORMAT, "%s: %llu sections, %llu expected", path, (unsigned long long)ns, (unsigned long long)si);
  return 0;
}

int kvm_snapshot_load(const char *path, const kvm_config *cfg, uint64_t model_hash, kvm_prefix **out, kv_err *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return kv_err_set(err, KV_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) || st.st_size < HDR) {
    close(fd);
    return kv_err_set(err, KV_EFORMAT, "%s: %lld bytes, shorter than the header", path, (long long)st.st_size);
  }
  size_t size = (size_t)st.st_size;
  uint8_t *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return kv_err_set(err, KV_EIO, "%s: mmap: %s", path, strerror(errno));
  kvm_prefix *p = calloc(1, sizeof *p);
  int rc = p ? verify(m, size, path, 1, err) : kv_err_set(err, KV_ENOMEM, "prefix");
  if (!rc && get64(m + 16) != model_hash) rc = kv_err_set(err, KV_EFORMAT, "%s: stale: model hash differs (offset 16)", path);
  if (!rc) {
    uint8_t *want = malloc(config_bytes(cfg));
    if (!want) rc = kv_err_set(err, KV_ENOMEM, "config");
    else {
      config_write(cfg, want);
      const uint8_t *got = sec_at(m, 0, SEC_CONFIG, 0, config_bytes(cfg), path, err);
      if (!got) rc = KV_EFORMAT;
      else if (memcmp(got, want, config_bytes(cfg))) rc = kv_err_set(err, KV_EFORMAT, "%s: stale: KV config differs", path);
      free(want);
    }
  }
  if (!rc) {
    p->refs = 1;
    p->map = m;
    p->map_len = size;
    p->token_hash = get64(m + 24);
    rc = parse_segs(m, path, &p->chain, &p->seg_end, &p->n_segs, err);
  }
  if (!rc) rc = kvm_cache_alloc_shell(&p->cache, cfg, err);
  if (!rc) rc = load_layers(p->cache, m, path, get64(m + 32), err);
  if (rc) {
    if (p) {
      kvm_cache_free(p->cache);
      free(p->chain);
      free(p->seg_end);
      free(p);
    }
    munmap(m, size);
    return rc;
  }
  p->bytes = size; /* the mapping, plus local rings copied out of it */
  for (int l = 0; l < cfg->n_layers; l++)
    if (p->cache->layers[l].mode == KVM_LOCAL) p->bytes += (size_t)p->cache->layers[l].win_cap * p->cache->kvd * 4;
  *out = p;
  return 0;
}
