/*
 * tiny_qwen2.c — writes a tiny qwen2-architecture GGUF (2 layers, d=64,
 * 4 query heads / 2 KV heads, F32 weights from a fixed LCG) that borrows
 * SmolLM2's BPE vocabulary and merges but declares the Qwen2 pre-tokenizer.
 * It exercises the qwen2 code path (Q/K/V biases, NeoX RoPE, untied output,
 * Qwen2 regex) against llama.cpp without downloading the 7B model:
 *   tiny_qwen2 OUT.gguf SMOLLM2.gguf
 * tests/reference/engine/make_goldens.py runs llama.cpp on the file this
 * writes; test_eng_qwen2_tiny writes the same bytes and compares.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

enum { D = 64, NH = 4, NKV = 2, HD = 16, FF = 128, NL = 2 };

typedef struct wbuf {
  FILE *f;
  int err;
} wbuf;
static void w(wbuf *b, const void *p, size_t n) {
  if (n && fwrite(p, 1, n, b->f) != n) b->err = 1;
}
static void w32(wbuf *b, uint32_t v) { w(b, &v, 4); }
static void w64(wbuf *b, uint64_t v) { w(b, &v, 8); }
static void wstr(wbuf *b, const char *s, size_t n) { w64(b, n); w(b, s, n); }
static void kstr(wbuf *b, const char *k, const char *v) { wstr(b, k, strlen(k)); w32(b, ENG_GGUF_STRING); wstr(b, v, strlen(v)); }
static void ku32(wbuf *b, const char *k, uint32_t v) { wstr(b, k, strlen(k)); w32(b, ENG_GGUF_U32); w32(b, v); }
static void kf32(wbuf *b, const char *k, float v) { wstr(b, k, strlen(k)); w32(b, ENG_GGUF_F32); w(b, &v, 4); }
static void kbool(wbuf *b, const char *k, int v) { uint8_t x = (uint8_t)v; wstr(b, k, strlen(k)); w32(b, ENG_GGUF_BOOL); w(b, &x, 1); }

/* Copy a string array key from the source file. */
static int kstrarr(wbuf *b, const eng_gguf *src, const char *k) {
  int et;
  uint64_t n;
  const void *cur;
  if (eng_gguf_get_arr(src, k, &et, &n, &cur, NULL) || et != ENG_GGUF_STRING) return -1;
  wstr(b, k, strlen(k));
  w32(b, ENG_GGUF_ARRAY);
  w32(b, ENG_GGUF_STRING);
  w64(b, n);
  for (uint64_t i = 0; i < n; i++) {
    size_t l;
    const char *s = eng_gguf_arr_str_next(&cur, &l);
    wstr(b, s, l);
  }
  return 0;
}

typedef struct tdesc {
  char name[64];
  uint64_t ne0, ne1;
  float scale, bias; /* values: bias + scale * uniform(-1, 1) */
} tdesc;

