/* test_kvmem_serve.c — serving on the compressed memory with the default
 * model (SmolLM2), the calls the daemon makes (engine/kvmem_eng.h):
 *  - a context from kvm_eng_ctx_create runs the usual engine calls
 *    (eng_ctx_eval, eng_generate with common-prefix reuse);
 *  - a resident prefix saved with kvm_eng_prefix_save is found again by a
 *    fresh store and context (as after a restart) from its snapshot, and the
 *    next-token logits after it equal the cold build's (the same bytes are
 *    read, so to float rounding: the snapshot tests' 1e-6, relative here);
 *  - a snapshot with one byte flipped is refused, by name, and deleted;
 *  - kvm_eng_stats_get reports compressed vs dense f16 bytes.
 * The prefix is ~400 tokens of docs/kv-memory.md in three segments: past
 * S+W+B = 132, so every layer holds sinks, compressed blocks and a window. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/kvmem_eng.h"

#define N_CTX 1024
#define PREFIX 400

static eng_model *g_m;
static int32_t g_toks[PREFIX + 64];
static size_t g_nq;         /* question tokens at g_toks + PREFIX */
static kvm_segment g_segs[3];
static float *g_cold;       /* logits after prefix + question, cold */
static int g_vocab;
static char g_dir[64];

static const char *QUESTION = "\n\nQuestion: which file writes the snapshot header?\nAnswer:";

static int setup(void **st) {
  char path[4096], *text;
  size_t len, n;
  kv_err e;
  if (eng_default_model_path(path, sizeof path) || access(path, R_OK)) {
    fprintf(stderr, "default model missing (%s): run scripts/fetch-model smollm2\n", path);
    return -1;
  }
  if (eng_model_open(&g_m, path, &e)) return -1;
  g_vocab = eng_n_vocab(g_m);
  if (kv_read_file(KVASIR_SOURCE_DIR "/docs/kv-memory.md", 1 << 20, &text, &len, &e)) return -1;
  int rc = eng_tokenize(g_m, text, len, 1, 0, g_toks, PREFIX, &n, &e);
  free(text);
  if (rc != KV_ELIMIT && rc != 0) return -1;
  if (eng_tokenize(g_m, QUESTION, strlen(QUESTION), 0, 0, g_toks + PREFIX, 64, &g_nq, &e)) return -1;
  g_segs[0] = (kvm_segment){g_toks, 150};
  g_segs[1] = (kvm_segment){g_toks + 150, 150};
  g_segs[2] = (kvm_segment){g_toks + 300, PREFIX - 300};
  strcpy(g_dir, "/tmp/kvm-serve-XXXXXX");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **st) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  eng_model_free(g_m);
  free(g_cold);
  return system(cmd) == 0 ? 0 : -1;
}

static eng_ctx *ctx_new(void) {
  eng_ctx_params p;
  eng_ctx_params_default(&p);
  p.n_ctx = N_CTX;
  p.n_threads = 2;
  eng_ctx *c;
  kv_err e;
  assert_int_equal(kvm_eng_ctx_create(&c, g_m, &p, NULL, &e), 0);
  return c;
}

/* Largest |a-b| over the vocabulary, relative to the largest |b|. */
static double rel_diff(const float *a, const float *b) {
  double d = 0, s = 1;
  for (int i = 0; i < g_vocab; i++) {
    d = fmax(d, fabs((double)a[i] - b[i]));
    s = fmax(s, fabs((double)b[i]));
  }
  return d / s;
}

static int argmax(const float *x) {
  int b = 0;
  for (int i = 1; i < g_vocab; i++) if (x[i] > x[b]) b = i;
  return b;
}

/* The one snapshot file in g_dir (path into buf); 0 when there is one. */
static int snap_file(char *buf, size_t n) {
  DIR *d = opendir(g_dir);
  int found = 0;
  for (struct dirent *de; d && (de = readdir(d));)
    if (strstr(de->d_name, ".kvm")) {
      snprintf(buf, n, "%s/%s", g_dir, de->d_name);
      found++;
    }
  if (d) closedir(d);
  return found == 1 ? 0 : -1;
}

/* Cold build, then save through a store, then a fresh store and context
 * load it from disk and continue: same logits. */
