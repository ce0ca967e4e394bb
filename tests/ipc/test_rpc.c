/* test_rpc.c — msgpack-rpc encoding against golden bytes from the Python
 * msgpack reference (tests/reference/ipc/make_golden.py), decoding of those
 * bytes, and rejection of malformed or hostile messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ipc/ipc.h"

/* Loads the golden hex for `name` into a malloc'd buffer. */
static uint8_t *golden(const char *name, size_t *n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/reference/ipc/golden.txt", KVASIR_SOURCE_DIR);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char line[4096];
  uint8_t *out = NULL;
  while (fgets(line, sizeof line, f)) {
    char *sp = strchr(line, ' ');
    if (!sp) continue;
    *sp = 0;
    if (strcmp(line, name)) continue;
    char *hex = sp + 1;
    size_t h = strcspn(hex, "\r\n");
    out = malloc(h / 2 + 1);
    for (size_t i = 0; i < h / 2; i++) sscanf(hex + 2 * i, "%2hhx", &out[i]);
    *n = h / 2;
  }
  fclose(f);
  assert_non_null(out);
  return out;
}

static void check(const char *name, uint8_t *got, size_t n) {
  size_t gn;
  uint8_t *g = golden(name, &gn);
  assert_int_equal(n, gn);
  assert_memory_equal(got, g, n);
  free(g);
  free(got);
}

static void test_encode_golden(void **st) {
  kv_err e;
  uint8_t *b;
  size_t n;
  cJSON *empty = cJSON_CreateArray();
  assert_int_equal(ipc_encode_request(7, "status", empty, &b, &n, &e), 0);
  check("req_status", b, n);
  cJSON *p = cJSON_Parse("{\"question\":\"where is main?\",\"file\":\"a.c\",\"cursor\":{\"line\":3,\"col\":-1}}");
  assert_int_equal(ipc_encode_request(4294967295u, "ask", p, &b, &n, &e), 0);
  check("req_ask", b, n);
  cJSON *r = cJSON_Parse("{\"ok\":true,\"n\":1.5,\"list\":[1,-2,300,70000,-40000,5000000000]}");
  assert_int_equal(ipc_encode_response(7, NULL, r, &b, &n, &e), 0);
  check("resp_ok", b, n);
  cJSON *er = ipc_error_new(KV_EINVAL, "bad params: field 'question'");
  assert_int_equal(ipc_encode_response(9, er, NULL, &b, &n, &e), 0);
  check("resp_err", b, n);
  cJSON *t = cJSON_Parse("{\"id\":3,\"text\":\"h\\u00e9llo \\u2603\"}");
  assert_int_equal(ipc_encode_notify("ask.token", t, &b, &n, &e), 0);
  check("notify_token", b, n);
  cJSON_Delete(empty);
  cJSON_Delete(p);
  cJSON_Delete(r);
  cJSON_Delete(er);
  cJSON_Delete(t);
}

static void test_decode_golden(void **st) {
  kv_err e;
  size_t n;
  ipc_msg m;
  uint8_t *g = golden("req_ask", &n);
  assert_int_equal(ipc_msg_decode(g, n, &m, &e), 0);
  assert_int_equal(m.type, IPC_REQUEST);
  assert_int_equal(m.id, 4294967295u);
  assert_string_equal(m.method, "ask");
  assert_string_equal(cJSON_GetObjectItem(m.params, "question")->valuestring, "where is main?");
  assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(m.params, "cursor"), "col")->valueint, -1);
  ipc_msg_clear(&m);
  free(g);
  g = golden("resp_err", &n);
  assert_int_equal(ipc_msg_decode(g, n, &m, &e), 0);
  assert_int_equal(m.type, IPC_RESPONSE);
  assert_null(m.result);
  int code;
  const char *msg;
  ipc_error_parse(m.error, &code, &msg);
  assert_int_equal(code, KV_EINVAL);
  assert_string_equal(msg, "bad params: field 'question'");
  ipc_msg_clear(&m);
  free(g);
  g = golden("resp_ok", &n);
  assert_int_equal(ipc_msg_decode(g, n, &m, &e), 0);
  assert_null(m.error);
  cJSON *list = cJSON_GetObjectItem(m.result, "list");
  assert_true(cJSON_GetArrayItem(list, 5)->valuedouble == 5000000000.0);
  assert_true(cJSON_GetObjectItem(m.result, "n")->valuedouble == 1.5);
  ipc_msg_clear(&m);
  free(g);
  g = golden("notify_cancel", &n);
  assert_int_equal(ipc_msg_decode(g, n, &m, &e), 0);
  assert_int_equal(m.type, IPC_NOTIFY);
  assert_string_equal(m.method, "$/cancel");
  assert_int_equal(cJSON_GetObjectItem(m.params, "id")->valueint, 12);
  ipc_msg_clear(&m);
  free(g);
}

