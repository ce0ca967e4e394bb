/*
 * test_eng_gguf.c — the GGUF reader against the real SmolLM2 file and
 * corrupted copies of its header: truncation at several points, wrong magic,
 * unknown tensor type, absurd dims, too many dims, misaligned / out-of-range /
 * overlapping tensor data, string and count lengths past the end. Every case
 * must fail with KV_E* and a message naming the tensor or field and a byte
 * offset — never crash. The corruptions are located by an independent
 * header walker written here (not the reader under test).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "engine/engine.h"
#include "eng_test_util.h"

static uint8_t *g_buf;
static size_t g_len;
static char g_path[4096];

/* Offsets found by the independent walker. */
typedef struct tinfo {
  size_t name_off, ndim_off, dims_off, type_off, offset_off;
  char name[96];
} tinfo;
static tinfo g_t[8];
static size_t g_first_key_len_off, g_n_kv_off = 16, g_n_t_off = 8;

static uint64_t rd64(size_t o) { uint64_t v; memcpy(&v, g_buf + o, 8); return v; }
static uint32_t rd32(size_t o) { uint32_t v; memcpy(&v, g_buf + o, 4); return v; }
static void wr64(size_t o, uint64_t v) { memcpy(g_buf + o, &v, 8); }
static void wr32(size_t o, uint32_t v) { memcpy(g_buf + o, &v, 4); }

static size_t skip_val(size_t o, uint32_t t) {
  static const size_t sz[13] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  if (t == 8) return o + 8 + rd64(o);
  if (t == 9) {
    uint32_t at = rd32(o);
    uint64_t n = rd64(o + 4);
    o += 12;
    for (uint64_t i = 0; i < n; i++) o = skip_val(o, at);
    return o;
  }
  return o + sz[t];
}

static int setup(void **st) {
  if (eng_test_model("smollm2", g_path, sizeof g_path)) return -1;
  kv_err err = {0};
  char *b;
  if (kv_read_file(g_path, 1u << 30, &b, &g_len, &err)) { fprintf(stderr, "%s\n", err.msg); return -1; }
  g_buf = (uint8_t *)b;
  size_t o = 24;
  uint64_t n_kv = rd64(16);
  g_first_key_len_off = 24;
  for (uint64_t i = 0; i < n_kv; i++) {
    o += 8 + rd64(o);
    uint32_t t = rd32(o);
    o = skip_val(o + 4, t);
  }
  for (int i = 0; i < 8; i++) {
    tinfo *t = &g_t[i];
    t->name_off = o;
    uint64_t nl = rd64(o);
    snprintf(t->name, sizeof t->name, "%.*s", (int)nl, (const char *)g_buf + o + 8);
    o += 8 + nl;
    t->ndim_off = o;
    uint32_t nd = rd32(o);
    t->dims_off = o + 4;
    o += 4 + 8 * nd;
    t->type_off = o;
    t->offset_off = o + 4;
    o += 12;
  }
  return 0;
}
static int teardown(void **st) { free(g_buf); return 0; }

/* Open the (mutated) buffer of length len; expect failure mentioning `needle`. */
static void expect_fail(size_t len, const char *needle, const char *needle2) {
  eng_gguf *g = NULL;
  kv_err err = {0};
  int rc = eng_gguf_open_mem(&g, g_buf, len, "model.gguf", &err);
  if (rc == 0) eng_gguf_free(g);
  if (rc >= 0 || !strstr(err.msg, needle) || (needle2 && !strstr(err.msg, needle2)))
    fail_msg("rc=%d msg='%s' (wanted '%s'%s%s)", rc, err.msg, needle, needle2 ? " and " : "", needle2 ? needle2 : "");
  assert_null(g);
}

