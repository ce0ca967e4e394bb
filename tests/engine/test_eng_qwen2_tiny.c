/*
 * test_eng_qwen2_tiny.c — the qwen2 code path against llama.cpp without the
 * 7B download: tiny_qwen2 (built next to this test) writes a small random
 * qwen2 model with SmolLM2's vocabulary and the Qwen2 pre-tokenizer, the
 * same bytes make_goldens.py gave llama.cpp. Checks: token ids identical on
 * the tokenizer corpus (Qwen2 regex), 32-token greedy continuations
 * identical, perplexity within 0.5% (F32 weights: no activation quantization,
 * so the two implementations differ only by float summation order).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>

#include "engine/engine.h"
#include "eng_test_util.h"

static eng_model *g_m;
static char g_path[4200];

static int setup(void **st) {
  char smol[4096], cmd[9000];
  if (eng_test_model("smollm2", smol, sizeof smol)) return -1;
  snprintf(g_path, sizeof g_path, "%s/tests/engine/tiny-qwen2.gguf", KVASIR_BINARY_DIR);
  snprintf(cmd, sizeof cmd, "'%s/tests/engine/tiny_qwen2' '%s' '%s'", KVASIR_BINARY_DIR, g_path, smol);
  if (system(cmd)) { fprintf(stderr, "failed: %s\n", cmd); return -1; }
  kv_err err = {0};
  if (eng_model_open(&g_m, g_path, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
  return 0;
}
static int teardown(void **st) {
  eng_model_free(g_m);
  unlink(g_path);
  return 0;
}

static void test_tokens(void **st) {
  assert_string_equal(eng_model_get_info(g_m)->arch, "qwen2");
  cJSON *g = eng_test_golden("tiny_qwen2"), *c;
  assert_non_null(g);
  int bad = 0, n_cases = 0;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "tokens")) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    cJSON *ids = cJSON_GetObjectItem(c, "ids");
    int32_t out[4096];
    size_t n;
    kv_err err = {0};
    assert_int_equal(eng_tokenize(g_m, text, strlen(text), 1, 1, out, 4096, &n, &err), 0);
    int same = (int)n == cJSON_GetArraySize(ids);
    for (size_t i = 0; same && i < n; i++) same = out[i] == cJSON_GetArrayItem(ids, (int)i)->valueint;
    if (!same) {
      fprintf(stderr, "qwen2 pre-tokenizer: ids differ for %s\n", text);
      bad++;
    }
    n_cases++;
  }
  cJSON_Delete(g);
  assert_true(n_cases >= 20);
  assert_int_equal(bad, 0);
}

typedef struct text_buf {
  char s[4096];
  size_t n;
} text_buf;
static int collect(void *user, int32_t tok, const char *piece, size_t len) {
  text_buf *t = user;
  if (t->n + len < sizeof t->s) {
    memcpy(t->s + t->n, piece, len);
    t->n += len;
  }
  return 0;
}

static void test_greedy(void **st) {
  cJSON *g = eng_test_golden("tiny_qwen2"), *it;
  assert_non_null(g);
  kv_err err = {0};
  eng_ctx_params cp = {256, 2, NULL, NULL};
  eng_ctx *c;
  assert_int_equal(eng_ctx_create(&c, g_m, &cp, &err), 0);
  eng_sampler *s;
  assert_int_equal(eng_sampler_create(&s, NULL, eng_n_vocab(g_m), &err), 0);
  int same = 0, total = 0;
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "greedy")) {
    const char *prompt = cJSON_GetObjectItem(it, "prompt")->valuestring;
    const char *want = cJSON_GetObjectItem(it, "continuation_hex")->valuestring;
    int32_t toks[256];
    size_t n;
    assert_int_equal(eng_tokenize(g_m, prompt, strlen(prompt), 1, 1, toks, 256, &n, &err), 0);
    eng_ctx_truncate(c, 0);
    text_buf tb = {{0}, 0};
    eng_gen_params gp = {0};
    gp.max_tokens = 32;
    gp.on_token = collect;
    gp.user = &tb;
    eng_gen_result r;
    assert_int_equal(eng_generate(c, s, toks, n, &gp, &r, &err), 0);
    char hex[8200];
    for (size_t i = 0; i < tb.n; i++) snprintf(hex + 2 * i, 3, "%02x", (uint8_t)tb.s[i]);
    hex[2 * tb.n] = 0;
    int ok = !strcmp(hex, want);
    if (!ok) fprintf(stderr, "tiny qwen2 greedy '%s' differs:\n  got  %s\n  want %s\n", prompt, hex, want);
    same += ok;
    total++;
  }
  eng_sampler_free(s);
  eng_ctx_free(c);
  cJSON_Delete(g);
  assert_int_equal(total, 5);
  assert_true(same >= 4);
}

static void test_ppl(void **st) {
  cJSON *g = eng_test_golden("tiny_qwen2");
  assert_non_null(g);
  cJSON *p = cJSON_GetObjectItem(g, "ppl");
  int ctx = cJSON_GetObjectItem(p, "ctx")->valueint, chunks = cJSON_GetObjectItem(p, "chunks")->valueint;
  double want = cJSON_GetObjectItem(p, "value")->valuedouble;
  char path[4096], *buf;
  size_t len, n;
  kv_err err = {0};
  snprintf(path, sizeof path, "%s/tests/reference/engine/ppl_text.txt", eng_src_dir());
  assert_int_equal(kv_read_file(path, 1 << 20, &buf, &len, &err), 0);
  int32_t *toks = malloc((len + 8) * sizeof *toks);
  assert_int_equal(eng_tokenize(g_m, buf, len, 1, 1, toks, len + 8, &n, &err), 0);
  eng_ctx_params cp = {ctx, 2, NULL, NULL};
  eng_ctx *c;
  assert_int_equal(eng_ctx_create(&c, g_m, &cp, &err), 0);
  double got;
  assert_int_equal(eng_perplexity(c, toks, n, chunks, NULL, NULL, &got, NULL, NULL, &err), 0);
  fprintf(stderr, "tiny qwen2: ppl %.4f, llama.cpp %.4f (%+.3f%%)\n", got, want, 100 * (got / want - 1));
  assert_true(fabs(got / want - 1) <= 0.005);
  eng_ctx_free(c);
  free(toks);
  free(buf);
  cJSON_Delete(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_tokens), cmocka_unit_test(test_greedy),
                                     cmocka_unit_test(test_ppl)};
  return cmocka_run_group_tests(tests, setup, teardown);
}
