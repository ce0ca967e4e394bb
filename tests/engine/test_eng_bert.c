/*
 * test_eng_bert.c — the bert row (engine/bert.c, engine/wordpiece.c) held
 * to tests/reference/engine/golden_minilm.json, written by minilm_ref.py
 * from the Hugging Face `tokenizers` library and a numpy BertModel on the
 * original f32 safetensors: every token id equal, every embedding at cosine
 * >= 0.999 with the reference (the GGUF holds f16 matrices) and of unit
 * length. Also: an encoder refuses eng_ctx_create, a decoder refuses
 * eng_embed. Needs the converted model (scripts/fetch-model minilm): exits
 * 77 (skipped) when it is absent.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "eng_test_util.h"

static int failed, passed;
#define CHECK(cond, ...)                         \
  do {                                           \
    if (cond) passed++;                          \
    else {                                       \
      failed++;                                  \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);              \
      fputc('\n', stderr);                       \
    }                                            \
  } while (0)

static int ids_equal(const eng_model *m, const char *text, cJSON *want, size_t max_tokens) {
  size_t cap = strlen(text) + 8, n = 0;
  int32_t *ids = malloc(cap * sizeof *ids);
  kv_err err = {0};
  int rc = eng_tokenize(m, text, strlen(text), 1, 0, ids, cap, &n, &err);
  if (max_tokens && n > max_tokens) { n = max_tokens; ids[n - 1] = 102; }
  int ok = !rc && (int)n == cJSON_GetArraySize(want);
  for (size_t i = 0; ok && i < n; i++) ok = ids[i] == cJSON_GetArrayItem(want, (int)i)->valueint;
  if (!ok) {
    fprintf(stderr, "  tokens of \"%.60s\": got %zu:", text, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n  want %d:", cJSON_GetArraySize(want));
    for (int i = 0; i < cJSON_GetArraySize(want) && i < 40; i++)
      fprintf(stderr, " %d", cJSON_GetArrayItem(want, i)->valueint);
    fputc('\n', stderr);
  }
  free(ids);
  return ok;
}

int main(void) {
  char path[4096];
  if (eng_test_model("minilm", path, sizeof path)) {
    fprintf(stderr, "test_eng_bert: skipped (no model)\n");
    return 77;
  }
  cJSON *g = eng_test_golden("minilm");
  if (!g) return 1;
  kv_err err = {0};
  eng_model *m;
  if (eng_model_open(&m, path, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  eng_backend *be;
  if (eng_backend_cpu(&be, 2, &err)) return 1;
  const int d = eng_embed_dim(m);
  CHECK(d == 384, "embedding dim %d", d);
  CHECK(!strcmp(eng_model_get_info(m)->arch, "bert"), "arch %s", eng_model_get_info(m)->arch);
  cJSON *c;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "tokenize")) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    CHECK(ids_equal(m, text, cJSON_GetObjectItem(c, "ids"), 0), "token ids of \"%.40s\"", text);
  }
  float *e = malloc((size_t)d * sizeof *e);
  double worst = 1;
  cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "embed")) {
    const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
    size_t mt = (size_t)cJSON_GetObjectItem(c, "max_tokens")->valueint, n = 0;
    cJSON *ids = cJSON_GetObjectItem(c, "ids"), *ref = cJSON_GetObjectItem(c, "embedding");
    CHECK(ids_equal(m, text, ids, mt), "token ids of \"%.40s\"", text);
    int rc = eng_embed(m, be, text, strlen(text), mt, e, &n, &err);
    CHECK(rc == 0, "eng_embed: %s", err.msg);
    CHECK((int)n == cJSON_GetArraySize(ids), "encoded %zu tokens, want %d", n, cJSON_GetArraySize(ids));
    double dot = 0, nr = 0, ne = 0;
    for (int i = 0; i < d; i++) {
      double r = cJSON_GetArrayItem(ref, i)->valuedouble;
      dot += r * e[i], nr += r * r, ne += (double)e[i] * e[i];
    }
    double cosv = dot / sqrt(nr * ne);
    if (cosv < worst) worst = cosv;
    CHECK(cosv >= 0.999, "cosine %.6f < 0.999 for \"%.40s\"", cosv, text);
    CHECK(fabs(ne - 1) < 1e-4, "|e|^2 = %.6f", ne);
  }
  printf("test_eng_bert: worst cosine with the reference %.6f\n", worst);
  /* two different texts are not the same vector (a test that can fail) */
  float *e2 = malloc((size_t)d * sizeof *e2);
  eng_embed(m, be, "compress a block", 16, 0, e, NULL, &err);
  eng_embed(m, be, "parse command-line options", 26, 0, e2, NULL, &err);
  double dd = 0;
  for (int i = 0; i < d; i++) dd += (double)e[i] * e2[i];
  CHECK(dd < 0.9, "unrelated texts at cosine %.3f", dd);
  eng_ctx *ctx = NULL;
  CHECK(eng_ctx_create(&ctx, m, NULL, &err) == KV_EUNSUPPORTED, "eng_ctx_create on an encoder");
  CHECK(strstr(err.msg, "encoder") != NULL, "message: %s", err.msg);
  CHECK(eng_embed(m, be, "x", 1, 1, e, NULL, &err) == KV_EINVAL, "max_tokens 1 refused");
  char dec[4096];
  if (!eng_test_model("smollm2", dec, sizeof dec)) {
    eng_model *m2;
    if (!eng_model_open(&m2, dec, &err)) {
      CHECK(eng_embed_dim(m2) == 0, "a decoder has no embedding dim");
      CHECK(eng_embed(m2, be, "x", 1, 0, e, NULL, &err) == KV_EINVAL, "eng_embed on a decoder");
      eng_model_free(m2);
    }
  }
  free(e);
  free(e2);
  eng_backend_free(be);
  eng_model_free(m);
  cJSON_Delete(g);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
