/* test_frame.c — the length-prefixed framer: split feeds, caps, offsets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

static void test_header_big_endian(void **st) {
  uint8_t h[4];
  ipc_frame_header(h, 0x01020304u);
  assert_memory_equal(h, "\x01\x02\x03\x04", 4);
}

/* Three frames fed one byte at a time come out whole, in order. */
static void test_split_feed(void **st) {
  ipc_framer *f;
  kv_err e;
  assert_int_equal(ipc_framer_new(&f, 100, &e), 0);
  uint8_t stream[] = {0, 0, 0, 3, 'a', 'b', 'c', 0, 0, 0, 0, 0, 0, 0, 2, 'x', 'y'};
  const char *want[] = {"abc", "", "xy"};
  int got = 0;
  for (size_t i = 0; i < sizeof stream; i++) {
    assert_int_equal(ipc_framer_feed(f, &stream[i], 1, &e), 0);
    const uint8_t *p;
    size_t n;
    int rc;
    while ((rc = ipc_framer_next(f, &p, &n, &e)) == 1) {
      assert_true(got < 3);
      assert_int_equal(n, strlen(want[got]));
      assert_memory_equal(p, want[got], n);
      got++;
    }
    assert_int_equal(rc, 0);
  }
  assert_int_equal(got, 3);
  assert_int_equal(ipc_framer_pending(f), 0);
  assert_int_equal(ipc_framer_offset(f), sizeof stream);
  ipc_framer_free(f);
}

/* An oversize header is refused as soon as its 4 bytes arrive, with the
 * offset of the frame in the message. */
static void test_oversize(void **st) {
  ipc_framer *f;
  kv_err e;
  assert_int_equal(ipc_framer_new(&f, 16, &e), 0);
  uint8_t ok[] = {0, 0, 0, 16};
  uint8_t body[16] = {0};
  assert_int_equal(ipc_framer_feed(f, ok, 4, &e), 0);
  assert_int_equal(ipc_framer_feed(f, body, 16, &e), 0);
  const uint8_t *p;
  size_t n;
  assert_int_equal(ipc_framer_next(f, &p, &n, &e), 1);
  uint8_t big[] = {0, 0, 0, 17};
  assert_int_equal(ipc_framer_feed(f, big, 2, &e), 0); /* header incomplete: not yet known */
  assert_int_equal(ipc_framer_feed(f, big + 2, 2, &e), KV_ELIMIT);
  assert_non_null(strstr(e.msg, "offset 20"));
  assert_non_null(strstr(e.msg, "17"));
  ipc_framer_free(f);
  /* 0xffffffff in one piece together with data */
  assert_int_equal(ipc_framer_new(&f, IPC_FRAME_MAX, &e), 0);
  uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, 1, 2, 3};
  assert_int_equal(ipc_framer_feed(f, huge, sizeof huge, &e), KV_ELIMIT);
  ipc_framer_free(f);
}

/* A partial frame stays pending: that is how EOF mid-frame is detected. */
static void test_pending_partial(void **st) {
  ipc_framer *f;
  kv_err e;
  assert_int_equal(ipc_framer_new(&f, 100, &e), 0);
  uint8_t part[] = {0, 0, 0, 10, 'a', 'b'};
  assert_int_equal(ipc_framer_feed(f, part, sizeof part, &e), 0);
  const uint8_t *p;
  size_t n;
  assert_int_equal(ipc_framer_next(f, &p, &n, &e), 0);
  assert_int_equal(ipc_framer_pending(f), 6);
  ipc_framer_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_header_big_endian),
      cmocka_unit_test(test_split_feed),
      cmocka_unit_test(test_oversize),
      cmocka_unit_test(test_pending_partial),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
