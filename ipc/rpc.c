/*
 * rpc.c — msgpack-rpc messages <-> cJSON trees. msgpack-c does the byte
 * work; this file adds the limits msgpack-c lacks for hostile input and the
 * message shapes of docs/protocol.md ("Messages").
 *
 * Invariants: before msgpack-c sees a buffer, validate() walks it once and
 * proves that every container's element count fits in the remaining bytes
 * (so msgpack-c never allocates more than a small multiple of the input),
 * that nesting is at most MAX_DEPTH and that no extension types or reserved
 * bytes occur. Numbers become doubles in cJSON: integers are exact up to
 * 2^53, which covers request ids (uint32) and every count we send.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "ipc/ipc.h"

#define MAX_DEPTH 64

typedef struct rd {
  const uint8_t *p, *base, *end;
} rd;

static int need(rd *r, size_t n, kv_err *err) {
  if ((size_t)(r->end - r->p) < n)
    return kv_err_set(err, KV_EFORMAT, "msgpack: truncated at byte offset %zu (need %zu more bytes)",
                      (size_t)(r->p - r->base), n);
  return 0;
}

static uint64_t be(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) v = (v << 8) | p[i];
  return v;
}

/* Walks one object; see the invariants above. */
static int validate(rd *r, int depth, kv_err *err) {
  if (depth > MAX_DEPTH)
    return kv_err_set(err, KV_ELIMIT, "msgpack: nesting deeper than %d at byte offset %zu", MAX_DEPTH,
                      (size_t)(r->p - r->base));
  int rc = need(r, 1, err);
  if (rc) return rc;
  size_t at = (size_t)(r->p - r->base);
  uint8_t t = *r->p++;
  uint64_t n = 0;
  int children = 0; /* 1 = array of n, 2 = map of n */
  if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) return 0;
  if (t >= 0x80 && t <= 0x8f) n = t & 0x0f, children = 2;
  else if (t >= 0x90 && t <= 0x9f) n = t & 0x0f, children = 1;
  else if (t >= 0xa0 && t <= 0xbf) n = t & 0x1f;
  else {
    int w;
    switch (t) {
      case 0xcc: case 0xd0: w = 1; goto fixed;
      case 0xcd: case 0xd1: w = 2; goto fixed;
      case 0xca: case 0xce: case 0xd2: w = 4; goto fixed;
      case 0xcb: case 0xcf: case 0xd3: w = 8; goto fixed;
      case 0xc4: case 0xd9: w = 1; goto len;
      case 0xc5: case 0xda: w = 2; goto len;
      case 0xc6: case 0xdb: w = 4; goto len;
      case 0xdc: w = 2; children = 1; goto len;
      case 0xdd: w = 4; children = 1; goto len;
      case 0xde: w = 2; children = 2; goto len;
      case 0xdf: w = 4; children = 2; goto len;
      default:
        return kv_err_set(err, KV_EFORMAT, "msgpack: unsupported type byte 0x%02x (extension or reserved) at byte offset %zu",
                          t, at);
    }
  fixed:
    return need(r, (size_t)w, err) ? KV_EFORMAT : (r->p += w, 0);
  len:
    if ((rc = need(r, (size_t)w, err))) return rc;
    n = be(r->p, w);
    r->p += w;
  }
  size_t left = (size_t)(r->end - r->p);
  if (!children) {
    if (n > left)
      return kv_err_set(err, KV_EFORMAT, "msgpack: string of %llu bytes at byte offset %zu overruns the buffer",
                        (unsigned long long)n, at);
    r->p += n;
    return 0;
  }
  uint64_t items = n * (uint64_t)children;
  if (items > left)
    return kv_err_set(err, KV_EFORMAT, "msgpack: container of %llu items at byte offset %zu overruns the buffer",
                      (unsigned long long)n, at);
  for (uint64_t i = 0; i < items; i++)
    if ((rc = validate(r, depth + 1, err))) return rc;
  return 0;
}

/* Duplicate keys make a map ambiguous (which value wins differs between
 * implementations), so they are refused. A hash set over the entries keeps
 * this linear: a map may hold millions of entries within the frame cap. */
