/*
 * test_pyref.c — the protocol against an independent implementation: starts
 * a daemon in-process and runs tests/reference/ipc/pyclient.py (PyNaCl +
 * hashlib BLAKE2b + msgpack, written from docs/protocol.md) against it.
 * Skipped when no Python with `nacl` and `msgpack` is found ($KVASIR_PYTHON,
 * then .venv-dmn/bin/python in the source tree, then python3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tests/daemon/harness.h"

static void test_python_client(void **st) {
  char py[512] = "", cmd[2048];
  const char *env = getenv("KVASIR_PYTHON");
  const char *cands[3] = {env, NULL, "python3"};
  char venv[512];
  snprintf(venv, sizeof venv, "%s/.venv-dmn/bin/python", KVASIR_SOURCE_DIR);
  cands[1] = venv;
  for (int i = 0; i < 3 && !py[0]; i++) {
    if (!cands[i]) continue;
    snprintf(cmd, sizeof cmd, "'%s' -c 'import nacl.bindings, msgpack' >/dev/null 2>&1", cands[i]);
    if (system(cmd) == 0) snprintf(py, sizeof py, "%s", cands[i]);
  }
  if (!py[0]) {
    fprintf(stderr, "no python with pynacl and msgpack: skipped\n");
    skip();
  }
  th h;
  kv_err e;
  th_env(&h);
  assert_int_equal(th_start(&h, 0, 2, &e), 0);
  snprintf(cmd, sizeof cmd, "'%s' '%s/tests/reference/ipc/pyclient.py'", py, KVASIR_SOURCE_DIR);
  int rc = system(cmd);
  cJSON *s = th_status();
  double rejected = th_num(s, "rejected");
  cJSON_Delete(s);
  th_stop(&h);
  th_cleanup(&h);
  assert_int_equal(rc, 0);
  assert_true(rejected >= 1); /* the wrong-secret connection was refused */
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_python_client)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
