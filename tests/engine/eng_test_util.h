/*
 * eng_test_util.h — helpers shared by the engine tests: locate the models
 * the way `make test` fetched them (scripts/fetch-model --path NAME) and load
 * the golden JSON written by tests/reference/engine/make_goldens.py.
 * A missing model fails the test with a message saying how to fetch it.
 */
#ifndef ENG_TEST_UTIL_H
#define ENG_TEST_UTIL_H
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"

__attribute__((unused)) static const char *eng_src_dir(void) {
  const char *s = getenv("KVASIR_SOURCE_DIR");
  return s && *s ? s : KVASIR_SOURCE_DIR;
}

/* Path of model NAME (smollm2, gemma3) in buf; 0 if the file exists. */
__attribute__((unused)) static int eng_test_model(const char *name, char *buf, size_t n) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "'%s/scripts/fetch-model' --path %s", eng_src_dir(), name);
  FILE *p = popen(cmd, "r");
  buf[0] = 0;
  if (p) {
    if (!fgets(buf, (int)n, p)) buf[0] = 0;
    pclose(p);
  }
  buf[strcspn(buf, "\n")] = 0;
  if (!buf[0] || access(buf, R_OK)) {
    fprintf(stderr, "engine test: model '%s' not found at '%s' — run `scripts/fetch-model %s` (make test does)\n",
            name, buf, name);
    return -1;
  }
  return 0;
}

__attribute__((unused)) static cJSON *eng_test_golden(const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/tests/reference/engine/golden_%s.json", eng_src_dir(), name);
  char *buf;
  size_t len;
  kv_err err = {0};
  if (kv_read_file(path, 16u << 20, &buf, &len, &err)) {
    fprintf(stderr, "engine test: %s\n", err.msg);
    return NULL;
  }
  cJSON *j = cJSON_ParseWithLength(buf, len);
  free(buf);
  return j;
}
#endif
