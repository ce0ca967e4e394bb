/*
 * gguf.c — a validating reader for GGUF v2/v3 files (the llama.cpp model
 * format), mmap'd read-only.
 *
 * Invariants once eng_gguf_open* returns 0:
 *  - every key/value and tensor-info record lies inside the file; every
 *    string and array length was checked against the bytes that remain;
 *  - every tensor has 1..4 dims, each > 0, a known type whose block size
 *    divides ne[0], an element count below 2^48, a data offset aligned to
 *    general.alignment, and its bytes lie inside the data section without
 *    overlapping another tensor's bytes; tensor names are unique;
 *  - nothing is copied: strings and tensor data point into the mapping,
 *    which lives until eng_gguf_free.
 * Errors name the key or tensor and the byte offset where reading failed.
 */
#include "engine/engine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define GGUF_MAGIC 0x46554747u /* "GGUF" little-endian */
#define GGUF_MAX_TENSORS (1u << 20)
#define GGUF_MAX_KV (1u << 20)
#define GGUF_MAX_ELEMS (1ull << 48)

typedef struct gguf_kv {
  eng_str key;
  int type;          /* ENG_GGUF_* */
  int arr_type;      /* element type when type == ENG_GGUF_ARRAY */
  uint64_t n;        /* array length */
  const uint8_t *val; /* points at the value (after the array header) */
  size_t val_off;    /* file offset of the value, for messages */
} gguf_kv;

struct eng_gguf {
  const uint8_t *base;
  size_t size;
  int mapped;
  char name[256];
  uint32_t version;
  uint64_t n_kv, n_tensors;
  gguf_kv *kv;
  eng_tensor *tensors;
  size_t alignment, data_off;
};

/* Block geometry per GGUF type id: {elements, bytes}. Only the types this
 * reader accepts; 0 = unknown. Matches ggml's type_traits. */
static const struct { uint16_t elems, bytes; } k_types[40] = {
    [0] = {1, 4},      [1] = {1, 2},      [2] = {32, 18},   [3] = {32, 20},  [6] = {32, 22},
    [7] = {32, 24},    [8] = {32, 34},    [9] = {32, 36},   [10] = {256, 84}, [11] = {256, 110},
    [12] = {256, 144}, [13] = {256, 176}, [14] = {256, 210}, [15] = {256, 292}, [24] = {1, 1},
    [25] = {1, 2},     [26] = {1, 4},     [27] = {1, 8},    [28] = {1, 8},   [30] = {1, 2},
};

size_t eng_gguf_type_size(int type, size_t *block_elems) {
  if (type < 0 || type >= 40 || !k_types[type].elems) return 0;
  if (block_elems) *block_elems = k_types[type].elems;
  return k_types[type].bytes;
}

/* ---- bounded cursor ---- */
typedef struct cur {
  const uint8_t *p;
  size_t off, size;
  const eng_gguf *g;
  kv_err *err;
} cur;

static int need(cur *c, size_t n, const char *what) {
  if (n > c->size - c->off)
    return kv_err_set(c->err, KV_EFORMAT, "%s: truncated reading %s at byte %zu (need %zu, file has %zu)",
                      c->g->name, what, c->off, n, c->size);
  return 0;
}
static int rd_u32(cur *c, uint32_t *v, const char *what) {
  int rc = need(c, 4, what);
  if (rc) return rc;
  memcpy(v, c->p + c->off, 4);
  c->off += 4;
  return 0;
}
static int rd_u64(cur *c, uint64_t *v, const char *what) {
  int rc = need(c, 8, what);
  if (rc) return rc;
  memcpy(v, c->p + c->off, 8);
  c->off += 8;
  return 0;
}
static int rd_str(cur *c, eng_str *s, const char *what) {
  uint64_t n;
  int rc = rd_u64(c, &n, what);
  if (rc) return rc;
  if (n > c->size - c->off)
    return kv_err_set(c->err, KV_EFORMAT, "%s: %s at byte %zu has length %llu beyond the end of the file",
                      c->g->name, what, c->off - 8, (unsigned long long)n);
  s->p = (const char *)c->p + c->off;
  s->n = (size_t)n;
  c->off += (size_t)n;
  return 0;
}

