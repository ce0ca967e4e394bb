/*
 * test_eng_model.c — the forward pass against llama.cpp (goldens from
 * tests/reference/engine/make_goldens.py, llama.cpp built from source here):
 *  - perplexity on ppl_text.txt, -c 128, first 4 chunks: within 0.5% of
 *    llama.cpp's for both models (both are bit-identical: equal to the 4th
 *    decimal), besides the statistical bars below;
 *  - greedy 64-token continuations of 5 prompts: >= 4 of 5 identical for
 *    both (measured 5/5 for both); asserted as well is the teacher-forced
 *    form,
 *    robust to float-rounding chaos: along llama.cpp's continuation our
 *    argmax is its next token at >= 95% of steps, and every disagreement is a
 *    near-tie (llama.cpp's token within 1 nat of our top logit);
 * for SmolLM2 (llama) and Gemma 3 (gemma3), plus context mechanics that no
 * golden covers: a callback cancel stops within one token, a saved state or
 * a copied prefix gives the same logits as evaluating from scratch, and a
 * full context is an error, not a crash.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/engine.h"
#include "eng_test_util.h"
#include "eng_test_models.h"
#include "kernels/kernels.h"


/* The bar from the issue is |ppl/ppl_llama - 1| <= 0.5%. In these small
 * models per-token log-likelihoods of two implementations that differ only in
 * float rounding scatter with a standard deviation of ~0.1 nat (activation
 * quantization turns 1e-7 differences into different integers, and layers
 * with massive activations amplify them), so on 252 scored tokens the ppl
 * ratio itself has a noise of ~0.6%. The test therefore holds three things
 * against llama.cpp's own per-token values: the paired mean NLL difference is
 * within 3 standard errors of zero (no systematic bias), the top-1 token
 * agrees at >= 95% of positions, and the ppl is within 1.5%; it prints the
 * ratio so the 0.5% bar can be read off. */
static void check_ppl(int w) {
  cJSON *g = eng_test_golden(g_names[w]);
  assert_non_null(g);
  cJSON *p = cJSON_GetObjectItem(g, "ppl");
  int ctx = cJSON_GetObjectItem(p, "ctx")->valueint, chunks = cJSON_GetObjectItem(p, "chunks")->valueint;
  double want = cJSON_GetObjectItem(p, "value")->valuedouble;
  cJSON *ref_nll = cJSON_GetObjectItem(p, "token_nll"), *ref_top = cJSON_GetObjectItem(p, "token_top");
  int nt = chunks * (ctx - 1 - ctx / 2);
  assert_int_equal(cJSON_GetArraySize(ref_nll), nt);
  assert_int_equal(cJSON_GetArraySize(ref_top), nt);
  char path[4096], *buf;
  size_t len, n;
  kv_err err = {0};
  snprintf(path, sizeof path, "%s/tests/reference/engine/ppl_text.txt", eng_src_dir());
  assert_int_equal(kv_read_file(path, 1 << 20, &buf, &len, &err), 0);
  int32_t *toks = malloc((len + 8) * sizeof *toks), *top = malloc((size_t)nt * sizeof *top);
  float *nll = malloc((size_t)nt * sizeof *nll);
  assert_int_equal(eng_tokenize(g_m[w], buf, len, 1, 1, toks, len + 8, &n, &err), 0);
  eng_ctx_params cp = {ctx, 2, NULL, NULL};
  eng_ctx *c;
  assert_int_equal(eng_ctx_create(&c, g_m[w], &cp, &err), 0);
  double got;
  assert_int_equal(eng_perplexity(c, toks, n, chunks, NULL, NULL, &got, nll, top, &err), 0);
  double sd = 0, sd2 = 0;
  int same = 0;
  for (int i = 0; i < nt; i++) {
    double d = nll[i] - cJSON_GetArrayItem(ref_nll, i)->valuedouble;
    sd += d;
    sd2 += d * d;
    same += top[i] == cJSON_GetArrayItem(ref_top, i)->valueint;
  }
  double mean = sd / nt, se = sqrt((sd2 / nt - mean * mean) / nt);
  fprintf(stderr, "%s: ppl %.4f, llama.cpp %.4f (%+.2f%%); per-token NLL diff %+.4f +/- %.4f (SE); top-1 same %.1f%%\n",
          g_names[w], got, want, 100 * (got / want - 1), mean, se, 100.0 * same / nt);
  assert_true(fabs(mean) <= 3 * se);
  assert_true(same >= 0.93 * nt); /* reference top-1 is read from llama.cpp's 16-bit log-probs: near-ties are approximate */
  assert_true(fabs(got / want - 1) <= 0.015);
  /* Both models follow ggml's CPU numerics op for op (Gemma 3's Q4_K in
   * llama.cpp's repacked orders): the bar, 0.5%, holds (measured:
   * equal to the 4th decimal for both, and every per-token NLL equal to the
   * precision llama.cpp's 16-bit log-probs keep). The scalar kernels sum in
   * another order, hence the ISA condition. */
  if (strcmp(krn_isa_name(), "scalar")) {
    assert_true(fabs(got / want - 1) <= 0.005);
    double worst = 0;
    for (int i = 0; i < nt; i++) {
      const double d = fabs(nll[i] - cJSON_GetArrayItem(ref_nll, i)->valuedouble);
      if (d > worst) worst = d;
    }
    fprintf(stderr, "%s: worst per-token |NLL - llama.cpp's| %.2g\n", g_names[w], worst);
    assert_true(worst < 1e-3); /* the reference keeps NLLs to ~1e-4 */
  }
  eng_ctx_free(c);
  free(toks);
  free(top);
  free(nll);
  free(buf);
  cJSON_Delete(g);
}
static void test_ppl_smollm2(void **st) { check_ppl(0); }
static void test_ppl_gemma3(void **st) { check_ppl(1); }

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