static void test_save_restart_load(void **st) {
  kv_err e;
  /* cold: prefix, then the question */
  eng_ctx *a = ctx_new();
  assert_int_equal(eng_ctx_eval(a, g_toks, PREFIX, 0, &e), 0);
  assert_int_equal(eng_ctx_eval(a, g_toks + PREFIX, g_nq, 0, &e), 0);
  g_cold = malloc(sizeof(float) * (size_t)g_vocab);
  memcpy(g_cold, eng_ctx_logits(a, 0), sizeof(float) * (size_t)g_vocab);

  /* build the prefix and save it: the context goes on from a fork */
  eng_ctx *b = ctx_new();
  kvm_store *s;
  assert_int_equal(kvm_eng_store_open(&s, b, (size_t)1 << 30, g_dir, &e), 0);
  assert_int_equal(eng_ctx_eval(b, g_toks, PREFIX, 0, &e), 0);
  size_t before = kvm_cache_bytes(kvm_eng_ctx_cache(b));
  assert_int_equal(kvm_eng_prefix_save(b, s, g_segs, 3, &e), 0);
  assert_int_equal(kvm_store_count(s), 1);
  assert_int_equal(eng_ctx_n_past(b), PREFIX);
  kvm_eng_stats sb;
  assert_int_equal(kvm_eng_stats_get(b, s, &sb, &e), 0);
  assert_int_equal(sb.kv_bytes, before);          /* the same state ... */
  assert_true(sb.kv_owned_bytes < sb.kv_bytes);   /* ... its blocks now the prefix's */
  assert_int_equal(eng_ctx_eval(b, g_toks + PREFIX, g_nq, 0, &e), 0);
  double d_save = rel_diff(eng_ctx_logits(b, 0), g_cold);
  /* a mismatching segment list is refused, naming the position */
  kvm_segment wrong[1] = {{g_toks + 1, 10}};
  assert_int_equal(kvm_eng_prefix_save(b, s, wrong, 1, &e), KV_EINVAL);
  assert_non_null(strstr(e.msg, "position 0"));
  kvm_store_free(s);
  eng_ctx_free(b);
  char snap[512];
  assert_int_equal(snap_file(snap, sizeof snap), 0);

  /* "restart": a fresh store and context find the snapshot */
  eng_ctx *c = ctx_new();
  assert_int_equal(kvm_eng_store_open(&s, c, (size_t)1 << 30, g_dir, &e), 0);
  size_t got;
  int disk;
  assert_int_equal(kvm_eng_prefix_load(c, s, g_segs, 3, &got, &disk, &e), 0);
  assert_int_equal(got, PREFIX);
  assert_true(disk);
  assert_int_equal(eng_ctx_n_past(c), PREFIX);
  assert_memory_equal(eng_ctx_tokens(c), g_toks, PREFIX * sizeof(int32_t));
  assert_int_equal(eng_ctx_eval(c, g_toks + PREFIX, g_nq, 0, &e), 0);
  double d_load = rel_diff(eng_ctx_logits(c, 0), g_cold);
  print_message("next-token logits vs cold: after save %.3g, after restart + load %.3g (relative)\n", d_save, d_load);
  assert_true(d_save <= 1e-6);
  assert_true(d_load <= 1e-6);
  assert_int_equal(argmax(eng_ctx_logits(c, 0)), argmax(g_cold));

  /* cache.stats: compressed vs dense f16 for the same tokens */
  kvm_eng_stats sc;
  assert_int_equal(kvm_eng_stats_get(c, s, &sc, &e), 0);
  const eng_model_info *I = eng_model_get_info(g_m);
  assert_int_equal(sc.n_tokens, PREFIX + (int)g_nq);
  assert_int_equal(sc.f16_bytes, (size_t)I->n_layer * (size_t)sc.n_tokens * (size_t)I->n_head_kv * I->head_dim * 4);
  assert_int_equal(sc.kv_bytes, kvm_cache_bytes(kvm_eng_ctx_cache(c)));
  assert_true(sc.kv_bytes < sc.f16_bytes);
  assert_true(sc.kv_owned_bytes < sc.kv_bytes);  /* the blocks are the snapshot's */
  assert_int_equal(sc.store_prefixes, 1);
  assert_true(sc.store_bytes > 0);
  print_message("stats: %d tokens, %zu bytes compressed (%zu owned) vs %zu f16 (%.3f)\n", sc.n_tokens, sc.kv_bytes,
                sc.kv_owned_bytes, sc.f16_bytes, sc.ratio);

  /* the daemon's flow after a load: eng_generate with the whole prompt
   * reuses the loaded prefix */
  eng_ctx_truncate(c, PREFIX);
  eng_sampler *smp;
  eng_sampler_params sp;
  eng_sampler_params_default(&sp);
  assert_int_equal(eng_sampler_create(&smp, &sp, g_vocab, &e), 0);
  eng_gen_params gp;
  memset(&gp, 0, sizeof gp);
  gp.max_tokens = 2;
  eng_gen_result gr;
  assert_int_equal(eng_generate(c, smp, g_toks, PREFIX + g_nq, &gp, &gr, &e), 0);
  assert_true(gr.n_reused >= PREFIX);
  assert_int_equal(gr.n_gen, 2);
  eng_sampler_free(smp);
  kvm_store_free(s);
  eng_ctx_free(c);

  /* a partial match: the last segment edited -> the first two are reused */
  kvm_segment edited[3] = {g_segs[0], g_segs[1], {g_toks + 301, 50}};
  c = ctx_new();
  assert_int_equal(kvm_eng_store_open(&s, c, (size_t)1 << 30, g_dir, &e), 0);
  assert_int_equal(kvm_eng_prefix_load(c, s, edited, 3, &got, NULL, &e), 0);
  assert_int_equal(got, 300);
  assert_int_equal(eng_ctx_n_past(c), 300);
  kvm_store_free(s);
  eng_ctx_free(c);

  /* the copy path: a prefix shorter than what the context holds */
  char dir2[96];
  snprintf(dir2, sizeof dir2, "%s/copy", g_dir);
  assert_int_equal(kvm_eng_store_open(&s, a, (size_t)1 << 30, dir2, &e), 0);
  assert_int_equal(kvm_eng_prefix_save(a, s, g_segs, 3, &e), 0);
  assert_int_equal(eng_ctx_n_past(a), PREFIX + (int)g_nq); /* unchanged */
  kvm_store_free(s);
  c = ctx_new();
  assert_int_equal(kvm_eng_store_open(&s, c, (size_t)1 << 30, dir2, &e), 0);
  assert_int_equal(kvm_eng_prefix_load(c, s, g_segs, 3, &got, &disk, &e), 0);
  assert_int_equal(got, PREFIX);
  assert_true(disk);
  assert_int_equal(eng_ctx_eval(c, g_toks + PREFIX, g_nq, 0, &e), 0);
  double d_copy = rel_diff(eng_ctx_logits(c, 0), g_cold);
  /* exact too: the question's 14 tokens spilled no block (the window went
   * from 76 to 90 of 128 rows), so every prefix row is copied as stored */
  print_message("copied prefix: logits vs cold %.3g (relative)\n", d_copy);
  assert_true(d_copy <= 1e-6);
  assert_int_equal(argmax(eng_ctx_logits(c, 0)), argmax(g_cold));
  kvm_store_free(s);
  eng_ctx_free(c);
  eng_ctx_free(a);
}