static size_t scalar_size(int t) {
  switch (t) {
  case ENG_GGUF_U8: case ENG_GGUF_I8: case ENG_GGUF_BOOL: return 1;
  case ENG_GGUF_U16: case ENG_GGUF_I16: return 2;
  case ENG_GGUF_U32: case ENG_GGUF_I32: case ENG_GGUF_F32: return 4;
  case ENG_GGUF_U64: case ENG_GGUF_I64: case ENG_GGUF_F64: return 8;
  default: return 0;
  }
}

static int skip_value(cur *c, gguf_kv *kv, eng_str key) {
  if (kv->type == ENG_GGUF_STRING) {
    eng_str s;
    return rd_str(c, &s, "string value");
  }
  if (kv->type == ENG_GGUF_ARRAY) {
    uint32_t at;
    uint64_t n;
    int rc = rd_u32(c, &at, "array type");
    if (!rc) rc = rd_u64(c, &n, "array length");
    if (rc) return rc;
    kv->arr_type = (int)at;
    kv->n = n;
    kv->val = c->p + c->off;
    if (at == ENG_GGUF_STRING) {
      for (uint64_t i = 0; i < n; i++) {
        eng_str s;
        if ((rc = rd_str(c, &s, "array string"))) return rc;
      }
      return 0;
    }
    size_t es = scalar_size((int)at);
    if (!es)
      return kv_err_set(c->err, KV_EFORMAT, "%s: key '%.*s' at byte %zu: unsupported array element type %u",
                        c->g->name, (int)key.n, key.p, kv->val_off, at);
    if (n > (c->size - c->off) / es)
      return kv_err_set(c->err, KV_EFORMAT, "%s: key '%.*s' at byte %zu: array of %llu elements runs past the end",
                        c->g->name, (int)key.n, key.p, kv->val_off, (unsigned long long)n);
    c->off += (size_t)n * es;
    return 0;
  }
  size_t es = scalar_size(kv->type);
  if (!es)
    return kv_err_set(c->err, KV_EFORMAT, "%s: key '%.*s' at byte %zu: unknown value type %d", c->g->name,
                      (int)key.n, key.p, kv->val_off, kv->type);
  int rc = need(c, es, "scalar value");
  if (rc) return rc;
  c->off += es;
  return 0;
}