static int check_unique_keys(const msgpack_object_map *m, kv_err *err) {
  if (m->size < 2) return 0;
  size_t cap = 4;
  while (cap < 2 * (size_t)m->size) cap <<= 1;
  uint32_t *slot = calloc(cap, sizeof *slot);
  if (!slot) return kv_err_set(err, KV_ENOMEM, "msgpack: out of memory");
  int rc = 0;
  for (uint32_t i = 0; i < m->size && !rc; i++) {
    const msgpack_object *k = &m->ptr[i].key;
    if (k->type != MSGPACK_OBJECT_STR) continue; /* reported by the caller */
    uint64_t h = kv_hash64(k->via.str.ptr, k->via.str.size);
    for (size_t at = (size_t)h & (cap - 1);; at = (at + 1) & (cap - 1)) {
      if (!slot[at]) {
        slot[at] = i + 1;
        break;
      }
      const msgpack_object *o = &m->ptr[slot[at] - 1].key;
      if (o->via.str.size == k->via.str.size &&
          (k->via.str.size == 0 || !memcmp(o->via.str.ptr, k->via.str.ptr, k->via.str.size))) {
        rc = kv_err_set(err, KV_EFORMAT, "msgpack: map key %u duplicates key %u", i, slot[at] - 1);
        break;
      }
    }
  }
  free(slot);
  return rc;
}

static int to_json(const msgpack_object *o, cJSON **out, kv_err *err) {
  cJSON *v = NULL;
  switch (o->type) {
    case MSGPACK_OBJECT_NIL: v = cJSON_CreateNull(); break;
    case MSGPACK_OBJECT_BOOLEAN: v = cJSON_CreateBool(o->via.boolean); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: v = cJSON_CreateNumber((double)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: v = cJSON_CreateNumber((double)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
      /* NaN and infinities mean nothing in this protocol and would reach
       * float-to-int conversions downstream: refused */
      if (!isfinite(o->via.f64)) return kv_err_set(err, KV_EFORMAT, "msgpack: non-finite float (NaN or infinity)");
      v = cJSON_CreateNumber(o->via.f64);
      break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
      const char *p = o->type == MSGPACK_OBJECT_STR ? o->via.str.ptr : o->via.bin.ptr;
      uint32_t n = o->type == MSGPACK_OBJECT_STR ? o->via.str.size : o->via.bin.size;
      if (n && memchr(p, 0, n)) return kv_err_set(err, KV_EFORMAT, "msgpack: string contains a NUL byte");
      char *s = malloc((size_t)n + 1);
      if (!s) return kv_err_set(err, KV_ENOMEM, "msgpack: out of memory");
      if (n) memcpy(s, p, n);
      s[n] = 0;
      v = cJSON_CreateString(s);
      free(s);
      break;
    }
    case MSGPACK_OBJECT_ARRAY:
      v = cJSON_CreateArray();
      for (uint32_t i = 0; v && i < o->via.array.size; i++) {
        cJSON *c;
        int rc = to_json(&o->via.array.ptr[i], &c, err);
        if (rc) {
          cJSON_Delete(v);
          return rc;
        }
        cJSON_AddItemToArray(v, c);
      }
      break;
    case MSGPACK_OBJECT_MAP: {
      int rc = check_unique_keys(&o->via.map, err);
      if (rc) return rc;
      v = cJSON_CreateObject();
      for (uint32_t i = 0; v && i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
          cJSON_Delete(v);
          return kv_err_set(err, KV_EFORMAT, "msgpack: map key %u is not a string", i);
        }
        char key[256];
        size_t kn = kv->key.via.str.size; /* an empty key may come with a NULL pointer */
        if (kn >= sizeof key || (kn && memchr(kv->key.via.str.ptr, 0, kn))) {
          cJSON_Delete(v);
          return kv_err_set(err, KV_EFORMAT, "msgpack: map key %u is longer than 255 bytes or has a NUL", i);
        }
        if (kn) memcpy(key, kv->key.via.str.ptr, kn);
        key[kn] = 0;
        cJSON *c;
        int rc = to_json(&kv->val, &c, err);
        if (rc) {
          cJSON_Delete(v);
          return rc;
        }
        cJSON_AddItemToObject(v, key, c);
      }
      break;
    }
    default: return kv_err_set(err, KV_EFORMAT, "msgpack: unsupported object type %d", (int)o->type);
  }
  if (!v) return kv_err_set(err, KV_ENOMEM, "msgpack: out of memory");
  *out = v;
  return 0;
}

int ipc_unpack_json(const uint8_t *buf, size_t n, cJSON **out, kv_err *err) {
  *out = NULL;
  rd r = {buf, buf, buf + n};
  int rc = validate(&r, 0, err);
  if (rc) return rc;
  if (r.p != r.end)
    return kv_err_set(err, KV_EFORMAT, "msgpack: %zu trailing bytes after the message at byte offset %zu",
                      (size_t)(r.end - r.p), (size_t)(r.p - r.base));
  msgpack_unpacked u;
  msgpack_unpacked_init(&u);
  size_t off = 0;
  msgpack_unpack_return ur = msgpack_unpack_next(&u, (const char *)buf, n, &off);
  if (ur != MSGPACK_UNPACK_SUCCESS) {
    msgpack_unpacked_destroy(&u);
    return kv_err_set(err, ur == MSGPACK_UNPACK_NOMEM_ERROR ? KV_ENOMEM : KV_EFORMAT,
                      "msgpack: unpack failed (%d) at byte offset %zu", (int)ur, off);
  }
  rc = to_json(&u.data, out, err);
  msgpack_unpacked_destroy(&u);
  return rc;
}

