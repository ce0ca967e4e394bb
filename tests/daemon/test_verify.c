/* test_verify.c — the answer verifier: invented names never reach the
 * output, true ones do, repetition stops the text, units stay whole. The
 * "repository" is a fixed list of names here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/verify_internal.h"

static const char *const repo_names[] = {"kv_buf_append", "ipc_handshake_server", "dmn_server", "server.c",
                                         "ipc/crypto.c:40-88", "handshake", "crypto_kx_server_session_keys",
                                         "secret", NULL};
static int asked;

static int known(void *ud, const char *tok, size_t n, int kind) {
  (void)ud;
  (void)kind;
  asked++;
  for (int i = 0; repo_names[i]; i++)
    if (strlen(repo_names[i]) == n && !memcmp(repo_names[i], tok, n)) return 1;
  return 0;
}

static char *run(const char *text, size_t step, dmn_verify_stats *st, int *stopped) {
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  kv_buf out = KV_BUF_INIT;
  *stopped = 0;
  size_t n = strlen(text);
  for (size_t i = 0; i < n && !*stopped; i += step) {
    size_t k = i + step > n ? n - i : step;
    int rc = dmn_verifier_feed(&v, text + i, k, &out);
    assert_true(rc >= 0);
    if (rc == 1) *stopped = 1;
  }
  assert_int_equal(dmn_verifier_finish(&v, &out), 0);
  *st = v.st;
  dmn_verifier_free(&v);
  return kv_buf_detach(&out, NULL);
}

static void count_tok(void *ud, const char *tok, size_t n, int kind) {
  (void)ud;
  (void)tok;
  (void)n;
  (void)kind;
}

static void test_tokens(void **s) {
  (void)s;
  struct { const char *text; int n; } cases[] = {
      {"plain prose with no code at all.", 0},
      {"the `ItemView` and a snake_case and camelCase word", 3},
      {"calls open( and Close() here", 2},
      {"see ipc/crypto.c:40-88 and server.c:12.", 2},
      {"e.g. this, i.e. that", 0},
      {"`a.b->c` then `x + y_z`", 2}, /* one-letter names are not checked */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int n = dmn_code_tokens(cases[i].text, strlen(cases[i].text), count_tok, NULL);
    if (n != cases[i].n) fail_msg("'%s': %d tokens, expected %d", cases[i].text, n, cases[i].n);
  }
}

static void test_drops_invented(void **s) {
  (void)s;
  const char *text =
      "The daemon checks the peer in `ipc_handshake_server`. It uses a custom `Dispatchable` type. "
      "Keys come from crypto_kx_server_session_keys (see ipc/crypto.c:40-88).\n"
      "Then getItemView() returns the view.\n";
  for (size_t step = 1; step <= 7; step += 3) {
    dmn_verify_stats st;
    int stopped;
    char *out = run(text, step, &st, &stopped);
    assert_false(stopped);
    assert_non_null(strstr(out, "`ipc_handshake_server`"));
    assert_non_null(strstr(out, "ipc/crypto.c:40-88"));
    assert_null(strstr(out, "Dispatchable"));
    assert_null(strstr(out, "getItemView"));
    assert_null(strstr(out, "custom")); /* the whole sentence goes, not just the name */
    assert_int_equal(st.dropped, 2);
    assert_int_equal(st.sentences, 4);
    free(out);
  }
}

static void test_wrong_location_dropped(void **s) {
  (void)s;
  dmn_verify_stats st;
  int stopped;
  char *out = run("It is in server.c:9999 somewhere. The secret is mixed in.", 5, &st, &stopped);
  assert_null(strstr(out, "9999"));
  assert_non_null(strstr(out, "The secret is mixed in."));
  assert_int_equal(st.dropped, 1);
  free(out);
}

static void test_repetition_stops(void **s) {
  (void)s;
  const char *text =
      "The handshake runs first. The above code can also be simplified. The above code can also be simplified. "
      "The above code can also be simplified. More.";
  dmn_verify_stats st;
  int stopped;
  char *out = run(text, 4, &st, &stopped);
  assert_true(stopped);
  assert_true(st.repeated);
  const char *first = strstr(out, "simplified");
  assert_non_null(first);
  assert_null(strstr(first + 1, "simplified")); /* shown once */
  assert_null(strstr(out, "More"));
  free(out);
  /* a run-on unit that loops without a sentence end */
  kv_buf loop = KV_BUF_INIT;
  for (int i = 0; i < 40; i++) kv_buf_puts(&loop, "and then it goes round again ");
  out = run(loop.data, 9, &st, &stopped);
  assert_true(stopped);
  assert_true(strlen(out) == 0);
  free(out);
  kv_buf_free(&loop);
}

static void test_code_block_whole(void **s) {
  (void)s;
  const char *text = "Like this:\n```c\nkv_buf_append(&b, p, n);\n```\nAnd:\n```c\nmade_up_call(x);\n```\nDone.";
  dmn_verify_stats st;
  int stopped;
  char *out = run(text, 3, &st, &stopped);
  assert_non_null(strstr(out, "```c\nkv_buf_append(&b, p, n);\n```\n"));
  assert_null(strstr(out, "made_up_call"));
  assert_non_null(strstr(out, "Done."));
  free(out);
}

static void test_anchor(void **s) {
  (void)s;
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  v.require_anchor = 1;
  kv_buf out = KV_BUF_INIT;
  const char *t = "The server checks the MAC address of the client. It calls `ipc_handshake_server` first.\n";
  assert_true(dmn_verifier_feed(&v, t, strlen(t), &out) >= 0);
  dmn_verifier_finish(&v, &out);
  assert_null(strstr(kv_buf_str(&out), "MAC address"));
  assert_non_null(strstr(kv_buf_str(&out), "It calls `ipc_handshake_server` first."));
  assert_int_equal(v.st.unanchored, 1);
  assert_int_equal(v.st.dropped, 1);
  dmn_verifier_free(&v);
  kv_buf_free(&out);
}

static void test_known_asked_once(void **s) {
  (void)s;
  asked = 0;
  dmn_verify_stats st;
  int stopped;
  char *out = run("One `dmn_server` here. Two `dmn_server` there. Three `dmn_server` again.", 6, &st, &stopped);
  assert_int_equal(asked, 1);
  assert_int_equal(st.tokens, 3);
  free(out);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokens),           cmocka_unit_test(test_drops_invented),
      cmocka_unit_test(test_wrong_location_dropped), cmocka_unit_test(test_repetition_stops),
      cmocka_unit_test(test_code_block_whole), cmocka_unit_test(test_known_asked_once),
      cmocka_unit_test(test_anchor),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
