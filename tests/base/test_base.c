/* test_base.c — errors, XDG paths, bounded file reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

static void test_err_set(void **st) {
  kv_err e;
  int rc = kv_err_set(&e, KV_EFORMAT, "model.gguf: tensor '%s' at offset %d", "tok_embd", 42);
  assert_int_equal(rc, KV_EFORMAT);
  assert_int_equal(e.code, KV_EFORMAT);
  assert_string_equal(e.msg, "model.gguf: tensor 'tok_embd' at offset 42");
  assert_int_equal(kv_err_set(NULL, KV_EIO, "x"), KV_EIO);
  assert_string_equal(kv_err_name(KV_ECRYPTO), "crypto");
}

static void test_xdg(void **st) {
  char buf[256];
  setenv("XDG_CACHE_HOME", "/x/cache", 1);
  assert_int_equal(kv_xdg_dir(buf, sizeof buf, "cache"), 0);
  assert_string_equal(buf, "/x/cache/kvasir");
  unsetenv("XDG_DATA_HOME");
  setenv("HOME", "/home/u", 1);
  assert_int_equal(kv_xdg_dir(buf, sizeof buf, "data"), 0);
  assert_string_equal(buf, "/home/u/.local/share/kvasir");
  assert_int_equal(kv_xdg_dir(buf, 8, "cache"), KV_ELIMIT);
  assert_int_equal(kv_xdg_dir(buf, sizeof buf, "bogus"), KV_EINVAL);
}

static void test_read_file_cap(void **st) {
  char path[] = "/tmp/kvasir-test-XXXXXX";
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  char data[10000];
  memset(data, 'a', sizeof data);
  assert_int_equal(write(fd, data, sizeof data), (int)sizeof data);
  close(fd);
  char *out;
  size_t len;
  kv_err e;
  assert_int_equal(kv_read_file(path, 1 << 20, &out, &len, &e), 0);
  assert_int_equal(len, sizeof data);
  assert_int_equal(out[len], 0);
  free(out);
  assert_int_equal(kv_read_file(path, 5000, &out, &len, &e), KV_ELIMIT);
  assert_null(out);
  assert_non_null(strstr(e.msg, path));
  unlink(path);
  assert_int_equal(kv_read_file(path, 10, &out, &len, &e), KV_EIO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_err_set),
      cmocka_unit_test(test_xdg),
      cmocka_unit_test(test_read_file_cap),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