static int pack(msgpack_packer *pk, const cJSON *v, int depth, kv_err *err) {
  if (depth > MAX_DEPTH) return kv_err_set(err, KV_ELIMIT, "msgpack: tree deeper than %d", MAX_DEPTH);
  if (!v || cJSON_IsNull(v)) return msgpack_pack_nil(pk), 0;
  if (cJSON_IsTrue(v)) return msgpack_pack_true(pk), 0;
  if (cJSON_IsFalse(v)) return msgpack_pack_false(pk), 0;
  if (cJSON_IsNumber(v)) {
    double d = v->valuedouble;
    if (isfinite(d) && d == floor(d) && fabs(d) < 9.2e18) {
      if (d >= 0) msgpack_pack_uint64(pk, (uint64_t)d);
      else msgpack_pack_int64(pk, (int64_t)d);
    } else {
      msgpack_pack_double(pk, d);
    }
    return 0;
  }
  if (cJSON_IsString(v)) {
    size_t n = strlen(v->valuestring);
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, v->valuestring, n);
    return 0;
  }
  if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
    size_t n = 0;
    for (const cJSON *c = v->child; c; c = c->next) n++;
    if (cJSON_IsArray(v)) msgpack_pack_array(pk, n);
    else msgpack_pack_map(pk, n);
    for (const cJSON *c = v->child; c; c = c->next) {
      if (cJSON_IsObject(v)) {
        const char *k = c->string ? c->string : "";
        msgpack_pack_str(pk, strlen(k));
        msgpack_pack_str_body(pk, k, strlen(k));
      }
      int rc = pack(pk, c, depth + 1, err);
      if (rc) return rc;
    }
    return 0;
  }
  return kv_err_set(err, KV_EINVAL, "msgpack: cannot encode a raw cJSON value");
}

/* Runs fn to fill a fresh buffer and hands it out (malloc'd). */
static int finish(msgpack_sbuffer *sb, int rc, uint8_t **out, size_t *len, kv_err *err) {
  if (rc) {
    msgpack_sbuffer_destroy(sb);
    return rc;
  }
  if (!sb->data) return kv_err_set(err, KV_ENOMEM, "msgpack: out of memory");
  *out = (uint8_t *)sb->data;
  *len = sb->size;
  return 0;
}

int ipc_pack_json(const cJSON *v, uint8_t **out, size_t *len, kv_err *err) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  return finish(&sb, pack(&pk, v, 0, err), out, len, err);
}

static void pack_cstr(msgpack_packer *pk, const char *s) {
  size_t n = strlen(s);
  msgpack_pack_str(pk, n);
  msgpack_pack_str_body(pk, s, n);
}

int ipc_encode_request(uint32_t id, const char *method, const cJSON *params, uint8_t **out, size_t *len,
                       kv_err *err) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_int(&pk, IPC_REQUEST);
  msgpack_pack_uint32(&pk, id);
  pack_cstr(&pk, method);
  int rc = params ? pack(&pk, params, 1, err) : (msgpack_pack_array(&pk, 0), 0);
  return finish(&sb, rc, out, len, err);
}

int ipc_encode_response(uint32_t id, const cJSON *error, const cJSON *result, uint8_t **out, size_t *len,
                        kv_err *err) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 4);
  msgpack_pack_int(&pk, IPC_RESPONSE);
  msgpack_pack_uint32(&pk, id);
  int rc = pack(&pk, error, 1, err);
  if (!rc) rc = pack(&pk, error ? NULL : result, 1, err);
  return finish(&sb, rc, out, len, err);
}

int ipc_encode_notify(const char *method, const cJSON *params, uint8_t **out, size_t *len, kv_err *err) {
  msgpack_sbuffer sb;
  msgpack_sbuffer_init(&sb);
  msgpack_packer pk;
  msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
  msgpack_pack_array(&pk, 3);
  msgpack_pack_int(&pk, IPC_NOTIFY);
  pack_cstr(&pk, method);
  int rc = params ? pack(&pk, params, 1, err) : (msgpack_pack_array(&pk, 0), 0);
  return finish(&sb, rc, out, len, err);
}