static void test_real_file(void **st) {
  eng_gguf *g;
  kv_err err = {0};
  assert_int_equal(eng_gguf_open(&g, g_path, &err), 0);
  assert_int_equal(eng_gguf_n_tensors(g), 272);
  const eng_tensor *t = eng_gguf_tensor(g, "token_embd.weight");
  assert_non_null(t);
  assert_int_equal(t->type, 8); /* Q8_0 */
  assert_int_equal(t->ne[0], 576);
  assert_int_equal(t->ne[1], 49152);
  assert_int_equal(t->nbytes, 576 / 32 * 34 * 49152);
  int64_t v;
  assert_int_equal(eng_gguf_get_int(g, "llama.block_count", &v, &err), 0);
  assert_int_equal(v, 30);
  float f;
  assert_int_equal(eng_gguf_get_f32(g, "llama.rope.freq_base", &f, &err), 0);
  assert_true(f == 100000.0f);
  eng_str s;
  assert_int_equal(eng_gguf_get_str(g, "general.architecture", &s, &err), 0);
  assert_int_equal(s.n, 5);
  assert_memory_equal(s.p, "llama", 5);
  assert_int_equal(eng_gguf_get_int(g, "no.such.key", &v, &err), KV_ENOTFOUND);
  assert_non_null(strstr(err.msg, "no.such.key"));
  assert_int_equal(eng_gguf_get_int(g, "general.architecture", &v, &err), KV_EFORMAT);
  eng_gguf_free(g);
}

static void test_truncated(void **st) {
  expect_fail(3, "truncated", "magic");
  expect_fail(20, "truncated", "byte 16");
  expect_fail(g_t[0].name_off - 7, "truncated", NULL);     /* inside the key/values */
  expect_fail(g_t[3].type_off + 2, "truncated", "tensor"); /* inside the tensor infos */
  expect_fail(g_len - 1000, "outside the data section", NULL);
  expect_fail(g_len / 2, "outside the data section", NULL);
  /* also through the file path: a truncated copy on disk */
  char tmp[] = "/tmp/kvasir-gguf-XXXXXX";
  int fd = mkstemp(tmp);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, g_buf, 4096), 4096);
  close(fd);
  eng_gguf *g;
  kv_err err = {0};
  assert_true(eng_gguf_open(&g, tmp, &err) < 0);
  assert_non_null(strstr(err.msg, tmp));
  unlink(tmp);
  assert_int_equal(eng_gguf_open(&g, "/nonexistent/model.gguf", &err), KV_ENOTFOUND);
}

static void test_magic_version(void **st) {
  g_buf[0] = 'X';
  expect_fail(g_len, "bad magic", "byte 0");
  g_buf[0] = 'G';
  wr32(4, 99);
  expect_fail(g_len, "version 99", NULL);
  wr32(4, 3);
}

static void test_counts_and_strings(void **st) {
  uint64_t n = rd64(g_n_kv_off);
  wr64(g_n_kv_off, 1ull << 40);
  expect_fail(g_len, "absurd header", NULL);
  wr64(g_n_kv_off, n);
  n = rd64(g_n_t_off);
  wr64(g_n_t_off, n + 5); /* more tensor infos than present: reads into data, then fails somewhere */
  {
    eng_gguf *g = NULL;
    kv_err err = {0};
    assert_true(eng_gguf_open_mem(&g, g_buf, g_len, "model.gguf", &err) < 0);
  }
  wr64(g_n_t_off, n);
  uint64_t l = rd64(g_first_key_len_off);
  wr64(g_first_key_len_off, 1ull << 60);
  expect_fail(g_len, "beyond the end", "byte 24");
  wr64(g_first_key_len_off, l);
}

static void test_tensor_fields(void **st) {
  const tinfo *t = &g_t[2];
  uint32_t ty = rd32(t->type_off);
  wr32(t->type_off, 77);
  expect_fail(g_len, t->name, "unknown type 77");
  wr32(t->type_off, ty);

  uint64_t d0 = rd64(t->dims_off);
  wr64(t->dims_off, 1ull << 62);
  expect_fail(g_len, t->name, "absurd dimension");
  wr64(t->dims_off, 0);
  expect_fail(g_len, t->name, "absurd dimension");
  wr64(t->dims_off, d0 + 1); /* not a multiple of the block size */
  expect_fail(g_len, t->name, "not a multiple");
  wr64(t->dims_off, d0);

  uint32_t nd = rd32(t->ndim_off);
  wr32(t->ndim_off, 7);
  expect_fail(g_len, t->name, "7 dimensions");
  wr32(t->ndim_off, nd);

  uint64_t off = rd64(t->offset_off);
  wr64(t->offset_off, off + 1);
  expect_fail(g_len, t->name, "misaligned or outside");
  wr64(t->offset_off, 1ull << 50);
  expect_fail(g_len, t->name, "outside the data section");
  wr64(t->offset_off, rd64(g_t[1].offset_off)); /* same bytes as tensor 1 */
  expect_fail(g_len, "overlaps", NULL);
  wr64(t->offset_off, off);

  /* duplicate name: copy tensor 1's name over tensor 2's when lengths match */
  uint64_t l1 = rd64(g_t[1].name_off), l2 = rd64(t->name_off);
  if (l1 == l2) {
    uint8_t save[96];
    memcpy(save, g_buf + t->name_off + 8, l2);
    memcpy(g_buf + t->name_off + 8, g_buf + g_t[1].name_off + 8, l1);
    expect_fail(g_len, "duplicate name", NULL);
    memcpy(g_buf + t->name_off + 8, save, l2);
  }
  /* restored: opens again */
  eng_gguf *g;
  kv_err err = {0};
  assert_int_equal(eng_gguf_open_mem(&g, g_buf, g_len, "model.gguf", &err), 0);
  eng_gguf_free(g);
}

