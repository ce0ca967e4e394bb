/* test_answer.c — the grounded lead, facts event and prompt block built
 * from hand-made idx_facts; the lead passes the verifier when the verifier
 * knows exactly the names and locations in the facts (true by construction),
 * and the uncertainty judgement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/answer_internal.h"
#include "daemon/verify_internal.h"

static idx_ref callers[] = {{"src/server.c", 120, "on_accept"}, {"src/cli.c", 40, ""}};
static idx_ref tests_[] = {{"tests/test_auth.c", 12, "test_handshake"}};
static char *callees[] = {"crypto_kx_keys"};

static void make(idx_fact f[2]) {
  memset(f, 0, 2 * sizeof *f);
  f[0].def.name = "verify_client";
  f[0].def.kind = "function";
  f[0].def.path = "src/auth.c";
  f[0].def.signature = "int verify_client(const char *proof)";
  f[0].def.line0 = 9;
  f[0].def.line1 = 30;
  f[0].doc = "/* Checks the client's proof against the secret. More\n * text here.\n * @param proof ... */";
  f[0].callers = callers;
  f[0].ncallers = 2;
  f[0].tests = tests_;
  f[0].ntests = 1;
  f[0].callees = callees;
  f[0].ncallees = 1;
  snprintf(f[0].commits[0].id, sizeof f[0].commits[0].id, "abc1234");
  f[0].commits[0].time = 1700000000;
  f[0].commits[0].summary = "auth: constant time";
  f[0].ncommits = 1;
  f[1].def.name = "dmn_server";
  f[1].def.kind = "struct";
  f[1].def.path = "src/server.c";
  f[1].def.line0 = 3;
  f[1].def.line1 = 20;
}

static int known(void *ud, const char *tok, size_t n, int kind) {
  static const char *const names[] = {"verify_client", "src/auth.c:9-30", "on_accept", "src/server.c:120",
                                      "src/cli.c:40", "test_handshake", "tests/test_auth.c:12", "dmn_server",
                                      "src/server.c:3", NULL};
  (void)ud;
  (void)kind;
  for (int i = 0; names[i]; i++)
    if (strlen(names[i]) == n && !memcmp(names[i], tok, n)) return 1;
  return 0;
}

static void test_doc_sentence(void **s) {
  (void)s;
  char b[200];
  dmn_doc_sentence("/* Checks the proof. Then more. */", b, sizeof b);
  assert_string_equal(b, "Checks the proof.");
  dmn_doc_sentence("/**\n * Opens the index\n * of a repository.\n */", b, sizeof b);
  assert_string_equal(b, "Opens the index of a repository.");
  dmn_doc_sentence("\"\"\"Return the app.\n\n    Longer.\n    \"\"\"", b, sizeof b);
  assert_string_equal(b, "Return the app.");
  dmn_doc_sentence("# one\n# two\n#\n# three", b, sizeof b);
  assert_string_equal(b, "one two");
  dmn_doc_sentence(NULL, b, sizeof b);
  assert_string_equal(b, "");
  dmn_doc_sentence("/* a very long sentence without an end */", b, 8);
  assert_int_equal(strlen(b), 7);
}

