/*
 * test_idx_rank.c — the ranking levers of idx_search and the truth of the
 * repo map, each on a small temporary git repository made for it (with the
 * `git` CLI), each failing without its lever:
 *   - code outranks the tests that exercise it, unless the query asks for tests;
 *   - a doc comment right above a definition counts as the definition's
 *     words, and a chunk starts at the comment rather than between the two;
 *   - a definition outranks its declaration (a C prototype), and a
 *     declaration file (header, .d.ts) scores below the code;
 *   - identifier abbreviations and code verbs: "environment" finds env,
 *     "remove" finds strip;
 *   - a block comment with unstarred inner lines is a doc comment, and a C
 *     definition scores with its header prototype's doc comment;
 *   - a hit in the middle of a long definition starts at its first line,
 *     and one definition takes one place among the hits;
 *   - the repo map leaves out a compat alias (`str = str`), which drew every
 *     call of the builtin, and lists definitions at their own lines; its
 *     stand-ins (.d.ts declarations, a test's fakes) yield to the code;
 * (test_idx_repo.c keeps the older search and map assertions.)
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

static char g_tmp[256];

static void sh(const char *dir, const char *fmt, ...) {
  char cmd[8192];
  int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", dir);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
  va_end(ap);
  int rc = system(cmd);
  if (rc != 0) fail_msg("command failed (%d): %s", rc, cmd);
}

static void write_file(const char *dir, const char *rel, const char *text) {
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
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

/* A repository under g_tmp with the given files (path, text pairs, NULL
 * ended), committed, indexed into g_tmp/<name>.db. */
static idx_index *repo_with(const char *name, const char *const *files) {
  char dir[512], db[600];
  snprintf(dir, sizeof dir, "%s/%s", g_tmp, name);
  kv_err err;
  assert_int_equal(kv_mkdirs(dir, 0755, &err), 0);
  sh(dir, "git init -q -b main . && git config core.autocrlf false");
  for (size_t i = 0; files[i]; i += 2) write_file(dir, files[i], files[i + 1]);
  sh(dir, "git add -A && git -c user.name=t -c user.email=t@t commit -qm one");
  snprintf(db, sizeof db, "%s/%s.db", g_tmp, name);
  idx_options o = {0};
  o.db_path = db;
  idx_index *ix = NULL;
  if (idx_open(&ix, dir, &o, &err) != 0) fail_msg("idx_open: %s", err.msg);
  idx_sync_stats st;
  if (idx_sync(ix, 0, NULL, NULL, NULL, &st, &err) != 0) fail_msg("idx_sync: %s", err.msg);
  return ix;
}

static void top_is(idx_index *ix, const char *query, const char *path) {
  idx_hits h;
  kv_err err;
  assert_int_equal(idx_search(ix, query, 5, &h, &err), 0);
  if (h.n == 0 || strcmp(h.v[0].path, path) != 0)
    fail_msg("'%s': first hit %s, want %s", query, h.n ? h.v[0].path : "(none)", path);
  idx_hits_free(&h);
}

/* ---- code above its tests ------------------------------------------------- */

static void test_code_above_tests(void **state) {
  (void)state;
  static const char *const files[] = {
      "pkg/numbers.py",
      "def parse_number(text):\n    text = text.strip()\n    return int(text)\n",
      "tests/test_numbers.py",
      "from pkg.numbers import parse_number\n\n\n"
      "def test_parse_number():\n    assert parse_number(' 1 ') == 1\n    assert parse_number('2') == 2\n\n\n"
      "def test_parse_number_text():\n    text = ' 3 '\n    assert parse_number(text) == 3\n",
      "pkg/other.py", "def unrelated(a):\n    return a\n",
      NULL};
  idx_index *ix = repo_with("tests", files);
  top_is(ix, "how is a number parsed from text", "pkg/numbers.py");
  /* asking for the tests finds them */
  top_is(ix, "which tests check that a number is parsed from text", "tests/test_numbers.py");
  idx_close(ix);
}

/* ---- doc comments ---------------------------------------------------------- */

