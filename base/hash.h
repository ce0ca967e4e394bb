/*
 * hash.h — kv_hash64, the one 64-bit FNV-1a of kvasir. Several stores
 * persist these values (log-store template ids, the index's content hashes),
 * so the function is frozen: changing it means a schema version bump with a
 * migration in every store that keeps one.
 *
 * Note the offset basis: kvasir has always started from 1469598103934665603,
 * the published FNV-1a basis (14695981039346656037) with its last digit lost.
 * Every persisted hash was made with it, so it stays; the mixing step is the
 * published one (kv_hash64_more from the published basis gives the FNV test
 * vectors, which test_base_buf checks).
 * Not for adversarial input (no seed secrecy); for that use libsodium.
 */
#ifndef KVASIR_BASE_HASH_H
#define KVASIR_BASE_HASH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KV_HASH64_INIT 1469598103934665603ULL /* kvasir's basis (see above) */
#define KV_HASH64_FNV_BASIS 14695981039346656037ULL /* the published one */
#define KV_HASH64_PRIME 1099511628211ULL

/* Continue an FNV-1a hash `h` over n bytes (h = KV_HASH64_INIT to start). */
static inline uint64_t kv_hash64_more(uint64_t h, const void *p, size_t n) {
  const unsigned char *s = (const unsigned char *)p;
  for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * KV_HASH64_PRIME;
  return h;
}
/* FNV-1a over n bytes. */
static inline uint64_t kv_hash64(const void *p, size_t n) { return kv_hash64_more(KV_HASH64_INIT, p, n); }
/* FNV-1a over a NUL-terminated string (the NUL not included). */
static inline uint64_t kv_hash64_str(const char *s) {
  uint64_t h = KV_HASH64_INIT;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * KV_HASH64_PRIME;
  return h;
}

#ifdef __cplusplus
}
#endif
#endif