static void check_greedy(int w) {
  cJSON *g = eng_test_golden(g_names[w]);
  assert_non_null(g);
  cJSON *it;
  int same = 0, total = 0, agree_all = 0, steps_all = 0;
  double worst_all = 0;
  kv_err err = {0};
  eng_ctx *c;
  eng_ctx_params cp = {256, 2, NULL, NULL};
  assert_int_equal(eng_ctx_create(&c, g_m[w], &cp, &err), 0);
  eng_sampler *s;
  assert_int_equal(eng_sampler_create(&s, NULL, eng_n_vocab(g_m[w]), &err), 0);
  cJSON_ArrayForEach(it, cJSON_GetObjectItem(g, "greedy")) {
    const char *prompt = cJSON_GetObjectItem(it, "prompt")->valuestring;
    const char *want = cJSON_GetObjectItem(it, "continuation")->valuestring;
    int32_t toks[256];
    size_t n;
    assert_int_equal(eng_tokenize(g_m[w], prompt, strlen(prompt), 1, 1, toks, 256, &n, &err), 0);
    eng_ctx_truncate(c, 0);
    eng_gen_params gp = {0};
    gp.max_tokens = 64;
    text_buf tb = {{0}, 0};
    gp.on_token = collect;
    gp.user = &tb;
    eng_gen_result r;
    assert_int_equal(eng_generate(c, s, toks, n, &gp, &r, &err), 0);
    const char *got = tb.s;
    int ok = !strcmp(got, want);
    size_t cp = 0;
    while (got[cp] && got[cp] == want[cp]) cp++;
    fprintf(stderr, "%s greedy %d: %s (first %zu of %zu bytes agree)\n", g_names[w], total + 1, ok ? "same" : "DIFFERENT", cp, strlen(want));
    same += ok;
    total++;
    /* teacher-forced: along llama.cpp's own continuation, our argmax must be
     * its next token, or within a near-tie (< 1 nat) of it */
    size_t pl = strlen(prompt), cl = strlen(want);
    char *full = malloc(pl + cl + 1);
    memcpy(full, prompt, pl);
    memcpy(full + pl, want, cl + 1);
    int32_t ft[512];
    size_t nf;
    assert_int_equal(eng_tokenize(g_m[w], full, pl + cl, 1, 1, ft, 512, &nf, &err), 0);
    free(full);
    assert_true(nf > n && nf < 200);
    eng_ctx_truncate(c, 0);
    assert_int_equal(eng_ctx_eval(c, ft, nf, 1, &err), 0);
    int agree = 0, steps = 0;
    double worst = 0;
    for (size_t i = n - 1; i + 1 < nf; i++) {
      const float *lg = eng_ctx_logits(c, i);
      int top = 0;
      for (int j = 1; j < eng_n_vocab(g_m[w]); j++)
        if (lg[j] > lg[top]) top = j;
      steps++;
      if (top == ft[i + 1]) agree++;
      else if (lg[top] - lg[ft[i + 1]] > worst) worst = lg[top] - lg[ft[i + 1]];
    }
    fprintf(stderr, "  teacher-forced: argmax = llama.cpp's token at %d of %d steps, worst gap %.3f\n", agree, steps, worst);
    agree_all += agree;
    steps_all += steps;
    if (worst > worst_all) worst_all = worst;
  }
  eng_sampler_free(s);
  eng_ctx_free(c);
  cJSON_Delete(g);
  assert_int_equal(total, 5);
  fprintf(stderr, "%s: %d of 5 greedy continuations identical (the issue's bar is 4); teacher-forced %d/%d, worst gap %.3f\n",
          g_names[w], same, agree_all, steps_all, worst_all);
  assert_true(agree_all >= 0.95 * steps_all);
  assert_true(worst_all < 1.0);
  if (strcmp(krn_isa_name(), "scalar")) assert_true(same >= 4); /* the bar; measured 5 of 5 for both */
}
static void test_greedy_smollm2(void **st) { check_greedy(0); }
static void test_greedy_gemma3(void **st) { check_greedy(1); }

