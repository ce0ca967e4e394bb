/*
 * test_eng_tokenizer.c — tokenizers, chat formats and the sampler.
 * Token ids must equal llama-tokenize's (goldens from
 * tests/reference/engine/make_goldens.py) for both tokenizer kinds: GPT-2
 * byte-level BPE with the smollm pre-tokenizer (SmolLM2) and SentencePiece
 * with byte fallback (Gemma 3). Decoding must give the input back.
 * Sampler properties are checked against hand-computed distributions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>

#include "engine/engine.h"
#include "eng_test_util.h"
#include "eng_test_models.h"


static void check_golden_tokens(int which) {
  cJSON *g = eng_test_golden(g_names[which]);
  assert_non_null(g);
  cJSON *toks = cJSON_GetObjectItem(g, "tokens"), *c;
  assert_true(cJSON_GetArraySize(toks) >= 20);
  int bad = 0;
  cJSON_ArrayForEach(c, toks) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    cJSON *ids = cJSON_GetObjectItem(c, "ids");
    int32_t out[4096];
    size_t n;
    kv_err err = {0};
    assert_int_equal(eng_tokenize(g_m[which], text, strlen(text), 1, 1, out, 4096, &n, &err), 0);
    int same = (int)n == cJSON_GetArraySize(ids);
    for (size_t i = 0; same && i < n; i++) same = out[i] == cJSON_GetArrayItem(ids, (int)i)->valueint;
    if (!same) {
      bad++;
      fprintf(stderr, "%s: ids differ for %s\n  got:", g_names[which], text);
      for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", out[i]);
      char *want = cJSON_PrintUnformatted(ids);
      fprintf(stderr, "\n  want: %s\n", want);
      free(want);
    }
  }
  cJSON_Delete(g);
  assert_int_equal(bad, 0);
}
static void test_tokens_bpe(void **st) { check_golden_tokens(0); }
static void test_tokens_spm(void **st) { check_golden_tokens(1); }

static void test_roundtrip(void **st) {
  static const char *const texts[] = {
      "plain ascii", "  two leading spaces", "tabs\tand\nnewlines\r\n", "héllo 世界 🚀 👨‍👩‍👧",
      "bytes \x01\x02\x7f", "", "<|im_start|> spelled out"};
  for (int w = 0; w < 2; w++)
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
      int32_t ids[1024];
      size_t n;
      kv_err err = {0};
      /* no BOS, no special parsing: decode must reproduce the exact bytes */
      assert_int_equal(eng_tokenize(g_m[w], texts[i], strlen(texts[i]), 0, 0, ids, 1024, &n, &err), 0);
      char *back;
      size_t len;
      assert_int_equal(eng_detokenize(g_m[w], ids, n, &back, &len, &err), 0);
      if (len != strlen(texts[i]) || memcmp(back, texts[i], len))
        fail_msg("%s: round trip of '%s' gave '%s'", g_names[w], texts[i], back);
      free(back);
    }
}

static void test_invalid_utf8(void **st) {
  /* llama.cpp semantics: BPE replaces each invalid byte by U+FFFD before
   * byte-level encoding; SentencePiece keeps the bytes (byte fallback) */
  const char *t = "a\xff\xfe b\xc3";
  int32_t ids[64];
  size_t n;
  kv_err err = {0};
  char *back;
  assert_int_equal(eng_tokenize(g_m[0], t, strlen(t), 0, 0, ids, 64, &n, &err), 0);
  assert_int_equal(eng_detokenize(g_m[0], ids, n, &back, NULL, &err), 0);
  assert_string_equal(back, "a\xef\xbf\xbd\xef\xbf\xbd b\xef\xbf\xbd");
  free(back);
  assert_int_equal(eng_tokenize(g_m[1], t, strlen(t), 0, 0, ids, 64, &n, &err), 0);
  assert_int_equal(eng_detokenize(g_m[1], ids, n, &back, NULL, &err), 0);
  assert_string_equal(back, t);
  free(back);
}

