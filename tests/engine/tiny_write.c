/*
 * tiny_write.c — writes the tiny models of TG_CASES (tiny_gguf.h) into a
 * directory, for tests/reference/engine/tiny_ref.py to compute reference
 * logits from the same bytes test_eng_arch writes:
 *   tiny_write DIR    -> DIR/tiny-<name>.gguf for each case
 */
#include "tiny_gguf.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: tiny_write DIR\n");
    return 2;
  }
  for (size_t i = 0; i < sizeof TG_CASES / sizeof *TG_CASES; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny-%s.gguf", argv[1], TG_CASES[i].name);
    if (tg_model_at(path, TG_CASES[i].arch, TG_CASES[i].groups, NULL)) {
      fprintf(stderr, "tiny_write: cannot write %s\n", path);
      return 1;
    }
    printf("%s\n", path);
  }
  return 0;
}