typedef struct cb_state {
  int calls, stop_at;
} cb_state;
static int stop_cb(void *user, int32_t tok, const char *piece, size_t len) {
  cb_state *s = user;
  return ++s->calls >= s->stop_at;
}

static void test_cancel_and_state(void **st) {
  eng_model *m = g_m[0];
  kv_err err = {0};
  eng_ctx *c, *d;
  eng_ctx_params cp = {128, 2, NULL, NULL};
  assert_int_equal(eng_ctx_create(&c, m, &cp, &err), 0);
  assert_int_equal(eng_ctx_create(&d, m, &cp, &err), 0);
  eng_sampler *s;
  assert_int_equal(eng_sampler_create(&s, NULL, eng_n_vocab(m), &err), 0);
  int32_t toks[64];
  size_t n;
  const char *p = "The quick brown fox jumps over the lazy dog because";
  assert_int_equal(eng_tokenize(m, p, strlen(p), 1, 1, toks, 64, &n, &err), 0);
  cb_state cs = {0, 3};
  eng_gen_params gp = {0};
  gp.max_tokens = 50;
  gp.on_token = stop_cb;
  gp.user = &cs;
  eng_gen_result r;
  assert_int_equal(eng_generate(c, s, toks, n, &gp, &r, &err), 0);
  assert_int_equal(r.stop_reason, ENG_STOP_CALLBACK);
  assert_int_equal(r.n_gen, 3);
  assert_int_equal(cs.calls, 3);
  assert_true(r.mean_logprob < 0 && r.mean_logprob > -20);
  /* the prompt's cached prefix is reused by the next request */
  assert_int_equal(eng_generate(c, s, toks, n, &gp, &r, &err), 0);
  assert_int_equal(r.n_reused, (int)n - 1);

  /* save -> evaluate more -> restore == the saved logits path */
  eng_ctx_truncate(c, 0);
  assert_int_equal(eng_ctx_eval(c, toks, n - 2, 0, &err), 0);
  eng_state *saved;
  assert_int_equal(eng_ctx_save(c, &saved, &err), 0);
  assert_int_equal(eng_ctx_eval(c, toks + n - 2, 2, 0, &err), 0);
  float *ref = malloc((size_t)eng_n_vocab(m) * sizeof *ref);
  memcpy(ref, eng_ctx_logits(c, 0), (size_t)eng_n_vocab(m) * sizeof *ref);
  int32_t other[3] = {100, 200, 300};
  assert_int_equal(eng_ctx_eval(c, other, 3, 0, &err), 0);
  assert_int_equal(eng_ctx_restore(c, saved, &err), 0);
  assert_int_equal(eng_ctx_n_past(c), (int)n - 2);
  assert_int_equal(eng_ctx_eval(c, toks + n - 2, 2, 0, &err), 0);
  assert_memory_equal(eng_ctx_logits(c, 0), ref, (size_t)eng_n_vocab(m) * sizeof *ref);
  /* a copied prefix in another context gives the same logits too */
  assert_int_equal(eng_ctx_copy_prefix(d, c, (int)n - 2, &err), 0);
  assert_int_equal(eng_ctx_eval(d, toks + n - 2, 2, 0, &err), 0);
  assert_memory_equal(eng_ctx_logits(d, 0), ref, (size_t)eng_n_vocab(m) * sizeof *ref);
  /* batch split: llama.cpp's attention sums in one order for any batch of
   * two or more tokens and in another for a single token, and kvasir
   * follows it, so batches of 2 and 3 give the very same logits, and one
   * token at a time gives logits that differ only by float rounding
   * (amplified by this model's massive activations: ~0.6 here, enough to
   * swap a near-tie, as it does in llama.cpp) */
  eng_ctx_truncate(d, 0);
  for (size_t i = 0; i < n;) {
    size_t k = n - i >= 4 ? 2 : n - i; /* 2, 2, ..., then 2 or 3 */
    assert_int_equal(eng_ctx_eval(d, toks + i, k, 0, &err), 0);
    i += k;
  }
  assert_memory_equal(eng_ctx_logits(d, 0), ref, (size_t)eng_n_vocab(m) * sizeof *ref);
  eng_ctx_truncate(d, 0);
  for (size_t i = 0; i < n; i++) assert_int_equal(eng_ctx_eval(d, toks + i, 1, 0, &err), 0);
  const float *l1 = eng_ctx_logits(d, 0);
  double maxd = 0;
  for (int i = 0; i < eng_n_vocab(m); i++) maxd = fmax(maxd, fabs(l1[i] - ref[i]));
  fprintf(stderr, "one token at a time: max logit difference %.3g\n", maxd);
  assert_true(maxd < 2.0);
  /* full context: KV_ELIMIT, state unchanged */
  int32_t many[200];
  for (int i = 0; i < 200; i++) many[i] = toks[i % n];
  int before = eng_ctx_n_past(d);
  assert_int_equal(eng_ctx_eval(d, many, 200, 0, &err), KV_ELIMIT);
  assert_int_equal(eng_ctx_n_past(d), before);
  int32_t bad = -5;
  assert_int_equal(eng_ctx_eval(d, &bad, 1, 0, &err), KV_EINVAL);
  free(ref);
  eng_state_free(saved);
  eng_sampler_free(s);
  eng_ctx_free(d);
  eng_ctx_free(c);
}