static void test_doc_comments(void **state) {
  (void)state;
  /* a 50-line function, then a commented one: the cut at 60 lines falls
   * between the comment and its function without the lever */
  char big[8192];
  size_t n = (size_t)snprintf(big, sizeof big, "int first_thing(int x) {\n");
  for (int i = 0; i < 48; i++) n += (size_t)snprintf(big + n, sizeof big - n, "  x = x * 3 + %d;\n", i);
  n += (size_t)snprintf(big + n, sizeof big - n,
                        "  return x;\n}\n\n"
                        "/* Folds the quarterly ledger totals into a single checksum byte. */\n"
                        "int second_thing(const int *v, int k) {\n");
  for (int i = 0; i < 28; i++) n += (size_t)snprintf(big + n, sizeof big - n, "  k ^= v[%d];\n", i);
  snprintf(big + n, sizeof big - n, "  return k;\n}\n");
  static const char *files[] = {"src/thing.c", NULL, "src/other.c",
                                "/* unrelated */\nint other_thing(void) { return 0; }\n", NULL};
  files[1] = big;
  idx_index *ix = repo_with("doc", files);
  idx_hits h;
  kv_err err;
  assert_int_equal(idx_search(ix, "quarterly ledger totals folded", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "src/thing.c");
  assert_int_equal(h.v[0].line0, 53); /* the comment starts the chunk */
  assert_true(h.v[0].line1 >= 54);    /* and the function is in it */
  assert_string_equal(h.v[0].symbol, "second_thing");
  idx_hits_free(&h);
  /* inside one chunk: the comment belongs to the definition below it */
  static const char *const small[] = {
      "lib/a.c",
      "int alpha_one(int x) {\n  return x + 1;\n}\n\n"
      "/* Rounds a ledger total to whole cents. */\nint alpha_two(int x) {\n  return x / 100;\n}\n",
      "lib/b.c", "int beta_one(int x) {\n  /* a ledger total */\n  return x - 1;\n}\n", NULL};
  idx_index *iy = repo_with("doc2", small);
  assert_int_equal(idx_search(iy, "round a ledger total to whole cents", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "lib/a.c"); /* b.c says "ledger total" in a body */
  idx_hits_free(&h);
  idx_close(iy);
  idx_close(ix);
}

/* ---- definitions above declarations ---------------------------------------- */

static void test_definition_above_prototype(void **state) {
  (void)state;
  static const char *const files[] = {
      "api/widget.h",
      "/* Spins the widget until it settles and reports the turns. */\nint widget_spin(int turns);\n",
      "src/widget.c",
      "#include \"widget.h\"\n\n/* Spins the widget until it settles and reports the turns. */\n"
      "int widget_spin(int turns) {\n  return turns;\n}\n",
      NULL};
  idx_index *ix = repo_with("proto", files);
  top_is(ix, "how does the widget spin until it settles", "src/widget.c");
  idx_close(ix);
}

static void test_code_above_header(void **state) {
  (void)state;
  static const char *const files[] = {
      "include/gadget.h",
      "/* The gadget turns counted until it settled. */\n"
      "struct gadget_turns {\n  int turns;\n};\n",
      "src/gadget.c",
      "#include \"gadget.h\"\n\n/* The gadget turns counted until it settled. */\n"
      "int gadget_turns(const int *v, int n) {\n  int turns = 0;\n  for (int i = 0; i < n; i++) turns += v[i];\n"
      "  return turns;\n}\n",
      NULL};
  idx_index *ix = repo_with("header", files);
  top_is(ix, "how are the gadget turns counted until it settled", "src/gadget.c");
  idx_close(ix);
}

/* A block comment whose inner lines carry no leading star is still the doc
 * of the definition below it (lz4.h's style). */
static void test_block_doc_comment(void **state) {
  (void)state;
  static const char *const files[] = {
      "src/a.c",
      "int alpha(int x) {\n  return x;\n}\n\n/*! lf_sum() :\n    Folds the quarterly totals into one checksum byte.\n"
      "    return : the byte\n*/\nint lf_sum(int x) {\n  return x & 255;\n}\n",
      "src/b.c", "int beta(int x) {\n  /* quarterly totals */\n  return x;\n}\n", NULL};
  idx_index *ix = repo_with("blockdoc", files);
  top_is(ix, "how are the quarterly totals folded into a checksum byte", "src/a.c");
  idx_close(ix);
}

/* C documents a function at its prototype in the header: the definition in
 * the .c file scores with that doc comment, and outranks the header. */
static void test_declaration_doc(void **state) {
  (void)state;
  static const char *const files[] = {
      "include/w.h", "/* Folds the quarterly totals into one checksum byte. */\nint lf_sum(int x);\n",
      "src/w.c", "#include \"w.h\"\n\nint lf_sum(int x) {\n  return x & 255;\n}\n",
      "src/b.c", "int beta(int x) {\n  /* quarterly totals, checksum */\n  return x;\n}\n", NULL};
  idx_index *ix = repo_with("declдоc" + 0, files);
  idx_hits h;
  kv_err err;
  assert_int_equal(idx_search(ix, "how are the quarterly totals folded into a checksum byte", 5, &h, &err), 0);
  if (h.n == 0 || strcmp(h.v[0].path, "src/w.c") != 0) fail_msg("first hit %s, want src/w.c", h.n ? h.v[0].path : "-");
  assert_true(h.v[0].line0 <= 3 && 3 <= h.v[0].line1); /* the hit holds the definition */
  idx_hits_free(&h);
  idx_close(ix);
}

/* A match in the second chunk of a long function: the hit starts at the
 * function's first line (its first chunk joined with the one that
 * matched); matches further down: the function takes one place among the
 * hits. */
static void test_hit_covers_definition(void **state) {
  (void)state;
  char big[8192];
  size_t n = (size_t)snprintf(big, sizeof big, "int long_one(int x) {\n");
  for (int i = 0; i < 128; i++)
    n += (size_t)snprintf(big + n, sizeof big - n, i == 118 ? "  x ^= 7; /* fold the quarterly ledger */\n"
                                                            : "  x = x * 3 + %d;\n", i);
  snprintf(big + n, sizeof big - n, "  return x;\n}\n");
  static const char *files[] = {"src/long.c", NULL, "src/other.c",
                                "int other_one(int x) {\n  return x; /* ledger */\n}\n", NULL};
  files[1] = big;
  idx_index *ix = repo_with("long", files);
  idx_hits h;
  kv_err err;
  assert_int_equal(idx_search(ix, "where is the quarterly ledger folded", 5, &h, &err), 0);
  assert_true(h.n >= 1);
  assert_string_equal(h.v[0].path, "src/long.c");
  assert_int_equal(h.v[0].line0, 1);
  assert_true(h.v[0].line1 >= 120); /* through the line that matched */
  assert_string_equal(h.v[0].symbol, "long_one");
  /* the text is the lines line0..line1: the matched line sits at its place */
  const char *p = h.v[0].text;
  for (int l = 1; l < 120 && p; l++) p = strchr(p, '\n'), p = p ? p + 1 : NULL;
  assert_non_null(p);
  assert_memory_equal(p, "  x ^= 7; /* fold the quarterly ledger */\n", 42);
  for (size_t i = 1; i < h.n; i++) assert_string_not_equal(h.v[i].path, "src/long.c");
  idx_hits_free(&h);
  idx_close(ix);
  /* two matches further down a 250-line function: one hit for the two */
  n = (size_t)snprintf(big, sizeof big, "int long_two(int x) {\n");
  for (int i = 0; i < 248; i++)
    n += (size_t)snprintf(big + n, sizeof big - n, i == 150 || i == 215 ? "  x ^= 7; /* fold the quarterly ledger */\n"
                                                                        : "  x = x * 3 + %d;\n", i);
  snprintf(big + n, sizeof big - n, "  return x;\n}\n");
  files[1] = big;
  idx_index *iy = repo_with("long2", files);
  assert_int_equal(idx_search(iy, "where is the quarterly ledger folded", 5, &h, &err), 0);
  assert_true(h.n >= 2);
  assert_string_equal(h.v[0].path, "src/long.c");
  for (size_t i = 1; i < h.n; i++) assert_string_not_equal(h.v[i].path, "src/long.c");
  idx_hits_free(&h);
  idx_close(iy);
}

/* ---- abbreviations and code verbs ---------------------------------------------- */

static void test_abbreviations(void **state) {
  (void)state;
  static const char *const files[] = {
      "a.py", "def add_codes(s):\n    return s + 'codes'\n",
      "z.py", "def strip_codes(s):\n    return s.replace('codes', '')\n",
      "m.py", "def read_env(name):\n    import os\n    return os.environ.get(name)\n",
      "n.py", "def read_file(name):\n    return open(name).read()\n",
      NULL};
  idx_index *ix = repo_with("abbrev", files);
  top_is(ix, "remove the codes", "z.py");
  top_is(ix, "read a name from the environment", "m.py");
  idx_close(ix);
}

/* ---- repo map ----------------------------------------------------------------- */

static void test_map_alias(void **state) {
  (void)state;
  static const char *const files[] = {
      "pkg/compat.py", "import sys\n\n# Keep old names\nbuiltin_str = str\nstr = str\nbytes = bytes\n",
      "pkg/util.py", "from .compat import str\n\n\ndef render_value(v):\n    return str(v) + str(len(v))\n",
      "pkg/a.py", "from .compat import str\nfrom .util import render_value\n\n\ndef fa(x):\n"
                  "    return str(x) + str(x) + render_value(x)\n",
      "pkg/b.py", "from .compat import str\n\n\ndef fb(x):\n    return str(x) + str(str(x))\n",
      NULL};
  idx_index *ix = repo_with("alias", files);
  char *map;
  kv_err err;
  assert_int_equal(idx_repomap(ix, 1000, NULL, NULL, &map, &err), 0);
  if (strstr(map, ": str = str") || strstr(map, ": bytes = bytes")) fail_msg("alias in the map:\n%s", map);
  /* the most referenced real definition leads, at its own line */
  if (strncmp(map, "pkg/util.py:\n     4: def render_value(v):\n", 41) != 0) fail_msg("map:\n%s", map);
  assert_non_null(strstr(map, "     4: builtin_str = str\n")); /* a rename stays */
  free(map);
  idx_close(ix);
}

/* Stand-ins: a declaration file's method (.d.ts) and a test's fake of a
 * name the code defines do not take the code's references; code's calls
 * never reach a test file. */
static void test_map_standins(void **state) {
  (void)state;
  static const char *const files[] = {
      "lib/store.js",
      "class Store {\n  loadRecord(key) {\n    return this.data[key];\n  }\n}\nmodule.exports = { Store };\n",
      "lib/app.js",
      "const { Store } = require('./store');\nfunction runApp(s) {\n  s.loadRecord('a');\n  s.loadRecord('b');\n"
      "  return flushEverything(s);\n}\nmodule.exports = { runApp };\n",
      "typings/index.d.ts", "export class Store {\n  loadRecord(key: string): any;\n}\n",
      "test/fakes.js",
      "class FakeStore {\n  loadRecord(key) {\n    return key;\n  }\n}\nfunction flushEverything(s) {\n  return s;\n}\n"
      "module.exports = { FakeStore, flushEverything };\n",
      NULL};
  idx_index *ix = repo_with("standins", files);
  char *map;
  kv_err err;
  assert_int_equal(idx_repomap(ix, 1000, NULL, NULL, &map, &err), 0);
  const char *real = strstr(map, "lib/store.js:\n");
  if (!real || !strstr(real, "     2: loadRecord(key)\n")) fail_msg("the code's method is not in the map:\n%s", map);
  /* the stand-ins have no references left: they come after the code's */
  const char *decl = strstr(map, "typings/index.d.ts:\n"), *fake = strstr(map, "test/fakes.js:\n");
  if ((decl && decl < real) || (fake && fake < real)) fail_msg("a stand-in leads the map:\n%s", map);
  free(map);
  idx_close(ix);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_tmp, sizeof g_tmp, "/tmp/kvasir-test-rank.XXXXXX");
  if (!mkdtemp(g_tmp)) return -1;
  return 0;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_code_above_tests),
      cmocka_unit_test(test_doc_comments),
      cmocka_unit_test(test_definition_above_prototype),
      cmocka_unit_test(test_code_above_header),
      cmocka_unit_test(test_abbreviations),
      cmocka_unit_test(test_map_alias),
      cmocka_unit_test(test_block_doc_comment),
      cmocka_unit_test(test_declaration_doc),
      cmocka_unit_test(test_map_standins),
      cmocka_unit_test(test_hit_covers_definition),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