static void test_lead_true_by_construction(void **s) {
  (void)s;
  idx_fact f[2];
  make(f);
  dmn_confidence c;
  double sc[2] = {10, 5};
  dmn_confidence_judge(&c, sc, 2, NULL);
  assert_false(c.unsure);
  kv_buf b = KV_BUF_INIT;
  assert_int_equal(dmn_answer_lead(&b, f, 2, &c), 0);
  assert_non_null(strstr(b.data, "`verify_client` (src/auth.c:9-30), a function: Checks the client's proof against the secret."));
  assert_non_null(strstr(b.data, "`on_accept` (src/server.c:120) and src/cli.c:40"));
  assert_non_null(strstr(b.data, "Tests: `test_handshake` (tests/test_auth.c:12)"));
  assert_non_null(strstr(b.data, "abc1234 (2023-11-14)"));
  assert_non_null(strstr(b.data, "Also relevant: `dmn_server` (src/server.c:3)"));
  assert_null(strstr(b.data, "unsure"));
  assert_non_null(strstr(b.data, " It is used by "));
  /* every unit of the lead survives verification against the facts alone */
  dmn_verifier v;
  dmn_verifier_init(&v, known, NULL);
  kv_buf out = KV_BUF_INIT;
  assert_true(dmn_verifier_feed(&v, b.data, b.len, &out) >= 0);
  dmn_verifier_finish(&v, &out);
  assert_int_equal(v.st.dropped, 0);
  assert_string_equal(out.data, b.data);
  dmn_verifier_free(&v);
  kv_buf_free(&out);
  kv_buf_free(&b);
}

static void test_unsure(void **s) {
  (void)s;
  idx_fact f[2];
  make(f);
  dmn_confidence c;
  double sc[2] = {10, 9.5};
  dmn_confidence_judge(&c, sc, 2, "think");
  assert_true(c.unsure);
  assert_true(c.reasoning);
  snprintf(c.escalate, sizeof c.escalate, "policy explain: depth think would go to tier pro.");
  kv_buf b = KV_BUF_INIT;
  dmn_answer_lead(&b, f, 2, &c);
  assert_true(!strncmp(b.data, "Possibly `verify_client`", 24));
  assert_non_null(strstr(b.data, "Retrieval is unsure here (the two best matches score within 5% of each other)."));
  assert_non_null(strstr(b.data, "tier pro"));
  kv_buf_reset(&b);
  f[0].ndefs = 3; /* refs are by name: the lead must not claim they are calls of this one */
  dmn_answer_lead(&b, f, 2, &c);
  assert_non_null(strstr(b.data, " 3 definitions share its name; the name is used by `on_accept`"));
  assert_null(strstr(b.data, "It is used by"));
  kv_buf_reset(&b);
  double sc3[3] = {4.0, 10.0, 9.8}; /* facts reordered (code before tests): the best two still decide */
  dmn_confidence_judge(&c, sc3, 3, NULL);
  assert_true(c.unsure && c.margin > 0.019 && c.margin < 0.021);
  dmn_confidence_judge(&c, NULL, 0, NULL);
  assert_true(c.unsure);
  dmn_answer_lead(&b, f, 0, &c);
  assert_non_null(strstr(b.data, "no definition"));
  kv_buf_free(&b);
}

static void test_json_and_prompt(void **s) {
  (void)s;
  idx_fact f[2];
  make(f);
  cJSON *j = dmn_facts_json(f, 2);
  assert_int_equal(cJSON_GetArraySize(j), 2);
  cJSON *o = cJSON_GetArrayItem(j, 0);
  assert_string_equal(cJSON_GetObjectItem(o, "path")->valuestring, "src/auth.c");
  assert_int_equal(cJSON_GetObjectItem(o, "start_line")->valueint, 9);
  assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "callers")), 2);
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tests"), 0), "in")->valuestring,
                      "test_handshake");
  assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "commits"), 0), "id")->valuestring,
                      "abc1234");
  cJSON_Delete(j);
  kv_buf b = KV_BUF_INIT;
  assert_int_equal(dmn_facts_prompt(&b, f, 2), 0);
  assert_non_null(strstr(b.data, "- function `verify_client` at src/auth.c:9-30: int verify_client(const char *proof)\n"));
  assert_non_null(strstr(b.data, "  calls: `crypto_kx_keys`\n"));
  assert_non_null(strstr(b.data, "- struct `dmn_server` at src/server.c:3-20\n"));
  kv_buf_free(&b);
  /* the prompt is kept short: the best match's users and callees, the
   * others' first user and no callees */
  f[1].callers = callers;
  f[1].ncallers = 2;
  f[1].callees = callees;
  f[1].ncallees = 1;
  kv_buf_reset(&b);
  assert_int_equal(dmn_facts_prompt(&b, f, 2), 0);
  const char *second = strstr(b.data, "- struct `dmn_server`");
  assert_non_null(second);
  assert_null(strstr(second, "calls:"));
  assert_non_null(strstr(second, "  used by: `on_accept` (src/server.c:120) (1 more)\n"));
  assert_non_null(strstr(b.data, "`on_accept` (src/server.c:120) and src/cli.c:40\n")); /* the first: both */
  kv_buf_free(&b);
}

