/* test_base_buf.c — kv_buf, kv_grow and kv_hash64 against their contracts;
 * the FNV-1a mixing is checked against the published test vectors of the FNV authors
 * (http://www.isthe.com/chongo/tech/comp/fnv/), not computed here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "base/buf.h"
#include "base/hash.h"
#include "base/vec.h"

static void test_buf_append_printf(void **st) {
  (void)st;
  kv_buf b = KV_BUF_INIT;
  assert_string_equal(kv_buf_str(&b), "");
  assert_int_equal(kv_buf_puts(&b, "abc"), 0);
  assert_int_equal(kv_buf_putc(&b, '-'), 0);
  assert_int_equal(kv_buf_printf(&b, "%d/%s", 42, "x"), 0);
  assert_string_equal(b.data, "abc-42/x");
  assert_int_equal(b.len, 8);
  /* longer than the printf fast path's stack buffer */
  char big[1000];
  memset(big, 'z', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(kv_buf_printf(&b, "[%s]", big), 0);
  assert_int_equal(b.len, 8 + 2 + 999);
  assert_int_equal(b.data[b.len], 0);
  assert_int_equal(b.data[9], 'z');
  assert_int_equal(b.data[b.len - 1], ']');
  kv_buf_truncate(&b, 3);
  assert_string_equal(b.data, "abc");
  kv_buf_reset(&b);
  assert_int_equal(b.len, 0);
  assert_string_equal(b.data, "");
  assert_true(kv_buf_ok(&b));
  kv_buf_free(&b);
  assert_null(b.data);
}

static void test_buf_binary_and_detach(void **st) {
  (void)st;
  kv_buf b = KV_BUF_INIT;
  const char bin[5] = {'a', 0, 'b', 0, 'c'};
  for (int i = 0; i < 10000; i++) assert_int_equal(kv_buf_append(&b, bin, sizeof bin), 0);
  assert_int_equal(b.len, 50000);
  assert_true(b.cap > b.len);
  assert_int_equal(memcmp(b.data + 49995, bin, 5), 0);
  size_t n;
  char *p = kv_buf_detach(&b, &n);
  assert_int_equal(n, 50000);
  assert_int_equal(p[n], 0);
  assert_null(b.data);
  assert_int_equal(b.len, 0);
  free(p);
  /* detach of an empty buffer is an empty string, not NULL */
  p = kv_buf_detach(&b, NULL);
  assert_non_null(p);
  assert_string_equal(p, "");
  free(p);
}

static void test_buf_overflow_is_oom(void **st) {
  (void)st;
  kv_buf b = KV_BUF_INIT;
  kv_buf_puts(&b, "keep");
  assert_int_equal(kv_buf_reserve(&b, SIZE_MAX - 2), KV_ENOMEM);
  assert_false(kv_buf_ok(&b));
  assert_string_equal(b.data, "keep"); /* contents untouched */
  kv_buf_free(&b);
  assert_true(kv_buf_ok(&b));
}

static void test_grow(void **st) {
  (void)st;
  int *a = NULL;
  size_t n = 0, cap = 0;
  for (int i = 0; i < 1000; i++) assert_int_equal(KV_PUSH(a, n, cap, i * 3), 0);
  assert_int_equal(n, 1000);
  assert_true(cap >= 1000 && cap < 2048);
  for (int i = 0; i < 1000; i++) assert_int_equal(a[i], i * 3);
  size_t before = cap;
  assert_int_equal(KV_GROW(a, cap, 10), 0); /* no shrink, no move needed */
  assert_int_equal(cap, before);
  int *keep = a;
  assert_int_equal(kv_grow((void **)&a, &cap, SIZE_MAX / 2, sizeof *a), KV_ENOMEM);
  assert_ptr_equal(a, keep);
  assert_int_equal(cap, before);
  free(a);
}

static void test_hash_vectors(void **st) {
  (void)st;
  /* the mixing step, from the published basis: the FNV test vectors */
  assert_true(KV_HASH64_FNV_BASIS == 0xcbf29ce484222325ULL);
  assert_true(kv_hash64_more(KV_HASH64_FNV_BASIS, "a", 1) == 0xaf63dc4c8601ec8cULL);
  assert_true(kv_hash64_more(KV_HASH64_FNV_BASIS, "foobar", 6) == 0x85944171f73967e8ULL);
  /* kvasir's persisted basis (see hash.h); values from Python:
   * h = 1469598103934665603; for c in s: h = ((h ^ c) * 1099511628211) % 2**64 */
  assert_true(kv_hash64("", 0) == 1469598103934665603ULL);
  assert_true(kv_hash64("foobar", 6) == 0x88fad7c0a8ff07f2ULL);
  assert_true(kv_hash64_str("foobar") == kv_hash64("foobar", 6));
  assert_true(kv_hash64_more(kv_hash64("foo", 3), "bar", 3) == kv_hash64("foobar", 6));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_buf_append_printf), cmocka_unit_test(test_buf_binary_and_detach),
      cmocka_unit_test(test_buf_overflow_is_oom), cmocka_unit_test(test_grow),
      cmocka_unit_test(test_hash_vectors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