cJSON *ipc_error_new(int code, const char *msg) {
  cJSON *e = cJSON_CreateObject();
  if (!e) return NULL;
  if (!cJSON_AddNumberToObject(e, "code", code) || !cJSON_AddStringToObject(e, "message", msg ? msg : "")) {
    cJSON_Delete(e);
    return NULL;
  }
  return e;
}

int ipc_error_parse(const cJSON *error, int *code, const char **msg) {
  *code = KV_EIO;
  *msg = "unknown error";
  if (!error || cJSON_IsNull(error)) return 0;
  const cJSON *c = NULL, *m = NULL;
  if (cJSON_IsObject(error)) {
    c = cJSON_GetObjectItemCaseSensitive(error, "code");
    m = cJSON_GetObjectItemCaseSensitive(error, "message");
  } else if (cJSON_IsArray(error)) {
    c = cJSON_GetArrayItem(error, 0);
    m = cJSON_GetArrayItem(error, 1);
  } else if (cJSON_IsString(error)) {
    m = error;
  }
  if (cJSON_IsNumber(c) && c->valuedouble < 0 && c->valuedouble > -1e9) *code = (int)c->valuedouble;
  if (cJSON_IsString(m)) *msg = m->valuestring;
  return 1;
}

void ipc_msg_clear(ipc_msg *m) {
  free(m->method);
  cJSON_Delete(m->params);
  cJSON_Delete(m->error);
  cJSON_Delete(m->result);
  memset(m, 0, sizeof *m);
}

static int bad(cJSON *root, ipc_msg *m, kv_err *err, const char *what) {
  cJSON_Delete(root);
  ipc_msg_clear(m);
  return kv_err_set(err, KV_EFORMAT, "rpc: %s", what);
}

/* Detaches item i of root (so it survives cJSON_Delete(root)). */
static cJSON *take(cJSON *root, int i) { return cJSON_DetachItemFromArray(root, i); }

int ipc_msg_decode(const uint8_t *buf, size_t n, ipc_msg *m, kv_err *err) {
  memset(m, 0, sizeof *m);
  cJSON *root;
  int rc = ipc_unpack_json(buf, n, &root, err);
  if (rc) return rc;
  if (!cJSON_IsArray(root)) return bad(root, m, err, "message is not an array");
  int len = cJSON_GetArraySize(root);
  const cJSON *t = cJSON_GetArrayItem(root, 0);
  if (!cJSON_IsNumber(t) || t->valuedouble < 0 || t->valuedouble > 2 || t->valuedouble != floor(t->valuedouble))
    return bad(root, m, err, "field 0 (type) is not 0, 1 or 2");
  m->type = (int)t->valuedouble;
  if (len != (m->type == IPC_NOTIFY ? 3 : 4)) return bad(root, m, err, "wrong number of fields for the message type");
  int mi = 1;
  if (m->type != IPC_NOTIFY) {
    const cJSON *id = cJSON_GetArrayItem(root, 1);
    if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 4294967295.0 ||
        id->valuedouble != floor(id->valuedouble))
      return bad(root, m, err, "field 1 (id) is not a uint32");
    m->id = (uint32_t)id->valuedouble;
    mi = 2;
  }
  if (m->type == IPC_RESPONSE) {
    m->result = take(root, 3);
    m->error = take(root, 2);
    if (cJSON_IsNull(m->error)) {
      cJSON_Delete(m->error);
      m->error = NULL;
    } else {
      cJSON_Delete(m->result);
      m->result = NULL;
    }
    cJSON_Delete(root);
    return 0;
  }
  const cJSON *meth = cJSON_GetArrayItem(root, mi);
  if (!cJSON_IsString(meth) || !meth->valuestring[0] || strlen(meth->valuestring) > 128)
    return bad(root, m, err, "method field is not a non-empty string of at most 128 bytes");
  m->method = strdup(meth->valuestring);
  if (!m->method) return bad(root, m, err, "out of memory");
  cJSON *p = take(root, mi + 1);
  cJSON_Delete(root);
  if (cJSON_IsNull(p)) {
    cJSON_Delete(p);
    p = cJSON_CreateArray();
    if (!p) {
      ipc_msg_clear(m);
      return kv_err_set(err, KV_ENOMEM, "rpc: out of memory");
    }
  }
  if (!cJSON_IsArray(p) && !cJSON_IsObject(p)) {
    cJSON_Delete(p);
    ipc_msg_clear(m);
    return kv_err_set(err, KV_EFORMAT, "rpc: params field is not an array or a map");
  }
  m->params = p;
  return 0;
}