static cJSON *cite(const char *path, int l0, int l1, const char *sym) {
  cJSON *c = cJSON_CreateObject();
  cJSON_AddStringToObject(c, "path", path);
  cJSON_AddNumberToObject(c, "start_line", l0);
  cJSON_AddNumberToObject(c, "end_line", l1);
  cJSON_AddStringToObject(c, "symbol", sym);
  cJSON_AddNumberToObject(c, "score", 1);
  return c;
}

static void expect_cite(const cJSON *arr, int i, const char *path, int l0, int l1) {
  const cJSON *c = cJSON_GetArrayItem(arr, i);
  assert_non_null(c);
  assert_string_equal(cJSON_GetObjectItem(c, "path")->valuestring, path);
  assert_int_equal(cJSON_GetObjectItem(c, "start_line")->valueint, l0);
  assert_int_equal(cJSON_GetObjectItem(c, "end_line")->valueint, l1);
}

/* The answer's citations: the named facts' definitions first, then the
 * retrieved ranges it names (by symbol or path:line), without overlaps;
 * a range it does not name is context, not a citation. */
static void test_answer_citations(void **s) {
  (void)s;
  idx_fact f[2];
  make(f);
  cJSON *cites = cJSON_CreateArray();
  cJSON_AddItemToArray(cites, cite("tests/test_auth.c", 1, 40, "test_handshake")); /* not named */
  cJSON_AddItemToArray(cites, cite("src/auth.c", 1, 35, "verify_client"));        /* overlaps the fact */
  cJSON_AddItemToArray(cites, cite("src/net.c", 50, 90, "read_frame"));           /* named by location */
  cJSON_AddItemToArray(cites, cite("src/util.c", 1, 20, "hexdump"));              /* "hexdumps" is not it */
  cJSON_AddItemToArray(cites, cite("src/io.c", 10, 20, "io_loop"));              /* only lib/src/io.c:12 is named */
  cJSON_AddItemToArray(cites, cite("src/poll.c", 40, 60, "poll_once"));          /* a range starting before it */
  const char *ans = "The best match is `verify_client` (src/auth.c:9-30). Frames are read at src/net.c:61; see hexdumps"
                    " and lib/src/io.c:12; polling: src/poll.c:30-45.";
  cJSON *out = dmn_answer_citations(ans, cites, f, 2);
  assert_int_equal(cJSON_GetArraySize(out), 3); /* dmn_server is not named: its fact is not cited */
  expect_cite(out, 0, "src/auth.c", 9, 30);
  expect_cite(out, 1, "src/net.c", 50, 90);
  expect_cite(out, 2, "src/poll.c", 40, 60);
  cJSON_Delete(out);
  /* an answer naming none of them keeps every retrieved range */
  out = dmn_answer_citations("Nothing specific.", cites, f, 2);
  assert_int_equal(cJSON_GetArraySize(out), 6);
  expect_cite(out, 0, "tests/test_auth.c", 1, 40);
  cJSON_Delete(out);
  cJSON_Delete(cites);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_doc_sentence), cmocka_unit_test(test_lead_true_by_construction),
                                     cmocka_unit_test(test_unsure), cmocka_unit_test(test_json_and_prompt),
                                     cmocka_unit_test(test_answer_citations)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
