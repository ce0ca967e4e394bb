/* test_fim.c — complete's FIM prompt: the cursor offset from a UTF-16 or a
 * byte column, and the prompt's tokens on tiny random models whose
 * vocabularies hold Qwen's repo-level markers, StarCoder's FIM markers, or
 * none: the markers go in as ids in the model's order, and file text that
 * spells a marker stays text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "../engine/tiny_gguf.h"
#include "daemon/fim_internal.h"

static eng_model *model_with(const char *const *extra, size_t n) {
  tg g;
  char path[64] = "/tmp/kvasir-fim-XXXXXX";
  tg_init(&g);
  tg_hparams(&g, "llama");
  tg_vocab(&g, extra, n);
  tg_tensors(&g, 0, NULL);
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  assert_int_equal(tg_write(&g, path), 0);
  eng_model *m;
  kv_err e;
  if (eng_model_open(&m, path, &e)) fail_msg("%s", e.msg);
  unlink(path);
  kv_buf_free(&g.kv);
  return m;
}

static void test_offset(void **st) {
  (void)st;
  /* "é" is 2 bytes / 1 UTF-16 unit; "😀" is 4 bytes / 2 units */
  const char *t = "ab\nx\xc3\xa9y\xf0\x9f\x98\x80z\nlast";
  assert_int_equal(dmn_fim_offset(t, 1, 1, 0), 1);
  assert_int_equal(dmn_fim_offset(t, 2, 0, 1), 3);
  assert_int_equal(dmn_fim_offset(t, 2, 2, 1), 6);   /* after "xé" */
  assert_int_equal(dmn_fim_offset(t, 2, 5, 1), 11);  /* after "xéy😀" */
  assert_int_equal(dmn_fim_offset(t, 2, 6, 1), 12);  /* after "z" */
  assert_int_equal(dmn_fim_offset(t, 2, 99, 1), 12); /* past the end: the end */
  assert_int_equal(dmn_fim_offset(t, 2, 3, 0), 6);   /* bytes: after "xé" */
  assert_int_equal(dmn_fim_offset(t, 2, 5, 0), 7);   /* inside "😀": back to its start */
  assert_int_equal(dmn_fim_offset(t, 2, 2, 0), 4);   /* inside "é": back to its start */
  assert_int_equal(dmn_fim_offset(t, 3, 2, 1), 15);
  assert_int_equal(dmn_fim_offset(t, 9, 2, 1), strlen(t)); /* past the last line */
}

static int32_t id_of(eng_model *m, const char *s) {
  int32_t t[4];
  size_t n = 0;
  kv_err e;
  assert_int_equal(eng_tokenize(m, s, strlen(s), 0, 1, t, 4, &n, &e), 0);
  assert_int_equal(n, 1);
  return t[0];
}

static int count(const dmn_fim_prompt *p, int32_t id) {
  int c = 0;
  for (size_t i = 0; i < p->n; i++) c += p->toks[i] == id;
  return c;
}

static void test_qwen_repo_level(void **st) {
  (void)st;
  const char *q[] = {"<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>",
                     "<|file_sep|>"};
  eng_model *m = model_with(q, 6);
  dmn_fim_snippet sn[1] = {{"lib/b.c", "int b;"}};
  dmn_fim_prompt p;
  kv_err e;
  /* the prefix text spells a marker: it must stay text */
  const char *pre = "int a = <|fim_middle|> 1;";
  assert_int_equal(dmn_fim_build(m, "/src/proj", "src/a.c", sn, 1, pre, strlen(pre), "}", 1, &p, &e), 0);
  assert_true(p.fim);
  assert_string_equal(p.format, "qwen-repo");
  int32_t P = id_of(m, "<|fim_prefix|>"), S = id_of(m, "<|fim_suffix|>"), M = id_of(m, "<|fim_middle|>");
  assert_int_equal(p.toks[0], id_of(m, "<|repo_name|>"));
  assert_int_equal(count(&p, id_of(m, "<|file_sep|>")), 2); /* the snippet's file and this file */
  assert_int_equal(count(&p, P), 1);
  assert_int_equal(count(&p, S), 1);
  assert_int_equal(count(&p, M), 1); /* only the marker put in as an id */
  assert_int_equal(p.toks[p.n - 1], M);
  size_t ip = 0, is = 0;
  for (size_t i = 0; i < p.n; i++) {
    if (p.toks[i] == P) ip = i;
    if (p.toks[i] == S) is = i;
  }
  assert_true(ip < is);
  dmn_fim_prompt_free(&p);
  eng_model_free(m);
}

static void test_starcoder_and_none(void **st) {
  (void)st;
  const char *s[] = {"<fim_prefix>", "<fim_suffix>", "<fim_middle>"};
  eng_model *m = model_with(s, 3);
  dmn_fim_prompt p;
  kv_err e;
  assert_int_equal(dmn_fim_build(m, "/r", "a.c", NULL, 0, "ab", 2, "cd", 2, &p, &e), 0);
  assert_string_equal(p.format, "psm");
  assert_int_equal(p.toks[0], id_of(m, "<fim_prefix>"));
  assert_int_equal(p.toks[p.n - 1], id_of(m, "<fim_middle>"));
  dmn_fim_prompt_free(&p);
  eng_model_free(m);
  m = model_with(NULL, 0);
  assert_int_equal(dmn_fim_build(m, "/r", "a.c", NULL, 0, "ab", 2, "cd", 2, &p, &e), 0);
  assert_false(p.fim);
  assert_string_equal(p.format, "prefix");
  assert_int_equal(p.toks[0], eng_token_bos(m));
  dmn_fim_prompt_free(&p);
  eng_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_offset), cmocka_unit_test(test_qwen_repo_level),
                                     cmocka_unit_test(test_starcoder_and_none)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
