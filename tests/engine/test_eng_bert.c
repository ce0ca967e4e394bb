/*
 * test_eng_bert.c — the bert row (engine/bert.c, engine/wordpiece.c) held
 * to tests/reference/engine/golden_minilm.json, written by minilm_ref.py
 * from the Hugging Face `tokenizers` library and a numpy BertModel on the
 * original f32 safetensors: every token id equal, every embedding at cosine
 * >= 0.999 with the reference (the GGUF holds f16 matrices) and of unit
 * length. Also: an encoder refuses eng_ctx_create, a decoder refuses
 * eng_embed. Those need the converted model (scripts/fetch-model minilm):
 * without it the test exits 77 (skipped) after the part that needs none:
 * a tiny bert GGUF (tiny_gguf.h) loads, tokenizes by WordPiece ("worlds" ->
 * "world" "##s", an unknown word -> [UNK]; 3,000 random byte strings
 * without error and within len + 2 tokens) and embeds to a unit vector, and
 * the same file less a tensor, or less [CLS], is refused naming what is
 * missing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "eng_test_util.h"
#include "tiny_gguf.h"

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

static void tiny_bert(tg *g, const char *skip_tensor, int with_cls) {
  static const char *const toks[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "world", "##s", "wor", ","};
  tg_init(g);
  tg_str(g, "general.architecture", "bert");
  tg_u32(g, "bert.embedding_length", 8);
  tg_u32(g, "bert.block_count", 1);
  tg_u32(g, "bert.attention.head_count", 2);
  tg_u32(g, "bert.feed_forward_length", 16);
  tg_u32(g, "bert.context_length", 16);
  tg_f32(g, "bert.attention.layer_norm_epsilon", 1e-12f);
  tg_str(g, "tokenizer.ggml.model", "bert");
  tg_strarr(g, "tokenizer.ggml.tokens", toks, sizeof toks / sizeof *toks);
  tg_u32(g, "tokenizer.ggml.unknown_token_id", 1);
  if (with_cls) tg_u32(g, "tokenizer.ggml.cls_token_id", 2);
  tg_u32(g, "tokenizer.ggml.seperator_token_id", 3);
  struct { const char *n; uint64_t a, b; } T[] = {
      {"token_embd.weight", 8, 9}, {"position_embd.weight", 8, 16}, {"token_types.weight", 8, 2},
      {"token_embd_norm.weight", 8, 1}, {"token_embd_norm.bias", 8, 1},
      {"blk.0.attn_q.weight", 8, 8}, {"blk.0.attn_q.bias", 8, 1}, {"blk.0.attn_k.weight", 8, 8},
      {"blk.0.attn_k.bias", 8, 1}, {"blk.0.attn_v.weight", 8, 8}, {"blk.0.attn_v.bias", 8, 1},
      {"blk.0.attn_output.weight", 8, 8}, {"blk.0.attn_output.bias", 8, 1},
      {"blk.0.attn_output_norm.weight", 8, 1}, {"blk.0.attn_output_norm.bias", 8, 1},
      {"blk.0.ffn_up.weight", 8, 16}, {"blk.0.ffn_up.bias", 16, 1}, {"blk.0.ffn_down.weight", 16, 8},
      {"blk.0.ffn_down.bias", 8, 1}, {"blk.0.layer_output_norm.weight", 8, 1},
      {"blk.0.layer_output_norm.bias", 8, 1}};
  for (size_t i = 0; i < sizeof T / sizeof *T; i++)
    if (!skip_tensor || strcmp(skip_tensor, T[i].n))
      tg_tensor_add(g, T[i].n, T[i].a, T[i].b, 0.5f, strstr(T[i].n, "norm.weight") ? 1.0f : 0.0f);
}

static void tiny_checks(eng_backend *be) {
  char path[] = "/tmp/kvasir-test-bert-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) { CHECK(0, "mkstemp"); return; }
  close(fd);
  tg g;
  kv_err err = {0};
  eng_model *m = NULL;
  tiny_bert(&g, NULL, 1);
  CHECK(tg_write(&g, path) == 0, "tg_write");
  CHECK(eng_model_open(&m, path, &err) == 0, "tiny bert: %s", err.msg);
  if (m) {
    int32_t ids[16];
    size_t n = 0;
    CHECK(eng_tokenize(m, "Hello, WORLDS zzz", 17, 1, 0, ids, 16, &n, &err) == 0, "tokenize: %s", err.msg);
    static const int32_t want[] = {2, 4, 8, 5, 6, 1, 3};
    CHECK(n == 7 && !memcmp(ids, want, sizeof want), "tiny WordPiece ids (%zu)", n);
    float e[8];
    double s = 0;
    CHECK(eng_embed(m, be, "hello world", 11, 0, e, &n, &err) == 0 && n == 4, "tiny embed: %s", err.msg);
    for (int i = 0; i < 8; i++) s += (double)e[i] * e[i];
    CHECK(fabs(s - 1) < 1e-5, "tiny |e|^2 %.6f", s);
    /* any bytes: no error, at most one piece per byte plus [CLS] [SEP]
     * (the bound eng_embed sizes its buffer by); ASan watches the rest */
    uint64_t r = 42;
    int bad = 0;
    for (int it = 0; it < 3000; it++) {
      char txt[300];
      size_t len = (size_t)(it % 300);
      for (size_t i = 0; i < len; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        static const unsigned char pick[] = {'a', 'h', ' ', ',', '#', 0xc3, 0xa9, 0xe4, 0xb8, 0xad, 0xea, 0xb0,
                                             0x80, 0xf0, 0x9f, 0x98, 0xff, 0x00, '\n', 0xce};
        txt[i] = (char)((r >> 33) % 3 ? pick[(r >> 40) % sizeof pick] : (unsigned char)(r >> 48));
      }
      int32_t big[310];
      size_t nb = 0;
      if (eng_tokenize(m, txt, len, 1, 0, big, 310, &nb, &err) != 0 || nb > len + 2) bad++;
    }
    CHECK(bad == 0, "%d random byte strings failed or exceeded len + 2 tokens", bad);
    /* longer than context_length 16: cut, not refused */
    CHECK(eng_embed(m, be, "hello hello hello hello hello hello hello hello hello hello hello hello hello hello hello "
                    "hello hello", 101, 0, e, &n, &err) == 0 && n == 16, "cut at context_length (%zu)", n);
    eng_model_free(m);
    m = NULL;
  }
  tiny_bert(&g, "blk.0.ffn_up.bias", 1);
  CHECK(tg_write(&g, path) == 0, "tg_write");
  CHECK(eng_model_open(&m, path, &err) == KV_EFORMAT && strstr(err.msg, "blk.0.ffn_up.bias"),
        "missing tensor named: %s", err.msg);
  eng_model_free(m);
  m = NULL;
  tiny_bert(&g, NULL, 0);
  CHECK(tg_write(&g, path) == 0, "tg_write");
  CHECK(eng_model_open(&m, path, &err) == KV_EFORMAT && strstr(err.msg, "cls"), "missing [CLS] id: %s", err.msg);
  eng_model_free(m);
  unlink(path);
}

int main(void) {
  char path[4096];
  {
    kv_err e0 = {0};
    eng_backend *be0;
    if (eng_backend_cpu(&be0, 1, &e0)) return 1;
    tiny_checks(be0);
    eng_backend_free(be0);
    if (failed) {
      printf("%d passed, %d failed\n", passed, failed);
      return 1;
    }
  }
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
