/*
 * test_idx_facts.c — idx_fact_get and idx_known on a temporary git
 * repository made with the `git` CLI: the definition, its doc comment,
 * callers vs tests (never itself), callees, the commits that changed its
 * file (and not the ones that did not), which tokens are known, and which
 * lines are quotes of the code (idx_quoted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "indexer/indexer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_tmp[256], g_dir[512];

static void sh(const char *fmt, ...) {
  char cmd[8192];
  int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", g_dir);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
  va_end(ap);
  if (system(cmd) != 0) fail_msg("command failed: %s", cmd);
}

static void put(const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", g_dir, rel);
  char *slash = strrchr(path, '/');
  *slash = 0;
  kv_err err;
  assert_int_equal(kv_mkdirs(path, 0755, &err), 0);
  *slash = '/';
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static const char *auth_c =
    "#include \"auth.h\"\n"                                  /* 1 */
    "\n"                                                     /* 2 */
    "static int compare_tags(const char *a, const char *b) {\n" /* 3 */
    "  return a[0] == b[0];\n"                               /* 4 */
    "}\n"                                                    /* 5 */
    "\n"                                                     /* 6 */
    "/* Checks the client's proof against the secret.\n"     /* 7 */
    " * Returns 1 when it matches. */\n"                     /* 8 */
    "int verify_client(const char *proof, const char *secret) {\n" /* 9 */
    "  if (!proof) return verify_client(secret, secret);\n"  /* 10: recursion, not a caller */
    "  return compare_tags(proof, secret);\n"                /* 11 */
    "}\n";                                                   /* 12 */

static int setup(void **st) {
  (void)st;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/kvasir-facts-XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  snprintf(g_dir, sizeof g_dir, "%s/repo", g_tmp);
  kv_err err;
  kv_mkdirs(g_dir, 0755, &err);
  sh("git init -q -b main . && git config user.email t@t && git config user.name t");
  put("src/auth.c", auth_c);
  /* two calls from one function: one caller */
  put("src/server.c", "int on_connect(const char *p, const char *s) {\n  if (!verify_client(s, p)) return 0;\n"
                      "  return verify_client(p, s);\n}\n");
  /* a prototype is not a second definition */
  put("src/auth.h", "int verify_client(const char *proof, const char *secret);\n"
                    "/* Opens the session. */\nint open_session(void);\n");
  put("src/session.c", "#include \"auth.h\"\n\nint open_session(void) {\n  return 1;\n}\n");
  sh("git add -A && git commit -qm 'first: auth and server'");
  put("README.md", "hello\n    return forged_call(p, s);\n");
  put("Makefile", "app: main.c\n\tcc -o app_server main.c\n");
  sh("git add -A && git commit -qm 'docs only'");
  put("tests/test_auth.c", "void test_ok(void) {\n  verify_client(\"x\", \"x\");\n}\n");
  /* a JavaScript file calling a name that is defined in C: not a caller */
  put("web/app.js", "function go() {\n  return verify_client(1, 2);\n}\n");
  /* a second C definition of compare_tags */
  put("src/other.c", "static int compare_tags(int a) {\n  return a;\n}\n");
  put("src/auth.c", auth_c); /* unchanged */
  sh("git add -A && git commit -qm 'tests'");
  char *t = malloc(strlen(auth_c) + 64);
  snprintf(t, strlen(auth_c) + 64, "%s/* end */\n", auth_c);
  put("src/auth.c", t);
  free(t);
  sh("git add -A && git commit -qm 'auth: trailing note'");
  return 0;
}