static void test_special_and_limits(void **st) {
  int32_t ids[8];
  size_t n;
  kv_err err = {0};
  /* parse_special: one control token */
  assert_int_equal(eng_tokenize(g_m[0], "<|im_end|>", 10, 0, 1, ids, 8, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_true(eng_token_is_eog(g_m[0], ids[0]));
  /* without: spelled out in several pieces */
  assert_int_equal(eng_tokenize(g_m[0], "<|im_end|>", 10, 0, 0, ids, 8, &n, &err), 0);
  assert_true(n > 1);
  /* Gemma adds BOS; SmolLM2 does not */
  assert_int_equal(eng_tokenize(g_m[1], "hi", 2, 1, 1, ids, 8, &n, &err), 0);
  assert_int_equal(ids[0], eng_token_bos(g_m[1]));
  assert_int_equal(eng_tokenize(g_m[0], "hi", 2, 1, 1, ids, 8, &n, &err), 0);
  assert_int_not_equal(ids[0], eng_token_bos(g_m[0]));
  /* capacity too small: KV_ELIMIT with the full count */
  const char *t = "a fairly long sentence that needs more than two tokens";
  assert_int_equal(eng_tokenize(g_m[0], t, strlen(t), 0, 0, ids, 2, &n, &err), KV_ELIMIT);
  assert_true(n > 2);
  char buf[4];
  assert_true(eng_token_piece(g_m[0], -1, buf, sizeof buf) < 0);
  assert_true(eng_token_piece(g_m[0], 1 << 30, buf, sizeof buf) < 0);
  int32_t bad = 1 << 30;
  char *s;
  assert_int_equal(eng_detokenize(g_m[0], &bad, 1, &s, NULL, &err), KV_EINVAL);
}

static void test_chat(void **st) {
  eng_chat_msg msgs[] = {{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello!"}, {"user", "2+2?"}};
  char *out;
  kv_err err = {0};
  assert_string_equal(eng_chat_format(g_m[0]), "chatml");
  assert_int_equal(eng_chat_apply(g_m[0], msgs, 4, 1, &out, &err), 0);
  assert_string_equal(out, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                           "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                           "<|im_start|>assistant\n");
  free(out);
  /* SmolLM2's template inserts its default system prompt */
  assert_int_equal(eng_chat_apply(g_m[0], msgs + 1, 1, 1, &out, &err), 0);
  assert_non_null(strstr(out, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM"));
  free(out);
  assert_string_equal(eng_chat_format(g_m[1]), "gemma");
  assert_int_equal(eng_chat_apply(g_m[1], msgs, 4, 1, &out, &err), 0);
  assert_string_equal(out, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!"
                           "<end_of_turn>\n<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n");
  free(out);
  int32_t ids[8];
  size_t n;
  assert_int_equal(eng_tokenize(g_m[1], "<end_of_turn>", 13, 0, 1, ids, 8, &n, &err), 0);
  assert_int_equal(n, 1);
  assert_true(eng_token_is_eog(g_m[1], ids[0]));
}

static void test_sampler(void **st) {
  enum { V = 8 };
  float logits[V] = {1.0f, 3.0f, 2.0f, -1.0f, 0.5f, 2.9f, -5.0f, 0.0f};
  eng_sampler_params p;
  eng_sampler_params_default(&p);
  eng_sampler *s;
  kv_err err = {0};
  assert_int_equal(eng_sampler_create(&s, &p, V, &err), 0);
  float lp;
  assert_int_equal(eng_sample(s, logits, NULL, 0, &lp), 1); /* greedy */
  double z = 0;
  for (int i = 0; i < V; i++) z += exp(logits[i] - 3.0);
  assert_float_equal(lp, -log(z), 1e-5);
  eng_sampler_free(s);
  /* repetition penalty: token 1 seen -> 3.0/2 = 1.5 < 2.9 -> token 5 */
  p.repeat_penalty = 2.0f;
  assert_int_equal(eng_sampler_create(&s, &p, V, &err), 0);
  int32_t hist[] = {1, 1};
  assert_int_equal(eng_sample(s, logits, hist, 2, NULL), 5);
  eng_sampler_free(s);
  /* top-k 2 at temperature 1: only tokens 1 and 5, in proportion e^3 : e^2.9 */
  eng_sampler_params_default(&p);
  p.temp = 1.0f;
  p.top_k = 2;
  p.seed = 42;
  assert_int_equal(eng_sampler_create(&s, &p, V, &err), 0);
  int cnt[V] = {0};
  for (int i = 0; i < 20000; i++) cnt[eng_sample(s, logits, NULL, 0, NULL)]++;
  assert_int_equal(cnt[1] + cnt[5], 20000);
  double want = exp(3.0) / (exp(3.0) + exp(2.9));
  assert_float_equal(cnt[1] / 20000.0, want, 0.02);
  eng_sampler_free(s);
  /* min-p 0.5: keeps tokens with p >= 0.5 * p_max -> 1, 5 (e^-0.1), 2 (e^-1 < 0.5: dropped) */
  eng_sampler_params_default(&p);
  p.temp = 1.0f;
  p.min_p = 0.5f;
  p.seed = 7;
  assert_int_equal(eng_sampler_create(&s, &p, V, &err), 0);
  memset(cnt, 0, sizeof cnt);
  for (int i = 0; i < 5000; i++) cnt[eng_sample(s, logits, NULL, 0, NULL)]++;
  assert_int_equal(cnt[1] + cnt[5], 5000);
  eng_sampler_free(s);
  /* top-p 0.5: token 1 alone has p ~0.40 < 0.5, so 1 and 5 survive */
  eng_sampler_params_default(&p);
  p.temp = 0.7f;
  p.top_p = 0.5f;
  p.seed = 9;
  assert_int_equal(eng_sampler_create(&s, &p, V, &err), 0);
  memset(cnt, 0, sizeof cnt);
  for (int i = 0; i < 5000; i++) cnt[eng_sample(s, logits, NULL, 0, NULL)]++;
  assert_int_equal(cnt[1] + cnt[5], 5000);
  assert_true(cnt[5] > 500);
  eng_sampler_free(s);
  /* same seed, same sequence */
  eng_sampler_params_default(&p);
  p.temp = 1.5f;
  p.seed = 1234;
  eng_sampler *a, *b;
  assert_int_equal(eng_sampler_create(&a, &p, V, &err), 0);
  assert_int_equal(eng_sampler_create(&b, &p, V, &err), 0);
  for (int i = 0; i < 100; i++) assert_int_equal(eng_sample(a, logits, NULL, 0, NULL), eng_sample(b, logits, NULL, 0, NULL));
  eng_sampler_free(a);
  eng_sampler_free(b);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokens_bpe), cmocka_unit_test(test_tokens_spm),      cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_invalid_utf8),
      cmocka_unit_test(test_special_and_limits), cmocka_unit_test(test_chat), cmocka_unit_test(test_sampler),
  };
  return cmocka_run_group_tests(tests, eng_test_open_models, eng_test_close_models);
}
