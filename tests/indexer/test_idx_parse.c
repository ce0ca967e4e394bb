/*
 * test_idx_parse.c — the parse layer without git: definitions of every
 * language against golden values produced independently (universal-ctags,
 * Python's ast; see tests/reference/indexer/make_golden.sh), sub-word
 * splitting, content classification (binary, minified, a 50 MB single line,
 * generated, invalid UTF-8, unparsable code) and chunk coverage.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "indexer/parse_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static idx_langset *g_ls;

static int setup(void **st) {
  (void)st;
  kv_err err;
  return idx_langset_new(&g_ls, &err);
}
static int teardown(void **st) {
  (void)st;
  idx_langset_free(g_ls);
  return 0;
}

static char *slurp(const char *path, size_t *len) {
  char *buf = NULL;
  kv_err err;
  if (kv_read_file(path, 1 << 24, &buf, len, &err) != 0) fail_msg("%s", err.msg);
  return buf;
}

static void parse_file(const char *name, idx_parsed *r) {
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/indexer/data/%s", KVASIR_SOURCE_DIR, name);
  size_t len;
  char *buf = slurp(path, &len);
  idx_parser *p;
  assert_int_equal(idx_parser_new(&p, g_ls), 0);
  assert_int_equal(idx_parse(p, idx_lang_for_path(name, NULL), buf, len, r), 0);
  idx_parser_free(p);
  free(buf);
}

static void test_queries_compile(void **st) {
  (void)st;
  /* every grammar has a working tags query (upstream, ours, or both) */
  for (size_t i = 0; i < g_ls->n; i++) {
    if (!g_ls->v[i].query) fail_msg("%s: no tags query (%s)", g_ls->v[i].name, g_ls->v[i].query_note);
  }
}

static void test_golden_symbols(void **st) {
  (void)st;
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/indexer/data/golden.tsv", KVASIR_SOURCE_DIR);
  size_t len;
  char *gold = slurp(path, &len);
  char cur[64] = "";
  idx_parsed r = {0};
  int rows = 0, missing = 0;
  for (char *line = strtok(gold, "\n"); line; line = strtok(NULL, "\n")) {
    char lang[32], file[64], name[128];
    int ln;
    if (sscanf(line, "%31[^\t]\t%63[^\t]\t%127[^\t]\t%d", lang, file, name, &ln) != 4) continue;
    if (strcmp(cur, file) != 0) {
      idx_parsed_free(&r);
      parse_file(file, &r);
      snprintf(cur, sizeof cur, "%s", file);
      assert_int_equal(r.skip, 0);
    }
    rows++;
    int found = 0;
    for (size_t i = 0; i < r.nsyms; i++)
      if (strcmp(r.syms[i].name, name) == 0 && r.syms[i].line0 <= ln && ln <= r.syms[i].line1) found = 1;
    if (!found) {
      missing++;
      print_message("missing: %s %s %s:%d\n", lang, name, file, ln);
    }
  }
  idx_parsed_free(&r);
  free(gold);
  assert_true(rows >= 50);
  assert_int_equal(missing, 0);
}

/* Python: the exact set of functions and classes, with first lines, as ast has them. */
static void test_python_exact(void **st) {
  (void)st;
  char path[1024];
  snprintf(path, sizeof path, "%s/tests/indexer/data/golden.tsv", KVASIR_SOURCE_DIR);
  size_t len;
  char *gold = slurp(path, &len);
  idx_parsed r;
  parse_file("sample.py", &r);
  int ngold = 0;
  for (char *line = strtok(gold, "\n"); line; line = strtok(NULL, "\n")) {
    char lang[32], file[64], name[128];
    int ln;
    if (sscanf(line, "%31[^\t]\t%63[^\t]\t%127[^\t]\t%d", lang, file, name, &ln) != 4 || strcmp(lang, "python")) continue;
    ngold++;
    int found = 0;
    for (size_t i = 0; i < r.nsyms; i++)
      if (!strcmp(r.syms[i].name, name) && r.syms[i].line0 == ln) found = 1;
    if (!found) fail_msg("python: %s at line %d not found", name, ln);
  }
  int ours = 0;
  for (size_t i = 0; i < r.nsyms; i++)
    if (!strcmp(r.syms[i].kind, "function") || !strcmp(r.syms[i].kind, "class")) ours++;
  assert_int_equal(ours, ngold);
  /* scopes: Inventory.add is in Inventory, helper in fetch_all */
  for (size_t i = 0; i < r.nsyms; i++) {
    if (!strcmp(r.syms[i].name, "add")) assert_string_equal(r.syms[i].scope, "Inventory");
    if (!strcmp(r.syms[i].name, "helper")) assert_string_equal(r.syms[i].scope, "fetch_all");
    if (!strcmp(r.syms[i].name, "load_inventory")) {
      assert_null(r.syms[i].scope);
      assert_string_equal(r.syms[i].sig, "def load_inventory(path):");
      assert_int_equal(r.syms[i].line1, 32);
    }
  }
  /* references: load_inventory calls Inventory */
  int ref = 0;
  for (size_t i = 0; i < r.nrefs; i++)
    if (!strcmp(r.refs[i].name, "Inventory") && r.refs[i].line == 28) ref = 1;
  assert_true(ref);
  idx_parsed_free(&r);
  free(gold);
}