static int teardown(void **st) {
  (void)st;
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

static idx_index *open_synced(void) {
  char db[600];
  snprintf(db, sizeof db, "%s/index.db", g_tmp);
  idx_options o = {0};
  o.db_path = db;
  idx_index *ix;
  kv_err err;
  if (idx_open(&ix, g_dir, &o, &err)) fail_msg("idx_open: %s", err.msg);
  idx_sync_stats s;
  if (idx_sync(ix, 0, NULL, NULL, NULL, &s, &err)) fail_msg("idx_sync: %s", err.msg);
  return ix;
}

static void test_fact(void **st) {
  (void)st;
  idx_index *ix = open_synced();
  idx_fact f;
  kv_err err;
  /* a chunk range that starts at the comment above the definition */
  if (idx_fact_get(ix, "src/auth.c", 7, 12, NULL, &f, &err)) fail_msg("%s", err.msg);
  assert_string_equal(f.def.name, "verify_client");
  assert_int_equal(f.def.line0, 9);
  assert_int_equal(f.ndefs, 1);
  assert_non_null(f.doc);
  assert_non_null(strstr(f.doc, "Checks the client's proof"));
  assert_null(strstr(f.doc, "compare_tags"));
  assert_int_equal(f.ncallers, 1); /* server.c, not the recursion on line 10 */
  assert_string_equal(f.callers[0].path, "src/server.c");
  assert_int_equal(f.callers[0].line, 2);
  assert_string_equal(f.callers[0].in, "on_connect");
  assert_int_equal(f.ntests, 1);
  assert_string_equal(f.tests[0].path, "tests/test_auth.c");
  assert_string_equal(f.tests[0].in, "test_ok");
  int calls_compare = 0;
  for (size_t i = 0; i < f.ncallees; i++) calls_compare |= !strcmp(f.callees[i], "compare_tags");
  assert_true(calls_compare);
  /* commits that changed src/auth.c: the last and the first, not the other two */
  assert_int_equal(f.ncommits, 2);
  assert_string_equal(f.commits[0].summary, "auth: trailing note");
  assert_string_equal(f.commits[1].summary, "first: auth and server");
  idx_fact_free(&f);
  /* a line inside a definition finds the enclosing one */
  assert_int_equal(idx_fact_get(ix, "src/auth.c", 4, 4, NULL, &f, &err), 0);
  assert_string_equal(f.def.name, "compare_tags");
  assert_int_equal(f.ndefs, 2);
  idx_fact_free(&f);
  /* a chunk holding two definitions: the question picks the one it names */
  assert_int_equal(idx_fact_get(ix, "src/auth.c", 1, 12, NULL, &f, &err), 0);
  assert_string_equal(f.def.name, "compare_tags"); /* no question: the first */
  idx_fact_free(&f);
  assert_int_equal(idx_fact_get(ix, "src/auth.c", 1, 12, "how is a client verified?", &f, &err), 0);
  assert_string_equal(f.def.name, "verify_client");
  idx_fact_free(&f);
  assert_int_equal(idx_fact_get(ix, "src/auth.c", 1, 12, "where are the tags compared", &f, &err), 0);
  assert_string_equal(f.def.name, "compare_tags");
  idx_fact_free(&f);
  /* no comment above the definition: the one above its declaration */
  assert_int_equal(idx_fact_get(ix, "src/session.c", 3, 5, NULL, &f, &err), 0);
  assert_string_equal(f.def.name, "open_session");
  assert_non_null(f.doc);
  assert_non_null(strstr(f.doc, "Opens the session."));
  idx_fact_free(&f);
  assert_int_equal(idx_fact_get(ix, "README.md", 1, 1, NULL, &f, &err), KV_ENOTFOUND);
  assert_non_null(strstr(err.msg, "README.md"));
  idx_close(ix);
}

static void test_known(void **st) {
  (void)st;
  idx_index *ix = open_synced();
  assert_int_equal(idx_known(ix, "verify_client", 13, 0), 1);
  assert_int_equal(idx_known(ix, "Dispatchable", 12, 0), 0);
  assert_int_equal(idx_known(ix, "on_connect->verify_client", 25, 0), 1);
  assert_int_equal(idx_known(ix, "on_connect.ItemView", 19, 0), 0);
  assert_int_equal(idx_known(ix, "src/auth.c:9-12", 15, 1), 1);
  assert_int_equal(idx_known(ix, "auth.c:3", 8, 1), 1); /* a path suffix */
  assert_int_equal(idx_known(ix, "src/auth.c:90", 13, 1), 0);
  assert_int_equal(idx_known(ix, "src/nope.c:1", 12, 1), 0);
  /* quoted lines: in a code file (white space aside), not only in prose */
  const char *q1 = "    return verify_client(p, s);  ", *q2 = "return verify_client(s, p);",
             *q3 = "return forged_call(p, s);";
  assert_int_equal(idx_quoted(ix, q1, strlen(q1)), 1);
  assert_int_equal(idx_quoted(ix, q2, strlen(q2)), 0);
  assert_int_equal(idx_quoted(ix, q3, strlen(q3)), 0); /* README.md holds it: prose */
  assert_int_equal(idx_quoted(ix, " }", 2), 1);         /* nothing to judge */
  const char *q4 = "return\t verify_client(p,  s);", *q5 = "cc -o app_server main.c", *q6 = "cc -o app_client main.c";
  assert_int_equal(idx_quoted(ix, q4, strlen(q4)), 1); /* white space runs collapse */
  assert_int_equal(idx_quoted(ix, q5, strlen(q5)), 1); /* a Makefile is not documentation */
  assert_int_equal(idx_quoted(ix, q6, strlen(q6)), 0);
  assert_true(idx_path_is_test("tests/test_auth.c") && idx_path_is_test("lib/foo.spec.ts") &&
              !idx_path_is_test("src/testing_utils.c"));
  idx_close(ix);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_fact), cmocka_unit_test(test_known)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