/* Q4_K layer matrices repacked at load (model.c, krn_repack) must not change
 * one bit: Gemma 3 opened with KVASIR_REPACK=0 and as usual give the same
 * logits for a prompt (batch: the gemm kernels, m % 4 rows through the gemv)
 * and for tokens decoded one by one (the gemv). */
static void test_repacked_same_bits(void **st) {
  char path[4096];
  kv_err err = {0};
  assert_int_equal(eng_test_model(g_names[1], path, sizeof path), 0);
  eng_model *m[2];
  setenv("KVASIR_REPACK", "0", 1);
  assert_int_equal(eng_model_open(&m[0], path, &err), 0);
  unsetenv("KVASIR_REPACK");
  assert_int_equal(eng_model_open(&m[1], path, &err), 0);
  assert_int_equal(eng_model_get_info(m[0])->repacked_bytes, 0);
  const size_t packed = eng_model_get_info(m[1])->repacked_bytes;
  fprintf(stderr, "gemma3: %zu of %zu bytes repacked\n", packed, eng_model_get_info(m[1])->file_size);
  assert_true(packed > (size_t)8 << 20); /* its Q4_K attention and FFN matrices (the embedding is most of the file) */
  const char *text = "The quick brown fox jumps over the lazy dog, and then it writes a small C program.";
  int32_t toks[64];
  size_t n;
  assert_int_equal(eng_tokenize(m[0], text, strlen(text), 1, 1, toks, 64, &n, &err), 0);
  assert_true(n > 9);
  const size_t b = (n - 3) % 4 ? n - 3 : n - 4; /* the batch leaves m % 4 rows for the gemv */
  const size_t nv = (size_t)eng_n_vocab(m[0]);
  float *lg[2];
  for (int i = 0; i < 2; i++) {
    eng_ctx *c;
    eng_ctx_params cp = {128, 2, NULL, NULL};
    assert_int_equal(eng_ctx_create(&c, m[i], &cp, &err), 0);
    lg[i] = malloc((n + 3) * nv * sizeof *lg[i]);
    assert_non_null(lg[i]);
    assert_int_equal(eng_ctx_eval(c, toks, b, 1, &err), 0);
    for (size_t t = 0; t < b; t++) memcpy(lg[i] + t * nv, eng_ctx_logits(c, t), nv * sizeof(float));
    for (size_t t = b; t < n; t++) {
      assert_int_equal(eng_ctx_eval(c, toks + t, 1, 0, &err), 0);
      memcpy(lg[i] + t * nv, eng_ctx_logits(c, 0), nv * sizeof(float));
    }
    eng_ctx_free(c);
  }
  assert_memory_equal(lg[0], lg[1], n * nv * sizeof(float));
  free(lg[0]), free(lg[1]);
  eng_model_free(m[0]), eng_model_free(m[1]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cancel_and_state), cmocka_unit_test(test_ppl_smollm2), cmocka_unit_test(test_ppl_gemma3),
      cmocka_unit_test(test_greedy_smollm2),   cmocka_unit_test(test_greedy_gemma3),
      cmocka_unit_test(test_repacked_same_bits),
  };
  return cmocka_run_group_tests(tests, eng_test_open_models, eng_test_close_models);
}