static void test_c_details(void **st) {
  (void)st;
  idx_parsed r;
  parse_file("sample.c", &r);
  int fn = 0;
  for (size_t i = 0; i < r.nsyms; i++)
    if (!strcmp(r.syms[i].name, "buffer_new")) {
      fn = 1;
      assert_string_equal(r.syms[i].kind, "function");
      assert_int_equal(r.syms[i].line0, 25);
      assert_int_equal(r.syms[i].line1, 31); /* the whole body, not the declarator */
      assert_string_equal(r.syms[i].sig, "buffer *buffer_new(size_t n)");
    }
  assert_true(fn);
  int call = 0;
  for (size_t i = 0; i < r.nrefs; i++)
    if (!strcmp(r.refs[i].name, "add") && r.refs[i].line == 21) call = 1;
  assert_true(call);
  idx_parsed_free(&r);
}

static void test_subwords(void **st) {
  (void)st;
  char *s = NULL;
  size_t len = 0, cap = 0;
  const char *in = "parseHTTPRequest foo_bar_baz x ab simple kv_err v2Alpha";
  assert_int_equal(idx_subwords(in, strlen(in), &s, &len, &cap), 0);
  assert_string_equal(s, "parse http request foo bar baz kv err v2 alpha");
  free(s);
}

static void test_classify(void **st) {
  (void)st;
  idx_parser *p;
  assert_int_equal(idx_parser_new(&p, g_ls), 0);
  idx_parsed r;
  /* binary */
  const char bin[] = "\x7f" "ELF\x02\x01\x01\0\0\0\0";
  assert_int_equal(idx_parse(p, "c", bin, sizeof bin, &r), 0);
  assert_int_equal(r.skip, IDX_SKIP_BINARY);
  idx_parsed_free(&r);
  /* a 50 MB single line (generated now, not committed) */
  size_t big = 50u << 20;
  char *b = malloc(big);
  assert_non_null(b);
  for (size_t i = 0; i < big; i++) b[i] = "var a=1;"[i % 8];
  assert_int_equal(idx_parse(p, "javascript", b, big, &r), 0);
  assert_int_equal(r.skip, IDX_SKIP_MINIFIED);
  idx_parsed_free(&r);
  free(b);
  /* generated */
  const char *gen = "// Code generated by protoc-gen-go. DO NOT EDIT.\npackage x\n";
  assert_int_equal(idx_parse(p, "go", gen, strlen(gen), &r), 0);
  assert_int_equal(r.skip, IDX_SKIP_GENERATED);
  idx_parsed_free(&r);
  /* invalid UTF-8: indexed as text, bytes replaced, noted */
  const char bad[] = "def f():\n    return '\xff\xfe caf\xc3\xa9 \xc3'\n";
  assert_int_equal(idx_parse(p, "python", bad, sizeof bad - 1, &r), 0);
  assert_int_equal(r.skip, 0);
  assert_int_equal(r.note, IDX_NOTE_INVALID_UTF8);
  assert_non_null(strstr(r.text, "'?? caf\xc3\xa9 ?'"));
  assert_true(r.nsyms == 1 && !strcmp(r.syms[0].name, "f"));
  idx_parsed_free(&r);
  /* code the grammar cannot parse: indexed, noted, no crash */
  const char *junk = "int main( { ))) }}} #if\n struct { ;;; \n";
  assert_int_equal(idx_parse(p, "c", junk, strlen(junk), &r), 0);
  assert_int_equal(r.skip, 0);
  assert_int_equal(r.note, IDX_NOTE_PARSE_ERROR);
  assert_true(r.nchunks >= 1);
  idx_parsed_free(&r);
  /* no grammar: text chunks */
  const char *md = "# Title\n\nSome text.\n\nMore text.\n";
  assert_int_equal(idx_parse(p, NULL, md, strlen(md), &r), 0);
  assert_int_equal(r.note, IDX_NOTE_TEXT_ONLY);
  assert_int_equal(r.nchunks, 1);
  assert_int_equal(r.chunks[0].line0, 1);
  assert_int_equal(r.chunks[0].line1, 5);
  idx_parsed_free(&r);
  /* empty */
  assert_int_equal(idx_parse(p, "c", "", 0, &r), 0);
  assert_int_equal(r.nchunks, 0);
  idx_parsed_free(&r);
  idx_parser_free(p);
  /* by path */
  assert_int_equal(idx_classify_path("a/vendor/x.go"), IDX_SKIP_VENDORED);
  assert_int_equal(idx_classify_path("web/node_modules/y/index.js"), IDX_SKIP_VENDORED);
  assert_int_equal(idx_classify_path("dist/app.min.js"), IDX_SKIP_MINIFIED);
  assert_int_equal(idx_classify_path("package-lock.json"), IDX_SKIP_GENERATED);
  assert_int_equal(idx_classify_path("api/x.pb.go"), IDX_SKIP_GENERATED);
  assert_int_equal(idx_classify_path("src/vendors.c"), 0);
}