static uint64_t lcg_state;
static float urand(void) {
  lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
  return (float)((lcg_state >> 40) & 0xffffff) / 8388608.0f - 1.0f;
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: tiny_qwen2 OUT.gguf SMOLLM2.gguf\n"); return 2; }
  eng_gguf *src;
  kv_err err = {0};
  if (eng_gguf_open(&src, argv[2], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  int et;
  uint64_t nv;
  const void *tt;
  if (eng_gguf_get_arr(src, "tokenizer.ggml.token_type", &et, &nv, &tt, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
  tdesc t[64];
  int nt = 0;
#define T(nm, a, b, sc, bi) do { snprintf(t[nt].name, sizeof t[nt].name, "%s", nm); t[nt].ne0 = a; t[nt].ne1 = b; t[nt].scale = sc; t[nt].bias = bi; nt++; } while (0)
  T("token_embd.weight", D, nv, 1.0f, 0);
  T("output_norm.weight", D, 1, 0.1f, 1.0f);
  T("output.weight", D, nv, 0.5f, 0);
  for (int l = 0; l < NL; l++) {
    char n[64];
    const float s = 1.0f / sqrtf((float)D);
#define L(sfx, a, b, sc, bi) do { snprintf(n, sizeof n, "blk.%d.%s", l, sfx); T(n, a, b, sc, bi); } while (0)
    L("attn_norm.weight", D, 1, 0.1f, 1.0f);
    L("attn_q.weight", D, NH * HD, 2 * s, 0);
    L("attn_q.bias", NH * HD, 1, 0.2f, 0);
    L("attn_k.weight", D, NKV * HD, 2 * s, 0);
    L("attn_k.bias", NKV * HD, 1, 0.2f, 0);
    L("attn_v.weight", D, NKV * HD, 2 * s, 0);
    L("attn_v.bias", NKV * HD, 1, 0.2f, 0);
    L("attn_output.weight", NH * HD, D, s, 0);
    L("ffn_norm.weight", D, 1, 0.1f, 1.0f);
    L("ffn_gate.weight", D, FF, 2 * s, 0);
    L("ffn_up.weight", D, FF, 2 * s, 0);
    L("ffn_down.weight", FF, D, 1.0f / sqrtf((float)FF), 0);
#undef L
  }
#undef T
  wbuf b = {fopen(argv[1], "wb"), 0};
  if (!b.f) { perror(argv[1]); return 1; }
  w32(&b, 0x46554747u);
  w32(&b, 3);
  w64(&b, (uint64_t)nt);
  w64(&b, 19);
  kstr(&b, "general.architecture", "qwen2");
  kstr(&b, "general.name", "tiny-qwen2");
  ku32(&b, "qwen2.block_count", NL);
  ku32(&b, "qwen2.context_length", 512);
  ku32(&b, "qwen2.embedding_length", D);
  ku32(&b, "qwen2.feed_forward_length", FF);
  ku32(&b, "qwen2.attention.head_count", NH);
  ku32(&b, "qwen2.attention.head_count_kv", NKV);
  kf32(&b, "qwen2.rope.freq_base", 10000.0f);
  kf32(&b, "qwen2.attention.layer_norm_rms_epsilon", 1e-6f);
  kstr(&b, "tokenizer.ggml.model", "gpt2");
  kstr(&b, "tokenizer.ggml.pre", "qwen2");
  if (kstrarr(&b, src, "tokenizer.ggml.tokens") || kstrarr(&b, src, "tokenizer.ggml.merges")) {
    fprintf(stderr, "tiny_qwen2: %s lacks the tokenizer arrays\n", argv[2]);
    return 1;
  }
  wstr(&b, "tokenizer.ggml.token_type", 25);
  w32(&b, ENG_GGUF_ARRAY);
  w32(&b, ENG_GGUF_I32);
  w64(&b, nv);
  w(&b, tt, nv * 4);
  ku32(&b, "tokenizer.ggml.bos_token_id", 1);
  ku32(&b, "tokenizer.ggml.eos_token_id", 2);
  kbool(&b, "tokenizer.ggml.add_bos_token", 0);
  ku32(&b, "general.alignment", 32);
  uint64_t off = 0;
  for (int i = 0; i < nt; i++) {
    wstr(&b, t[i].name, strlen(t[i].name));
    int nd = t[i].ne1 > 1 ? 2 : 1;
    w32(&b, (uint32_t)nd);
    w64(&b, t[i].ne0);
    if (nd == 2) w64(&b, t[i].ne1);
    w32(&b, 0); /* F32 */
    w64(&b, off);
    off += (t[i].ne0 * t[i].ne1 * 4 + 31) / 32 * 32;
  }
  long pos = ftell(b.f);
  static const char zero[32];
  w(&b, zero, (size_t)((32 - pos % 32) % 32));
  lcg_state = 20261123;
  float *row = malloc(sizeof(float) * 4096);
  for (int i = 0; i < nt; i++) {
    uint64_t n = t[i].ne0 * t[i].ne1;
    for (uint64_t j = 0; j < n;) {
      size_t k = n - j < 4096 ? (size_t)(n - j) : 4096;
      for (size_t q = 0; q < k; q++) row[q] = t[i].bias + t[i].scale * urand();
      w(&b, row, k * 4);
      j += k;
    }
    w(&b, zero, (size_t)((32 - (n * 4) % 32) % 32));
  }
  free(row);
  int bad = b.err | fclose(b.f);
  eng_gguf_free(src);
  if (bad) { fprintf(stderr, "tiny_qwen2: write failed\n"); return 1; }
  return 0;
}