/* One flipped byte in the middle of the snapshot: refused by name, deleted,
 * and the context is left as it was. */
static void test_flipped_byte_refused(void **st) {
  char snap[512];
  kv_err e;
  assert_int_equal(snap_file(snap, sizeof snap), 0);
  int fd = open(snap, O_RDWR);
  assert_true(fd >= 0);
  off_t size = lseek(fd, 0, SEEK_END), at = size / 2;
  unsigned char x;
  assert_int_equal(pread(fd, &x, 1, at), 1);
  x ^= 0x10;
  assert_int_equal(pwrite(fd, &x, 1, at), 1);
  close(fd);
  eng_ctx *c = ctx_new();
  kvm_store *s;
  assert_int_equal(kvm_eng_store_open(&s, c, (size_t)1 << 30, g_dir, &e), 0);
  size_t got = 7;
  assert_int_equal(kvm_eng_prefix_load(c, s, g_segs, 3, &got, NULL, &e), KV_ENOTFOUND);
  print_message("refused: %s\n", e.msg);
  const char *base = strrchr(snap, '/') + 1;
  assert_non_null(strstr(e.msg, base));
  assert_non_null(strstr(e.msg, "checksum"));
  assert_int_equal(got, 0);
  assert_int_equal(eng_ctx_n_past(c), 0);
  assert_int_not_equal(access(snap, F_OK), 0); /* deleted: the next build recomputes */
  kvm_store_free(s);
  eng_ctx_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_save_restart_load),
      cmocka_unit_test(test_flipped_byte_refused),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