static int cmp_tensor_off(const void *a, const void *b) {
  const eng_tensor *x = *(const eng_tensor *const *)a, *y = *(const eng_tensor *const *)b;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static int parse(eng_gguf *g, kv_err *err) {
  cur c = {g->base, 0, g->size, g, err};
  uint32_t magic;
  int rc = rd_u32(&c, &magic, "magic");
  if (rc) return rc;
  if (magic != GGUF_MAGIC)
    return kv_err_set(err, KV_EFORMAT, "%s: not a GGUF file (bad magic 0x%08x at byte 0)", g->name, magic);
  if ((rc = rd_u32(&c, &g->version, "version"))) return rc;
  if (g->version < 2 || g->version > 3)
    return kv_err_set(err, KV_EUNSUPPORTED, "%s: GGUF version %u at byte 4 is not supported (2 or 3)", g->name,
                      g->version);
  if ((rc = rd_u64(&c, &g->n_tensors, "tensor count")) || (rc = rd_u64(&c, &g->n_kv, "key/value count")))
    return rc;
  if (g->n_tensors > GGUF_MAX_TENSORS || g->n_kv > GGUF_MAX_KV)
    return kv_err_set(err, KV_ELIMIT, "%s: absurd header at byte 8: %llu tensors, %llu keys", g->name,
                      (unsigned long long)g->n_tensors, (unsigned long long)g->n_kv);
  g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
  g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
  if (!g->kv || !g->tensors) return kv_err_set(err, KV_ENOMEM, "%s: out of memory for the header", g->name);
  g->alignment = 32;
  for (uint64_t i = 0; i < g->n_kv; i++) {
    gguf_kv *kv = &g->kv[i];
    uint32_t t;
    if ((rc = rd_str(&c, &kv->key, "key name")) || (rc = rd_u32(&c, &t, "value type"))) return rc;
    kv->type = (int)t;
    kv->val_off = c.off;
    kv->val = c.p + c.off;
    if ((rc = skip_value(&c, kv, kv->key))) return rc;
    if (kv->key.n == 17 && !memcmp(kv->key.p, "general.alignment", 17)) {
      uint32_t a;
      if (kv->type != ENG_GGUF_U32)
        return kv_err_set(err, KV_EFORMAT, "%s: key 'general.alignment' at byte %zu is not a u32", g->name,
                          kv->val_off);
      memcpy(&a, kv->val, 4);
      if (a == 0 || (a & (a - 1)) || a > 65536)
        return kv_err_set(err, KV_EFORMAT, "%s: key 'general.alignment' at byte %zu: %u is not a power of two",
                          g->name, kv->val_off, a);
      g->alignment = a;
    }
  }
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    eng_tensor *t = &g->tensors[i];
    size_t at = c.off;
    uint32_t nd, type;
    if ((rc = rd_str(&c, &t->name, "tensor name")) || (rc = rd_u32(&c, &nd, "tensor n_dims"))) return rc;
    if (nd < 1 || nd > 4)
      return kv_err_set(err, KV_EFORMAT, "%s: tensor '%.*s' at byte %zu: %u dimensions (1..4 allowed)", g->name,
                        (int)t->name.n, t->name.p, at, nd);
    t->n_dims = (int)nd;
    uint64_t nel = 1;
    for (int d = 0; d < 4; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < nd; d++) {
      if ((rc = rd_u64(&c, &t->ne[d], "tensor dim"))) return rc;
      if (t->ne[d] == 0 || t->ne[d] > GGUF_MAX_ELEMS || nel > GGUF_MAX_ELEMS / t->ne[d])
        return kv_err_set(err, KV_EFORMAT, "%s: tensor '%.*s' at byte %zu: absurd dimension ne[%u]=%llu",
                          g->name, (int)t->name.n, t->name.p, at, d, (unsigned long long)t->ne[d]);
      nel *= t->ne[d];
    }
    if ((rc = rd_u32(&c, &type, "tensor type")) || (rc = rd_u64(&c, &t->offset, "tensor offset"))) return rc;
    size_t be = 0, bb = eng_gguf_type_size((int)type, &be);
    if (!bb)
      return kv_err_set(err, KV_EUNSUPPORTED, "%s: tensor '%.*s' at byte %zu: unknown type %u", g->name,
                        (int)t->name.n, t->name.p, at, type);
    if (t->ne[0] % be)
      return kv_err_set(err, KV_EFORMAT, "%s: tensor '%.*s' at byte %zu: ne[0]=%llu is not a multiple of %zu",
                        g->name, (int)t->name.n, t->name.p, at, (unsigned long long)t->ne[0], be);
    t->type = (int)type;
    t->nbytes = (size_t)(nel / be * bb);
    for (uint64_t j = 0; j < i; j++)
      if (g->tensors[j].name.n == t->name.n && !memcmp(g->tensors[j].name.p, t->name.p, t->name.n))
        return kv_err_set(err, KV_EFORMAT, "%s: tensor '%.*s' at byte %zu: duplicate name", g->name,
                          (int)t->name.n, t->name.p, at);
  }
  g->data_off = (c.off + g->alignment - 1) / g->alignment * g->alignment;
  if (g->n_tensors && g->data_off > g->size)
    return kv_err_set(err, KV_EFORMAT, "%s: data section at byte %zu starts past the end of the file (%zu)",
                      g->name, g->data_off, g->size);
  size_t data_size = g->size > g->data_off ? g->size - g->data_off : 0;
  eng_tensor **order = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *order);
  if (!order) return kv_err_set(err, KV_ENOMEM, "%s: out of memory", g->name);
  for (uint64_t i = 0; i < g->n_tensors; i++) {
    eng_tensor *t = &g->tensors[i];
    order[i] = t;
    if (t->offset % g->alignment || t->offset > data_size || t->nbytes > data_size - t->offset) {
      rc = kv_err_set(err, KV_EFORMAT,
                      "%s: tensor '%.*s': data [%llu, +%zu) at file byte %zu is misaligned or outside the data "
                      "section (%zu bytes)",
                      g->name, (int)t->name.n, t->name.p, (unsigned long long)t->offset, t->nbytes,
                      g->data_off + (size_t)(t->offset < data_size ? t->offset : data_size), data_size);
      free(order);
      return rc;
    }
    t->data = g->base + g->data_off + t->offset;
  }
  qsort(order, g->n_tensors, sizeof *order, cmp_tensor_off);
  for (uint64_t i = 1; i < g->n_tensors; i++) {
    const eng_tensor *a = order[i - 1], *b = order[i];
    if (a->offset + a->nbytes > b->offset) {
      rc = kv_err_set(err, KV_EFORMAT, "%s: tensor '%.*s' at file byte %zu overlaps tensor '%.*s'", g->name,
                      (int)b->name.n, b->name.p, g->data_off + (size_t)b->offset, (int)a->name.n, a->name.p);
      free(order);
      return rc;
    }
  }
  free(order);
  return 0;
}

