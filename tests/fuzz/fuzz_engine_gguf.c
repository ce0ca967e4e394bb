/*
 * fuzz_engine_gguf.c — the GGUF reader on arbitrary bytes. Whatever the
 * input, eng_gguf_open_mem must either fail cleanly or return a handle whose
 * every tensor lies inside the buffer and whose metadata can be walked.
 * Touching the first and last byte of each tensor lets ASan catch a reader
 * that validated less than it promised. Seeds: tests/reference/engine/make_fuzz_seeds.py.
 */
#include <stdint.h>
#include <string.h>

#include "engine/engine.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  eng_gguf *g = NULL;
  kv_err err;
  if (eng_gguf_open_mem(&g, data, size, "fuzz.gguf", &err) != 0) return 0;
  volatile uint8_t sink = 0;
  for (size_t i = 0; i < eng_gguf_n_tensors(g); i++) {
    const eng_tensor *t = eng_gguf_tensor_at(g, i);
    if (t->nbytes) sink ^= ((const uint8_t *)t->data)[0] ^ ((const uint8_t *)t->data)[t->nbytes - 1];
    if (t->name.n) sink ^= (uint8_t)t->name.p[t->name.n - 1];
  }
  static const char *const keys[] = {"general.architecture", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
                                     "general.alignment", "llama.block_count"};
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
    eng_str s;
    int64_t iv;
    float fv;
    int et;
    uint64_t n;
    const void *cur;
    if (!eng_gguf_get_str(g, keys[k], &s, &err) && s.n) sink ^= (uint8_t)s.p[s.n - 1];
    (void)eng_gguf_get_int(g, keys[k], &iv, &err);
    (void)eng_gguf_get_f32(g, keys[k], &fv, &err);
    if (!eng_gguf_get_arr(g, keys[k], &et, &n, &cur, &err) && et == ENG_GGUF_STRING)
      for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const char *p = eng_gguf_arr_str_next(&cur, &len);
        if (len) sink ^= (uint8_t)p[len - 1];
      }
  }
  (void)sink;
  eng_gguf_free(g);
  return 0;
}
