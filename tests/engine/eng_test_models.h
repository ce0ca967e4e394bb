/*
 * eng_test_models.h — group setup/teardown for the engine tests that run on
 * both default models (SmolLM2, Gemma 3): opens them once per group, into
 * g_m[] named by g_names[].
 */
#ifndef ENG_TEST_MODELS_H
#define ENG_TEST_MODELS_H
#include "engine/engine.h"
#include "eng_test_util.h"

static eng_model *g_m[2];
static const char *const g_names[2] = {"smollm2", "gemma3"};

__attribute__((unused)) static int eng_test_open_models(void **st) {
  for (int i = 0; i < 2; i++) {
    char path[4096];
    kv_err err = {0};
    if (eng_test_model(g_names[i], path, sizeof path)) return -1;
    if (eng_model_open(&g_m[i], path, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
  }
  return 0;
}
__attribute__((unused)) static int eng_test_close_models(void **st) {
  for (int i = 0; i < 2; i++) eng_model_free(g_m[i]);
  return 0;
}

#endif