static int finish_open(eng_gguf *g, eng_gguf **out, kv_err *err) {
  int rc = parse(g, err);
  if (rc) {
    eng_gguf_free(g);
    return rc;
  }
  *out = g;
  return 0;
}

int eng_gguf_open_mem(eng_gguf **out, const void *data, size_t len, const char *name, kv_err *err) {
  *out = NULL;
  eng_gguf *g = calloc(1, sizeof *g);
  if (!g) return kv_err_set(err, KV_ENOMEM, "out of memory");
  g->base = data;
  g->size = len;
  snprintf(g->name, sizeof g->name, "%s", name ? name : "<memory>");
  return finish_open(g, out, err);
}

int eng_gguf_open(eng_gguf **out, const char *path, kv_err *err) {
  *out = NULL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return kv_err_set(err, errno == ENOENT ? KV_ENOTFOUND : KV_EIO, "%s: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return kv_err_set(err, KV_EIO, "%s: not a regular file", path);
  }
  if (st.st_size < 24) {
    close(fd);
    return kv_err_set(err, KV_EFORMAT, "%s: truncated (%lld bytes, a GGUF header needs 24)", path,
                      (long long)st.st_size);
  }
  void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
  close(fd);
  if (m == MAP_FAILED) return kv_err_set(err, KV_EIO, "%s: mmap: %s", path, strerror(errno));
  eng_gguf *g = calloc(1, sizeof *g);
  if (!g) {
    munmap(m, (size_t)st.st_size);
    return kv_err_set(err, KV_ENOMEM, "out of memory");
  }
  g->base = m;
  g->size = (size_t)st.st_size;
  g->mapped = 1;
  snprintf(g->name, sizeof g->name, "%s", path);
  return finish_open(g, out, err);
}

void eng_gguf_release(const eng_gguf *g, const void *p, size_t n) {
  const uintptr_t base = (uintptr_t)g->base, a = (uintptr_t)p;
  if (!g->mapped || a < base || n > g->size || a - base > g->size - n) return;
  const uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
  const uintptr_t lo = (a + pg - 1) / pg * pg, hi = (a + n) / pg * pg;
  if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED); /* private read-only mapping: drops our PTEs only */
}

void eng_gguf_free(eng_gguf *g) {
  if (!g) return;
  if (g->mapped) munmap((void *)g->base, g->size);
  free(g->kv);
  free(g->tensors);
  free(g);
}

const char *eng_gguf_name(const eng_gguf *g) { return g->name; }
size_t eng_gguf_n_tensors(const eng_gguf *g) { return (size_t)g->n_tensors; }
const eng_tensor *eng_gguf_tensor_at(const eng_gguf *g, size_t i) {
  return i < g->n_tensors ? &g->tensors[i] : NULL;
}
const eng_tensor *eng_gguf_tensor(const eng_gguf *g, const char *name) {
  size_t n = strlen(name);
  for (uint64_t i = 0; i < g->n_tensors; i++)
    if (g->tensors[i].name.n == n && !memcmp(g->tensors[i].name.p, name, n)) return &g->tensors[i];
  return NULL;
}

