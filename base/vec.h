/*
 * vec.h — the one grow-by-doubling of kvasir. Arrays stay plain C arrays
 * (a pointer, a count and a capacity in the owner's struct); kv_grow only
 * makes sure there is room, so a reader sees ordinary indexing everywhere.
 *
 * Contract: after kv_grow(&p, &cap, need, size) returns 0, p points to at
 * least `need` elements of `size` bytes, the first old-cap elements kept.
 * Capacity doubles (starting at 8) so n single appends cost O(n) copies.
 * On failure (KV_ENOMEM, including size overflow) p and cap are unchanged.
 */
#ifndef KVASIR_BASE_VEC_H
#define KVASIR_BASE_VEC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

int kv_grow(void **p, size_t *cap, size_t need, size_t size);

/* KV_GROW(arr, cap, need): arr is a typed pointer lvalue, cap a size_t. */
#define KV_GROW(arr, cap, need) kv_grow((void **)&(arr), &(cap), (need), sizeof *(arr))

/* Append one element: KV_PUSH(arr, n, cap, value) -> 0 or KV_ENOMEM. */
#define KV_PUSH(arr, n, cap, value) \
  (KV_GROW(arr, cap, (size_t)(n) + 1) ? -3 /* KV_ENOMEM */ : ((arr)[(n)++] = (value), 0))

#ifdef __cplusplus
}
#endif
#endif