static void test_model_rejects_shape(void **st) {
  /* swap the two dims of blk.0.ffn_down (same element count, same bytes):
   * the GGUF is still valid, the model loader must name the tensor */
  const tinfo *t = &g_t[2];
  assert_string_equal(t->name, "blk.0.ffn_down.weight");
  assert_int_equal(rd32(t->ndim_off), 2);
  uint64_t a = rd64(t->dims_off), b = rd64(t->dims_off + 8);
  assert_true(a != b && b % 32 == 0);
  wr64(t->dims_off, b);
  wr64(t->dims_off + 8, a);
  char tmp[] = "/tmp/kvasir-model-XXXXXX";
  int fd = mkstemp(tmp);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, g_buf, g_len), (ssize_t)g_len);
  close(fd);
  wr64(t->dims_off, a);
  wr64(t->dims_off + 8, b);
  eng_model *m = NULL;
  kv_err err = {0};
  int rc = eng_model_open(&m, tmp, &err);
  unlink(tmp);
  assert_int_equal(rc, KV_EFORMAT);
  assert_non_null(strstr(err.msg, "blk.0.ffn_down.weight"));
  assert_non_null(strstr(err.msg, "shape"));
}

static void test_seed_files(void **st) {
  /* small files written by tests/reference/engine/make_fuzz_seeds.py from the spec */
  static const struct { const char *name; int ok; const char *needle; } cases[] = {
      {"valid_v3.seed", 1, NULL},        {"valid_v2.seed", 1, NULL},          {"align64.seed", 1, NULL},
      {"empty.seed", 1, NULL},           {"truncated.seed", 0, "b.weight"},   {"overlap.seed", 0, "overlaps"},
      {"hugecount.seed", 0, "absurd"},   {"badtype.seed", 0, "unknown type"}, {"badmagic.seed", 0, "magic"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/fuzz_engine_gguf/%s", eng_src_dir(), cases[i].name);
    eng_gguf *g = NULL;
    kv_err err = {0};
    int rc = eng_gguf_open(&g, path, &err);
    if (cases[i].ok != (rc == 0) || (!cases[i].ok && !strstr(err.msg, cases[i].needle)))
      fail_msg("%s: rc=%d msg='%s'", cases[i].name, rc, err.msg);
    if (rc) continue;
    if (strcmp(cases[i].name, "empty.seed")) {
      const eng_tensor *a = eng_gguf_tensor(g, "a.weight"), *b = eng_gguf_tensor(g, "b.weight");
      assert_non_null(a);
      assert_non_null(b);
      float f[4];
      memcpy(f, a->data, 16);
      assert_true(f[0] == 1.0f && f[3] == 4.0f);
      assert_int_equal(b->nbytes, 68);
      int et;
      uint64_t n;
      const void *cur;
      assert_int_equal(eng_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &n, &cur, &err), 0);
      assert_int_equal(n, 4);
      size_t len;
      eng_gguf_arr_str_next(&cur, &len);
      eng_gguf_arr_str_next(&cur, &len);
      eng_gguf_arr_str_next(&cur, &len);
      const char *p = eng_gguf_arr_str_next(&cur, &len);
      assert_int_equal(len, 2);
      assert_memory_equal(p, "ab", 2);
    }
    eng_gguf_free(g);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_real_file),       cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_magic_version),   cmocka_unit_test(test_counts_and_strings),
      cmocka_unit_test(test_tensor_fields),   cmocka_unit_test(test_model_rejects_shape), cmocka_unit_test(test_seed_files),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