static const gguf_kv *find(const eng_gguf *g, const char *key) {
  size_t n = strlen(key);
  for (uint64_t i = 0; i < g->n_kv; i++)
    if (g->kv[i].key.n == n && !memcmp(g->kv[i].key.p, key, n)) return &g->kv[i];
  return NULL;
}

int eng_gguf_has(const eng_gguf *g, const char *key) { return find(g, key) != NULL; }

int eng_gguf_get_int(const eng_gguf *g, const char *key, int64_t *out, kv_err *err) {
  const gguf_kv *kv = find(g, key);
  if (!kv) return kv_err_set(err, KV_ENOTFOUND, "%s: missing key '%s'", g->name, key);
  const uint8_t *v = kv->val;
  switch (kv->type) {
  case ENG_GGUF_U8: *out = v[0]; return 0;
  case ENG_GGUF_I8: *out = (int8_t)v[0]; return 0;
  case ENG_GGUF_BOOL: *out = v[0] != 0; return 0;
  case ENG_GGUF_U16: { uint16_t x; memcpy(&x, v, 2); *out = x; return 0; }
  case ENG_GGUF_I16: { int16_t x; memcpy(&x, v, 2); *out = x; return 0; }
  case ENG_GGUF_U32: { uint32_t x; memcpy(&x, v, 4); *out = x; return 0; }
  case ENG_GGUF_I32: { int32_t x; memcpy(&x, v, 4); *out = x; return 0; }
  case ENG_GGUF_U64: { uint64_t x; memcpy(&x, v, 8);
    if (x > INT64_MAX) break;
    *out = (int64_t)x; return 0; }
  case ENG_GGUF_I64: memcpy(out, v, 8); return 0;
  default: break;
  }
  return kv_err_set(err, KV_EFORMAT, "%s: key '%s' at byte %zu is not an integer", g->name, key, kv->val_off);
}

int eng_gguf_get_f32(const eng_gguf *g, const char *key, float *out, kv_err *err) {
  const gguf_kv *kv = find(g, key);
  if (!kv) return kv_err_set(err, KV_ENOTFOUND, "%s: missing key '%s'", g->name, key);
  if (kv->type == ENG_GGUF_F32) { memcpy(out, kv->val, 4); return 0; }
  if (kv->type == ENG_GGUF_F64) { double d; memcpy(&d, kv->val, 8); *out = (float)d; return 0; }
  int64_t i;
  if (eng_gguf_get_int(g, key, &i, NULL) == 0) { *out = (float)i; return 0; }
  return kv_err_set(err, KV_EFORMAT, "%s: key '%s' at byte %zu is not a number", g->name, key, kv->val_off);
}

int eng_gguf_get_str(const eng_gguf *g, const char *key, eng_str *out, kv_err *err) {
  const gguf_kv *kv = find(g, key);
  if (!kv) return kv_err_set(err, KV_ENOTFOUND, "%s: missing key '%s'", g->name, key);
  if (kv->type != ENG_GGUF_STRING)
    return kv_err_set(err, KV_EFORMAT, "%s: key '%s' at byte %zu is not a string", g->name, key, kv->val_off);
  uint64_t n;
  memcpy(&n, kv->val, 8);
  out->p = (const char *)kv->val + 8;
  out->n = (size_t)n;
  return 0;
}

int eng_gguf_get_arr(const eng_gguf *g, const char *key, int *elem_type, uint64_t *n, const void **data,
                     kv_err *err) {
  const gguf_kv *kv = find(g, key);
  if (!kv) return kv_err_set(err, KV_ENOTFOUND, "%s: missing key '%s'", g->name, key);
  if (kv->type != ENG_GGUF_ARRAY)
    return kv_err_set(err, KV_EFORMAT, "%s: key '%s' at byte %zu is not an array", g->name, key, kv->val_off);
  *elem_type = kv->arr_type;
  *n = kv->n;
  *data = kv->val;
  return 0;
}

/* Walk a string array produced by eng_gguf_get_arr: the layout was validated
 * at open, so each call only reads inside the file. */
const char *eng_gguf_arr_str_next(const void **cursor, size_t *len) {
  const uint8_t *p = *cursor;
  uint64_t n;
  memcpy(&n, p, 8);
  *len = (size_t)n;
  *cursor = p + 8 + n;
  return (const char *)p + 8;
}