static void expect_bad(const uint8_t *b, size_t n, const char *needle) {
  ipc_msg m;
  kv_err e = {0};
  int rc = ipc_msg_decode(b, n, &m, &e);
  assert_true(rc < 0);
  if (needle && !strstr(e.msg, needle)) fail_msg("error '%s' lacks '%s'", e.msg, needle);
}

static void test_decode_rejects(void **st) {
  /* not an array */
  expect_bad((const uint8_t *)"\x01", 1, "not an array");
  /* type 3 */
  expect_bad((const uint8_t *)"\x94\x03\x07\xa1x\x90", 6, "type");
  /* request with 3 fields */
  expect_bad((const uint8_t *)"\x93\x00\x07\xa1x", 5, "number of fields");
  /* negative id */
  expect_bad((const uint8_t *)"\x94\x00\xff\xa1x\x90", 6, "id");
  /* method not a string */
  expect_bad((const uint8_t *)"\x94\x00\x01\x05\x90", 5, "method");
  /* params a scalar */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\x05", 6, "params");
  /* trailing byte */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\x90\x00", 7, "trailing");
  /* truncated string */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa5x", 5, "overruns");
  /* array32 claiming 4 billion elements in 10 bytes: refused before msgpack-c allocates */
  expect_bad((const uint8_t *)"\xdd\xff\xff\xff\xff\x00\x00\x00\x00\x00", 10, "overruns");
  /* extension type */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\xd4\x01\x00", 8, "extension");
  /* reserved byte 0xc1 */
  expect_bad((const uint8_t *)"\xc1", 1, "0xc1");
  /* map with an integer key */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\x81\x01\x02", 8, "key");
  /* duplicate map keys are ambiguous: refused */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\x82\xa1k\x01\xa1k\x02", 12, "duplicates");
  /* an empty key is fine (found by libFuzzer: NULL pointer with size 0) */
  ipc_msg m;
  kv_err e;
  assert_int_equal(ipc_msg_decode((const uint8_t *)"\x94\x00\x01\xa1x\x81\xa0\x01", 8, &m, &e), 0);
  assert_int_equal(cJSON_GetObjectItem(m.params, "")->valueint, 1);
  ipc_msg_clear(&m);
  /* NaN (found by libFuzzer: it would reach (int) conversions) and infinity */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\x91\xcb\xff\xff\xff\xff\xff\xff\xff\xff", 15, "non-finite");
  expect_bad((const uint8_t *)"\x94\x00\x01\xa1x\x91\xca\x7f\x80\x00\x00", 11, "non-finite");
  /* NUL inside a string */
  expect_bad((const uint8_t *)"\x94\x00\x01\xa2x\x00\x90", 7, "NUL");
  /* nesting 100 deep */
  uint8_t deep[100];
  memset(deep, 0x91, sizeof deep);
  deep[99] = 0x90;
  expect_bad(deep, sizeof deep, "nesting");
  expect_bad(NULL, 0, "truncated");
}

static void test_roundtrip_json(void **st) {
  const char *src = "{\"a\":[1,2,{\"b\":null,\"c\":false}],\"d\":\"x\",\"e\":-1.25,\"f\":{}}";
  cJSON *v = cJSON_Parse(src);
  uint8_t *b;
  size_t n;
  kv_err e;
  assert_int_equal(ipc_pack_json(v, &b, &n, &e), 0);
  cJSON *back;
  assert_int_equal(ipc_unpack_json(b, n, &back, &e), 0);
  assert_true(cJSON_Compare(v, back, 1));
  free(b);
  cJSON_Delete(v);
  cJSON_Delete(back);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_encode_golden),
      cmocka_unit_test(test_decode_golden),
      cmocka_unit_test(test_decode_rejects),
      cmocka_unit_test(test_roundtrip_json),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