/* Chunks are ordered, disjoint, within the file, and cover every definition. */
static void test_chunks(void **st) {
  (void)st;
  /* a long file: 300 small functions */
  size_t cap = 1 << 16, n = 0;
  char *src = malloc(cap);
  assert_non_null(src);
  for (int i = 0; i < 300; i++) n += (size_t)snprintf(src + n, cap - n, "int f%d(int x) {\n  return x + %d;\n}\n\n", i, i);
  idx_parser *p;
  assert_int_equal(idx_parser_new(&p, g_ls), 0);
  idx_parsed r;
  assert_int_equal(idx_parse(p, "c", src, n, &r), 0);
  assert_int_equal(r.nsyms, 300);
  assert_true(r.nchunks >= 15 && r.nchunks <= 40);
  int prev = 0;
  for (size_t i = 0; i < r.nchunks; i++) {
    assert_true(r.chunks[i].line0 > prev);
    assert_true(r.chunks[i].line1 >= r.chunks[i].line0);
    assert_true(r.chunks[i].line1 - r.chunks[i].line0 < 120);
    prev = r.chunks[i].line1;
  }
  assert_true(prev <= r.nlines);
  for (size_t s = 0; s < r.nsyms; s++) {
    int in = 0;
    for (size_t i = 0; i < r.nchunks; i++)
      if (r.chunks[i].line0 <= r.syms[s].line0 && r.syms[s].line1 <= r.chunks[i].line1) in = 1;
    assert_true(in); /* a function is never cut in two */
  }
  idx_parsed_free(&r);
  idx_parser_free(p);
  free(src);
}

/* idx_doc_top on text whose lines start at off[]; returns the doc's first line. */
static int doc_top_of(const char *text, int a, int floor) {
  size_t off[64];
  int nl = 0;
  off[nl++] = 0;
  for (size_t i = 0; text[i] && nl < 63; i++)
    if (text[i] == '\n') off[nl++] = i + 1;
  assert_true(a < nl);
  return idx_doc_top(text, off, a, floor);
}

/* A doc comment is a run of comment lines or a whole block comment, however
 * its inner lines look (lz4.h writes them without a leading star). */
static void test_doc_top(void **st) {
  (void)st;
  const char *block = "int x;\n"          /* 0 */
                      "/*! f() :\n"        /* 1 */
                      "    Provides the worst case\n"
                      "      return : size\n"
                      "*/\n"               /* 4 */
                      "int f(int n);\n";   /* 5 */
  assert_int_equal(doc_top_of(block, 5, 0), 1);
  assert_int_equal(doc_top_of(block, 5, 2), 5); /* its opening is below the floor */
  const char *lines = "int y;\n\n// one\n// two\nint g(void);\n";
  assert_int_equal(doc_top_of(lines, 4, 0), 2); /* the blank line ends it */
  const char *code = "int z; /* trailing\n   still */\nint h(void);\n";
  assert_int_equal(doc_top_of(code, 2, 0), 2); /* a comment after code is no doc */
  const char *two = "/* a */\n/* b\n c */\nint k(void);\n";
  assert_int_equal(doc_top_of(two, 3, 0), 0); /* two blocks in a row */
  const char *none = "int a;\nint b(void);\n";
  assert_int_equal(doc_top_of(none, 1, 0), 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_queries_compile), cmocka_unit_test(test_golden_symbols),
      cmocka_unit_test(test_python_exact),    cmocka_unit_test(test_c_details),
      cmocka_unit_test(test_subwords),        cmocka_unit_test(test_classify),
      cmocka_unit_test(test_chunks),          cmocka_unit_test(test_doc_top),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
